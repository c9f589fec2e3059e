"""aud51c: ``tribute explain`` / ``components`` / ``evaluate`` cast float64 ``--data`` rows to a
float32 module's dtype (``cli.prepare``), so the command gave float32 credits 6e-9 to 1.3e-8 off
one :func:`tribute.explain` call on the same rows (which composes in the module's dtype itself and
answers in the data's, float64). The commands now hand the data's own dtype, as dataset jobs do
since aud51t. Truth: one :func:`tribute.explain` call on the same rows, byte-equal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.cli import main
from tribute_testing import factory_module

FACTORY = '''
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
'''


@pytest.fixture
def proj(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with factory_module(tmp_path, "aud51c_factory", FACTORY) as mod:
        X = np.random.default_rng(0).normal(size=(5, 4))
        np.save(tmp_path / "x.npy", X)
        np.save(tmp_path / "x32.npy", X.astype(np.float32))
        yield tmp_path, mod


def _head(command: str, folder: Path, data: str = "x.npy") -> list[str]:
    return [command, "--model", "aud51c_factory:make", "--data", str(folder / data),
            "--target", "1", "--no-progress", "--out", str(folder / command)]


@pytest.mark.parametrize("data", ["x.npy", "x32.npy"])
@pytest.mark.parametrize("method", ["exact_shapley", "integrated_gradients"])
def test_explain_on_float64_rows_gives_one_calls_credits(proj: tuple[Path, Any], method: str,
                                                         data: str) -> None:
    folder, mod = proj
    X = np.load(folder / data)
    assert main([*_head("explain", folder, data), "--method", method, "--baseline", "0"]) == 0
    got = np.asarray(tribute.Attribution.load(folder / "explain" / "attribution.npz").values)
    one = np.asarray(tribute.explain(mod.make(), X, method=method, baseline=0.0, target=1,
                                     progress=False).values)
    assert got.dtype == one.dtype == X.dtype
    np.testing.assert_array_equal(got, one)


@pytest.mark.parametrize(("method", "ablation", "extra"), [
    ("feature_ablation", "zero", []),
    pytest.param("exact_shapley", "mean", ["--reference", "x.npy"], marks=pytest.mark.slow),
    pytest.param("conductance", "zero", ["--baseline", "0"], marks=pytest.mark.slow)])
def test_components_on_float64_rows_give_one_calls_credits(proj: tuple[Path, Any], method: str,
                                                           ablation: str, extra: list[str]) -> None:
    folder, mod = proj
    X = np.load(folder / "x.npy")
    extra = [str(folder / e) if e.endswith(".npy") else e for e in extra]
    argv = [*_head("components", folder), "--method", method, "--module", "1", "--ablation", ablation, *extra]
    assert main(argv) == 0
    got = np.asarray(tribute.Attribution.load(folder / "components" / "attribution.npz").values)
    model = mod.make()
    players = tribute.components(model, ["1"], ablation=ablation,
                                 reference=torch.from_numpy(X) if ablation == "mean" else None)
    kw: dict[str, Any] = {"baseline": 0.0} if method == "conductance" else {}
    one = np.asarray(tribute.explain(model, X, method=method, target=1, players=players,
                                     progress=False, **kw).values)
    assert got.dtype == one.dtype == np.float64
    np.testing.assert_array_equal(got, one)


@pytest.mark.slow
def test_evaluate_keeps_float64_rows(proj: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from tribute.bench import cli as bench_cli

    folder, _ = proj
    seen: list[Any] = []
    user_case = bench_cli._user_case

    def spy(args: Any) -> Any:
        case = user_case(args)
        seen.append(case.inputs.dtype)
        return case

    monkeypatch.setattr(bench_cli, "_user_case", spy)
    main([*_head("evaluate", folder), "--methods", "saliency", "--metrics", "deletion"])
    assert seen == [torch.float64]


PATCH_FACTORY = '''
import numpy as np
import torch

class ChannelsLast(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.lin = torch.nn.Linear(2 * 4 * 6, 2)

    def forward(self, x):
        return self.lin(self.conv(x.permute(0, 3, 1, 2)).flatten(1))

def last():
    return ChannelsLast()

def first():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 6, 2))

W = np.random.default_rng(5).normal(size=(72, 2))

def numpy_model():
    return lambda a: a.reshape(len(a), -1) @ W
'''


@pytest.mark.parametrize(("factory", "shape", "last"), [
    ("last", (4, 6, 3), True), pytest.param("first", (3, 4, 6), False, marks=pytest.mark.slow),
    pytest.param("numpy_model", (3, 4, 6), False, marks=pytest.mark.slow)])
def test_evaluate_patches_tile_the_pixels_the_model_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          factory: str, shape: tuple[int, ...], last: bool) -> None:
    # a channels-last CNN's (4, 6, 3) images were grouped W x channels (patch_groups of the
    # last two axes), and occlusion's windows were (4, 2, 2): patches of columns x channels
    from tribute.bench import cli as bench_cli

    with factory_module(tmp_path, "aud51c_patch_factory", PATCH_FACTORY):
        np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, *shape)))
        seen: list[Any] = []
        user_case = bench_cli._user_case

        def spy(args: Any) -> Any:
            case = user_case(args)
            seen.append(case)
            return case

        monkeypatch.setattr(bench_cli, "_user_case", spy)
        main(["evaluate", "--model", f"aud51c_patch_factory:{factory}", "--data", str(tmp_path / "x.npy"),
              "--groups", "patch:2", "--methods", "occlusion", "--metrics", "deletion", "--no-progress",
              "--out", str(tmp_path / "o")])
    case = seen[0]
    hw = (4, 6)
    ids = (np.arange(hw[0])[:, None] // 2) * 3 + np.arange(hw[1])[None, :] // 2
    want = np.broadcast_to(ids[:, :, None], shape) if last else np.broadcast_to(ids, shape)
    np.testing.assert_array_equal(case.groups, want)
    assert case.method_params["occlusion"]["window"] == ((2, 2, 3) if last else (3, 2, 2))
