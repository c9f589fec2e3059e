"""Audit aud45m (stop 45): metrics against hand references; regressions of what it found.

Truths are computed here without tribute's metric code: a float64 numpy forward of a tanh MLP
whose weights are numpy float64 draws (the same numbers on every CPU), and the deletion curve
written out (remove the top-k credits to the zero baseline, trapezoid over the fraction removed).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.metrics import evaluate
from tribute.metrics.api import OutputMismatchWarning
from tribute_testing import hand_deletion, tanh_net_numpy_forward, tanh_net_with_numpy


def _net(n_in: int = 6, hidden: int = 5, n_out: int = 3,
         dtype: torch.dtype = torch.float64) -> tuple[Any, dict[str, np.ndarray]]:
    return tanh_net_with_numpy(n_in, hidden, n_out, seed=11, dtype=dtype)


_f = tanh_net_numpy_forward


# ------------------------------------------------- credits scored on other inputs
@pytest.mark.parametrize("metric", ["deletion", "faithfulness_correlation", "shapley_error",
                                    "max_sensitivity"])
def test_credits_of_other_rows_warn(metric: str) -> None:
    """Credits of one batch scored on another batch of the same shape (a shuffled loader drawn
    twice) gave a number about rows the credits do not describe, silently: deletion -0.2524
    where the credits' own rows give -0.2657 (aud45m e8). The explained output the attribution
    recorded differs from the model's on the rows given, so evaluate warns."""
    net, w = _net()
    x = np.random.default_rng(3).normal(size=(16, 6))
    attr = tribute.explain(net, torch.from_numpy(x[:8]), method="kernel_shap", target=1)
    # the truth of the check: the recorded outputs are f(x[:8]), not f(x[8:])
    np.testing.assert_allclose(np.asarray(attr.full_values), _f(w, x[:8])[:, 1], atol=1e-12)
    assert np.abs(_f(w, x[8:])[:, 1] - _f(w, x[:8])[:, 1]).min() > 1e-3
    with pytest.warns(OutputMismatchWarning, match=r"attr.full_values.*8 of 8 samples differ"):
        evaluate(net, torch.from_numpy(x[8:]), attr, metric=metric)


def test_credits_on_their_own_rows_score_the_hand_deletion_without_warning() -> None:
    """The same call on the explained rows: no warning, and the hand deletion area."""
    net, w = _net()
    x = np.random.default_rng(3).normal(size=(8, 6))
    attr = tribute.explain(net, torch.from_numpy(x), method="kernel_shap", target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutputMismatchWarning)
        got = evaluate(net, torch.from_numpy(x), attr, metric="deletion", steps=6).scores
    phi = attr.flat()[:, 0, :]
    np.testing.assert_allclose(got, hand_deletion(lambda r: _f(w, r), x, phi, np.ones(8, dtype=int)),
                               rtol=0, atol=1e-12)


def test_one_shuffled_row_warns_and_names_it() -> None:
    """Two rows swapped: the warning names the first sample that differs and the count."""
    net, _ = _net()
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(5, 6)))
    attr = tribute.explain(net, x, method="feature_ablation", target=0)
    swapped = x[[0, 1, 3, 2, 4]]
    with pytest.warns(OutputMismatchWarning, match=r"for sample 2.*2 of 5 samples differ"):
        evaluate(net, swapped, attr, metric="insertion")


def _legit_cases() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    bg = tribute.Background(np.random.default_rng(9).normal(size=(6, 6)))
    return [
        ("float32 saliency", {"method": "saliency", "target": 1}, {}),
        ("float32 other batch size", {"method": "feature_ablation", "target": 1, "batch_size": 3},
         {"batch_size": 5}),
        ("per-sample targets", {"method": "kernel_shap", "target": np.array([0, 2, 1, 0, 2, 1, 0])}, {}),
        ("two targets", {"method": "kernel_shap", "target": [0, 2]}, {}),
        ("prob output", {"method": "kernel_shap", "target": 1, "output": "prob"}, {}),
        ("another output on purpose", {"method": "kernel_shap", "target": 1},
         {"output": "prob"}),
        ("background", {"method": "kernel_shap", "target": 1, "baseline": bg}, {"baseline": bg}),
        ("predicted", {"method": "integrated_gradients", "target": "predicted"}, {}),
        ("re-explaining metric", {"method": "saliency", "target": 0},
         {"metric": "avg_sensitivity", "n_samples": 4}),
        ("stability", {"method": "saliency", "target": 2}, {"metric": "stability"}),
        ("linear_score", {"method": "lime", "target": 1}, {"metric": "linear_score"}),
    ]


