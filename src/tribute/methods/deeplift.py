"""DeepLIFT with the rescale rule, by forward hooks on standard torch modules.

Every model row carries its input *and* its baseline: the engine's rows are composed as
``cat([x_rows, baseline_rows])``, so each nonlinearity sees the pair ``(x, x0)`` in one call.
A forward hook replaces the nonlinearity's output ``y`` by a tensor with the same value whose
gradient w.r.t. its input is the rescale multiplier ``(y - y0) / (x - x0)`` (the ordinary
derivative where ``|x - x0| <= eps``); max pooling routes ``y - y0`` to the arg-max of the input
and of the baseline (the rule Captum uses, written as an exact adjoint so overlapping windows
add up). The multipliers then chain through linear layers by ordinary backpropagation, and
``phi = (x - x0) * dS/dx`` satisfies summation-to-delta: ``sum(phi) = S(x) - S(x0)``.

No backward hooks are used, so in-place activations (``ReLU(inplace=True)``) work -- also on
the model's input itself (the game hands the model a copy of the input rows, into which the
activated value is written back), and the
bookkeeping is per call, so a nonlinearity module used several times in one forward pass is
handled correctly.

Limits: only ``torch.nn`` modules are seen. Nonlinear functional calls inside ``forward``
(``F.relu``, ``torch.sigmoid``, ``x * y``) cannot be detected; DeepLIFT then treats them as
their plain gradient and summation-to-delta fails — the gap is reported and a warning is
raised when it is large. Unknown leaf modules and composite ``torch.nn`` modules other than
containers (``MultiheadAttention``, ``LSTM``, ``TransformerEncoderLayer``, ``LayerNorm``, ...)
are refused with :class:`UnsupportedModelError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attribution import Attribution
from ..errors import InputError, ModelOutputError, UnsupportedModelError, user_stacklevel
from ..games.base import Game
from ..games.features import ProbeChunk
from ..params import Interval, declare
from .base import Cost, Method, Tags, coalition_cost, register
from .gradients_basic import feature_game, output_transform
from .lrp.canonizers import Add

__all__ = ["DeepLift", "check_deeplift_model"]

#: Affine (or piecewise-affine-free) modules: ordinary gradients are exact multipliers.
_LINEAR: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
    nn.ConvTranspose3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity, nn.ZeroPad1d, nn.ZeroPad2d,
    nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    Add,  # lrp's residual module (the fix lrp's warning asks for): a sum, linear
)
#: Elementwise nonlinearities: the rescale rule.
_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Softplus, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
    nn.LogSigmoid, nn.Softsign, nn.Tanhshrink,
)
_MAXPOOL: dict[type[nn.Module], Callable[..., Any]] = {
    nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d, nn.MaxPool3d: F.max_pool3d,
}
#: How many trailing axes each max pooling pools.
_POOL_DIMS: dict[type[nn.Module], int] = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}
#: Allowed only as the model's last operation: DeepLIFT then explains the logits.
_FINAL: tuple[type[nn.Module], ...] = (nn.Softmax, nn.LogSoftmax)
_CONTAINERS: tuple[type[nn.Module], ...] = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def check_deeplift_model(model: nn.Module) -> None:
    """Refuse models with modules the rescale rule cannot handle.

    Leaf modules must be of a supported type (exact type: a subclass may override
    ``forward``). Composite modules are allowed when they are containers or user-defined
    (their children are checked; their own functional code cannot be, see the module
    docstring); composite ``torch.nn`` modules such as ``MultiheadAttention`` are refused.

    Raises:
        UnsupportedModelError: naming the first offending module path and type.
    """
    known = set(_LINEAR) | set(_ELEMENTWISE) | set(_MAXPOOL) | set(_FINAL)
    for path, mod in model.named_modules():
        kind = type(mod)
        where = repr(path) if path else "the model itself"
        if kind in known:
            if kind in _MAXPOOL and getattr(mod, "return_indices", False):
                raise UnsupportedModelError(f"deeplift: {where} ({kind.__name__}) returns indices; only plain max pooling is supported.")
            continue
        has_children = any(True for _ in mod.children())
        if isinstance(mod, _CONTAINERS):
            continue
        builtin = kind.__module__.startswith("torch.")
        if has_children and not builtin:
            continue  # a user-defined block: its children are checked one by one
        raise UnsupportedModelError(
            f"deeplift: module {where} of type {kind.__name__} is not supported by the rescale "
            "rule (supported: Linear, Conv1d/2d/3d, pooling, BatchNorm (eval), Flatten, "
            "Dropout, elementwise activations such as ReLU/Sigmoid/Tanh, and Softmax as the last "
            "layer, inside Sequential or user-defined blocks). Use 'integrated_gradients' or "
            "'expected_gradients' for this model."
        )


def _local_derivative(mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Elementwise derivative of ``mod`` at ``x`` (calls ``forward`` directly: no hooks fire)."""
    with torch.enable_grad():
        xt = x.detach().clone().requires_grad_(True)
        yt = mod.forward(xt * 1.0)  # a non-leaf copy, so in-place modules are fine
        (d,) = torch.autograd.grad(yt.sum(), xt)
    return d


