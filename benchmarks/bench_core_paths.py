"""Cost of the core's public paths: value streaming, probe, with_inputs (issue #14).

The layering refactor routed block loops through ``Game.value_stream`` and model internals
through ``FeatureGame.probe`` / ``with_inputs``. This script times the methods and metrics
that moved, on one small CNN, and checks the evaluation counts they report.

* Without arguments: times this checkout and, in the same run, the cost of one ``game.value``
  call against the same coalitions streamed in small blocks (the streaming overhead).
* ``--against DIR``: also runs the same workload on another checkout's ``src`` directory
  (e.g. the commit before the refactor) in a subprocess, alternating round by round with this
  checkout, and prints both side by side with the ratio ``this / other``.

Usage: ``python benchmarks/bench_core_paths.py [--against /path/to/other/src] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

WORKLOAD: list[tuple[str, dict[str, Any]]] = [
    ("feature_ablation", {}),
    ("occlusion", {"window": (1, 2, 2)}),
    ("rise", {"budget": 2000}),
    ("sobol", {"budget": 1200}),
    ("grad_cam", {}),
    ("deeplift", {}),
    ("smoothgrad", {"base": "input_x_gradient", "n_samples": 20}),
    ("smoothgrad", {"n_samples": 64}),
]


def worker(repeat: int) -> dict[str, dict[str, float]]:
    import torch

    import tribute

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10),
        ).eval()
    x = torch.randn(16, 1, 16, 16, generator=g)
    out: dict[str, dict[str, float]] = {}
    for method, kw in WORKLOAD:
        key = method + ("" if not kw.get("base") else f"[{kw['base']}]")
        times = []
        attr = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            attr = tribute.explain(model, x, method, target=0, progress=False, **kw)
            times.append(time.perf_counter() - t0)
        assert attr is not None
        out[key] = {"seconds": sorted(times)[len(times) // 2], "n_evals": float(attr.n_evals),
                    "n_rows": float(attr.n_rows)}
    attr = tribute.explain(model, x, "saliency", target=0, progress=False)
    for metric in ("deletion", "road"):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = tribute.evaluate(model, x, attr, metric, target=0, progress=False)
            times.append(time.perf_counter() - t0)
        out[f"metric:{metric}"] = {"seconds": sorted(times)[len(times) // 2],
                                   "n_evals": float(res.n_evals), "n_rows": float("nan")}
    return out


def streaming_overhead(repeat: int) -> tuple[float, float, int]:
    """Seconds of one ``value`` call vs the same masks via ``value_stream`` in ~40 blocks."""
    import torch

    import tribute

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10)).eval()
    x = torch.randn(8, 1, 16, 16, generator=g)
    game = tribute.build_game(model, x, target=0)
    masks = (torch.rand(4000, game.n_players, generator=g) < 0.5).double()
    step = 100
    one, many = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        game.value(masks)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _blk in game.value_stream(4000, lambda lo, hi: masks[lo:hi],
                                      max_elements=step * game.n_players):
            pass
        many.append(time.perf_counter() - t0)
    return sorted(one)[repeat // 2], sorted(many)[repeat // 2], 4000 // step


def run_in(src: Path, repeat: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    res = subprocess.run([sys.executable, __file__, "--worker", "--repeat", str(repeat)],
                         env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"worker on {src} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _fastest(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in runs[0]:
        best = min(runs, key=lambda r: r[key]["seconds"])
        out[key] = best[key]
        if any(r[key]["n_evals"] != best[key]["n_evals"] for r in runs):
            raise SystemExit(f"{key}: evaluation counts differ between rounds")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", type=Path, default=None, help="another checkout's src/ directory")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.repeat)))
        return
    # Alternate the two checkouts round by round and keep each case's fastest round: on a
    # shared machine the load drifts, and the minimum is the least disturbed measurement.
    runs_here, runs_other = [], []
    for _ in range(args.repeat):
        runs_here.append(run_in(SRC, 1))
        if args.against:
            runs_other.append(run_in(args.against, 1))
    here = _fastest(runs_here)
    other = _fastest(runs_other) if runs_other else None
    print(f"16 CNN inputs 1x16x16, 1 thread, fastest of {args.repeat} alternating rounds; "
          "seconds (evaluations/input)")
    head = f"{'case':32s} {'this':>16s}"
    if other:
        head += f" {'other':>16s} {'this/other':>10s}"
    print(head)
    for key, r in here.items():
        line = f"{key:32s} {r['seconds']:8.3f}s ({int(r['n_evals']):5d})"
        if other and key in other:
            o = other[key]
            line += f" {o['seconds']:8.3f}s ({int(o['n_evals']):5d}) {r['seconds'] / o['seconds']:10.2f}"
        print(line)
    one, many, blocks = streaming_overhead(args.repeat)
    print(f"value() on 4000 coalitions: one call {one:.3f}s, value_stream in {blocks} blocks "
          f"{many:.3f}s (ratio {many / one:.2f})")


if __name__ == "__main__":
    main()
