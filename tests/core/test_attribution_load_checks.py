"""Attribution.load on files that are not (intact) attribution files: one InputError naming
the file, never a raw numpy/json error, never a silently reshaped attribution (audit aud32c)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from tribute import Attribution, InputError


def _header(**kw: object) -> np.ndarray:
    return np.array(json.dumps({"format": "tribute.attribution/1", "method": "m", "layout": {},
                                **kw}))


def test_values_of_another_rank_are_refused_not_reshaped(tmp_path: Path):
    # before: (2, 3) values loaded as an attribution of shape (2,) with 3 player names
    p = tmp_path / "a.npz"
    np.savez(p, header=_header(player_names=["a", "b", "c"]), values=np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"values of shape \[2, 3\] are not batch x targets"):
        Attribution.load(p)


def test_stderr_of_another_shape_is_refused(tmp_path: Path):
    p = tmp_path / "a.npz"
    np.savez(p, header=_header(player_names=["a", "b"]), values=np.zeros((2, 1, 2)),
             stderr=np.zeros((1, 1, 2)))
    with pytest.raises(InputError, match="stderr of shape"):
        Attribution.load(p)


@pytest.mark.parametrize("kind", ["object", "pickle", "npy", "json", "no_values"])
def test_unreadable_files_raise_one_input_error(tmp_path: Path, kind: str):
    p = tmp_path / ("a.npy" if kind == "npy" else "a.npz")
    if kind == "object":
        np.savez(p, header=_header(), values=np.array([{"a": 1}], dtype=object))
    elif kind == "pickle":
        p.write_bytes(pickle.dumps({"values": 1}))
    elif kind == "npy":
        np.save(p, np.zeros(3))
    elif kind == "json":
        np.savez(p, header=np.array("{not json"), values=np.zeros((1, 1, 2)))
    else:
        np.savez(p, header=_header())
    with pytest.raises(InputError, match=r"Attribution\.load: '"):
        Attribution.load(p)


def test_a_missing_file_is_still_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        Attribution.load(tmp_path / "nope.npz")


def test_bfloat16_values_convert_save_and_plot(tmp_path: Path):
    # before: flat(), numpy(), to_input_shape(), to_pandas(), plot() and save() of a bfloat16
    # model's attribution all raised "Got unsupported ScalarType BFloat16"
    import torch

    import tribute

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).to(torch.bfloat16)
    x = torch.randn(2, 1, 4, 4, dtype=torch.bfloat16)
    attr = tribute.explain(model, x, method="saliency", target=0, progress=False)
    assert attr.values.dtype == torch.bfloat16
    exact = attr.values.float().numpy()  # bfloat16 -> float32 is exact
    np.testing.assert_array_equal(attr.numpy().values, exact)
    np.testing.assert_array_equal(attr.to_input_shape(), exact)
    np.testing.assert_array_equal(attr.to_pandas().to_numpy(), exact.reshape(2, 16))
    attr.plot(0)
    back = Attribution.load(attr.save(tmp_path / "bf16"))
    assert back.values.dtype == torch.bfloat16 and torch.equal(back.values, attr.values)
