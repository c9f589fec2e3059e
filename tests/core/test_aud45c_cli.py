"""aud45c: ``--target FILE.npy`` holding one class for every sample (a 0-d array) with
``--limit N`` died in ``arr[:limit]`` with an IndexError traceback (exit 1); without ``--limit``
it worked. Now it explains that class on the first N rows, as ``tribute.explain`` does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tribute.cli import main
from tribute_testing import factory_module

FACTORY = '''
import torch


def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
'''


@pytest.fixture
def proj(tmp_path: Path) -> Iterator[tuple[Path, torch.nn.Module]]:
    with factory_module(tmp_path, "aud45c_factory", FACTORY) as mod:
        np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
        yield tmp_path, mod.make()


def _gradient(net: torch.nn.Module, x: np.ndarray, cls: int) -> np.ndarray:
    """Saliency by hand: d output[:, cls] / d x (plain autograd, no tribute)."""
    xt = torch.from_numpy(x).requires_grad_(True)
    net(xt)[:, cls].sum().backward()
    assert xt.grad is not None
    return xt.grad.numpy()


@pytest.mark.parametrize("limit", [None, 1, 2, 5, 9])
@pytest.mark.parametrize("target", [np.array(2), np.array([2]), np.array([2, 0, 1, 1, 0])])
def test_a_target_file_with_limit_explains_the_first_rows(
        proj: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str],
        limit: int | None, target: np.ndarray) -> None:
    folder, net = proj
    np.save(folder / "t.npy", target)
    out = folder / "out"
    argv = ["explain", "--model", "aud45c_factory:make", "--data", str(folder / "x.npy"),
            "--method", "saliency", "--target", str(folder / "t.npy"), "--no-progress",
            "--out", str(out)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    rc = main(argv)
    err = capsys.readouterr().err
    x = np.load(folder / "x.npy")[:limit]
    classes = np.broadcast_to(target, (5,))[:len(x)] if target.size in (1, 5) else target
    if target.shape == (1,) and len(x) != 1:  # one entry for several rows: refused, one line
        assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        return
    assert rc == 0, err
    values = np.load(out / "attribution.npz")["values"].reshape(len(x), 4)
    truth = np.stack([_gradient(net, x[i:i + 1], int(c))[0] for i, c in enumerate(classes)])
    np.testing.assert_allclose(values, truth, rtol=1e-5, atol=1e-6)


def _explain(folder: Path, out: str, *extra: str) -> list[str]:
    return ["explain", "--model", "aud45c_factory:make", "--data", str(folder / "x.npy"),
            "--method", "saliency", "--no-progress", *extra, f"--out={out}"]


@pytest.mark.parametrize("out", ["", " ", "\t"])
@pytest.mark.parametrize("mode", [(), ("--workers", "1")])
def test_an_empty_out_is_refused_not_the_current_folder(
        proj: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, out: str, mode: tuple[str, ...]) -> None:
    """``--out "$UNSET"`` wrote attribution.* (or a job's result.npz, shards/ ...) into the
    folder the command ran in, exit 0."""
    folder, _ = proj
    run_in = folder / "cwd"
    run_in.mkdir()
    monkeypatch.chdir(run_in)
    rc = main(_explain(folder, out, *mode))
    err = capsys.readouterr().err
    assert rc == 2 and "--out" in err and "empty" in err
    assert len(err.strip().splitlines()) == 1
    assert list(run_in.iterdir()) == []


@pytest.mark.parametrize("out", [".", "./", "res", "res/", "a b", "./a b/c", "-dash", "x,y", "out.d"])
def test_non_empty_outs_still_write(proj: tuple[Path, torch.nn.Module], monkeypatch: pytest.MonkeyPatch,
                                    out: str) -> None:
    folder, _ = proj
    run_in = folder / "cwd"
    run_in.mkdir()
    monkeypatch.chdir(run_in)
    assert main(_explain(folder, out)) == 0
    assert (run_in / out / "attribution.npz").is_file()
