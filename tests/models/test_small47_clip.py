"""small47: the clip of probabilities to [1e-12, 1 - 1e-12] before the log of output='logit' /
'log_prob' warns (once per call, values unchanged) when it binds on a row the model evaluated."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier

import tribute

EPS = 1e-12
XR = np.array([[9.0, 9.0, 0.0], [3.0, 2.0, 0.0]])
BASE = np.array([-9.0, -9.0, 0.0])


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(200, 3))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def _brute(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Shapley values of v(S) = f(x on S, b elsewhere), by enumerating all coalitions."""
    n = x.shape[0]
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for s in itertools.combinations(others, k):
                w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                r0 = b.copy()
                r0[list(s)] = x[list(s)]
                r1 = r0.copy()
                r1[i] = x[i]
                phi[i] += w * (f(r1[None])[0] - f(r0[None])[0])
    return phi


def _clipped_log(p: np.ndarray, output: str) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.log(q) if output == "log_prob" else np.log(q) - np.log1p(-q)


def _run(model: Any, x: Any, **kw: Any) -> tuple[np.ndarray, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a = tribute.explain(model, x, **kw)
    clip = [w for w in rec if issubclass(w.category, tribute.ProbabilityClipWarning)]
    return np.asarray(a.values), clip


@pytest.mark.parametrize("output", ["logit", "log_prob"])
@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap", "occlusion"])
def test_saturated_logistic_regression_warns_once_values_unchanged(output: str, method: str) -> None:
    x, y = _data()
    m = LogisticRegression(C=100).fit(x, y)
    vals, clip = _run(m, XR, method=method, baseline=BASE, output=output, target=1)
    assert len(clip) == 1  # once per call, however many chunks the model ran
    msg = str(clip[0].message)
    assert "-27.6" in msg and "logisticregression.decision_function" in msg
    assert clip[0].filename == __file__  # points at the user's line
    if method == "exact_shapley":
        # unchanged: the clipped convention, enumerated by hand from predict_proba
        for i in range(2):
            ref = _brute(lambda r: _clipped_log(m.predict_proba(r)[:, 1], output), XR[i], BASE)
            np.testing.assert_allclose(vals[i], ref, atol=1e-9)
        if output == "logit":
            # the model's own logit (decision_function), which the advice explains, is far off
            truth = _brute(m.decision_function, XR[0], BASE)
            assert truth[0] > 5 * vals[0, 0]
            fixed, again = _run(m.decision_function, XR, method=method, baseline=BASE,
                                output="logit", model_output="logit")
            np.testing.assert_allclose(fixed[0], truth, atol=1e-8)
            assert again == []


@pytest.mark.parametrize("output", ["logit", "log_prob"])
def test_saturated_gaussian_nb_warns_values_unchanged(output: str) -> None:
    x, y = _data()
    m = GaussianNB().fit(x, y)
    vals, clip = _run(m, XR, method="exact_shapley", baseline=BASE, output=output, target=1)
    assert len(clip) == 1 and "gaussiannb.predict_log_proba" in str(clip[0].message)
    for i in range(2):
        ref = _brute(lambda r: _clipped_log(m.predict_proba(r)[:, 1], output), XR[i], BASE)
        np.testing.assert_allclose(vals[i], ref, atol=1e-9)
    if output == "log_prob":  # the advice: its own log-probabilities, unclipped
        with np.errstate(divide="ignore"):
            truth = _brute(lambda r: m.predict_log_proba(r)[:, 1], XR[0], BASE)
        fixed, again = _run(m.predict_log_proba, XR, method="exact_shapley", baseline=BASE,
                            output="raw", target=1)
        np.testing.assert_allclose(fixed[0], truth, atol=1e-8)
        assert abs(truth[0] - vals[0, 0]) > 1.0 and again == []


def test_pure_leaf_tree_warns_by_design() -> None:
    # a tree's pure leaves give p exactly 0 / 1: -27.6 is the documented convention, but the
    # credits then scale with that arbitrary constant, so the call says so (filterable)
    x, y = _data()
    m = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    vals, clip = _run(m, x[:2], method="exact_shapley", baseline=x[50], output="logit", target=1)
    assert len(clip) == 1 and "pure leaves" in str(clip[0].message)
    for i in range(2):
        ref = _brute(lambda r: _clipped_log(m.predict_proba(r)[:, 1], "logit"), x[i], x[50])
        np.testing.assert_allclose(vals[i], ref, atol=1e-9)


def test_torch_probability_model_warns_float32_too() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[40.0, 40.0, 0.0], [-40.0, -40.0, 0.0]]))
    net = torch.nn.Sequential(lin, torch.nn.Softmax(-1))
    for dt in (torch.float64, torch.float32):
        net = net.to(dt)
        xs = torch.tensor(XR, dtype=dt)
        _, clip = _run(net, xs, method="exact_shapley", baseline=torch.tensor(BASE, dtype=dt),
                       output="log_prob", target=1, model_output="probability")
        assert len(clip) == 1 and "model_output='logit'" in str(clip[0].message)


