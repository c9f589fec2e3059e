"""The registered ``lrp`` method: layer-wise relevance propagation through the game's gradient path."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ...attribution import Attribution
from ...errors import InputError, UnsupportedModelError, user_stacklevel
from ...games.base import Game
from ...params import NONE, Constraint, InstanceOf, Interval, Options, declare
from ..base import Cost, Method, Tags, coalition_cost, register
from ..gradients_basic import feature_game, output_transform
from .composites import COMPOSITE_NAMES, Composite, get_composite
from .engine import lrp_rules
from .rules import Flat, Gamma, Rule, ZBox, bound_text
from .unseen import UnseenOps

__all__ = ["LRP"]


def _warn_flat_dense(rules: dict[nn.Module, tuple[str, Rule]]) -> None:
    """Warn when the flat rule sits on a dense first layer: a ``nn.Linear`` connects every unit
    to every input, so flat (all weights one, inputs ignored) hands every input feature the
    same relevance within a sample (per leading position for higher-dimensional inputs) --
    the default composite on a tabular MLP returned one constant per sample, silently."""
    dense = [path for mod, (path, rule) in rules.items()
             if isinstance(rule, Flat) and isinstance(mod, nn.Linear)]
    if dense:
        warnings.warn(
            f"lrp: the flat rule on the first layer {dense[0]!r} (nn.Linear) spreads each unit's "
            "relevance evenly over all of its inputs, so every input feature gets the same "
            "relevance; for models whose first layer is dense (tabular MLPs) pass "
            "composite='epsilon_plus' (or 'epsilon_alpha2_beta1').",
            UserWarning, stacklevel=user_stacklevel())


def _check_same_function(f_canon: torch.Tensor, f_model: torch.Tensor, dtype: torch.dtype,
                         composite: Composite) -> None:
    """Refuse when the canonized model's output differs from the model's own.

    The canonizers rewrite the model (BatchNorm folded into the layer before it; a block with
    torchvision's ``conv1, bn1, conv2, bn2, relu, downsample`` attributes run as torchvision's
    ``BasicBlock``/``Bottleneck``); a block that only shares the attribute names but computes
    something else was explained as the other function, silently (audit aud31g).
    """
    f_canon, f_model = f_canon.double().cpu(), f_model.double().cpu()
    rtol = {torch.float64: 1e-6, torch.float32: 1e-3}.get(dtype, 5e-2)  # 16-bit: ~3 digits
    scale = max(float(f_model.abs().max()), 1e-12) if f_model.numel() else 1.0
    err = float((f_canon - f_model).abs().max()) if f_model.numel() else 0.0
    if not err <= rtol * scale:  # NaN-safe
        names = [type(c).__name__ for c in composite.canonizers]
        raise UnsupportedModelError(
            f"lrp: the canonized model (canonizers {names}) computes another function than the "
            f"model: explained output {f_canon.flatten()[:3].tolist()} vs the model's "
            f"{f_model.flatten()[:3].tolist()} (max difference {err:.3g}). Usually a block has "
            "the attributes of a torchvision ResNet block (conv1, bn1, conv2, bn2, relu, "
            "downsample) but another forward, which ResidualBlocks replaces by torchvision's. "
            "Use a Composite with canonizers=(NoInplace(), MergeBatchNorm()) and a "
            "tribute.methods.lrp.Add module for the skip addition, or rename the attributes. "
            "Or an in-place activation (inplace=True) overwrites a tensor that forward reads "
            "again ('l1(relu_(h)) + h' adds relu(h)), which NoInplace turns off: write that "
            "value explicitly ('r = relu(h); l1(r) + r') with inplace=False. "
            "Or a BatchNorm folded into the Linear/Conv before it normalises another axis than "
            "that layer's output channels (a BatchNorm1d after an nn.Linear on (batch, length, "
            "features) inputs normalises axis 1, the Linear's features are the last axis): "
            "pass a Composite without MergeBatchNorm, or transpose around the BatchNorm."
        )


class _NumberList(Constraint):
    """A list or tuple of numbers, possibly nested (``[-1.0, -1.0]``, ``[[[0.0]], [[0.5]]]``):
    what ``--param low=[...]`` gives, since JSON has no tensors. Ragged nesting, bools, NaN
    and infinities are refused."""

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)) or not value:
            return False
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):  # ragged
            return False
        return arr.dtype.kind in "iuf" and bool(np.isfinite(arr).all())

    def describe(self) -> str:
        return "a list of numbers (nested lists for more axes)"


#: What ``low``/``high`` accept besides None (the shape is checked against the first layer's
#: input, where :class:`~tribute.methods.lrp.rules.ZBox` turns the value into a tensor).
_BOUND = (InstanceOf((numbers.Real, torch.Tensor, np.ndarray),
                     "a number or a tensor broadcastable to the input"), _NumberList())


@register
class LRP(Method):
    """Layer-wise relevance propagation with rules chosen per layer by a composite.

    The explained output ``f(x)`` (a logit or raw output) is redistributed layer by layer
    down to the input by the rules of ``composite`` (see :mod:`tribute.methods.lrp`); the
    model is canonized first (BatchNorm folded into the preceding layer, ResNet skip
    additions made explicit, in-place activations turned off) and restored afterwards.
    ``Attribution.gap`` is the conservation gap ``sum_i R_i - f(x)`` per sample and target
    (non-zero where biases or stabilisers absorb relevance, or for the flat/w^2 first layers
    which ignore the input values). The canonized model's output is checked against the
    model's own (the reference pass): a canonizer that changed the function (a block that only
    looks like a torchvision ResNet block) is refused with :class:`UnsupportedModelError`.

    Args:
        composite: ``"epsilon_plus_flat"``, ``"epsilon_plus"``, ``"epsilon_gamma_box"``,
            ``"epsilon_alpha2_beta1"`` or a :class:`~tribute.methods.lrp.Composite`.
            default="epsilon_plus_flat" (its flat first layer gives every input of a dense
            first ``nn.Linear`` the same relevance -- a tabular MLP's features all tie, with a
            ``UserWarning``; use ``"epsilon_plus"`` there).
        epsilon: epsilon of the epsilon rule (named composites only). default=1e-6.
        gamma: gamma of the gamma rule (``"epsilon_gamma_box"`` only). default=0.25.
        low: lowest input value for the z^B first layer (``"epsilon_gamma_box"`` only): a
            number, a tensor or array broadcastable to the input, or a (nested) list of numbers
            read as one (``[-1.0, -1.0]`` for two features); None: each sample's own minimum.
            default=None.
        high: highest input value, as ``low``; None: each sample's own maximum. default=None.

    Cost: one forward and one modified backward pass per input.

    References: Bach et al. (2015), "On Pixel-Wise Explanations for Non-Linear Classifier
    Decisions by Layer-Wise Relevance Propagation"; Montavon et al. (2019), "Layer-Wise
    Relevance Propagation: An Overview".
    """

    name = "lrp"
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, has_gap=True,
                games=("feature",), model_specific=True)
    paper = "Bach et al. (2015), On Pixel-Wise Explanations ... by Layer-Wise Relevance Propagation"
    constraints = declare({
        "composite": (Options(COMPOSITE_NAMES, loose=True),
                      InstanceOf((Composite,), "a tribute.methods.lrp.Composite")),
        "epsilon": Interval(float, 0.0, math.inf, closed="left"),
        "gamma": Interval(float, 0.0, math.inf, closed="left"),
        "low": (NONE, *_BOUND),
        "high": (NONE, *_BOUND),
    })

    def __init__(self, composite: str | Composite = "epsilon_plus_flat", epsilon: float = 1e-6,
                 gamma: float = 0.25, low: Any = None, high: Any = None) -> None:
        self.composite = composite
        self.epsilon = epsilon
        self.gamma = gamma
        self.low = low
        self.high = high

    def _composite(self) -> Composite:
        if isinstance(self.composite, Composite):
            return self.composite
        kw: dict[str, Any] = {"epsilon": self.epsilon}
        name = str(self.composite).strip().lower().replace("_", "")
        if name == "epsilongammabox":
            kw.update(gamma=self.gamma, low=self.low, high=self.high)
        elif self.low is not None or self.high is not None:
            raise InputError(
                f"method 'lrp': low/high (low={self.low!r}, high={self.high!r}) apply to "
                f"composite='epsilon_gamma_box' only, not composite={self.composite!r}; leave them "
                "None or use composite='epsilon_gamma_box'.")
        elif self.gamma != type(self).defaults()["gamma"]:
            # a gamma of another composite was ignored, silently (audit aud28)
            raise InputError(
                f"method 'lrp': gamma={self.gamma!r} applies to composite='epsilon_gamma_box' "
                f"only, not composite={self.composite!r}; leave it at its default or use "
                "composite='epsilon_gamma_box'.")
        return get_composite(self.composite, **kw)

    def _check_options_apply(self, composite: Composite, root: nn.Module) -> None:
        """Refuse ``low``/``high`` or a non-default ``gamma`` that no layer of ``root`` reads:
        ``"epsilon_gamma_box"`` gives z^B to the first convolution and gamma to the other
        convolutions, so on a model without them (an MLP) the values given were ignored and
        every layer got the epsilon rule, silently (aud43g)."""
        if isinstance(self.composite, Composite):
            return
        used = [rule for _, rule in composite.rules(root).values()]
        unread = []
        if (self.low is not None or self.high is not None) and not any(isinstance(r, ZBox) for r in used):
            unread.append(f"low={bound_text(self.low)}/high={bound_text(self.high)} (the z^B rule of the first "
                          "convolution)")
        if self.gamma != type(self).defaults()["gamma"] and not any(isinstance(r, Gamma) for r in used):
            unread.append(f"gamma={self.gamma!r} (the gamma rule of the convolutions after the first)")
        if unread:
            raise InputError(
                f"method 'lrp': {' and '.join(unread)} of composite={self.composite!r} apply to no "
                "layer of this model (it has no such Conv1d/2d/3d layer: its Linear layers get the "
                "epsilon rule), so they would be ignored. Leave them at their defaults, or pass a "
                "tribute.methods.lrp.Composite that gives the rule to the layer meant, e.g. "
                "first_map=[(nn.Linear, ZBox(low, high))] for a dense first layer.")

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = feature_game(game, self.name)
        root = fg.model.module
        if root is None:
            raise UnsupportedModelError("lrp needs a torch.nn.Module (it installs rules on the model's layers); got a plain callable.")
        if output_transform(fg) is not None or fg.target.fn is not None:
            raise InputError(
                f"lrp: output={fg.target.output!r} (model_output={fg.target.model_output!r}; or a "
                "target function) transforms the model output "
                "outside the model, which the rules cannot see; use output='raw' (or 'logit' "
                "of a model that returns logits: LRP explains the logit, so drop a final "
                "Sigmoid/Softmax) and an integer target."
            )
        composite = self._composite()
        self._check_options_apply(composite, root)
        current: list[torch.Tensor | None] = [None]  # sample ids of the chunk being run

        def points(xs: tuple[torch.Tensor, ...], b: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, ...]:
            current[0] = b
            return xs

        with lrp_rules(root, composite, rows=lambda: current[0]) as rules, UnseenOps(root, set(rules)) as unseen:
            vals, acc = fg.input_gradients(1, points)
        _warn_flat_dense(rules)
        if unseen.counts:
            warnings.warn(
                f"lrp: the model's own forward code applies functional operations to "
                f"input-dependent tensors ({unseen.message()} per forward pass, outside torch.nn "
                "modules); the rules do not see them and relevance goes through them as a plain "
                "gradient: a residual 'a + b' gives both summands the full relevance, negations "
                "('-x', '1 - x') flip its sign, scalings "
                "('x / 255'), functional activations and x.sum()/x.mean() change it, so the "
                "relevance is not what the composite defines (see Attribution.gap). Use modules "
                "instead: tribute.methods.lrp.Add for sums, nn.Tanh()/nn.GELU() for activations, "
                "nn.AdaptiveAvgPool2d for pooling, and do input scaling outside the model.",
                UserWarning, stacklevel=user_stacklevel())
        extra_unseen = dict(unseen.counts)
        f_x = vals[:, 0, :]  # batch x targets
        _check_same_function(f_x, fg.full(), fg.compute_dtype, composite)
        # rules are linear in the output relevance: f(x) == 0 gives none anywhere (the pass
        # ran with relevance 1, whose 1 / z is infinite at z == f(x) == 0 under LRP-0: NaN, aud45g)
        rel = torch.where(f_x[:, :, None] == 0, torch.zeros_like(acc[1]), acc[1] * f_x[:, :, None])
        gap = rel.sum(-1) - f_x
        values = fg.elements_to_players(rel)
        extra: dict[str, Any] = {"composite": composite.name, "explained": f_x.numpy(),
                                 "functional_ops": extra_unseen}
        params = {**self.get_params(), "composite": composite.name}
        return fg.attribution(values, self.name, params, gap=gap, extra=extra)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One forward and one (rule-modified) backward pass per input."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one relevance (gradient) pass per input", background=False)
