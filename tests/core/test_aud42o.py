"""aud42o: explain()'s options across methods and model kinds, against truths outside tribute.

Found at stop 42 (the full matrix of ~5,000 cells that agreed is in the aud42o report):

* a per-sample DataFrame baseline (``PerSample(rows)``, or a plain frame with one row per
  sample) whose index held the inputs' row labels in another order was read by position, so
  each sample was explained against another sample's row, silently (a logistic regression's
  exact Shapley values 0.89 off); a target Series in that situation was already refused.
* an infinite penalty (``lime`` ``alpha=inf``, ``coar`` ``ridge=inf``) passed the parameter
  check and failed deep inside the solver (numpy's "Eigenvalues did not converge", torch's
  "INTERNAL ASSERT FAILED ... please report a bug to PyTorch").

Truth: exact Shapley values by enumerating all 2^4 coalitions in plain numpy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError

F = 4
COLS = [f"c{i}" for i in range(F)]


def _exact_shapley_per_sample(f, X, rows):
    """Shapley values of v(S) = f(x_S, rows[n]_{not S}) for each sample n, by enumeration."""
    out = np.zeros((len(X), F))
    for n, x in enumerate(X):
        v = np.zeros(2 ** F)
        for s in range(2 ** F):
            m = np.array([(s >> i) & 1 for i in range(F)], bool)
            v[s] = f(np.where(m, x, rows[n])[None])[0]
        for i in range(F):
            for s in range(2 ** F):
                if not (s >> i) & 1:
                    c = bin(s).count("1")
                    out[n, i] += math.factorial(c) * math.factorial(F - c - 1) \
                        / math.factorial(F) * (v[s | 1 << i] - v[s])
    return out


def _model_and_frames():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    Xtr = rng.normal(size=(200, F))
    clf = LogisticRegression(max_iter=500).fit(
        pd.DataFrame(Xtr, columns=COLS), (Xtr[:, 0] + Xtr[:, 1] > 0).astype(int))
    X = pd.DataFrame(Xtr[:3], columns=COLS, index=[3, 4, 5])
    rows = pd.DataFrame(Xtr[100:103], columns=COLS, index=[3, 4, 5])
    return clf, X, rows


def _p1(clf):
    return lambda R: clf.predict_proba(pd.DataFrame(R, columns=COLS))[:, 1]


def test_per_sample_frame_in_inputs_order_matches_enumeration():
    clf, X, rows = _model_and_frames()
    exp = _exact_shapley_per_sample(_p1(clf), X.to_numpy(), rows.to_numpy())
    a = tribute.explain(clf, X, "exact_shapley", target=1, baseline=tribute.PerSample(rows))
    np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-12)
    # reindexing a shuffled copy back to the inputs' order is the fix the error names
    shuffled = rows.iloc[[2, 0, 1]]
    a = tribute.explain(clf, X, "exact_shapley", target=1,
                        baseline=tribute.PerSample(shuffled.reindex(X.index)))
    np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-12)


@pytest.mark.parametrize("marker", [tribute.PerSample, None])
def test_per_sample_frame_in_another_row_order_is_refused(marker):
    """The rows labelled 3, 4, 5 given as 5, 3, 4: read by position, sample 3 was explained
    against row 5's baseline (credits up to 0.89 off the enumeration), without a word."""
    clf, X, rows = _model_and_frames()
    shuffled = rows.iloc[[2, 0, 1]]
    baseline = shuffled if marker is None else marker(shuffled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plain frame's "read per sample" warning
        with pytest.raises(InputError, match=r"another order.*reindex\(inputs.index\)"):
            tribute.explain(clf, X, "exact_shapley", target=1, baseline=baseline)


def test_per_sample_frame_with_other_labels_is_read_by_position():
    """Rows taken from elsewhere (no label in common with the inputs) stay positional."""
    clf, X, rows = _model_and_frames()
    other = rows.set_axis([100, 101, 102])
    exp = _exact_shapley_per_sample(_p1(clf), X.to_numpy(), other.to_numpy())
    a = tribute.explain(clf, X, "exact_shapley", target=1, baseline=tribute.PerSample(other))
    np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-12)


def test_background_frame_in_any_row_order_is_accepted():
    """A background set is averaged over: its row order does not matter."""
    clf, X, rows = _model_and_frames()
    a = tribute.explain(clf, X, "exact_shapley", target=1,
                        baseline=tribute.Background(rows.iloc[[2, 0, 1]]))
    b = tribute.explain(clf, X, "exact_shapley", target=1, baseline=tribute.Background(rows))
    np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method,param", [("lime", "alpha"), ("coar", "ridge")])
def test_infinite_penalty_is_refused_by_name(method, param):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(F, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(2, F, dtype=torch.float64)
    with pytest.raises(InputError, match=rf"{param}=inf"):
        tribute.explain(net, x, method, baseline=0.0, budget=40, **{param: math.inf})  # type: ignore[arg-type]


def test_per_sample_fresh_frame_next_to_shifted_labels_is_read_by_position():
    """Inputs labelled 4, 5, 3 (a slice of a bigger frame) and a freshly built baseline frame
    (0, 1, 2): not the inputs' labels reordered, so read by position as the array would be."""
    clf, X, rows = _model_and_frames()
    X = X.set_axis([4, 5, 3])
    fresh = rows.reset_index(drop=True)
    exp = _exact_shapley_per_sample(_p1(clf), X.to_numpy(), fresh.to_numpy())
    a = tribute.explain(clf, X, "exact_shapley", target=1, baseline=tribute.PerSample(fresh))
    np.testing.assert_allclose(a.values, exp, rtol=0, atol=1e-12)


def test_unknown_numeric_label_message_names_the_argument():
    """It read "target =0 holds 0" (a stray space between the argument and its value)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, F))
    clf = LogisticRegression().fit(X, np.array([1, 4, 7])[np.digitize(X[:, 0], [-0.5, 0.5])])
    with pytest.raises(InputError, match=r"target=0 holds 0, which is not one of"):
        tribute.explain(clf, X[:2], "exact_shapley", target=0, baseline=X.mean(0))
    with pytest.raises(InputError, match=r"target list \[4, 0\] holds 0"):
        tribute.explain(clf, X[:2], "exact_shapley", target=[4, 0], baseline=X.mean(0))
