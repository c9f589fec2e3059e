"""AttnLRP rules for transformers, installed for one ``with`` block (gradient x input form).

AttnLRP (Achtibat et al. 2024, "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for
Transformers", ICML) extends LRP to attention. Written as a modified gradient ``g`` whose
product with a layer's input is that layer's relevance (``R_x = x * g_x``, the "gradient x
input" form of the paper's appendix), its rules become small changes of the backward pass:

- **linear layers** (``nn.Linear``, GPT-2's ``Conv1D``, the patch-embedding convolution of
  ViT-style models (stride == kernel size), additions, reshapes, rotary position factors):
  the ordinary gradient. With ``R_y = y * g_y`` the LRP-0/epsilon-0 rule
  ``R_x = x * W^T (R_y / y)`` *is* ``x * W^T g_y``; the bias absorbs its share.
- **elementwise nonlinearities** (GELU, SiLU, tanh, ...; modules or functional calls):
  the identity rule ``R_x = R_y`` (paper, Eq. 9), i.e. ``g_x = g_y * y / x``.
- **LayerNorm / RMSNorm**: the identity rule on the normalisation: the standard deviation is
  treated as a constant (its gradient is stopped), so the layer is the linear map
  ``(x - mean(x)) / std * w + b`` (LayerNorm) or ``x / rms * w`` (RMSNorm, elementwise, hence
  ``g_x = g_y * y / x``).
- **bilinear products** of two input-dependent tensors (``Q K^T``, ``A V``, the gate x up
  product of gated MLPs): the uniform rule (paper, Eq. 7): each factor gets half the
  relevance, i.e. the gradient to both factors is halved. For a fused
  ``scaled_dot_product_attention`` this is the factor 1/4 on ``Q`` and ``K`` and 1/2 on ``V``.
- **softmax**: the paper's rule (Prop. 3.1) ``R_x = x * (R_s - s * sum_j R_j)`` linearises the
  softmax at its input and lets the bias term ``s - J x`` absorb its share; in gradient form
  this is exactly the ordinary softmax gradient, so nothing changes.

``variant="cp"`` gives CP-LRP instead (Ali et al. 2022, "XAI for Transformers: Better
Explanations through Conservative Propagation"): no relevance through the attention weights
(softmax output detached), so ``V`` gets all of it; the rest as above. This is lxt's
``cp_LRP`` map; like lxt, CP-LRP also holds the gate of gated MLPs (an activation's output
multiplied by another branch) constant.

The rules are installed by :func:`attnlrp_rules`: a :class:`torch.overrides.TorchFunctionMode`
(thread-local, popped on exit) rewrites matmuls, products, fused attention and functional
activations whose operands depend on the input; forward hooks on norm and activation modules
replace their output by a tensor of the same value with the rule's gradient. Parameters'
``requires_grad`` is switched off for the duration (it decides what "depends on the input"
means) and restored, as is the ``inplace`` flag of activation modules (run out of place so
that their rule sees their input); hooks are removed, also after an exception. A functional
activation or clamp computed in place (``F.elu_(h)``, ``h.clamp_(a, b)``) gets its rule from its
value computed on a copy, written back into ``h``. Nothing else of the model or of any library
module is patched.

Where this differs from the ``lxt`` package (2.1, "efficient" mode): lxt adds ``1e-10`` to the
denominator of the identity rule, this module the sign-aware ``stabilize`` (same result
unless an input is within ~1e-10 of zero); lxt's BERT support replaces the whole
``modeling_bert`` module by a copy of an older Transformers release, this module works on the
installed one.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from ...errors import InputError, UnsupportedModelError
from .composites import ACTIVATIONS
from .rules import stabilize
from .unseen import _SHAPED_AS, _constant_not_zero, _reads_input

__all__ = ["VARIANTS", "attnlrp_rules", "check_transformer"]

#: ``"attnlrp"``: Achtibat et al. 2024; ``"cp"``: CP-LRP (Ali et al. 2022).
VARIANTS = ("attnlrp", "cp")

_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm,
            torch.mm, torch.Tensor.mm,
            # rev47g: ``torch.linalg.matmul(q, k^T)`` / ``torch.linalg.vecdot(q, k)`` (a batched dot
            # product) are the same bilinear maps; they got the plain gradient with no warning
            torch.linalg.matmul, torch.linalg.vecdot}
#: ``h *= g`` dispatches as ``mul_`` and rebinds ``h`` to what the rule returns (a bare
#: ``h.mul_(g)`` statement discards it: a plain gradient there, as for any in-place product).
_MULS = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.mul_,
         torch.multiply, torch.Tensor.multiply}
#: ``input * beta + alpha * batch1 @ batch2`` (Bloom's attention scores, GPT-2's
#: ``reorder_and_upcast_attn`` path): the product of the two batches is bilinear.
_BADDBMMS = {torch.baddbmm, torch.Tensor.baddbmm}
_SOFTMAX = {F.softmax, torch.softmax, torch.Tensor.softmax}
_ACT_FUNCS = {
    torch.tanh, torch.Tensor.tanh, torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, F.tanh,
    F.gelu, F.silu, F.relu, torch.relu, torch.Tensor.relu, F.elu, F.leaky_relu, F.softplus,
    F.mish, F.relu6, F.hardswish, F.hardsigmoid, F.selu, F.celu,
}
#: Elementwise activations matched by name (their functional, ``torch.*`` and ``Tensor``
#: spellings): the identity rule their module twins (``nn.Threshold``, ``nn.Softshrink``, ...)
#: get. Audit aud51a: they went through as plain gradients with no warning, 9.2 off the
#: ``nn.Threshold(0.1, 0.5)`` twin (largest relevance 9.6) for ``F.threshold`` and for an
#: ``nn.Threshold`` built inside ``forward`` (no hook), 0.24 off for ``F.softshrink``, 0.21 for
#: ``F.tanhshrink``. name -> position of the ``inplace`` flag (None: no such flag).
_ACT_NAMES: dict[str, int | None] = {
    "threshold": 3, "softshrink": None, "hardshrink": None, "rrelu": 4, "prelu": None,
    "tanhshrink": None,
    # audit aud52x: reported, not ruled, until then: F.softsign 0.162 off the nn.Softsign twin
    # (largest relevance 2.6), F.logsigmoid (dispatched as log_sigmoid) 12.7 off nn.LogSigmoid's
    "softsign": None, "log_sigmoid": None, "logsigmoid": None,
}
#: Elementwise functions whose gradient is zero wherever it is defined (``torch.sign``): their
#: result (and what is computed from it alone) carries no relevance and is a constant factor for
#: the rules (a mask), so ``torch.sign(h) * h`` is ``abs(h)``, whose identity rule is its plain
#: gradient. Audit aud52x: the product of two
#: input-dependent factors got the uniform rule, halving the relevance through it (0.22 off the
#: abs block, largest relevance 2.4), silently.
_ZERO_GRADIENT = frozenset({"sign", "sgn", "round", "floor", "ceil", "trunc", "fix"})
#: Review rev52x: ``round(v) * u`` / ``floor(v) * u`` lost half of their relevance the same way
#: (0.36 / 0.39 off the ``round(v).detach() * u`` twin, largest 1.4 / 1.6), and so did the in-place
#: spelling ``u.clone().sign_() * u`` (0.18 off the abs twin).
#: Where activations take their ``inplace`` flag (``F.elu(h, 1.0, True)``), and the names whose
#: in-place spelling (``torch.sigmoid_``, ``F.elu_``, ``h.tanh_()``) is an activation. An
#: activation computed in place overwrites the input its identity rule needs (aud51a:
#: ``F.elu(h, inplace=True)`` was 0.095 off the out-of-place twin, largest relevance 2.9,
#: ``F.threshold(..., inplace=True)`` 9.2 off, silently; aud51a reported them, aud52x rules
#: them: the value is computed on a copy and the rule written back, see
#: ``_Mode._in_place_rule``) -- except where the plain gradient is the rule
#: (:data:`_GRADIENT_IS_RULE`), left as it was.
_INPLACE_POS: dict[str, int] = {
    "relu": 1, "selu": 1, "silu": 1, "hardswish": 1, "hardsigmoid": 1, "mish": 1, "relu6": 1,
    "elu": 2, "celu": 2, "leaky_relu": 2, "threshold": 3, "rrelu": 4,
}
_INPLACE_ACTS = frozenset({*_INPLACE_POS, "sigmoid", "tanh"})
#: Piecewise linear through the origin (``y / x`` is the derivative): the plain gradient of the
#: in-place spelling is the identity rule (``threshold`` only with ``value == 0``).
_GRADIENT_IS_RULE = frozenset({"relu", "leaky_relu", "rrelu"})
#: Nonlinear functions with no AttnLRP rule here: called on an input-dependent tensor in the
#: model's own code (outside the norm/activation modules the hooks handle) they go through as
#: a plain gradient, which is not what the rules define; such calls are counted and reported
#: (audit aud34l). Linear operations (sums, scaling, reshapes, routing) need no rule.
_UNRULED = frozenset({
    "exp", "log", "sqrt", "rsqrt", "pow", "reciprocal", "erf", "erfc", "sin", "cos", "abs",
    "layer_norm", "rms_norm", "group_norm", "batch_norm", "normalize", "log_softmax",
    "hardtanh", "square", "log1p", "expm1", "rpow",
    # spellings missed until audit aud47g (went through as plain gradients, unreported)
    "glu", "logsumexp", "logcumsumexp", "std", "var", "std_mean", "var_mean", "norm",
    "linalg_vector_norm", "linalg_norm", "softmin", "tan", "sinh", "cosh", "asin", "acos",
    "atan", "asinh", "acosh", "atanh", "atan2", "logit", "special_expit", "logaddexp", "hypot",
    "special_erf", "instance_norm", "local_response_norm", "cosine_similarity", "cdist",
    "pairwise_distance", "lp_pool1d", "lp_pool2d", "prod", "cumprod",
    # other names of the functions above (rev47g: these went through unreported)
    "exp2", "log2", "log10", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
    "arctan2", "logaddexp2", "special_logit", "special_erfc", "special_expm1", "special_exp2",
    "special_log1p", "special_logsumexp", "special_log_softmax", "linalg_matrix_norm",
    "float_power", "xlogy", "sinc",
})
#: Where the two factors of the ``add*`` products sit (``input`` is summed, not multiplied):
#: ``addmm(residual, h, W)`` with one input-dependent factor is a linear map (rev47g: it was
#: reported as a nonlinear product because the residual counted as a second factor).
_ADD_FACTORS = {"addcmul": ("tensor1", "tensor2"), "addcdiv": ("tensor1", "tensor2"),
                "addmm": ("mat1", "mat2"), "addbmm": ("batch1", "batch2"), "addmv": ("mat", "vec"),
                "addr": ("vec1", "vec2")}
#: Products spelled without ``*`` / ``matmul`` / ``einsum`` (which get the uniform rule): with
#: two input-dependent factors their plain gradient hands both the whole relevance, so they
#: are counted as unruled (aud47g: ``torch.addcmul(c, a, b)`` and ``stack([a, b]).prod(0)``
#: moved a gated MLP's credits by 11% of their size with no warning). One input-dependent
#: factor (a weight from a parameter: GPT-2's ``Conv1D`` is ``addmm``) is a linear map.
_PRODUCTS = frozenset({
    "addcmul", "addcdiv", "outer", "ger", "inner", "dot", "vdot", "tensordot",
    "kron", "addmm", "addbmm", "addmv", "addr", "mv", "chain_matmul", "linalg_multi_dot",
    "bilinear", "cross", "linalg_cross",
})
_DIVS = frozenset({"div", "true_divide", "divide", "truediv", "rtruediv", "rdiv"})

#: Leaf modules whose ordinary gradient is the rule (linear maps, lookups, routing).
_LINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Embedding, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Flatten,
    nn.Unflatten, nn.Softmax,
)
_REFUSED_HINTS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.TransformerEncoderLayer, nn.TransformerDecoderLayer),
     "its fused fast path hides Q, K, V from the rules; build the layer from "
     "nn.MultiheadAttention, nn.LayerNorm and nn.Linear, or write the attention with "
     "torch.matmul/softmax or F.scaled_dot_product_attention (as Hugging Face models do)"),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
      nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d),
     "convolutional networks are explained by method='lrp' (composites for CNNs); only a "
     "patch-embedding convolution (stride == kernel size, no padding, as in ViT) is a linear "
     "layer of a transformer here"),
)


# ------------------------------------------------------------------------ autograd pieces
class _Ratio(torch.autograd.Function):
    """Value ``y``; backward ``g_x = g_y * y / stab(x)`` (the identity rule in gradient form).

    The ratio is computed in at least float32: in float16 the default ``eps=1e-10`` rounds
    to 0, so an input ``x == 0`` (a zero pre-activation, a zero vector into RMSNorm) gave
    ``0 / 0`` and NaN relevance for every input (audit aud34l)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        wide = torch.promote_types(y.dtype, torch.float32)
        xw, yw = x.detach().to(wide), y.to(wide)
        ratio = yw / stabilize(xw, eps)
        if not eps:  # epsilon=0: y == 0 at x == 0 (GELU(0)) passes nothing, the eps -> 0 limit;
            # 0 / 0 made every input of the sample NaN (aud45g)
            ratio = torch.where((xw == 0) & (yw == 0), torch.zeros_like(ratio), ratio)
        ctx.save_for_backward(ratio)
        return y.clone()  # not a view: a model may modify an activation's output in place (g *= up)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        (ratio,) = ctx.saved_tensors
        return (g.to(ratio.dtype) * ratio).to(g.dtype), None, None


