"""Metagradient LDS with 1%, 3% and 5% of the training set dropped, and how additive the truth is.

digits + MLP (the data suite's ``digits_mlp`` case: 900 training digits, 100 test points, a
64-32-10 tanh MLP, 300 full-batch steps). For each drop fraction:

* the metagradient's LDS on 100 held-out random subsets (the suite's ``SMALL_DROPS`` subsets, so
  the numbers equal ``run_data_case``'s ``lds_dropNpct``);
* an additivity check of the ground truth itself: for ``--sets`` random dropped sets ``D``
  split into halves ``A`` and ``B``, retrain without ``D``, without ``A`` and without ``B``
  and compare the true change ``v(all \\ D) - v(all)`` with the sum of the two halves' true
  changes (Spearman over the sets, mean over test points), plus the mean relative size of the
  interaction ``|Delta_D - Delta_A - Delta_B| / |Delta_D|``. An estimator that is additive over
  examples cannot beat the truth's own additivity over halves by much; what it loses beyond it
  is its own error.

Variants (``--variants``, each one ``explain`` call timed on its own, LDS on the same subsets
side by side): ``tangent`` (the plain metagradient), ``second_order`` (``curvature_probes=
--probes``: tangent x (1 + leverage)), ``expected`` (``points=--points``,
``drop_fraction=--drop-fraction``: mean of metagradients at Bernoulli masks) and
``second_order+expected`` (both) and ``second_order+retrain`` (``retrain_top=--retrain-top``:
exact leave-one-out for the examples of largest leverage). Each row prints its cost: seconds
and training replays.

**Ceiling of additive attribution** (``--ceiling loo,datamodel``): LDS is a rank correlation of
a *sum of per-example credits* with the truth, so what any additive credit can reach bounds
every estimator scored this way. ``loo`` retrains without each example in turn (``n_train``
retrains) and scores the exact leave-one-out changes as credits; it also reports, per variant,
how far its credits are from them and the LDS of the variant rescaled per example by the one
factor that best fits the true LOO change over test points (the most any per-example
correction of that variant can give). ``datamodel`` fits a ridge regression of each test
output on the drop masks of ``--datamodel-retrains N`` fresh random drops at the same fraction
(Ilyas et al. 2022; penalty by 5-fold cross-validation on those retrains only) and scores its
coefficients, for each ``N`` listed (how the ceiling grows with ``N``). These retrains use
:func:`train_many` (the case's ``MLPFit`` run, batched; equal to ``fit`` to rounding) and are
cached under ``--ceiling-dir`` (resumable). ``--truth batched`` scores every row against the
held-out subsets retrained the same way instead of through the bank (same values to
rounding, about twice as fast to build on a loaded machine).

Run (1 torch thread, reuses the data benchmark's bank directory)::

    python benchmarks/bench_data_metagradient_drop.py --seed 0 --sets 30
    python benchmarks/bench_data_metagradient_drop.py --seed 1 --sets 0 \
        --variants tangent second_order --probes 16
    python benchmarks/bench_data_metagradient_drop.py --seed 0 --sets 0 --variants tangent \
        --ceiling loo,datamodel --datamodel-fractions 0.05 --datamodel-retrains 250 500 1000
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import tribute
from tribute.bench.data_suite import SMALL_DROPS, build_data_case
from tribute.games.data_fits import MLPFit
from tribute.metrics import linear_score
from tribute.metrics._util import random_subsets, spearman_rows

#: Variant name -> the metagradient options it passes (from the command line).
VARIANTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "tangent": lambda a: {},
    "second_order": lambda a: {"curvature_probes": a.probes},
    "expected": lambda a: {"points": a.points, "drop_fraction": a.drop_fraction},
    "second_order+expected": lambda a: {"curvature_probes": a.probes, "points": a.points,
                                        "drop_fraction": a.drop_fraction},
    "second_order+retrain": lambda a: {"curvature_probes": a.probes,
                                       "retrain_top": a.retrain_top},
}


def train_many(fit: MLPFit, X: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
               seed: int) -> dict[str, torch.Tensor]:
    """``K`` runs of ``fit`` at once, one per row of ``weights`` (``K x n``): stacked parameters.

    The same objective and steps as :meth:`MLPFit.unrolled` (mean loss normalised by
    ``sum(weights)``, heavy-ball momentum, weight decay on every parameter) with hand-written
    gradients; the first layers of all runs form one matrix (``K hidden x d``), so each step is
    two large products instead of ``K`` small ones. Agrees with ``fit`` to rounding (checked in
    ``tests/data/test_data_metagradient.py``). Returns ``{"0.weight": K x h x d, "0.bias":
    K x h, "2.weight": K x C x h, "2.bias": K x C}``.
    """
    Xd = torch.as_tensor(X, dtype=torch.float64).flatten(1)
    yl = torch.as_tensor(y).reshape(-1).long()
    W = torch.as_tensor(weights, dtype=torch.float64)
    K, n = W.shape
    init = dict(fit.init(Xd.shape[1], seed).named_parameters())
    h, C = fit.hidden, fit.n_classes
    params = [init["0.weight"].detach().repeat(K, 1),  # (K h) x d
              init["0.bias"].detach().repeat(K)[:, None],  # (K h) x 1
              init["2.weight"].detach().expand(K, -1, -1).clone(),  # K x C x h
              init["2.bias"].detach()[None, :, None].expand(K, -1, -1).clone()]  # K x C x 1
    vel = [torch.zeros_like(p) for p in params]
    Y = torch.nn.functional.one_hot(yl, C).to(torch.float64).T  # C x n
    scale = (W / W.sum(1, keepdim=True).clamp_min(1e-12))[:, None, :]  # K x 1 x n
    XT = Xd.T.contiguous()
    for _ in range(fit.steps):
        W1, b1, W2, b2 = params
        H = torch.tanh(torch.addmm(b1, W1, XT))  # (K h) x n
        H3 = H.view(K, h, n)
        G = (torch.softmax(torch.baddbmm(b2, W2, H3), 1) - Y) * scale  # K x C x n
        dA = torch.bmm(W2.transpose(1, 2), G).view(K * h, n) * (1 - H * H)
        grads = (dA @ Xd, dA.sum(1, keepdim=True), torch.bmm(G, H3.transpose(1, 2)),
                 G.sum(2, keepdim=True))
        vel = [fit.momentum * v + (g + fit.l2 * p) for v, g, p in zip(vel, grads, params)]
        params = [p - fit.lr * v for p, v in zip(params, vel)]
    W1, b1, W2, b2 = params
    return {"0.weight": W1.view(K, h, -1), "0.bias": b1.view(K, h), "2.weight": W2,
            "2.bias": b2[:, :, 0]}


def retrained_outputs(game: Any, fit: MLPFit, masks: np.ndarray, path: Path, *,
                      chunk: int = 60) -> np.ndarray:
    """Explained test outputs (``K x batch``) of the models trained on ``masks`` (``K x n``).

    Trained ``chunk`` at a time by :func:`train_many`; every finished chunk is saved to ``path``
    (``.npz`` with the masks), so a killed run resumes where it stopped and a rerun trains
    nothing (a file whose masks differ is ignored and overwritten).
    """
    done = np.zeros((0, game.n_samples))
    if path.exists():
        with np.load(path) as z:
            k = min(len(z["outputs"]), len(masks))
            if np.array_equal(z["masks"][:k], masks[:k].astype(bool)):
                done = z["outputs"][:k]
    rows = [done]
    for s in range(len(done), len(masks), chunk):
        t = time.perf_counter()
        P = train_many(fit, game.X_train, game.data.y, torch.as_tensor(masks[s : s + chunk]),
                       game.data.seed)
        with torch.no_grad():
            rows.append(np.stack([
                game.explained(game.forward({k: v[j] for k, v in P.items()}, game.X_test),
                               game.y_test).numpy() for j in range(len(P["0.bias"]))]))
        out = np.concatenate(rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, masks=masks[: len(out)].astype(bool), outputs=out)
        os.replace(tmp, path)
        print(f"  {path.name}: {len(out)}/{len(masks)} retrained "
              f"({(time.perf_counter() - t) / len(P['0.bias']):.2f} s each)", flush=True)
    return np.concatenate(rows)


def ridge_datamodel(masks: np.ndarray, outputs: np.ndarray, *, folds: int = 5,
                    grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Linear datamodels (Ilyas et al. 2022): ridge of ``outputs`` (``K x batch``) on ``masks``.

    Per test point, the penalty is chosen from ``grid`` (relative to the largest squared
    singular value of the centred design) by ``folds``-fold cross-validated squared error on
    these retrains only. Returns the coefficients (``batch x n``: the effect of *including*
    each example, the library's sign) and the chosen penalties (``batch``).
    """
    M = masks.astype(np.float64)
    Y = np.asarray(outputs, dtype=np.float64)
    grid = np.logspace(-6, 1, 15) if grid is None else grid
    K = len(M)
    part = np.arange(K) % folds
    err = np.zeros((len(grid), Y.shape[1]))

    def solve(A: np.ndarray, B: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, float]:
        U, s, Vt = np.linalg.svd(A - A.mean(0), full_matrices=False)
        scale = float(s[0] ** 2)
        UtB = U.T @ (B - B.mean(0))
        # coefficients for every penalty: L x n x batch
        return np.stack([Vt.T @ ((s / (s * s + lam_ * scale))[:, None] * UtB)
                         for lam_ in lam]), scale

    for f in range(folds):
        tr, te = part != f, part == f
        coef, _ = solve(M[tr], Y[tr], grid)
        pred = np.einsum("kn,lnb->lkb", M[te] - M[tr].mean(0), coef) + Y[tr].mean(0)
        err += ((pred - Y[te]) ** 2).sum(1)
    best = err.argmin(0)
    coef, _ = solve(M, Y, grid)
    return coef[best, :, np.arange(Y.shape[1])], grid[best]


