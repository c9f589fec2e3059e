"""The game's public, counted way in: value streaming, probe, with_inputs, compose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.games import FeatureGame
from tribute.games.features import ProbeChunk
from tribute.models import as_model
from tribute_testing import make_cnn, make_mlp


def _game(model, x, **kw):
    return FeatureGame(as_model(model, "torch"), x, **kw)


def _hooks(model: torch.nn.Module) -> list[tuple[int, int, int]]:
    return [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()]


# ------------------------------------------------------------------ streaming
def test_value_stream_blocks_equal_one_call_and_count_the_same(linear_model, tabular):
    g1 = _game(linear_model, tabular, target=[0, 2], baseline=0.3)
    g2 = _game(linear_model, tabular, target=[0, 2], baseline=0.3)
    masks = (torch.rand(37, 5, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    whole = g1.value(masks)
    blocks = list(g2.value_stream(37, lambda lo, hi: masks[lo:hi], max_elements=5 * 4))
    assert [(b.start, b.stop) for b in blocks][:2] == [(0, 4), (4, 8)] and blocks[-1].stop == 37
    np.testing.assert_array_equal(torch.cat([b.values for b in blocks], 1).numpy(), whole.numpy())
    assert all(torch.equal(b.masks, masks[b.start : b.stop]) for b in blocks)
    # eng46: 37 draws of 5 players repeat coalitions; one call evaluates each distinct one once
    # (counted by hand), blocks of 4 coalitions (<= 5 players: no repeat searched) every one
    distinct = len({tuple(r) for r in masks.tolist()})
    assert distinct < 37
    assert g1.n_evals == 1 + distinct and g2.n_evals == 1 + 37  # v(N) (the reference pass) + ...
    g3 = _game(linear_model, tabular, target=[0, 2], baseline=0.3)
    np.testing.assert_array_equal(g3.value(masks, max_elements=11).numpy(), whole.numpy())
    assert g3.n_evals == 1 + distinct


def test_value_stream_per_sample_masks_and_block_size(linear_model, tabular):
    g = _game(linear_model, tabular, target=1)
    per = torch.rand(4, 9, 5, generator=torch.Generator().manual_seed(1)).round().double()
    assert g.block_items(per_sample=True, max_elements=40) == 2  # 4 samples x 5 players each
    assert g.block_items(3, max_elements=40) == 2  # 3 coalitions x 5 players per item
    out = torch.cat([b.values for b in g.value_stream(9, lambda lo, hi: per[:, lo:hi],
                                                      per_sample=True, max_elements=40)], 1)
    np.testing.assert_array_equal(out.numpy(), g.value(per).numpy())
    with pytest.raises(InputError, match="max_elements=0"):
        g.block_items(max_elements=0)


# ---------------------------------------------------------------------- probe
def test_probe_captures_module_activation_and_gradient_and_counts():
    model = make_mlp()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = _game(model, x, target=[0, 1])
    rows0 = g.engine.n_rows
    seen: list[ProbeChunk] = []
    g.probe(seen.append, modules=["2"], grad="modules")
    act = torch.cat([c.activations["2"] for c in seen])
    grad = torch.cat([c.grads[0] for c in seen])  # 5 x T x 16
    with torch.no_grad():
        h = model[1](model[0](x))
        expect_act = model[2](h)
    np.testing.assert_allclose(act.numpy(), expect_act.numpy(), rtol=1e-12)
    # dS_t/dA = W3^T (relu'(A)) ... check against autograd directly
    a = expect_act.clone().requires_grad_(True)
    out = model[4](model[3](a))
    for t in range(2):
        (gt,) = torch.autograd.grad(out[:, t].sum(), a, retain_graph=True)
        np.testing.assert_allclose(grad[:, t].numpy(), gt.numpy(), rtol=1e-12)
    assert g.n_evals == 1 + 1 and g.engine.n_rows == rows0 + 5  # v(N) + the probe
    assert all(h == (0, 0, 0) for h in _hooks(model))
    np.testing.assert_allclose(torch.cat([c.values for c in seen]).numpy(),
                               model(x)[:, :2].detach().numpy(), rtol=1e-12)


def test_probe_points_inputs_gradients_and_rows_per_point():
    model = make_mlp()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    g = _game(model, x, target=2)
    g.full()  # the reference pass (eng41: it runs when v(N) is first read, here before the probe)
    rows0 = g.engine.n_rows
    vals = torch.zeros(3, 4, dtype=torch.float64)
    grads = torch.zeros(3, 4, 6, dtype=torch.float64)

    def points(xs, b, k):
        return (xs[0] * (k[:, None] + 1) / 4,)

    def keep(c: ProbeChunk) -> None:
        vals[c.sample, c.point] = c.values[:, 0]
        grads[c.sample, c.point] = c.grads[0][:, 0]

    g.probe(keep, n_points=4, make_points=points, grad="inputs", evals=7)
    for k in range(4):
        xk = (x * (k + 1) / 4).clone().requires_grad_(True)
        out = model(xk)[:, 2]
        (gk,) = torch.autograd.grad(out.sum(), xk)
        np.testing.assert_allclose(vals[:, k].numpy(), out.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grads[:, k].numpy(), gk.numpy(), rtol=1e-12)
    assert g.n_evals == 1 + 7 and g.engine.n_rows == rows0 + 12  # v(N) + 7 points


def test_probe_removes_hooks_after_errors_and_checks_its_arguments():
    model = make_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    g = _game(model, x, target=0)

    def refuse(path, mod, out):
        raise UnsupportedModelError(f"no {path}")

    with pytest.raises(UnsupportedModelError, match="no 0"):
        g.probe(lambda c: None, modules=["0"], check_module=refuse, grad="modules")
    assert all(h == (0, 0, 0) for h in _hooks(model))
    with pytest.raises(UnsupportedModelError, match="not a module"):
        g.probe(lambda c: None, modules=["nope"])
    class WithSpare(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.spare = model, torch.nn.Linear(1, 1).double()

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.net(z)

    with pytest.raises(UnsupportedModelError, match="not called"):
        _game(WithSpare(), x, target=0).probe(lambda c: None, modules=["spare"])
    # with gradients too (before: the engine's internal "gradient run without leaves")
    spare = WithSpare()
    with pytest.raises(UnsupportedModelError, match="layer 'spare' was not called during the forward"):
        _game(spare, x, target=0).probe(lambda c: None, modules=["spare"], grad="modules")
    assert all(h == (0, 0, 0) for h in _hooks(spare))
    with pytest.raises(InputError, match="grad="):
        g.probe(lambda c: None, grad="weights")
    assert all(h == (0, 0, 0) for h in _hooks(model))


# ---------------------------------------------------------------- with_inputs
def test_with_inputs_matches_a_fresh_game_and_reports_evaluations():
    model = make_mlp()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    base = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    g = _game(model, x, target=torch.tensor([0, 2, 1]), baseline=base)
    parent = torch.tensor([0, 0, 1, 1, 2, 2])
    new_x = x[parent] + 0.1 * torch.arange(6, dtype=torch.float64)[:, None]
    view = g.with_inputs([new_x], parent=parent)
    fresh = _game(model, new_x, target=torch.tensor([0, 2, 1])[parent], baseline=base[parent])
    masks = torch.tensor([[1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0.5]], dtype=torch.float64)
    rows0 = g.engine.n_rows
    np.testing.assert_allclose(view.value(masks).numpy(), fresh.value(masks).numpy(), rtol=1e-12)
    assert view.n_evals == 2 and g.n_evals == 1 + 4  # v(N) + two copies per parent sample
    assert g.engine.n_rows == rows0 + 12 and view.engine is g.engine
    with pytest.raises(InputError, match="parent"):
        g.with_inputs([new_x], parent=torch.tensor([0, 0, 1, 1, 2, 5]))
    with pytest.raises(InputError, match="same number"):
        g.with_inputs([new_x], parent=torch.tensor([0, 0, 0, 1, 1, 2]))


def test_compose_and_element_masks_are_the_documented_relaxation(linear_model, tabular):
    groups = torch.tensor([0, 0, 1, 2, 2])
    g = _game(linear_model, tabular, baseline=0.25, groups=groups)
    m = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]])
    b = torch.tensor([3, 1])
    (rows,) = g.compose(m, b)
    e = m[:, groups]
    np.testing.assert_allclose(rows.numpy(), (0.25 + e * (tabular[b] - 0.25)).numpy(), rtol=1e-14)
    (elem,) = g.element_masks(m, b)
    np.testing.assert_array_equal(elem.numpy(), e.numpy())


def test_noise_wrappers_run_through_with_inputs():
    model, x = make_mlp(), torch.randn(2, 6, dtype=torch.float64)
    attr = tribute.explain(model, x, "smoothgrad", target=0, base="input_x_gradient", n_samples=3)
    assert attr.n_evals == 1 + 3 and attr.n_rows == 2 + 2 * 3  # reference pass (v(N)) + one row per copy
