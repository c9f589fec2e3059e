"""Standard-error calibration of every stochastic method on toy games with exact answers.

For each (method, budget) runs ``--seeds`` seeds on a polynomial game (linear terms plus
pairwise and three-way interactions, see ``tests/stderr_calibration.py``) with 8 inputs and
reports the share of ``|estimate - exact|`` within two reported standard errors (target
~0.95), the RMS error, the RMS stderr, the worst ``|err| / stderr`` and the share of
undefined (NaN/inf) standard errors.

With ``--games`` it runs instead on the networks of the Shapley accuracy benchmark
(``_shapley_games.py``: wine, diabetes, tanh16, relu14, digits16, mlp20 with exact Shapley
values; cancer_logit and cancer_logreg with a high-budget reference, whose own error counts
against the coverage) at ``--budgets`` evaluations per point, for ``--methods`` (default
``gp_shapley``), and also prints ``se/|err|``, the mean standard error over the mean absolute
error (about 1.25 for a calibrated normal error; far above it: uselessly wide intervals).

Run: ``.venv/bin/python benchmarks/bench_stderr_calibration.py --seeds 50``
or ``.venv/bin/python benchmarks/bench_stderr_calibration.py --games wine_prob,diabetes_raw
--budgets 64,128,256,512 --seeds 5``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def bench_games(games: list[str], budgets: list[int], seeds: int, methods: list[str],
                points: int, cache: Path) -> None:
    """Coverage on the Shapley accuracy benchmark's networks (exact or reference truth)."""
    import torch

    import tribute
    from _shapley_games import build_cached

    torch.set_num_threads(1)
    specs = {s.name: s for s in build_cached(points, cache)}
    print(f"{'method':<12} {'game':<20} {'budget':>6} {'cover':>6} {'se/|err|':>8} "
          f"{'rms_err':>9} {'rms_se':>9} {'worst':>7} {'undef':>6} {'sec':>6}")
    for method in methods:
        for name in games:
            spec = specs[name]
            kw: dict[str, Any] = {"target": torch.from_numpy(spec.target),
                                  "baseline": torch.from_numpy(spec.base),
                                  "output": spec.output}
            x = torch.from_numpy(spec.X)
            assert spec.truth is not None
            for b in budgets:
                t0 = time.perf_counter()
                errs, ses = [], []
                for seed in range(seeds):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        a = tribute.explain(spec.model, x, method=method, budget=b, seed=seed, **kw)
                    errs.append(np.abs(a.values.numpy() - spec.truth).ravel())
                    ses.append(a.stderr.numpy().ravel())
                err, se = np.concatenate(errs), np.concatenate(ses)
                ok = np.isfinite(se)
                e, s_ = err[ok], se[ok]
                ratio = e / np.maximum(s_, 1e-300)
                print(f"{method:<12} {name:<20} {b:>6} {(e <= 2 * s_ + 1e-12).mean():>6.3f} "
                      f"{s_.mean() / max(e.mean(), 1e-300):>8.2f} {np.sqrt((err**2).mean()):>9.3g} "
                      f"{np.sqrt((s_**2).mean()):>9.3g} {ratio.max():>7.3g} {1 - ok.mean():>6.2f} "
                      f"{time.perf_counter() - t0:>6.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--n", type=int, nargs="+", default=[10, 30])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--games", type=str, default="",
                    help="comma list of _shapley_games.py games: run on them instead of the toys")
    ap.add_argument("--budgets", type=str, default="64,128,256,512")
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--cache", type=str, default=str(Path(tempfile.gettempdir()) / "tribute_bench_shapley"),
                    help="the accuracy benchmark's game cache (built on first use)")
    args = ap.parse_args()
    if args.games:
        bench_games(args.games.split(","), [int(b) for b in args.budgets.split(",")], args.seeds,
                    args.methods or ["gp_shapley"], args.points, Path(args.cache))
        return
    args.methods = args.methods or list(GRID)
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
