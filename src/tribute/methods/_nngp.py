"""Neural-network-GP kernels on the composed inputs of a feature game (experimental, issue #14).

A feature game is ``v(s) = f(z(s))`` with ``z_j(s) = b_j + (x_j - b_j)(1 + s_j) / 2``. For a
network ``f`` a natural prior is the kernel of an infinitely wide network on ``z`` (Neal 1996;
Williams 1997 for erf; Cho & Saul 2009 for ReLU), with isotropic weight variance ``sw2 / n`` on
the inputs and bias variance ``sb2``; ``depth`` hidden layers by the usual recursion. Only the
odd part ``(k(s, s') - k(s, -s')) / 2`` is seen by the pair differences.

The Shapley value of the posterior mean has no closed form here; it is computed on the
surrogate (no model call) as the Shapley-kernel weighted regression of the odd surrogate on
every coalition (``2^n <= ROWS``, exact) or on ``ROWS`` coalitions stratified by size (about
0.3% relative error at 20 players, checked against enumeration). The posterior variance of
``phi`` is that of the same estimate on a smaller sample (``VAR_ROWS``), then floored at the
best product kernel's by the caller (:func:`.gp_shapley._nngp_member`).

Cost: :func:`nngp_pass` shares the composed inputs' dot products between the grid's kernels
and the four sign combinations of the odd kernel (:class:`_Dots`), runs the network-kernel
recursion in place in row blocks, and on enumerated coalitions (closed under negation) reads
``k(-s, .)`` off ``k(s, .)``: 1.6-2.6x less CPU than the kernel-by-kernel form it replaced
(same values up to rounding: < 1e-10 relative in 6 of 7 cases checked, ~1e-7 for phi and 2e-6 for
the variance with ReLU kernels and a zero baseline at 16 players; 3 points of diabetes / tanh16 / mlp20 /
cancer at 64-512 evaluations: 0.51 / 2.3 / 13.6 / 0.93 s -> 0.30 / 1.15 / 5.2 / 0.58 s).
What remains is the elementwise arc-sine / arc-cosine recursion on the ``8,193 x K`` table of
each kernel that keeps :data:`MIN_WEIGHT` of the grid's likelihood.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from ..params import MAX_SEED

_ROWS = 1 << 15
#: ``(sw2, sb2, activation, depth)`` or with the ARD weights ``rel`` appended (see :func:`nngp`).
Spec = tuple[Any, ...]


def _expect(act: str, kab: torch.Tensor, kaa: torch.Tensor, kbb: torch.Tensor,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``E[phi(u) phi(u')]`` for centred Gaussians with covariances ``kab`` (``A x B``) and
    variances ``kaa`` (``A``), ``kbb`` (``B``); and the two diagonals."""
    if act == "erf":
        ia, ib = 1.0 + 2.0 * kaa, 1.0 + 2.0 * kbb
        arg = (2.0 * kab / torch.sqrt(ia[:, None] * ib[None, :])).clamp(-1.0, 1.0)
        out = (2.0 / math.pi) * torch.asin(arg)
        return out, (2.0 / math.pi) * torch.asin(2.0 * kaa / ia), (2.0 / math.pi) * torch.asin(2.0 * kbb / ib)
    # relu: arc-cosine kernel of order 1
    norm = torch.sqrt(kaa[:, None] * kbb[None, :])
    cos = (kab / norm).clamp(-1.0, 1.0)
    theta = torch.acos(cos)
    out = norm / (2.0 * math.pi) * (torch.sin(theta) + (math.pi - theta) * cos)
    return out, kaa / 2.0, kbb / 2.0


def nngp(za: torch.Tensor, zb: torch.Tensor, sw2: float, sb2: float, act: str, depth: int,
         rel: tuple[float, ...] | None = None) -> torch.Tensor:
    """Kernel of the network's output between input rows ``za`` (``A x n``) and ``zb``.

    First-layer weight variances ``sw2 / n`` (isotropic) or ``sw2 / n * rel_j`` (ARD, ``rel``
    of mean one); later layers ``sw2``."""
    n = za.shape[1]
    if rel is None:
        w = torch.full((n,), sw2 / n, dtype=za.dtype)
    else:
        w = torch.tensor(rel, dtype=za.dtype) * (sw2 / n)
    kab = sb2 + (za * w) @ zb.T
    kaa = sb2 + (za * za * w).sum(1)
    kbb = sb2 + (zb * zb * w).sum(1)
    for layer in range(depth):
        kab, kaa, kbb = _expect(act, kab, kaa, kbb)
        if layer < depth - 1:
            kab, kaa, kbb = sb2 + sw2 * kab, sb2 + sw2 * kaa, sb2 + sw2 * kbb
    return kab