class _Scale(torch.autograd.Function):
    """Value ``x``; backward ``factor * g`` (the uniform rule's share)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        return g * ctx.factor, None


def _dep(t: Any) -> bool:
    """``t`` is a tensor that depends on the explained input (parameters are frozen)."""
    return isinstance(t, torch.Tensor) and t.requires_grad


def _tensors(args: Any) -> Iterator[torch.Tensor]:
    """The tensors among ``args`` (lists and tuples searched)."""
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from _tensors(a)


def _written(raw: str, args: Any, kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The tensor a call of ``raw`` (its ``__name__``) writes into: ``args[0]`` of an in-place
    method (``s.mul_(u)``, ``s += u``), of ``__setitem__`` or of ``inplace=True``; an ``out=``
    tensor; else ``None``."""
    out = kwargs.get("out")
    if isinstance(out, torch.Tensor):
        return out
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if (raw.endswith("_") and not raw.startswith("_")) or raw == "__setitem__" or kwargs.get("inplace") is True:
        return first
    return None


def _n_dep(args: Any) -> int:
    """How many input-dependent tensors ``args`` holds (lists and tuples searched)."""
    return sum(_n_dep(a) if isinstance(a, (list, tuple)) else int(_dep(a)) for a in args)


def _is_product(name: str, args: Any, kwargs: dict[str, Any]) -> bool:
    """``name(*args)`` multiplies input-dependent tensors (for ``addcdiv``: divides by one)."""
    if name not in _ADD_FACTORS:
        return _n_dep((*args, *kwargs.values())) >= 2
    a, b = (args[i] if len(args) > i else kwargs.get(key) for i, key in zip((1, 2), _ADD_FACTORS[name]))
    return _dep(b) if name == "addcdiv" else _dep(a) and _dep(b)


