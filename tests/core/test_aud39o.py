"""aud39o: every option of ``tribute.explain`` against a truth computed outside tribute.

Truths: exact Shapley values and leave-one-out credits by enumerating all 2^5 coalitions in
plain numpy (the value of a coalition is the model's output averaged over the weighted
baseline rows), closed forms on linear models (Shapley = IG = w * (x - b)), IG as a 4000-point
midpoint rule with torch autograd. Models are float64 so tolerances follow from the methods
(exact ones to 1e-9), not from this machine's random draws. The full matrix (about 600 cells,
also float32, xgboost/lightgbm, stderr calibration) is in the aud39o report.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import tribute

F, N = 5, 4


def _coalition_values(f, x, rows, w=None):
    """v(S) for every coalition S (bit mask), averaged over the weighted baseline ``rows``."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    w = np.full(rows.shape[0], 1.0 / rows.shape[0]) if w is None else np.asarray(w) / np.sum(w)
    n = x.shape[0]
    comp = [np.where(np.array([(s >> i) & 1 for i in range(n)], bool)[None], x[None], rows)
            for s in range(2 ** n)]
    return (np.asarray(f(np.concatenate(comp)), np.float64).reshape(2 ** n, -1)) @ w


def _shapley(f, X, rows, w=None, per_sample=False):
    out = []
    for k, x in enumerate(X):
        v = _coalition_values(f, x, rows[k] if per_sample else rows, w)
        n = x.shape[0]
        phi = np.zeros(n)
        for i in range(n):
            for s in range(2 ** n):
                if not (s >> i) & 1:
                    c = bin(s).count("1")
                    phi[i] += math.factorial(c) * math.factorial(n - c - 1) / math.factorial(n) \
                        * (v[s | 1 << i] - v[s])
        out.append(phi)
    return np.array(out)


def _data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(N, F)), rng.normal(size=F), rng.normal(size=(N, F)),
            rng.normal(size=(6, F)), rng.uniform(0.5, 2.0, size=6))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("method,kw,tol", [
    ("integrated_gradients", {}, 1e-9), ("exact_shapley", {}, 1e-9),
    ("kernel_shap", {"budget": 64}, 1e-7), ("permutation_shapley", {"budget": 200}, 1e-9),
    ("lime", {"budget": 200, "alpha": 0.0}, 1e-8)])
@pytest.mark.parametrize("kind", ["scalar", "vector", "row", "per_sample", "background",
                                  "weighted"])
def test_linear_closed_form_every_baseline(method, kw, tol, kind):
    """Shapley = IG = LIME (no penalty) = w * (x - E_w[b]) for a linear model, every baseline
    form: scalar, (F,), (1, F), PerSample (N, F), Background (M, F), weighted Background."""
    X, b, ps, bg, bgw = _data()
    lin = nn.Linear(F, 1).double()
    w = lin.weight.detach().numpy()[0]
    baseline, mean = {
        "scalar": (0.5, np.full(F, 0.5)), "vector": (torch.tensor(b), b),
        "row": (torch.tensor(b[None]), b), "per_sample": (tribute.PerSample(torch.tensor(ps)), ps),
        "background": (tribute.Background(torch.tensor(bg)), bg.mean(0)),
        "weighted": (tribute.Background(torch.tensor(bg), weights=bgw),
                     (bgw[:, None] * bg).sum(0) / bgw.sum()),
    }[kind]
    a = tribute.explain(lin, torch.tensor(X), method, baseline=baseline, **kw)
    np.testing.assert_allclose(a.values.numpy(), w * (X - mean), rtol=0, atol=tol)


