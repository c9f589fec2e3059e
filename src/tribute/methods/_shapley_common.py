"""Shared machinery of the Shapley/Banzhaf estimators (private).

* exact evaluation of the whole value table when the budget covers every coalition;
* stratified sampling of complementary pairs ``{S, N minus S}`` by coalition size, without
  replacement, growing in rounds (KernelSHAP, Leverage SHAP, the GP estimator);
* the paired, exactly constrained weighted least-squares solve of KernelSHAP with a sandwich
  (linearisation) standard error for stratified sampling.

Conventions: ``s`` denotes a pair in ``{-1, +1}^n`` coding (``z = (s + 1) / 2`` is the first
coalition of the pair, ``1 - z`` the second); ``d = v(z) - v(1 - z)``. Because the Shapley
kernel gives a coalition and its complement the same weight, the KernelSHAP objective over a
set of complete pairs depends on ``phi`` only through ``sum_pairs mu(|S|) (d - phi . s)^2``
(the even part ``v(z) + v(1 - z)`` drops out), which is the regression solved here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..games.base import Game
from ._stderr import inflate, warn_undefined
from .exact import shapley_from_table, value_table

__all__ = [
    "HUGE_STRATUM",
    "PairSampler",
    "exact_shapley_table",
    "paired_wls",
    "shapley_kernel_mu",
]

#: Strata with at least this many pairs are sized by this number in float arithmetic (see
#: :meth:`PairSampler.sizes`).
HUGE_STRATUM = 10**300

#: Pair strata with at most this many members are enumerated and shuffled; larger ones are
#: sampled by rejection (duplicates redrawn).
_ENUM_LIMIT = 100_000


def exact_shapley_table(game: Game) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate all ``2^n`` coalitions; returns ``(phi B x T x n, table B x T x 2^n)``."""
    n = game.n_players
    table = value_table(game)  # v(N) from the reference pass: 2^n evaluations in all
    return shapley_from_table(table, n), table


def shapley_kernel_mu(n: int, k: int) -> float:
    """Shapley kernel weight of one coalition of size ``k`` (``0 < k < n``)."""
    return (n - 1) / (math.comb(n, k) * k * (n - k))


# --------------------------------------------------------------------------- pair strata
@dataclass
class _Stratum:
    k: int  # size of the first coalition of each pair (k <= n / 2)
    size: int  # number of distinct pairs
    mu: float  # Shapley kernel weight of each coalition of the pair
    half: bool  # k == n / 2: a pair's two coalitions have the same size
    drawn: int = 0
    order: torch.Tensor | None = None  # enumerated members (size x k), shuffled
    seen: set[bytes] = field(default_factory=set)