#: Clamps spelled as functions: name -> positions / keywords of their bounds.
_CLAMPS: dict[str, tuple[tuple[int, str], ...]] = {
    "clamp": ((1, "min"), (2, "max")), "clip": ((1, "min"), (2, "max")),
    "clamp_min": ((1, "min"),), "clamp_max": ((1, "max"),),
    "hardtanh": ((1, "min_val"), (2, "max_val")),
}
#: Elementwise extrema: with one input-dependent operand and a constant they are a clamp.
_EXTREMA = frozenset({"maximum", "minimum", "fmax", "fmin", "max", "min"})


def _in_place(raw: str, pos: int | None, args: Any, kwargs: dict[str, Any]) -> bool:
    """A call of ``raw`` (its ``__name__``) writes its result into its input: a trailing ``_``
    (``h.clamp_``, ``F.threshold_``) or ``inplace=True`` (keyword, or positional at ``pos``)."""
    if raw.endswith("_") and not raw.startswith("_"):
        return True
    flag = kwargs.get("inplace", args[pos] if pos is not None and len(args) > pos else False)
    return bool(flag) and not isinstance(flag, torch.Tensor)


def _gradient_is_rule(name: str, args: Any, kwargs: dict[str, Any]) -> bool:
    """The plain gradient of activation ``name`` (called with ``args`` / ``kwargs``) is its
    identity rule: see :data:`_GRADIENT_IS_RULE`; ``threshold(x, th, value)`` with ``value == 0``."""
    if name == "threshold":
        value = kwargs.get("value", args[2] if len(args) > 2 else None)
        return isinstance(value, numbers.Real) and float(value) == 0.0
    return name in _GRADIENT_IS_RULE


def _clamped(name: str, args: Any, kwargs: dict[str, Any], out: Any) -> torch.Tensor | None:
    """The input-dependent tensor ``x`` that ``name(*args, **kwargs)`` (giving ``out``) clamps at
    constant bounds, one of them neither zero nor a mask value, else ``None``.

    Such a clamp is the elementwise nonlinearity of ``nn.Hardtanh`` and gets its identity rule
    (audit aud50g: ``torch.clamp(h, -0.3, 0.3)``, ``h.clip(...)``, ``torch.maximum(h, c)``,
    ``F.hardtanh`` in an MLP went through as plain gradients, 0.21 off the ``nn.Hardtanh``
    twin's relevance (largest 2.5) with no warning; ``F.hardtanh`` was reported). A zero bound
    (a ReLU spelled ``h.clamp(min=0)``) keeps the plain gradient, which is the identity rule's
    value there; a bound of magnitude >= 1e4 is an attention mask (OPT's
    ``torch.max(scores, finfo.min)``), routing. Of two input-dependent tensors an extremum
    routes, as max pooling does (plain gradient)."""
    if name in _CLAMPS:
        x = args[0] if args else kwargs.get("input")
        bounds = [kwargs[k] if k in kwargs else (args[i] if len(args) > i else None)
                  for i, k in _CLAMPS[name]]
        if name == "hardtanh":  # defaults -1 and 1
            bounds = [-1.0 if b is None and i == 0 else 1.0 if b is None else b for i, b in enumerate(bounds)]
        elif not _dep(x) and sum(_dep(b) for b in bounds) == 1:
            # torch.clamp(c, min=h) is torch.maximum(h, c): a clamp of h at the constant c
            # (aud51a: it kept the plain gradient, 0.095 off the torch.maximum(h, c) twin)
            x, bounds = next(b for b in bounds if _dep(b)), [x] + [b for b in bounds if not _dep(b)]
    elif name in _EXTREMA:
        a = args[0] if args else kwargs.get("input")
        b = args[1] if len(args) > 1 else kwargs.get("other")
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or _dep(a) == _dep(b):
            return None  # a reduction (h.max(dim=1)), or two inputs (routing)
        x, bounds = (a, [b]) if _dep(a) else (b, [a])
    else:
        return None
    if not isinstance(x, torch.Tensor) or not _dep(x) or any(_dep(b) for b in bounds) \
            or not any(_constant_not_zero(b) for b in bounds):
        return None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return None  # a broadcast against a larger constant: not elementwise in x
    return x


