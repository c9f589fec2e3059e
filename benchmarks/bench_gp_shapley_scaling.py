"""Wall time of ``shapley`` (gp_shapley) against ``kernel_shap`` as the number of players grows.

A cheap model (random tanh network ``n -> 16 -> 1``), one explained point, budgets
``min(2^n, 2048)`` evaluations or ``--budgets`` (so the model's own cost is negligible and the
estimator's arithmetic is what is timed), one CPU thread, process CPU seconds (less sensitive to
a loaded machine than wall seconds). Both methods run side by side in this one run; compare the
columns within one run (absolute seconds depend on the machine and its load, printed first).
``shapley`` adapts its path to the model's cost (``lean=None``, see ``GPShapley``): the "path"
column says which ran (``gp``, ``gp-lean/<design>``, ``kernel_shap``; also the
``max_solve_flops`` hand-over); the "GP forced" column then times the full GP anyway
(``lean=False, max_solve_flops=inf``), and "est GFlop" is the full path's estimate.

``--design``: instead, the seconds of the Bayesian optimal design alone (greedy picks over the
candidate pool, :mod:`tribute.methods._gp_design`) at 13, 30 and 64 players and 63, 255 and 1,023
pairs, next to the design code of an earlier git revision (``--before REV``, e.g. the commit
before the blocked greedy) in the same run: process CPU seconds (less sensitive to a loaded
machine than wall seconds, also printed) and the variance each design removes under the design
prior, relative to the earlier design's (the greedy's objective; 1.000 = as good).

Run: ``python benchmarks/bench_gp_shapley_scaling.py [--players 13,64,256,1024] [--points 1,32]
[--budgets 64,256,2048] [--repeat 1] [--warm]`` or ``python benchmarks/bench_gp_shapley_scaling.py --design --before REV``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import types
from pathlib import Path

import torch

import tribute
import tribute.errors
from tribute.methods.gp_shapley import GPShapley


def _design_module_at(rev: str) -> types.ModuleType:
    """``tribute.methods._gp_design`` as it was at git revision ``rev``."""
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{rev}:src/tribute/methods/_gp_design.py"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("tribute.methods._gp_design_before")
    mod.__package__ = "tribute.methods"
    exec(compile(src, f"{rev}:_gp_design.py", "exec"), mod.__dict__)  # our own file, from git
    return mod


def _removed(design: torch.Tensor) -> float:
    """Variance of the Shapley values removed by ``design`` (plus the all-ones pair) under the
    design prior: ``trace(G^T K^-1 G)``."""
    from tribute.methods._gp_design import DESIGN_TAU, DESIGN_TOTAL, _shapley_terms

    n = design.shape[1]
    lam = min(DESIGN_TOTAL / n, 30.0)
    x = torch.cat([torch.ones(1, n, dtype=torch.float64), design])
    dots = x @ x.T
    dist = lam * (n - dots) / 2
    k = (torch.exp(-dist) - torch.exp(-(lam * n - dist))) / 2 + DESIGN_TAU * dots / n
    k += 1e-10 * float(k.diagonal().mean()) * torch.eye(len(x), dtype=torch.float64)
    g = _shapley_terms(x, lam, DESIGN_TAU)
    return float(torch.trace(g.T @ torch.linalg.solve(k, g)))


def design_main(before: str, players: list[int], pairs: list[int]) -> None:
    from tribute.methods._gp_design import greedy_order, pool_size
    from tribute.methods._shapley_common import PairSampler

    old = _design_module_at(before)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 torch thread); before = {before}")
    print(f"{'players':>8s} {'pairs':>6s} {'pool':>6s} {'before cpu s':>13s} {'after cpu s':>12s} "
          f"{'speed-up':>9s} {'before wall':>12s} {'after wall':>11s} {'objective':>10s}")
    for n in players:
        for m in pairs:
            if m > 2 ** (n - 1) - 1:
                continue
            pool = PairSampler(n, "kernel", torch.Generator().manual_seed(0)).grow(pool_size(n, m))
            out = []
            for fn in (old.greedy_order, greedy_order):
                c0, w0 = time.process_time(), time.perf_counter()
                order = fn(pool, m)
                out.append((time.process_time() - c0, time.perf_counter() - w0, _removed(pool[order])))
            (cb, wb, ob), (ca, wa, oa) = out
            print(f"{n:>8d} {m:>6d} {len(pool):>6d} {cb:>13.2f} {ca:>12.2f} {cb / ca:>8.1f}x "
                  f"{wb:>12.2f} {wa:>11.2f} {oa / ob:>10.4f}", flush=True)


def _cpu(repeat: int, *args, cold: bool = True, **kw) -> tuple[float, tribute.Attribution]:
    """Least process CPU seconds of ``repeat`` calls (the optimal designs kept by
    :func:`._gp_design.optimal_pairs` forgotten before each call when ``cold``: what a first
    call pays)."""
    from tribute.methods._gp_design import clear_design_cache

    best, out = float("inf"), None
    for _ in range(repeat):
        if cold:
            clear_design_cache()
        t = time.process_time()
        out = tribute.explain(*args, **kw)
        best = min(best, time.process_time() - t)
    assert out is not None
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", default="13,64,256,1024")
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--budgets", default="", help="comma list: overrides --budget")
    ap.add_argument("--points", default="1", help="comma list: explained points per call")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warm", action="store_true", help="keep the cached optimal designs between "
                    "calls (default: forget them, so each call pays its design as a first one)")
    ap.add_argument("--design", action="store_true", help="time the optimal design alone")
    ap.add_argument("--before", default="HEAD", help="with --design: the git revision to compare with")
    ap.add_argument("--design-players", default="13,30,64")
    ap.add_argument("--design-pairs", default="63,255,1023")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.design:
        design_main(args.before, [int(p) for p in args.design_players.split(",")],
                    [int(p) for p in args.design_pairs.split(",")])
        return
    budgets = [int(b) for b in (args.budgets or str(args.budget)).split(",")]
    lean_ok = "lean" in GPShapley().get_params()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 torch thread; process CPU seconds, "
          f"min of {args.repeat}; designs {'cached' if args.warm else 'cold'})")
    print(f"{'players':>8s} {'points':>6s} {'budget':>7s} {'shapley s':>10s} {'path':>20s} "
          f"{'GP forced s':>12s} {'kernel_shap s':>14s} {'est GFlop':>10s}")
    for n in (int(p) for p in args.players.split(",")):
        for points in (int(p) for p in args.points.split(",")):
            gen = torch.Generator().manual_seed(n)
            net = torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.Tanh(),
                                      torch.nn.Linear(16, 1)).double()
            x = torch.randn(points, n, dtype=torch.float64, generator=gen)
            for budget in budgets:
                budget = min(2**n, budget)
                t_default, a = _cpu(args.repeat, net, x, method="shapley", budget=budget,
                                    cold=not args.warm)
                path = str(a.params.get("path", ""))
                if path not in ("gp", "exact"):
                    path += f"/{a.params.get('design', '-')}" if path.startswith("gp") else ""
                t_gp = t_default
                if not path.startswith("gp") or path.startswith("gp-lean"):
                    force = {"max_solve_flops": float("inf"), **({"lean": False} if lean_ok else {})}
                    t_gp, _ = _cpu(args.repeat, net, x, method="shapley", budget=budget,
                                   cold=not args.warm, **force)
                try:
                    t_ks, _ = _cpu(args.repeat, net, x, method="kernel_shap", budget=budget)
                    ks = f"{t_ks:>14.3f}"
                except tribute.errors.BudgetError:  # below kernel_shap's n + 2
                    ks = f"{'-':>14s}"
                flops = GPShapley().solve_flops(n, budget, points)
                print(f"{n:>8d} {points:>6d} {budget:>7d} {t_default:>10.3f} {path:>20s} "
                      f"{t_gp:>12.3f} {ks} {flops / 1e9:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
