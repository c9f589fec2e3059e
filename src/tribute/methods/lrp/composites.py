"""Composites: which rule each module gets, and which canonizers prepare the model.

A :class:`Composite` holds an ordered ``layer_map`` (module types -> rule; the first match
wins), an optional ``first_map`` for the layer that reads the input, and canonizers. The
first layer is the first module matching ``first_map`` that the forward pass *calls* (decided
per forward pass by :func:`~.engine.lrp_rules`), not the first one declared: a model that
declares its head before its convolutions still gets the flat / z^B rule on the convolution
that reads the input. The built-in composites follow the
recommendations of Montavon et al. (2019) and Kohlbrenner et al. (2020), with the layer maps
of Zennit (Anders et al. 2021): elementwise activations pass relevance through, average
pooling and :class:`~.canonizers.Add` use the proportional :class:`~.rules.Norm` rule, max
pooling, flattening and dropout use their ordinary gradient (winner-take-all for max pooling).

Add a rule for your own layer type with ``composite.with_rules({MyLayer: Epsilon()})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...errors import InputError
from .canonizers import DEFAULT_CANONIZERS, Add, Canonizer
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, Rule, ZBox, ZPlus

__all__ = [
    "ACTIVATIONS",
    "COMPOSITE_NAMES",
    "GRADIENT_MODULES",
    "Composite",
    "EpsilonAlpha2Beta1",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "get_composite",
]

LayerMap = Sequence[tuple[type[nn.Module] | tuple[type[nn.Module], ...], Rule]]

CONV: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Softplus, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Hardshrink,
    nn.LogSigmoid, nn.Softsign, nn.Softshrink, nn.Tanhshrink, nn.Threshold, nn.RReLU,
)
AVGPOOL: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
#: Modules whose ordinary gradient is their LRP rule (routing / reshaping / identity).
GRADIENT_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.ZeroPad1d, nn.ZeroPad2d,
    nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
)


def _base_map(stabilizer: float) -> list[tuple[Any, Rule]]:
    return [(ACTIVATIONS, Pass()), (Add, Norm(stabilizer)), (AVGPOOL, Norm(stabilizer))]


class Composite:
    """Rules by module type, a special first-layer map, and canonizers.

    Args:
        layer_map: ``[(types, rule), ...]``; the first entry whose types match a module wins.
        first_map: like ``layer_map``, used for the first module the forward pass calls that
            any of its types match (the layer reading the input); every other module gets
            its ``layer_map`` rule. default=().
        canonizers: applied before the rules, undone afterwards.
            default=(NoInplace, MergeBatchNorm, ResidualBlocks).
        name: a label for reports. default="custom".
    """

    def __init__(self, layer_map: LayerMap, first_map: LayerMap = (),
                 canonizers: Sequence[Canonizer] = DEFAULT_CANONIZERS, name: str = "custom") -> None:
        for entry in (*layer_map, *first_map):
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], Rule)):
                raise InputError(f"composite map entry {entry!r} must be a (module type(s), Rule) pair.")
        self.layer_map = list(layer_map)
        self.first_map = list(first_map)
        self.canonizers = tuple(canonizers)
        self.name = name

    def with_rules(self, rules: dict[type[nn.Module], Rule]) -> Composite:
        """A copy whose ``layer_map`` starts with ``rules`` (they take precedence)."""
        return Composite([*rules.items(), *self.layer_map], self.first_map, self.canonizers, self.name)

    def layer_rule(self, module: nn.Module) -> Rule | None:
        """``module``'s rule from ``layer_map`` (None: no entry matches)."""
        return next((r for t, r in self.layer_map if isinstance(module, t)), None)

    def first_rule(self, module: nn.Module) -> Rule | None:
        """``module``'s rule from ``first_map`` if it reads the input (None: no entry matches)."""
        return next((r for t, r in self.first_map if isinstance(module, t)), None)

    def rules(self, model: nn.Module) -> dict[nn.Module, tuple[str, Rule]]:
        """``{module: (path, rule)}`` for every module of ``model`` that gets a rule.

        The ``first_map`` rule goes to the first matching module in ``named_modules()``
        order here; :func:`~.engine.lrp_rules` moves it to the first matching module the
        forward pass calls when the two differ.
        """
        out: dict[nn.Module, tuple[str, Rule]] = {}
        first_done = not self.first_map
        for path, mod in model.named_modules():
            if mod in out:
                continue
            if not first_done:
                hit = self.first_rule(mod)
                if hit is not None:
                    out[mod] = (path, hit)
                    first_done = True
                    continue
            rule = self.layer_rule(mod)
            if rule is not None:
                out[mod] = (path, rule)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class EpsilonPlus(Composite):
    """z+ for convolutions, epsilon for Linear layers (Montavon et al. 2019).

    Args:
        epsilon: of the epsilon rule. default=1e-6.
        stabilizer: of the other rules. default=1e-6.
    """

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6,
                 canonizers: Sequence[Canonizer] = DEFAULT_CANONIZERS) -> None:
        super().__init__([*_base_map(stabilizer), (CONV, ZPlus(stabilizer)), (nn.Linear, Epsilon(epsilon))],
                         canonizers=canonizers, name="epsilon_plus")


