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
defined imputation; it takes the game's baseline value there. With a background set that is
the game's own removal: the weighted mean of the model over the set's rows, each with that
channel at the row's values (one model row per background row, for those coalitions only).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..games.base import Game
from ..games.features import FeatureGame, ProbeChunk
from ._util import channels_last, torch_generator, warn_if_channels_last

__all__ = ["ImputedGame", "noisy_linear_impute"]

_DIRECT, _DIAG = 1.0 / 6.0, 1.0 / 12.0
#: Distinct noise fields; a row uses field ``(number of removed elements) % _N_FIELDS`` so the
#: noise depends on the coalition only, never on the batch it was evaluated in.
_N_FIELDS = 32
#: Pixels per block of images solved together (fits the buffers in cache).
_BLOCK_PIXELS = 1 << 18


def _neighbour_sum(p: torch.Tensor, out: torch.Tensor | None = None,
                   pad: torch.Tensor | None = None,
                   tmp: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_j w_ij p_j`` over the 8 in-image neighbours (zero outside): ``R x 1 x H x W``.

    A 3x3 stencil written as shifted slices; ``out``/``pad``/``tmp`` are optional work buffers
    (``pad`` is ``R x 1 x H+2 x W+2`` with a zero border) so the solver's loop allocates
    nothing — on CPU, fresh multi-megabyte tensors cost more than the arithmetic.
    """
    h, w = p.shape[-2], p.shape[-1]
    if pad is None:
        pad = p.new_zeros(*p.shape[:-2], h + 2, w + 2)
    pad[..., 1 : h + 1, 1 : w + 1].copy_(p)
    if out is None:
        out = torch.empty_like(p)
    if tmp is None:
        tmp = torch.empty_like(p)
    torch.add(pad[..., 0:h, 1 : w + 1], pad[..., 2 : h + 2, 1 : w + 1], out=out)
    out.add_(pad[..., 1 : h + 1, 0:w]).add_(pad[..., 1 : h + 1, 2 : w + 2])
    torch.add(pad[..., 0:h, 0:w], pad[..., 0:h, 2 : w + 2], out=tmp)
    tmp.add_(pad[..., 2 : h + 2, 0:w]).add_(pad[..., 2 : h + 2, 2 : w + 2])
    return out.mul_(_DIRECT).add_(tmp, alpha=_DIAG)


def _push_pull(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A smooth fill of the removed pixels: coarse-to-fine normalised averaging.

    Pools ``(v, k) = (x * keep, keep)`` by 2x2 sums down to one pixel, then, going back up,
    keeps ``v / k`` where a cell holds kept pixels and takes the bilinearly upsampled coarser
    estimate elsewhere. Used as the starting point of conjugate gradients (it cuts the number
    of iterations several-fold for large holes).
    """
    levels = [(v, k)]
    while min(v.shape[-2:]) > 1:
        v = F.avg_pool2d(v, 2, ceil_mode=True)
        k = F.avg_pool2d(k, 2, ceil_mode=True)
        levels.append((v, k))
    est = torch.zeros_like(levels[-1][0])
    for v, k in reversed(levels):
        up = F.interpolate(est, size=v.shape[-2:], mode="bilinear", align_corners=False) \
            if est.shape[-2:] != v.shape[-2:] else est
        est = torch.where(k > 0, v / k.clamp_min(1e-30), up)
    return est


def noisy_linear_impute(x: torch.Tensor, keep: torch.Tensor, *, tol: float = 1e-4,
                        max_iter: int | None = None) -> torch.Tensor:
    """Impute removed pixels as the neighbour-weighted average (ROAD's linear imputation).

    Args:
        x: ``R x H x W`` images (one channel each).
        keep: ``R x H x W`` booleans, True where the pixel is kept.
        tol: conjugate gradients stop when the residual norm is below ``tol`` times the norm
            of the right-hand side (per image). The default leaves an error far below ROAD's
            noise (std 0.01 for unit-scale images). default=1e-4.
        max_iter: iteration cap. default=None (``4 * (H + W) + 20``).

    Returns:
        ``R x H x W``: kept pixels unchanged, removed pixels imputed (noise is added by the
        caller). Images with no kept pixel come back as zeros at the removed pixels.
    """
    r, h, w = x.shape
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    cap = max_iter if max_iter is not None else 4 * (h + w) + 20
    out = torch.empty(r, h, w, dtype=dtype, device=x.device)
    # blocks of images small enough to stay in cache; each block converges on its own
    step = max(1, _BLOCK_PIXELS // (h * w))
    for s0 in range(0, r, step):
        s1 = min(r, s0 + step)
        out[s0:s1] = _solve_block(x[s0:s1].to(dtype), keep[s0:s1], tol, cap)
    return out.to(x.dtype)


def _solve_block(x: torch.Tensor, keep: torch.Tensor, tol: float, cap: int) -> torch.Tensor:
    """Conjugate gradients on ``(D - W)_UU y = W_UK x_K`` for a block of images (in place)."""
    r, h, w = x.shape
    dtype = x.dtype
    xs = x.reshape(r, 1, h, w)
    kf = keep.to(dtype).reshape(r, 1, h, w)
    uf = 1.0 - kf
    pad = xs.new_zeros(r, 1, h + 2, w + 2)
    tmp = torch.empty_like(xs)
    t1 = torch.empty_like(xs)
    deg = _neighbour_sum(torch.ones(1, 1, h, w, dtype=dtype, device=x.device))

    def apply(p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        torch.mul(p, uf, out=t1)
        _neighbour_sum(t1, out=out, pad=pad, tmp=tmp)
        return out.neg_().addcmul_(deg, p).mul_(uf)

    rhs = _neighbour_sum(xs * kf, pad=pad, tmp=tmp).mul_(uf)
    y = _push_pull(xs * kf, kf).mul_(uf)
    ap = torch.empty_like(xs)
    res = rhs - apply(y, ap)
    p = res.clone()
    dims = (1, 2, 3)
    rs = torch.mul(res, res, out=t1).sum(dim=dims, keepdim=True)
    stop = (tol**2) * (rhs * rhs).sum(dim=dims, keepdim=True)
    tiny = torch.finfo(dtype).tiny
    zero = torch.zeros_like(rs)
    for it in range(cap):
        if it % 4 == 0 and not bool((rs > stop).any()):
            break
        apply(p, ap)
        pap = torch.mul(p, ap, out=t1).sum(dim=dims, keepdim=True)
        active = (rs > stop) & (pap > tiny)
        alpha = torch.where(active, rs / pap.clamp_min(tiny), zero)
        y.addcmul_(p, alpha)
        res.addcmul_(ap, alpha, value=-1.0)
        rs_new = torch.mul(res, res, out=t1).sum(dim=dims, keepdim=True)
        beta = torch.where(active, rs_new / rs.clamp_min(tiny), zero)
        p.mul_(beta).add_(res)
        rs = rs_new
    return (xs * kf + y * uf).reshape(r, h, w)


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
        channel_axis: the channel axis of the batched image inputs: ``None`` or ``1``
            (``(batch, C, H, W)`` or ``(batch, H, W)``), ``-1`` or ``3`` for channels-last
            ``(batch, H, W, C)``, imputed over each channel's ``(H, W)`` plane (rev43m). default=None.
    """

    kind = "feature"
    player_kind = "feature"

    def __init__(self, base: FeatureGame, noise: float = 0.01, seed: int = 0,
                 channel_axis: Any = None) -> None:
        self._last = channels_last(channel_axis, "metric 'road'", [
            tuple(sh) for sh, is_int in zip(base.input_shapes(), base.integer_inputs())
            if not is_int and len(sh) >= 2])
        for i, (shape, is_int) in enumerate(zip(base.input_shapes(), base.integer_inputs())):
            if is_int or len(shape) < 2:
                raise InputError(
                    "ROAD imputation needs image inputs (per-sample shape "
                    + ("(H, W, C) with channel_axis=-1" if self._last else "(H, W) or (C, H, W)")
                    + f", real-valued); input {i} has shape {shape}"
                    + (" and integer values" if is_int else "") + "."
                )
            if channel_axis is None:
                warn_if_channels_last(tuple(shape), "metric 'road'", fix="channel_axis=-1",
                                      model=base.model)
        super().__init__(base.engine, base.target, base.layout, list(base.player_names),
                         base.n_samples)
        self.base = base
        self.noise = float(noise)
        g = torch_generator(seed)
        d_total = int(base.inputs_flat().shape[1])
        self._fields = (torch.randn(_N_FIELDS, d_total, generator=g, dtype=torch.float64)
                        * self.noise).to(device=base.model.device, dtype=base.compute_dtype)
        # a channel with no kept pixel takes the baseline. With a background set that is the
        # game's own removal: the model averaged over the set's rows, each row's channel taking
        # that row's values (compose() gave the set's FIRST row only, so the score depended on
        # the rows' order; aud41f's weighted mean row fed f(mean row), which on a tanh MLP
        # missed the game's value of the same coalition by up to 0.27; rev41a)
        self._bg_rows: torch.Tensor | None = None
        self._bg_weights = torch.ones(1, dtype=torch.float64)
        m_bg = int(getattr(base, "n_background", 1))
        rows = base.baseline_flat()
        if m_bg > 1 and rows.shape[0] == m_bg:
            self._bg_rows = rows.to(device=base.model.device, dtype=base.compute_dtype)
            self._bg_weights = base.background_weights().to(torch.float64).cpu()
        self._full = base.peek_full()  # v(N) needs no imputation
        # ... and was paid for by the base game's reference pass: full() must not count it
        # again (road reported one evaluation per input more than the model saw)
        self._full_counted = self._full is not None

    def groups_array(self) -> Any:
        return self.base.groups_array()

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise InputError("ROAD imputation takes binary masks (a player is kept or removed).")
        fg = self.base
        k_count = int(masks.shape[-2])
        b_total, t_count = self.n_samples, self.n_targets
        device = fg.model.device
        masks_d = masks.to(device=device, dtype=fg.compute_dtype)
        flat = masks_d if shared else masks_d.reshape(-1, masks_d.shape[-1])
        out = torch.zeros(b_total, k_count, t_count, dtype=torch.float64)
        shapes = fg.input_shapes()

        # rows (sample, point) with a channel none of whose pixels is kept (set in the first pass)
        none_kept_any = torch.zeros(b_total, k_count, dtype=torch.bool, device=device)

        def make_rows(xs: tuple[torch.Tensor, ...], b: torch.Tensor, k: torch.Tensor,
                      fallback_rows: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
            m = flat[k if shared else b * k_count + k]
            baselined = fg.compose(m, b)  # removed elements at the baseline
            keeps = fg.element_masks(m, b)
            removed = torch.stack([(1.0 - e).sum(dim=1) for e in keeps]).sum(0)
            field = self._fields[removed.round().long() % _N_FIELDS]  # R x D
            rows = []
            start_d = 0
            for shape, x_in, comp, e in zip(shapes, xs, baselined, keeps):
                n = e.shape[0]
                h, w = (shape[0], shape[1]) if self._last else (shape[-2], shape[-1])
                size = e.shape[1]

                def planes(t: torch.Tensor, shape: tuple[int, ...] = tuple(shape), n: int = n,
                           h: int = h, w: int = w) -> torch.Tensor:
                    # n x C x H x W: the (H, W) planes the imputation works on
                    if self._last:  # (H, W, C): the channel axis moved in front (rev43m)
                        return t.reshape(n, *shape).movedim(-1, 1)
                    return t.reshape(n, -1, h, w)

                keep = planes(e > 0.5)
                x = planes(x_in)
                imp = noisy_linear_impute(x.reshape(-1, h, w), keep.reshape(-1, h, w))
                imp = imp.reshape(n, -1, h, w)
                # the field read in (C, H, W) order for either layout: channels-last images get
                # the noise of the same image laid out channels-first (same score)
                noise = field[:, start_d : start_d + size].reshape(n, -1, h, w)
                none_kept = ~keep.reshape(n, keep.shape[1], -1).any(dim=2)  # R x C
                if fallback_rows is None:
                    none_kept_any[b, k] |= none_kept.any(dim=1)
                    fallback = planes(comp)
                else:
                    fallback = planes(fallback_rows[:, start_d : start_d + size])
                imputed = torch.where(none_kept[:, :, None, None], fallback, imp + noise)
                res = torch.where(keep, x, imputed)
                rows.append((res.movedim(1, -1) if self._last else res).reshape(n, *shape))
                start_d += size
            return tuple(rows)

        def on_chunk(c: ProbeChunk) -> None:
            out[c.sample, c.point] = c.values

        # This game counts its own coalitions (Game.value); the base game is not charged.
        fg.probe(on_chunk, n_points=k_count, make_points=lambda xs, b, k: make_rows(xs, b, k, None),
                 evals=0, row_bytes=fg.row_bytes * 4, desc="imputed coalitions")
        if self._bg_rows is None or not bool(none_kept_any.any()):
            return out
        # with a background set, a coalition with a fully removed channel is the weighted mean
        # over the set's rows of the model on its imputed row with that channel at the row's
        # values (as FeatureGame removes players): one model row per background row, for these
        # coalitions only (each sample's list padded to the longest with its own points)
        bg, wts, m_bg = self._bg_rows, self._bg_weights, int(self._bg_rows.shape[0])
        hit = none_kept_any.cpu()
        n_hit = hit.sum(dim=1)
        a_count = int(n_hit.max())
        idx = torch.zeros(b_total, a_count, dtype=torch.long)
        for i in range(b_total):
            pts = torch.nonzero(hit[i]).flatten()
            if pts.numel():
                idx[i] = pts[torch.arange(a_count) % pts.numel()]
        idx_d = idx.to(device)
        acc = torch.zeros(b_total, a_count, t_count, dtype=torch.float64)

        def make_bg_points(xs: tuple[torch.Tensor, ...], b: torch.Tensor,
                           p: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return make_rows(xs, b, idx_d[b, p // m_bg], bg[p % m_bg])

        def on_bg_chunk(c: ProbeChunk) -> None:
            acc.index_put_((c.sample, c.point // m_bg),
                           wts[c.point % m_bg][:, None] * c.values, accumulate=True)

        fg.probe(on_bg_chunk, n_points=a_count * m_bg, make_points=make_bg_points, evals=0,
                 row_bytes=fg.row_bytes * 4, desc="imputed coalitions (background rows)")
        for i in range(b_total):
            j = int(n_hit[i])
            out[i, idx[i, :j]] = acc[i, :j]
        return out
