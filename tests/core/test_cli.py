"""The `tribute` command: help, methods table, explain end to end, bad weights."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tribute
from tribute.cli import main

FACTORY = textwrap.dedent(
    """
    import torch

    def make_cnn():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(4 * 8 * 8, 3),
        )
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "factory_mod.py").write_text(FACTORY)
    sys.path.insert(0, str(tmp_path))
    try:
        import factory_mod  # type: ignore[import-not-found]

        model = factory_mod.make_cnn()
        save_file(model.state_dict(), str(tmp_path / "cnn.safetensors"))
        torch.save(model.state_dict(), tmp_path / "cnn.pt")
        np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32))
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("factory_mod", None)


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "explain" in out and "methods" in out and "examples:" in out


def test_methods_table_and_json(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "feature_ablation" in out and "paper" in out
    assert main(["methods", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(tribute.methods()) == set(data)


def test_explain_end_to_end(project, capsys):
    out = project / "results"
    code = main([
        "explain", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
        "--data", str(project / "x.npy"), "--method", "feature_ablation", "--groups", "patch:4",
        "--target", "1", "--out", str(out), "--no-progress",
    ])
    assert code == 0
    attr = tribute.Attribution.load(out / "attribution.npz")
    assert attr.method == "feature_ablation" and attr.flat().shape == (3, 1, 4)
    assert (out / "attribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "attribution.html").read_text()
    assert "data:image/png;base64," in page and "feature_ablation" in page


def test_explain_file_factory_and_params(project):
    out = project / "r2"
    code = main([
        "explain", "--model", f"{project / 'factory_mod.py'}:make_cnn", "--data", str(project / "x.npy"),
        "--method", "saliency", "--param", "absolute=true", "--limit", "2", "--out", str(out),
    ])
    assert code == 0
    attr = tribute.Attribution.load(out / "attribution.npz")
    assert attr.params["absolute"] is True and attr.flat().shape == (2, 1, 64)
    assert (attr.flat() >= 0).all()


def test_explain_refuses_pickled_weights(project, capsys):
    code = main([
        "explain", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.pt"),
        "--data", str(project / "x.npy"), "--method", "saliency", "--out", str(project / "r3"),
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert "not safetensors" in err and "never unpickles" in err
    assert not (project / "r3" / "attribution.npz").exists()


def test_explain_bad_factory(project, capsys):
    assert main(["explain", "--model", "nope_mod:make", "--data", str(project / "x.npy"),
                 "--out", str(project / "r4")]) == 2
    assert "cannot import module 'nope_mod'" in capsys.readouterr().err


def test_console_script_runs():
    exe = Path(sys.executable).with_name("tribute")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tribute.cli"]
    res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert res.stdout.startswith("tribute ")


def test_components_end_to_end(project):
    out = project / "comp"
    code = main([
        "components", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
        "--data", str(project / "x.npy"), "--module", "0", "--unit", "channel",
        "--method", "feature_ablation", "--target", "1", "--out", str(out), "--no-progress",
    ])
    assert code == 0
    attr = tribute.Attribution.load(out / "attribution.npz")
    assert attr.player_kind == "component" and attr.flat().shape == (3, 1, 4)
    assert attr.player_names[0] == "0 channel 0"
    assert (out / "attribution.png").read_bytes()[:4] == b"\x89PNG"
