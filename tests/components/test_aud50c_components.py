"""aud50c: the batch-mixing check's "checked" mark, and component methods checked against hand truths.

The engine marks a torch model checked (its rows evaluated independently of their batch) once per
process. Two paths marked it without a check having passed: a checking pass that raised (a call on
inputs of the wrong shape, which the plain pass raised again) and a pass with no floating-point
leaf (token ids). The user's next call on a batch-mean model then went unchecked: exact Shapley of
sample 0 was 0.0477 / 0.0281 / 0.0852 at batch_size=None / 3 / 64 (one model, one input), silent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.engine.core import _is_checked
from tribute.errors import ModelOutputError


class _BatchMean(torch.nn.Module):
    """Subtracts the batch mean of its hidden layer: each row's output depends on the batch."""

    def __init__(self, embed: bool = False) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4) if embed else None
        self.fc1 = torch.nn.Linear(4, 5)
        self.fc2 = torch.nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.emb is not None:
            x = self.emb(x).mean(1)
        h = self.fc1(x)
        h = h - h.mean(0, keepdim=True)
        out: torch.Tensor = self.fc2(torch.relu(h))
        return out


def test_failed_call_leaves_model_unchecked() -> None:
    torch.manual_seed(0)
    net = _BatchMean()
    with pytest.raises(Exception):  # noqa: B017 - the model's own shape error, whatever its type
        tribute.explain(net, torch.randn(6, 7), method="kernel_shap", target=0)
    assert not _is_checked(net)
    with pytest.raises(ModelOutputError, match="changes with the other rows"):
        tribute.explain(net, torch.randn(6, 4), method="exact_shapley", target=0)
    with pytest.raises(ModelOutputError, match="changes with the other rows"):
        tribute.explain(net, torch.randn(6, 4), method="feature_ablation", target=0,
                        players=tribute.components(net, "fc1"))


def test_token_id_call_leaves_model_unchecked() -> None:
    torch.manual_seed(0)
    net = _BatchMean(embed=True)
    ids = torch.randint(1, 10, (6, 5))
    tribute.explain(net, ids, method="feature_ablation", baseline=0, target=0)  # nothing to check
    assert not _is_checked(net)
    with pytest.raises(ModelOutputError, match="changes with the other rows"):
        tribute.explain(net, ids, method="feature_ablation", target=0,
                        players=tribute.components(net, "fc1"))


class _NumpyInside(torch.nn.Module):
    """Cannot run with autograd (``Tensor.numpy()`` of a tensor that requires grad)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 5)
        self.b = torch.nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        out: torch.Tensor = self.b(torch.from_numpy(np.tanh(h.numpy())))
        return out


def test_uncheckable_model_marked_after_plain_pass() -> None:
    """Negative case: a model that cannot be checked and runs is still marked (checked once, not
    on every call), and its rows are counted: the failed checking pass's and the plain pass's."""
    torch.manual_seed(0)
    net = _NumpyInside()
    x = torch.randn(3, 4)
    with torch.inference_mode():
        attr = tribute.explain(net, x, method="feature_ablation", target=0)
    assert _is_checked(net)
    x0 = torch.zeros(1, 4)
    with torch.no_grad():
        full = net(x)[:, 0]
        truth = np.stack([(full - net(torch.where(torch.arange(4) == j, x0, x))[:, 0]).numpy()
                          for j in range(4)], 1)
    assert np.allclose(attr.values.numpy(), truth, atol=1e-6)


def _two_site_mlp(dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh(), torch.nn.Linear(3, 4),
                               torch.nn.ReLU(), torch.nn.Linear(4, 3)).to(dtype)


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_component_game_runs_each_distinct_coalition_once(ablation: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """COAR's 256 draws over 7 units hold 32 distinct coalitions: 768 rows reached the model
    for 3 inputs (zero ablation) where 96 give the same credits, bit for bit."""
    from tribute.games.components import ComponentGame

    net = _two_site_mlp()
    seen = [0]
    net.register_forward_pre_hook(lambda m, i: seen.__setitem__(0, seen[0] + int(i[0].shape[0])))
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    players = tribute.components(net, ["1", "2"], ablation=ablation,
                                 reference=ref if ablation == "resample" else None, n_resample=4)
    attr = tribute.explain(net, x, method="coar", players=players, target=[0, 2], budget=256)
    assert attr.n_rows == seen[0]
    per_eval = 3 * (4 if ablation == "resample" else 1)
    assert attr.n_rows < 60 * per_eval  # 32 to 34 distinct coalitions, not 256
    seen[0] = 0
    monkeypatch.setattr(ComponentGame, "distinct_coalitions", False)
    every = tribute.explain(net, x, method="coar", players=players, target=[0, 2], budget=256)
    assert every.n_rows == seen[0] and every.n_rows > 250 * per_eval
    assert torch.equal(attr.values, every.values)
    assert attr.stderr is not None and every.stderr is not None
    assert np.array_equal(np.asarray(attr.stderr), np.asarray(every.stderr))


def _batch_stat_mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6, track_running_stats=False),
                               torch.nn.ReLU(), torch.nn.Linear(6, 3))


@pytest.mark.parametrize("method", ["feature_ablation", "atp", "layer_grad_cam"])
def test_one_input_batch_statistics_model_says_why(method: str) -> None:
    """A batch norm without running statistics on one input raised torch's raw
    ``ValueError: Expected more than 1 value per channel when training`` from the component
    game's capture pass; now an InputError naming the layer and the fix."""
    net = _batch_stat_mlp()
    with pytest.raises(tribute.errors.InputError,
                       match=r"BatchNorm1d '1' normalise\(s\) with the statistics of its batch"):
        tribute.explain(net, torch.randn(1, 4), method=method, target=0,
                        players=tribute.components(net, "0"))
    with pytest.raises(tribute.errors.InputError, match="track_running_stats=True"):
        tribute.explain(net, torch.randn(1, 4), method="kernel_shap", target=0)  # feature game


def test_model_failure_in_capture_pass_names_the_inputs() -> None:
    """Negative case: no batch norm, a shape error: the shape hint, not the batch-norm one."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    with pytest.raises(tribute.errors.InputError, match=r"shapes \(2, 5\).*shape and dtype") as info:
        tribute.explain(net, torch.randn(2, 5), method="feature_ablation", target=0,
                        players=tribute.components(net, "1"))
    assert "statistics" not in str(info.value) and isinstance(info.value.__cause__, RuntimeError)
