"""The retrain bank on Ray: a local 2-CPU instance bound to 127.0.0.1 (skipped without Ray)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from data_cases import mlp_case

import tribute
from tribute.errors import InputError
from tribute.games.data_bank import RetrainBank
from tribute_testing import RAY_LOOPBACK_ENV

# Loopback only (Ray reads these when it is imported).
_RAY_ENV = RAY_LOOPBACK_ENV
for _k, _v in _RAY_ENV.items():
    os.environ.setdefault(_k, _v)

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def cluster():
    # Ray workers import this module's fits from here
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), saved or ""])
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def test_ray_bank_equals_local_and_resumes(cluster: str, tmp_path: Path) -> None:
    assert cluster.startswith("127.0.0.1:")
    case = mlp_case(n=30, steps=20)
    masks = (np.random.default_rng(0).random((7, 30)) < 0.5).astype(float)
    local = RetrainBank(case.fit, case.X, case.y).params(masks)
    # an interrupted Ray run: the first 3 subsets are on disk; reopening trains only the rest
    first = RetrainBank(case.fit, case.X, case.y, path=tmp_path, backend="ray", workers=2,
                        shard_size=2)
    np.testing.assert_array_equal(first.params(masks[:3]), local[:3])
    bank = RetrainBank(case.fit, case.X, case.y, path=tmp_path, backend="ray", workers=2,
                       shard_size=2)
    np.testing.assert_array_equal(bank.params(masks), local)  # bitwise: the same fit_subset
    assert bank.n_trained == 4
    reopened = RetrainBank(case.fit, case.X, case.y, path=tmp_path)
    np.testing.assert_array_equal(reopened.params(masks), local)
    assert reopened.n_trained == 0
    # through TrainingData: the LDS subsets of a data game come from Ray workers
    data = case.data(backend="ray", workers=2)
    game = tribute.build_game(case.model, case.X_test, players=data, target="predicted")
    np.testing.assert_array_equal(
        game.value(np.asarray(masks[:2]))[..., 0].numpy(),
        tribute.build_game(case.model, case.X_test, players=case.data(),
                           target="predicted").value(np.asarray(masks[:2]))[..., 0].numpy())


def test_ray_bank_reports_a_failing_fit_like_a_local_run(cluster: str, tmp_path: Path) -> None:
    case = mlp_case(n=30, steps=20)
    masks = (np.random.default_rng(1).random((3, 30)) < 0.5).astype(float)
    bank = RetrainBank(_failing_fit, case.X, case.y, path=tmp_path, backend="ray", workers=2,
                       check_determinism=False)
    with pytest.raises(InputError, match="fit raised RuntimeError: boom"):
        bank.params(masks)
    with pytest.raises(InputError, match="backend='nope'"):
        RetrainBank(case.fit, case.X, case.y, backend="nope")


def _failing_fit(X, y, *, seed, weights=None):
    raise RuntimeError("boom")
