"""aud43c: a bad ``--out`` (an existing file, or a folder under a file) is refused up front with
one line naming it: ``tribute explain`` / ``components`` / ``evaluate`` ran the whole model and
then died in ``mkdir`` with a FileExistsError traceback. A non-UTF-8 ``--feature-names`` file is
an InputError, not a UnicodeDecodeError traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tribute.cli import main
from tribute_testing import factory_module

FACTORY = '''
import torch

CALLS = []


def make():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    net.register_forward_hook(lambda mod, inp, out: CALLS.append(len(inp[0])))
    return net
'''


@pytest.fixture
def proj(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    with factory_module(tmp_path, "aud43c_factory", FACTORY) as mod:
        np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
        (tmp_path / "taken").write_text("a file the user keeps")
        yield tmp_path, mod.CALLS


def _argv(command: str, folder: Path, out: Path) -> list[str]:
    head = [command, "--model", "aud43c_factory:make", "--data", str(folder / "x.npy")]
    extra = {"explain": ["--method", "saliency", "--no-progress"],
             "components": ["--module", "1", "--no-progress"],
             "evaluate": ["--methods", "saliency", "--metrics", "deletion", "--no-progress"]}[command]
    return [*head, *extra, "--out", str(out)]


@pytest.mark.parametrize("command", ["explain", "components", "evaluate"])
@pytest.mark.parametrize("where", ["taken", "taken/sub"])
def test_an_out_that_cannot_be_a_folder_is_refused_before_the_run(
        proj: tuple[Path, list[int]], capsys: pytest.CaptureFixture[str], command: str, where: str) -> None:
    folder, calls = proj
    rc = main(_argv(command, folder, folder / where))
    err = capsys.readouterr().err
    assert rc == 2
    assert "--out" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert calls == []  # the model never ran
    assert (folder / "taken").read_text() == "a file the user keeps"


def test_a_good_out_still_writes(proj: tuple[Path, list[int]]) -> None:
    folder, calls = proj
    out = folder / "new" / "deeper"
    assert main(_argv("explain", folder, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["attribution.html", "attribution.npz",
                                                      "attribution.png"]
    assert calls


def test_feature_names_file_not_utf8_is_an_input_error(proj: tuple[Path, list[int]],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = proj
    names = folder / "names.txt"
    names.write_bytes(b"\xff\xfe\x00a\nb\n")
    rc = main([*_argv("explain", folder, folder / "o"), "--feature-names", str(names)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--feature-names" in err and "UTF-8" in err and "Traceback" not in err
    assert not (folder / "o").exists()
