"""Guided backpropagation and deconvolution: modified gradients through ReLU modules.

Both replace the backward pass of every ``nn.ReLU`` module and keep all other layers'
gradients:

- guided backpropagation (Springenberg et al. 2015) passes ``relu(g) * 1[x > 0]``: only
  positive gradients, only where the unit was active;
- deconvolution (Zeiler & Fergus 2014) passes ``relu(g)``: positive gradients, ignoring the
  forward mask.

The attribution is the modified gradient of the explained output w.r.t. the input (as in
Captum's ``GuidedBackprop`` and ``Deconvolution``). Implemented with forward hooks that
return a tensor of the same value with the modified backward, so a ReLU module used several
times in one forward pass is handled per call; ``ReLU(inplace=True)`` runs out of place for
the duration and its value is written back into its input, so a model that reads that tensor
again sees (and backpropagates through) the activated value, as without hooks. ``F.relu``
calls inside ``forward`` are not seen (they keep their ordinary gradient), as in Captum; a
``UserWarning`` says so when the forward pass makes such calls, or when the model has no
``nn.ReLU`` module (the result is then the plain gradient, i.e. saliency), and
``extra["n_functional_relu_calls"]`` counts them.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..attribution import Attribution
from ..errors import UnsupportedModelError, user_stacklevel
from ..games.base import Game
from .base import Cost, Method, Tags, coalition_cost, register
from .gradients_basic import feature_game

__all__ = ["Deconvolution", "GuidedBackprop"]


class _ModifiedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, guided: bool) -> torch.Tensor:
        ctx.guided = guided
        if guided:
            # the mask, not y: y stays alive only through the copy returned (rev43g: saving y
            # next to the copy doubled the memory the ReLU outputs take)
            ctx.save_for_backward(y > 0)
        return y.clone()  # not a view: the model may modify the output in place (h.add_(1))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        out = g.clamp(min=0)
        if ctx.guided:
            (positive,) = ctx.saved_tensors
            out = out * positive.to(out.dtype)
        return out, None, None


def _modified_relu_gradients(method: Method, game: Game, guided: bool) -> Attribution:
    fg = feature_game(game, method.name)
    root = fg.model.module
    if root is None:
        raise UnsupportedModelError(
            f"{method.name} needs a torch.nn.Module (it hooks the model's ReLU modules); got a plain callable."
        )

    calls = _ReluCalls()

    relus = [m for m in root.modules() if isinstance(m, nn.ReLU)]
    # In-place ReLUs run out of place (the modified backward needs the input's own history),
    # and their value is written back into their input: a model that reads that tensor again
    # (a pre-activation skip ``l1(relu_(h)) + l2(h)`` reads relu(h) twice) must see the
    # activated value, and get the modified backward through it, as without hooks. Turning
    # in-place off alone explained another function (l2 of the raw h), silently (aud43g).
    # Other modules keep their in-place flag: their ordinary gradient is the rule.
    inplace = {m for m in relus if m.inplace}

    def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        calls.modules += 1
        x = args[0]
        if not isinstance(x, torch.Tensor):
            return None
        y = _ModifiedRelu.apply(x, out.detach(), guided) if x.requires_grad else out  # type: ignore[no-untyped-call]
        if mod in inplace:
            x.copy_(y)
            return x
        return y if x.requires_grad else None

    for m in inplace:
        m.inplace = False
    try:
        handles = [m.register_forward_hook(hook) for m in relus]
        try:
            with calls:
                _, acc = fg.input_gradients(1, lambda xs, b, k: xs)
        finally:
            for h in handles:
                h.remove()
    finally:
        for m in inplace:
            m.inplace = True
    functional = max(calls.functional - calls.modules, 0)
    if functional or not relus:
        seen = (f"its forward pass called a functional ReLU (torch.relu / F.relu / "
                f"Tensor.relu, or a clamp / maximum at 0 from below) {functional} time(s) outside nn.ReLU "
                "modules" if functional else
                "the model has no nn.ReLU module")
        warnings.warn(
            f"{method.name}: {seen}; only nn.ReLU modules get the modified backward pass (as in "
            "Captum), so the result is the plain gradient there "
            f"{'(identical to saliency)' if not relus else ''}. Use nn.ReLU modules in the "
            "model for the rule to apply.", UserWarning, stacklevel=user_stacklevel())
    extra = {"n_relu_modules": len(relus), "n_functional_relu_calls": functional}
    return fg.attribution(fg.elements_to_players(acc[1]), method.name, method.get_params(), extra=extra)


class _ReluCalls(TorchFunctionMode):
    """Counts ReLU calls made through torch functions during a forward pass (an ``nn.ReLU``
    module's forward is one of them: the caller subtracts the module calls it hooked)."""

    _RELUS = frozenset({torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu,
                        torch.Tensor.relu_})
    #: ReLU spelled as a clamp at 0 from below (``h.clamp(min=0)``, ``torch.clamp_min(h, 0)``)
    #: or a threshold at 0 with value 0: the same function, missed until audit aud47g.
    _CLAMPS = frozenset({torch.clamp, torch.clamp_, torch.clip, torch.clip_, torch.Tensor.clamp,
                         torch.Tensor.clamp_, torch.Tensor.clip, torch.Tensor.clip_, torch.clamp_min,
                         torch.clamp_min_, torch.Tensor.clamp_min, torch.Tensor.clamp_min_})
    _THRESHOLDS = frozenset({F.threshold, getattr(F, "threshold_", F.threshold), torch.threshold})

    def __init__(self) -> None:
        super().__init__()
        self.functional = 0
        self.modules = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if func in self._RELUS or _is_zero_clamp(func, args, kwargs or {}, self._CLAMPS,
                                                 self._THRESHOLDS):
            self.functional += 1
        return func(*args, **(kwargs or {}))


def _arg(args: Any, kwargs: dict[str, Any], pos: int, name: str) -> Any:
    return kwargs[name] if name in kwargs else (args[pos] if len(args) > pos else None)


def _is_zero(v: Any) -> bool:
    """A constant 0: a number (numpy's included), or a tensor of zeros that does not depend on
    the input (``min=torch.zeros_like(h)``: rev47g, any size, not only one element)."""
    if isinstance(v, torch.Tensor):
        return not v.requires_grad and v.numel() >= 1 and bool((v == 0).all())
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == 0


def _no_max(v: Any) -> bool:
    """No upper bound: ``max`` left out, ``None`` or ``+inf`` (rev47g: ``clamp(0, inf)``)."""
    return v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool) and v == math.inf)


