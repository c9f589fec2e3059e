"""Every bad input gets a clear error: the argument, what was seen, and the fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import (
    BudgetError,
    InputError,
    ModelOutputError,
    UnsupportedModelError,
    WeightsFormatError,
)
from tribute.models import load_weights
from tribute_testing import LinearModel, make_cnn


@pytest.fixture
def model() -> LinearModel:
    return LinearModel()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_baseline_shape_mismatch(model, x):
    with pytest.raises(InputError, match=r"baseline has shape \(3,\).*\(4, \*\(5,\)\)") as e:
        tribute.explain(model, x, method="feature_ablation", baseline=torch.zeros(3))
    assert "background set" in str(e.value)


def test_baseline_with_nan(model, x):
    with pytest.raises(InputError, match="baseline contains NaN"):
        tribute.explain(model, x, method="feature_ablation", baseline=torch.full((5,), float("nan")))


def test_groups_shape_mismatch(model, x):
    with pytest.raises(InputError, match=r"groups has shape \(4,\).*one input sample has shape \(5,\)"):
        tribute.explain(model, x, method="feature_ablation", groups=np.arange(4))


def test_group_ids_must_be_contiguous(model, x):
    with pytest.raises(InputError, match=r"ids \[1\] are missing"):
        tribute.explain(model, x, method="feature_ablation", groups=np.array([0, 0, 2, 2, 3]))
    with pytest.raises(InputError, match="negative id -1"):
        tribute.explain(model, x, method="feature_ablation", groups=np.array([0, -1, 1, 1, 2]))
    with pytest.raises(InputError, match="integer player ids"):
        tribute.explain(model, x, method="feature_ablation", groups=np.array([0, 0.5, 1, 1, 2]))


def test_target_out_of_range(model, x):
    with pytest.raises(InputError, match=r"class index 7, out of range.*3 output\(s\).*0\.\.2"):
        tribute.explain(model, x, method="feature_ablation", target=7)
    with pytest.raises(InputError, match="class index -1"):
        tribute.explain(model, x, method="feature_ablation", target=-1)


def test_target_wrong_length(model, x):
    with pytest.raises(InputError, match=r"target has shape \(3,\) but the batch has 4 samples"):
        tribute.explain(model, x, method="feature_ablation", target=np.array([0, 1, 2]))


def test_target_nested_list_reads_as_per_sample_rows(model, x):
    # A nested list is the 2-D array form (one row of classes per sample); it used to raise
    # torch's bare "expand(...)" RuntimeError.
    rows = [[0, 1], [1, 2], [2, 0], [0, 0]]
    nested = tribute.explain(model, x, method="feature_ablation", target=rows)
    array = tribute.explain(model, x, method="feature_ablation", target=np.array(rows))
    assert torch.equal(torch.as_tensor(nested.values), torch.as_tensor(array.values))
    assert nested.values.shape == (4, 2, 5)
    with pytest.raises(InputError, match=r"rows of different lengths.*shape \(batch, n_targets\)"):
        tribute.explain(model, x, method="feature_ablation", target=[[0, 1], [2], [0, 1], [1, 2]])
    with pytest.raises(InputError, match=r"target has shape \(2, 2\) but the batch has 4 samples"):
        tribute.explain(model, x, method="feature_ablation", target=[[0, 1], [1, 2]])
    # 0-d tensors and arrays in a flat list are scalars: the same classes for every sample
    flat = tribute.explain(model, x, method="feature_ablation", target=[torch.tensor(0), np.array(2)])
    np.testing.assert_array_equal(np.asarray(flat.targets), [[0, 2]] * 4)


def test_target_bad_string(model, x):
    with pytest.raises(InputError, match="'predicted'"):
        tribute.explain(model, x, method="feature_ablation", target="top")


def test_nan_in_inputs_names_samples(model, x):
    x = x.clone()
    x[2, 1] = float("nan")
    with pytest.raises(InputError, match=r"inputs contains NaN values in sample\(s\) \[2\]"):
        tribute.explain(model, x, method="feature_ablation")
    x[2, 1] = float("inf")
    with pytest.raises(InputError, match="Inf"):
        tribute.explain(model, x, method="feature_ablation")


class NanWhenZero(torch.nn.Module):
    """log of the first feature: NaN/-Inf as soon as a coalition removes it (baseline 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x[:, :1]) + x.sum(1, keepdim=True)


def test_nan_in_model_output_names_row():
    x = torch.rand(3, 4, dtype=torch.float64) + 1.0
    with pytest.raises(ModelOutputError, match=r"model output is Inf at sample 0, coalition 0"):
        tribute.explain(NanWhenZero(), x, method="feature_ablation")


def test_nan_on_unperturbed_input():
    x = -torch.rand(2, 4, dtype=torch.float64) - 1.0
    with pytest.raises(ModelOutputError, match="NaN at sample 0 \\(the unperturbed input\\)"):
        tribute.explain(NanWhenZero(), x, method="feature_ablation")


def test_empty_batch(model):
    with pytest.raises(InputError, match=r"empty batch \(shape \(0, 5\)\)"):
        tribute.explain(model, torch.zeros(0, 5, dtype=torch.float64), method="feature_ablation")


def test_scalar_input(model):
    with pytest.raises(InputError, match="batch axis"):
        tribute.explain(model, torch.tensor(1.0), method="feature_ablation")


class ThreeD(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, None].expand(-1, -1, 2)


