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

Run (1 torch thread, reuses the data benchmark's bank directory)::

    python benchmarks/bench_data_metagradient_drop.py --seed 0 --sets 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

import tribute
from tribute.bench.data_suite import SMALL_DROPS, build_data_case
from tribute.metrics import linear_score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", type=int, default=30)
    ap.add_argument("--bank-dir", default="bench-out/data-banks")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seed = args.seed
    case = build_data_case("digits_mlp", seed, "quick")
    data = case.data(bank=f"{args.bank_dir}/digits_mlp-{seed}-quick")
    game = tribute.build_game(case.model, case.X_test, target=case.y_test, players=data)
    n = data.n_train
    t = time.perf_counter()
    attr = tribute.explain(case.model, case.X_test, method="metagradient", target=case.y_test,
                           players=data)
    print(f"metagradient in {time.perf_counter() - t:.1f}s", flush=True)
    meta = attr.values[:, 0, :].numpy() if attr.values.ndim == 3 else attr.values.numpy()
    for frac, _, off in SMALL_DROPS:
        r = linear_score(game, attr, n_subsets=case.n_subsets, alpha=1 - frac, seed=seed + off)
        print(f"metagradient LDS, {frac:.0%} dropped: {np.nanmean(r.scores):.4f}", flush=True)
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
