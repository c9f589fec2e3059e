"""How often TCAV's tests call a concept significant: random-law concept sets vs a planted one.

Run: ``.venv/bin/python benchmarks/bench_tcav_calibration.py`` (1 torch thread, a few seconds).
Model and data: ``tests/concepts/test_tcav.py`` (a layer whose class-1 logit rises along a
known direction ``u``); concept sets of 20 examples, ``n_random=10``, alpha=0.05.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "concepts"))
from test_tcav import D, _data

from tribute.methods.tcav import tcav


def main(draws: int = 200) -> None:
    torch.set_num_threads(1)
    model, inputs, concept, _ = _data()
    for pool in (60, 200):
        fw = fo = tw = to = 0
        for s in range(draws):
            g = torch.Generator().manual_seed(1000 + s)
            random = torch.randn(pool, D, generator=g)
            fake = torch.randn(20, D, generator=g)
            r = tcav(model, inputs, fake, random, layer="body", target=1, n_random=10)
            fw += r.p_value < 0.05
            fo += r.p_value_one_set < 0.05
            r = tcav(model, inputs, concept, random, layer="body", target=1, n_random=10)
            tw += r.p_value < 0.05
            to += r.p_value_one_set < 0.05
        print(f"pool={pool}: random-law set flagged welch {fw}/{draws}, one_set {fo}/{draws}; "
              f"planted concept flagged welch {tw}/{draws}, one_set {to}/{draws}")


if __name__ == "__main__":
    main()
