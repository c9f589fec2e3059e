"""small40: the CLI's int type has one name (params.int_at_least), and per-sample targets are
shown in ``Attribution.to_pandas()`` / plot titles.

Truths: the class each row explains is the target the caller passed (``target=y``, one label
per sample) or the classifier's own ``predict`` (``"predicted"``); the credits are checked
against exact Shapley values enumerated here in numpy (3 features, 8 coalitions, baseline 0).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import tribute
from tribute import cli
from tribute.bench import cli as bench_cli


def test_bench_cli_uses_params_int_at_least_and_the_alias_is_gone(capsys) -> None:
    assert not hasattr(cli, "_int_at_least")
    assert "_int_at_least" not in open(bench_cli.__file__, encoding="utf-8").read()
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--model", "m:f", "--data", "x.npy", "--out", "o", "--budget", "0"])
    assert "0 must be at least 1 (evaluations per input)" in capsys.readouterr().err


def _classifier():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(40)
    X = rng.normal(size=(90, 3))
    y = np.array([0, 2, 5])[np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])]
    return LogisticRegression(max_iter=500).fit(X, y), X[:5]


def _exact_shapley(f, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            for s in itertools.combinations(others, r):
                m = np.zeros(n)
                m[list(s)] = 1
                w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
                with_i = m.copy()
                with_i[i] = 1
                phi[i] += w * (f(with_i * x) - f(m * x))
    return phi


@pytest.mark.parametrize("kind", ["labels", "predicted"])
def test_per_sample_targets_are_a_target_level_of_the_frame(kind: str, tmp_path) -> None:
    # before: target=y (one class per sample) gave a frame of samples x players only: nothing
    # said which class each row's credits explain (rows 0 and 1 explained different classes)
    clf, X = _classifier()
    classes = list(clf.classes_)
    y = np.array([0, 5, 2, 5, 0]) if kind == "labels" else clf.predict(X)
    assert len(set(y.tolist())) > 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(clf, X, method="exact_shapley", output="prob",
                            target=y if kind == "labels" else "predicted", baseline=0.0)
    df = a.to_pandas()
    assert df.index.names == ["sample", "target"]
    assert list(df.index.get_level_values("target")) == y.tolist()
    assert list(df.index.get_level_values("sample")) == list(range(5))
    for i in range(5):
        col = classes.index(y[i])
        truth = _exact_shapley(lambda z, c=col: float(clf.predict_proba(z[None])[0, c]), X[i])
        np.testing.assert_allclose(df.loc[(i, y[i])].to_numpy(), truth, rtol=1e-9, atol=1e-12)
    back = tribute.Attribution.load(a.save(tmp_path / "a"))
    assert back.to_pandas().equals(df)


def test_a_target_shared_by_all_samples_keeps_the_plain_index() -> None:
    clf, X = _classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(clf, X, method="exact_shapley", output="prob", target=5, baseline=0.0)
        b = tribute.explain(clf, X, method="exact_shapley", output="prob", target=np.full(5, 5),
                            baseline=0.0)
    assert list(a.to_pandas().index) == list(range(5))
    # a label array is one target per sample: each row names its class even when all are 5
    # (the frame's shape follows the call, not the classes; lead, stop 40)
    assert list(b.to_pandas().index) == [(i, 5) for i in range(5)]
    np.testing.assert_array_equal(b.to_pandas().to_numpy(), a.to_pandas().to_numpy())


def test_plot_title_says_the_class_of_a_per_sample_target() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    clf, X = _classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(clf, X, method="exact_shapley", output="prob",
                            target=np.array([0, 5, 2, 5, 0]), baseline=0.0)
    titles = []
    for i in (0, 1, 2):
        fig = a.plot(i, kind="bar")
        fig = getattr(fig, "figure", fig)
        titles.append(" ".join(ax.get_title() for ax in fig.axes))
    assert titles == ["exact_shapley, class 0", "exact_shapley, class 5", "exact_shapley, class 2"]


def _wls(f, n: int, width: float = 0.25) -> np.ndarray:
    """The weighted least-squares fit LIME defines (Ribeiro et al. 2016, no penalty) over all
    2^n coalitions with the cosine kernel, by numpy's lstsq on sqrt(w)-scaled rows."""
    Z = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    size = Z.sum(1)
    d = np.where(size > 0, 1 - np.sqrt(size / n), 1.0)
    w = np.exp(-(d**2) / (2 * width**2))
    A = np.hstack([np.ones((len(Z), 1)), Z]) * np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(A, f(Z) * np.sqrt(w), rcond=None)[0]
    return coef[1:]


def _game(z: np.ndarray) -> np.ndarray:
    return 3.0 * z[:, 0] + (2.0 * z[:, 1] + z[:, 0] * z[:, 1] if z.shape[1] > 1 else 0.0)


@pytest.mark.parametrize("sampling", ["bernoulli", "exhaustive"])
def test_lime_with_one_player_warns_that_the_ridge_penalty_ate_the_credit(sampling: str) -> None:
    # before: one player, LIME's Ridge(alpha=1): credit 0.001 (exhaustive) / 0.12 (256 coalitions)
    # for a game with v(all) - v(none) = 3, silently; the kernel gives the empty coalition
    # weight exp(-8), so the penalty outweighs the data
    x = np.ones((1, 1))
    with pytest.warns(RuntimeWarning, match=r"alpha=1 .* outweighs .* alpha=0"):
        a = tribute.explain(_game, x, method="lime", baseline=0.0, sampling=sampling)
    assert abs(a.values[0, 0]) < 0.2
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="lime: the ridge penalty")
        b = tribute.explain(_game, x, method="lime", baseline=0.0, sampling=sampling, alpha=0.0)
    np.testing.assert_allclose(b.values[0], _wls(_game, 1), rtol=1e-10)
    np.testing.assert_allclose(b.values[0, 0], 3.0, rtol=1e-10)  # v(all) - v(none)


def test_lime_one_group_and_two_players() -> None:
    x = np.ones((1, 3))

    def f(z: np.ndarray) -> np.ndarray:
        return 3.0 * z[:, 0] + z[:, 1] * z[:, 2]

    with pytest.warns(RuntimeWarning, match="outweighs"):
        tribute.explain(f, x, method="lime", baseline=0.0, groups=np.zeros(3, dtype=int))
    one = tribute.explain(f, x, method="lime", baseline=0.0, groups=np.zeros(3, dtype=int), alpha=0.0)
    np.testing.assert_allclose(one.values[0], [4.0], rtol=1e-10)  # f(all) - f(none)
    # two players over their 4 coalitions: the penalty takes ~75%; alpha=0 is the WLS fit
    x2 = np.ones((1, 2))
    with pytest.warns(RuntimeWarning, match="outweighs"):
        shrunk = tribute.explain(_game, x2, method="lime", baseline=0.0, sampling="exhaustive")
    exact = tribute.explain(_game, x2, method="lime", baseline=0.0, sampling="exhaustive", alpha=0.0)
    truth = _wls(_game, 2)
    np.testing.assert_allclose(exact.values[0], truth, rtol=1e-10)
    assert np.all(np.abs(shrunk.values[0]) < 0.3 * np.abs(truth))
    # 256 sampled coalitions of 2 players: shrunk by ~6%, no warning
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="lime: the ridge penalty")
        tribute.explain(_game, x2, method="lime", baseline=0.0)
