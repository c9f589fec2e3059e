"""Helpers shared by the viz tests (imported by name; fixtures live in conftest.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.text import Text

from tribute import viz


@dataclass
class FakeAttribution:
    """Attribution-like object: only the attributes the plots read."""

    values: Any
    method: str = "fake_method"
    stderr: Any = None
    player_names: list[str] = field(default_factory=list)


class FakeTensor:
    """Quacks like a torch tensor (``detach().cpu()``), without importing torch."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.asarray(a)
        self.calls: list[str] = []

    def detach(self) -> FakeTensor:
        self.calls.append("detach")
        return self

    def cpu(self) -> FakeTensor:
        self.calls.append("cpu")
        return self

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.a if dtype is None else self.a.astype(dtype)


def render(fig: Figure) -> np.ndarray:
    """RGBA pixels of a figure, via the public PNG export."""
    png = viz.to_png_bytes(fig, dpi=60)
    return imread(io.BytesIO(png), format="png")


def assert_readable_fonts(fig: Figure, minimum: float = 9.0) -> None:
    fig.canvas.draw()  # creates tick labels
    sizes = [float(t.get_fontsize()) for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert sizes, "figure has no text"
    assert min(sizes) >= minimum, f"smallest font {min(sizes)} < {minimum}"
