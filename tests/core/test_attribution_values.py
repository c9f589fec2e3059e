"""Base/full values on Attribution, equality, the tabular default-baseline warning, plot kinds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError


def _f(a: np.ndarray) -> np.ndarray:
    return a[:, 0] * a[:, 1] + 2.0 * a[:, 2] - a[:, 3]


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 4)) + 3.0


# ------------------------------------------------------------------ base / full values
def test_exact_shapley_base_plus_credits_is_f_x(X):
    base = X.mean(0)
    attr = tribute.explain(_f, X, method="exact_shapley", baseline=base)
    assert attr.full_values is not None and attr.base_values is not None
    np.testing.assert_allclose(attr.full_values, _f(X), rtol=1e-12)
    np.testing.assert_allclose(attr.base_values, np.full(6, _f(base[None])[0]), rtol=1e-12)
    np.testing.assert_allclose(attr.base_values + attr.values.sum(1), attr.full_values,
                               rtol=1e-12)
    assert attr.n_evals == 2**4  # the base value cost nothing extra


def test_background_base_value_is_the_mean_output(X):
    bg = np.random.default_rng(1).normal(size=(7, 4))
    attr = tribute.explain(_f, X[:2], method="exact_shapley", baseline=tribute.Background(bg))
    assert attr.base_values is not None
    np.testing.assert_allclose(attr.base_values, np.full(2, _f(bg).mean()), rtol=1e-12)


def test_base_values_left_none_when_not_evaluated(X):
    attr = tribute.explain(_f, X, method="feature_ablation", baseline=0.0)
    assert attr.base_values is None and attr.full_values is not None
    np.testing.assert_allclose(attr.full_values, _f(X))


def test_multi_target_base_values_have_a_target_axis():
    net = torch.nn.Linear(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", target=[0, 2])
    assert attr.base_values is not None and attr.full_values is not None
    assert attr.base_values.shape == (2, 2) and attr.full_values.shape == (2, 2)
    with torch.no_grad():
        np.testing.assert_allclose(attr.full_values, net(x)[:, [0, 2]].numpy(), rtol=1e-12)
        np.testing.assert_allclose(attr.base_values[0], net.bias[[0, 2]].numpy(), rtol=1e-12)


def test_values_survive_save_and_load(X, tmp_path):
    attr = tribute.explain(_f, X, method="exact_shapley", baseline=X.mean(0))
    back = tribute.Attribution.load(attr.save(tmp_path / "x.npz"))
    np.testing.assert_array_equal(back.base_values, attr.base_values)
    np.testing.assert_array_equal(back.full_values, attr.full_values)


# ------------------------------------------------------------------ equality
def test_equality_and_allclose(X):
    a = tribute.explain(_f, X, method="kernel_shap", baseline=0.0, budget=10, seed=0)
    b = tribute.explain(_f, X, method="kernel_shap", baseline=0.0, budget=10, seed=0)
    assert a == b and a.allclose(b)
    c = tribute.explain(_f, X, method="kernel_shap", baseline=0.0, budget=10, seed=1)
    assert a != c
    nudged = tribute.Attribution(**{**a.__dict__, "values": a.values + 1e-9})
    assert nudged != a and nudged.allclose(a, rtol=0, atol=1e-8)
    assert not nudged.allclose(a, rtol=0, atol=1e-12)
    renamed = tribute.Attribution(**{**a.__dict__, "player_names": ["a", "b", "c", "d"]})
    assert renamed != a
    other_method = tribute.Attribution(**{**a.__dict__, "method": "lime"})
    assert other_method != a
    no_se = tribute.Attribution(**{**a.__dict__, "stderr": None})
    assert (no_se == a) is (a.stderr is None)
    assert a != "not an attribution"
    with pytest.raises(InputError, match="another Attribution"):
        a.allclose(a.values)
    with pytest.raises(TypeError):
        hash(a)


def test_equality_with_torch_and_tuple_values():
    x = (torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64))

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.sum(1) - 2 * b.sum(1)

    a = tribute.explain(f, x, method="exact_shapley")
    b = tribute.explain(f, x, method="exact_shapley")
    assert isinstance(a.values, tuple) and a == b
    shifted = tribute.Attribution(**{**a.__dict__, "values": (a.values[0], a.values[1] * 2)})
    assert shifted != a


# ------------------------------------------------------------------ default baseline
def test_tabular_default_baseline_warns_once_and_explicit_zero_does_not(X):
    with pytest.warns(UserWarning, match="X_train.mean\\(0\\)") as record:
        default = tribute.explain(_f, X, method="exact_shapley")
    assert sum("baseline was not given" in str(w.message) for w in record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = tribute.explain(_f, X, method="exact_shapley", baseline=0.0)
    assert default == explicit  # same behaviour, only the warning differs


def test_no_default_baseline_warning_for_torch_images_or_token_ids():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(net, torch.randn(2, 1, 4, 4, dtype=torch.float64), method="saliency")
        tribute.explain(net, torch.randn(2, 16, dtype=torch.float64), method="saliency")
        ids = np.array([[1, 2, 3], [4, 5, 6]])
        tribute.explain(lambda a: a.sum(1).astype(float), ids, method="exact_shapley")


# ------------------------------------------------------------------ plots
def test_plot_kinds(X):
    mpl = pytest.importorskip("matplotlib")
    del mpl
    attr = tribute.explain(_f, X, method="exact_shapley", baseline=X.mean(0))
    fig = attr.plot(1, kind="waterfall")
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert any(lab.startswith("f(x) = ") and float(lab[7:]) == pytest.approx(_f(X[1:2])[0], rel=1e-3)
               for lab in labels)
    assert attr.plot(0, kind="bar") is not None and attr.plot(0) is not None
    with pytest.raises(InputError, match="not laid out on an image"):
        attr.plot(0, kind="image")
    with pytest.raises(InputError, match="kind='pie'"):
        attr.plot(0, kind="pie")
    ablated = tribute.explain(_f, X, method="feature_ablation", baseline=0.0)
    with pytest.raises(InputError, match="no base value"):
        ablated.plot(0, kind="waterfall")


def test_waterfall_shows_the_unattributed_gap():
    pytest.importorskip("matplotlib")
    from tribute.viz import waterfall

    fig = waterfall(np.array([1.0, 2.0]), base_value=0.5, full_value=5.0)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "not attributed" in labels
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "f(x) = 5" in texts
    fig = waterfall(np.array([1.0, 2.0]), base_value=0.5, full_value=3.5)
    assert "not attributed" not in [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_plot_image_kind():
    pytest.importorskip("matplotlib")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    attr = tribute.explain(net, torch.randn(2, 1, 4, 4, dtype=torch.float64), method="saliency")
    assert attr.plot(0, kind="image") is not None and attr.plot(1) is not None