class EpsilonPlusFlat(Composite):
    """Flat for the first Linear/Conv layer, z+ for other convolutions, epsilon for Linear layers.

    The composite Kohlbrenner et al. (2020), "Towards Best Practice in Explaining Neural
    Network Decisions with LRP", recommend for VGG-like networks.

    Args:
        epsilon: of the epsilon rule. default=1e-6.
        stabilizer: of the other rules. default=1e-6.
    """

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6,
                 canonizers: Sequence[Canonizer] = DEFAULT_CANONIZERS) -> None:
        super().__init__([*_base_map(stabilizer), (CONV, ZPlus(stabilizer)), (nn.Linear, Epsilon(epsilon))],
                         [((*CONV, nn.Linear), Flat(stabilizer))], canonizers=canonizers,
                         name="epsilon_plus_flat")


class EpsilonGammaBox(Composite):
    """z^B for the first convolution, gamma for other convolutions, epsilon for Linear layers.

    Montavon et al. (2019), Sec. 10.2.

    Args:
        low: lowest input value for z^B (number or tensor broadcastable to the input); None:
            each sample's own minimum. default=None.
        high: highest input value; None: each sample's own maximum. default=None.
        epsilon: of the epsilon rule. default=1e-6.
        gamma: of the gamma rule. default=0.25.
        stabilizer: of the other rules. default=1e-6.
    """

    def __init__(self, low: float | torch.Tensor | None = None, high: float | torch.Tensor | None = None,
                 epsilon: float = 1e-6, gamma: float = 0.25, stabilizer: float = 1e-6,
                 canonizers: Sequence[Canonizer] = DEFAULT_CANONIZERS) -> None:
        super().__init__([*_base_map(stabilizer), (CONV, Gamma(gamma, stabilizer)), (nn.Linear, Epsilon(epsilon))],
                         [(CONV, ZBox(low, high, stabilizer))], canonizers=canonizers,
                         name="epsilon_gamma_box")


class EpsilonAlpha2Beta1(Composite):
    """alpha=2, beta=1 for convolutions, epsilon for Linear layers (Bach et al. 2015).

    Args:
        epsilon: of the epsilon rule. default=1e-6.
        stabilizer: of the other rules. default=1e-6.
    """

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6,
                 canonizers: Sequence[Canonizer] = DEFAULT_CANONIZERS) -> None:
        super().__init__([*_base_map(stabilizer), (CONV, AlphaBeta(2.0, 1.0, stabilizer)),
                          (nn.Linear, Epsilon(epsilon))], canonizers=canonizers, name="epsilon_alpha2_beta1")


_NAMED: dict[str, type[Composite]] = {
    "epsilon_plus": EpsilonPlus, "epsilon_plus_flat": EpsilonPlusFlat,
    "epsilon_gamma_box": EpsilonGammaBox, "epsilon_alpha2_beta1": EpsilonAlpha2Beta1,
}
#: The composites :func:`get_composite` knows by name (case and underscores ignored, so the
#: class names work too).
COMPOSITE_NAMES: tuple[str, ...] = tuple(_NAMED)


def get_composite(composite: str | Composite, **kwargs: Any) -> Composite:
    """A :class:`Composite` from a name (``"epsilon_plus_flat"``, ``"EpsilonPlusFlat"``, ...: case
    and underscores ignored) or itself."""
    if isinstance(composite, Composite):
        if kwargs:
            raise InputError(f"composite options {sorted(kwargs)} apply to a composite given by name; "
                             "pass them to the composite object instead.")
        return composite
    if isinstance(composite, str):
        folded = {n.replace("_", ""): n for n in _NAMED}  # EpsilonPlusFlat, epsilon_plus_flat, ...
        key = folded.get(composite.strip().lower().replace("_", ""))
        if key is not None:
            return _NAMED[key](**kwargs)
    raise InputError(
        f"composite={composite!r} is not a known composite; use one of {sorted(_NAMED)} or a "
        "tribute.methods.lrp.Composite object."
    )
