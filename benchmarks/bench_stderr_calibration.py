"""Standard-error calibration of every stochastic method on toy games with exact answers.

For each (method, budget) runs ``--seeds`` seeds on a polynomial game (linear terms plus
pairwise and three-way interactions, see ``tests/stderr_calibration.py``) with 8 inputs and
reports the share of ``|estimate - exact|`` within two reported standard errors (target
~0.95), the RMS error, the RMS stderr, the worst ``|err| / stderr`` and the share of
undefined (NaN/inf) standard errors.

Run: ``.venv/bin/python benchmarks/bench_stderr_calibration.py --seeds 50``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from stderr_calibration import coverage, toy_game

GRID: dict[str, list[tuple[str, float]]] = {
    "kernel_shap": [("n", 2), ("x", 1.5), ("x", 2), ("m", 6), ("x", 4), ("x", 16)],
    "permutation_shapley": [("p", 1), ("p", 2), ("p", 4), ("p", 8), ("p", 16)],
    "gp_shapley": [("a", 6), ("x", 1), ("x", 2), ("x", 4), ("x", 16)],
    "banzhaf": [("a", 5), ("x", 1), ("x", 2), ("x", 4), ("x", 16)],
    "banzhaf_ols": [("n", 3), ("x", 2), ("x", 4), ("x", 16)],
    "rise": [("a", 8), ("x", 2), ("x", 8)],
    "sobol": [("s", 2), ("s", 8), ("s", 32)],
}


def budget_for(method: str, n: int, kind: str, k: float) -> int:
    if kind == "a":
        return int(k)
    if kind == "n":
        return n + int(k)
    if kind == "x":
        return int(k * n)
    if kind == "m":  # 2n + k: kernel_shap's smallest budget with standard errors is 2n + 6
        return 2 * n + int(k)
    if kind == "p":  # antithetic permutation pairs
        return 2 + 2 * (n - 1) * int(k)
    if kind == "s":  # Sobol designs
        return int(k) * (n + 2) + 1
    raise ValueError(kind)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--n", type=int, nargs="+", default=[10, 30])
    ap.add_argument("--methods", nargs="+", default=list(GRID))
    args = ap.parse_args()
    print(f"{'method':<20} {'n':>3} {'budget':>6} {'cover':>6} {'rms_err':>9} {'rms_se':>9} "
          f"{'worst':>7} {'undef':>6} {'sec':>6}")
    for method in args.methods:
        for n in args.n:
            game = toy_game(n, seed=n)
            for kind, k in GRID[method]:
                b = budget_for(method, n, kind, k)
                name, params = (("banzhaf", {"estimator": "ols"}) if method == "banzhaf_ols"
                                else (method, {}))
                t0 = time.perf_counter()
                c = coverage(name, game, b, range(args.seeds), **params)
                print(f"{method:<20} {n:>3} {b:>6} {c.coverage:>6.3f} {c.rms_error:>9.3g} "
                      f"{c.rms_stderr:>9.3g} {c.worst_ratio:>7.3g} {c.undefined:>6.2f} "
                      f"{time.perf_counter() - t0:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