#: ``torch.maximum(h, zeros)`` / ``torch.max(h, zeros)`` / ``fmax``: ReLU as an elementwise maximum
#: with a tensor of zeros; ``F.hardtanh(h, 0, inf)``: ReLU as an unbounded hardtanh (rev47g: both
#: spellings gave the plain gradient with no warning). ``torch.max(h, dim)`` is a reduction: its
#: second argument is no tensor, so it is not counted.
_MAXIMA = frozenset({torch.maximum, torch.Tensor.maximum, torch.max, torch.Tensor.max, torch.fmax,
                     torch.Tensor.fmax})
_HARDTANHS = frozenset({F.hardtanh, getattr(F, "hardtanh_", F.hardtanh)})


def _is_zero_clamp(func: Any, args: Any, kwargs: dict[str, Any], clamps: frozenset[Any],
                   thresholds: frozenset[Any]) -> bool:
    """``func(*args)`` is ``relu`` of an input-dependent tensor: a clamp (or hardtanh) with
    ``min == 0`` and no ``max``, a maximum with zeros, or a threshold at 0 that writes 0 (a clamp
    of a constant is no activation)."""
    if func in _MAXIMA:
        a, b = args[0] if args else kwargs.get("input"), _arg(args, kwargs, 1, "other")
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False  # torch.max(h, dim): a reduction
        return (a.requires_grad and _is_zero(b)) or (b.requires_grad and _is_zero(a))
    x = args[0] if args else kwargs.get("input")
    if not (isinstance(x, torch.Tensor) and x.requires_grad):
        return False
    if func in clamps:
        return _is_zero(_arg(args, kwargs, 1, "min")) and _no_max(_arg(args, kwargs, 2, "max"))
    if func in _HARDTANHS:
        return _is_zero(_arg(args, kwargs, 1, "min_val")) and _no_max(_arg(args, kwargs, 2, "max_val"))
    if func in thresholds:
        return _is_zero(_arg(args, kwargs, 1, "threshold")) and _is_zero(_arg(args, kwargs, 2, "value"))
    return False


@register
class GuidedBackprop(Method):
    """Guided backpropagation: the gradient with ReLU backward ``relu(g) * 1[x > 0]``.

    Reference: Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for
    Simplicity: The All Convolutional Net".
    """

    name = "guided_backprop"
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, games=("feature",),
                dense_output=True, model_specific=True)
    paper = "Springenberg et al. (2015), Striving for Simplicity: The All Convolutional Net"

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        return _modified_relu_gradients(self, game, guided=True)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One (modified) input-gradient pass per input."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one gradient pass per input", background=False)


@register
class Deconvolution(Method):
    """Deconvolution (DeconvNet): the gradient with ReLU backward ``relu(g)`` (no forward mask).

    Reference: Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks".
    """

    name = "deconvolution"
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, games=("feature",),
                dense_output=True, model_specific=True)
    paper = "Zeiler & Fergus (2014), Visualizing and Understanding Convolutional Networks"

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        return _modified_relu_gradients(self, game, guided=False)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One (modified) input-gradient pass per input."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one gradient pass per input", background=False)
