"""``kill -9`` a running job at random moments, resume it, and get the uninterrupted bytes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import run_job

import tribute

HERE = Path(__file__).parent


def _start(out: Path, rows: int, shard_size: int, backend: str, workers: int, resume: bool) -> subprocess.Popen[bytes]:
    # this checkout's tribute first (an installed one may be another checkout's)
    src = str(Path(tribute.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), src, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(HERE / "run_job.py"), str(out), str(rows), str(shard_size), backend,
           str(workers)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _n_shards(out: Path) -> int:
    try:
        return len(list((out / "shards").glob("shard-*.npz")))
    except FileNotFoundError:  # not made yet, or the job finished and removed it while we looked
        return 0


def _kill_and_resume(tmp_path: Path, kills: int, rows: int, shard_size: int, backend: str = "local",
                     workers: int = 1) -> None:
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    ref = tmp_path / "ref"
    run_job.run(str(ref), rows, shard_size)  # uninterrupted, in this process
    out = tmp_path / "job"
    n_total = -(-rows // shard_size)
    killed_mid_job = 0
    for attempt in range(kills):
        proc = _start(out, rows, shard_size, backend, workers, resume=attempt > 0)
        if attempt == 0:
            # anywhere before the job can have finished, even before the manifest exists: the
            # job itself takes ~0.4 s after a ~1.2-1.7 s start-up (a sleep of up to 2 s let it
            # finish first on an idle CI machine, and then no later kill could land mid-job)
            time.sleep(rng.uniform(0.0, 0.8))
        else:
            goal = _n_shards(out) + rng.randint(1, max(1, (n_total - _n_shards(out)) // 2))
            deadline = time.monotonic() + 60
            while _n_shards(out) < goal and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and any worker processes
            killed_mid_job += _n_shards(out) < n_total
        proc.wait()
    proc = _start(out, rows, shard_size, backend, workers, resume=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert killed_mid_job >= 1, f"no kill landed mid-job (seed {seed})"
    assert (out / "result.npz").read_bytes() == (ref / "result.npz").read_bytes(), f"seed {seed}"
    assert not list(out.rglob(".*.tmp-*"))


def test_kill_9_three_times_then_resume_is_byte_identical(tmp_path):
    _kill_and_resume(tmp_path, kills=3, rows=96, shard_size=4)


@pytest.mark.slow
def test_kill_9_many_times_processes_backend(tmp_path):
    _kill_and_resume(tmp_path, kills=4, rows=160, shard_size=4, backend="processes", workers=2)
