"""Wall time of ``shapley`` (gp_shapley) against ``kernel_shap`` as the number of players grows.

A cheap model (random tanh network ``n -> 16 -> 1``), one explained point, the default budget
``min(2^n, 2048)`` evaluations (so the model's own cost is negligible and the estimator's
arithmetic is what is timed), one CPU thread. Both methods run side by side in this one run;
compare the columns within one run (absolute seconds depend on the machine and its load, printed
first). ``shapley`` hands over to ``kernel_shap`` when its estimated arithmetic exceeds
``max_solve_flops`` (path ``kernel_shap``); the "GP forced" column then times the GP anyway
(``max_solve_flops=inf``), and "est GFlop" is the estimate the rule reads.

Run: ``python benchmarks/bench_gp_shapley_scaling.py [--players 13,64,256,1024] [--points 1,32]
[--repeat 1]``
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import tribute
from tribute.methods.gp_shapley import GPShapley


def _time(repeat: int, *args, **kw) -> tuple[float, tribute.Attribution]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = tribute.explain(*args, **kw)
        best = min(best, time.perf_counter() - t)
    assert out is not None
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", default="13,64,256,1024")
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--points", default="1", help="comma list: explained points per call")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 torch thread)")
    print(f"{'players':>8s} {'points':>6s} {'budget':>7s} {'shapley s':>10s} {'path':>12s} "
          f"{'GP forced s':>12s} {'kernel_shap s':>14s} {'est GFlop':>10s}")
    for n in (int(p) for p in args.players.split(",")):
        for points in (int(p) for p in args.points.split(",")):
            gen = torch.Generator().manual_seed(n)
            net = torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.Tanh(),
                                      torch.nn.Linear(16, 1)).double()
            x = torch.randn(points, n, dtype=torch.float64, generator=gen)
            budget = min(2**n, args.budget)
            t_default, a = _time(args.repeat, net, x, method="shapley", budget=budget)
            path = str(a.params.get("path", ""))
            t_gp = t_default
            if path == "kernel_shap":
                t_gp, _ = _time(args.repeat, net, x, method="shapley", budget=budget,
                                max_solve_flops=float("inf"))
            t_ks, _ = _time(args.repeat, net, x, method="kernel_shap", budget=budget)
            flops = GPShapley().solve_flops(n, budget, points)
            print(f"{n:>8d} {points:>6d} {budget:>7d} {t_default:>10.2f} {path:>12s} {t_gp:>12.2f} "
                  f"{t_ks:>14.2f} {flops / 1e9:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
