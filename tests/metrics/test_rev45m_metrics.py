"""Review of aud45m (metrics): evaluate's OutputMismatchWarning and the truth-mask dtype check.

- tree_shap of a boosted classifier records its margins in ``attr.full_values`` by design
  (``values.sum = full - base`` in the trees' units), while the game of ``output="raw"`` reads
  ``predict_proba``: every evaluate of it warned that the credits were for other inputs.
- float32 rounding of another batching (explain_dataset shards of 1 row against one pass over
  500 rows) moved a near-zero output by 4.8e-7 of the column's largest, past the floor of 1e-3 x
  1e-4 = 1e-7: a false warning on a legitimate call.
- pandas masks of mixed bool/int columns or nullable ``boolean``/``Int64``/``Float64`` columns
  (numpy object arrays of numbers) scored right before and were refused by dtype.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)

import tribute
from tribute.errors import InputError
from tribute.metrics import OutputMismatchWarning, evaluate


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(200, 5))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def _mismatch_warnings(fn: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in got if issubclass(w.category, OutputMismatchWarning)]


@pytest.mark.parametrize("kind", ["gbc", "gbc_exponential", "hgbc"])
@pytest.mark.parametrize("target", [1, None])
def test_tree_shap_margins_of_a_boosted_classifier_do_not_warn(kind: str, target: Any) -> None:
    x, y = _data()
    model: Any = {"gbc": GradientBoostingClassifier(n_estimators=10, random_state=0),
                  "gbc_exponential": GradientBoostingClassifier(n_estimators=10, loss="exponential",
                                                                random_state=0),
                  "hgbc": HistGradientBoostingClassifier(max_iter=10)}[kind].fit(x, y)
    rows = x[:4]
    attr = tribute.explain(model, rows, method="tree_shap", target=target)
    if target == 1 and kind != "gbc_exponential":
        # the recorded quantity is the margin (sklearn's decision_function), not the
        # probability the game reads: they legitimately differ
        np.testing.assert_allclose(np.asarray(attr.full_values), model.decision_function(rows), atol=1e-10)
        assert np.abs(model.predict_proba(rows)[:, 1] - model.decision_function(rows)).max() > 0.1
    assert _mismatch_warnings(lambda: evaluate(model, rows, attr, metric="deletion")) == []


def test_tree_shap_credits_of_other_rows_still_warn_where_units_agree() -> None:
    x, y = _data()
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    attr = tribute.explain(forest, x[:4], method="tree_shap", target=1)  # probabilities
    assert _mismatch_warnings(lambda: evaluate(forest, x[4:8], attr, metric="deletion"))
    boosted = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    attr = tribute.explain(boosted, x[:4], method="tree_shap", target=1, output="logit")  # margins
    assert _mismatch_warnings(lambda: evaluate(boosted, x[4:8], attr, metric="deletion"))
    assert _mismatch_warnings(lambda: evaluate(boosted, x[:4], attr, metric="deletion")) == []


def _f32_net_with_a_zero_output() -> tuple[torch.nn.Module, torch.Tensor, int]:
    torch.manual_seed(0)
    last = torch.nn.Linear(64, 2)
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), last).eval()
    x = torch.randn(32, 8)
    with torch.no_grad():
        last.bias[1] -= net(x[5:6])[0, 1]  # sample 5's output of class 1 is ~0
    return net, x, 5


def test_float32_rounding_of_another_batching_does_not_warn() -> None:
    # explain_dataset(shard_size=1) recorded an output of 2.688e-5 where one pass over the 500
    # rows gives 2.683e-5 (float32 sums in another order): 4.8e-7 of the column's largest output
    net, x, r = _f32_net_with_a_zero_output()
    attr = tribute.explain(net, x, method="saliency", target=1)
    with torch.no_grad():
        out = net(x)[:, 1].double().numpy()
    col = np.abs(out).max()
    assert abs(out[r]) < 1e-5 * col
    attr.full_values = np.asarray(attr.full_values, dtype=np.float64).copy()
    attr.full_values.reshape(-1)[r] += 5e-7 * col  # the size another batching gave
    assert _mismatch_warnings(lambda: evaluate(net, x, attr, metric="deletion", steps=3)) == []
    # rows swapped still warn, near-zero ones included
    other = attr.full_values.copy()
    other.reshape(-1)[[r, 6]] = other.reshape(-1)[[6, r]]
    attr.full_values = other
    got = _mismatch_warnings(lambda: evaluate(net, x, attr, metric="deletion", steps=3))
    assert len(got) == 1 and "2 of 32 samples differ" in got[0]


def _masks() -> list[tuple[str, Any]]:
    m = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 0, 1], [1, 1, 0, 0, 0]], dtype=bool)
    return [
        ("mixed bool/int/float columns", pd.DataFrame({0: m[:, 0], 1: m[:, 1].astype(int), 2: m[:, 2],
                                                       3: m[:, 3].astype(float), 4: m[:, 4]})),
        ("nullable boolean", pd.DataFrame(m).astype("boolean")),
        ("nullable Int64", pd.DataFrame(m.astype(int)).astype("Int64")),
        ("nullable Float64", pd.DataFrame(m.astype(float)).astype("Float64")),
        ("object ints", m.astype(int).astype(object)),
        ("object bools", m.astype(object)),
        ("object numpy scalars", np.array([[np.int64(v) for v in row] for row in m.astype(int)], dtype=object)),
    ]


@pytest.mark.parametrize("form", _masks(), ids=lambda f: f[0])
def test_object_masks_of_numbers_score_the_hand_relevance_mass(form: tuple[str, Any]) -> None:
    x, _ = _data()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    rows = torch.from_numpy(x[:3])
    attr = tribute.explain(net, rows, method="kernel_shap", target=1, budget=32)
    mask = np.asarray(_masks()[0][1].to_numpy(dtype=float)) != 0
    pos = np.clip(attr.flat()[:, 0, :], 0.0, None)
    hand = (pos * mask).sum(1) / pos.sum(1)  # positive credit inside over all positive credit
    got = evaluate(net, rows, attr, metric="relevance_mass", ground_truth=form[1]).scores
    np.testing.assert_allclose(got, hand, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [
    pd.DataFrame([[True, pd.NA], [False, True]], dtype="boolean"),
    np.array([[1, None], [0, 1]], dtype=object),
    np.array([["1", "0"], ["0", "1"]], dtype=object),
    np.array([[1.0, float("nan")], [0, 1]], dtype=object),
], ids=["pd.NA", "None", "strings", "object NaN"])
def test_object_masks_with_missing_or_text_entries_are_refused(bad: Any) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    x = torch.randn(2, 2, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", target=1)
    with pytest.raises(InputError, match="ground_truth"):
        evaluate(net, x, attr, metric="relevance_mass", ground_truth=bad)