def _filled(func: Any, args: Any, kwargs: dict[str, Any], out: Any,
            derived: WeakIdKeyDictionary) -> torch.Tensor | None:
    """The input-dependent tensor ``x`` that a selection (``torch.where(h > c, h, c)``,
    ``h.where(cond, c)``, ``h.masked_fill(h > c, c)``) clamps at a constant: its condition
    depends on the input (is in ``derived``), the other branch is a constant neither zero nor a
    mask value (see :func:`_clamped`); else ``None``. A fixed mask (a padding mask) routes, as
    indexing does: plain gradient. Missed until audit aud50g (0.21 off the ``nn.Hardtanh``
    twin, no warning)."""
    def arg(pos: int, key: str) -> Any:
        return kwargs[key] if key in kwargs else (args[pos] if len(args) > pos else None)

    if func is torch.where:
        cond, a, b = arg(0, "condition"), arg(1, "input"), arg(2, "other")
    elif func is torch.Tensor.where:
        cond, a, b = arg(1, "condition"), arg(0, "input"), arg(2, "other")
    elif func in (torch.masked_fill, torch.Tensor.masked_fill):
        cond, a, b = arg(1, "mask"), arg(0, "input"), arg(2, "value")
    else:
        return None
    if not (isinstance(cond, torch.Tensor) and cond in derived) or _dep(a) == _dep(b):
        return None
    x, c = (a, b) if _dep(a) else (b, a)
    if not _constant_not_zero(c) or not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return None
    return x  # type: ignore[no-any-return]


def _scale(t: torch.Tensor, factor: float) -> torch.Tensor:
    out: torch.Tensor = _Scale.apply(t, factor)  # type: ignore[no-untyped-call]
    return out


