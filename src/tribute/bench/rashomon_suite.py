"""``tribute bench --suite rashomon``: planted interactions recovered across a Rashomon set.

Ground truth by construction (seeded, ``x ~ N(0, I)``, 4 features, ``x3`` irrelevant):

* ``planted`` — ``y = x0 x1 + x2 + 0.1 noise``: the only interacting pair is (x0, x1). Scored
  by the fraction of the set's models whose strongest interaction (``|FIS|``) is (x0, x1) and
  by the largest ``|FIS|`` of any other pair relative to ``|FIS(x0, x1)|`` (worst model).
* ``additive`` — ``y = x0 + x1 + x2 + 0.1 noise``: no interaction; scored by the largest
  ``|FIS|`` over pairs and models relative to the mean main effect (reliance) of x0..x2.

Each case runs with the built-in samplers ``forest``, ``tree`` and ``mlp`` (candidates with
seeds and hyperparameters; the set keeps losses within ``epsilon`` of the best on held-out
data). See :mod:`tribute.methods.rashomon`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..methods.rashomon import rashomon_interactions

__all__ = ["RASHOMON_CASES", "cmd_rashomon_suite", "format_rashomon_results", "run_rashomon_suite"]

RASHOMON_CASES = ("planted", "additive")
_SAMPLERS = ("forest", "tree", "mlp")


def _case(name: str, n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X, Xe = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))

    def f(a: np.ndarray) -> np.ndarray:
        out: np.ndarray = a[:, 0] * a[:, 1] + a[:, 2] if name == "planted" else a[:, :3].sum(1)
        return out

    return X, f(X) + 0.1 * rng.normal(size=n), Xe, f(Xe) + 0.1 * rng.normal(size=n)


def run_rashomon_suite(*, tiny: bool = False, seed: int = 0,
                       samplers: tuple[str, ...] = _SAMPLERS) -> list[dict[str, Any]]:
    """Run every case with every sampler; JSON-friendly rows."""
    n = 200 if tiny else 600
    n_cand = 4 if tiny else 16
    rows = []
    for case in RASHOMON_CASES:
        X, y, Xe, ye = _case(case, n, seed)
        for sampler in samplers:
            t0 = time.perf_counter()
            cfg = ([{"hidden": 16, "steps": 150, "lr": 0.05}] if tiny else None) if sampler == "mlp" else None
            r = rashomon_interactions(X, y, fit=sampler, configs=cfg, n_candidates=n_cand,
                                      epsilon=0.1, relative=True, X_eval=Xe, y_eval=ye,
                                      n_repeats=3 if tiny else 10, seed=seed)
            row: dict[str, Any] = {"case": case, "sampler": sampler, "n_candidates": n_cand,
                                   "n_models": r.n_models, "best_loss": r.best_loss,
                                   "seconds": time.perf_counter() - t0}
            if case == "planted":
                f01 = np.abs(r.fis[:, r.pairs.index((0, 1))])
                other = np.abs(np.delete(r.fis, r.pairs.index((0, 1)), axis=1)).max(1)
                row.update(top_pair_fraction=r.top_pair_fraction((0, 1)),
                           fis01_range=list(r.range()[(0, 1)]),
                           worst_other_over_fis01=float((other / f01).max()))
            else:
                row.update(max_abs_fis_over_main=float(np.abs(r.fis).max() / r.main[:, :3].mean()))
            rows.append(row)
    return rows


def format_rashomon_results(rows: list[dict[str, Any]]) -> str:
    out = ["== rashomon: feature interaction scores over a Rashomon set (epsilon = 10% of the best loss)"]
    for r in rows:
        head = f"  {r['case']:9s} {r['sampler']:7s} set {r['n_models']:2d}/{r['n_candidates']:2d}"
        if r["case"] == "planted":
            lo, hi = r["fis01_range"]
            out.append(f"{head}  (x0,x1) top in {r['top_pair_fraction']:.0%} of models, FIS(x0,x1) in "
                       f"[{lo:.2f}, {hi:.2f}], worst other/|FIS01| {r['worst_other_over_fis01']:.3f}  "
                       f"{r['seconds']:.1f}s")
        else:
            out.append(f"{head}  max|FIS| / mean main effect {r['max_abs_fis_over_main']:.3f}  "
                       f"{r['seconds']:.1f}s")
    return "\n".join(out)


def cmd_rashomon_suite(args: Any) -> int:
    """``tribute bench --suite rashomon`` (``rashomon-tiny``: 4 candidates, 200 points)."""
    rows = run_rashomon_suite(tiny=args.suite == "rashomon-tiny", seed=int(getattr(args, "seed", 0) or 0))
    print(format_rashomon_results(rows))
    return 0