@pytest.mark.parametrize("case", _legit_cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_the_explained_rows_never_warn(case: tuple[str, dict[str, Any], dict[str, Any]],
                                       dtype: torch.dtype) -> None:
    """Legitimate neighbours of the warning's case: the explained rows with other targets,
    outputs, baselines, batch sizes, dtypes and metrics (22 calls) give no warning."""
    _, ex_kw, ev_kw = case
    net, _ = _net(dtype=dtype)
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(7, 6))).to(dtype)
    ev = dict(ev_kw)
    metric = ev.pop("metric", "deletion")
    attr = tribute.explain(net, x, **ex_kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", OutputMismatchWarning)
        res = evaluate(net, x, attr, metric=metric, **ev)
    assert np.isfinite(res.mean)


def test_the_check_spends_no_evaluation() -> None:
    """v(N) is the game's reference pass: n_evals and the rows the model sees are those of the
    metric alone (deletion of 6 players, steps=6: 6 coalitions besides v(N), 7 rows a sample)."""
    net, _ = _net()
    seen: list[int] = []
    net.register_forward_pre_hook(lambda m, a: seen.append(int(a[0].shape[0])))
    x = torch.from_numpy(np.random.default_rng(6).normal(size=(4, 6)))
    attr = tribute.explain(net, x, method="kernel_shap", target=1)
    seen.clear()
    res = evaluate(net, x, attr, metric="deletion", steps=6)
    assert res.n_evals == 6
    assert sum(seen) == 4 * 7


# ------------------------------------------------------------ truth mask values
def _gt_setup() -> tuple[Any, torch.Tensor, Any]:
    net, _ = _net(n_out=2)
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 6)))
    attr = tribute.explain(net, x, method="integrated_gradients", target=0)
    return net, x, attr


@pytest.mark.parametrize("metric", ["relevance_mass", "auroc", "precision_at_k", "relevance_rank"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_truth_entries_are_refused(metric: str, bad: float) -> None:
    """A NaN in the truth is non-zero, so it counted as relevant, silently: relevance_mass of a
    sample whose positive credit sat on the NaN element came out near 1 where the mask with
    that entry 0 gives 0 (aud45m e10). Refused, naming the count, the first index and a fix."""
    net, x, attr = _gt_setup()
    gt = np.zeros((3, 6))
    gt[:, :2] = 1
    gt[1, 5] = bad
    with pytest.raises(tribute.errors.InputError,
                       match=r"ground_truth holds 1 NaN or infinite entries \(first at index \(1, 5\)\)"):
        evaluate(net, x, attr, metric=metric, ground_truth=gt)


@pytest.mark.parametrize("bad", [np.array([["a"] * 6] * 3), np.zeros((3, 6), dtype=np.complex64),
                                 np.array([[None] * 6] * 3)], ids=["str", "complex", "object"])
def test_truth_of_a_non_numeric_dtype_is_refused(bad: np.ndarray) -> None:
    """A string mask was all relevant (auroc NaN for every sample, one class), a complex one
    all irrelevant; both are refused by dtype."""
    net, x, attr = _gt_setup()
    with pytest.raises(tribute.errors.InputError, match=r"ground_truth has dtype .*mask.astype\(bool\)"):
        evaluate(net, x, attr, metric="auroc", ground_truth=bad)


def _mask_forms() -> list[tuple[str, Any]]:
    m = np.zeros((3, 6), dtype=bool)
    m[:, :2] = True
    m[2, 4] = True
    return [
        ("bool", m), ("int", m.astype(int)), ("uint8 0/255", m.astype(np.uint8) * 255),
        ("float64", m.astype(float)), ("float32 soft", m.astype(np.float32) * 0.7),
        ("float16", m.astype(np.float16)), ("negative", -m.astype(float)),
        ("torch bool", torch.from_numpy(m)), ("torch float32", torch.from_numpy(m).float()),
        ("torch bfloat16", torch.from_numpy(m).to(torch.bfloat16)),
        ("nested list", m.astype(int).tolist()),
    ]


@pytest.mark.parametrize("form", _mask_forms(), ids=lambda f: f[0])
def test_every_numeric_truth_form_scores_the_hand_relevance_mass(form: tuple[str, Any]) -> None:
    """Legitimate neighbours of the refusal (11 forms, bfloat16 included, which raised a raw
    TypeError before): the hand relevance mass (positive credit inside over all positive
    credit, Arras et al.)."""
    net, x, attr = _gt_setup()
    _, gt = form
    m = np.zeros((3, 6), dtype=bool)
    m[:, :2] = True
    m[2, 4] = True
    pos = np.clip(attr.flat()[:, 0, :], 0.0, None)
    hand = (pos * m).sum(1) / pos.sum(1)
    got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=gt).scores
    np.testing.assert_allclose(got, hand, rtol=0, atol=1e-12)


# ------------------------------------------- random subsets that are all the same
def _linear_setup(n: int) -> tuple[Any, torch.Tensor, Any]:
    rng = np.random.default_rng(21)
    lin: Any = torch.nn.Linear(n, 1, bias=True).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(rng.normal(size=(1, n))))
        lin.bias.fill_(0.3)
    x = torch.from_numpy(rng.normal(size=(4, n)))
    # exact Shapley values of an additive game: w_i * x_i (zero baseline), by hand
    phi = (x.numpy() * lin.weight.detach().numpy())[:, None, :]
    attr = tribute.explain(lin, x, method="feature_ablation", target=0)
    np.testing.assert_allclose(attr.flat(), phi, atol=1e-12)
    return lin, x, attr


