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
``second_order+expected`` (both). Each row prints its cost: seconds and training replays.

Run (1 torch thread, reuses the data benchmark's bank directory)::

    python benchmarks/bench_data_metagradient_drop.py --seed 0 --sets 30
    python benchmarks/bench_data_metagradient_drop.py --seed 1 --sets 0 \
        --variants tangent second_order --probes 16
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import tribute
from tribute.bench.data_suite import SMALL_DROPS, build_data_case
from tribute.metrics import linear_score

#: Variant name -> the metagradient options it passes (from the command line).
VARIANTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "tangent": lambda a: {},
    "second_order": lambda a: {"curvature_probes": a.probes},
    "expected": lambda a: {"points": a.points, "drop_fraction": a.drop_fraction},
    "second_order+expected": lambda a: {"curvature_probes": a.probes, "points": a.points,
                                        "drop_fraction": a.drop_fraction},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", type=int, default=30)
    ap.add_argument("--bank-dir", default="bench-out/data-banks")
    ap.add_argument("--variants", nargs="+", default=["tangent"], choices=list(VARIANTS))
    ap.add_argument("--probes", type=int, default=16, help="curvature_probes of second_order")
    ap.add_argument("--points", type=int, default=2, help="points of expected")
    ap.add_argument("--drop-fraction", type=float, default=0.02, help="q of expected")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seed = args.seed
    case = build_data_case("digits_mlp", seed, "quick")
    data = case.data(bank=f"{args.bank_dir}/digits_mlp-{seed}-quick")
    game = tribute.build_game(case.model, case.X_test, target=case.y_test, players=data)
    n = data.n_train
    print(f"digits_mlp seed {seed}, {n} training digits; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    meta = None
    for name in args.variants:
        kw = VARIANTS[name](args)
        t = time.perf_counter()
        attr = tribute.explain(case.model, case.X_test, method="metagradient",
                               target=case.y_test, players=data, seed=seed, **kw)
        secs = time.perf_counter() - t
        lds = [float(np.nanmean(linear_score(game, attr, n_subsets=case.n_subsets,
                                             alpha=1 - frac, seed=seed + off).scores))
               for frac, _, off in SMALL_DROPS]
        print(f"{name:24s} {kw}: LDS " + " ".join(f"{f:.0%} {x:.4f}" for (f, _, _), x in
                                                 zip(SMALL_DROPS, lds))
              + f" | {secs:.0f}s, {attr.extra['replays']} replays, n_evals {attr.n_evals}",
              flush=True)
        if meta is None:
            meta = attr.values[:, 0, :].numpy() if attr.values.ndim == 3 else attr.values.numpy()
    assert meta is not None
    if args.sets <= 0:
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
