"""tribute's HALS NMF (CRAFT's factoriser) vs scikit-learn's coordinate-descent NMF, side by side.

Run: ``.venv/bin/python benchmarks/bench_nmf.py`` (1 BLAS thread, about a minute).
Matrices shaped like CRAFT's crop activations (``crops x channels``, non-negative, low rank
plus noise); both solvers start from NNDSVD(a), tolerance 1e-6, at most 500 sweeps. Reported:
relative reconstruction error ``||A - U W||_F / ||A||_F`` and wall time (best of 3).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable

import numpy as np

from tribute.methods._nmf import nmf


def _sklearn(a: np.ndarray, r: int) -> tuple[float, int]:
    from sklearn.decomposition import NMF

    sk = NMF(n_components=r, init="nndsvda", solver="cd", tol=1e-6, max_iter=500, random_state=0)
    u = sk.fit_transform(a)
    return float(np.linalg.norm(a - u @ sk.components_) / np.linalg.norm(a)), int(sk.n_iter_)


def _ours(a: np.ndarray, r: int) -> tuple[float, int]:
    fit = nmf(a, r, tol=1e-6, max_iter=500)
    return fit.error, fit.n_iter


def _best(fn: Callable[[np.ndarray, int], tuple[float, int]], a: np.ndarray, r: int,
          repeats: int = 3) -> tuple[float, tuple[float, int]]:
    best, out = np.inf, (0.0, 0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(a, r)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    warnings.filterwarnings("ignore", message="Maximum number of iterations")
    try:  # 1 BLAS thread where threadpoolctl is available (it comes with scikit-learn)
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'shape':>12} {'rank':>4} | {'tribute err':>11} {'s':>7} {'sweeps':>6} | {'sklearn err':>11} {'s':>7} "
          f"{'iters':>5} | err ratio  time ratio")
    for n, p, r in ((640, 16, 3), (2000, 64, 10), (4000, 128, 10)):
        rng = np.random.default_rng(0)
        a = rng.random((n, r)) ** 3 @ rng.random((r, p)) + 0.05 * rng.random((n, p))
        t_ours, (err, sweeps) = _best(_ours, a, r)
        t_sk, (err_sk, it_sk) = _best(_sklearn, a, r)
        print(f"{f'{n}x{p}':>12} {r:>4} | {err:11.5f} {t_ours:7.3f} {sweeps:6d} | {err_sk:11.5f} "
              f"{t_sk:7.3f} {it_sk:5d} | {err / err_sk:9.4f}  {t_ours / t_sk:9.2f}")


if __name__ == "__main__":
    main()