def _identity_rule(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    out: torch.Tensor = _Ratio.apply(x, y.detach(), eps)  # type: ignore[no-untyped-call]
    return out


# ------------------------------------------------------------------------ module rules
def _is_rms(mod: nn.Module) -> bool:
    return isinstance(mod, getattr(nn, "RMSNorm", ())) or type(mod).__name__.endswith("RMSNorm")


def _is_activation(mod: nn.Module) -> bool:
    """An elementwise activation module: torch's, Transformers' ``activations`` module, or a
    parameter-free ``*Gelu`` class of a model's own code (Bloom's ``BloomGelu``, LXMERT's
    ``GeLU``), whose tanh-and-product formula the rules otherwise took apart (the identity
    rule on the tanh, the uniform rule on ``x * (...)``) instead of treating it as one
    activation (audit aud34l)."""
    if isinstance(mod, ACTIVATIONS) or type(mod).__module__.startswith("transformers.activations"):
        return True
    return (type(mod).__name__.lower().endswith("gelu") and not any(True for _ in mod.parameters())
            and not any(True for _ in mod.children()))


def _module_gradient_is_rule(mod: nn.Module) -> bool:
    """The plain gradient of activation module ``mod`` is its identity rule (a ReLU, a leaky or
    randomised ReLU, a threshold with ``value=0``, a hardtanh with zero or mask bounds), so its
    in-place form needs no warning."""
    if isinstance(mod, (nn.ReLU, nn.LeakyReLU, nn.RReLU)):
        return True
    if isinstance(mod, nn.Threshold):
        return float(mod.value) == 0.0
    if isinstance(mod, nn.Hardtanh) and not isinstance(mod, nn.ReLU6):
        return not (_constant_not_zero(mod.min_val) or _constant_not_zero(mod.max_val))
    return False


def _is_hf_linear(mod: nn.Module) -> bool:
    """GPT-2's ``Conv1D`` (a Linear with a transposed weight)."""
    return type(mod).__name__ == "Conv1D" and type(mod).__module__.startswith("transformers")


def _is_patch_embedding(mod: nn.Module) -> bool:
    """A convolution that cuts its input into non-overlapping patches (stride == kernel size,
    no padding, no dilation): the patch embedding of ViT-style models, a Linear map applied
    to each patch, whose epsilon-0 rule is the gradient (as lxt treats it). Overlapping
    convolutions (CNNs) stay refused: method='lrp' has the composites for them."""
    if not isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return False
    pad = mod.padding
    no_pad = pad == "valid" or (not isinstance(pad, str) and all(p == 0 for p in pad))
    return (no_pad and tuple(mod.stride) == tuple(mod.kernel_size)
            and all(d == 1 for d in mod.dilation))


def _is_rotary(mod: nn.Module) -> bool:
    """Rotary position tables: cos/sin of positions, independent of the input."""
    return type(mod).__name__.endswith("RotaryEmbedding")


def _layer_norm(mod: nn.LayerNorm, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out``'s value with the gradient of ``(x - mean) / const(std) * w + b``."""
    dims = tuple(range(-len(mod.normalized_shape), 0))
    mean = x.mean(dims, keepdim=True)
    centred = x - mean
    std = torch.sqrt((centred.detach() ** 2).mean(dims, keepdim=True) + mod.eps)
    y = centred / std
    if mod.weight is not None:
        y = y * mod.weight
    if mod.bias is not None:
        y = y + mod.bias
    return y + (out - y).detach()


class _Mode(TorchFunctionMode):
    """Rewrites bilinear products, fused attention and functional activations (see module doc)."""

    def __init__(self, variant: str, epsilon: float) -> None:
        super().__init__()
        self.variant = variant
        self.epsilon = epsilon
        self.suspended = 0  # > 0 inside a module whose output a hook replaces
        self.unruled: Counter[str] = Counter()  # nonlinear calls without a rule, by name
        # CP-LRP: activation outputs by id (kept alive while the block lasts so ids stay unique)
        self.gates: dict[int, torch.Tensor] = {}
        #: results without a gradient computed from input-dependent tensors (``h > c``, a mask
        #: derived from one): a selection on them is a clamp (see :func:`_filled`)
        self.derived: WeakIdKeyDictionary = WeakIdKeyDictionary()
        #: input-dependent results whose gradient is zero (``torch.sign(h)``, ``0.5 * sign(h)``):
        #: constant factors of a product (see :data:`_ZERO_GRADIENT`). Kept attached to the graph
        #: (not detached), so an output reached through them alone still has a (zero) gradient
        self.masks: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _only_masks(self, args: Any, kwargs: dict[str, Any]) -> bool:
        """Every input-dependent tensor among the arguments is in :attr:`masks`."""
        deps = [t for t in _tensors((*args, *kwargs.values())) if _dep(t)]
        return bool(deps) and all(t in self.masks for t in deps)

    def activation(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The identity rule on an elementwise nonlinearity; CP-LRP remembers it as a gate."""
        out = _identity_rule(x, y, self.epsilon)
        if self.variant == "cp":
            self.gates[id(out)] = out
        return out

    def product(self, a: Any, b: Any, out: Any) -> Any:
        """Uniform rule for a product of two input-dependent tensors.

        CP-LRP instead holds a gate (an activation's output multiplying another branch, as in
        gated MLPs) constant, as lxt's ``cp_gated_mlp_forward`` does."""
        if not (_dep(a) and _dep(b) and isinstance(out, torch.Tensor)) or a in self.masks or b in self.masks:
            return out  # one factor constant (a sign: zero gradient): a linear map
        if self.variant == "cp" and (id(a) in self.gates or id(b) in self.gates):
            return None
        return _scale(out, 0.5)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.suspended:
            return func(*args, **kwargs)
        if not self.masks:
            return self._dispatch(func, args, kwargs)
        return self._with_masks(func, args, kwargs)

    def _with_masks(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """:meth:`_dispatch` while :attr:`masks` holds tensors (review rev52x).

        A call whose input-dependent arguments are all masks (``tanh(sign(h))``,
        ``sign(h).abs()``, ``s.mul_(0.5)``) has a zero gradient: its result is a mask, and no rule
        applies (``tanh(sign(u)) * u`` got the identity rule on the tanh and then the uniform rule
        on the product, 0.14 off the comparison twin ``tanh((u > 0) - (u < 0)) * u``, largest
        1.2; ``sigmoid(sign(v)) * u`` 0.23 off; ``exp`` / ``abs`` of a sign were reported as
        unruled). A call that writes an input-dependent tensor into a mask in place
        (``s = sign(v); s.mul_(u)``, ``s += u``, ``s[..] = u``) leaves a tensor with a gradient:
        it stops being a mask (it stayed one, and ``s * w`` then gave both factors the whole
        relevance: 0.50 off the out-of-place twin, largest 1.4, where it was exact before
        aud52x)."""
        raw = str(getattr(func, "__name__", ""))
        name = raw.strip("_")
        written = _written(raw, args, kwargs)
        if self._only_masks(args, kwargs):
            out = func(*args, **kwargs)
            made = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]
            for t in made + ([written] if written is not None else []):
                if t.requires_grad:
                    self.masks[t] = True
                elif not (name.endswith("_like") or name.startswith("new_")) and _reads_input(
                        args[:1] if name in _SHAPED_AS else args, None if name in _SHAPED_AS else kwargs,
                        self.derived):
                    self.derived[t] = True  # (sign(h) > 0): a condition, as in _dispatch
            return out
        stale = [t for t in (written, getattr(written, "_base", None))
                 if isinstance(t, torch.Tensor) and t in self.masks]
        out = self._dispatch(func, args, kwargs)
        for t in stale:
            if t in self.masks:
                del self.masks[t]
        return out

    def _dispatch(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """The rules for one call (see the module doc)."""
        if func is F.scaled_dot_product_attention:
            return self._sdpa(func, args, kwargs)
        if func in _MATMULS or func in _MULS:
            if (func is torch.Tensor.mul_ and self.variant == "cp" and len(args) > 1
                    and _dep(args[0]) and _dep(args[1])
                    and (id(args[0]) in self.gates or id(args[1]) in self.gates)):
                # CP-LRP gate in an in-place product (g *= up): hold it constant before the
                # product is done; the result shares g's storage, ``g *= up`` rebinds g to it
                a, b = (t.detach() if id(t) in self.gates else t for t in args[:2])
                return a.mul_(b)
            out = func(*args, **kwargs)
            if isinstance(out, torch.Tensor) and not out.requires_grad:
                # a condition built by a product ((h > a) * (h < b)) depends on the input: a
                # selection on it is a clamp (aud51a: torch.where of it kept the plain gradient)
                if _reads_input(args, kwargs, self.derived):
                    self.derived[out] = True
                return out
            if isinstance(out, torch.Tensor) and self._only_masks(args, kwargs):
                self.masks[out] = True  # 0.5 * sign(h): still a mask
                return out
            if len(args) < 2:
                return out
            ruled = self.product(args[0], args[1], out)
            if ruled is None and func is torch.Tensor.mul_:
                return out  # in place: the product is done, the gate cannot be held constant
            if ruled is None:  # CP-LRP gate: no relevance through it
                a, b = args[0], args[1]
                a = a.detach() if id(a) in self.gates else a
                b = b.detach() if id(b) in self.gates else b
                return func(a, b, *args[2:], **kwargs)
            return ruled
        if func in _BADDBMMS:
            return self._baddbmm(func, args, kwargs)
        if func is F.normalize and args and _dep(args[0]):
            return self._normalize(func, args, kwargs)
        if func is torch.einsum:
            out = func(*args, **kwargs)
            ops = args[1:] if len(args) > 2 else (args[1] if len(args) == 2 else ())
            if sum(_dep(t) and t not in self.masks for t in ops) == 2 and len(ops) == 2:
                return _scale(out, 0.5)
            return out
        if func in _SOFTMAX and self.variant == "cp":
            return func(*args, **kwargs).detach()
        raw = str(getattr(func, "__name__", ""))
        name = raw.strip("_")
        if name in _ZERO_GRADIENT and raw in (name, name + "_") and args and _dep(args[0]):
            out = func(*args, **kwargs)
            self.masks[out] = True  # its gradient is zero: a constant factor, not a second one
            return out
        if args and _dep(args[0]) and (func in _ACT_FUNCS or name in _ACT_NAMES or (
                name in _INPLACE_ACTS and _in_place(raw, None, args, kwargs))):
            if _in_place(raw, _INPLACE_POS.get(name), args, kwargs):
                if not _gradient_is_rule(name, args, kwargs):
                    return self._in_place_rule(func, args, kwargs)
                # F.relu(h, inplace=True): as before aud51a (the ratio of the overwritten input
                # is 1, the gradient of relu_ passes the rest)
                out = func(*args, **kwargs)
                return self.activation(args[0], out) if func in _ACT_FUNCS else out
            out = func(*args, **kwargs)
            if name == "prelu" and _n_dep((*args, *kwargs.values())) > 1:
                self.unruled[name] += 1  # an input-dependent slope: a product, not an activation
                return out
            return self.activation(args[0], out)
        if name in _CLAMPS or name in _EXTREMA:
            in_place = _in_place(raw, 3 if name == "hardtanh" else None, args, kwargs)
            if in_place and args and _dep(args[0]):
                # h.clamp_(a, b), F.hardtanh_(h, a, b): the clamp's value computed on a copy
                # decides; a clamp of h itself gets its rule written back into h
                value = self._value_in_place(func, args, kwargs)
                if _clamped(name, args, kwargs, value) is args[0]:
                    return self._in_place_rule(func, args, kwargs, value)
            out = func(*args, **kwargs)
            x = _clamped(name, args, kwargs, out)
            if x is not None and in_place:
                self.unruled[name] += 1  # in place into a constant (c.clamp_(min=h)): not ruled
            elif x is not None:
                return self.activation(x, out)
            return out
        self._count_unruled(func, args, kwargs)
        out = func(*args, **kwargs)
        if name in ("where", "masked_fill"):
            x = _filled(func, args, kwargs, out, self.derived)
            if x is not None:
                return self.activation(x, out)
        elif not (name.endswith("_like") or name.startswith("new_")) and _reads_input(
                args[:1] if name in _SHAPED_AS else args, None if name in _SHAPED_AS else kwargs,
                self.derived):
            # shape / dtype only (torch.ones_like(scores).tril() as a causal mask: a fixed mask,
            # review rev50g: 0.032 off its arange twin with a fill of -5) is not derived
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor) and not t.requires_grad:
                    self.derived[t] = True
            if isinstance(out, torch.Tensor) and out.requires_grad and self._only_masks(args, kwargs):
                self.masks[out] = True  # sign(h).to(dtype), sign(h).unsqueeze(-1): still a mask
        return out

    @staticmethod
    def _value_in_place(func: Any, args: Any, kwargs: dict[str, Any]) -> torch.Tensor:
        """What the in-place call ``func(*args, **kwargs)`` writes into ``args[0]``, computed on a
        copy (``args[0]`` is left as it is)."""
        with torch.no_grad():
            copy = args[0].detach().clone()
            out = func(copy, *args[1:], **kwargs)
        return out if isinstance(out, torch.Tensor) else copy

    def _in_place_rule(self, func: Any, args: Any, kwargs: dict[str, Any],
                       value: torch.Tensor | None = None) -> torch.Tensor:
        """An activation (or clamp) computed in place (``F.elu_(h)``, ``h.sigmoid_()``,
        ``F.threshold(h, a, b, inplace=True)``, ``h.clamp_(a, b)``): its identity rule, written
        back into its input as the call does. The value is computed on a copy, so the rule sees
        the input before it is overwritten; ``h.copy_(ruled)`` then carries the rule's gradient
        to ``h``'s history, and a caller that reads ``h`` afterwards (``F.elu_(h); fc(h)``)
        reads the activation, as it does without the rules. Until audit aud52x these calls kept
        their plain gradient and were only reported (``h.sigmoid_()`` 9.2 off the ``nn.Sigmoid``
        twin, largest relevance 9.5; ``F.elu_`` 0.095; ``h.clamp_(-0.3, 0.3)`` 0.24)."""
        x: torch.Tensor = args[0]
        ruled = self.activation(x, self._value_in_place(func, args, kwargs) if value is None else value)
        x.copy_(ruled)
        if self.variant == "cp":
            self.gates[id(x)] = x  # the caller's tensor is the gate now (as for in-place modules)
        return x

    def _count_unruled(self, func: Any, args: Any, kwargs: dict[str, Any]) -> None:
        name = str(getattr(func, "__name__", "")).strip("_")
        if name in _UNRULED and any(_dep(a) for a in (*args, *kwargs.values())):
            self.unruled[name] += 1
        elif name in _PRODUCTS and _is_product(name, args, kwargs):
            self.unruled[name] += 1
        elif name in _DIVS and len(args) > 1:  # x / y with an input-dependent divisor
            divisor = args[0] if name in ("rtruediv", "rdiv") else args[1]
            if _dep(divisor):
                self.unruled["div"] += 1

    def _normalize(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """``x / ||x||_p`` (``F.normalize``) with the norm held constant: the rule of RMSNorm,
        of which it is a scaled copy (the plain gradient of this degree-0 map gives
        ``sum(x * g) == 0``: no relevance at all reaches ``x``)."""
        out = func(*args, **kwargs)
        names = ("p", "dim", "eps")
        given = dict(zip(names, args[1:4]))
        given.update({k: kwargs[k] for k in names if k in kwargs})
        x = args[0]
        norm = torch.linalg.vector_norm(x.detach(), float(given.get("p", 2.0)), dim=given.get("dim", 1),
                                        keepdim=True).clamp_min(float(given.get("eps", 1e-12)))
        y = x / norm
        return y + (out - y).detach()

    def _baddbmm(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """The uniform rule on ``batch1 @ batch2`` of a ``baddbmm`` (the plain gradient gave
        both factors the full relevance, doubling it; audit aud34l); ``input`` is summed."""
        out = func(*args, **kwargs)
        inp = args[0] if args else kwargs.get("input")
        b1: Any = args[1] if len(args) > 1 else kwargs.get("batch1")
        b2: Any = args[2] if len(args) > 2 else kwargs.get("batch2")
        if not (_dep(b1) and _dep(b2)):
            return out
        if not _dep(inp):
            return _scale(out, 0.5)
        alpha, beta = kwargs.get("alpha", 1), kwargs.get("beta", 1)
        ruled = beta * inp + alpha * _scale(torch.bmm(b1, b2), 0.5)
        return out.detach() + (ruled - ruled.detach())

    def _sdpa(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        names = ("query", "key", "value")
        qkv = list(args[:3]) + [kwargs.pop(n) for n in names[len(args[:3]):] if n in kwargs]
        rest = args[3:]
        q, k, v = qkv
        if self.variant == "cp":
            q, k = q.detach(), k.detach()
        else:
            f1 = 0.5 if _dep(q) and _dep(k) else 1.0  # Q K^T
            f2 = 0.5 if (_dep(q) or _dep(k)) and _dep(v) else 1.0  # softmax(.) V
            q = _scale(q, f1 * f2) if _dep(q) and f1 * f2 != 1.0 else q
            k = _scale(k, f1 * f2) if _dep(k) and f1 * f2 != 1.0 else k
            v = _scale(v, f2) if _dep(v) and f2 != 1.0 else v
        if kwargs.get("dropout_p"):
            kwargs["dropout_p"] = 0.0
        return func(q, k, v, *rest, **kwargs)


# ------------------------------------------------------------------------ nn.MultiheadAttention
def _check_mha(mod: nn.MultiheadAttention, where: str, method: str) -> None:
    if mod.in_proj_weight is None or mod.bias_k is not None or mod.add_zero_attn:
        raise UnsupportedModelError(
            f"{method}: nn.MultiheadAttention {where} uses separate q/k/v widths, bias_k/bias_v or "
            "add_zero_attn, which the AttnLRP rules do not cover; use a plain "
            "nn.MultiheadAttention(embed_dim, num_heads) or write the attention with "
            "F.scaled_dot_product_attention."
        )


def _inside_mha(model: nn.Module, path: str) -> bool:
    """``path`` is a child of an ``nn.MultiheadAttention`` (its ``out_proj``)."""
    parent = path.rpartition(".")[0]
    if not path:
        return False
    mod = model.get_submodule(parent) if parent else model
    return isinstance(mod, nn.MultiheadAttention)


def _mha(mod: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any],
         out: Any) -> Any:
    """``nn.MultiheadAttention``'s output value with the gradient of an explicit computation
    (input projection, the rules' scaled dot-product attention, output projection)."""
    names = ("query", "key", "value")
    q_in, k_in, v_in = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
    if not any(_dep(t) for t in (q_in, k_in, v_in)):
        return None
    if not mod.batch_first:
        q_in, k_in, v_in = (t.transpose(0, 1) for t in (q_in, k_in, v_in))
    e, h = mod.embed_dim, mod.num_heads
    w, b = mod.in_proj_weight, mod.in_proj_bias
    proj = [F.linear(t, w[i * e:(i + 1) * e], None if b is None else b[i * e:(i + 1) * e])
            for i, t in enumerate((q_in, k_in, v_in))]
    n, length, s_len = q_in.shape[0], q_in.shape[1], k_in.shape[1]
    q, k, v = (p.reshape(n, -1, h, e // h).transpose(1, 2) for p in proj)
    mask = _mha_mask(kwargs.get("attn_mask", args[5] if len(args) > 5 else None),
                     kwargs.get("key_padding_mask", args[3] if len(args) > 3 else None),
                     n, h, length, s_len, q.dtype)
    if kwargs.get("is_causal", False) and mask is None:
        mask = torch.full((length, s_len), -math.inf, dtype=q.dtype, device=q.device).triu(1)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # the mode applies the rule
    o = o.transpose(1, 2).reshape(n, length, e)
    y = mod.out_proj(o)
    if not mod.batch_first:
        y = y.transpose(0, 1)
    first = out[0] if isinstance(out, tuple) else out
    y = y + (first - y).detach()
    return (y, *out[1:]) if isinstance(out, tuple) else y


def _mha_mask(attn_mask: Any, pad: Any, n: int, h: int, length: int, s_len: int,
              dtype: torch.dtype) -> torch.Tensor | None:
    """Additive float mask ``n x h x L x S`` (or None) from MHA's boolean/float masks."""
    total: torch.Tensor | None = None
    for m in (attn_mask, pad):
        if m is None:
            continue
        add = (torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, -math.inf)
               if m.dtype == torch.bool else m.to(dtype))
        if m is pad:
            add = add.reshape(n, 1, 1, s_len)
        elif add.ndim == 3:
            add = add.reshape(n, h, length, s_len)
        total = add if total is None else total + add
    return total


# ------------------------------------------------------------------------ checks
def check_transformer(model: nn.Module, method: str = "attnlrp") -> None:
    """Refuse modules the AttnLRP rules do not cover, naming the module and the fix.

    Raises:
        UnsupportedModelError: a module type without a rule, or an attention implementation
            other than ``"eager"``/``"sdpa"``.
    """
    for path, mod in model.named_modules():
        where = repr(path) if path else "the model itself"
        for types, hint in _REFUSED_HINTS:
            if isinstance(mod, types) and not _is_patch_embedding(mod):
                raise UnsupportedModelError(
                    f"{method}: module {where} of type {type(mod).__name__} is not supported by the "
                    f"AttnLRP rules: {hint}."
                )
        if isinstance(mod, nn.MultiheadAttention):
            _check_mha(mod, where, method)
            continue
        cfg = getattr(mod, "config", None)
        impl = getattr(cfg, "_attn_implementation", None) if cfg is not None else None
        if isinstance(impl, str) and impl not in ("eager", "sdpa"):
            raise UnsupportedModelError(
                f"{method}: module {where} uses attn_implementation={impl!r}; the rules see "
                "attention written with matmul/softmax ('eager') or "
                "F.scaled_dot_product_attention ('sdpa'). Load the model with "
                "attn_implementation='eager' (or 'sdpa')."
            )
        if any(True for _ in mod.children()) or _inside_mha(model, path):
            continue
        if (isinstance(mod, _LINEAR_MODULES) or _is_hf_linear(mod) or _is_patch_embedding(mod) or _is_rotary(mod)
                or isinstance(mod, nn.LayerNorm) or _is_rms(mod) or _is_activation(mod)):
            continue
        if type(mod).__name__.endswith("LayerNorm") or type(mod).__name__.endswith("Norm"):
            raise UnsupportedModelError(
                f"{method}: module {where} is a normalisation of type {type(mod).__name__} that "
                "the identity rule does not know (supported: nn.LayerNorm, nn.RMSNorm and "
                "*RMSNorm classes). Replace it by nn.LayerNorm/nn.RMSNorm, or use a gradient "
                "method such as 'integrated_gradients'."
            )
        if not type(mod).__module__.startswith("torch.") and not any(True for _ in mod.parameters()):
            continue  # a parameter-free user module: its torch calls go through the rules
        if type(mod).__module__.startswith("torch."):
            raise UnsupportedModelError(
                f"{method}: module {where} of type {type(mod).__name__} has no AttnLRP rule "
                "(rules exist for Linear/Conv1D, Embedding, LayerNorm/RMSNorm, elementwise "
                "activations, dropout and attention written with matmul/softmax or "
                "scaled_dot_product_attention). Use a gradient method such as "
                "'integrated_gradients', or method='lrp' for CNNs."
            )
        raise UnsupportedModelError(
            f"{method}: leaf module {where} of type {type(mod).__name__} holds parameters but is "
            "not a layer the AttnLRP rules know (Linear, Conv1D, Embedding, LayerNorm/RMSNorm). "
            "Write it with nn.Linear and elementwise activations, or use a gradient method such "
            "as 'integrated_gradients'."
        )


# ------------------------------------------------------------------------ installation
@contextlib.contextmanager
def attnlrp_rules(model: nn.Module, variant: str = "attnlrp", epsilon: float = 1e-10,
                  unruled: Counter[str] | None = None) -> Iterator[None]:
    """Install the AttnLRP (or CP-LRP) rules on ``model`` for the ``with`` block.

    Inside the block, ``x * grad`` of the explained output w.r.t. any input-dependent tensor
    (embeddings, hidden states) is its relevance; the explained output itself carries
    relevance ``f(x)`` (gradient 1). Forward values are unchanged.

    Args:
        model: the transformer (a Hugging Face model or any module built from the supported
            layers; see :func:`check_transformer`).
        variant: ``"attnlrp"`` or ``"cp"`` (CP-LRP). default="attnlrp".
        epsilon: stabiliser of the identity rule's ratio ``y / x``. default=1e-10.
        unruled: a counter that receives, by name, the nonlinear functional calls of the
            model's own code that no rule covers (``torch.exp``, ``F.layer_norm``, a division
            by an input-dependent tensor, ...; they go through as plain gradients). default=None.

    Raises:
        InputError: an unknown variant or a bad epsilon.
        UnsupportedModelError: see :func:`check_transformer`.
    """
    if variant not in VARIANTS:
        raise InputError(f"variant={variant!r} must be one of {VARIANTS}.")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (epsilon >= 0 and math.isfinite(epsilon)):
        raise InputError(f"epsilon={epsilon!r} must be a finite number >= 0.")
    check_transformer(model)
    mode = _Mode(variant, float(epsilon))
    params = [p for p in model.parameters()]
    req = [p.requires_grad for p in params]
    handles: list[Any] = []

    def pre(mod: nn.Module, args: Any) -> None:
        mode.suspended += 1

    def post(mod: nn.Module, args: Any, out: Any) -> Any:
        mode.suspended -= 1
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
            raise UnsupportedModelError(
                f"attnlrp: {type(mod).__name__} must take and return one tensor to carry a rule.")
        x = args[0]
        if id(mod) in switched:
            return _write_back(x, out, None if not _dep(x) or mode.suspended else mode.activation(x, out))
        if not _dep(x) or mode.suspended:
            return None
        if isinstance(mod, nn.LayerNorm):
            return _layer_norm(mod, x, out)
        if _is_rms(mod):  # elementwise linear once the scale is constant
            return _identity_rule(x, out, mode.epsilon)
        if getattr(mod, "inplace", False) is True and out is x and not _module_gradient_is_rule(mod):
            # still in place (an inplace flag the block could not switch off): x is overwritten
            mode.unruled[f"{type(mod).__name__}(inplace=True)"] += 1
            return None
        return mode.activation(x, out)

    def mha_post(mod: nn.Module, args: Any, kwargs: Any, out: Any) -> Any:
        mode.suspended -= 1
        if mode.suspended:
            return None
        assert isinstance(mod, nn.MultiheadAttention)
        return _mha(mod, args, kwargs, out)

    # activation modules computed in place lose the input their identity rule needs: run them out
    # of place for the block (the NoInplace canonizer of method='lrp'; aud51a: nn.ELU(inplace=True)
    # was 0.095 off its out-of-place twin, nn.Threshold(0.1, 0.5, inplace=True) 9.2, silently).
    # Those whose plain gradient is their rule (ReLU) are left as they are.
    in_place = [m for m in model.modules() if _is_activation(m) and getattr(m, "inplace", False) is True
                and not _module_gradient_is_rule(m)]
    switched = {id(m) for m in in_place}

    def _write_back(x: torch.Tensor, out: torch.Tensor, ruled: torch.Tensor | None) -> torch.Tensor:
        # the module was in place: its caller may read its input afterwards instead of the
        # returned tensor ('self.act(h); return self.fc(h)'); run out of place, h kept its
        # pre-activation value and the block explained another function, silently (review
        # rev51a: f(x) 0.026 instead of -0.775 for nn.ELU(inplace=True)). Write the result
        # (with the rule's gradient) back into the input, as the in-place module does.
        mode.suspended += 1
        try:
            x.copy_(out if ruled is None else ruled)
        finally:
            mode.suspended -= 1
        if ruled is not None and mode.variant == "cp":
            mode.gates[id(x)] = x  # the caller's tensor is the gate now
        return x
    try:
        for m in in_place:
            m.inplace = False  # type: ignore[assignment]
        for p in params:
            p.requires_grad_(False)
        for mod in model.modules():
            if isinstance(mod, nn.MultiheadAttention):
                handles.append(mod.register_forward_pre_hook(pre))
                handles.append(mod.register_forward_hook(mha_post, with_kwargs=True))
            if isinstance(mod, nn.LayerNorm) or _is_rms(mod) or _is_activation(mod):
                handles.append(mod.register_forward_pre_hook(pre))
                handles.append(mod.register_forward_hook(post))
        with mode:
            yield
    finally:
        if unruled is not None:
            unruled.update(mode.unruled)
        for h in handles:
            h.remove()
        for p, r in zip(params, req):
            p.requires_grad_(r)
        for m in in_place:
            m.inplace = True  # type: ignore[assignment]