_DEFAULT_EPS = 1e-10  # DeepLift's default eps


def _small(dx: torch.Tensor, eps: float) -> torch.Tensor:
    """Where ``|x - x0|`` is too small for the finite-difference ratio: ``<= eps``, not ``<``,
    so that ``dx == 0`` is caught also when ``eps`` rounds to zero in the tensor's dtype
    (``1e-10`` is zero in float16) or is 0 -- the ratio was ``0 / 0`` there, and its NaN
    reached the forward value (``0 * NaN``) and every credit (audit aud34l)."""
    return dx.abs() <= eps


def _off_delta(gap: torch.Tensor, f_x: torch.Tensor, f_b: torch.Tensor, dtype: torch.dtype) -> bool:
    """Summation-to-delta fails by more than rounding: ``|gap| > tol * |delta| + atol`` for
    some sample, where ``atol`` covers the rounding of the model's own outputs in ``dtype``
    (a float16 logit near 0.5 has steps of 5e-4, so a small ``S(x) - S(x0)`` of a model
    built only from supported modules was reported as off by 50%, blaming functional
    nonlinearities it did not have; audit aud34l)."""
    if not gap.numel():
        return False
    tol = 1e-3 if dtype == torch.float64 else 1e-2
    scale = torch.maximum(f_x.abs(), f_b.abs())
    atol = torch.clamp_min(8 * torch.finfo(dtype).eps * scale, 1e-6)
    return bool((gap.abs() > tol * (f_x - f_b).abs() + atol).any())


