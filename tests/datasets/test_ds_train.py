"""Small models: constructors, determinism, accuracy and the safetensors cache."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute.datasets as td
from tribute.datasets import _train


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 16), (1, 32)])
def test_small_cnn_shapes(channels: int, size: int) -> None:
    model = td.small_cnn(in_channels=channels, n_classes=7, size=size)
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 7)
    assert isinstance(model.features[0], torch.nn.Conv2d)
    assert isinstance(model.features[3], torch.nn.Conv2d)
    assert isinstance(model.classifier, torch.nn.Sequential)
    with pytest.raises(ValueError, match="multiple of 4"):
        td.small_cnn(size=30)


def test_small_cnn_seed_is_local() -> None:
    state = torch.get_rng_state()
    a, b = td.small_cnn(seed=3), td.small_cnn(seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert _state_equal(a, b) and not _state_equal(a, td.small_cnn(seed=4))


def test_mlp_accuracy_classification_and_regression() -> None:
    train, test = td.breast_cancer().split(0.25, seed=0)
    clf = td.train_mlp(train, epochs=30, cache=False)
    assert isinstance(clf, td.MLP) and not clf.training
    with torch.no_grad():
        acc = (clf(torch.from_numpy(test.X)).argmax(1).numpy() == test.y).mean()
    assert acc > 0.93
    train, test = td.tabular_symbolic(n=1000, seed=0).split(0.25, seed=0)
    reg = td.train_mlp(train, epochs=40, cache=False)
    with torch.no_grad():
        pred = reg(torch.from_numpy(test.X))[:, 0].numpy()
    assert 1 - np.mean((pred - test.y) ** 2) / test.y.var() > 0.85


def test_training_is_deterministic_and_leaves_global_rng_alone() -> None:
    ds = td.wine()
    state = torch.get_rng_state()
    a = td.train_mlp(ds, epochs=5, seed=1, cache=False)
    b = td.train_mlp(ds, epochs=5, seed=1, cache=False)
    c = td.train_mlp(ds, epochs=5, seed=2, cache=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert _state_equal(a, b) and not _state_equal(a, c)


def test_train_cnn_is_deterministic() -> None:
    ds = td.planted_images(n=64, size=16, seed=0)
    a = td.train_cnn(ds, epochs=2, cache=False)
    b = td.train_cnn(ds, epochs=2, cache=False)
    assert _state_equal(a, b)


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file())


def test_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = td.wine()
    first = td.train_mlp(ds, epochs=5, cache_dir=tmp_path)
    files = _files(tmp_path)
    assert len(files) == 1 and files[0].suffix == ".safetensors"  # no temp file left
    raw = files[0].read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])  # safetensors, no pickle
    assert json.loads(header["__metadata__"]["tribute_key"])["kind"] == "mlp"

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(_train, "_fit", no_training)
    second = td.train_mlp(ds, epochs=5, cache_dir=tmp_path)
    assert _state_equal(first, second) and not second.training
    monkeypatch.undo()
    td.train_mlp(ds, epochs=6, cache_dir=tmp_path)  # other hyperparameters: another entry
    td.train_mlp(ds.subset(slice(0, 100)), epochs=5, cache_dir=tmp_path)  # other data
    assert len(_files(tmp_path)) == 3


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTE_CACHE", str(tmp_path))
    assert td.default_cache_dir() == tmp_path / "models"
    td.train_mlp(td.wine(n=40), epochs=1)
    assert len(_files(tmp_path / "models")) == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_cache_is_detected_and_retrained(tmp_path: Path, damage: str) -> None:
    ds = td.wine()
    reference = td.train_mlp(ds, epochs=5, cache_dir=tmp_path)
    (path,) = _files(tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[-3] ^= 0xFF  # inside the last tensor: header still valid, checksum is not
    elif damage == "garbage":
        raw = bytearray(b"\x80\x04not safetensors at all")
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="retraining"):
        again = td.train_mlp(ds, epochs=5, cache_dir=tmp_path)
    assert _state_equal(reference, again)
    assert path.read_bytes() != bytes(raw)  # rewritten with good weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # now a clean hit
        td.train_mlp(ds, epochs=5, cache_dir=tmp_path)


def test_unwritable_cache_warns_but_returns_model(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(RuntimeWarning) as record:
        model = td.train_mlp(td.wine(n=30), epochs=1, cache_dir=blocker / "sub")
    assert isinstance(model, td.MLP)
    assert any("without the cache" in str(w.message) for w in record)


def test_train_rejects_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="train_transformer"):
        td.train_mlp(td.planted_text(n=10), cache=False)
    with pytest.raises(ValueError, match="4 dims"):
        td.train_cnn(td.wine(), cache=False)



def test_weights_cached_by_other_training_code_are_not_reused(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the key held the data, hyperparameters, seed and torch version, not the code that builds
    # and trains the model: after an upgrade that changed it, old weights loaded silently
    from tribute.datasets import _cache

    digest = _cache.code_digest()
    assert len(digest) == 16 and int(digest, 16) >= 0  # the source was read, not the fallback
    ds = td.wine(n=40)
    td.train_mlp(ds, epochs=2, cache_dir=tmp_path)
    monkeypatch.setattr(_cache, "code_digest", lambda: "another-version")
    calls: list[int] = []
    real_fit = _train._fit

    def counted_fit(*a: Any, **k: Any) -> None:
        calls.append(1)
        real_fit(*a, **k)

    monkeypatch.setattr(_train, "_fit", counted_fit)
    td.train_mlp(ds, epochs=2, cache_dir=tmp_path)
    assert calls == [1] and len(_files(tmp_path)) == 2


def test_cache_warning_points_at_the_callers_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(RuntimeWarning, match="without the cache") as record:
        td.train_mlp(td.wine(n=30), epochs=1, cache_dir=blocker / "sub")
    assert record[0].filename == __file__
