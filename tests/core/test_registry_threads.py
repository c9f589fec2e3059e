"""A registry read from several threads waits for the first read's loader (aud34x)."""

from __future__ import annotations

import threading
import time

import pytest

from tribute.registry import Registry


def test_a_second_thread_waits_for_the_loader_and_the_loader_may_read_itself() -> None:
    seen_inside: list[int] = []

    def loader() -> None:
        for i in range(5):
            reg.add(f"m{i}", i)
            if i == 1:
                seen_inside.append(len(reg.entries()))  # a read from the loader's own imports
            time.sleep(0.05)

    reg: Registry[int] = Registry("thing", loader=loader)
    first = threading.Thread(target=reg.load)
    first.start()
    time.sleep(0.02)  # the loader is running: 1 of 5 entries registered
    names = reg.names()  # before: read at once, 1 or 2 of the 5 entries
    first.join()
    assert names == ["m0", "m1", "m2", "m3", "m4"]
    assert seen_inside == [2]


def test_a_thread_waiting_too_long_for_the_loader_gets_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    # a module read at import time in another thread can wait on Python's import lock while the
    # loader waits on it: the waiting read gives up with a message instead of hanging (rev34d)
    from tribute import registry

    monkeypatch.setattr(registry, "_LOAD_WAIT_SECONDS", 0.1)
    release = threading.Event()
    def loader() -> None:
        release.wait(5)

    reg: Registry[int] = Registry("thing", loader=loader)
    first = threading.Thread(target=reg.load)
    first.start()
    time.sleep(0.05)
    try:
        with pytest.raises(RuntimeError, match="waited 0 s for another thread's first read"):
            reg.names()
    finally:
        release.set()
        first.join()
    assert reg.names() == []