class Scorer:
    """LDS on the suite's ``SMALL_DROPS`` held-out subsets, against one of two truths.

    ``bank``: ``linear_score`` through the retrain bank (the numbers of ``run_data_case``).
    ``batched``: the same subsets (drawn as ``linear_score`` draws them) retrained by
    :func:`train_many` and cached under the ceiling directory: the same truth to rounding
    (``tests/data/test_metagradient_ceiling.py``), about twice as fast to build.
    """

    def __init__(self, game: Any, fit: MLPFit, truth: str, root: Path, seed: int,
                 n_subsets: int) -> None:
        self.game, self.fit, self.truth, self.root = game, fit, truth, root
        self.seed, self.n_subsets = seed, n_subsets
        self._values: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def full(self) -> np.ndarray:
        """``v(all)`` per test point (``batch``)."""
        if self.truth == "bank":
            return np.asarray(self.game.full()[:, 0].numpy())
        ones = np.ones((1, self.game.data.n_train), dtype=bool)
        return retrained_outputs(self.game, self.fit, ones, self.root / "full.npz")[0]

    def _subsets(self, frac: float, off: int) -> tuple[np.ndarray, np.ndarray]:
        if frac not in self._values:
            n = self.game.data.n_train
            g = torch.Generator().manual_seed(self.seed + off)
            masks = random_subsets(n, min(max(1, round((1 - frac) * n)), n), self.n_subsets,
                                   g).numpy().astype(bool)
            V = retrained_outputs(self.game, self.fit, masks, self.root / f"eval-{frac:.2f}.npz")
            self._values[frac] = masks, V.T  # batch x K
        return self._values[frac]

    def lds(self, credits: np.ndarray) -> list[float]:
        """Mean LDS over test points at each ``SMALL_DROPS`` fraction (``credits``: batch x n)."""
        out = []
        for frac, _, off in SMALL_DROPS:
            if self.truth == "bank":
                attr = self.game.attribution(torch.as_tensor(credits)[:, None, :], "credits")
                sc = linear_score(self.game, attr, n_subsets=self.n_subsets, alpha=1 - frac,
                                  seed=self.seed + off).scores
            else:
                masks, V = self._subsets(frac, off)
                sc = spearman_rows(credits @ masks.T.astype(np.float64), V)
            out.append(float(np.nanmean(np.asarray(sc, dtype=np.float64))))
        return out