def compose(s: torch.Tensor, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``z(s) = b + (x - b)(1 + s) / 2`` for codes ``s`` (``K x n``)."""
    return base[None] + (x - base)[None] * (1.0 + s) / 2.0


def odd_kernel(sa: torch.Tensor, sb: torch.Tensor, x: torch.Tensor, base: torch.Tensor,
               spec: Spec) -> torch.Tensor:
    """Covariance of the odd parts, ``(k(s, s') - k(s, -s') - k(-s, s') + k(-s, -s')) / 4``
    (``k`` of the composed inputs; unlike the product kernels, ``k(-s, -s') != k(s, s')``):
    ``A x B``."""
    za, zna = compose(sa, x, base), compose(-sa, x, base)
    zb, znb = compose(sb, x, base), compose(-sb, x, base)
    return 0.25 * (nngp(za, zb, *spec) - nngp(za, znb, *spec)
                   - nngp(zna, zb, *spec) + nngp(zna, znb, *spec))


def _shapley_weights(n: int, masks: torch.Tensor) -> torch.Tensor:
    """``W`` with ``phi = W^T table``: ``+w(|S| - 1)`` where ``i in S``, ``-w(|S|)`` else."""
    w = torch.tensor([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                      for k in range(n)] + [0.0], dtype=torch.float64)
    size = masks.sum(1).long()
    inside = w[(size - 1).clamp_min(0)][:, None]
    outside = w[size][:, None]
    return torch.where(masks > 0, inside, -outside)


def shapley_terms(s_train: torch.Tensor, x: torch.Tensor, base: torch.Tensor,
                  spec: Spec) -> torch.Tensor:
    """Shapley values of ``z -> k_odd(z, s_k) / 2`` for each training code: ``K x n``, by
    enumeration of all ``2^n`` coalitions in chunks.

    With ``A(s) = k(s, s_k) - k(s, -s_k)``, ``k_odd(s, s_k)`` is half the odd part of ``A``,
    and an even function has Shapley value zero, so the table is ``A / 4`` (two kernel
    evaluations per coalition instead of four).
    """
    n = s_train.shape[1]
    zp, zm = compose(s_train, x, base), compose(-s_train, x, base)
    out = torch.zeros(s_train.shape[0], n, dtype=torch.float64)
    total = 1 << n
    bits = torch.arange(n)
    for start in range(0, total, _ROWS):
        idx = torch.arange(start, min(start + _ROWS, total))
        masks = ((idx[:, None] >> bits) & 1).to(torch.float64)
        za = compose(2.0 * masks - 1.0, x, base)
        table = 0.25 * (nngp(za, zp, *spec) - nngp(za, zm, *spec))
        out += table.T @ _shapley_weights(n, masks)
    return out


#: The grid: first-layer weight scale ``sw2``, bias variance ``sb2``, activation and depth
#: (4 x 2 x 2 x 2 = 32 kernels per explained output, averaged by marginal likelihood).
GRID: tuple[tuple[float, float, str, int], ...] = tuple(
    (sw2, sb2, act, depth) for act in ("erf", "relu") for depth in (1, 2)
    for sw2 in (0.5, 2.0, 8.0, 32.0) for sb2 in (0.05, 1.0))
#: Coalitions the surrogate's Shapley values are computed on beyond ``2^n`` of them (sampled,
#: stratified by size: ~0.3% relative error at 20 players against enumeration), and the
#: smaller sample the prior variance of ``phi`` is computed on (an ``R x R`` kernel).
ROWS = 8192
VAR_ROWS = 256
#: Entries per row block of the network-kernel passes (kept in cache).
_BLOCK = 1 << 16
#: Subtracted from the grid's total log marginal likelihood (0: each NNGP kernel weighs as
#: much as one product kernel; ``log(32)``: the grid weighs as one kernel). ``log(32)`` was
#: tried (10 points x 2 seeds, error against nngp off): cancer_logit x1.063 / x1.004 at 64 /
#: 128 evaluations (x1.075 / x1.012 with 0), but tanh16 x0.88 / x0.73 (x0.80 / x0.69 with 0).
LOG_PRIOR_DISCOUNT = 0.0
#: Kernels whose share of the family's marginal likelihood is below this are left out.
MIN_WEIGHT = 1e-3


def _coalition_sample(n: int, rows: int, generator: torch.Generator,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes ``R x n``, per-row weights ``R`` and the linear map ``L`` (``n x (R + 1)``) with
    ``phi = L [h; h(1)]`` for an odd ``h`` (exact when every coalition is listed)."""
    if (1 << n) <= rows:
        idx = torch.arange(1, (1 << n) - 1)
        bits = torch.arange(n)
        m = ((idx[:, None] >> bits) & 1).to(torch.float64)
        size = m.sum(1)
        s = 2.0 * m - 1.0
        w = (n - 1) / (size * (n - size)) / torch.tensor(
            [math.comb(n, int(k)) for k in size.tolist()], dtype=torch.float64)
    else:
        codes, wts = [], []
        sizes = list(range(1, n))
        mass = torch.tensor([1.0 / (k * (n - k)) for k in sizes], dtype=torch.float64)
        alloc = (mass / mass.sum() * rows).clamp_min(2.0)
        for k, a in zip(sizes, alloc.tolist()):
            count = math.comb(n, k)
            if count <= a:
                idx2 = torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.long)
                mk = torch.zeros(count, n, dtype=torch.float64)
                mk.scatter_(1, idx2, 1.0)
            else:
                r = int(a)
                top = torch.rand(r, n, generator=generator, dtype=torch.float64).argsort(1)[:, :k]
                mk = torch.zeros(r, n, dtype=torch.float64)
                mk.scatter_(1, top, 1.0)
            codes.append(2.0 * mk - 1.0)
            wts.append(torch.full((mk.shape[0],), (n - 1) / (k * (n - k)) / mk.shape[0],
                                  dtype=torch.float64))
        s, w = torch.cat(codes), torch.cat(wts)
    # phi = argmin sum w (h - phi . s / 2)^2 s.t. sum phi = 2 h(1)
    a_mat = (s * w[:, None]).T @ s / 4.0
    ainv = torch.linalg.inv(a_mat)
    ones = torch.ones(n, dtype=torch.float64)
    a1 = ainv @ ones
    proj = ainv - torch.outer(a1, a1) / a1.sum()  # n x n
    lmap = torch.cat([proj @ (s * w[:, None]).T / 2.0, (2.0 * a1 / a1.sum())[:, None]], 1)
    return s, w, lmap