@pytest.mark.parametrize("output", ["raw", "logit", "prob", "log_prob"])
@pytest.mark.parametrize("target", [None, 2, [0, 2], "per_sample", "per_sample_2d"])
def test_torch_logits_every_output_and_target(output, target):
    """A torch classifier returning logits: each output converted once (softmax / log-softmax
    of the logits), each target form, exact Shapley against enumeration."""
    X, b, *_ = _data()
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(F, 8), nn.Tanh(), nn.Linear(8, 3)).double()

    def out(R):
        with torch.no_grad():
            z = net(torch.tensor(R)).numpy()
        return {"raw": z, "logit": z, "prob": _softmax(z),
                "log_prob": np.log(_softmax(z))}[output]

    y = np.array([0, 2, 1, 2])
    y2 = np.stack([y, (y + 1) % 3], 1)
    tgt, cols = {  # what is passed, and the class columns each sample explains
        None: (None, out(X).argmax(1)[:, None]), 2: (2, np.full((N, 1), 2)),
        "per_sample": (y, y[:, None]), "per_sample_2d": (y2, y2),
    }.get(target if not isinstance(target, list) else "list",
          (target, np.tile(target, (N, 1))))
    exp = np.stack([np.stack([_shapley(lambda R, k=k: out(R)[:, k], X[n:n + 1], b[None])[0]
                              for k in cols[n]]) for n in range(N)])
    if target in (None, 2, "per_sample"):
        exp = exp[:, 0]
    a = tribute.explain(net, torch.tensor(X), "exact_shapley", target=tgt, output=output,
                        baseline=torch.tensor(b))
    np.testing.assert_allclose(a.values.numpy(), exp, rtol=0, atol=1e-9)


@pytest.mark.parametrize("output", ["raw", "prob", "log_prob", "logit"])
def test_torch_probabilities_declared_converted_once(output):
    """A module returning softmax probabilities, declared: prob is the identity, log_prob is
    log p, logit is log(p / (1 - p)); exact Shapley and IG (autograd reference) agree."""
    X, b, *_ = _data()
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(F, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(-1)).double()

    def conv(p):
        return {"raw": p, "prob": p, "log_prob": torch.log(p),
                "logit": torch.log(p) - torch.log1p(-p)}[output]

    def f(R):
        with torch.no_grad():
            return conv(net(torch.tensor(R)))[:, 1].numpy()

    a = tribute.explain(net, torch.tensor(X), "exact_shapley", target=1, output=output,
                        model_output="probability", baseline=torch.tensor(b))
    np.testing.assert_allclose(a.values.numpy(), _shapley(f, X, b[None]), rtol=0, atol=1e-9)
    t = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    ig = []
    for x in torch.tensor(X):
        path = (torch.tensor(b) + t[:, None] * (x - torch.tensor(b))).requires_grad_(True)
        g, = torch.autograd.grad(conv(net(path))[:, 1].sum(), path)
        ig.append((g.mean(0) * (x - torch.tensor(b))).numpy())
    a = tribute.explain(net, torch.tensor(X), "integrated_gradients", target=1, output=output,
                        model_output="probability", baseline=torch.tensor(b), steps=256)
    np.testing.assert_allclose(a.values.numpy(), np.array(ig), rtol=0, atol=1e-6)


