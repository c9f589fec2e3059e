from __future__ import annotations

import base64
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tribute import viz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_png_bytes_decode_to_non_blank_image():
    fig = viz.bar([1.0, -2.0, 0.5])
    png = viz.to_png_bytes(fig, dpi=50)
    assert png.startswith(PNG_MAGIC)
    px = imread(io.BytesIO(png), format="png")
    assert px.shape[0] > 50 and px.shape[1] > 50
    assert float(px[..., :3].var()) > 1e-3
    assert fig.axes == []  # released


def test_data_uri_round_trips():
    uri = viz.to_data_uri(viz.curves({"m": np.linspace(1, 0, 5)}))
    assert uri.startswith("data:image/png;base64,")
    png = base64.b64decode(uri.split(",", 1)[1])
    assert png.startswith(PNG_MAGIC)


def test_keep_figure_when_asked():
    fig = viz.bar([1.0])
    viz.to_png_bytes(fig, close=False)
    assert len(fig.axes) == 1


def test_export_errors():
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure"):
        viz.to_png_bytes("not a figure")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dpi must be positive"):
        viz.to_png_bytes(viz.bar([1.0]), dpi=0)


def test_headless_no_pyplot_no_leaks():
    """Plotting neither imports pyplot nor changes the backend, and figures are freed."""
    code = textwrap.dedent(
        """
        import gc, sys, weakref
        import numpy as np
        from tribute import viz
        figs = [
            viz.image(np.ones((4, 4))), viz.bar([1.0]), viz.waterfall([1.0], base_value=0.0),
            viz.beeswarm(np.ones((3, 2))), viz.curves({"m": np.ones(3)}),
            viz.leaderboard({"a": {"m": 1.0}}), viz.image_grid([np.ones((4, 4))]),
        ]
        viz.text(["a"], [1.0])
        pngs = [viz.to_png_bytes(f) for f in figs]
        refs = [weakref.ref(f) for f in figs]
        del figs
        gc.collect()
        assert all(r() is None for r in refs), "figures kept alive"
        assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
        print("ok", len(pngs))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC, "MPLBACKEND": "", "PATH": "/usr/bin:/bin"},
        timeout=300,  # a fresh interpreter importing torch; slow only on a loaded machine
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok 7"


def test_pyplot_figures_are_closed_by_export():
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    viz.bar([1.0, 2.0], ax=ax)
    assert plt.fignum_exists(fig.number)
    viz.to_png_bytes(fig)
    assert not plt.fignum_exists(fig.number)
