"""Attribution: layouts, conversions, save/load without pickle."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

import tribute
from tribute.attribution import Attribution
from tribute_testing import make_cnn, make_mlp


def test_roundtrip_torch_multi_target(tmp_path):
    x = torch.randn(3, 6, dtype=torch.float64)
    attr = tribute.explain(make_mlp(6, 3), x, method="feature_ablation", target=[0, 2],
                           feature_names=[f"f{i}" for i in range(6)])
    path = attr.save(tmp_path / "a")
    assert path.suffix == ".npz"
    back = Attribution.load(path)
    assert isinstance(back.values, torch.Tensor) and back.values.shape == (3, 2, 6)
    torch.testing.assert_close(back.values, attr.values)
    assert back.player_names == attr.player_names and back.method == "feature_ablation"
    np.testing.assert_array_equal(back.targets, attr.targets)
    assert back.params["budget"] is None and back.n_evals == attr.n_evals


def test_save_has_no_pickle(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 4))
    attr = tribute.explain(lambda a: a.sum(1), x, method="exact_shapley")
    p = attr.save(tmp_path / "x.npz")
    with zipfile.ZipFile(p) as z:
        for name in z.namelist():
            with z.open(name) as fh:
                header = fh.read(128)
            assert b"'descr': '|O'" not in header  # no object arrays
    np.load(p, allow_pickle=False)  # loads without pickle


def test_load_rejects_foreign_file(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(tribute.InputError, match="not a tribute attribution"):
        Attribution.load(p)


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(2, 4))
    attr = tribute.explain(lambda a: a.sum(1), x, method="exact_shapley")
    target = tmp_path / "keep.npz"
    attr.save(target)
    good = target.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        attr.save(target)
    assert target.read_bytes() == good  # previous file intact
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]  # no temp file left


def test_grouped_to_input_shape():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    attr = tribute.explain(make_cnn(), x, method="feature_ablation", groups=tribute.patches(4), target=0)
    assert attr.values.shape == (2, 4)
    dense = attr.to_input_shape()
    assert dense.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(dense[:, 0, :4, :4], attr.values[:, 0, None, None].expand(2, 4, 4).numpy())
    np.testing.assert_allclose(dense[:, 0, 4:, 4:], attr.values[:, 3, None, None].expand(2, 4, 4).numpy())


def test_numpy_view_and_repr():
    x = torch.randn(2, 6, dtype=torch.float64)
    attr = tribute.explain(make_mlp(6, 3), x, method="saliency")
    view = attr.numpy()
    assert isinstance(view.values, np.ndarray) and view.values.shape == (2, 6)
    assert "saliency" in repr(attr) and "players=6" in repr(attr)


def test_plot_returns_figure():
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    attr = tribute.explain(make_cnn(), x, method="saliency", target=0)
    fig = attr.plot(0)
    assert fig.axes
    tab = tribute.explain(make_mlp(6, 3), torch.randn(1, 6, dtype=torch.float64), method="feature_ablation")
    assert tab.plot(0).axes
