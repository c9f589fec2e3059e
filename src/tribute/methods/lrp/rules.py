"""LRP rules as modified gradients of Linear/Conv layers.

A rule maps the relevance ``R_out`` arriving at a layer's output to the relevance of its
input. Every rule here is linear in ``R_out`` and has the form

    z_k   = sum_i m_ik(x, W)                 (a modified forward pass)
    R_in  = sum_j  a_j(x) * J_j^T (R_out / stab(z_j))

with ``J_j^T`` the transpose (vector-Jacobian product) of an affine map with modified
weights. The vector-Jacobian products are closed-form (``g @ W`` for Linear and the
transposed convolution for Conv), so the only extra cost over a plain backward pass is the
modified forward passes the rule needs for its denominators.

``stab(z) = z + eps * sign(z)`` with ``sign(0) = +1`` (the convention of Zennit), so that
the epsilon rule absorbs relevance for small ``|z|`` and no denominator is zero.

References:
    Bach et al. (2015), "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by
    Layer-Wise Relevance Propagation", PLoS ONE.
    Montavon et al. (2017), "Explaining nonlinear classification decisions with deep Taylor
    decomposition", Pattern Recognition (z+, w^2, z^B).
    Montavon et al. (2019), "Layer-Wise Relevance Propagation: An Overview" (epsilon, gamma).
    Lapuschkin et al. (2019), "Unmasking Clever Hans predictors" (flat).
"""

from __future__ import annotations

import os
import sys
import warnings
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import grad as nn_grad

from ...errors import InputError, UnsupportedModelError

__all__ = [
    "AlphaBeta", "Epsilon", "Flat", "Gamma", "Norm", "Pass", "Rule", "WSquare", "ZBox", "ZPlus",
    "bound_text", "check_affine_call", "replaces_forward", "stabilize",
]

