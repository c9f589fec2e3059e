"""tribute's HALS NMF (CRAFT's factoriser) vs scikit-learn's coordinate-descent NMF, side by side.

Run: ``.venv/bin/python benchmarks/bench_nmf.py`` (1 torch/BLAS thread, a few seconds).
Matrices shaped like CRAFT's crop activations (``crops x channels``, non-negative, low rank
plus noise); both solvers start from NNDSVD(a), tolerance 1e-6, at most 500 sweeps. Reported:
relative reconstruction error ``||A - U W||_F / ||A||_F`` and wall time (best of 3).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from tribute.methods._nmf import nmf  # noqa: E402


def _best(fn, repeats: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    from sklearn.decomposition import NMF

    warnings.filterwarnings("ignore", message="Maximum number of iterations")

    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'shape':>12} {'rank':>4} | {'tribute err':>11} {'s':>7} {'sweeps':>6} | {'sklearn err':>11} {'s':>7} "
          f"{'iters':>5} | err ratio  time ratio")
    for n, p, r in ((640, 16, 3), (2000, 64, 10), (4000, 128, 10)):
        rng = np.random.default_rng(0)
        a = rng.random((n, r)) ** 3 @ rng.random((r, p)) + 0.05 * rng.random((n, p))
        t_ours, ours = _best(lambda: nmf(a, r, tol=1e-6, max_iter=500))
        sk = NMF(n_components=r, init="nndsvda", solver="cd", tol=1e-6, max_iter=500, random_state=0)

        def run_sk() -> tuple[float, int]:
            u = sk.fit_transform(a)
            return float(np.linalg.norm(a - u @ sk.components_) / np.linalg.norm(a)), int(sk.n_iter_)

        t_sk, (err_sk, it_sk) = _best(run_sk)  # type: ignore[misc]
        print(f"{f'{n}x{p}':>12} {r:>4} | {ours.error:11.5f} {t_ours:7.3f} {ours.n_iter:6d} | {err_sk:11.5f} "  # type: ignore[attr-defined]
              f"{t_sk:7.3f} {it_sk:5d} | {ours.error / err_sk:9.4f}  {t_ours / t_sk:9.2f}")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
