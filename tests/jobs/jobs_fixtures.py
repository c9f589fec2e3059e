"""Models and data for the dataset-job tests (importable by spawned workers and Ray tasks)."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

N_FEATURES = 6

#: source of a factory module for the csv tests: ``f(x) = sum_j (j + 1) x_j`` for any number of
#: columns (a numpy callable; its Shapley values at baseline 0 are ``(j + 1) x_j``)
WEIGHTED_FACTORY = '''
import numpy as np

class Weighted:
    """f(x) = sum_j (j + 1) x_j for any number of columns (picklable; takes any width)."""

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        return (x * np.arange(1, x.shape[1] + 1)).sum(1, keepdims=True)


def make():
    return Weighted()
'''


def weighted_factory_module(tmp_path: Path, monkeypatch: Any, name: str) -> Iterator[str]:
    """Write :data:`WEIGHTED_FACTORY` as module ``name`` in ``tmp_path`` (importable for the
    test) and yield its ``path:make`` spec; the module is forgotten afterwards (a fixture body)."""
    path = tmp_path / f"{name}.py"
    path.write_text(WEIGHTED_FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{path}:make"
    sys.modules.pop(name, None)


def make_mlp() -> torch.nn.Module:
    """A small MLP with weights fixed by a local generator (deterministic factory)."""
    model = torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0, 0.5, size=tuple(p.shape))))
    return model


def make_random_mlp() -> torch.nn.Module:
    """A factory that initialises from torch's global RNG: differs between processes."""
    return torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 3))


def make_other() -> torch.nn.Module:
    """A different architecture (weights of make_mlp do not fit it)."""
    return torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def data(n: int = 40, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(np.float32)


class KillOnce(torch.nn.Module):
    """Wraps ``make_mlp``; the first forward pass in a process other than the one that built it
    (a worker: the driver runs the model too, for the manifest's probe) SIGKILLs that process
    once (a marker file records that it happened), to test retries of a dead worker."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.net = make_mlp()
        self.marker = marker
        self.driver = os.getpid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = Path(self.marker)
        if not p.exists() and os.getpid() != self.driver:
            p.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)


def city_table(n: int = 30, seed: int = 5):  # -> pandas.DataFrame
    """Four numeric columns and a text column ``city`` (three values, first seen in another
    order in each shard of 7 rows)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    return frame.assign(city=np.array(["paris", "rome", "oslo"])[rng.integers(0, 3, n)])


def make_city_pipeline():  # -> sklearn Pipeline
    """OneHotEncoder on ``city`` + passthrough -> LogisticRegression, fitted deterministically
    (a factory for worker processes and the command line)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = city_table(200, seed=0)
    y = (X["a"] + np.where(X["city"] == "rome", 1.5, -0.5) > 0).astype(int)
    ct = make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough")
    return make_pipeline(ct, LogisticRegression()).fit(X, y)


def make_mlp_in_driver_only() -> torch.nn.Module:
    """``make_mlp`` in the process whose pid is ``$TRIBUTE_TEST_DRIVER_PID``; elsewhere (a
    worker process or Ray worker) it raises, as a factory that reads an environment variable
    or a file only the driver's machine has."""
    if os.environ.get("TRIBUTE_TEST_DRIVER_PID") != str(os.getpid()):
        raise RuntimeError("TRIBUTE_TEST_DRIVER_PID is not this process (a worker)")
    model = make_mlp()
    with torch.no_grad():  # weights of its own: a worker never holds it from an earlier job
        model.get_parameter("2.bias").add_(0.125)
    return model


def assert_same_on_workers_and_resume(data: Any, root: Path, run: Any) -> None:
    """``run(data, out, **kw)`` already wrote ``root / "local"``: a 2-process run and a run
    killed after its shards (shard 1 and the merged files removed, then resumed) write
    byte-identical ``result.parquet`` and ``result.npz``."""
    run(data, root / "proc", backend="processes", workers=2)
    out = root / "resumed"
    run(data, out)
    (out / "shards" / "shard-000001.npz").unlink()
    (out / "result.parquet").unlink()
    run(data, out, resume=True)
    for other in ("proc", "resumed"):
        for name in ("result.parquet", "result.npz"):
            assert (root / other / name).read_bytes() == (root / "local" / name).read_bytes(), (other, name)


def exact_shapley_job(out: Path, target: Any, **kw: Any) -> tuple[Any, torch.nn.Module, np.ndarray]:
    """A dataset job of exact Shapley values (float64 :func:`make_mlp`, 8 rows of :func:`data`,
    shards of 4) with ``target`` and further settings: ``(result, model, X)``."""
    import tribute

    model = make_mlp().double()
    X = data(8).astype(np.float64)
    got = tribute.explain_dataset(model, X, out=out, method="exact_shapley", shard_size=4,
                                  progress=False, target=target, **kw)
    return got, model, X


def count_shards(monkeypatch: Any) -> list[int]:
    """Patch ``run_shard`` (in-process and local backend) to record the shard indices computed,
    in order; returns that list (filled as the job runs)."""
    import tribute.jobs.backends as backends
    import tribute.jobs.shards as shards

    ran: list[int] = []
    real = shards.run_shard

    def counting(spec: Any, index: int, model: Any = None) -> bytes:
        ran.append(index)
        return real(spec, index, model)

    monkeypatch.setattr(shards, "run_shard", counting)
    monkeypatch.setattr(backends, "run_shard", counting)
    return ran


def kill_as_other_code(out: Path, shards: tuple[int, ...] = (2, 3)) -> None:
    """Make the finished job in ``out`` look killed (``shards`` and the merged result removed)
    and started by other tribute code (its manifest's code digest replaced)."""
    for k in shards:
        (out / "shards" / f"shard-{k:06d}.npz").unlink()
    (out / "result.npz").unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tribute_code"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
