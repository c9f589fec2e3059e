"""The feature game and the engine: composition, batching, counting, layouts, targets."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import Engine, default_batch_size
from tribute.engine.progress import Progress
from tribute.games import FeatureGame
from tribute.models import as_model
from tribute_testing import make_cnn, make_mlp


def _game(model, x, **kw):
    adapter = as_model(model, "torch" if isinstance(x, torch.Tensor) else "numpy")
    return FeatureGame(adapter, x, **kw)


def test_value_matches_direct_composition(linear_model, tabular):
    g = _game(linear_model, tabular, target=1, baseline=0.5)
    masks = torch.tensor([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [0.5] * 5], dtype=torch.float64)
    v = g.value(masks)
    assert v.shape == (4, 3, 1) and v.dtype == torch.float64
    for k in range(3):
        xk = 0.5 + masks[k] * (tabular - 0.5)
        np.testing.assert_allclose(v[:, k, 0], linear_model(xk)[:, 1].detach(), rtol=1e-12)
    assert g.n_evals == 1 + 3  # v(N) (the reference pass) + 3 coalitions


def test_background_set_is_averaged(linear_model, tabular):
    bg = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    g = _game(linear_model, tabular, target=0, baseline=bg)
    assert g.n_background == 7
    m = torch.tensor([[1, 1, 0, 0, 1.0]])
    v = g.value(m)[:, 0, 0]
    expect = torch.stack([linear_model(b + m[0] * (tabular - b))[:, 0] for b in bg]).mean(0)
    np.testing.assert_allclose(v, expect.detach(), rtol=1e-12)
    assert g.engine.n_rows == 4 + 4 * 7  # reference pass + one coalition x 7 background rows


def test_background_wrapper_when_size_equals_batch(linear_model, tabular):
    per_sample = _game(linear_model, tabular, baseline=tabular * 0)
    bg = _game(linear_model, tabular, baseline=tribute.Background(tabular * 0))
    assert per_sample.inputs[0].base_mode == "per_sample"
    assert bg.inputs[0].base_mode == "background" and bg.n_background == 4


def test_per_sample_baseline(linear_model, tabular):
    base = torch.randn(4, 5, dtype=torch.float64)
    g = _game(linear_model, tabular, target=2, baseline=base)
    v = g.value(torch.zeros(1, 5))[:, 0, 0]
    np.testing.assert_allclose(v, linear_model(base)[:, 2].detach(), rtol=1e-12)


def test_per_sample_masks(linear_model, tabular):
    g = _game(linear_model, tabular, target=0)
    masks = torch.bernoulli(torch.full((4, 6, 5), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    v = g.value(masks)
    for b in range(4):
        np.testing.assert_allclose(v[b, :, 0], linear_model(masks[b] * tabular[b])[:, 0].detach(), rtol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_result_independent_of_batch_size(batch_size):
    cnn = make_cnn()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    ref = tribute.explain(cnn, x, method="feature_ablation", groups=tribute.patches(2), target=1)
    out = tribute.explain(cnn, x, method="feature_ablation", groups=tribute.patches(2), target=1,
                          batch_size=batch_size)
    # a batch of one may take another convolution algorithm: equal up to float64 rounding
    np.testing.assert_allclose(out.values, ref.values, rtol=1e-12, atol=1e-15)
    assert out.n_rows == ref.n_rows == 3 + 3 * 16  # v(N) reuses the reference pass


def test_rows_are_chunked_by_batch_size(linear_model, tabular):
    calls = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return linear_model(x)

    g = _game(Spy(), tabular, batch_size=5)
    g.value(torch.ones(4, 5))
    assert calls[1:] == [5, 5, 5, 1]  # 16 rows after the 4-row reference pass
    assert max(calls) <= 5


def test_mask_gradients_equal_closed_form(linear_model, tabular):
    g = _game(linear_model, tabular, target=[0, 2], baseline=0.25)
    alphas = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    _, grads = g.value_and_grad(alphas[:, None] * torch.ones(1, 5))
    w = linear_model.lin.weight.detach()
    expect = w[[0, 2]][None] * (tabular - 0.25)[:, None, :]  # B x T x n
    for k in range(3):
        np.testing.assert_allclose(grads[:, k], expect, rtol=1e-12)
    _, wsum = g.value_and_grad(alphas[:, None] * torch.ones(1, 5), weights=torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    np.testing.assert_allclose(wsum, expect, rtol=1e-12)


def test_grouped_mask_gradient_sums_group(linear_model, tabular):
    groups = np.array([0, 0, 1, 2, 2])
    g = _game(linear_model, tabular, target=1, groups=groups)
    _, grads = g.value_and_grad(torch.ones(1, 3))
    per_elem = linear_model.lin.weight[1].detach() * tabular
    expect = torch.stack([per_elem[:, :2].sum(1), per_elem[:, 2], per_elem[:, 3:].sum(1)], 1)
    np.testing.assert_allclose(grads[:, 0, 0], expect, rtol=1e-12)


def test_input_gradients_with_powers(linear_model, tabular):
    g = _game(linear_model, tabular, target=1)
    vals, acc = g.input_gradients(2, lambda xs, b, k: (xs[0] * (1 + k[:, None].double()),), powers=(1, 2))
    w = linear_model.lin.weight[1].detach()
    np.testing.assert_allclose(acc[1][:, 0], w.expand(4, 5), rtol=1e-12)
    np.testing.assert_allclose(acc[2][:, 0], (w**2).expand(4, 5), rtol=1e-12)
    assert vals.shape == (4, 2, 1)


def test_integer_inputs_take_baseline_token():
    class Bag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 1)
            with torch.no_grad():
                self.emb.weight.copy_(torch.arange(10.0)[:, None])

        def forward(self, ids):
            return self.emb(ids).sum(1)

    ids = torch.tensor([[3, 5, 7]])
    a = tribute.explain(Bag(), ids, method="exact_shapley", baseline=0)
    np.testing.assert_allclose(a.values.numpy(), [[3.0, 5.0, 7.0]], rtol=1e-6)
    assert a.values.dtype == torch.float32
    with pytest.raises(tribute.UnsupportedModelError, match="integer inputs"):
        tribute.explain(Bag(), ids, method="input_x_gradient")


def test_multi_input_and_forward_args():
    class Two(torch.nn.Module):
        def forward(self, a, b, scale):
            return (a.sum(1) * 2 + b.sum((1, 2)) * scale)[:, None]

    a = torch.randn(3, 2, dtype=torch.float64)
    b = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    attr = tribute.explain(Two(), (a, b), method="feature_ablation", forward_args=(scale,))
    assert isinstance(attr.values, tuple) and attr.values[0].shape == (3, 2) and attr.values[1].shape == (3, 2, 2)
    np.testing.assert_allclose(attr.values[0], 2 * a, rtol=1e-12)
    np.testing.assert_allclose(attr.values[1], b * scale[:, None, None], rtol=1e-12)
    assert attr.player_names[0] == "input0[0]" and attr.player_names[2] == "input1[0,0]"


def test_multi_input_groups_span_inputs():
    class Two(torch.nn.Module):
        def forward(self, a, b):
            return (a.sum(1) + 10 * b.sum(1))[:, None]

    a, b = torch.ones(2, 2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    attr = tribute.explain(Two(), (a, b), method="exact_shapley",
                           groups=(np.array([0, 1]), np.array([1, 2, 2])))
    np.testing.assert_allclose(attr.values, [[1.0, 11.0, 20.0]] * 2, rtol=1e-12)


def test_numpy_in_numpy_out_and_sklearn():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.0, 3.0])
    reg = LinearRegression().fit(X, y)
    attr = tribute.explain(reg, X[:3], method="exact_shapley", baseline=X.mean(0))
    assert isinstance(attr.values, np.ndarray) and attr.values.dtype == np.float32
    np.testing.assert_allclose(attr.values, reg.coef_ * (X[:3] - X.mean(0)), rtol=1e-4, atol=1e-5)
    assert attr.gap is not None and np.abs(attr.gap).max() < 1e-4


def test_predicted_target_and_output_transforms():
    mlp = make_mlp(6, 3)
    x = torch.randn(5, 6, dtype=torch.float64)
    attr = tribute.explain(mlp, x, method="feature_ablation", output="prob")
    np.testing.assert_array_equal(attr.targets, mlp(x).argmax(1).numpy())
    probs = torch.softmax(mlp(x), 1).detach()
    full = tribute.explain(mlp, x, method="exact_shapley", output="prob", groups=np.array([0, 0, 0, 1, 1, 1]))
    sel = probs[torch.arange(5), mlp(x).argmax(1)]
    np.testing.assert_allclose(full.values.sum(1) + torch.tensor(full.extra["v_empty"][:, 0]), sel, rtol=1e-10)


def test_callable_target():
    mlp = make_mlp(6, 3)
    x = torch.randn(2, 6, dtype=torch.float64)
    attr = tribute.explain(mlp, x, method="feature_ablation", target=lambda out: out[:, 0] - out[:, 1])
    ref0 = tribute.explain(mlp, x, method="feature_ablation", target=0)
    ref1 = tribute.explain(mlp, x, method="feature_ablation", target=1)
    np.testing.assert_allclose(attr.values, ref0.values - ref1.values, rtol=1e-10, atol=1e-12)
    assert attr.targets is None


def test_per_sample_and_multi_targets():
    mlp = make_mlp(6, 3)
    x = torch.randn(3, 6, dtype=torch.float64)
    per = tribute.explain(mlp, x, method="feature_ablation", target=np.array([2, 0, 1]))
    multi = tribute.explain(mlp, x, method="feature_ablation", target=[0, 1, 2])
    assert multi.values.shape == (3, 3, 6)
    for i, t in enumerate([2, 0, 1]):
        np.testing.assert_allclose(per.values[i], multi.values[i, t], rtol=1e-12)


def test_default_batch_size_bounds():
    assert default_batch_size(4096, grad=False) == 4096
    assert default_batch_size(10**9, grad=False) == 16
    assert default_batch_size(4, grad=False, n_params=10**7) == 256


def test_engine_rejects_bad_batch_size(linear_model):
    with pytest.raises(tribute.InputError, match="batch_size=0"):
        Engine(as_model(linear_model, "torch"), batch_size=0)


def test_progress_bar_draws_when_enabled():
    s = io.StringIO()
    p = Progress(10, "demo", enabled=True, stream=s)
    p.update(4)
    p.update(6)
    p.close()
    assert "demo" in s.getvalue() and "10/10" in s.getvalue()
    quiet = io.StringIO()
    q = Progress(10, "demo", enabled=None, stream=quiet)  # not a terminal
    q.update(10)
    q.close()
    assert quiet.getvalue() == ""


def test_model_restored_after_success():
    mlp = make_mlp(6, 3)
    mlp.train()
    x = torch.randn(2, 6, dtype=torch.float64)
    tribute.explain(mlp, x, method="input_x_gradient")
    assert mlp.training and all(p.requires_grad for p in mlp.parameters())
    assert all(p.grad is None for p in mlp.parameters())


def test_dropout_is_off_during_attribution():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.9), torch.nn.Linear(4, 1)).double()
    m.train()
    x = torch.randn(3, 4, dtype=torch.float64)
    a = tribute.explain(m, x, method="feature_ablation")
    b = tribute.explain(m, x, method="feature_ablation")
    np.testing.assert_array_equal(a.values, b.values)
    assert m.training


def test_parameter_free_callable_follows_input_device():
    x = torch.randn(2, 3, dtype=torch.float64)
    attr = tribute.explain(lambda t: (t**2).sum(1, keepdim=True), x, method="feature_ablation")
    np.testing.assert_allclose(attr.values, x**2, rtol=1e-12)




@pytest.mark.parametrize("masks_kind", ["shared", "per_sample"])
def test_per_sample_groups_value_matches_direct(linear_model, tabular, masks_kind):
    groups = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 0, 0, 0]] * 2)
    g = _game(linear_model, tabular, target=0, groups=groups, baseline=0.5)
    masks = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]], dtype=torch.float64)
    m = masks if masks_kind == "shared" else masks.expand(4, 3, 2).clone()
    v = g.value(m)
    for b in range(4):
        for k in range(3):
            elem = masks[k][groups[b]]
            xk = 0.5 + elem * (tabular[b] - 0.5)
            np.testing.assert_allclose(v[b, k, 0], linear_model(xk[None])[0, 0].detach(), rtol=1e-12)
    assert g.empty().shape == (4, 1)


class _TwoInputNet(torch.nn.Module):
    """A nonlinear model of two inputs (``batch x 4`` and ``batch x 2 x 3``), 3 outputs."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.wa = torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))
        self.wb = torch.nn.Parameter(torch.randn(6, 3, generator=g, dtype=torch.float64))

    def forward(self, a, b):
        return torch.tanh(a @ self.wa + b.reshape(b.shape[0], -1) @ self.wb) + a[:, :3] ** 2


