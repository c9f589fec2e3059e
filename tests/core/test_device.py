"""Every method and metric on an accelerator gives the CPU's answer.

The conformance suites run on the CPU. Here each case runs twice, once with the model and
inputs on the CPU and once on the device (``cuda`` where torch sees one; these tests are
skipped elsewhere, and CI has no GPU): the credits must agree (float64 everywhere, so only
reassociation separates them), live on the inputs' device, count the same evaluations, and
the model must be left exactly as it was, on its device.

``TRIBUTE_TEST_DEVICE=cpu`` runs the same comparisons with a second CPU copy (checks the
harness itself where no accelerator exists).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from test_conformance import CASES, Setting, _kwargs
from torch import nn

import tribute
from tribute.errors import StderrWarning, UnsupportedModelError
from tribute.methods import registry

_FORCED = os.environ.get("TRIBUTE_TEST_DEVICE")
DEVICE = _FORCED or ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no accelerator (set TRIBUTE_TEST_DEVICE)")


def _sibling(folder: str, name: str) -> ModuleType:
    """A helper module of another test folder (tests/<folder>/<name>.py), loaded by path."""
    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_device_{folder}_{name}", path)
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module

#: Methods whose random draws are made on the inputs' device (another generator than the
#: CPU's): compared for shape and finiteness only. Keep empty unless the method's draws
#: cannot be made on the CPU.
DEVICE_RNG: set[str] = set()


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "params": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "devices": sorted({str(v.device) for v in model.state_dict().values()}),
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                  for m in model.modules()],
    }


def _same_state(before: dict[str, Any], model: nn.Module) -> None:
    after = _state(model)
    assert after["devices"] == before["devices"]
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    for k, v in before["params"].items():
        assert torch.equal(v, after["params"][k]), k


def _flat(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _explain(model: Any, inputs: Any, method: str, **kw: Any) -> tribute.Attribution:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StderrWarning)
        try:
            return tribute.explain(model, inputs, method=method, seed=7, progress=False, **kw)
        except UnsupportedModelError as exc:
            if registry()[method].tags.model_specific:
                pytest.skip(f"{method} refuses this model by design: {exc}")
            raise


def _compare(method: str, cpu: tribute.Attribution, dev: tribute.Attribution,
             inputs_dev: torch.Tensor) -> None:
    assert isinstance(dev.values, torch.Tensor)
    assert dev.values.device == inputs_dev.device, (dev.values.device, inputs_dev.device)
    assert dev.values.dtype == cpu.values.dtype
    assert tuple(dev.values.shape) == tuple(cpu.values.shape)
    assert dev.n_evals == cpu.n_evals and dev.n_rows == cpu.n_rows
    a, b = _flat(cpu.values), _flat(dev.values)
    assert np.isfinite(b).all()
    if method in DEVICE_RNG:
        return
    scale = max(float(np.abs(a).max()), 1e-12)
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-8 * scale, err_msg=method)
    if cpu.stderr is not None:
        assert dev.stderr is not None
        sa, sb = _flat(cpu.stderr), _flat(dev.stderr)
        np.testing.assert_allclose(sb, sa, rtol=1e-5, atol=1e-8 * scale, equal_nan=True)


TORCH_CASES = [(m, s) for m, s in CASES if s.framework == "torch"]


@pytest.mark.parametrize(("method", "setting"), TORCH_CASES,
                         ids=[f"{m}-{s.name}" for m, s in TORCH_CASES])
def test_feature_method_on_device(method: str, setting: Setting) -> None:
    model = setting.model().eval()
    inputs = setting.inputs()
    kw = _kwargs(method, setting)
    cpu = _explain(model, inputs, method, **kw)

    dev_model = copy.deepcopy(model).to(DEVICE)
    dev_inputs = inputs.to(DEVICE)
    before = _state(dev_model)
    dev = _explain(dev_model, dev_inputs, method, **kw)
    _same_state(before, dev_model)
    _compare(method, cpu, dev, dev_inputs)


COMPONENT_METHODS = sorted(m for m, cls in registry().items() if "component" in cls.tags.games)


@pytest.mark.parametrize("method", COMPONENT_METHODS)
@pytest.mark.parametrize("ablation", ["zero", "mean", "patch"])
def test_component_method_on_device(method: str, ablation: str) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(5)  # 6 hidden neurons: exact methods enumerate 64 coalitions
        model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, 6, dtype=torch.float64, generator=g)
    x_cf = torch.randn(3, 6, dtype=torch.float64, generator=g)
    layer = next(name for name, mod in model.named_modules() if isinstance(mod, nn.Linear))
    kw: dict[str, Any] = {"target": 1}
    if registry()[method].tags.budgeted:
        kw["budget"] = 64

    def run(m: nn.Module, xs: torch.Tensor, cf: torch.Tensor) -> tribute.Attribution:
        players = tribute.components(m, layer, unit="neuron", ablation=ablation,
                                     counterfactual=cf if ablation == "patch" else None)
        return _explain(m, xs, method, players=players, **kw)

    try:
        cpu = run(model, x, x_cf)
    except tribute.InputError as exc:
        pytest.skip(f"{method} with ablation={ablation} refused on the CPU too: {exc}")
    dev_model = copy.deepcopy(model).to(DEVICE)
    before = _state(dev_model)
    dev_x = x.to(DEVICE)
    dev = run(dev_model, dev_x, x_cf.to(DEVICE))
    _same_state(before, dev_model)
    _compare(method, cpu, dev, dev_x)


DATA_METHODS = ["grad_dot", "grad_cos", "influence", "tracin", "trak", "representer"]
#: per-method settings of the data runs (100 training examples: TRAK's projection fewer)
DATA_KWARGS: dict[str, dict[str, Any]] = {"trak": {"proj_dim": 16}}


@pytest.mark.parametrize("method", DATA_METHODS)
def test_data_method_on_device(method: str) -> None:
    case = _sibling("data", "data_cases").logistic_case()
    kw = DATA_KWARGS.get(method, {})
    cpu = _explain(case.model, case.X_test, method, players=case.data(), target=case.y_test,
                   **kw)
    dev_model = copy.deepcopy(case.model).to(DEVICE)
    before = _state(dev_model)
    data = tribute.TrainingData(case.X.to(DEVICE), case.y.to(DEVICE), fit=case.fit)
    dev_x = case.X_test.to(DEVICE)
    dev = _explain(dev_model, dev_x, method, players=data, target=case.y_test.to(DEVICE), **kw)
    _same_state(before, dev_model)
    _compare(method, cpu, dev, dev_x)


def _metric_names() -> list[str]:
    from tribute.metrics import metrics as metric_infos

    return sorted(m for m, info in metric_infos().items() if "feature" in info.games)


@pytest.mark.parametrize("metric", _metric_names())
def test_metric_on_device(metric: str) -> None:
    from tribute.metrics import metrics as metric_infos

    conf = _sibling("metrics", "test_metric_conformance")
    PatchLinear, RELEVANT = conf.PatchLinear, conf.RELEVANT

    model = PatchLinear().eval()
    g = torch.Generator().manual_seed(1)
    x = 0.5 + torch.rand(4, 1, 6, 6, generator=g, dtype=torch.float64)
    groups = tribute.patches(2)
    attr = tribute.explain(model, x, method="feature_ablation", target=0, groups=groups,
                           progress=False)
    kw: dict[str, Any] = {}
    if "ground_truth" in metric_infos()[metric].needs:
        truth = np.zeros((3, 3), dtype=bool)
        for r, c in RELEVANT:
            truth[r, c] = True
        kw["ground_truth"] = np.broadcast_to(truth.reshape(-1), (4, 9)).copy()

    def run(m: nn.Module, xs: torch.Tensor, a: tribute.Attribution) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tribute.evaluate(m, xs, a, metric=metric, target=0, seed=3, progress=False,
                                    **kw)

    cpu = run(model, x, attr)
    dev_model = copy.deepcopy(model).to(DEVICE)
    dev_x = x.to(DEVICE)
    dev_attr = tribute.explain(dev_model, dev_x, method="feature_ablation", target=0,
                               groups=groups, progress=False)
    before = _state(dev_model)
    dev = run(dev_model, dev_x, dev_attr)
    _same_state(before, dev_model)
    a, b = np.asarray(cpu.scores, dtype=float), np.asarray(dev.scores, dtype=float)
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=metric)


def test_default_memory_cap_respects_the_device() -> None:
    """On an accelerator, the default cap is bounded by the device's free memory: composed
    rows live there, and a cap from the host's RAM alone lets a call run out of device memory
    instead of streaming."""
    from tribute.engine.memory import default_max_memory

    if DEVICE is None or not DEVICE.startswith("cuda"):
        pytest.skip("needs a CUDA device")
    free, _total = torch.cuda.mem_get_info(torch.device(DEVICE))
    assert default_max_memory(torch.device(DEVICE)) <= free