@pytest.mark.parametrize("output", ["prob", "log_prob", "logit"])
def test_sklearn_labels_not_columns_multi_target(output):
    """LogisticRegression fitted on labels 0, 2, 5: target=[5, 0] explains the columns of
    classes 5 and 0 (predict_proba columns 2 and 0), probabilities converted once."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    Xtr = rng.normal(size=(200, F))
    clf = LogisticRegression(max_iter=500).fit(
        Xtr, np.array([0, 2, 5])[np.digitize(Xtr[:, 0], [-0.5, 0.5])])
    bl = Xtr.mean(0)

    def conv(p):
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return {"prob": p, "log_prob": np.log(p), "logit": np.log(p) - np.log1p(-p)}[output]

    exp = np.stack([_shapley(lambda R, k=k: conv(clf.predict_proba(R))[:, k], Xtr[:N], bl[None])
                    for k in (2, 0)], 1)
    a = tribute.explain(clf, Xtr[:N], "exact_shapley", target=[5, 0], output=output, baseline=bl)
    np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-9)


def test_tree_shap_interventional_matches_enumeration_with_weighted_rows():
    """tree_shap with a background set equals exact enumeration over that set (margin of a
    LightGBM binary classifier, class 0 = the negated margin)."""
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(7)
    Xtr = rng.normal(size=(300, F))
    clf = lgb.LGBMClassifier(n_estimators=15, max_depth=3, verbose=-1).fit(
        Xtr, (Xtr[:, 0] + Xtr[:, 2] > 0).astype(int))
    bg = Xtr[100:120]
    for t, sign in ((1, 1.0), (0, -1.0)):
        exp = _shapley(lambda R, s=sign: s * clf.predict(R, raw_score=True), Xtr[:N], bg)
        a = tribute.explain(clf, Xtr[:N], "tree_shap", target=t, output="logit",
                            baseline=tribute.Background(bg))
        np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-9)


# --------------------------------------------------------------- class labels on the result
def _labelled_attribution() -> tribute.Attribution:
    values = np.arange(2 * 2 * 3, dtype=np.float64).reshape(2, 2, 3)
    from tribute.attribution import Layout

    return tribute.Attribution(
        values=values, method="exact_shapley", player_names=["a", "b", "c"],
        targets=np.array([[2, 0], [2, 0]]), layout=Layout(multi_target=True),
        extra={"class_labels": [0, 2, 5]})


def test_to_pandas_labels_targets_by_class_not_column():
    """classes_ [0, 2, 5], targets (columns) [2, 0]: the frame's target level is the class,
    5 and 0; it said 2 and 0, and level 2 is class 2's name (df.xs(2, level='target') gave
    class 5's credits under class 2's label)."""
    a = _labelled_attribution()
    df = a.to_pandas()
    assert list(df.index.get_level_values("target")) == [5, 0, 5, 0]
    np.testing.assert_array_equal(df.xs(5, level="target").to_numpy(), a.values[:, 0])
    assert a._target_label(0, 0, 2, 2) == "target column 0 (class 5)"


def test_class_labels_survive_save_load(tmp_path):
    a = _labelled_attribution()
    b = tribute.Attribution.load(a.save(tmp_path / "a"))
    assert list(b.to_pandas().index.get_level_values("target")) == [5, 0, 5, 0]


def test_string_class_labels_in_frame():
    a = _labelled_attribution()
    a.extra["class_labels"] = ["lo", "mid", "hi"]
    assert list(a.to_pandas().index.get_level_values("target")) == ["hi", "lo", "hi", "lo"]


def test_adapter_class_labels():
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from tribute.models import NumpyModel
    from tribute.models import as_model as _as_model

    def as_model(model: object, framework: str) -> NumpyModel:
        adapter = _as_model(model, framework)
        assert isinstance(adapter, NumpyModel)
        return adapter

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    assert as_model(LogisticRegression().fit(X, y), "numpy").class_labels() is None
    assert as_model(LogisticRegression().fit(X, np.array([0, 2, 5])[y]),
                    "numpy").class_labels() == [0, 2, 5]
    assert as_model(LogisticRegression().fit(X, np.array(["x", "y", "z"])[y]),
                    "numpy").class_labels() == ["x", "y", "z"]
    assert as_model(LogisticRegression().fit(X, y > 0), "numpy").class_labels() is None
    assert as_model(LinearRegression().fit(X, X[:, 0]), "numpy").class_labels() is None


def test_explain_records_class_labels_end_to_end():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, F))
    clf = LogisticRegression(max_iter=500).fit(X, np.array([0, 2, 5])[np.digitize(X[:, 0], [-.5, .5])])
    a = tribute.explain(clf, X[:2], "exact_shapley", target=[5, 0], output="prob", baseline=X.mean(0))
    assert list(a.to_pandas().index.get_level_values("target")) == [5, 0, 5, 0]
