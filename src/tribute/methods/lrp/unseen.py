"""Spot functional operations in a model's own ``forward`` code that LRP rules cannot see.

The ``lrp`` rules return *relevance* through the backward pass, so whatever runs between two
rule-bearing modules must only route it (reshapes, indexing, concatenation, max pooling). A
functional operation in the model's own code is backpropagated as a plain gradient instead:
``x + f(x)`` hands the full relevance to both summands (the total doubles), ``x / 255``,
``x * s`` or ``torch.tanh(x)`` rescale it, ``-x`` flips its sign, ``x.sum()`` copies it to every element, and
``x.mean(...)`` spreads it evenly instead of the average pooling's proportional rule. Zennit
(Anders et al. 2021) has the same limit; its documentation asks for modules (and ``Add``
canonizers) in their place.

:class:`UnseenOps` counts such calls while the model runs under the rules: only calls made
directly by the model's own (user-defined) ``forward`` code, outside ``torch.nn`` modules and
modules with a rule, on tensors that depend on the input (parameters have
``requires_grad=False`` while tribute runs a model).
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["UnseenOps"]

#: Sums of two input-dependent tensors (the relevance is copied to both); a sum with a
#: constant only shifts (``rsub``, ``c - x``, is a negation too: in ``_TRANSFORMS``).
_SUMS = frozenset({"add", "sub", "radd", "rsub", "iadd", "isub", "subtract"})
#: Operations that rescale, mix or transform relevance when it goes through as a gradient.
_TRANSFORMS = frozenset({
    "mul", "rmul", "imul", "multiply", "div", "rdiv", "truediv", "rtruediv", "itruediv", "idiv",
    "divide", "true_divide", "tanh", "sigmoid", "exp", "log", "sqrt", "rsqrt", "pow", "rpow",
    "gelu", "silu", "softplus", "elu", "selu", "celu", "leaky_relu", "hardtanh", "mish",
    "softmax", "log_softmax", "layer_norm", "batch_norm", "group_norm", "normalize", "linear",
    "bilinear", "conv1d", "conv2d", "conv3d", "matmul", "bmm", "mm", "einsum", "mean", "sum",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    # sign flips and elementwise maps that were missed (audit aud34l): ``-x`` and ``c - x``
    # hand back -R (the LRP-0 rule of a negation gives +R), ``abs``/``clamp``/``square``/
    # ``cos``/``erf`` scale or zero it where an activation's rule passes it unchanged
    "neg", "negative", "rsub", "abs", "absolute",
    "square", "reciprocal", "erf", "erfc", "sin", "cos", "atan", "log1p", "expm1", "exp2", "log2",
    "log10", "relu6", "hardswish", "hardsigmoid", "logsigmoid", "softsign", "tanhshrink",
    "softshrink", "hardshrink", "threshold", "prelu", "rrelu",
    # other spellings of the maps above, missed until audit aud47g (a head written as
    # torch.addmm, attention as F.scaled_dot_product_attention, a cumsum, F.glu, a norm: their
    # relevance went back as a plain gradient with no warning, while F.linear / matmul /
    # softmax / sum / sigmoid / div, the same maps spelled otherwise, were counted).
    # Linear maps: the gradient, not the layer rule's ``x w / z`` redistribution.
    "addmm", "addmv", "addbmm", "baddbmm", "addr", "addcmul", "addcdiv", "lerp", "tensordot",
    "outer", "ger", "inner", "dot", "vdot", "mv", "kron", "cross", "linalg_cross",
    "chain_matmul", "linalg_multi_dot", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "scaled_dot_product_attention",
    "linalg_matmul", "linalg_vecdot", "rmatmul",  # rev47g: torch.linalg / reflected spellings
    # sums and products along an axis
    "cumsum", "cumprod", "prod", "nansum", "nanmean", "trace", "diff", "logsumexp",
    "logcumsumexp",
    # norms, statistics, distances
    "norm", "linalg_vector_norm", "linalg_norm", "linalg_matrix_norm", "std", "var",
    "std_mean", "var_mean", "rms_norm", "instance_norm", "local_response_norm",
    "cosine_similarity", "pairwise_distance", "cdist", "pdist", "lp_pool1d", "lp_pool2d",
    "lp_pool3d",
    # elementwise functions
    "glu", "softmin", "special_expit", "logit", "special_logit", "tan", "sinh", "cosh", "asin",
    "acos", "arcsin", "arccos", "arctan", "asinh", "acosh", "atanh", "arcsinh", "arccosh",
    "arctanh", "atan2", "arctan2", "logaddexp", "logaddexp2", "hypot", "sinc", "xlogy",
    "float_power", "special_erf", "special_erfc", "special_expm1", "special_exp2",
    "special_log1p", "special_ndtr", "special_softmax", "special_log_softmax",
    "special_logsumexp",
    # F.logsigmoid dispatches as log_sigmoid (aud51a: unreported, credits 5.7 off the
    # nn.LogSigmoid twin's Pass rule, largest 11.5)
    "log_sigmoid",
})
#: Resampling whose interpolating modes weight the inputs (the gradient, not a rule); the
#: nearest modes only copy them, which routes relevance as max pooling does: not counted.
#: name -> (position of ``mode`` among the arguments, its default).
_RESAMPLE = {"interpolate": (3, "nearest"), "grid_sample": (2, "bilinear")}
_COPY_MODES = frozenset({"nearest", "nearest-exact"})


#: Elementwise extrema of two tensors. With one input-dependent operand and a constant they are
#: a clamp (``torch.maximum(h, c)`` is ``h.clamp(min=c)``, counted above): saturated units keep
#: their relevance ``c * R / c`` with no gradient to pass it on. Of two input-dependent tensors
#: they route, as max pooling does (not counted). ``torch.max(h, dim)`` is a reduction: not
#: counted (its second argument is no tensor). Missed until audit aud49g: a model with
#: ``torch.maximum(h, c)`` had credits 0.028 off the Pass rule (largest 0.023), with no warning,
#: while its ``clamp`` twin warned.
_EXTREMA = frozenset({"maximum", "minimum", "fmax", "fmin", "max", "min"})
#: Clamps (name -> positions / keywords of their bounds): counted where a bound is a constant
#: that is neither zero nor a mask value (see :func:`_clamps`). ``h.clamp(min=0)`` is a ReLU, whose
#: Pass rule is its plain gradient (aud50g: it was reported, with credits bitwise equal to the
#: silent ``nn.ReLU`` / ``torch.maximum(h, 0)`` spellings).
_CLAMP_BOUNDS: dict[str, tuple[tuple[int, str], ...]] = {
    "clamp": ((1, "min"), (2, "max")), "clip": ((1, "min"), (2, "max")),
    "clamp_min": ((1, "min"),), "clamp_max": ((1, "max"),),
}
#: Selections with a constant branch (``torch.where(h > c, h, c)``, ``h.masked_fill(m, c)``):
#: a clamp too when the constant is not zero (a zero carries no relevance: a ReLU spelled so).
_FILLS = frozenset({"where", "masked_fill"})
#: Constants this large are masks, not clamps: attention scores set to -inf / -1e4 / -1e9 /
#: ``finfo.min`` (``torch.where(causal, scores, min)``, OPT's ``torch.max(scores, min)``), a
#: masked max pooling's ``masked_fill(~mask, -inf)``; they never win the softmax or max that
#: follows, so they carry no relevance.
_MASK_MAGNITUDE = 1e4


def _constant_not_zero(v: Any) -> bool:
    """A constant (a number, or a tensor that does not depend on the input) with a non-zero
    entry and no mask value (:data:`_MASK_MAGNITUDE`).

    Any real number counts: numpy scalars (``np.float32`` is no ``float``) and bools
    (``h.clamp(min=True)`` clamps at 1). Review rev50g: ``h.clamp(np.float32(-0.3),
    np.float32(0.3))`` was silent under method='lrp' (0.24 off the ``nn.Hardtanh`` twin under
    AttnLRP, which kept its plain gradient), as were ``np.int64`` and bool bounds."""
    if isinstance(v, torch.Tensor):
        if v.requires_grad or v.numel() == 0 or v.is_complex():
            return False
        big = float(v.detach().to(torch.float64).abs().max())  # inf / NaN: not below
        return big < _MASK_MAGNITUDE and bool((v != 0).any())
    if not isinstance(v, numbers.Real):
        return False
    f = float(v)
    return f != 0 and abs(f) < _MASK_MAGNITUDE  # inf / NaN: not below


def _clamps(name: str, func: Any, args: Any, kwargs: dict[str, Any],
            from_input: Callable[[Any], bool]) -> bool:
    """``func(*args, **kwargs)`` (a clamp, an extremum or a selection, see :data:`_CLAMP_BOUNDS`, :data:`_EXTREMA` /
    :data:`_FILLS`) clamps an input-dependent tensor at a constant. A selection clamps only
    where its condition depends on the input (``from_input``, e.g. ``h > c``): with a fixed
    mask (``torch.where(pad_mask, h, mask_token)``) it routes, as indexing does (rev49g: such
    fills of a non-zero constant were reported, with credits bitwise equal to the silent
    ``h[:, ~mask] = mask_token`` spelling)."""
    def arg(pos: int, key: str) -> Any:
        return kwargs[key] if key in kwargs else (args[pos] if len(args) > pos else None)

    if name in _CLAMP_BOUNDS:
        bounds = [arg(i, k) for i, k in _CLAMP_BOUNDS[name]]
        if any(isinstance(b, torch.Tensor) and b.requires_grad for b in bounds):
            # bounds from the input: of an input, an extremum of two inputs (routing); of a
            # constant c, torch.maximum(c, h): a clamp of h at c
            x = arg(0, "input")
            return not (isinstance(x, torch.Tensor) and x.requires_grad) and _constant_not_zero(x)
        return any(_constant_not_zero(b) for b in bounds)
    if name in _EXTREMA:
        a, b = arg(0, "input"), arg(1, "other")
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False  # a reduction (torch.max(h), h.max(dim=1))
        if a.requires_grad == b.requires_grad:
            return False  # two inputs: routing; two constants: no relevance
        c = b if a.requires_grad else a
        return _constant_not_zero(c)  # maximum(h, 0) is a ReLU: the plain gradient is its rule
    if name == "where":
        if func is torch.Tensor.where:  # h.where(cond, other)
            cond, a, b = arg(1, "condition"), arg(0, "input"), arg(2, "other")
        else:  # torch.where(cond, input, other); torch.where(cond) gives indices
            cond, a, b = arg(0, "condition"), arg(1, "input"), arg(2, "other")
        if not from_input(cond):
            return False  # a fixed mask: routing
        grads = [isinstance(t, torch.Tensor) and t.requires_grad for t in (a, b)]
        if grads == [True, False]:
            return _constant_not_zero(b)
        return grads == [False, True] and _constant_not_zero(a)
    x = arg(0, "input")
    if not (isinstance(x, torch.Tensor) and x.requires_grad) or not from_input(arg(1, "mask")):
        return False
    return _constant_not_zero(arg(2, "value"))  # masked_fill


#: torch modules that only call their children (their own code applies no operation)
_CONTAINERS: tuple[type[nn.Module], ...] = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", "")).strip("_")


def _grad_tensors(args: Any) -> int:
    n = 0
    for a in args:
        if isinstance(a, torch.Tensor):
            n += int(a.requires_grad)
        elif isinstance(a, (list, tuple)):
            n += _grad_tensors(a)
    return n


#: ``a.expand_as(h)``, ``a.to(h)``: the result depends on ``a`` only (``h`` gives its shape / dtype)
_SHAPED_AS = frozenset({"expand_as", "view_as", "reshape_as", "type_as", "to", "broadcast_to"})


def _reads_input(args: Any, kwargs: Any, derived: WeakIdKeyDictionary) -> bool:
    """Some tensor among the arguments depends on the input: it has a gradient or is in
    ``derived``."""
    for a in (*args, *(kwargs or {}).values()):
        if isinstance(a, torch.Tensor):
            if a.requires_grad or a in derived:
                return True
        elif isinstance(a, (list, tuple)) and _reads_input(a, None, derived):
            return True
    return False


class UnseenOps(TorchFunctionMode):
    """Counts, by name, the functional operations of the model's own code that carry relevance.

    Args:
        root: the model.
        ruled: modules with a rule (their internals are theirs, like ``torch.nn`` modules').

    Use as a context manager around the forward passes (it installs forward hooks; the mode
    itself is active during each forward pass of ``root`` only); :attr:`counts` holds the result.
    """

    def __init__(self, root: nn.Module, ruled: set[nn.Module]) -> None:
        super().__init__()
        self.root = root
        self.ruled = ruled
        self.counts: Counter[str] = Counter()
        self._inside = False
        self._depth = 0
        self._handles: list[Any] = []
        #: tensors without a gradient computed from input-dependent ones (see __torch_function__)
        self._derived: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def __enter__(self) -> UnseenOps:
        try:
            for mod in self.root.modules():
                # containers only call their children: a custom block inside an nn.Sequential
                # (torchvision's layer1 = Sequential(BasicBlock, ...)) must stay visible
                if mod is not self.root and (mod in self.ruled or (
                        type(mod).__module__.startswith("torch.") and not isinstance(mod, _CONTAINERS))):
                    self._handles.append(mod.register_forward_pre_hook(self._enter))
                    self._handles.append(mod.register_forward_hook(self._leave, always_call=True))
            self._handles.append(self.root.register_forward_pre_hook(self._start))
            self._handles.append(self.root.register_forward_hook(self._stop, always_call=True))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _enter(self, mod: nn.Module, args: Any) -> None:
        self._depth += 1

    def _leave(self, mod: nn.Module, args: Any, out: Any) -> None:
        self._depth -= 1

    def _start(self, mod: nn.Module, args: Any) -> None:
        # the mode is pushed for the model's forward pass only (not the backward pass, whose
        # rule computations would all go through __torch_function__)
        self._inside, self._depth = True, 0
        super().__enter__()  # type: ignore[no-untyped-call]

    def _stop(self, mod: nn.Module, args: Any, out: Any) -> None:
        if self._inside:
            self._inside = False
            super().__exit__(None, None, None)  # type: ignore[no-untyped-call]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = _name(func)
        if self._inside and self._depth == 0:
            n = _grad_tensors(args) + _grad_tensors((kwargs or {}).values())
            if (name in _SUMS and n >= 2) or (name in _TRANSFORMS and n >= 1):
                self.counts[name] += 1
            elif (name in _EXTREMA or name in _FILLS or name in _CLAMP_BOUNDS) and n >= 1:
                if _clamps(name, func, args, kwargs or {}, self._from_input):
                    self.counts[name] += 1
            elif name in _RESAMPLE and n >= 1:
                pos, default = _RESAMPLE[name]
                mode = (kwargs or {}).get("mode", args[pos] if len(args) > pos else default)
                if mode not in _COPY_MODES:
                    self.counts[name] += 1
        out = func(*args, **(kwargs or {}))
        if not self._inside or name.endswith("_like") or name.startswith("new_"):
            return out  # shape and dtype only (torch.zeros_like(h), h.new_ones(...))
        if _reads_input(args[:1] if name in _SHAPED_AS else args,
                        None if name in _SHAPED_AS else kwargs, self._derived):
            # results without a gradient (a comparison ``h > c``, a mask derived from one, a
            # detached copy) still depend on the input: a selection on them is a clamp
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor) and not t.requires_grad:
                    self._derived[t] = True
        return out

    def _from_input(self, cond: Any) -> bool:
        return isinstance(cond, torch.Tensor) and cond in self._derived

    def __exit__(self, *exc: Any) -> None:
        self._remove()

    def message(self) -> str:
        """``"add x2, div x1"``: what was counted (empty if nothing)."""
        return ", ".join(f"{k} x{v}" for k, v in sorted(self.counts.items()))
