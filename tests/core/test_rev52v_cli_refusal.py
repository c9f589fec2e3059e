"""rev52v: ``tribute explain --groups patch:4`` on a channels-last multispectral CNN (``(16, 16, 8)``
images permuted into ``Conv2d(8)``) is refused after the first pass (aud52v), and the message now
names the command line's fix, ``--groups patch:4:hwc``; before it named only the Python call
``groups=tribute.patches(4, channel_axis=-1)``. The named fix runs and equals that call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tribute
from tribute.cli import main
from tribute_testing import factory_module

FACTORY = '''
import torch

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


def test_the_refusal_of_patches_names_the_command_lines_spelling(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with factory_module(tmp_path, "rev52v_cli_factory", FACTORY):
        X = np.random.default_rng(0).normal(size=(2, 16, 16, 8))
        np.save(tmp_path / "x.npy", X)
        head = ["explain", "--model", "rev52v_cli_factory:multi", "--data", str(tmp_path / "x.npy"),
                "--method", "feature_ablation", "--baseline", "0", "--no-progress"]
        assert main([*head, "--groups", "patch:4", "--out", str(tmp_path / "a")]) != 0
        err = capsys.readouterr().err
        assert "groups=tribute.patches(4, channel_axis=-1)" in err and "--groups patch:4:hwc" in err, err


def test_the_named_command_line_fix_runs(tmp_path: Path) -> None:
    with factory_module(tmp_path, "rev52v_cli_factory2", FACTORY.replace("Multi", "Multi2")) as mod:
        X = np.random.default_rng(0).normal(size=(2, 16, 16, 8))
        np.save(tmp_path / "x.npy", X)
        head = ["explain", "--model", "rev52v_cli_factory2:multi", "--data", str(tmp_path / "x.npy"),
                "--method", "feature_ablation", "--baseline", "0", "--no-progress"]
        assert main([*head, "--groups", "patch:4:hwc", "--out", str(tmp_path / "b")]) == 0
        got = np.asarray(tribute.Attribution.load(tmp_path / "b" / "attribution.npz").values)
        one = tribute.explain(mod.multi(), X, method="feature_ablation", baseline=0.0,
                              groups=tribute.patches(4, channel_axis=-1), progress=False)
        np.testing.assert_array_equal(got, np.asarray(one.values))
        assert got.shape == (2, 16)
