"""Wall time of ``shapley`` (gp_shapley) against ``kernel_shap`` as the number of players grows.

A cheap model (random tanh network ``n -> 16 -> 1``), one explained point, the default budget
``min(2^n, 2048)`` evaluations (so the model's own cost is negligible and the estimator's
arithmetic is what is timed), one CPU thread. Both methods run side by side in this one run;
the ratio column is what to read (absolute seconds depend on the machine and its load).

Run: ``python benchmarks/bench_gp_shapley_scaling.py [--players 13,64,256,1024] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import time

import torch

import tribute


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", default="13,64,256,1024")
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--points", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'players':>8s} {'budget':>7s} {'shapley s':>10s} {'kernel_shap s':>14s} {'ratio':>7s}  path")
    for n in (int(p) for p in args.players.split(",")):
        gen = torch.Generator().manual_seed(n)
        net = torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        x = torch.randn(args.points, n, dtype=torch.float64, generator=gen)
        budget = min(2**n, args.budget)
        secs: dict[str, float] = {}
        path = ""
        for method in ("shapley", "kernel_shap"):
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                a = tribute.explain(net, x, method=method, budget=budget)
                best = min(best, time.perf_counter() - t)
            secs[method] = best
            if method == "shapley":
                path = str(a.params.get("path", ""))
        print(f"{n:>8d} {budget:>7d} {secs['shapley']:>10.2f} {secs['kernel_shap']:>14.2f} "
              f"{secs['shapley'] / secs['kernel_shap']:>7.1f}  {path}", flush=True)


if __name__ == "__main__":
    main()
