"""aud51g: gradient methods core: Integrated Hessians' memory, the cost refusal's hint, 1-D inputs.

* ``integrated_hessians`` held every node's Hessians (``batch x steps x targets x players^2``,
  plus a same-size weighted product) only to sum them with weights: the game now sums them as
  the rows come (:meth:`FeatureGame.weighted_grad_hessian`), ``steps`` x less memory (16x at the
  default), results within float rounding (max 1.2e-16 over a 168-case sweep).
* The ``max_memory`` refusal of a call given ``steps=`` (no budget) said "budget=98 fits";
  passing that budget next to ``steps=32`` is refused as a disagreement. It now names the
  hyperparameter (``steps=1 fits``), and the largest value that fits, not the minimum
  (integrated_gradients with ``steps=2000`` was told the minimum where ``steps=1574`` fit).
* ``X[0]`` (a 1-D row of a table) given to a torch MLP is read as one sample per entry; the
  error now says so and suggests ``X[None]``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError, ModelOutputError
from tribute.games.features import FeatureGame
from tribute.methods.base import coalition_cost
from tribute.methods.integrated import IntegratedGradients
from tribute.methods.integrated_hessians import IntegratedHessians, log_quadrature
from tribute.models import as_model


def _softplus_mlp(n: int, outputs: int = 3, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(n, 6), torch.nn.Softplus(), torch.nn.Linear(6, outputs))
    return m.double().eval()


def _x(b: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_weighted_grad_hessian_is_the_weighted_sum_of_the_per_node_results() -> None:
    n = 5
    model = _softplus_mlp(n)
    bg = tribute.Background(_x(3, n, seed=4), weights=[1.0, 2.0, 3.0])
    adapter = as_model(model, "torch")
    nodes, weights = log_quadrature(4)
    masks = nodes[:, None].expand(-1, 3)
    with adapter.session():
        game = FeatureGame(adapter, _x(2, n), target=[0, 2], baseline=bg, groups=[0, 1, 1, 2, 0])
        vals, grads, hess = game.value_grad_hessian(masks)
        before = game.n_evals
        vals_w, grad_sum, hess_sum = game.weighted_grad_hessian(masks, weights, nodes * weights)
        assert game.n_evals - before == 4 * 3  # the same rows, counted the same way
    assert hess_sum.shape == (2, 2, 3, 3) and grad_sum.shape == (2, 2, 3)
    torch.testing.assert_close(vals_w, vals, atol=0, rtol=0)
    torch.testing.assert_close(grad_sum, (weights[None, :, None, None] * grads).sum(1),
                               atol=1e-15, rtol=0)
    torch.testing.assert_close(hess_sum, ((nodes * weights)[None, :, None, None, None] * hess).sum(1),
                               atol=1e-15, rtol=0)
    with pytest.raises(tribute.errors.InputError, match="hess_weights has 3 entries but masks has 4"):
        game.weighted_grad_hessian(masks, weights, weights[:3])


def test_integrated_hessians_memory_does_not_grow_with_steps_times_hessians() -> None:
    # 16 players, 2 inputs, 3 targets, steps=8: the per-node Hessians and their weighted
    # product (8 nodes x 2 x 12 KB) were counted and held; their sum and pair are 2 x 12 KB
    n, b, t, steps = 16, 2, 3, 8
    model = _softplus_mlp(n)
    x = _x(b, n)
    adapter = as_model(model, "torch")
    with adapter.session():
        game = FeatureGame(adapter, x, target=[0, 1, 2])
        est = IntegratedHessians(steps).estimate_cost(game, None).bytes
        masks = coalition_cost(game, steps * n + 2, grads=True).bytes
    hess_sum = b * t * n * n * 8
    # the masks grow with steps, the Hessians do not (was masks + 2 * steps * hess_sum + ...)
    assert est < masks + 3 * hess_sum < masks + 2 * steps * hess_sum
    a = tribute.explain(model, x, method="integrated_hessians", target=[0, 1, 2], steps=steps,
                        max_memory=est, progress=False)  # refused before: its estimate was larger
    assert a.n_evals == steps * n + 2
    assert a.gap is not None and abs(a.gap).max() < 1e-3  # interaction completeness up to the quadrature


def _hint(err: pytest.ExceptionInfo[BudgetError]) -> tuple[str, int]:
    found = re.search(r"(\w+)=([\d,]+) (?:\(\w+=[\d,]+\) )?fits with the current players", str(err.value))
    assert found is not None, str(err.value)
    return found.group(1), int(found.group(2).replace(",", ""))


def test_cost_refusal_names_steps_when_steps_were_given() -> None:
    n, b = 12, 2
    model = _softplus_mlp(n)
    x = _x(b, n)
    kw: dict[str, Any] = dict(target=[0, 1, 2], progress=False)
    adapter = as_model(model, "torch")
    with adapter.session():
        game = FeatureGame(adapter, x, target=[0, 1, 2])
        cap_ih = IntegratedHessians(3).estimate_cost(game, None).bytes
        cap_ig = IntegratedGradients(steps=50).estimate_cost(game, None).bytes
    # integrated_hessians given steps=32: "steps=3 fits" (was "budget=38 fits", which next to
    # steps=32 is refused as a disagreement)
    with pytest.raises(BudgetError) as err:
        tribute.explain(model, x, method="integrated_hessians", steps=32, max_memory=cap_ih, **kw)
    assert _hint(err) == ("steps", 3), str(err.value)
    a = tribute.explain(model, x, method="integrated_hessians", steps=3, max_memory=cap_ih, **kw)
    assert a.n_evals == 3 * n + 2
    # integrated_gradients given steps=4000: the largest steps that fit, not the minimum
    with pytest.raises(BudgetError) as err:
        tribute.explain(model, x, method="integrated_gradients", steps=4000, max_memory=cap_ig, **kw)
    assert _hint(err) == ("steps", 50), str(err.value)
    tribute.explain(model, x, method="integrated_gradients", steps=50, max_memory=cap_ig, **kw)
    # given a budget: the budget, and what it runs
    with pytest.raises(BudgetError, match=r"budget=52 \(steps=50\) fits"):
        tribute.explain(model, x, method="integrated_gradients", budget=4002, max_memory=cap_ig, **kw)
    # a method whose budget sets no hyperparameter keeps budget= (kernel_shap)
    with pytest.raises(BudgetError) as err:
        tribute.explain(model, x, method="kernel_shap", budget=200000, max_memory="1MB", **kw)
    assert _hint(err)[0] == "budget"


def test_one_dimensional_input_to_a_torch_mlp_hints_a_batch_axis() -> None:
    x = _x(4, 5)
    for outputs, what in ((3, "returned shape"), (5, "changes with the other rows")):
        model = _softplus_mlp(5, outputs=outputs)
        for method in ("saliency", "kernel_shap"):
            with pytest.raises(ModelOutputError, match=what) as err:
                tribute.explain(model, x[0], method=method, target=0, progress=False)
            assert "X[None]" in str(err.value), str(err.value)
        a = tribute.explain(model, x[0][None], method="saliency", target=0, progress=False)
        assert a.values.shape == (1, 5)
    # negative cases: a 2-D batch that mixes its rows, a 2-D model returning a bad shape
    mixing = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4, track_running_stats=False),
                                 torch.nn.Linear(4, 2)).double().eval()
    with pytest.raises(ModelOutputError, match="changes with the other rows") as err:
        tribute.explain(mixing, x, method="saliency", target=0, progress=False)
    assert "X[None]" not in str(err.value)
    with pytest.raises(ModelOutputError, match="returned shape") as err:
        tribute.explain(lambda z: z.sum(), x.numpy(), method="kernel_shap", progress=False)
    assert "X[None]" not in str(err.value)
    # a model that raises on the rows (scikit-learn wants 2-D): the reference pass says it too
    from sklearn.linear_model import LinearRegression

    table = x.numpy()
    reg = LinearRegression().fit(table, table[:, 0])
    with pytest.raises(tribute.errors.InputError, match="failed on the inputs") as ierr:
        tribute.explain(reg, table[0], method="kernel_shap", baseline=0.0, progress=False)
    assert "X[None]" in str(ierr.value) and "5 samples of one number" in str(ierr.value)
    with pytest.raises(tribute.errors.InputError, match="failed on the inputs") as ierr:
        tribute.explain(reg, table[:, :4], method="kernel_shap", baseline=0.0, progress=False)
    assert "X[None]" not in str(ierr.value)
    # a function of scalars on a 1-D input is legitimate and runs
    a = tribute.explain(lambda z: np.tanh(z)[:, None], x[0].numpy(), method="kernel_shap", progress=False)
    assert a.values.shape[0] == 5


@pytest.mark.parametrize("name,points_to", [("gradient_shap", "'expected_gradients'"),
                                            ("DeepLiftShap", "'deeplift' with baseline=tribute.Background"),
                                            ("noise-tunnel", "'smoothgrad'")])
def test_captum_names_point_to_the_method_that_computes_them(name: str, points_to: str) -> None:
    # was: "Did you mean 'metagradient', 'joint_shapley'?" for gradient_shap
    model = _softplus_mlp(3)
    with pytest.raises(tribute.errors.InputError, match=f"method={name!r} is not a registered") as err:
        tribute.explain(model, _x(2, 3), method=name, progress=False)
    assert points_to in str(err.value) and "metagradient" not in str(err.value)
    # other unknown names keep the did-you-mean (negative case)
    with pytest.raises(tribute.errors.InputError, match="Did you mean 'kernel_shap'"):
        tribute.explain(model, _x(2, 3), method="kernelshap", progress=False)
