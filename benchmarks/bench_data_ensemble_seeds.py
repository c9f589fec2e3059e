"""Does ensembling over training seeds help? LDS against ground truths retrained from other seeds.

The data suite's ground truth retrains every held-out subset from the *same* seed as the
explained model (``TrainingData(seed=0)``, and the case's model is ``fit(X, y, seed=0)``). An
ensemble over training seeds (``n_models=k``) estimates the seed-averaged effect of the data, so
it can only help where the ground truth's own seed dependence matters. This script scores the
same credits against ground truths retrained from seeds 0 (the suite's), 1 and 2 on the same
held-out subsets, and against their mean over seeds.

Run (1 thread; the seed-0 bank is shared with ``bench_data_attribution.py``)::

    python benchmarks/bench_data_ensemble_seeds.py --seed 1 --gt-seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import tribute
from tribute.bench.data_suite import build_data_case
from tribute.games.data import TrainingData
from tribute.metrics import linear_score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="digits_mlp")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gt-seeds", default="0,1,2")
    ap.add_argument("--bank-dir", default="bench-out/data-banks")
    ap.add_argument("--n-subsets", type=int, default=100)
    ap.add_argument("--out", default="bench-out/data_ensemble_seeds.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    case = build_data_case(args.case, args.seed, "quick")
    games = {}
    for s in [int(x) for x in args.gt_seeds.split(",")]:
        tag = "" if s == 0 else f"-gt{s}"
        data = TrainingData(case.X, case.y, fit=case.fit, seed=s,
                            bank=f"{args.bank_dir}/{args.case}-{args.seed}-quick{tag}")
        games[s] = tribute.build_game(case.model, case.X_test, target=case.y_test, players=data)
    data = case.data(bank=f"{args.bank_dir}/{args.case}-{args.seed}-quick")
    runs: dict[str, dict[str, Any]] = {"influence_abs": {"method": "influence", "indefinite": "abs"},
            "influence_abs_ens3": {"method": "influence", "indefinite": "abs", "n_models": 3},
            "trak": {"method": "trak", "proj_dim": 256},
            "trak_ens10": {"method": "trak", "proj_dim": 256, "n_models": 10}}
    out: dict[str, dict[str, float]] = {}
    row: dict[str, float]
    for label, kw in runs.items():
        kw = dict(kw)
        method = kw.pop("method")
        t0 = time.perf_counter()
        attr = tribute.explain(case.model, case.X_test, method=method, target=case.y_test,
                               players=data, seed=args.seed, **kw)
        secs = time.perf_counter() - t0
        row = {"seconds": secs}
        actual = []
        for gs, game in games.items():  # the suite's held-out subsets (seed + 12345)
            res = linear_score(game, attr, n_subsets=args.n_subsets, seed=args.seed + 12345)
            row[f"gt_seed{gs}"] = float(res.mean)
            pred = np.asarray(res.extra["predicted"])
            actual.append(np.asarray(res.extra["actual"]))
        gt = np.mean(actual, axis=0)
        row["gt_mean"] = float(np.mean([spearmanr(pred[b], gt[b])[0] for b in range(len(gt))]))
        out[label] = row
        print(f"  {label:<20} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"case": args.case, "seed": args.seed, "results": out}, fh, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