def _neighbours() -> list[tuple[str, Any, Any, dict[str, Any]]]:
    x, y = _data()
    lr = LogisticRegression().fit(x, y)  # unsaturated on these rows
    sat = LogisticRegression(C=100).fit(x, y)
    mlp = MLPClassifier((8,), max_iter=300, random_state=0).fit(x, y)
    rf = RandomForestClassifier(10, max_depth=2, min_samples_leaf=40, random_state=0).fit(x, y)
    y3 = np.digitize(x[:, 0], [-0.5, 0.5])
    lr3 = LogisticRegression(C=100).fit(x, y3)  # class 0 (and 1) go to 0 on XR; class 2 is explained
    torch.manual_seed(0)
    soft = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(-1)).double()
    logits = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        logits.weight.mul_(100.0)  # saturated logits: no clip on the logit path
    rows, b = x[:3], x[50]
    t = torch.tensor(rows)
    tb = torch.tensor(b)
    ex: dict[str, Any] = {"method": "exact_shapley"}
    return [
        ("lr logit", lr, rows, {**ex, "baseline": b, "output": "logit", "target": 1}),
        ("lr log_prob", lr, rows, {**ex, "baseline": b, "output": "log_prob", "target": 0}),
        ("lr prob", lr, rows, {**ex, "baseline": b, "output": "prob", "target": 1}),
        ("saturated lr prob", sat, XR, {**ex, "baseline": BASE, "output": "prob", "target": 1}),
        ("saturated lr raw", sat, XR, {**ex, "baseline": BASE, "output": "raw", "target": 1}),
        ("saturated lr log_prob class 1 near 1", sat, XR[:1], {**ex, "baseline": XR[1], "output": "log_prob", "target": 1}),
        ("mlp logit", mlp, rows, {**ex, "baseline": b, "output": "logit", "target": 1}),
        ("mlp kernel log_prob", mlp, rows, {"method": "kernel_shap", "baseline": x[40:48], "output": "log_prob", "target": 1}),
        ("rf mixed leaves logit", rf, rows, {**ex, "baseline": b, "output": "logit", "target": 1}),
        ("rf mixed leaves log_prob bg", rf, rows, {**ex, "baseline": x[40:44], "output": "log_prob", "target": None}),
        ("multiclass unexplained class saturates", lr3, XR, {**ex, "baseline": np.array([2.0, 0.0, 0.0]), "output": "log_prob", "target": 2}),
        ("torch softmax logit", soft, t, {**ex, "baseline": tb, "output": "logit", "target": 1, "model_output": "probability"}),
        ("torch softmax grad", soft, t, {"method": "integrated_gradients", "baseline": tb, "output": "log_prob", "target": 0, "model_output": "probability"}),
        ("torch saturated logits", logits, t, {**ex, "baseline": tb, "output": "log_prob", "target": 1}),
        ("torch saturated logits logit", logits, t, {**ex, "baseline": tb, "output": "logit", "target": 0}),
        ("unsaturated lr kl", lr, rows, {**ex, "baseline": b, "output": "kl"}),
    ]


@pytest.mark.parametrize("case", range(16))
def test_legitimate_neighbours_do_not_warn(case: int) -> None:
    name, model, x, kw = _neighbours()[case]
    _, clip = _run(model, x, **kw)
    assert clip == [], name


def test_kl_of_saturated_model_warns_values_unchanged() -> None:
    x, y = _data()
    m = LogisticRegression(C=100).fit(x, y)
    vals, clip = _run(m, XR, method="exact_shapley", baseline=BASE, output="kl")
    assert len(clip) == 1 and "label distribution" in str(clip[0].message)

    def neg_kl(ref: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:  # the clipped convention
        def f(r: np.ndarray) -> np.ndarray:
            q = np.clip(m.predict_proba(r), EPS, 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(ref > 0, ref * (np.log(q) - np.log(ref)), 0.0)  # 0 log 0 = 0
            return np.asarray([terms.sum()])
        return f

    for i in range(2):
        ref = m.predict_proba(XR[i:i + 1])[0]
        np.testing.assert_allclose(vals[i], _brute(neg_kl(ref), XR[i], BASE), atol=1e-8)
    # the advice: its decision_function as logits, whose -KL (log-sigmoid by numpy) is far larger
    fixed, again = _run(m.decision_function, XR, method="exact_shapley", baseline=BASE,
                        output="kl", model_output="logit")
    z0 = float(m.decision_function(XR[:1])[0])
    p_ref = np.array([1.0 / (1.0 + np.exp(z0)), 1.0 / (1.0 + np.exp(-z0))])

    def neg_kl_logit(r: np.ndarray) -> np.ndarray:
        z = m.decision_function(r)
        logq = np.stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)], -1)
        logp = np.array([-np.logaddexp(0.0, z0), -np.logaddexp(0.0, -z0)])
        return np.asarray((p_ref * (logq - logp)).sum(-1))

    np.testing.assert_allclose(fixed[0], _brute(neg_kl_logit, XR[0], BASE), rtol=1e-9, atol=1e-8)
    assert fixed[0, 0] > 5 * vals[0, 0] and again == []