class _OneInputNet(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(6)
        self.w = torch.nn.Parameter(torch.randn(d, 3, generator=g, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x @ self.w) * x[:, :3]


def _background_case(case):
    """(model, inputs, baselines per input, element masks of a coalition per input, players)."""
    g = torch.Generator().manual_seed(7)
    x: tuple[torch.Tensor, ...]
    bases: tuple[torch.Tensor, ...]
    if case in ("dense", "groups"):
        x = (torch.randn(3, 6, generator=g, dtype=torch.float64),)
        bases = (torch.randn(7, 6, generator=g, dtype=torch.float64),)
        if case == "dense":
            return _OneInputNet(6), x, bases, None, lambda m: (m,), 6
        groups = torch.tensor([0, 0, 1, 2, 2, 1])
        return _OneInputNet(6), x, bases, groups, lambda m: (m[groups],), 3
    x = (torch.randn(3, 4, generator=g, dtype=torch.float64),
         torch.randn(3, 2, 3, generator=g, dtype=torch.float64))
    bases = (torch.randn(7, 4, generator=g, dtype=torch.float64),
             torch.randn(7, 2, 3, generator=g, dtype=torch.float64))
    if case == "mixed":  # a background set for one input, one baseline for the other
        bases = (bases[0], torch.full((1, 2, 3), 0.25, dtype=torch.float64))
    return _TwoInputNet(), x, bases, None, lambda m: (m[:4], m[4:].reshape(2, 3)), 10


def _direct_background_values(model, x, bases, elem, masks, weights, cols):
    """``batch x K x targets``: every row composed by hand, the model run row by row, the
    weighted mean over the background rows."""
    n_bg = max(b.shape[0] for b in bases)
    out = torch.zeros(x[0].shape[0], masks.shape[0], len(cols), dtype=torch.float64)
    for b in range(x[0].shape[0]):
        for k in range(masks.shape[0]):
            em = elem(masks[k])
            for j in range(n_bg):
                rows = tuple((base[j] if base.shape[0] > 1 else base[0]) + e * (xi[b] - (
                    base[j] if base.shape[0] > 1 else base[0]))
                    for xi, base, e in zip(x, bases, em))
                with torch.no_grad():
                    y = model(*(r[None] for r in rows))[0]
                out[b, k] += weights[j] * y[cols]
    return out


@pytest.mark.parametrize("case", ["dense", "groups", "two_inputs", "mixed"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 50, 51, 1000])
def test_background_shared_masks_match_direct_composition(case, weighted, batch_size):
    # shared masks with a background set go through the broadcast path (_compose_background,
    # _sink_background): any chunk bounds, weights, several targets and inputs, 1-D groups
    if weighted and case == "mixed":
        pytest.skip("a weighted Background makes every input's baseline a set")
    model, x, bases, groups, elem, n = _background_case(case)
    w = torch.tensor([3.0, 1, 1, 2, 5, 1, 4], dtype=torch.float64) if weighted else None
    data = bases if len(bases) > 1 else bases[0]
    baseline = tribute.Background(data, weights=w) if weighted else data
    game = FeatureGame(as_model(model, "torch"), x if len(x) > 1 else x[0], target=[0, 2],
                       baseline=baseline, groups=groups, batch_size=batch_size)
    assert game.n_background == 7
    gm = torch.Generator().manual_seed(8)
    masks = (torch.rand(5, n, generator=gm) > 0.5).double()
    masks[2] = torch.rand(n, generator=gm, dtype=torch.float64)  # fractional
    v = game.value(masks)
    weights = w / w.sum() if w is not None else torch.full((7,), 1 / 7, dtype=torch.float64)
    expect = _direct_background_values(model, x, bases, elem, masks, weights, [0, 2])
    assert v.shape == expect.shape
    torch.testing.assert_close(v, expect, rtol=1e-13, atol=1e-14)
    # the per-sample-mask path (row by row gathers, per-row index_add_) gives the same values
    v_rows = game.value(masks[None].expand(3, -1, -1).clone())
    torch.testing.assert_close(v, v_rows, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("batch_size", [1, 7, 50, 51, 1000])
def test_background_feature_ablation_matches_direct(batch_size):
    model, x, bases, _, elem, n = _background_case("dense")
    attr = tribute.explain(model, x[0], method="feature_ablation", target=[0, 2],
                           baseline=bases[0], batch_size=batch_size)
    masks = 1 - torch.eye(n, dtype=torch.float64)
    weights = torch.full((7,), 1 / 7, dtype=torch.float64)
    held_out = _direct_background_values(model, x, bases, elem, masks, weights, [0, 2])
    with torch.no_grad():
        full = model(x[0])[:, [0, 2]]
    expect = full[:, :, None] - held_out.permute(0, 2, 1)  # batch x targets x players
    np.testing.assert_allclose(np.asarray(attr.values), expect.numpy(), rtol=1e-12, atol=1e-14)


def test_background_shared_masks_with_per_row_forward_args():
    # forward arguments per sample: rows are built chunk by chunk (no blocks), and each row's
    # argument is its sample's
    class Scaled(torch.nn.Module):
        def forward(self, x, scale):
            return torch.tanh(x * scale[:, None]).sum(1, keepdim=True)

    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    bg = torch.randn(5, 4, generator=g, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    masks = (torch.rand(6, 4, generator=g) > 0.5).double()
    for bs in (1, 4, 13, 1000):
        game = FeatureGame(as_model(Scaled(), "torch"), x, target=0, baseline=bg,
                           forward_args=(scale,), batch_size=bs)
        v = game.value(masks)[..., 0]
        comp = bg[None, None] + masks[None, :, None] * (x[:, None, None] - bg[None, None])
        expect = torch.tanh(comp * scale[:, None, None, None]).sum(-1).mean(-1)
        torch.testing.assert_close(v, expect, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("batch_size", [None, 7, 50])
def test_background_numpy_model_matches_direct(batch_size):
    # a numpy model (scikit-learn) with a weighted background set, one target
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x_train = rng.normal(size=(60, 4))
    clf = LogisticRegression().fit(x_train, (x_train[:, 0] + x_train[:, 1] ** 2 > 1).astype(int))
    xs, bg, w = x_train[:5], x_train[10:16], rng.uniform(0.5, 2.0, size=6)
    game = FeatureGame(as_model(clf, "numpy"), xs, target=1, output="prob",
                       baseline=tribute.Background(bg, weights=w), batch_size=batch_size)
    masks = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0.3, 1, 0.6, 0], [1, 1, 1, 1.0]])
    v = game.value(masks)[..., 0].numpy()
    comp = bg[None, None] + masks[None, :, None] * (xs[:, None, None] - bg[None, None])
    p = clf.predict_proba(comp.reshape(-1, 4))[:, 1].reshape(5, 4, 6)
    np.testing.assert_allclose(v, p @ (w / w.sum()), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", ["int_ids", "groups_2d", "per_sample_masks"])
@pytest.mark.parametrize("batch_size", [1, 7, 50, 1000])
def test_background_gathered_paths_match_direct(case, batch_size):
    # the paths that gather rows one by one with a background set (integer ids, a group mask
    # per sample, masks per sample) share the grouped sink: weighted means as by hand
    g = torch.Generator().manual_seed(11)
    w = torch.tensor([2.0, 1.0, 4.0, 3.0, 1.0], dtype=torch.float64)
    if case == "int_ids":
        emb = torch.nn.Embedding(10, 2).double()
        table = emb.weight.detach()

        def bag(ids):
            return torch.tanh(emb(ids).sum(1))

        x = torch.randint(0, 10, (3, 4), generator=g)
        bg = torch.randint(0, 10, (5, 4), generator=g)
        game = FeatureGame(as_model(bag, "torch"), x, target=[0, 1],
                           baseline=tribute.Background(bg, weights=w), batch_size=batch_size)
        masks = (torch.rand(6, 4, generator=g) > 0.5).double()
        v = game.value(masks)
        keep = masks[None, :, None].bool()  # 1 x K x 1 x 4
        ids = torch.where(keep, x[:, None, None], bg[None, None])  # batch x K x M x 4
        expect = (torch.tanh(table[ids].sum(-2)) * (w / w.sum())[:, None]).sum(2)
    else:
        model = _OneInputNet(6)
        x = torch.randn(3, 6, generator=g, dtype=torch.float64)
        bg = torch.randn(5, 6, generator=g, dtype=torch.float64)
        if case == "groups_2d":
            groups = torch.tensor([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0], [0, 1, 2, 0, 1, 2]])
        else:
            groups = torch.tensor([0, 0, 1, 1, 2, 2])
        game = FeatureGame(as_model(model, "torch"), x, target=[0, 2], groups=groups,
                           baseline=tribute.Background(bg, weights=w), batch_size=batch_size)
        masks = torch.rand(3, 6, 3, generator=g, dtype=torch.float64)  # batch x K x players
        v = game.value(masks if case == "per_sample_masks" else masks[0])
        if case == "groups_2d":
            elem = masks[0][:, groups].permute(1, 0, 2)  # batch x K x 6
        else:
            elem = masks[:, :, groups]
        comp = bg[None, None] + elem[:, :, None] * (x[:, None, None] - bg[None, None])
        with torch.no_grad():
            y = model(comp.reshape(-1, 6)).reshape(3, 6, 5, 3)[..., [0, 2]]
        expect = (y * (w / w.sum())[:, None]).sum(2)
    torch.testing.assert_close(v, expect.to(v.dtype), rtol=1e-13, atol=1e-14)


def test_background_sums_do_not_depend_on_the_batch_size(monkeypatch):
    """Each (sample, coalition) sums its background rows in background order, continuing across
    chunks: the same bits whatever the batch size (the tuner picks it by timing, so a sum that
    rounded differently when a pair straddled two chunks made results depend on the machine)."""
    from tribute.engine import core

    monkeypatch.setattr(core, "BLOCK_BYTES", 1)  # one chunk per block: the sink sees every chunk
    rng = np.random.default_rng(3)
    w = rng.normal(size=5)

    def f(z):
        z = np.asarray(z, dtype=np.float64)
        s = (z * w).sum(1)  # elementwise: the same bits whatever the rows per call (a BLAS
        # product may round differently with the number of rows)
        return np.tanh(s)[:, None] * np.array([1.0, -0.3]) + 1e-3 * z[:, :2]

    x, bg = rng.normal(size=(3, 5)), rng.normal(size=(37, 5)) * 10.0 ** rng.integers(-3, 3, (37, 1))
    weights = rng.random(37)
    masks = torch.from_numpy((rng.random((11, 5)) > 0.5).astype(np.float64))
    ref = None
    for bs in (1, 3, 7, 8, 50, 64, 10_000):
        game = FeatureGame(as_model(f, "numpy"), x, target=[0, 1],
                           baseline=tribute.Background(bg, weights=weights), batch_size=bs)
        v = game.value(masks).numpy()
        if ref is None:
            ref = v
            # the direct sum, in background order, of value x normalised weight
            wn = weights / weights.sum()
            direct = np.zeros_like(v)
            for b in range(3):
                for k in range(11):
                    rows = np.where(masks[k].numpy() > 0.5, x[b], bg)
                    acc = np.zeros(2)
                    for j, val in enumerate(f(rows)):
                        acc = acc + val * wn[j]
                    direct[b, k] = acc
            np.testing.assert_allclose(v, direct, rtol=1e-12, atol=1e-15)
        assert np.array_equal(v, ref), bs