_CONV_INPUT_GRAD = {1: nn_grad.conv1d_input, 2: nn_grad.conv2d_input, 3: nn_grad.conv3d_input}


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + eps * sign(z)`` with ``sign(0) = +1``: a denominator that is never zero."""
    return torch.where(z >= 0, z + eps, z - eps)  # NaN stays NaN (NaN >= 0 is False)


# ----------------------------------------------------------------------------- affine maps
def _check_affine(module: nn.Module, rule: str) -> None:
    if isinstance(module, nn.Linear):
        return
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.padding_mode != "zeros":
            raise UnsupportedModelError(
                f"lrp: rule {rule} supports zero-padded convolutions; this one has "
                f"padding_mode={module.padding_mode!r}."
            )
        return
    raise UnsupportedModelError(
        f"lrp: rule {rule} applies to Linear and Conv1d/2d/3d layers, not {type(module).__name__}."
    )


_AFFINE_BASES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def replaces_forward(module: nn.Module) -> bool:
    """Whether ``module``'s class is a Linear/Conv subclass with its own ``forward`` (or
    ``_conv_forward``): it may compute something other than the affine map of its ``weight``
    and ``bias`` (a LoRA update, weight standardisation, "same" padding), which the weight
    rules read."""
    base = next((b for b in _AFFINE_BASES if isinstance(module, b)), None)
    if base is None:
        return False
    cls: Any = type(module)
    if cls.forward is not base.forward:
        return True
    return base is not nn.Linear and cls._conv_forward is not getattr(base, "_conv_forward", None)


def check_affine_call(module: nn.Module, x: torch.Tensor, z: torch.Tensor, where: str, rule: Rule) -> None:
    """Refuse a call whose output ``z`` is not the affine map of the module's ``weight`` and
    ``bias`` applied to its input ``x`` (the map every weight rule redistributes through).

    Raises:
        UnsupportedModelError: naming the module, the difference seen and the fix.
    """
    base = next(b for b in _AFFINE_BASES if isinstance(module, b))
    w, b = _params(module)
    err: float | None = None
    try:
        ref = affine(module, x, w, b)
    except (RuntimeError, KeyError, ValueError):
        ref = None
    if ref is not None and ref.shape == z.shape:
        rtol = {torch.float64: 1e-6, torch.float32: 1e-3}.get(z.dtype, 5e-2)  # as the model check
        scale = max(float(z.abs().max()), 1e-12) if z.numel() else 1.0
        err = float((ref - z).abs().max()) if z.numel() else 0.0
        if err <= rtol * scale:  # NaN-safe: NaN fails
            return
        if _rounding_only(module, x, w, b, ref, z):
            return
    seen = (f"output shape {tuple(z.shape)} vs {None if ref is None else tuple(ref.shape)}" if err is None
            else f"max difference {err:.3g} for outputs up to {float(z.abs().max()):.3g}")
    raise UnsupportedModelError(
        f"lrp: module {where} ({type(module).__name__}) subclasses nn.{base.__name__} with its own "
        f"forward, which computes another function than nn.{base.__name__}'s affine map of its "
        f".weight and .bias ({seen}); rule {type(rule).__name__} reads only .weight and .bias, so "
        "the relevance would be wrong. Write the layer as a plain "
        f"nn.{base.__name__} (merge e.g. a LoRA update or a weight standardisation into .weight, "
        "and padding into a padding layer before it), or as separate modules (with "
        "tribute.methods.lrp.Add for a sum), or use a gradient method such as "
        "'integrated_gradients'."
    )


def _rounding_only(module: nn.Module, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                   ref: torch.Tensor, z: torch.Tensor) -> bool:
    """Whether ``z`` differs from the affine map ``ref`` by no more than another summation
    order's rounding: ``8 sqrt(k) eps`` times the map of the absolute values (``|x| |W| + |b|``,
    ``k`` terms per output). An output much smaller than its terms (inputs far from zero, e.g.
    unscaled features, and a bias that cancels them) carries a rounding error that ``rtol``
    times the largest output does not cover: a subclass summing in its own order was refused
    (rev40c: 16384 inputs near 1000, outputs up to 1.1, a difference of 0.0024)."""
    if not z.dtype.is_floating_point or not z.numel():
        return False
    with torch.no_grad():
        bound = affine(module, x.abs(), w.detach().abs(), None if b is None else b.detach().abs())
        slack = 8.0 * float(w[0].numel()) ** 0.5 * torch.finfo(z.dtype).eps
        return bool(((ref.detach() - z).abs() <= slack * bound).all())  # NaN fails


def affine(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``module``'s affine map evaluated with the given ``weight`` and ``bias``."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    m: Any = module
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[x.ndim - 2]
    return conv(x, weight, bias, m.stride, m.padding, m.dilation, m.groups)


def affine_vjp(module: nn.Module, x_shape: torch.Size, weight: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``J^T g`` for the linear part of ``module`` with weight ``weight``: ``dx`` of shape ``x_shape``."""
    if isinstance(module, nn.Linear):
        return g @ weight
    m: Any = module
    fn = _CONV_INPUT_GRAD[len(x_shape) - 2]
    out: torch.Tensor = fn(list(x_shape), weight, g, m.stride, m.padding, m.dilation, m.groups)  # type: ignore[no-untyped-call]
    return out


