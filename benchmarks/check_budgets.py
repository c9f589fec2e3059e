"""Do the rows that reach the model stay within ``budget``, and does ``n_evals`` equal them? (issue #14)

The issue's experiment, re-runnable: a wrapper module counts every row the model sees, for
every registered method that takes feature games (image-only methods excluded), on a small
regression MLP (``n -> 16 -> 1``, float64), at budgets on both sides of the exact-enumeration
boundary ``2^n`` (1,024 for 10 features). Methods without a budget run once. Each run checks:

* ``n_rows`` equals the rows the wrapper counted;
* per input, ``n_evals <= budget`` and rows ``<= budget x background rows``;
* with a point baseline, ``n_evals`` equals the rows per input; with a background of ``M`` rows,
  the documented count ``1 + (n_evals - 1) x M`` (the reference pass ``v(N)`` is one row; not
  checked for gradient methods, which use the background differently).

Prints one line per run and exits with status 1 if any run breaks a rule. Refusals
(``BudgetError`` below a method's minimum, models a method does not take) are listed, not
counted as violations.

Run: ``python benchmarks/check_budgets.py [--features 10] [--samples 1] [--background 1]
[--budgets 16,64,128,256,1000,1024,1025,2048]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

import torch
from torch import nn

import tribute


class Counting(nn.Module):
    """Counts the rows (and forward passes) that reach the wrapped model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows = 0
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        self.passes += 1
        out: torch.Tensor = self.net(x)
        return out


def regression_mlp(n: int, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(n, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--samples", type=int, default=1, help="inputs explained per call")
    ap.add_argument("--background", type=int, default=1, help="baseline rows (1: the point 0.0)")
    ap.add_argument("--budgets", default="16,64,128,256,1000,1024,1025,2048")
    ap.add_argument("--methods", default="", help="comma list (default: every feature method)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    n, n_bg, samples = args.features, args.background, args.samples
    budgets = [int(b) for b in args.budgets.split(",")]
    x = torch.randn(samples, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    base: Any = (torch.randn(n_bg, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
                 if n_bg > 1 else 0.0)
    infos = tribute.methods()
    names = [m for m, i in sorted(infos.items())
             if "feature" in i.tags.games and not i.tags.images_only and i.alias_of is None]
    if args.methods:
        names = [m for m in names if m in args.methods.split(",")]
    violations: list[str] = []
    runs = 0
    for m in names:
        info = infos[m]
        for b in (budgets if info.tags.budgeted else [None]):
            model = Counting(regression_mlp(n))
            kw: dict[str, Any] = {"target": 0, "baseline": base, "seed": 3, "progress": False}
            if b is not None:
                kw["budget"] = b
            t0 = time.process_time()
            try:
                attr = tribute.explain(model, x, method=m, **kw)
            except (tribute.errors.BudgetError, tribute.errors.UnsupportedModelError) as exc:
                print(f"{m:22s} budget={b!s:>5}  refused ({type(exc).__name__}): {str(exc)[:100]}")
                continue
            cpu = time.process_time() - t0
            runs += 1
            per = model.rows / samples
            bad = []
            if attr.n_rows != model.rows:
                bad.append(f"n_rows {attr.n_rows} != rows seen {model.rows}")
            if b is not None and attr.n_evals > b:
                bad.append(f"n_evals {attr.n_evals} > budget {b}")
            if b is not None and per > b * n_bg:
                bad.append(f"rows per input {per:g} > budget {b} x {n_bg}")
            if n_bg == 1 and attr.n_evals != per:
                bad.append(f"n_evals {attr.n_evals} != rows per input {per:g}")
            if n_bg > 1 and not info.tags.needs_gradients and per != 1 + (attr.n_evals - 1) * n_bg:
                bad.append(f"rows per input {per:g} != 1 + (n_evals - 1) x {n_bg}")
            path = attr.params.get("path", "")
            print(f"{m:22s} budget={b!s:>5} rows={model.rows:7d} n_evals={attr.n_evals:6d} "
                  f"passes={model.passes:4d} cpu={cpu:6.2f}s {path!s:14s} {'; '.join(bad) or 'ok'}")
            violations += [f"{m} budget={b}: {v}" for v in bad]
    print(f"runs={runs} violations={len(violations)} (features={n}, samples={samples}, "
          f"background={n_bg})")
    for v in violations:
        print("  " + v)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
