"""Metrics that re-explain: sensitivity, stability, randomisation sanity checks."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics import evaluate
from tribute.metrics.randomisation import parameter_layers
from tribute.metrics.robustness import perturb_inputs


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 36, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4),
    ).double()


def _x(b: int = 5) -> torch.Tensor:
    return torch.rand(b, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_sensitivity_hand_computed_on_linear_model(linear):
    model, x, w = linear
    attr = tribute.explain(model, x, method="input_x_gradient")  # phi = w * x
    calls = []

    def explain(inputs, target=None):
        calls.append(inputs.shape[0])
        return tribute.explain(model, inputs, method="input_x_gradient", target=target)

    r = evaluate(model, x, attr, metric="max_sensitivity", explain=explain, radius=0.1,
                 n_samples=7, seed=4)
    # a callable without a ``sample`` parameter is called once per draw with the batch in its
    # own order (small39: a per-sample baseline it held did not line up with stacked rows)
    assert calls == [6] * 7
    calls.clear()

    def explain_rows(inputs, target=None, sample=None):
        calls.append(inputs.shape[0])
        return tribute.explain(model, inputs, method="input_x_gradient", target=target)

    r1 = evaluate(model, x, attr, metric="max_sensitivity", explain=explain_rows, radius=0.1,
                  n_samples=7, seed=4)
    assert calls == [7 * 6]  # told the samples: all draws of all samples in ONE explain call
    np.testing.assert_allclose(r1.scores, r.scores, rtol=1e-12)
    stacked, sample = perturb_inputs(x, 0.1, 7, 4)
    noise = (stacked - x[torch.as_tensor(sample)]).reshape(7, 6, 12)
    assert float(noise.abs().max()) <= 0.1
    torch.testing.assert_close(noise[:, 0], noise[:, 3])  # same draw for every sample
    rel = (torch.linalg.norm(w * noise, dim=-1) / torch.linalg.norm(w * x, dim=-1)).numpy()
    np.testing.assert_allclose(r.scores, rel.max(0), rtol=1e-10)
    a = evaluate(model, x, attr, metric="avg_sensitivity", radius=0.1, n_samples=7, seed=4)
    np.testing.assert_allclose(a.scores, rel.mean(0), rtol=1e-10)  # default explain callable
    assert r.extra["per_draw"].shape == (6, 7)


def test_sensitivity_zero_for_constant_gradient_and_batch_invariant():
    w = torch.randn(1, 6, 6, dtype=torch.float64)
    model = lambda z: (z * w).sum(dim=(1, 2, 3))  # noqa: E731
    x = _x()
    sal = tribute.explain(model, x, method="saliency")
    np.testing.assert_allclose(evaluate(model, x, sal, metric="max_sensitivity").scores, 0.0,
                               atol=1e-12)
    net = _net()
    sal = tribute.explain(net, x, method="saliency")
    whole = evaluate(net, x, sal, metric="max_sensitivity")
    one = evaluate(net, x[2:3], tribute.explain(net, x[2:3], method="saliency"),
                   metric="max_sensitivity")
    assert whole.scores[2] == pytest.approx(one.scores[0], rel=1e-6)
    assert np.all(whole.scores > 0)


def test_sensitivity_keeps_original_targets():
    net = _net()
    x = _x(3)
    attr = tribute.explain(net, x, method="saliency", target=2)
    seen = []

    def explain(inputs, target=None, sample=None):
        seen.append((np.asarray(target).copy(), sample.copy()))
        return tribute.explain(net, inputs, method="saliency", target=target)

    evaluate(net, x, attr, metric="avg_sensitivity", explain=explain, n_samples=4)
    tg, sample = seen[0]
    assert np.all(tg == 2) and list(sample) == [0, 1, 2] * 4


def test_stability_deterministic_and_random_methods():
    net = _net()
    x = _x(4)
    sal = tribute.explain(net, x, method="saliency")
    np.testing.assert_allclose(evaluate(net, x, sal, metric="stability").scores, 1.0)

    def noisy(inputs, seed=0, target=None):
        a = tribute.explain(net, inputs, method="saliency", target=target)
        a.values = torch.randn(a.values.shape, generator=torch.Generator().manual_seed(seed),
                               dtype=torch.float64)
        return a

    r = evaluate(net, x, sal, metric="stability", explain=noisy, seeds=list(range(6)))
    assert abs(r.mean) < 0.15 and r.extra["pairwise"].shape == (4, 15)
    grid = [{"absolute": False}, {"absolute": True}]
    g = evaluate(net, x, sal, metric="stability", param_grid=grid, absolute=True)
    np.testing.assert_allclose(g.scores, 1.0)  # |grad| ranks the same as |(|grad|)|
    with pytest.raises(InputError, match="seed"):
        evaluate(net, x, sal, metric="stability", explain=lambda inputs: sal)
    s = evaluate(net, x, sal, metric="stability", similarity="ssim", seeds=(0, 1))
    np.testing.assert_allclose(s.scores, 1.0)


def _snapshot(m: torch.nn.Module):
    return ({k: v.clone() for k, v in m.state_dict().items()},
            [mod.training for mod in m.modules()],
            [p.requires_grad for p in m.parameters()],
            [(len(mod._forward_hooks), len(mod._forward_pre_hooks), len(mod._backward_hooks))
             for mod in m.modules()])


def _same(a, b) -> bool:
    return (a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
            and a[1:] == b[1:])


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_model_randomisation_leaves_model_untouched(mode):
    net = _net()
    net.train()  # a non-default state that must survive
    net[0].weight.requires_grad_(False)
    x = _x(4)
    attr = tribute.explain(net, x, method="saliency")
    before = _snapshot(net)
    r = evaluate(net, x, attr, metric="model_randomisation", mode=mode)
    assert _same(before, _snapshot(net))
    assert r.extra["layers"] == ["5", "3", "0"] == parameter_layers(net)[::-1]
    assert r.extra["per_layer"].shape == (3, 4)
    assert np.all(r.scores < 0.9)
    calls = []

    def failing(model, inputs, target=None):
        calls.append(model)
        assert model is not net
        if len(calls) == 2:
            raise RuntimeError("boom")
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0)  # vandalise the copy
        model.register_forward_hook(lambda *a: None)
        return tribute.explain(model, inputs, method="saliency", target=target)

    with pytest.raises(RuntimeError, match="boom"):
        evaluate(net, x, attr, metric="model_randomisation", explain=failing, mode=mode)
    assert _same(before, _snapshot(net))


def test_model_randomisation_modes_and_model_independent_method():
    net = _net()
    x = _x(3)
    attr = tribute.explain(net, x, method="saliency")
    cas = evaluate(net, x, attr, metric="model_randomisation", mode="cascading")
    ind = evaluate(net, x, attr, metric="model_randomisation", mode="independent")
    # the first (top) step randomises the same layer with the same weights in both modes
    np.testing.assert_allclose(cas.extra["per_layer"][0], ind.extra["per_layer"][0])

    def edges(model, inputs, target=None):  # ignores the model entirely
        a = tribute.explain(model, inputs, method="saliency", target=target)
        a.values = inputs.clone()
        return a

    fixed = tribute.explain(net, x, method="saliency")
    fixed.values = x.clone()
    ig = evaluate(net, x, fixed, metric="model_randomisation", explain=edges, layers=["0", "5"])
    np.testing.assert_allclose(ig.scores, 1.0)  # caught: the explanation never changes
    assert ig.extra["layers"] == ["5", "0"]
    with pytest.raises(InputError, match="choose from"):
        evaluate(net, x, attr, metric="model_randomisation", layers=["nope"])


def test_random_logit_hand_computed():
    w = torch.tensor([[1.0, 2, 3, 4], [4, 3, 2, 1], [1, 1, 2, 2]], dtype=torch.float64)
    model = torch.nn.Linear(4, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.rand(2, 4, dtype=torch.float64) + 1
    attr = tribute.explain(model, x, method="saliency", target=0)  # gradient = w[0]
    r = evaluate(model, x, attr, metric="random_logit", seed=0)
    other = r.extra["other_class"]
    assert np.all(other != 0) and other[0] == other[1]
    expected = {1: -1.0, 2: np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3.5, 3.5])[0, 1]}[int(other[0])]
    np.testing.assert_allclose(r.scores, expected, atol=1e-12)
    with pytest.raises(InputError, match="target"):
        evaluate(model, x, attr, metric="random_logit", explain=lambda inputs: attr)


def test_model_randomisation_rejects_numpy_models():
    xs = np.random.default_rng(0).random((3, 4))
    attr = tribute.explain(lambda z: z.sum(1), xs, method="feature_ablation")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        evaluate(lambda z: z.sum(1), xs, attr, metric="model_randomisation")


class _LabelledLinear:
    """A classifier with ``classes_ = [1, 2, 3]`` (labels, not columns) and linear logits."""

    classes_ = np.array([1, 2, 3])

    def __init__(self) -> None:
        self.w = np.array([[1.0, 2, 3, 4], [4, 3, -2, 1], [-1, 1, 2, -2]])

    def decision_function(self, x):
        return np.asarray(x, dtype=np.float64) @ self.w.T

    def predict(self, x):
        return self.classes_[self.decision_function(x).argmax(1)]


def test_reexplaining_metrics_keep_the_class_of_a_labelled_classifier():
    # attr.targets are output columns; the default explain callable must not hand them to
    # explain as labels (column 1 read as label 1 is column 0: another class)
    import scipy.stats

    clf = _LabelledLinear()
    x = np.array([[2.0, 1.0, -1.0, 0.5], [1.5, 2.0, -0.5, 0.2], [3.0, 0.5, -1.0, 1.0]])
    attr = tribute.explain(clf, x, method="feature_ablation", target="predicted", baseline=0.0)
    cols = np.asarray(attr.targets)
    assert list(cols) == [1, 1, 1]  # every row: column 1 (label 2)
    np.testing.assert_allclose(attr.values, clf.w[cols] * x, atol=1e-12)  # closed form
    for metric in ("avg_sensitivity", "max_sensitivity"):  # linear: phi(x + e) - phi(x) = w e
        r = evaluate(clf, x, attr, metric=metric, radius=1e-9, n_samples=2, baseline=0.0)
        np.testing.assert_allclose(r.scores, 0.0, atol=1e-6)
    for seed in range(3):
        r = evaluate(clf, x, attr, metric="random_logit", seed=seed, baseline=0.0)
        other = np.asarray(r.extra["other_class"])
        assert np.all(other != cols)
        expected = [scipy.stats.spearmanr(np.abs(clf.w[1] * row), np.abs(clf.w[o] * row))[0]
                    for row, o in zip(x, other)]
        np.testing.assert_allclose(r.scores, expected, atol=1e-12)


def _tanh_case() -> tuple[np.ndarray, Any, np.ndarray, np.ndarray]:
    """A 2-output tanh model of 3 features, two inputs and the baseline 2 (not evaluate's 0)."""
    w = np.array([[0.5, -1.0, 2.0], [1.0, 0.3, -0.2]])

    def model(z: Any) -> np.ndarray:
        return np.asarray(np.tanh(np.asarray(z, dtype=np.float64) @ w.T))

    return w, model, np.array([[2.5, 1.0, 2.2], [1.5, 2.4, 3.0]]), np.full(3, 2.0)


def test_default_explainer_refuses_a_baseline_other_than_the_attributions():
    # the default explain callable re-runs the method with evaluate's baseline (0.0 unless
    # given): an exact_shapley attribution for baseline 2 was compared with explanations for
    # baseline 0 and a deterministic method's sensitivity came out 3.8-10.7 instead of 0
    w, model, x, b = _tanh_case()
    attr = tribute.explain(model, x, method="exact_shapley", baseline=b, target=0)
    assert attr.base_values is not None
    np.testing.assert_allclose(np.asarray(attr.base_values), np.tanh(b @ w[0]), atol=1e-12)
    with pytest.raises(InputError, match=r"base_values.*\[0\.0\].*baseline"):
        evaluate(model, x, attr, metric="avg_sensitivity", radius=1e-9, n_samples=2)
    with pytest.raises(InputError, match="base_values"):
        evaluate(model, x, attr, metric="stability", seeds=(0, 1))
    # the same baseline: exact Shapley is deterministic and smooth -> 0 at radius 1e-9, and
    # the one evaluation the check spends (v(empty)) is counted
    r = evaluate(model, x, attr, metric="avg_sensitivity", radius=1e-9, n_samples=2, baseline=b)
    np.testing.assert_allclose(r.scores, 0.0, atol=1e-6)
    assert r.n_evals == 1
    # deletion keeps accepting another removal value (a different question, not a re-explanation)
    evaluate(model, x, attr, metric="deletion", baseline=0.0)


def test_default_explainer_refuses_another_baseline_without_base_values():
    # feature_ablation and saliency report no base_values; their params' baseline_digest
    # still tells a re-explanation under another baseline apart (sensitivity was not 0)
    _, model, x, b = _tanh_case()
    attr = tribute.explain(model, x, method="feature_ablation", baseline=b, target=0)
    assert attr.base_values is None and isinstance(attr.params["baseline_digest"], str)
    with pytest.raises(InputError, match="baseline_digest"):
        evaluate(model, x, attr, metric="avg_sensitivity", radius=1e-9, n_samples=2)
    r = evaluate(model, x, attr, metric="avg_sensitivity", radius=1e-9, n_samples=2, baseline=b)
    np.testing.assert_allclose(r.scores, 0.0, atol=1e-6)
    # the same baseline written another way (a scalar, -0.0) has the same digest
    a0 = tribute.explain(model, x, method="feature_ablation", baseline=0.0, target=0)
    a1 = tribute.explain(model, x, method="feature_ablation", baseline=np.full(3, -0.0), target=0)
    assert a0.params["baseline_digest"] == a1.params["baseline_digest"]
    evaluate(model, x, a1, metric="stability", seeds=(0, 1))  # default baseline 0.0: accepted


def test_draws_shared_by_every_sample_count_in_the_standard_error():
    # avg/max sensitivity add the same perturbations to every sample, random_logit draws one
    # class offset for all, model_randomisation one set of random weights: the spread over
    # samples leaves that noise out, and it does not shrink with more samples (95% intervals
    # covered the expectation in 0.59-0.60 of runs at 200 samples for the sensitivities,
    # 0.18-0.45 for model_randomisation). avg_sensitivity estimates it (a jackknife over its
    # draws); the others cannot, from one draw, and give NaN with a warning.
    net, x = _net(), _x(12)
    sal = tribute.explain(net, x, method="saliency")
    avg = evaluate(net, x, sal, metric="avg_sensitivity", n_samples=20)
    assert np.isfinite(avg.extra["stderr_draws"]) and avg.extra["stderr_draws"] > 0
    assert avg.stderr > avg.extra["stderr_samples"] > 0
    # heavy-tailed ratios (|credits| near 0 where tanh saturates): its interval covered 0.85 at
    # 50 samples and 0.89 at 200 (aud30m), so it needs 200 samples, as infidelity does
    x30 = _x(30)
    avg30 = evaluate(net, x30, tribute.explain(net, x30, method="saliency"),
                     metric="avg_sensitivity", n_samples=20)
    assert avg30.extra["min_samples_ci95"] == 200
    with pytest.warns(tribute.StderrWarning, match="30 samples: .*at least 200 inputs"):
        assert all(np.isnan(avg30.ci95))
    for metric in ("max_sensitivity", "random_logit", "model_randomisation"):
        with pytest.warns(tribute.StderrWarning, match="shared by every sample"):
            r = evaluate(net, x, sal, metric=metric)
        assert np.isnan(r.stderr) and np.isfinite(r.mean) and r.extra["stderr_samples"] > 0, metric
    two = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2)).double()
    sal2 = tribute.explain(two, x, method="saliency", target=0)
    import warnings

    with warnings.catch_warnings():  # two classes: the offset is always 1, nothing is drawn
        warnings.simplefilter("error", tribute.StderrWarning)
        r = evaluate(two, x, sal2, metric="random_logit")
    assert np.isfinite(r.stderr)