def _params(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    m: Any = module
    return m.weight, m.bias


def _pos(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(min=0)


def _neg(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(max=0)


def _nonnegative(x: torch.Tensor) -> bool:
    """All inputs >= 0 (the usual case after a ReLU): the x- products of the rules vanish."""
    return bool((x.min() >= 0).item()) if x.numel() else True


def _bias_like(module: nn.Module, b: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor | float:
    """A bias vector broadcast over ``z``, or 0: on the last axis for ``nn.Linear`` (whatever
    the leading axes: ``(batch, tokens, features)`` too), on axis 1 (channels) for convolutions."""
    if b is None:
        return 0.0
    if isinstance(module, nn.Linear):
        return b
    return b.view(1, -1, *([1] * (z.ndim - 2)))


def _linear_part(module: nn.Module, z: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``x W`` from the layer's output ``z = x W + b`` (the forward pass already paid for it)."""
    return z if b is None else z - _bias_like(module, b, z)


# ----------------------------------------------------------------------------------- rules
class Rule(ABC):
    """Base class: a rule turns the output relevance of one module call into input relevance.

    Subclasses implement :meth:`relevance`. ``first_layer`` rules (flat, w^2, z^B) are meant
    for the layer that reads the input and are refused on a module called twice per forward.
    """

    first_layer = False
    #: the rule reads the module's ``.weight``/``.bias`` (Linear and Conv layers only)
    reads_weights = False

    def check(self, module: nn.Module) -> None:  # noqa: B027 - optional hook, accepts by default
        """Raise :class:`UnsupportedModelError` if the rule cannot run on ``module``."""

    @abstractmethod
    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Input relevance (shape of ``x``) for output relevance ``r`` (shape of ``z``).

        Args:
            module: the layer.
            x: its input in this call.
            z: its output in this call.
            r: relevance (the incoming gradient) of the output.
            bounds: ``(low, high)`` broadcastable to ``x`` (only :class:`ZBox` uses them).
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def bound_text(value: Any) -> str:
    """A z^B bound for a message: a number (or None) as it is, a tensor/array/list by its shape
    (the one helper of ZBox's checks and of the lrp method's unread-option message, small44)."""
    if value is None or isinstance(value, (int, float)):
        return repr(value)
    if hasattr(value, "shape"):
        return f"<{type(value).__name__} of shape {tuple(value.shape)}>"
    try:
        shape = tuple(torch.as_tensor(value).shape)  # nested lists: their full shape
    except (TypeError, ValueError, RuntimeError):  # ragged
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__} of shape {shape}>"


#: How far (as a fraction of ``high - low``) an input may leave the z^B bounds before a warning:
#: z^B credits move by about 0.7x that fraction (measured on CNNs, rev43g), so rounded bounds
#: (4 decimals of ImageNet's) stay quiet while bounds that miss the data warn.
_BOX_SLACK = 1e-3

_TRIBUTE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _stacklevel_past_torch() -> int:
    """``stacklevel`` pointing at the user's line from inside a forward hook: past tribute's
    frames and torch's module-call frames (``user_stacklevel`` stops at torch's hook call)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_TRIBUTE_DIR) or path.startswith(_TORCH_DIR)):
            break
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def _eps(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InputError(f"{name}={value!r} must be a number >= 0.")
    return float(value)


class Pass(Rule):
    """Pass the relevance through unchanged (elementwise activations, Montavon et al. 2019)."""

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return r


class Norm(Rule):
    """``R_in = x * J^T (R / stab(y))`` for parameter-free linear maps (average pooling, sums).

    Relevance is split in proportion to each input's contribution to the output.

    Args:
        stabilizer: ``eps`` of the denominator. default=1e-6.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = _eps(stabilizer, "stabilizer")

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        s = r / stabilize(z, self.stabilizer)
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(module.forward(xr), xr, s)
        return x * g


class Epsilon(Rule):
    """LRP-epsilon: ``R_i = sum_j x_i w_ij R_j / stab(z_j)`` (Bach et al. 2015); ``epsilon=0``: LRP-0.

    Args:
        epsilon: added to ``|z_j|`` in the denominator. default=1e-6.
    """

    reads_weights = True

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = _eps(epsilon, "epsilon")

    def check(self, module: nn.Module) -> None:
        _check_affine(module, "Epsilon")

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        w, _ = _params(module)
        s = r / stabilize(z, self.epsilon)
        if not self.epsilon:
            # LRP-0: a unit with z == 0 that gets no relevance (a dead unit: its activation is 0)
            # passes none, the epsilon -> 0 limit; 0 / 0 made every input of the sample NaN (aud45g)
            s = torch.where((z == 0) & (r == 0), torch.zeros_like(s), s)
        return x * affine_vjp(module, x.shape, w, s)


class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015): positive contributions weighted by ``alpha``, negative by ``beta``.

    With ``z+ = x+ W+ + x- W- + b+`` and ``z- = x+ W- + x- W+ + b-``::

        R_in = alpha * (x+ W+^T s+ + x- W-^T s+) - beta * (x+ W-^T s- + x- W+^T s-),
        s+ = R / stab(z+), s- = R / stab(z-).

    Args:
        alpha: weight of the positive part. default=2.
        beta: weight of the negative part; ``alpha - beta`` must be 1. default=1.
        stabilizer: ``eps`` of the denominators. default=1e-6.
    """

    reads_weights = True

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6) -> None:
        if not (isinstance(alpha, (int, float)) and isinstance(beta, (int, float))) or alpha < 0 or beta < 0:
            raise InputError(f"alpha={alpha!r} and beta={beta!r} must be numbers >= 0.")
        if abs(alpha - beta - 1.0) > 1e-12:
            raise InputError(f"alpha - beta must be 1 (conservation); got alpha={alpha}, beta={beta}.")
        self.alpha, self.beta = float(alpha), float(beta)
        self.stabilizer = _eps(stabilizer, "stabilizer")

    def check(self, module: nn.Module) -> None:
        _check_affine(module, "AlphaBeta")

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        w, b = _params(module)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        eps = self.stabilizer
        if _nonnegative(x):  # after a ReLU: x- = 0, half the products vanish
            if not self.beta:  # z+: x W+ + b+ >= 0, so stab(.) = . + eps, folded into the bias
                bias = torch.full((w.shape[0],), eps, dtype=z.dtype, device=z.device)  # one per output
                if b is not None:
                    bias = bias + b.clamp(min=0)
                s = r / affine(module, x, wp, bias)
                return self.alpha * (x * affine_vjp(module, x.shape, wp, s))
            zl = _linear_part(module, z, b)
            p = affine(module, x, wp, None)  # x W+, the one extra forward product
            s = r / stabilize(p + _bias_like(module, _pos(b), z), eps)
            out = self.alpha * (x * affine_vjp(module, x.shape, wp, s))
            if self.beta:  # x W- = (x W) - (x W+): no second product
                s = r / stabilize(zl - p + _bias_like(module, _neg(b), z), eps)
                out = out - self.beta * (x * affine_vjp(module, x.shape, wn, s))
            return out
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        z_pos = affine(module, xp, wp, _pos(b)) + affine(module, xn, wn, None)
        s = r / stabilize(z_pos, eps)
        out = self.alpha * (xp * affine_vjp(module, x.shape, wp, s) + xn * affine_vjp(module, x.shape, wn, s))
        if self.beta:
            z_neg = affine(module, xp, wn, _neg(b)) + affine(module, xn, wp, None)
            s = r / stabilize(z_neg, eps)
            out = out - self.beta * (xp * affine_vjp(module, x.shape, wn, s) + xn * affine_vjp(module, x.shape, wp, s))
        return out


class ZPlus(AlphaBeta):
    """LRP-z+ (Montavon et al. 2017): alpha-beta with ``alpha=1, beta=0``.

    Args:
        stabilizer: ``eps`` of the denominator. default=1e-6.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        super().__init__(1.0, 0.0, stabilizer)

    def __repr__(self) -> str:
        return f"ZPlus(stabilizer={self.stabilizer!r})"


class Gamma(Rule):
    """LRP-gamma (Montavon et al. 2019), generalised to signed inputs (Andéol et al. 2021).

    Weights ``W + gamma * W+`` favour positive contributions. For an output with ``z > 0``
    relevance goes through ``z_a = x+ (W + g W+) + x- (W + g W-) + (b + g b+)``; for ``z < 0``
    through ``z_b = x+ (W + g W-) + x- (W + g W+) + (b + g b-)``, each normalised by its own
    stabilised sum. Outputs with ``z == 0`` pass no relevance.

    Args:
        gamma: the weight of the positive part. default=0.25.
        stabilizer: ``eps`` of the denominators. default=1e-6.
    """

    reads_weights = True

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6) -> None:
        self.gamma = _eps(gamma, "gamma")
        self.stabilizer = _eps(stabilizer, "stabilizer")

    def check(self, module: nn.Module) -> None:
        _check_affine(module, "Gamma")

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        w, b = _params(module)
        g = self.gamma
        b_up = None if b is None else b + g * b.clamp(min=0)
        b_dn = None if b is None else b + g * b.clamp(max=0)
        eps = self.stabilizer
        if _nonnegative(x):
            # x- = 0: with zl = x W (the layer's own output minus its bias) and p = x W+,
            # za = zl + g p + b_up and zb = zl + g (zl - p) + b_dn (one extra product), and
            # W_up^T sa + W_dn^T sb = W^T (sa + (1 + g) sb) + g W+^T (sa - sb) (two transposes)
            zl = _linear_part(module, z, b)
            wp = w.clamp(min=0)
            p = affine(module, x, wp, None)
            sa = (z > 0).to(r.dtype) * r / stabilize(zl + g * p + _bias_like(module, b_up, z), eps)
            sb = (z < 0).to(r.dtype) * r / stabilize(zl + g * (zl - p) + _bias_like(module, b_dn, z), eps)
            shape = x.shape
            return x * (affine_vjp(module, shape, w, sa + (1.0 + g) * sb)
                        + g * affine_vjp(module, shape, wp, sa - sb))
        w_up, w_dn = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        # z > 0: (x+ with W_up, bias b_up) + (x- with W_dn, no bias)
        za = affine(module, xp, w_up, b_up) + affine(module, xn, w_dn, None)
        sa = (z > 0).to(r.dtype) * r / stabilize(za, eps)
        # z < 0: (x+ with W_dn, bias b_dn) + (x- with W_up, no bias)
        zb = affine(module, xp, w_dn, b_dn) + affine(module, xn, w_up, None)
        sb = (z < 0).to(r.dtype) * r / stabilize(zb, eps)
        shape = x.shape
        return (xp * affine_vjp(module, shape, w_up, sa) + xn * affine_vjp(module, shape, w_dn, sa)
                + xp * affine_vjp(module, shape, w_dn, sb) + xn * affine_vjp(module, shape, w_up, sb))


class Flat(Rule):
    """Flat rule (Lapuschkin et al. 2019): relevance spread uniformly over each receptive field.

    ``R_i = sum_j 1 * R_j / stab(sum_i' 1)`` — weights set to one, bias dropped, inputs ignored.
    Meant for the first layer.

    Args:
        stabilizer: ``eps`` of the denominator. default=1e-6.
    """

    first_layer = True
    reads_weights = True

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = _eps(stabilizer, "stabilizer")

    def check(self, module: nn.Module) -> None:
        _check_affine(module, "Flat")

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        w, _ = _params(module)
        m: Any = module
        if isinstance(module, nn.Linear):
            # Every output reads all in_features inputs with weight one: each input of a row
            # gets that row's summed relevance / in_features (output features on the last
            # axis, whatever the leading axes: (batch, tokens, features) inputs too).
            s = (r / (w.shape[1] + self.stabilizer)).sum(-1, keepdim=True)
            return s.expand(x.shape)
        if m.groups == 1:
            # All-ones weights give every output channel the same value, and every sample the
            # same too: compute one channel of one sample, then one transposed pass of the
            # channel-summed relevance.
            ones_1 = torch.ones((1, *w.shape[1:]), dtype=w.dtype, device=w.device)
            zf = affine(module, torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device), ones_1, None)
            s = (r / (zf + self.stabilizer)).sum(1, keepdim=True)  # zf >= 1 > 0: stab = + eps
            g = affine_vjp(module, torch.Size((x.shape[0], 1, *x.shape[2:])), ones_1[:, :1], s)
            return g.expand(x.shape)
        ones_w = torch.ones_like(w)
        zf = affine(module, torch.ones_like(x), ones_w, None)
        return affine_vjp(module, x.shape, ones_w, r / stabilize(zf, self.stabilizer))


class WSquare(Rule):
    """w^2 rule (Montavon et al. 2017): ``R_i = sum_j w_ij^2 R_j / stab(sum_i' w_i'j^2 + b_j^2)``.

    For a first layer with unbounded inputs.

    Args:
        stabilizer: ``eps`` of the denominator. default=1e-6.
    """

    first_layer = True
    reads_weights = True

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = _eps(stabilizer, "stabilizer")

    def check(self, module: nn.Module) -> None:
        _check_affine(module, "WSquare")

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        w, b = _params(module)
        w2 = w * w
        zs = affine(module, torch.ones_like(x), w2, None if b is None else b * b)
        return affine_vjp(module, x.shape, w2, r / stabilize(zs, self.stabilizer))


class ZBox(Rule):
    """z^B rule (Montavon et al. 2017) for a first layer whose inputs lie in ``[low, high]``.

    ``z = x W + b - (l W+ + b+) - (h W- + b-)``, ``R_in = (x J_W^T - l J_{W+}^T - h J_{W-}^T)(R / stab(z))``.

    Args:
        low: lowest input value (a number or a tensor broadcastable to the input, batch axis
            included); None: each sample's own minimum. default=None.
        high: highest input value, as ``low``; None: each sample's own maximum. default=None.
        stabilizer: ``eps`` of the denominator. default=1e-6.
    """

    first_layer = True
    reads_weights = True

    def __init__(self, low: float | torch.Tensor | None = None, high: float | torch.Tensor | None = None,
                 stabilizer: float = 1e-6) -> None:
        self.low, self.high = low, high
        self.stabilizer = _eps(stabilizer, "stabilizer")

    def check(self, module: nn.Module) -> None:
        _check_affine(module, "ZBox")

    def bounds(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` as tensors shaped like ``x`` for this call's input ``x``.

        Args:
            x: the first layer's input in this call.
            rows: the sample index of each row of ``x`` (the engine runs the samples in
                chunks); a bound with a batch axis of several rows (one per sample) is
                indexed by it. None: the bound is broadcast to ``x`` as it is.
        """
        dims = tuple(range(1, x.ndim))
        out = []
        for name, value, default in (("low", self.low, lambda: x.amin(dims, keepdim=True)),
                                     ("high", self.high, lambda: x.amax(dims, keepdim=True))):
            t = default() if value is None else torch.as_tensor(value, dtype=x.dtype, device=x.device)  # type: ignore[no-untyped-call]
            if value is not None and rows is not None and t.ndim == x.ndim and t.shape[0] > 1:
                if rows.numel() and int(rows.max()) >= t.shape[0]:
                    raise InputError(
                        f"ZBox {name} has {t.shape[0]} rows on its batch axis but sample "
                        f"{int(rows.max())} is explained; give one row per sample, or one row "
                        "(shape (1, ...)) for all.")
                t = t[rows.to(t.device)]
            try:
                out.append(torch.broadcast_to(t.detach(), x.shape).to(x.dtype))
            except RuntimeError:
                raise InputError(
                    f"ZBox {name} has shape {tuple(t.shape)}, which does not broadcast to the first "
                    f"layer's input {tuple(x.shape)}; pass a number or e.g. a (1, C, 1, 1) tensor."
                ) from None
        low, high = out
        if self.low is not None or self.high is not None:
            # z^B assumes low <= x <= high (Montavon et al. 2017): bounds that miss the input
            # made its denominators small and the credits 37x larger, silently (aud43g)
            if self.low is not None and self.high is not None and bool((low > high).any()):
                raise InputError(
                    f"ZBox low={bound_text(self.low)} exceeds high={bound_text(self.high)} for some input element; "
                    "low is the lowest value an input can take, high the highest.")
            # Slack for rounding: ImageNet bounds typed to 4 decimals (-2.1179 for -2.117904) or
            # computed in float32 for float64 data miss the input by < 1e-5 of the range, which
            # moves the credits by about as little; the warning fired on them (rev43g).
            excess = torch.maximum(low - x, x - high)
            slack = (_BOX_SLACK * (high - low).abs()
                     + 8 * torch.finfo(x.dtype).eps * torch.maximum(low.abs(), high.abs()))
            if bool((excess > slack).any()):
                lo, hi = float(x.min()), float(x.max())
                warnings.warn(
                    f"lrp: the input takes values in [{lo:.6g}, {hi:.6g}], outside the z^B bounds "
                    f"low={bound_text(self.low)}, high={bound_text(self.high)} by up to {float(excess.max()):.3g}; "
                    "z^B assumes low <= x <= high (the range inputs can take), and its relevance is "
                    "unstable otherwise. Widen the bounds (e.g. the data's range) or leave them None "
                    "(each sample's own range).",
                    UserWarning, stacklevel=_stacklevel_past_torch())
        return low, high

    def relevance(self, module: nn.Module, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        w, b = _params(module)
        low, high = bounds if bounds is not None else self.bounds(x)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        zb = z - affine(module, low, wp, _pos(b)) - affine(module, high, wn, _neg(b))
        s = r / stabilize(zb, self.stabilizer)
        shape = x.shape
        return (x * affine_vjp(module, shape, w, s) - low * affine_vjp(module, shape, wp, s)
                - high * affine_vjp(module, shape, wn, s))
