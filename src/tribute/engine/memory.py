"""The memory cap: how many bytes tribute itself may allocate in one call.

``max_memory`` bounds what tribute allocates (masks, composed rows, gradients, an estimator's
design and solve matrices, results), not what the model allocates inside its forward pass.
The default is a fraction of the memory available when the call starts (read from
``/proc/meminfo``'s ``MemAvailable`` where there is one, from ``os.sysconf`` otherwise), so a
call that would exhaust the machine is refused up front with the settings that would fit.
When the model runs on a CUDA device, the composed rows, masks and gradients live there: the
default is then also at most that fraction of the device's free memory (as the driver reports
it), so a call streams in chunks that fit the GPU instead of running out of device memory with
a cap sized by the host's RAM.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from ..errors import InputError

__all__ = ["DEFAULT_FRACTION", "available_memory", "default_max_memory", "device_free_memory",
           "format_bytes", "parse_memory", "resolve_max_memory"]

#: Share of the available memory a call may use by default.
DEFAULT_FRACTION = 0.5
_FALLBACK = 4 * 1024**3  # when the platform tells nothing


#: ``available_memory`` reuses a reading this young (seconds): a call reads it two or three
#: times (game, explain, estimates) and ``/proc/meminfo`` costs ~30 us to parse.
_TTL = 0.5
_last: tuple[float, int] | None = None


def available_memory() -> int:
    """Bytes of memory available to new allocations now (without swapping); a reading at
    most half a second old is reused."""
    global _last
    now = time.monotonic()
    if _last is not None and now - _last[0] < _TTL:
        return _last[1]
    value = _read_available()
    _last = (now, value)
    return value


def _read_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return int(pages) * int(size)
    except (ValueError, OSError, AttributeError):
        pass
    return _FALLBACK


def device_free_memory(device: Any) -> int | None:
    """Bytes the driver reports free on ``device`` (CUDA; None for the CPU and devices that do
    not say); a reading at most half a second old is reused. Memory that torch's caching
    allocator holds unused is not counted: reading it builds torch's whole statistics table
    (~2 ms per call, measured on an H200), so the cap is conservative right after a large call.
    """
    if device is None:
        return None
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    now = time.monotonic()
    last = _device_last.get(index)
    if last is not None and now - last[0] < _TTL:
        return last[1]
    try:
        free, _total = torch.cuda.mem_get_info(index)
    except (RuntimeError, AssertionError):  # pragma: no cover - a device the driver lost
        return None
    _device_last[index] = (now, int(free))
    return int(free)


_device_last: dict[int, tuple[float, int]] = {}


def default_max_memory(device: Any = None) -> int:
    """The default cap: :data:`DEFAULT_FRACTION` of :func:`available_memory`, and of the free
    memory of ``device`` when the model runs on a CUDA device (the smaller of the two)."""
    cap = int(DEFAULT_FRACTION * available_memory())
    on_device = device_free_memory(device)
    if on_device is not None:
        cap = min(cap, int(DEFAULT_FRACTION * on_device))
    return max(cap, 1)


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3, "tib": 1024**4}


def parse_memory(value: object, name: str = "max_memory") -> int:
    """Bytes from an int or a string such as ``"8GiB"``, ``"500MB"`` or ``"2e9"``."""
    if isinstance(value, bool):
        raise InputError(f"{name}={value!r} must be a number of bytes (e.g. 8e9 or '8GiB').")
    if isinstance(value, (int, float)):
        # below one byte: int() made 0.5 a cap of 0 bytes (the string '0.5' was refused)
        if not value >= 1 or value != value or value == float("inf"):
            raise InputError(f"{name}={value!r} must be a positive number of bytes, at least 1 "
                             "(e.g. 8e9 or '8GiB').")
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            n = float(m.group(1)) * _UNITS[m.group(2).lower()]
            if n >= 1:
                return int(n)
    raise InputError(
        f"{name}={value!r} is not a memory size; give bytes as a number (8e9) or a string with a "
        "unit such as '8GiB', '500MB' or '2TB'."
    )


def resolve_max_memory(value: object | None, device: Any = None) -> int:
    """``value`` in bytes, or the default cap (for a model on ``device``) when ``value`` is
    None."""
    return default_max_memory(device) if value is None else parse_memory(value)


def format_bytes(n: float) -> str:
    """``1.5 GiB``-style text for a byte count."""
    n = float(min(n, 1e300))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover - unreachable