def test_sensitivity_on_a_mixed_table_perturbs_its_float_columns():
    # a DataFrame with a text column became an object array, refused with "all inputs are
    # integers"; a float-only frame reached the explain callable as a (read-only) numpy array
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80),
                      "kind": rng.choice(["x", "y", "z"], size=80)})
    y = (X["a"] - X["b"] + (X["kind"] == "y") > 0).astype(int)
    pipe = make_pipeline(ColumnTransformer([("n", "passthrough", ["b", "a"]),
                                            ("c", OneHotEncoder(), ["kind"])]),
                         LogisticRegression()).fit(X, y)
    x, bg = X.iloc[:4], X.iloc[40:60]
    stacked, sample = perturb_inputs(x, 0.3, 5, 2)
    assert list(stacked.columns) == ["a", "b", "kind"] and list(stacked.dtypes) == list(x.dtypes)
    assert (stacked["kind"].to_numpy() == x["kind"].to_numpy()[sample]).all()
    noise = stacked[["a", "b"]].to_numpy() - x[["a", "b"]].to_numpy()[sample]
    assert 0 < np.abs(noise).max() <= 0.3
    np.testing.assert_allclose(noise.reshape(5, 4, 2)[:, 0], noise.reshape(5, 4, 2)[:, 3])
    # float-only frame: the noise of the array of the same shape
    arr_stack, _ = perturb_inputs(x[["a", "b"]].to_numpy(), 0.3, 5, 2)
    frame_stack, _ = perturb_inputs(x[["a", "b"]], 0.3, 5, 2)
    np.testing.assert_array_equal(frame_stack.to_numpy(), arr_stack)
    # the score: phi_i = c_i (x_i - mean_bg_i) in logit, so phi(x + e) - phi(x) = c * e
    attr = tribute.explain(pipe, x, method="exact_shapley", baseline=bg, output="logit", target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", tribute.StderrWarning)  # 5 draws: no stderr, as documented
        r = evaluate(pipe, x, attr, metric="avg_sensitivity", baseline=bg, radius=0.3,
                     n_samples=5, seed=2)
    c = pipe[1].coef_[0][[1, 0]]  # columns a, b (the pipeline reads b first)
    phi = np.asarray(attr.values)
    rel = np.linalg.norm(c * noise.reshape(5, 4, 2), axis=-1) / np.linalg.norm(phi, axis=-1)
    np.testing.assert_allclose(r.scores, rel.mean(0), rtol=1e-8)


def test_sensitivity_refuses_inputs_with_nothing_real_valued():
    with pytest.raises(InputError, match="these have none"):
        perturb_inputs(np.arange(12).reshape(3, 4), 0.1, 2, 0)


def test_a_background_set_stays_a_background_set_when_re_explained():
    # sensitivity stacks K x B rows; next to a plain background array of K x B rows the game
    # read it as one baseline per row, and the score was about another game (5x the truth)
    rng = np.random.default_rng(1)
    w = np.array([1.5, -2.0, 0.5])
    f = lambda z: z @ w  # noqa: E731
    x, bg = rng.normal(size=(4, 3)), rng.normal(size=(20, 3))
    attr = tribute.explain(f, x, method="exact_shapley", baseline=bg)
    np.testing.assert_allclose(attr.values, w * (x - bg.mean(0)), atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tribute.StderrWarning)
        r = evaluate(f, x, attr, metric="avg_sensitivity", baseline=bg, radius=0.3, n_samples=5,
                     seed=2)
    stacked, sample = perturb_inputs(x, 0.3, 5, 2)
    noise = (stacked - x[sample]).reshape(5, 4, 3)
    rel = np.linalg.norm(w * noise, axis=-1) / np.linalg.norm(w * (x - bg.mean(0)), axis=-1)
    np.testing.assert_allclose(r.scores, rel.mean(0), rtol=1e-10)


def test_a_per_sample_dataframe_baseline_is_indexed_per_row():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    w = np.array([1.5, -2.0])
    x = pd.DataFrame(rng.normal(size=(4, 2)), columns=["a", "b"])
    base = pd.DataFrame(rng.normal(size=(4, 2)), columns=["a", "b"])
    f = lambda z: np.asarray(z, dtype=float) @ w  # noqa: E731
    with pytest.warns(UserWarning, match="baseline has 4 rows, as many as the inputs"):
        attr = tribute.explain(f, x, method="exact_shapley", baseline=base)
    np.testing.assert_allclose(attr.values, w * (x.to_numpy() - base.to_numpy()), atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tribute.StderrWarning)
        warnings.filterwarnings("error", message="baseline has")  # the re-explanation is marked
        r = evaluate(f, x, attr, metric="avg_sensitivity", baseline=tribute.PerSample(base),
                     radius=0.3, n_samples=5, seed=2)
    stacked, sample = perturb_inputs(x, 0.3, 5, 2)
    noise = (stacked.to_numpy() - x.to_numpy()[sample]).reshape(5, 4, 2)
    phi = w * (x.to_numpy() - base.to_numpy())
    rel = np.linalg.norm(w * noise, axis=-1) / np.linalg.norm(phi, axis=-1)
    np.testing.assert_allclose(r.scores, rel.mean(0), rtol=1e-10)


# rev32: re-explained baselines read part by part; polars; extension-dtype frames
W1 = torch.tensor([1.5, -2.0], dtype=torch.float64)
W2 = torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)


