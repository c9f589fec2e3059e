"""Dataset-job throughput: local vs worker processes vs Ray, 1 and 2 workers, in one run.

A small MLP (32 features -> 64 -> 64 -> 4) explained with kernel_shap (budget 512) on ROWS rows in
shards of SHARD rows, torch limited to one thread per shard (the job default). Times are the
wall-clock of the whole ``tribute.explain_dataset`` call, including spawning worker processes
(processes backend); the Ray instance (2 CPUs, 127.0.0.1 only) is started and its two workers
warmed by a 4-row job before the timer, as an existing cluster would be. Every configuration must produce the same result.npz bytes.
"first shard" is the time until the first shard file lands (start-up: spawning workers that
import torch); "steady rows/s" is the rate between the first and the last shard file.

Usage: ``python benchmarks/bench_jobs_throughput.py [ROWS] [SHARD]`` (defaults 768 and 32).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Ray on loopback only (read when ray is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np
import torch

import tribute


def make_model() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
              torch.nn.Linear(64, 4)]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def main(rows: int, shard: int) -> int:
    X = np.random.default_rng(0).normal(size=(rows, 32)).astype(np.float32)
    model = make_model()
    configs: list[tuple[str, str, int]] = [("local", "local", 1), ("processes x1", "processes", 1),
                                           ("processes x2", "processes", 2)]
    ray: Any  # the module, or None without Ray (typed Any: mypy passes with and without Ray)
    try:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        configs += [("ray x1", "ray", 1), ("ray x2", "ray", 2)]
        # Warm the instance as a running cluster would be: Ray keeps its worker processes, so
        # only the first job on a fresh instance pays for importing torch and tribute in them.
        with tempfile.TemporaryDirectory() as warm:
            tribute.explain_dataset(model, X[:4], out=warm, method="kernel_shap", budget=64,
                                    shard_size=1, backend="ray", workers=2, progress=False)
    except ImportError:
        ray = None
        print("ray not installed: skipping the ray rows (pip install 'tribute[ray]')")
    print(f"kernel_shap budget=512, {rows} rows, shard_size={shard}, torch threads per shard=1, "
          f"cpus={os.cpu_count()}")
    print(f"{'backend':14s} {'seconds':>8s} {'rows/s':>8s} {'vs local':>9s} {'first shard':>12s} "
          f"{'steady rows/s':>14s}  same bytes")
    ref_bytes = None
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, backend, workers in configs:
            out = Path(tmp) / name.replace(" ", "_")
            t0, wall0 = time.perf_counter(), time.time()
            tribute.explain_dataset(model, X, out=out, method="kernel_shap", budget=512,
                                    shard_size=shard, backend=backend, workers=workers, progress=False)
            sec = time.perf_counter() - t0
            data = (out / "result.npz").read_bytes()
            ref_bytes = ref_bytes or data
            base = base or sec
            stamps = sorted(p.stat().st_mtime for p in (out / "shards").iterdir())
            first = stamps[0] - wall0
            steady = (len(stamps) - 1) * shard / max(stamps[-1] - stamps[0], 1e-9)
            print(f"{name:14s} {sec:8.2f} {rows / sec:8.1f} {base / sec:8.2f}x {first:12.2f} "
                  f"{steady:14.1f}  {data == ref_bytes}")
            if data != ref_bytes:
                return 1
    if ray is not None:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    sys.exit(main(*(args + [768, 32][len(args):])))