@pytest.mark.parametrize("alpha", [0.92, 0.95, 0.99])
def test_linear_score_refuses_an_alpha_that_keeps_every_player(alpha: float) -> None:
    """alpha=0.92 on 6 players keeps round(5.52) = 6: every coalition was the full one, 100
    evaluations spent and a NaN score for every sample, with no word (aud45m e19)."""
    lin, x, attr = _linear_setup(6)
    with pytest.raises(tribute.errors.InputError, match=r"alpha=0\.9\d keeps .* = 6 of the 6 players"):
        evaluate(lin, x, attr, metric="linear_score", alpha=alpha)


def test_faithfulness_correlation_refuses_removing_every_player() -> None:
    lin, x, attr = _linear_setup(6)
    with pytest.raises(tribute.errors.InputError, match=r"subset_size=6 removes all 6 players"):
        evaluate(lin, x, attr, metric="faithfulness_correlation", subset_size=6)


@pytest.mark.parametrize(("n", "kw"), [
    (6, {"metric": "linear_score", "alpha": 0.1}), (6, {"metric": "linear_score", "alpha": 0.5}),
    (6, {"metric": "linear_score", "alpha": 0.9}), (6, {"metric": "linear_score", "alpha": np.float32(0.75)}),
    (20, {"metric": "linear_score", "alpha": 0.95}), (2, {"metric": "linear_score"}),
    (6, {"metric": "faithfulness_correlation", "subset_size": 1}),
    (6, {"metric": "faithfulness_correlation", "subset_size": 5}),
    (3, {"metric": "faithfulness_correlation"}), (2, {"metric": "faithfulness_correlation"}),
    (20, {"metric": "faithfulness_correlation", "subset_size": 19}),
])
def test_exact_credits_of_an_additive_model_correlate_perfectly(n: int, kw: dict[str, Any]) -> None:
    """Legitimate neighbours of the refusals (11 settings): exact Shapley values of a linear
    model predict every coalition's value exactly, so both correlations are 1 (closed form)."""
    lin, x, attr = _linear_setup(n)
    ev = dict(kw)
    metric = ev.pop("metric")
    res = evaluate(lin, x, attr, metric=metric, n_subsets=30, **ev)
    np.testing.assert_allclose(res.scores, 1.0, atol=1e-9)


def test_a_single_player_keeps_its_undefined_correlation() -> None:
    """One player: every subset is that player whatever alpha/subset_size, so there is no
    choice to refuse; the score stays NaN (a constant has no correlation)."""
    lin, x, attr = _linear_setup(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for metric in ("linear_score", "faithfulness_correlation"):
            assert np.isnan(evaluate(lin, x, attr, metric=metric, n_subsets=5).scores).all()