class PairSampler:
    """Stratified sampling of complementary pairs by size, without replacement, in rounds.

    Stratum ``k`` (``1 <= k <= n/2``) holds the pairs ``{S, N minus S}`` with ``|S| = k``.
    Pairs are allocated to strata in proportion to ``mass`` (water-filling: a stratum whose
    share exceeds its size is enumerated completely and the rest is re-shared), and drawn
    uniformly without replacement inside each stratum. Each drawn pair gets the importance
    weight ``mu_k * size_k / m_k`` so that sums over drawn pairs are unbiased for the
    kernel-weighted sums over all pairs.

    Args:
        n: number of players (``>= 2``).
        allocation: ``"kernel"`` (stratum mass = its Shapley-kernel mass, as the shap
            package's KernelExplainer) or ``"leverage"`` (equal mass per coalition size, the
            leverage scores of Musco & Witter 2024).
        generator: the local random generator.
    """

    def __init__(self, n: int, allocation: str, generator: torch.Generator) -> None:
        if n < 2:
            raise ValueError("PairSampler needs n >= 2 players")
        self.n = n
        self.gen = generator
        self.strata: list[_Stratum] = []
        for k in range(1, n // 2 + 1):
            half = 2 * k == n
            size = math.comb(n, k) // (2 if half else 1)
            self.strata.append(_Stratum(k, size, shapley_kernel_mu(n, k), half))
        if allocation == "kernel":
            self.mass = self.masses()
        elif allocation == "leverage":
            self.mass = np.array([1.0 if st.half else 2.0 for st in self.strata])
        else:
            raise ValueError(f"unknown allocation {allocation!r}")
        self.s = torch.empty(0, n, dtype=torch.float64)  # drawn pairs, {-1, +1}
        self.stratum = torch.empty(0, dtype=torch.int64)

    @property
    def total(self) -> int:
        """Number of distinct pairs (``2^(n-1) - 1``)."""
        return sum(st.size for st in self.strata)

    @property
    def m(self) -> int:
        return int(self.s.shape[0])

    def counts(self) -> np.ndarray:
        return np.array([st.drawn for st in self.strata], dtype=np.int64)

    def sizes(self) -> np.ndarray:
        """Pairs per stratum as floats; beyond :data:`HUGE_STRATUM` (``C(n, k)`` past a float's
        range from about 1,030 players) the stratum reads :data:`HUGE_STRATUM` (never exhausted)."""
        return np.array([float(min(st.size, HUGE_STRATUM)) for st in self.strata], dtype=np.float64)

    def masses(self) -> np.ndarray:
        """Shapley-kernel mass per stratum, ``mu_k * size_k``; a stratum too large for a float
        takes its exact value ``(n - 1) / (k (n - k))`` (halved for ``k = n / 2``)."""
        return np.array([st.size * st.mu if st.size < HUGE_STRATUM
                         else (self.n - 1) / (st.k * (self.n - st.k)) / (2.0 if st.half else 1.0)
                         for st in self.strata])

    def weights(self) -> torch.Tensor:
        """Importance weight of each drawn pair (``mu_k * size_k / m_k``)."""
        w = torch.from_numpy(self.masses() / np.maximum(self.counts(), 1).astype(np.float64))
        return w[self.stratum]

    def complete(self) -> torch.Tensor:
        """``m`` bools: the pair's stratum is fully enumerated (no sampling error)."""
        full = torch.tensor([st.drawn == st.size for st in self.strata])
        return full[self.stratum]

    # ------------------------------------------------------------- allocation
    def _allocate(self, m_total: int) -> np.ndarray:
        """Counts per stratum for ``m_total`` pairs in all, never below what is drawn."""
        sizes = self.sizes()
        current = self.counts().astype(np.float64)
        m_total = int(min(m_total, sizes.sum()))
        target = np.zeros_like(sizes)
        free = np.ones(len(sizes), dtype=bool)
        left = float(m_total)
        while free.any() and left > 0:
            share = left * self.mass * free / (self.mass * free).sum()
            over = free & (share >= sizes)
            if not over.any():
                target[free] = share[free]
                break
            target[over] = sizes[over]
            free &= ~over
            left = m_total - target.sum()
        want = np.maximum(target - current, 0.0)
        extra = m_total - current.sum()
        room = sizes - current
        inc = np.zeros_like(sizes)
        if extra <= 0:
            return current.astype(np.int64)
        if want.sum() > 0:
            raw = want * min(1.0, extra / want.sum())
            inc = np.minimum(np.floor(raw), room)
            rem = int(extra - inc.sum())
            order = np.argsort(-(raw - inc), kind="stable")
            for j in order:
                if rem <= 0:
                    break
                if inc[j] < room[j]:
                    inc[j] += 1
                    rem -= 1
        rem = int(extra - inc.sum())
        for j in np.argsort(-self.mass, kind="stable"):  # leftovers: anywhere with room
            if rem <= 0:
                break
            add = min(rem, int(room[j] - inc[j]))
            inc[j] += add
            rem -= add
        return np.asarray(current + inc, dtype=np.int64)

    # ------------------------------------------------------------- drawing
    def grow(self, m_total: int) -> torch.Tensor:
        """Draw pairs until ``m_total`` are drawn (or all); returns the new pairs (``{-1,+1}``)."""
        counts = self._allocate(m_total)
        new_s, new_h = [], []
        for h, (st, c) in enumerate(zip(self.strata, counts)):
            k_new = int(c) - st.drawn
            if k_new <= 0:
                continue
            z = self._draw(st, k_new)
            new_s.append(2.0 * z - 1.0)
            new_h.append(torch.full((k_new,), h, dtype=torch.int64))
        if not new_s:
            return torch.empty(0, self.n, dtype=torch.float64)
        s = torch.cat(new_s)
        self.s = torch.cat([self.s, s])
        self.stratum = torch.cat([self.stratum, torch.cat(new_h)])
        return s

    def _draw(self, st: _Stratum, count: int) -> torch.Tensor:
        n = self.n
        if st.size <= _ENUM_LIMIT:
            if st.order is None:
                st.order = self._enumerate(st)[torch.randperm(st.size, generator=self.gen)]
            idx = st.order[st.drawn : st.drawn + count]
            z = torch.zeros(count, n, dtype=torch.float64)
            z.scatter_(1, idx, 1.0)
            st.drawn += count
            return z
        out: list[torch.Tensor] = []
        got = 0
        while got < count:
            r = torch.rand(2 * (count - got) + 8, n, generator=self.gen, dtype=torch.float64)
            pick = r.argsort(dim=1)[:, : st.k]
            z = torch.zeros(r.shape[0], n, dtype=torch.float64)
            z.scatter_(1, pick, 1.0)
            if st.half:  # canonical member of the pair: the coalition holding player 0
                z = torch.where(z[:, :1] > 0, z, 1.0 - z)
            keys = np.packbits(z.numpy().astype(np.uint8), axis=1)
            keep = []
            for i in range(z.shape[0]):
                key = keys[i].tobytes()
                if key not in st.seen:
                    st.seen.add(key)
                    keep.append(i)
                    if got + len(keep) == count:
                        break
            if keep:
                out.append(z[keep])
                got += len(keep)
        st.drawn += count
        return torch.cat(out)

    def _enumerate(self, st: _Stratum) -> torch.Tensor:
        n, k = self.n, st.k
        if st.half:  # the member holding player 0 represents each pair
            combos = [(0, *c) for c in itertools.combinations(range(1, n), k - 1)]
        else:
            combos = list(itertools.combinations(range(n), k))
        return torch.tensor(combos, dtype=torch.int64).reshape(len(combos), k)


def pair_masks(s: torch.Tensor) -> torch.Tensor:
    """``2m x n`` masks: the first coalitions of the pairs, then their complements."""
    z = (s + 1.0) / 2.0
    return torch.cat([z, 1.0 - z])


def pair_differences(game: Game, s: torch.Tensor) -> torch.Tensor:
    """``d = v(z) - v(1 - z)`` for each pair: ``B x T x m`` (one ``game.value`` call)."""
    m = s.shape[0]
    if m == 0:
        return torch.empty(game.n_samples, game.n_targets, 0, dtype=torch.float64)
    v = game.value(pair_masks(s))  # B x 2m x T
    return (v[:, :m] - v[:, m:]).permute(0, 2, 1)


# --------------------------------------------------------------------------- regression
def _sum_zero_basis(n: int) -> torch.Tensor:
    """``n x (n-1)`` orthonormal basis of the vectors summing to zero."""
    a = torch.eye(n, dtype=torch.float64)
    a[:, 0] = 1.0
    q, _ = torch.linalg.qr(a)
    out: torch.Tensor = q[:, 1:]
    return out


@dataclass
class PairedFit:
    phi: torch.Tensor  # B x T x n
    stderr: torch.Tensor  # B x T x n (NaN when not estimable)
    residual: torch.Tensor  # B x T x m


def paired_wls(s: torch.Tensor, w: torch.Tensor, d: torch.Tensor, delta: torch.Tensor,
               stratum: torch.Tensor, counts: np.ndarray, sizes: np.ndarray) -> PairedFit:
    """KernelSHAP on complementary pairs, with the efficiency constraint solved exactly.

    Solves ``min_phi sum_j w_j (d_j - phi . s_j)^2`` subject to ``sum(phi) = delta`` by
    writing ``phi = delta / n + Q beta`` with ``Q`` an orthonormal basis of the sum-zero
    vectors (so the constraint holds to rounding error) and solving the unconstrained problem
    in ``beta`` by least squares (minimum-norm when the design is rank deficient).

    Standard errors: linearisation (sandwich) of the estimator around the population
    solution. ``beta - beta* ~ H^-1 sum_j w_j a_j r_j`` and that sum is a stratified
    Horvitz-Thompson total whose variance under sampling without replacement inside each
    stratum is ``sum_h (1 - m_h/N_h) w_h^2 m_h var_{j in h}(a_j r_j)``, estimated from the
    fitted residuals, leverage-corrected (HC2: ``r_j / sqrt(1 - h_j)``), pooled across players
    and t-inflated with ``sampled pairs - n + 1`` dof (:mod:`._stderr`); NaN with a warning when no residual
    dof are left or a sampled pair has leverage 1. Strata that are enumerated completely
    contribute nothing; strata with a single sampled pair are pooled.

    Args:
        s: ``m x n`` pairs in ``{-1, +1}``.
        w: ``m`` importance weights.
        d: ``B x T x m`` differences ``v(z) - v(1 - z)``.
        delta: ``B x T`` values ``v(N) - v(empty)``.
        stratum: ``m`` stratum index of each pair.
        counts: pairs drawn per stratum; sizes: pairs per stratum.
    """
    m, n = s.shape
    b, t = d.shape[:2]
    y = d.reshape(b * t, m) - (delta.reshape(-1, 1) / n) * s.sum(1)[None]  # BT x m
    q = _sum_zero_basis(n)
    a = s @ q  # m x (n-1)
    sw = w.sqrt()
    aw = a * sw[:, None]
    sol = torch.linalg.lstsq(aw, (y * sw[None]).T, driver="gelsd").solution  # (n-1) x BT
    phi = delta.reshape(-1, 1) / n + (q @ sol).T  # BT x n
    resid = y - (a @ sol).T  # BT x m

    # ---------------------------------------------------------------- stderr
    var = torch.zeros(b * t, n, dtype=torch.float64)
    h_inv = torch.linalg.pinv(aw.T @ aw)
    c = q @ h_inv @ a.T  # n x m: influence direction of each pair
    p = n - 1
    lev = w * ((a @ h_inv) * a).sum(1)  # m leverages
    sampled = torch.tensor([0 < counts[h] < sizes[h] for h in range(len(counts))],
                           dtype=torch.bool)[stratum] if m else torch.zeros(0, dtype=torch.bool)
    dof = int(sampled.sum()) - p  # pairs of enumerated (or known) strata carry no variance
    estimable = dof >= 1 and not bool((lev[sampled] >= 1.0 - 1e-9).any())
    if not estimable:
        warn_undefined("gp_shapley", f"the paired correction fit on {m} pairs leaves no residual "
                       f"degrees of freedom for {n} players", "Raise budget (or max_pairs).")
        nan = torch.full((b, t, n), float("nan"), dtype=torch.float64)
        return PairedFit(phi.reshape(b, t, n), nan, resid.reshape(b, t, m))
    resid = resid / (1.0 - lev).clamp_min(1e-12).sqrt()[None]  # HC2 leverage correction
    pooled: list[int] = []
    for h in range(len(counts)):
        m_h = int(counts[h])
        if m_h == 0 or m_h >= sizes[h]:
            continue
        idx = (stratum == h).nonzero().flatten()
        if m_h == 1:
            pooled.extend(idx.tolist())
            continue
        w_h = float(w[idx[0]])
        r_h, c_h = resid[:, idx], c[:, idx]
        s1 = r_h @ c_h.T
        s2 = (r_h**2) @ (c_h**2).T
        var_h = (s2 - s1**2 / m_h).clamp_min(0.0) / (m_h - 1)
        var += (1.0 - m_h / float(sizes[h])) * w_h**2 * m_h * var_h
    if pooled:
        idx = torch.tensor(pooled)
        u = resid[:, idx] * w[idx][None]  # BT x P
        var += (u**2) @ (c[:, idx] ** 2).T
    stderr = inflate(var.sqrt(), dof)
    return PairedFit(phi.reshape(b, t, n), stderr.reshape(b, t, n), resid.reshape(b, t, m))
