"""A job run as a subprocess by the kill/resume tests: ``python run_job.py OUT [--resume]``."""

from __future__ import annotations

import sys

import jobs_fixtures

import tribute

if __name__ == "__main__":
    out = sys.argv[1]
    tribute.explain_dataset(
        jobs_fixtures.make_mlp(), jobs_fixtures.data(48), out=out, method="kernel_shap", budget=64,
        shard_size=2, resume="--resume" in sys.argv, progress=False, baseline=0.0,
    )