def _two_inputs(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return p @ W1 + q @ W2


def _two_input_truth(a, b, mean_a, mean_b, k):
    (sa, sb), samp = perturb_inputs((a, b), 0.3, k, 2)
    n = a.shape[0]
    na, nb = (sa - a[samp]).reshape(k, n, 2), (sb - b[samp]).reshape(k, n, 3)
    num = torch.sqrt(((W1 * na) ** 2).sum(-1) + ((W2 * nb) ** 2).sum(-1))
    den = torch.sqrt(((W1 * (a - mean_a)) ** 2).sum(-1) + ((W2 * (b - mean_b)) ** 2).sum(-1))
    return (num / den).mean(0).numpy()


@pytest.mark.parametrize("kind", ["background_and_scalar", "per_sample_and_background"])
def test_a_tuple_baseline_is_read_part_by_part_when_re_explained(kind):
    # K x B = 20 stacked rows next to a 20-row background part: that part was read per row
    g = np.random.default_rng(3)
    a, b = torch.as_tensor(g.normal(size=(4, 2))), torch.as_tensor(g.normal(size=(4, 3)))
    bga, bgb = torch.as_tensor(g.normal(size=(20, 2))), torch.as_tensor(g.normal(size=(20, 3)))
    psa = torch.as_tensor(g.normal(size=(4, 2)))
    base: tuple[Any, Any]
    if kind == "background_and_scalar":
        base, ma, mb = (bga, 0.0), bga.mean(0), torch.zeros(3, dtype=torch.float64)
    else:
        base, ma, mb = (psa, bgb), psa, bgb.mean(0)
    attr = tribute.explain(_two_inputs, (a, b), method="exact_shapley", baseline=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tribute.StderrWarning)
        r = evaluate(_two_inputs, (a, b), attr, metric="avg_sensitivity", baseline=base, radius=0.3,
                     n_samples=5, seed=2)
    np.testing.assert_allclose(r.scores, _two_input_truth(a, b, ma, mb, 5), rtol=1e-10)


@pytest.mark.parametrize("rows", [4, 20])  # per-sample; a background of K x B rows
def test_polars_baselines_are_read_as_the_pandas_ones(rows):
    pl = pytest.importorskip("polars")
    g = np.random.default_rng(3)
    w = np.array([1.5, -2.0, 0.5])
    f = lambda z: np.asarray(z, dtype=float) @ w  # noqa: E731
    xn, bn = g.normal(size=(4, 3)), g.normal(size=(rows, 3))
    x, base = pl.DataFrame(xn, schema=list("abc")), pl.DataFrame(bn, schema=list("abc"))
    attr = tribute.explain(f, x, method="exact_shapley", baseline=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tribute.StderrWarning)
        r = evaluate(f, x, attr, metric="avg_sensitivity", baseline=base, radius=0.3,
                     n_samples=5, seed=2)
    st, samp = perturb_inputs(xn, 0.3, 5, 2)
    noise = (st - xn[samp]).reshape(5, 4, 3)
    phi = w * (xn - (bn if rows == 4 else bn.mean(0)))
    rel = np.linalg.norm(w * noise, axis=-1) / np.linalg.norm(phi, axis=-1)
    np.testing.assert_allclose(r.scores, rel.mean(0), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["Float64", "double[pyarrow]", "Sparse[float64]", "float32"])
def test_extension_float_columns_are_perturbed_as_floats(dtype):
    pd = pytest.importorskip("pandas")
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    g = np.random.default_rng(0)
    xn = g.normal(size=(4, 2))
    x = pd.DataFrame({"a": xn[:, 0], "b": xn[:, 1]}).astype(dtype)
    st, _ = perturb_inputs(x, 0.3, 5, 2)
    ref, _ = perturb_inputs(x.to_numpy(dtype=np.float64 if dtype != "float32" else np.float32), 0.3, 5, 2)
    assert list(st.dtypes) == list(x.dtypes)
    np.testing.assert_allclose(st.to_numpy(dtype=np.float64), ref, rtol=1e-12 if dtype != "float32" else 0)


def test_duplicate_float_column_names_are_perturbed():
    pd = pytest.importorskip("pandas")
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(3, 2)), columns=["a", "a"])
    st, _ = perturb_inputs(x, 0.1, 2, 0)
    ref, _ = perturb_inputs(x.to_numpy(), 0.1, 2, 0)
    np.testing.assert_array_equal(st.to_numpy(), ref)


def test_integer_columns_held_fixed_are_named():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(4)
    x = pd.DataFrame({"age": rng.integers(20, 60, size=4), "income": rng.normal(size=4),
                      "member": [True, False, True, True]})
    f = lambda z: np.asarray(z, dtype=float) @ np.array([0.1, 2.0, 1.0])  # noqa: E731
    attr = tribute.explain(f, x, method="feature_ablation", baseline=tribute.Background(x))
    with pytest.warns(UserWarning, match=r"integer columns \['age'\] are not perturbed"):
        r = evaluate(f, x, attr, metric="avg_sensitivity", baseline=tribute.Background(x),
                     n_samples=20)
    assert r.extra["not_perturbed"] == ["age", "member"]
