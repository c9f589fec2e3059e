"""The Ray backend on a local 2-CPU instance bound to 127.0.0.1 (skipped without Ray)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jobs_fixtures
import pytest
import run_job

import tribute
from tribute_testing import RAY_LOOPBACK_ENV

# Loopback only (Ray reads these when it is imported).
_RAY_ENV = RAY_LOOPBACK_ENV
for _k, _v in _RAY_ENV.items():
    os.environ.setdefault(_k, _v)

ray = pytest.importorskip("ray")

# not slow: ~45 s on 2 cores, and CI installs the ray extra (Makefile EXTRAS), so they run in `make test`
pytestmark = [pytest.mark.ray]

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def cluster():
    env = {
        **_RAY_ENV,
        # Ray workers import the test models from here.
        # and this checkout's tribute (an installed one may be another checkout's)
        "PYTHONPATH": os.pathsep.join([str(HERE), str(Path(tribute.__file__).parents[1]),
                                       os.environ.get("PYTHONPATH", "")]),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_ray_equals_local_byte_for_byte(cluster, tmp_path):
    assert cluster.startswith("127.0.0.1:")
    run_job.run(str(tmp_path / "local"), 40, 8)
    run_job.run(str(tmp_path / "ray"), 40, 8, backend="ray", workers=2)
    assert (tmp_path / "ray" / "result.npz").read_bytes() == (tmp_path / "local" / "result.npz").read_bytes()


def test_worker_killed_mid_task_is_retried(cluster, tmp_path):
    run_job.run(str(tmp_path / "local"), 40, 8)
    marker = tmp_path / "killed-once"
    tribute.explain_dataset(
        jobs_fixtures.KillOnce(str(marker)), jobs_fixtures.data(40), out=tmp_path / "ray",
        method="kernel_shap", budget=64, shard_size=8, backend="ray", workers=2, max_retries=2,
        progress=False,
    )
    assert marker.is_file(), "the worker was never killed"
    assert int(marker.read_text()) != os.getpid()
    assert (tmp_path / "ray" / "result.npz").read_bytes() == (tmp_path / "local" / "result.npz").read_bytes()


def test_job_resumes_after_the_driver_dies(cluster, tmp_path):
    rows, shard = 96, 4
    run_job.run(str(tmp_path / "local"), rows, shard)
    out = tmp_path / "ray"
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "run_job.py"), str(out), str(rows), str(shard), "ray", "2",
         f"--address={cluster}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    shards = out / "shards"
    while proc.poll() is None and time.monotonic() < deadline:
        if shards.is_dir() and len(list(shards.glob("shard-*.npz"))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(shards.glob("shard-*.npz")))
    assert 0 < done < rows // shard
    run_job.run(str(out), rows, shard, backend="ray", workers=2, resume=True)
    assert (out / "result.npz").read_bytes() == (tmp_path / "local" / "result.npz").read_bytes()


def test_errors_in_ray_tasks_surface_as_tribute_errors(cluster, tmp_path):
    with pytest.raises(tribute.InputError, match="target"):
        tribute.explain_dataset(jobs_fixtures.make_mlp(), jobs_fixtures.data(16), out=tmp_path / "o",
                                method="kernel_shap", budget=32, shard_size=8, backend="ray",
                                workers=2, target=7, progress=False)
    assert not (tmp_path / "o").exists()


def test_a_task_error_is_the_tasks_own_exception_naming_the_shard(cluster, tmp_path, monkeypatch):
    # a factory failing only in the workers (an environment variable the driver alone has) gave
    # Ray's RayTaskError(InputError) whose message was the whole remote traceback, without the shard
    monkeypatch.setenv("TRIBUTE_TEST_DRIVER_PID", str(os.getpid()))
    with pytest.raises(tribute.InputError) as info:
        tribute.explain_dataset("jobs_fixtures:make_mlp_in_driver_only", jobs_fixtures.data(16),
                                out=tmp_path / "o", method="kernel_shap", budget=32, shard_size=8,
                                backend="ray", workers=2, progress=False)
    assert type(info.value) is tribute.InputError
    msg = str(info.value)
    assert msg.startswith("shard "), msg
    assert "while worker process" in msg and "raised RuntimeError" in msg, msg
    assert "ray::" not in msg and "Traceback" not in msg, msg


def test_a_worker_that_dies_with_no_retry_left_names_the_shard(cluster, tmp_path):
    # Ray's WorkerCrashedError named neither the shard nor how to go on
    run_job.run(str(tmp_path / "local"), 40, 8)
    marker = tmp_path / "killed-once"
    out = tmp_path / "ray"
    with pytest.raises(tribute.TributeError, match=r"Ray worker died while computing shard \d .*"
                                                    r"max_retries=0.*resume"):
        tribute.explain_dataset(
            jobs_fixtures.KillOnce(str(marker)), jobs_fixtures.data(40), out=out, method="kernel_shap",
            budget=64, shard_size=8, backend="ray", workers=2, max_retries=0, progress=False)
    tribute.explain_dataset(
        jobs_fixtures.KillOnce(str(marker)), jobs_fixtures.data(40), out=out, method="kernel_shap",
        budget=64, shard_size=8, backend="ray", workers=2, progress=False, resume=True)
    assert (out / "result.npz").read_bytes() == (tmp_path / "local" / "result.npz").read_bytes()