class _Hooks:
    """Forward hooks that turn ordinary backprop into DeepLIFT-rescale multipliers."""

    def __init__(self, root: nn.Module, eps: float) -> None:
        self.root = root
        self.eps = eps
        self.pairs = 0  # rows of the current chunk (the model sees 2x as many)
        self.ref_out: torch.Tensor | None = None
        self.final: torch.Tensor | None = None
        self.final_path = ""
        self.skipped_final = False
        self.paths = {m: p for p, m in root.named_modules()}
        self.stash: dict[nn.Module, list[torch.Tensor]] = {}
        self.handles: list[Any] = []
        #: inputs that moved (0 < |x - x0|) yet by at most eps, so took the ordinary derivative:
        #: their count and the largest move (small42b: the warning's cause when eps is large)
        self.eps_count = 0
        self.eps_moved = 0.0

    def _note_eps(self, dx: torch.Tensor, small: torch.Tensor) -> None:
        moved = small & (dx != 0)
        if bool(moved.any()):
            self.eps_count += int(moved.sum())
            self.eps_moved = max(self.eps_moved, float(dx.abs()[moved].max()))

    # ---------------------------------------------------------------- install
    def install(self) -> None:
        for mod in self.paths:
            kind = type(mod)
            if kind in _ELEMENTWISE:
                self.handles.append(mod.register_forward_pre_hook(self._pre))
                self.handles.append(mod.register_forward_hook(self._rescale))
            elif kind in _MAXPOOL:
                self.handles.append(mod.register_forward_hook(self._maxpool))
            elif kind in _FINAL:
                self.handles.append(mod.register_forward_hook(self._final_layer))
        self.handles.append(self.root.register_forward_hook(self._root))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.stash.clear()

    # ------------------------------------------------------------------ hooks
    def _split(self, mod: nn.Module, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.pairs
        if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[0] != 2 * r:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise UnsupportedModelError(
                f"deeplift: module {self.paths.get(mod, '?')!r} ({type(mod).__name__}) got {shape}, "
                f"not a batch of {2 * r} rows (inputs and baselines); DeepLIFT needs every layer "
                "to keep the batch axis first and unchanged."
            )
        return t[:r], t[r:]

    def _pre(self, mod: nn.Module, args: tuple[Any, ...]) -> Any:
        x = args[0]
        self.stash.setdefault(mod, []).append(x)
        if getattr(mod, "inplace", False):  # keep x intact for the hook below (which writes back)
            return (x.clone(), *args[1:])
        return None

    def _rescale(self, mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        x = self.stash[mod].pop()
        xi, xr = self._split(mod, x)
        yi, yr = self._split(mod, out)
        dx = (xi - xr).detach()
        dy = (yi - yr).detach()
        small = _small(dx, self.eps)
        self._note_eps(dx, small)
        mult = dy / torch.where(small, torch.ones_like(dx), dx)
        small = small | ~torch.isfinite(mult)  # a 16-bit ratio that overflowed
        if bool(small.any()):
            mult = torch.where(small, _local_derivative(mod, xi), mult)
        # Value y (exactly), gradient w.r.t. x: the multiplier. The baseline half keeps its own
        # graph: the explained (input) half never reaches it, unless the model mixes the rows
        # of its batch (then the baseline rows get a gradient, see ``on_chunk``).
        top = yi.detach() + (xi - xi.detach()) * mult
        y = torch.cat([top, yr])
        if getattr(mod, "inplace", False) and not (x.requires_grad and x.grad_fn is None):
            # The module ran on a clone (_pre); an in-place activation overwrites its input, and
            # a model that reads that tensor again (a pre-activation skip ``l1(relu_(h)) + h``
            # adds relu(h)) must see the activated value, as without hooks: write y back. The
            # clone had left h unchanged, so the hooked model computed another function and
            # its own outputs hid the error from the gap (audit aud36n).
            try:
                x.copy_(y)
            except RuntimeError as exc:
                if "leaf" not in str(exc):
                    raise
                # a slice of the model's own input (``relu_(x[:, :2])``): PyTorch forbids
                # writing into it (a bare "view of a leaf Variable" RuntimeError), and not
                # writing would explain another function (the model reads x again), gap zero
                raise UnsupportedModelError(
                    f"deeplift: the in-place {type(mod).__name__} (inplace=True) is applied to a "
                    "view (slice) of the model's input tensor; PyTorch cannot differentiate "
                    "that. Set the module's inplace=False (and use its output), or clone the "
                    "input in forward before modifying it.") from None
            return x
        return y

    def _maxpool(self, mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        x = args[0]
        xi, xr = self._split(mod, x)
        yi, yr = self._split(mod, out)
        pool = _MAXPOOL[type(mod)]
        m: Any = mod
        _, idx = pool(x.detach(), m.kernel_size, m.stride, m.padding, m.dilation,
                      ceil_mode=m.ceil_mode, return_indices=True)
        idx_i, idx_r = idx[: self.pairs], idx[self.pairs :]
        yi_d, yr_d = yi.detach(), yr.detach()
        ymax = torch.maximum(yi_d, yr_d)
        to_input, to_ref = ymax - yr_d, yi_d - ymax  # sum: y - y0, routed to each arg-max
        dx = (xi - xr).detach()
        small = _small(dx, self.eps)
        self._note_eps(dx, small)
        inv = 1.0 / torch.where(small, torch.ones_like(dx), dx)
        small = small | ~torch.isfinite(inv)  # a 16-bit reciprocal that overflowed
        inv = torch.where(small, torch.zeros_like(dx), inv)
        v = xi - xi.detach()  # zero, carries the gradient

        # the pooled axes are the last ones (an (N, L) input to MaxPool1d is pooled like an
        # unbatched (C, L) one, its indices count along L): gather over them
        d = x.ndim - _POOL_DIMS[type(mod)]

        def gather(t: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
            return t.flatten(d).gather(d, ix.flatten(d)).view_as(ix)

        # Adjoint: grad_x = (scatter(g*to_input @ argmax x) + scatter(g*to_ref @ argmax x0)) / dx,
        # or the plain max-pool gradient where |dx| <= eps.
        top = (yi_d + to_input * gather(v * inv, idx_i) + to_ref * gather(v * inv, idx_r)
               + gather(v * small.to(v.dtype), idx_i))
        return torch.cat([top, yr])

    def _final_layer(self, mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        self.final = args[0]
        self.final_path = self.paths.get(mod, "?")
        self.skipped_final = True
        first: torch.Tensor = args[0]
        return first

    def _root(self, mod: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        if self.final is not None and out is not self.final:
            raise UnsupportedModelError(
                f"deeplift: module {self.final_path!r} "
                "(Softmax/LogSoftmax) is not the model's last operation; the rescale rule handles "
                "it only as the final layer (then the logits are explained)."
            )
        self.final = None
        if isinstance(out, torch.Tensor):
            top, ref = self._split(mod, out)
            self.ref_out = ref.detach()
            return top
        raise UnsupportedModelError(
            f"deeplift: the model returned {type(out).__name__}; DeepLIFT needs a model that returns "
            "one tensor (wrap it to return the output to explain)."
        )


@register
class DeepLift(Method):
    """DeepLIFT (rescale rule): ``phi = (x - x0) * m`` with multipliers from finite differences.

    Runs each input with its baseline through the model in one pass (see the module
    docstring); summation-to-delta ``sum(phi) = S(x) - S(x0)`` holds for models built from
    the supported ``torch.nn`` modules and is reported in ``Attribution.gap``. A final
    ``Softmax``/``LogSoftmax`` module is skipped: the logits are explained
    (``extra["explained"] == "logits"``). With a background set the result is the average of
    the per-baseline attributions (DeepSHAP-style).

    Args:
        eps: where ``|x - x0| <= eps`` a nonlinearity uses its ordinary derivative instead of
            the finite-difference ratio. default=1e-10.

    Costs 2 evaluations per input (input and baseline, one forward and one backward pass).

    Reference: Shrikumar, Greenside & Kundaje (2017), "Learning Important Features Through
    Propagating Activation Differences".
    """

    name = "deeplift"
    tags = Tags(family="gradient", needs_gradients=True, has_gap=True, games=("feature",),
                model_specific=True)
    paper = "Shrikumar et al. (2017), Learning Important Features Through Propagating Activation Differences"
    constraints = declare({"eps": Interval(float, 0.0)})
    reads_full = False  # f(x) comes from its own forward pass

    def __init__(self, eps: float = 1e-10) -> None:
        self.eps = eps

    def min_budget(self, game: Game) -> int:
        return 2 + game.n_evals  # the inputs' and the baselines' passes, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = feature_game(game, self.name)
        root = fg.model.module
        if root is None:
            raise UnsupportedModelError("deeplift needs a torch.nn.Module (it hooks the model's layers); got a plain callable.")
        outside = output_transform(fg)
        if outside is not None:
            raise InputError(
                f"deeplift: {outside}, outside the model, which the rescale rule cannot see; use "
                "output='raw' (DeepLIFT explains logits: a final Softmax/LogSoftmax module is "
                "skipped; drop a final Sigmoid module)."
            )
        check_deeplift_model(root)

        b_total, t_count, mb = fg.n_samples, fg.n_targets, fg.n_background
        device, dtype = fg.model.device, fg.compute_dtype
        x_d = fg.inputs_flat().detach().to(device, dtype)
        table = fg.baseline_flat().detach().to(device, dtype)
        per_sample = mb == 1 and table.shape[0] == b_total and b_total > 1
        x64, table64 = x_d.to("cpu", torch.float64), table.to("cpu", torch.float64)
        shapes = fg.input_shapes()
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        d = int(sum(sizes))
        phi = torch.zeros(b_total, t_count, d, dtype=torch.float64)
        f_x = torch.zeros(b_total, t_count, dtype=torch.float64)
        f_b = torch.zeros(b_total, t_count, dtype=torch.float64)
        hooks = _Hooks(root, float(self.eps))
        bg_w = fg.background_weights()  # M weights summing to 1 (equal unless summarised)

        def base_rows(tab: torch.Tensor, b: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
            if mb > 1:
                return tab[j]
            if per_sample:
                return tab[b]
            return tab[:1].expand(b.shape[0], -1)

        def make_points(xs: tuple[torch.Tensor, ...], b: torch.Tensor,
                        j: torch.Tensor) -> tuple[torch.Tensor, ...]:
            base = base_rows(table, b, j)
            hooks.pairs = int(b.shape[0])
            return tuple(
                torch.cat([xp, bp.reshape(-1, *s)])
                for xp, bp, s in zip(xs, torch.split(base, sizes, dim=1), shapes)
            )

        def on_chunk(c: ProbeChunk) -> None:
            b, j = c.sample, c.point
            r = b.shape[0]
            # aud49g: the baseline rows' gradients are zero unless the model mixes the rows of a
            # pass. On one input the pass is [x, x0] (too few rows for the engine's check), and
            # the credits came from the mixed rows: 0.046 off for a largest credit of 0.103
            for gi in c.grads:
                mixed = gi[r:].detach().reshape(r, -1)
                hit = (torch.isfinite(mixed) & (mixed != 0)).any(dim=1).nonzero()
                if hit.numel():
                    raise ModelOutputError(
                        "deeplift: the model's outputs change with the other rows of their forward "
                        f"pass: their gradient with respect to the baseline row of sample "
                        f"{int(b[int(hit[0, 0])])}, which DeepLIFT runs next to the inputs, is not "
                        "zero. DeepLIFT evaluates each "
                        "input together with its baseline, so its credits would depend on them. "
                        "Typical causes: BatchNorm with track_running_stats=False, a layer that "
                        "normalises, pools or attends over the batch axis. Make the model "
                        "evaluate each row on its own.")
            g = torch.cat([gi[:r].reshape(r, t_count, -1) for gi in c.grads], dim=-1)  # R x T x D
            diff = x64[b] - base_rows(table64, b, j)
            wj = bg_w[j] if mb > 1 else torch.ones(b.shape[0], dtype=torch.float64)
            phi.index_add_(0, b, diff[:, None, :] * g * wj[:, None, None])
            f_x.index_add_(0, b, c.values * wj[:, None])
            assert hooks.ref_out is not None
            ref_vals = fg.target.select(hooks.ref_out, b.to(hooks.ref_out.device))
            f_b.index_add_(0, b, ref_vals.to("cpu", torch.float64) * wj[:, None])

        @contextmanager
        def installed() -> Iterator[None]:
            hooks.install()
            try:
                yield
            finally:
                hooks.remove()

        # Every point carries its input and its baseline (2 model rows, 2 evaluations per input
        # whatever the number of background rows); the root hook keeps the input half's output.
        fg.probe(on_chunk, n_points=mb, make_points=make_points, grad="inputs", rows_per_point=2,
                 context=installed, evals=2, desc="deeplift")

        values = fg.elements_to_players(phi)
        delta = f_x - f_b
        gap = values.sum(-1) - delta
        rel = float((gap.abs() / delta.abs().clamp_min(1e-12)).max()) if gap.numel() else 0.0
        if _off_delta(gap, f_x, f_b, dtype):
            # small42b: with a large eps the cause is eps itself (ordinary derivatives where the
            # input moved by <= eps, as documented), not nonlinearities outside torch.nn modules
            by_eps = hooks.eps_moved > _DEFAULT_EPS
            warnings.warn(
                f"deeplift: summation-to-delta is off by up to {rel:.1%} of S(x) - S(x0). "
                + (f"eps={self.eps!r} made {hooks.eps_count} nonlinearity inputs that moved by up to "
                   f"{hooks.eps_moved:.3g} (|x - x0| <= eps) use their ordinary derivative instead of "
                   "DeepLIFT's ratio (y - y0) / (x - x0), as documented; summation-to-delta needs a "
                   f"small eps (default {_DEFAULT_EPS:g}). Lower eps for DeepLIFT's credits (other "
                   "causes: nonlinearities outside torch.nn modules, seen as plain gradients)."
                   if by_eps else
                   "The model probably applies nonlinearities outside torch.nn modules (F.relu, "
                   "torch.sigmoid, products of activations in forward), which DeepLIFT sees only as "
                   "plain gradients. Use nn.Module activations or 'integrated_gradients'."),
                stacklevel=user_stacklevel(),
            )
        extra: dict[str, Any] = {"explained": "logits" if hooks.skipped_final else "output",
                                 "delta": delta.numpy()}
        return fg.attribution(values, self.name, self.get_params(), gap=gap, extra=extra)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One modified backward pass per input and baseline row."""
        return coalition_cost(game, 3, grads=True, note="v(N) and one modified gradient pass per input and baseline")
