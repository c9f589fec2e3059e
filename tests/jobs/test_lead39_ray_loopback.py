"""A local Ray instance that tribute starts itself listens on the loopback address only."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from tribute.ray_tasks import run_ray_tasks


class _FakeRay(types.ModuleType):
    """Just enough of Ray's API to record how ``ray.init`` was called; tasks run inline."""

    def __init__(self) -> None:
        super().__init__("ray")
        self.init_kwargs: list[dict[str, Any]] = []
        self.exceptions = types.SimpleNamespace(RayTaskError=RuntimeError, WorkerCrashedError=RuntimeError)
        self._up = False

    def is_initialized(self) -> bool:
        return self._up

    def init(self, **kwargs: Any) -> None:
        self.init_kwargs.append(kwargs)
        self._up = True

    def shutdown(self) -> None:
        self._up = False

    def put(self, obj: Any) -> Any:
        return obj

    def remote(self, fn: Any) -> Any:
        def options(**_: Any) -> Any:
            return types.SimpleNamespace(remote=lambda shared, item: ("ref", fn(shared, item)))
        return types.SimpleNamespace(options=options)

    def wait(self, refs: list[Any], num_returns: int = 1) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Any) -> Any:
        return ref[1]


def _add(shared: int, item: int) -> int:
    return shared + item


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> _FakeRay:
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    # no cluster recorded by `ray start` here (the real lookup may be imported already)
    private = types.ModuleType("ray._private")
    services = types.ModuleType("ray._private.services")
    services.canonicalize_bootstrap_address = lambda addr, temp_dir=None: None  # type: ignore[attr-defined]
    private.services = services  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray._private", private)
    monkeypatch.setitem(sys.modules, "ray._private.services", services)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return fake


def test_a_new_local_instance_binds_the_loopback_address(fake_ray: _FakeRay) -> None:
    # Ray's own default node address is the machine's network address: tribute's servers bind
    # 127.0.0.1 by default, and so must the Ray instance it starts on its own
    got: dict[int, int] = {}
    run_ray_tasks(_add, 10, [1, 2, 3], got.__setitem__, workers=2)
    assert got == {1: 11, 2: 12, 3: 13}
    assert len(fake_ray.init_kwargs) == 1
    assert fake_ray.init_kwargs[0].get("_node_ip_address") == "127.0.0.1"


def test_a_named_cluster_is_joined_as_given(fake_ray: _FakeRay, monkeypatch: pytest.MonkeyPatch) -> None:
    run_ray_tasks(_add, 0, [1], lambda item, res: None, address="ray://10.0.0.5:10001")
    assert fake_ray.init_kwargs[-1].get("address") == "ray://10.0.0.5:10001"
    assert "_node_ip_address" not in fake_ray.init_kwargs[-1]
    fake_ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    run_ray_tasks(_add, 0, [1], lambda item, res: None)
    assert "_node_ip_address" not in fake_ray.init_kwargs[-1]


def test_a_cluster_started_here_with_ray_start_is_joined_as_ray_would(
        fake_ray: _FakeRay, monkeypatch: pytest.MonkeyPatch) -> None:
    # `ray start --head` records its address; ray.init() joins it, and a driver that then claimed
    # 127.0.0.1 as its node address would not match a cluster started on another address
    services = sys.modules["ray._private.services"]
    monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda addr, temp_dir=None: "10.0.0.7:6379")
    run_ray_tasks(_add, 0, [1], lambda item, res: None)
    assert "_node_ip_address" not in fake_ray.init_kwargs[-1]