def ceilings(args: argparse.Namespace, case: Any, game: Any, meta: dict[str, np.ndarray],
             score: Scorer, root: Path) -> None:
    """What an additive attribution can reach: exact leave-one-out, datamodels (see --ceiling)."""
    seed, n = args.seed, game.data.n_train
    full = score.full()
    fmt = " ".join(f"{f:.0%} {{:.4f}}" for f, _, _ in SMALL_DROPS)
    kinds = args.ceiling.split(",")
    unknown = set(kinds) - {"loo", "datamodel"}
    if unknown:
        raise SystemExit(f"--ceiling {args.ceiling!r}: unknown {sorted(unknown)}; use loo, datamodel")
    if meta:
        root.mkdir(parents=True, exist_ok=True)
        np.savez(root / "variants.npz", **meta)  # type: ignore[arg-type]  # for offline analysis
    if "loo" in kinds:
        t = time.perf_counter()
        V = retrained_outputs(game, case.fit, ~np.eye(n, dtype=bool), root / "loo.npz")
        loo = (full[None, :] - V).T  # batch x n: v(all) - v(all without i)
        print(f"ceiling loo: {n} retrains ({time.perf_counter() - t:.0f}s)", flush=True)
        print("exact leave-one-out credits: LDS " + fmt.format(*score.lds(loo)), flush=True)
        for name, J in meta.items():
            # per example, the one factor that best maps the tangent onto the true LOO change
            # over test points: what a per-example correction of this variant can reach at most
            c = (J * loo).sum(0) / np.maximum((J * J).sum(0), 1e-300)
            rel = np.linalg.norm(J - loo) / np.linalg.norm(loo)
            print(f"  {name}: |credit - LOO| / |LOO| {rel:.3f}; Spearman per test point "
                  f"{np.nanmean([spearmanr(J[b], loo[b])[0] for b in range(len(J))]):.4f}; "
                  f"best per-example factor (median {np.median(c):.2f}, IQR "
                  f"{np.subtract(*np.percentile(c, [75, 25])):.2f}) -> LDS "
                  + fmt.format(*score.lds(J * c[None, :])), flush=True)
    if "datamodel" in kinds:
        sizes = sorted(args.datamodel_retrains)
        for frac, _, off in SMALL_DROPS:
            if not any(abs(frac - f) < 1e-9 for f in args.datamodel_fractions):
                continue
            # fresh random drops of the same size, from a generator the LDS subsets never use
            rng = np.random.default_rng([seed, off, 2026])
            nd = round(frac * n)
            masks = np.ones((sizes[-1], n), dtype=bool)
            for row in masks:
                row[rng.choice(n, nd, replace=False)] = False
            t = time.perf_counter()
            V = retrained_outputs(game, case.fit, masks, root / f"datamodel-{frac:.2f}.npz")
            print(f"ceiling datamodel {frac:.0%}: {len(masks)} retrains "
                  f"({time.perf_counter() - t:.0f}s)", flush=True)
            for N in sizes:
                coef, lam = ridge_datamodel(masks[:N], V[:N])
                lds = score.lds(coef)
                k = [f for f, _, _ in SMALL_DROPS].index(frac)
                print(f"  datamodel fitted on {N} drops of {frac:.0%}: LDS at {frac:.0%} "
                      f"{lds[k]:.4f} (all: " + fmt.format(*lds) + f"), median penalty "
                      f"{np.median(lam):.2g}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", type=int, default=30)
    ap.add_argument("--bank-dir", default="bench-out/data-banks")
    ap.add_argument("--variants", nargs="*", default=["tangent"], choices=list(VARIANTS))
    ap.add_argument("--probes", type=int, default=16, help="curvature_probes of second_order")
    ap.add_argument("--points", type=int, default=2, help="points of expected")
    ap.add_argument("--drop-fraction", type=float, default=0.02, help="q of expected")
    ap.add_argument("--retrain-top", type=int, default=25,
                    help="retrain_top of second_order+retrain (exact LOO of the top leverages)")
    ap.add_argument("--ceiling", default="", help="comma list of loo, datamodel: what an "
                    "additive attribution reaches (exact leave-one-out; ridge datamodels)")
    ap.add_argument("--datamodel-retrains", type=int, nargs="+", default=[250, 500, 1000],
                    help="datamodel sizes N (fresh drops per fraction; the largest is trained)")
    ap.add_argument("--datamodel-fractions", type=float, nargs="+",
                    default=[f for f, _, _ in SMALL_DROPS], help="drop fractions of the datamodels")
    ap.add_argument("--ceiling-dir", default="bench-out/ceiling",
                    help="where the ceiling's retrained outputs are kept (resumable)")
    ap.add_argument("--truth", choices=("bank", "batched"), default="bank",
                    help="LDS truth: the retrain bank, or the same subsets retrained by the "
                         "batched trainer (cached in --ceiling-dir; same values to rounding)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seed = args.seed
    case = build_data_case("digits_mlp", seed, "quick")
    data = case.data(bank=f"{args.bank_dir}/digits_mlp-{seed}-quick")
    game = tribute.build_game(case.model, case.X_test, target=case.y_test, players=data)
    n = data.n_train
    print(f"digits_mlp seed {seed}, {n} training digits; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    root = Path(args.ceiling_dir) / f"digits_mlp-{seed}"
    score = Scorer(game, case.fit, args.truth, root, seed, case.n_subsets)
    meta = None
    metas: dict[str, np.ndarray] = {}
    for name in args.variants:
        kw = VARIANTS[name](args)
        t = time.perf_counter()
        attr = tribute.explain(case.model, case.X_test, method="metagradient",
                               target=case.y_test, players=data, seed=seed, **kw)
        secs = time.perf_counter() - t
        metas[name] = attr.values[:, 0, :].numpy() if attr.values.ndim == 3 else attr.values.numpy()
        lds = score.lds(metas[name])
        print(f"{name:24s} {kw}: LDS " + " ".join(f"{f:.0%} {x:.4f}" for (f, _, _), x in
                                                 zip(SMALL_DROPS, lds))
              + f" | {secs:.0f}s, {attr.extra['replays']} replays, n_evals {attr.n_evals}",
              flush=True)
        if meta is None:
            meta = metas[name]
    if args.ceiling:
        ceilings(args, case, game, metas, score, root)
    if args.sets <= 0 or meta is None:
        return 0
    print(f"additivity of the truth, against the {args.variants[0]} variant:", flush=True)
    rng = np.random.default_rng(4242 + seed)
    full = game.full()[:, 0].numpy()
    for frac, _, _ in SMALL_DROPS:
        nd = round(frac * n)
        sets: list[list[np.ndarray]] = [[], [], []]
        for _ in range(args.sets):
            drop = rng.choice(n, nd, replace=False)
            for lst, idx in zip(sets, (drop, drop[: nd // 2], drop[nd // 2 :])):
                m = np.ones(n)
                m[idx] = 0
                lst.append(m)
        t = time.perf_counter()
        V = game.value(torch.as_tensor(np.concatenate(sets)))[:, :, 0].numpy() - full[:, None]
        k = args.sets
        vD, vA, vB = V[:, :k], V[:, k : 2 * k], V[:, 2 * k :]
        add = vA + vB
        pred = -np.stack([(1 - np.asarray(sets[0])) @ meta[b] for b in range(len(full))])
        sp_add = np.nanmean([spearmanr(vD[b], add[b])[0] for b in range(len(full))])
        sp_meta = np.nanmean([spearmanr(vD[b], pred[b])[0] for b in range(len(full))])
        inter = float(np.abs(vD - add).mean() / np.abs(vD).mean())
        print(f"{frac:.0%} dropped ({nd} examples), {k} sets: Spearman(truth, sum of halves' "
              f"truths) {sp_add:.4f}; Spearman(truth, metagradient) {sp_meta:.4f}; "
              f"|interaction|/|change| {inter:.3f} ({time.perf_counter() - t:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