class WrongBatch(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0, keepdim=True)


def test_model_output_unexpected_shape(x):
    with pytest.raises(ModelOutputError, match=r"shape \(4, 5, 2\).*target=callable"):
        tribute.explain(ThreeD(), x, method="feature_ablation")
    with pytest.raises(ModelOutputError, match=r"shape \(1, 5\) for a batch of 4 rows"):
        tribute.explain(WrongBatch(), x, method="feature_ablation")


def test_budget_too_small_states_minimum(model, x):
    with pytest.raises(BudgetError, match=r"needs at least 32 evaluations per input.*>= 32"):
        tribute.explain(model, x, method="exact_shapley", budget=10)
    with pytest.raises(BudgetError, match="at least 6"):
        tribute.explain(model, x, method="feature_ablation", budget=3)
    with pytest.raises(InputError, match="positive int"):
        tribute.explain(model, x, method="feature_ablation", budget=0)


def test_exact_shapley_refuses_too_many_players():
    m = torch.nn.Linear(30, 1).double()
    with pytest.raises(BudgetError, match=r"2\^30 .*limited to 20 players"):
        tribute.explain(m, torch.zeros(1, 30, dtype=torch.float64), method="exact_shapley")


def test_non_numeric_data():
    X = np.array([["a", "b"], ["c", "d"]], dtype=object)
    with pytest.raises(InputError, match=r"non-numeric dtype object.*encode"):
        tribute.explain(lambda a: np.zeros(len(a)), X, method="feature_ablation")
    with pytest.raises(InputError, match="non-numeric dtype <U1"):
        tribute.explain(lambda a: np.zeros(len(a)), np.array([["a", "b"]]), method="feature_ablation")


def test_weights_file_not_safetensors(tmp_path):
    m = LinearModel()
    p = tmp_path / "model.pt"
    torch.save(m.state_dict(), p)
    with pytest.raises(WeightsFormatError, match=r"not safetensors.*zip archive.*save_file"):
        load_weights(m, p)
    q = tmp_path / "bad.safetensors"
    q.write_bytes(b"garbage that is not a header")
    with pytest.raises(WeightsFormatError, match="not safetensors"):
        load_weights(m, q)


def test_weights_wrong_architecture(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "w.safetensors"
    save_file({"other.weight": torch.zeros(2)}, str(p))
    with pytest.raises(WeightsFormatError, match="does not match the model"):
        load_weights(LinearModel(), p)


def test_unknown_method_suggests(model, x):
    with pytest.raises(InputError, match="Did you mean 'feature_ablation'"):
        tribute.explain(model, x, method="feature_ablaton")


def test_unknown_parameter(model, x):
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['steps'\]"):
        tribute.explain(model, x, method="feature_ablation", steps=3)


def test_gradient_method_on_numpy_model():
    X = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(UnsupportedModelError, match=r"needs gradients.*kernel_shap"):
        tribute.explain(lambda a: a.sum(1), X, method="saliency")


def test_feature_names_length(model, x):
    with pytest.raises(InputError, match="feature_names has 2 names but there are 5 players"):
        tribute.explain(model, x, method="feature_ablation", feature_names=["a", "b"])


def test_multi_input_batch_mismatch():
    class Two(torch.nn.Module):
        def forward(self, a, b):
            return a.sum(1, keepdim=True) + b.sum(1, keepdim=True)

    with pytest.raises(InputError, match=r"inputs\[1\] has 2 samples but inputs\[0\] has 3"):
        tribute.explain(Two(), (torch.zeros(3, 2), torch.zeros(2, 2)), method="feature_ablation")


def test_model_failing_on_inputs_explains_shapes():
    m = torch.nn.Linear(7, 2)
    with pytest.raises(InputError, match=r"model failed on the inputs \(shapes \(2, 5\)\)"):
        tribute.explain(m, torch.zeros(2, 5), method="feature_ablation")


class Exploding(torch.nn.Module):
    """Raises on the second forward pass (after the reference pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("boom")
        return self.lin(x)


def test_model_left_unchanged_after_exception():
    m = Exploding()
    m.train()
    m.lin.bias.requires_grad_(False)
    handle = m.register_forward_hook(lambda *a: None)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    hooks_before = dict(m._forward_hooks)
    with pytest.raises(RuntimeError, match="boom"):
        tribute.explain(m, torch.randn(3, 4), method="feature_ablation")
    assert m.training and m.lin.training
    assert m.lin.weight.requires_grad and not m.lin.bias.requires_grad
    assert dict(m._forward_hooks) == hooks_before
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
    handle.remove()


def test_cnn_groups_broadcast_and_patch_errors():
    cnn = make_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(InputError, match=r"patch size \(16, 16\) exceeds the image size \(8, 8\)"):
        tribute.explain(cnn, x, method="feature_ablation", groups=tribute.patches(16))


def test_budget_accepts_numpy_integers() -> None:
    import numpy as np
    import torch

    import tribute

    model = torch.nn.Linear(4, 2).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    budget: Any = np.int64(12)  # typed int; numpy integers are accepted at run time too
    a = tribute.explain(model, x, method="kernel_shap", target=0, budget=budget, seed=1)
    b = tribute.explain(model, x, method="kernel_shap", target=0, budget=12, seed=1)
    assert a.n_evals == b.n_evals <= 12 and torch.equal(a.values, b.values)
    assert a.params.get("budget", 12) == 12 and type(a.params.get("budget", 12)) is int
