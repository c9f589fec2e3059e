"""rev52j: review of aud52j's resume check (a job resumed by other tribute code).

1. A model random outside torch's generator (numpy's global noise; torch's is seeded per shard)
   answers differently each time: the recomputed shard differed from its file by the model's
   noise alone, and the resume was refused as "started by other tribute code, which computed
   otherwise: ... values up to 0.000894 apart" although the same code resumes such a job. Now a
   difference the code itself does not reproduce (the shard computed a second time) does not
   refuse; the structure (dtype, players, n_evals...) still does.
2. Only values, stderr and targets were compared: a code change that moved a shard's per-row
   by-products alone (``base_values``, ``full_values``, ``gap``, ``extra`` arrays) was merged
   behind the warning, mixing two codes' numbers. Now they are compared too (where both hold them).
3. A shard file whose header says ``"params": null`` failed the resume with a bare
   ``AttributeError: 'NoneType' object has no attribute 'get'``; it is computed again, with a
   warning, as other malformed files are.

Truth: the shard files of the job's own uninterrupted run; "old code" shards are simulated by
re-saving a finished shard with one by-product moved, and the manifest's digest set to another.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest
import torch

import tribute
from tribute.jobs.shards import attribution_bytes

X = np.random.default_rng(0).normal(size=(7, 4))
KW: dict[str, Any] = {"method": "exact_shapley", "baseline": 0.0, "shard_size": 2, "progress": False,
                      "target": 0}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()


_NOISE = np.random.default_rng()  # unseeded, outside the model (its pickle, the fingerprint, stays one)


class _NoisyModel:
    """A linear model plus noise from an unseeded numpy generator (random in 'eval mode')."""

    def __init__(self) -> None:
        self.w = np.random.default_rng(1).normal(size=(4, 1))

    def __call__(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        return np.asarray(x @ self.w + _NOISE.normal(scale=1e-3, size=(x.shape[0], 1)))


def _killed(out: Path, model: Any) -> None:
    """A finished job whose shards 2 and 3 are removed, its manifest naming other tribute code."""
    tribute.explain_dataset(model, X, out=out, **KW)
    jobs_fixtures.kill_as_other_code(out)


def _count_shards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return jobs_fixtures.count_shards(monkeypatch)


def _refused(out: Path, model: Any, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resume is refused naming ``said``, after shard 0 alone was computed (twice)."""
    ran = _count_shards(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the code-digest warning of _check_out
        with pytest.raises(tribute.InputError, match=rf"differs from its file: {said}"):
            tribute.explain_dataset(model, X, out=out, resume=True, **KW)
    assert ran == [0, 0]


def test_a_resume_by_other_code_of_a_model_random_outside_torch_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    _killed(out, _NoisyModel())
    ran = _count_shards(monkeypatch)
    with pytest.warns(UserWarning, match="other tribute code"):
        again = tribute.explain_dataset(_NoisyModel(), X, out=out, resume=True, **KW)
    assert ran == [0, 0, 2, 3]  # shard 0 twice (its difference is not reproducible), then the pending
    assert np.asarray(again.values).shape == (7, 4)


def test_a_random_models_job_resumed_by_code_of_another_dtype_is_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    _killed(out, _NoisyModel())
    path = out / "shards" / "shard-000000.npz"
    a = tribute.Attribution.load(path)
    path.write_bytes(attribution_bytes(replace(a, values=np.asarray(a.values).astype(np.float32),
                                               layout=replace(a.layout, dtype="float32"))))
    _refused(out, _NoisyModel(), r"credits dtype float32 -> float64", monkeypatch)


@pytest.mark.parametrize("field", ["base_values", "full_values", "gap", "v_empty"])
def test_a_resume_by_code_whose_by_products_differ_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              field: str) -> None:
    out = tmp_path / "o"
    _killed(out, _model())
    path = out / "shards" / "shard-000000.npz"
    a = tribute.Attribution.load(path)
    if field == "v_empty":
        a = replace(a, extra={**a.extra, "v_empty": np.asarray(a.extra["v_empty"]) + 1e-3})
        said = r"extra 'v_empty' up to 0\.001 apart"
    else:
        moved: dict[str, Any] = {field: np.asarray(getattr(a, field)) + 1e-3}
        a = replace(a, **moved)
        said = rf"{field} up to 0\.001 apart"
    path.write_bytes(attribution_bytes(a))
    _refused(out, _model(), said, monkeypatch)
    assert not (out / "shards" / "shard-000002.npz").exists()


def test_a_shard_file_whose_header_has_no_params_mapping_is_computed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    first = tribute.explain_dataset(_model(), X, out=out, **KW)
    (out / "result.npz").unlink()
    path = out / "shards" / "shard-000001.npz"
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(str(np.load(io.BytesIO(members["header.npy"]))))
    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps({**header, "params": None})))
    members["header.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    ran = _count_shards(monkeypatch)
    with pytest.warns(UserWarning, match=r"shard-000001\.npz \(its header is malformed"):
        again = tribute.explain_dataset(_model(), X, out=out, resume=True, **KW)
    assert ran == [1]
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))