class _Dots:
    """First-layer dot products of the composed inputs of one column, shared by every kernel
    of the grid and by the four sign combinations of the odd kernel.

    With ``z(s) = u + v * s`` (``u = (x + b) / 2``, ``v = (x - b) / 2``):
    ``z(+-s) . z(+-s') = u.u +- a(s) +- a(s') +- s diag(v^2) s'`` with ``a(s) = s . (u v)``, and
    ``|z(+-s)|^2 = u.u + v.v +- 2 a(s)`` (``s_j^2 = 1``): one ``R x K`` product per row set
    instead of four per kernel."""

    def __init__(self, x: torch.Tensor, base: torch.Tensor,
                 gram: torch.Tensor | None = None) -> None:
        self.n = int(x.shape[0])
        u, v = (x + base) / 2.0, (x - base) / 2.0
        self.uv, self.v2 = u * v, v * v
        self.pp = float(u @ u)
        self.norm0 = self.pp + float(self.v2.sum())
        # a first-layer weight covariance ``gram`` (``n x n``, mean diagonal one) in place of
        # the identity: ``z(s)' G z(s') = u'Gu + s'(v G u) + s''(v G u) + s' (v G v) s'``, and
        # the squared norms gain the quadratic form ``q(s) = s' (v G v) s`` (no longer constant)
        self.mat: torch.Tensor | None = None
        if gram is not None:
            self.mat = v[:, None] * gram * v[None, :]
            self.uv = v * (gram @ u)
            self.pp = float(u @ gram @ u)

    def cross(self, sr: torch.Tensor, sk: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(C R x K, a(sr) R, a(sk) K)``, and with a first-layer covariance also
        ``(q(sr) R, q(sk) K)``."""
        if self.mat is None:
            return (sr * self.v2) @ sk.T, sr @ self.uv, sk @ self.uv
        srm = sr @ self.mat
        return srm @ sk.T, sr @ self.uv, sk @ self.uv, (srm * sr).sum(1), ((sk @ self.mat) * sk).sum(1)


def _expect_(act: str, kab: torch.Tensor, kaa: torch.Tensor, kbb: torch.Tensor,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_expect` overwriting ``kab`` (the same arithmetic up to rounding)."""
    if act == "erf":
        ia, ib = 1.0 + 2.0 * kaa, 1.0 + 2.0 * kbb
        kab.mul_((2.0 / ia.sqrt())[:, None]).mul_((1.0 / ib.sqrt())[None, :])
        kab.clamp_(-1.0, 1.0).asin_().mul_(2.0 / math.pi)
        return kab, (2.0 / math.pi) * torch.asin(2.0 * kaa / ia), (2.0 / math.pi) * torch.asin(2.0 * kbb / ib)
    ra, rb = kaa.sqrt(), kbb.sqrt()
    cos = kab.div_(ra[:, None]).div_(rb[None, :]).clamp_(-1.0, 1.0)
    theta = torch.acos(cos)
    # sin(theta) + (pi - theta) cos(theta), with sin(theta) = sqrt(1 - cos^2)
    theta.neg_().add_(math.pi).mul_(cos)
    theta.add_(cos.square_().neg_().add_(1.0).clamp_min_(0.0).sqrt_())
    theta.mul_((ra / (2.0 * math.pi))[:, None]).mul_(rb[None, :])
    return theta, kaa / 2.0, kbb / 2.0


def _odd_fast(dots: _Dots, cr: tuple[torch.Tensor, ...], spec: Spec,
              sym: bool = False) -> torch.Tensor:
    """:func:`odd_kernel` of the rows and columns of ``cr = dots.cross(sr, sk)`` (``R x K``).

    ``sym``: the rows are closed under negation in reverse order (``sr[R - 1 - r] = -sr[r]``,
    the enumerated coalitions), so ``k(-s, .)`` is ``k(s, .)`` with the rows reversed: two
    network-kernel passes instead of four."""
    sw2, sb2, act, depth = spec[:4]
    w = sw2 / dots.n
    c_all, ar_all, ak = cr[:3]
    quad = len(cr) == 5  # a first-layer covariance: the norms' quadratic forms q(s) per row
    out = torch.zeros(c_all.shape, dtype=torch.float64)
    if quad:
        kbbs = {sgn: w * (dots.pp + cr[4] + 2.0 * sgn * ak) + sb2 for sgn in (1.0, -1.0)}
    else:
        kbbs = {sgn: w * (dots.norm0 + 2.0 * sgn * ak) + sb2 for sgn in (1.0, -1.0)}
    # in row blocks that stay in cache (the passes over R x K are memory-bound)
    step = max(1, _BLOCK // max(1, c_all.shape[1]))
    for r0 in range(0, c_all.shape[0], step):
        c, ar = c_all[r0 : r0 + step], ar_all[r0 : r0 + step]
        norm_r = dots.pp + cr[3][r0 : r0 + step] if quad else dots.norm0
        acc = out[r0 : r0 + step]
        for sgn_r, sgn_k, coef in ((1.0, 1.0, 0.25), (1.0, -1.0, -0.25), (-1.0, 1.0, -0.25),
                                   (-1.0, -1.0, 0.25)):
            if sym and sgn_r < 0:
                break
            kab = torch.add((w * (dots.pp + sgn_r * ar) + sb2)[:, None], (sgn_k * w * ak)[None, :])
            kab.add_(c, alpha=sgn_r * sgn_k * w)
            kaa, kbb = w * (norm_r + 2.0 * sgn_r * ar) + sb2, kbbs[sgn_k]
            for layer in range(depth):
                kab, kaa, kbb = _expect_(act, kab, kaa, kbb)
                if layer < depth - 1:
                    kab.mul_(sw2).add_(sb2)
                    kaa, kbb = sb2 + sw2 * kaa, sb2 + sw2 * kbb
            acc.add_(kab, alpha=coef)
    if sym:
        out.sub_(out.flip(0))
    return out


def _is_symmetric(s: torch.Tensor) -> bool:
    return bool(torch.equal(s.flip(0), -s))


def nngp_pass(sa: torch.Tensor, y: torch.Tensor, m: int, jitter: float, x: torch.Tensor,
              base: torch.Tensor, seed: int,
              control: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
              gram: torch.Tensor | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The NNGP kernels of :data:`GRID`, per column, as one member of the model average.

    ``sa``: ``K x n`` pair codes (the all-ones pair last, noise-free), ``y``: ``C x K``, ``x``
    and ``base``: ``C x n`` (the explained input and its baseline of each column). Per column
    every kernel of the grid is fitted (amplitude profiled out, as the product kernels), and
    the posterior Shapley values of those holding at least :data:`MIN_WEIGHT` of the grid's
    marginal likelihood are averaged. Returns ``(loglik C, phi C x n, var C x n)`` with the
    log-likelihood of the grid as a whole (``logsumexp``: each kernel has the weight of one
    product kernel in the average).

    ``control``: ``(lam, tau, alpha, phi)`` of the best product kernel per column. Its
    posterior mean, whose Shapley values ``phi`` are exact, is a control variate: only the
    difference of the two posterior means is sampled (without it the ~0.3% sampling error
    dominated on a near-additive game at 512 evaluations, digits16: x3.2 the error).

    ``gram``: the first-layer weight covariance (``n x n``, mean diagonal one, shared by every
    column, or ``C x n x n``, one per column: :func:`live_first_layer_grams`) in place of the
    identity: ``sw2 / n * gram`` (:func:`first_layer_gram`).
    """
    from .gp_shapley import _cholesky

    kc, n = sa.shape
    cols = y.shape[0]
    # modulo 2**64: a seed near the top of the accepted range (check_seed) would overflow torch's
    # 64-bit seed (a bare 'Overflow when unpacking long long'); smaller seeds are unchanged
    gen = torch.Generator().manual_seed((int(seed) + 7919) % MAX_SEED)
    s_big, _, l_big = _coalition_sample(n, ROWS, gen)
    s_var, _, l_var = _coalition_sample(n, VAR_ROWS, gen)
    one = torch.ones(1, n, dtype=torch.float64)
    lls = torch.empty(cols, dtype=torch.float64)  # weighed against float64 members
    phis = torch.zeros(cols, n, dtype=torch.float64)
    vars_ = torch.zeros(cols, n, dtype=torch.float64)
    s_rows = torch.cat([s_big, one])  # the surrogate's coalitions and N
    sv = torch.cat([s_var, one])
    sym_big = _is_symmetric(s_big)
    for c in range(cols):
        dots = _Dots(x[c], base[c], gram if gram is None or gram.dim() == 2 else gram[c])
        fits = []
        cr_fit = dots.cross(sa, sa)
        for spec in GRID:
            k = _odd_fast(dots, cr_fit, spec)
            kbar = torch.diagonal(k).mean()
            chol = _cholesky(k[None], m, (jitter * kbar).reshape(1))[0]
            a = torch.linalg.solve_triangular(chol, y[c, :, None], upper=False)
            alpha = torch.linalg.solve_triangular(chol.T, a, upper=True)[:, 0]
            sigma2 = (a**2).sum().clamp_min(1e-300) / kc
            ll = -0.5 * kc * torch.log(sigma2) - torch.log(torch.diagonal(chol)).sum()
            fits.append((float(ll), spec, chol, alpha, sigma2))
        ll_all = torch.tensor([f[0] for f in fits], dtype=torch.float64)
        wts = torch.softmax(ll_all, 0)
        keep = [i for i in range(len(fits)) if float(wts[i]) >= MIN_WEIGHT]
        wk = wts[keep] / wts[keep].sum()
        ph_list, var_list = [], []
        if control is not None:
            from .gp_shapley import gp_predict

            lam_c, tau_c, alpha_c, phi_c = (v[c : c + 1] for v in control)
            h_ctl = gp_predict(sa[:-1], s_rows, lam_c, tau_c, alpha_c)[0] / 2.0
        cr_big = dots.cross(s_big, sa)
        cr_one = dots.cross(one, sa)
        cr_vv, cr_va = dots.cross(sv, sv), dots.cross(sv, sa)
        for i in keep:
            _, spec, chol, alpha, sigma2 = fits[i]
            # Shapley values of z -> k_odd(z, s_k) / 2 (K x n), on the large sample
            tab = torch.cat([_odd_fast(dots, cr_big, spec, sym_big),
                             _odd_fast(dots, cr_one, spec)]) / 2.0
            if control is None:
                ph_list.append(alpha @ (l_big @ tab).T)
            else:
                ph_list.append(phi_c[0] + l_big @ (tab @ alpha - h_ctl))
            # posterior variance of the small sample's estimate of phi (prior L K L^T / 4, as
            # d is twice the odd part; its covariance with the pairs from the same rows, so
            # the difference is a true posterior variance, never negative)
            kvv = _odd_fast(dots, cr_vv, spec) / 4.0
            prior = ((l_var @ kvv) * l_var).sum(1)
            g_var = (l_var @ (_odd_fast(dots, cr_va, spec) / 2.0)).T  # K x n
            lg = torch.linalg.solve_triangular(chol, g_var, upper=False)
            var_list.append(sigma2 * (prior - (lg**2).sum(0)).clamp_min(0.0))
        ph_t, var_t = torch.stack(ph_list), torch.stack(var_list)
        phis[c] = (wk[:, None] * ph_t).sum(0)
        vars_[c] = (wk[:, None] * (var_t + ph_t**2)).sum(0) - phis[c] ** 2
        lls[c] = torch.logsumexp(ll_all, 0) - LOG_PRIOR_DISCOUNT
    return lls.to(torch.float64), phis, vars_.clamp_min(0.0)


def first_layer_gram(weight: torch.Tensor) -> torch.Tensor | None:
    """``W' W`` of a first linear layer's weight ``W`` (``h x n``), scaled to mean diagonal one
    (so that the grid's ``sw2`` keeps its meaning), in float64 on the CPU; ``None`` when it is
    not finite or all zero (the isotropic kernels then run)."""
    w = weight.detach().to("cpu", torch.float64)
    gram = w.T @ w
    scale = torch.diagonal(gram).mean()
    if not bool(torch.isfinite(gram).all()) or not float(scale) > 0.0:
        return None
    return gram / scale


def live_first_layer_grams(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor,
                           base: torch.Tensor) -> torch.Tensor | None:
    """Per column, ``W' W`` over the rows of a first linear layer followed by a ReLU that can fire
    somewhere on that column's box (``C x n x n``, each scaled as :func:`first_layer_gram`), or
    ``None`` where no row is dead for any column (the shared Gram then runs unchanged).

    Every coalition's input lies in the box between the baseline ``base[c]`` and ``x[c]`` (a
    vertex of it), so row ``k``'s pre-activation is at most ``b_k + sum_i max(w_ki x_ci, w_ki
    base_ci)``; where that is ``<= 0`` the ReLU outputs zero on every coalition and the row is no
    part of the game's function: ``W' W`` gave it full weight all the same (rev47p: 28 of 32
    dead rows, x1.09-1.24 the error; the same function without them, x0.78). Exact, no model
    call. A column whose rows are all dead (a constant game) keeps the full Gram."""
    w = weight.detach().to("cpu", torch.float64)
    b = (torch.zeros(w.shape[0], dtype=torch.float64) if bias is None
         else bias.detach().to("cpu", torch.float64))
    # in blocks of columns (the C x h x n products were 3 x 131 MB at C = 640, h = 256, n = 100)
    step = max(1, (1 << 22) // max(1, w.numel()))
    top = torch.cat([b[None] + torch.maximum(xc[:, None, :] * w[None], bc[:, None, :] * w[None]).sum(-1)
                     for xc, bc in zip(torch.split(x, step), torch.split(base, step))]) if x.shape[0] else \
        b[None].expand(0, -1)
    live = top > 0  # C x h
    if not bool(torch.isfinite(top).all()) or bool(live.all()):
        return None
    full = first_layer_gram(weight)
    if full is None:
        return None
    # one Gram per distinct live set (the targets of a point share its box: rev48p measured 9.9 s
    # for 64 points x 10 targets computed column by column)
    sets, where = torch.unique(live, dim=0, return_inverse=True)
    grams = []
    for row in sets:
        g = first_layer_gram(w[row]) if bool(row.any()) and not bool(row.all()) else None
        grams.append(full if g is None else g)
    return torch.stack(grams)[where]
