"""aud52v: the command line spells the patches' channel axis (``--groups patch:N:hwc`` /
``patch:N:chw``); before, an (H, W, C) image the model does not decide (a numpy model, an MLP)
was refused by ``tribute explain --groups patch:N`` with advice (``patches(..., channel_axis=-1)``)
the CLI could not spell. ``tribute evaluate`` refuses patches tiled around another axis than
the one the model's first running ``Conv2d`` reads (a channels-last multispectral image: 16x8
tiles of a 16x16 image). Truth: one :func:`tribute.explain` call with ``patches(2, channel_axis=-1)``,
and the hand-built patch ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.cli import _parse_groups, main
from tribute.errors import InputError
from tribute_testing import factory_module

FACTORY = '''
import numpy as np
import torch

W = np.random.default_rng(5).normal(size=(6 * 6 * 3,))

def numpy_model():
    return lambda a: (a.reshape(len(a), -1) @ W)[:, None]

class Multi(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(8, 1, 1)

    def forward(self, x):
        return self.conv(x.permute(0, 3, 1, 2)).flatten(1).sum(1, keepdim=True)

def multi():
    return Multi()
'''


def test_patches_layout_spellings() -> None:
    assert _parse_groups("patch:4").channel_axis is None
    assert _parse_groups("patch:4:hwc").channel_axis == -1
    assert _parse_groups("patch:4:CHW").channel_axis == 0
    assert _parse_groups("patch:4:hwc").size == (4, 4)
    for bad in ("patch:4:whc", "patch:4:hwc:x", "patch:x:hwc"):
        with pytest.raises(InputError, match=f"--groups '{bad}'"):
            _parse_groups(bad)


def test_explain_spells_the_channel_axis_of_patches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with factory_module(tmp_path, "aud52v_cli_factory", FACTORY) as mod:
        X = np.random.default_rng(0).normal(size=(2, 6, 6, 3))
        np.save(tmp_path / "x.npy", X)
        head = ["explain", "--model", "aud52v_cli_factory:numpy_model", "--data", str(tmp_path / "x.npy"),
                "--method", "feature_ablation", "--baseline", "0", "--no-progress"]
        assert main([*head, "--groups", "patch:2", "--out", str(tmp_path / "a")]) != 0
        assert "reads two ways" in capsys.readouterr().err
        assert main([*head, "--groups", "patch:2:hwc", "--out", str(tmp_path / "b")]) == 0
        got = np.asarray(tribute.Attribution.load(tmp_path / "b" / "attribution.npz").values)
        one = tribute.explain(mod.numpy_model(), X, method="feature_ablation", baseline=0.0,
                              groups=tribute.patches(2, channel_axis=-1), progress=False)
        np.testing.assert_array_equal(got, np.asarray(one.values))
        assert got.shape == (2, 9)


def _evaluate_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: str) -> Any:
    from tribute.bench import cli as bench_cli

    seen: list[Any] = []
    user_case = bench_cli._user_case

    def spy(args: Any) -> Any:
        case = user_case(args)
        seen.append(case)
        return case

    monkeypatch.setattr(bench_cli, "_user_case", spy)
    with factory_module(tmp_path, "aud52v_eval_factory", FACTORY):
        np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, 16, 16, 8)))
        try:
            main(["evaluate", "--model", "aud52v_eval_factory:multi", "--data", str(tmp_path / "x.npy"),
                  "--groups", groups, "--methods", "occlusion", "--metrics", "deletion", "--no-progress",
                  "--out", str(tmp_path / "o")])
        except ValueError:  # the report's gallery draws 1, 3 or 4 channels only (not aud52v's)
            pass
    return seen[0] if seen else None


def test_evaluate_refuses_patches_around_the_axis_the_model_does_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _evaluate_case(tmp_path, monkeypatch, "patch:4") is None
    err = capsys.readouterr().err
    assert "tiled the per-sample shape (16, 16, 8) as (C, H, W)" in err and "give --groups patch:4:hwc" in err, err


@pytest.mark.slow
def test_evaluate_tiles_the_named_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = _evaluate_case(tmp_path, monkeypatch, "patch:4:hwc")
    ids = (np.arange(16)[:, None] // 4) * 4 + np.arange(16)[None, :] // 4
    np.testing.assert_array_equal(case.groups, np.broadcast_to(ids[:, :, None], (16, 16, 8)))
    assert case.method_params["occlusion"]["window"] == (4, 4, 8)


def test_the_refusal_of_patches_names_the_command_lines_spelling(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # rev52v: tribute explain --groups patch:4 on the channels-last multispectral CNN was refused
    # naming only the Python call groups=tribute.patches(4, channel_axis=-1); the named command
    # line fix runs and equals that call
    with factory_module(tmp_path, "rev52v_cli_factory", FACTORY) as mod:
        X = np.random.default_rng(0).normal(size=(2, 16, 16, 8))
        np.save(tmp_path / "x.npy", X)
        head = ["explain", "--model", "rev52v_cli_factory:multi", "--data", str(tmp_path / "x.npy"),
                "--method", "feature_ablation", "--baseline", "0", "--no-progress"]
        assert main([*head, "--groups", "patch:4", "--out", str(tmp_path / "a")]) != 0
        err = capsys.readouterr().err
        assert "groups=tribute.patches(4, channel_axis=-1)" in err and "--groups patch:4:hwc" in err, err
        assert main([*head, "--groups", "patch:4:hwc", "--out", str(tmp_path / "b")]) == 0
        got = np.asarray(tribute.Attribution.load(tmp_path / "b" / "attribution.npz").values)
        one = tribute.explain(mod.multi(), X, method="feature_ablation", baseline=0.0,
                              groups=tribute.patches(4, channel_axis=-1), progress=False)
        np.testing.assert_array_equal(got, np.asarray(one.values))
        assert got.shape == (2, 16)
