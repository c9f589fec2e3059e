"""How often TCAV's tests call a concept significant: calibration and power of the three tests.

Run: ``.venv/bin/python benchmarks/bench_tcav_calibration.py [draws]`` (1 torch thread; about
a minute per 200 draws on one core).
Model: ``tests/concepts/test_tcav.py`` (a layer whose class-1 logit rises along a known
direction ``u`` of the activations; inputs: 40 class examples). For each draw ``s`` a fresh pool
of 200 random examples (standard normal) and three concept sets of ``n`` examples are drawn:

- **random law**: standard normal, like the pool (H0 true: every rejection is a false positive);
- **planted**: activations shifted by +3 along ``u`` (the concept of ``tests/concepts/test_tcav.py``);
- **half effect**: shifted by +1.5 along ``u``.

Each set is tested with ``n_random=10``, ``n_permutations=200``, alpha=0.05 by all three tests
of :func:`tribute.tcav` (``welch``: the paper's; ``one_set``; ``permutation``) for concept-set
sizes ``n`` = 10 / 20 / 50. Printed: the rejection rate with its Clopper-Pearson 95% interval.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "concepts"))
from test_tcav import D, _data

from tribute.methods.tcav import TESTS, tcav

ALPHA = 0.05


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of a rate ``k / n``."""
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def main(draws: int = 200, sizes: tuple[int, ...] = (10, 20, 50), pool: int = 200) -> None:
    torch.set_num_threads(1)
    model, inputs, _, _ = _data()
    winv = torch.linalg.inv(model.body.weight.detach())
    u_in = torch.eye(D)[0] @ winv.T  # +1 along u in activation space
    print(f"TCAV calibration: {draws} draws per size, pool={pool}, n_random=10, B=200, alpha={ALPHA}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'n':>3} {'concept set':<12} " + "  ".join(f"{t + ' rate [95% CI]':<26}" for t in TESTS))
    for n in sizes:
        t0 = time.perf_counter()
        hits = {k: dict.fromkeys(TESTS, 0) for k in ("random law", "planted", "half effect")}
        for s in range(draws):
            g = torch.Generator().manual_seed(10_000 * n + s)
            random = torch.randn(pool, D, generator=g)
            sets = {"random law": torch.randn(n, D, generator=g),
                    "planted": torch.randn(n, D, generator=g) + 3.0 * u_in,
                    "half effect": torch.randn(n, D, generator=g) + 1.5 * u_in}
            for name, c in sets.items():
                r = tcav(model, inputs, c, random, layer="body", target=1, n_random=10, n_permutations=200, seed=s)
                for t in TESTS:
                    hits[name][t] += r.p_values[t] < ALPHA
        for name, h in hits.items():
            cells = []
            for t in TESTS:
                lo, hi = clopper_pearson(h[t], draws)
                cells.append(f"{h[t] / draws:.3f} [{lo:.3f}, {hi:.3f}]".ljust(26))
            print(f"{n:>3} {name:<12} " + "  ".join(cells))
        print(f"    ({time.perf_counter() - t0:.1f}s for n={n})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
