"""A job run as a subprocess by the kill/resume tests.

``python run_job.py OUT ROWS SHARD_SIZE BACKEND WORKERS [--resume] [--address=ADDR]``
"""

from __future__ import annotations

import sys

import jobs_fixtures

import tribute


def run(out: str, rows: int, shard_size: int, backend: str = "local", workers: int = 1,
        resume: bool = False, address: str | None = None) -> tribute.Attribution:
    model = "jobs_fixtures:make_mlp" if backend != "local" else jobs_fixtures.make_mlp()
    return tribute.explain_dataset(
        model, jobs_fixtures.data(rows), out=out, method="kernel_shap", budget=64,
        shard_size=shard_size, resume=resume, progress=False, backend=backend, workers=workers,
        address=address,
    )


if __name__ == "__main__":
    out, rows, shard_size, backend, workers = sys.argv[1:6]
    addr = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--address=")), None)
    run(out, int(rows), int(shard_size), backend, int(workers), resume="--resume" in sys.argv,
        address=addr)
