"""Layer-wise relevance propagation: rules, composites, canonizers and the ``lrp`` method.

A small engine in the spirit of Zennit (Anders et al. 2021): a :class:`Rule` maps the
relevance at a layer's output to its input (implemented as a modified gradient), a
:class:`Composite` assigns rules by module type, and :class:`Canonizer` objects rewrite the
model reversibly (BatchNorm folding, explicit residual sums). :func:`lrp_rules` installs all
of it for the duration of a ``with`` block. :mod:`.transformer` holds the AttnLRP rules for
transformers (``method="attnlrp"``, Achtibat et al. 2024), installed by :func:`attnlrp_rules`.

Example:
    >>> import tribute
    >>> attr = tribute.explain(model, images, method="lrp", composite="epsilon_gamma_box",
    ...                        low=0.0, high=1.0, target=3)          # doctest: +SKIP
    >>> attr.gap                                                    # conservation gap  # doctest: +SKIP
"""

from .attnlrp import AttnLRP
from .canonizers import Add, Canonizer, MergeBatchNorm, NoInplace, ResidualBlocks, canonized
from .composites import (
    Composite,
    EpsilonAlpha2Beta1,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    get_composite,
)
from .engine import check_rules, lrp_rules
from .method import LRP
from .rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    Rule,
    WSquare,
    ZBox,
    ZPlus,
    stabilize,
)
from .transformer import attnlrp_rules, check_transformer

__all__ = [
    "LRP",
    "Add",
    "AlphaBeta",
    "AttnLRP",
    "Canonizer",
    "Composite",
    "Epsilon",
    "EpsilonAlpha2Beta1",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "Flat",
    "Gamma",
    "MergeBatchNorm",
    "NoInplace",
    "Norm",
    "Pass",
    "ResidualBlocks",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "attnlrp_rules",
    "canonized",
    "check_rules",
    "check_transformer",
    "get_composite",
    "lrp_rules",
    "stabilize",
]
