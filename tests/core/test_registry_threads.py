"""A registry read from several threads waits for the first read's loader (aud34x)."""

from __future__ import annotations

import threading
import time

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
