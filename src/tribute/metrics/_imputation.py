"""Noisy linear imputation (ROAD) and the game that removes image players by imputing them.

Rong et al. (2022), "A Consistent and Efficient Evaluation Strategy for Attribution Methods"
(ROAD) replace removed pixels by the solution of a linear system: every removed pixel equals
the weighted average of its in-image neighbours (weight 1/6 for the four direct neighbours,
1/12 for the four diagonal ones, renormalised over the neighbours that exist), with the kept
pixels fixed; Gaussian noise is then added to the imputed pixels. Each channel is imputed
separately with its own mask. Unlike a constant baseline, the imputed image leaks little about
*which* pixels were removed through the shape of the hole, which is what makes the
most-relevant-first and least-relevant-first orders agree.

The system ``(D - W)_UU y = W_UK x_K`` (``U`` removed, ``K`` kept, ``W`` the neighbour weights,
``D`` their row sums) is a weighted graph Laplacian restricted to the removed pixels: symmetric
and positive definite whenever a removed region touches a kept pixel. We solve it for all rows
of a chunk at once with conjugate gradients whose matrix-vector product is one 3x3 stencil,
so imputation is batched like everything else. A channel with no kept pixel at all has no
defined imputation; it takes the game's baseline value there.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..engine import Rows
from ..errors import InputError
from ..games.base import Game
from ..games.features import FeatureGame

__all__ = ["ImputedGame", "noisy_linear_impute"]

_DIRECT, _DIAG = 1.0 / 6.0, 1.0 / 12.0
#: Distinct noise fields; a row uses field ``(number of removed elements) % _N_FIELDS`` so the
#: noise depends on the coalition only, never on the batch it was evaluated in.
_N_FIELDS = 32


def _neighbour_sum(p: torch.Tensor) -> torch.Tensor:
    """``sum_j w_ij p_j`` over the 8 in-image neighbours (zero outside): ``R x 1 x H x W``.

    A 3x3 stencil written as shifted slices (much faster than ``conv2d`` on one channel).
    """
    h, w = p.shape[-2], p.shape[-1]
    q = F.pad(p, (1, 1, 1, 1))
    direct = q[..., 0:h, 1 : w + 1] + q[..., 2 : h + 2, 1 : w + 1] + q[..., 1 : h + 1, 0:w] \
        + q[..., 1 : h + 1, 2 : w + 2]
    diag = q[..., 0:h, 0:w] + q[..., 0:h, 2 : w + 2] + q[..., 2 : h + 2, 0:w] \
        + q[..., 2 : h + 2, 2 : w + 2]
    return direct * _DIRECT + diag * _DIAG


def noisy_linear_impute(x: torch.Tensor, keep: torch.Tensor, *, tol: float = 1e-6,
                        max_iter: int | None = None) -> torch.Tensor:
    """Impute removed pixels as the neighbour-weighted average (ROAD's linear imputation).

    Args:
        x: ``R x H x W`` images (one channel each).
        keep: ``R x H x W`` booleans, True where the pixel is kept.
        tol: relative residual at which conjugate gradients stop. default=1e-6.
        max_iter: iteration cap. default=None (``4 * (H + W) + 20``).

    Returns:
        ``R x H x W``: kept pixels unchanged, removed pixels imputed (noise is added by the
        caller). Images with no kept pixel come back as zeros at the removed pixels.
    """
    r, h, w = x.shape
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xs = x.to(dtype).reshape(r, 1, h, w)
    kf = keep.to(dtype).reshape(r, 1, h, w)
    uf = 1.0 - kf
    deg = _neighbour_sum(torch.ones(1, 1, h, w, dtype=dtype, device=x.device))

    def apply(p: torch.Tensor) -> torch.Tensor:
        return uf * (deg * p - _neighbour_sum(p * uf))

    rhs = uf * _neighbour_sum(xs * kf)
    y = torch.zeros_like(xs)
    res = rhs.clone()
    p = res.clone()
    rs = (res * res).sum(dim=(1, 2, 3), keepdim=True)
    stop = (tol**2) * rs.clamp_min(1e-300)
    cap = max_iter if max_iter is not None else 4 * (h + w) + 20
    tiny = torch.finfo(dtype).tiny
    for it in range(cap):
        ap = apply(p)
        pap = (p * ap).sum(dim=(1, 2, 3), keepdim=True)
        active = (rs > stop) & (pap > tiny)
        alpha = torch.where(active, rs / pap.clamp_min(tiny), torch.zeros_like(rs))
        y = y + alpha * p
        res = res - alpha * ap
        rs_new = (res * res).sum(dim=(1, 2, 3), keepdim=True)
        beta = torch.where(active, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs))
        p = res + beta * p
        rs = rs_new
        if it % 8 == 7 and not bool((rs > stop).any()):
            break
    out = xs * kf + y * uf
    return out.reshape(r, h, w).to(x.dtype)


class ImputedGame(Game):
    """A feature game on images whose removed players are imputed (ROAD) instead of baselined.

    Wraps a :class:`FeatureGame` (same model, inputs, target, engine, players). Masks must be
    binary. Each removed element is replaced by :func:`noisy_linear_impute` plus Gaussian
    noise of standard deviation ``noise``; the noise field is chosen by the number of removed
    elements of the coalition, so a sample's values never depend on the rest of the batch.

    Args:
        base: the feature game (image inputs: per-sample shape ``(H, W)`` or ``(C, H, W)``).
        noise: standard deviation of the noise added to imputed values. default=0.01.
        seed: seed of the noise fields.
    """

    kind = "feature"
    player_kind = "feature"

    def __init__(self, base: FeatureGame, noise: float = 0.01, seed: int = 0) -> None:
        for i, inp in enumerate(base.inputs):
            if inp.is_int or len(inp.shape) < 2:
                raise InputError(
                    f"ROAD imputation needs image inputs (per-sample shape (H, W) or (C, H, W), "
                    f"real-valued); input {i} has shape {inp.shape}"
                    + (" and integer values" if inp.is_int else "") + "."
                )
        super().__init__(base.engine, base.target, base.layout, list(base.player_names),
                         base.n_samples)
        self.base = base
        self.noise = float(noise)
        g = torch.Generator().manual_seed(int(seed))
        d_total = sum(inp.size for inp in base.inputs)
        self._fields = (torch.randn(_N_FIELDS, d_total, generator=g, dtype=torch.float64)
                        * self.noise).to(device=base.model.device, dtype=base.compute_dtype)
        self._full = None if base._full is None else base._full.clone()  # v(N) needs no imputation

    def groups_array(self) -> Any:
        return self.base.groups_array()

    def _element_masks(self, m: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        # mirrors FeatureGame._compose: spread player masks over each input's elements
        out = []
        for inp in self.base.inputs:
            if inp.groups is None:
                out.append(m[:, inp.offset : inp.offset + inp.size])
            elif inp.groups.ndim == 1:
                out.append(m[:, inp.groups])
            else:
                out.append(m.gather(1, inp.groups[b]))
        return out

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise InputError("ROAD imputation takes binary masks (a player is kept or removed).")
        fg = self.base
        k_count = int(masks.shape[-2])
        b_total, t_count = self.n_samples, self.n_targets
        device = fg.model.device
        masks_d = masks.to(device=device, dtype=fg.compute_dtype)
        flat = masks_d if shared else masks_d.reshape(-1, masks_d.shape[-1])
        out = torch.zeros(b_total * k_count, t_count, dtype=torch.float64)

        def build(start: int, stop: int) -> Rows:
            r = torch.arange(start, stop, device=device)
            b, k = r // k_count, r % k_count
            m = flat[k if shared else r]
            j = torch.zeros_like(b)
            baselined = fg._compose(m, b, j)  # removed elements at the baseline
            keeps = self._element_masks(m, b)
            removed = torch.stack([(1.0 - e).sum(dim=1) for e in keeps]).sum(0)
            field = self._fields[removed.round().long() % _N_FIELDS]  # R x D
            rows = []
            start_d = 0
            for inp, comp, e in zip(fg.inputs, baselined, keeps):
                n = e.shape[0]
                shape = inp.shape
                h, w = shape[-2], shape[-1]
                keep = (e > 0.5).reshape(n, -1, h, w)
                x = inp.x[b].reshape(n, -1, h, w)
                imp = noisy_linear_impute(x.reshape(-1, h, w), keep.reshape(-1, h, w))
                imp = imp.reshape(n, -1, h, w)
                noise = field[:, start_d : start_d + inp.size].reshape(n, -1, h, w)
                none_kept = ~keep.reshape(n, keep.shape[1], -1).any(dim=2)  # R x C
                fallback = comp.reshape(n, -1, h, w)
                imputed = torch.where(none_kept[:, :, None, None], fallback, imp + noise)
                rows.append(torch.where(keep, x, imputed).reshape(n, *shape))
                start_d += inp.size
            extra, kw = fg._rows_extra(b)
            return Rows(inputs=tuple(rows), sample=b, extra=extra, kwargs=kw)

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            out[start:stop] = vals.to("cpu", torch.float64)

        self.engine.run(b_total * k_count, build, sink, row_bytes=fg.row_bytes * 4,
                        desc="imputed coalitions",
                        describe_row=lambda r: f"sample {r // k_count}, coalition {r % k_count}")
        return out.reshape(b_total, k_count, t_count)
