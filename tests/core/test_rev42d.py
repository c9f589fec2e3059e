"""rev42d: review of aud42o's per-sample frame check, and the infinite-penalty refusals.

* A per-sample DataFrame baseline that shares all but one of the inputs' row labels, lined up
  by label only in part (``df.iloc[10:20]`` next to ``df_b.iloc[10:20]`` after one row of
  ``df_b`` was dropped), was still read by position: samples 14..19 were explained against the
  rows labelled 15..20, silently (a logistic regression's exact Shapley values 0.94 off).
  It is now refused, as the fully reordered frame is; rows from elsewhere stay positional.
* ``freeshap`` ``regularization=inf`` passed the parameter check and failed inside
  ``torch.linalg.cholesky`` (as lime ``alpha=inf`` / coar ``ridge=inf`` did before aud42o).

Truth: exact Shapley values by enumerating the 2^4 coalitions in plain numpy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import tribute
from tribute.errors import InputError

F = 4
COLS = [f"c{i}" for i in range(F)]


def _shapley(f, x, b):
    """Exact Shapley values of v(S) = f(x_S, b_rest) by enumeration."""
    out = np.zeros(F)
    for s in range(2 ** F):
        m = np.array([(s >> i) & 1 for i in range(F)], bool)
        for i in np.flatnonzero(~m):
            c = int(m.sum())
            w = math.factorial(c) * math.factorial(F - c - 1) / math.factorial(F)
            m2 = m.copy()
            m2[i] = True
            out[i] += w * (f(np.where(m2, x, b)) - f(np.where(m, x, b)))
    return out


def _setup():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(40, F)), columns=COLS)
    clf = LogisticRegression().fit(df, (df.c0 + df.c1 > 0).astype(int))
    df_b = pd.DataFrame(rng.normal(size=(40, F)), columns=COLS)  # a baseline row per df row

    w, b = clf.coef_[0], clf.intercept_[0]

    def f(r):  # P(class 1), by the logistic formula
        return 1.0 / (1.0 + np.exp(-(r @ w + b)))

    return clf, f, df, df_b


@pytest.mark.parametrize("marker", [tribute.PerSample, None])
@pytest.mark.parametrize("side", ["baseline", "inputs", "datetime"])
def test_per_sample_frame_lined_up_only_in_part_is_refused(marker, side):
    clf, f, df, df_b = _setup()
    if side == "datetime":
        days = pd.date_range("2024-01-01", periods=40)
        df, df_b = df.set_axis(days), df_b.set_axis(days)
    if side == "inputs":
        df = df.drop(index=df.index[13])
    else:
        df_b = df_b.drop(index=df_b.index[13])
    X, rows = df.iloc[10:20], df_b.iloc[10:20]
    # what reading by position gave: samples after the dropped label met another row's baseline
    by_label = np.array([_shapley(f, X.loc[k].to_numpy(), df_b.loc[k].to_numpy())
                         for k in X.index if k in df_b.index])
    by_pos = np.array([_shapley(f, X.iloc[j].to_numpy(), rows.iloc[j].to_numpy())
                       for j in range(len(X)) if X.index[j] in df_b.index])
    assert np.abs(by_label - by_pos).max() > 0.5
    baseline = rows if marker is None else marker(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plain frame's "read per sample" warning
        with pytest.raises(InputError, match=r"lines up with them only in part.*reindex"):
            tribute.explain(clf, X, "exact_shapley", target=1, baseline=baseline)
    # the fix the message names, on the labels both frames hold, gives the label-matched truth
    common = X.index.intersection(rows.index)
    a = tribute.explain(clf, X.loc[common], "exact_shapley", target=1,
                        baseline=tribute.PerSample(rows.reindex(common)))
    exp = [_shapley(f, X.loc[k].to_numpy(), df_b.loc[k].to_numpy()) for k in common]
    np.testing.assert_allclose(a.values, np.array(exp), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["offset_train_slice", "fresh_next_to_dropped", "neighbours",
                                  "numpy_inputs"])
def test_per_sample_rows_from_elsewhere_stay_positional(case):
    """Partial overlaps that carry no label alignment: read by position, as documented."""
    clf, f, df, df_b = _setup()
    X, rows = df.iloc[10:20], df_b.iloc[15:25]  # offset_train_slice: 15..19 shared, all shifted
    if case == "fresh_next_to_dropped":  # inputs 0, 2..10 and a freshly built 0..9 frame
        X = df.drop(index=1).iloc[:10]
        rows = pd.DataFrame(df_b.to_numpy()[:10], columns=COLS)
    elif case == "neighbours":  # nearest-neighbour-like rows of a small training set
        X = df.iloc[:10]
        rows = df_b.iloc[[13, 0, 3, 19, 4, 11, 5, 16, 14, 6]]
    inputs = X.to_numpy() if case == "numpy_inputs" else X
    if case == "numpy_inputs":
        rows = df_b.drop(index=13).iloc[10:20]
    a = tribute.explain(clf, inputs, "exact_shapley", target=1, baseline=tribute.PerSample(rows))
    exp = np.array([_shapley(f, X.iloc[j].to_numpy(), rows.iloc[j].to_numpy())
                    for j in range(len(X))])
    np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-12)


def test_freeshap_infinite_regularization_is_refused_by_name(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
    from data_cases import mlp_case

    case = mlp_case(n=7, d=3, n_test=2, steps=20)
    with pytest.raises(InputError, match=r"regularization=inf is not allowed"):
        tribute.explain(case.model, case.X_test, method="freeshap", target=case.y_test,
                        players=case.data(), regularization=math.inf, n_permutations=5)
