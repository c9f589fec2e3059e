"""Audit aud43m (stop 43): metrics against hand references; regressions of what it found.

Truths are computed here without tribute's metric code: a float64 numpy forward of a tanh MLP
whose weights are numpy float64 draws (the same numbers on every CPU), the metrics' paper
definitions written out (relevance mass: positive credit inside the truth over all positive
credit, Arras et al. 2022).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from metric_toys import TableGame, table_attr

import tribute
from tribute.attribution import Attribution
from tribute.errors import InputError
from tribute.metrics import (
    Blur,
    blur,
    evaluate,
    faithfulness_correlation,
    get_metric,
    infidelity,
    linear_score,
)
from tribute.metrics.robustness import perturb_inputs
from tribute_testing import tanh_net_numpy_forward, tanh_net_with_numpy


def _net(n_in: int = 6, hidden: int = 5, n_out: int = 2) -> tuple[Any, dict[str, np.ndarray]]:
    return tanh_net_with_numpy(n_in, hidden, n_out, seed=7)


_f = tanh_net_numpy_forward


# ------------------------------------------------------------------ ground truth
@pytest.mark.parametrize("as_type", ["list", "numpy", "torch"])
@pytest.mark.parametrize("metric", ["relevance_mass", "auroc", "precision_at_k", "relevance_rank"])
def test_batch_long_truth_vector_is_refused(metric: str, as_type: str) -> None:
    """A mask shared by every sample, ``[1, 1, 0, 0, 0, 0]`` for 6 features, given on a batch of
    6 was read as one flag per sample broadcast over the features: relevance_mass scored
    1, 1, 0, 0, 0, 0 (every feature of samples 0 and 1 relevant, none of the others), a silent
    wrong number. It is refused, naming the shape and the broadcast that says what was meant."""
    net, _ = _net()
    x = np.random.default_rng(3).normal(size=(6, 6))
    xt = torch.from_numpy(x)
    attr = tribute.explain(net, xt, method="integrated_gradients", target=0)
    mask = [1, 1, 0, 0, 0, 0]
    gt: Any = {"list": mask, "numpy": np.array(mask), "torch": torch.tensor(mask)}[as_type]
    with pytest.raises(InputError, match=r"shape \(6,\).*np.broadcast_to\(mask, \(6, 6\)\)"):
        evaluate(net, xt, attr, metric=metric, ground_truth=gt)


def test_shared_mask_broadcast_per_sample_matches_hand_relevance_mass() -> None:
    """The fix the error names: the mask broadcast to ``batch x features`` scores Arras et al.'s
    relevance mass per sample (hand: positive credit inside over all positive credit)."""
    net, _ = _net()
    x = np.random.default_rng(3).normal(size=(6, 6))
    xt = torch.from_numpy(x)
    attr = tribute.explain(net, xt, method="integrated_gradients", target=0)
    truth = np.broadcast_to(np.array([1, 1, 0, 0, 0, 0], dtype=bool), (6, 6))
    phi = np.clip(attr.flat()[:, 0, :], 0.0, None)
    hand = (phi * truth).sum(1) / phi.sum(1)
    got = evaluate(net, xt, attr, metric="relevance_mass", ground_truth=truth).scores
    np.testing.assert_allclose(got, hand, rtol=0, atol=1e-12)


def test_single_element_inputs_keep_a_batch_long_truth() -> None:
    """With one element per sample a batch-long vector is the per-element truth itself (not
    refused): relevance mass is 1 where the one positive credit is flagged, 0 where not."""
    net, _ = _net(n_in=1)
    x = torch.from_numpy(np.array([[1.0], [-2.0], [0.5]]))
    attr = tribute.explain(net, x, method="integrated_gradients", target=0)
    truth = np.array([1, 0, 1])
    phi = attr.flat()[:, 0, 0]
    hand = np.where(phi > 0, truth.astype(float), np.nan)
    got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=truth).scores
    np.testing.assert_allclose(got, hand, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------- seeds
def _table() -> tuple[TableGame, Attribution]:
    w = torch.tensor([[3.0, -1.0, 2.0, 0.5, 4.0, -2.0]], dtype=torch.float64)
    game = TableGame(lambda m: torch.tanh((m * w[:, None, :]).sum(-1) / 4), 6, 1)
    return game, table_attr(game, np.array([[0.9, -0.3, 0.6, 0.1, 1.2, -0.5]]))


@pytest.mark.parametrize("metric", [linear_score, faithfulness_correlation, infidelity])
@pytest.mark.parametrize("seed", [1.5, True, "3", -1, None])
def test_direct_call_refuses_a_seed_that_is_not_a_non_negative_int(metric: Any, seed: Any) -> None:
    """Called directly on a game (documented: ``metric(game, attr, **kw)``) these metrics read
    ``int(seed)``: ``seed=1.5`` and ``seed=True`` drew seed 1's subsets (the same score as
    seed=1), ``"3"`` seed 3's, ``-1`` a stream of its own, where ``evaluate`` and ``deletion``
    refuse them. Now refused the same way."""
    game, attr = _table()
    with pytest.raises(InputError, match="seed="):
        metric(game, attr, seed=seed)


def test_seed_beyond_torch_range_is_a_clear_error() -> None:
    """``evaluate(seed=2**64)`` passed the non-negative-int check and failed inside torch with
    "Overflow when unpacking long long"; the message now says what to pass."""
    net, _ = _net()
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 6)))
    attr = tribute.explain(net, x, method="integrated_gradients", target=0)
    with pytest.raises(InputError, match=r"seed=18446744073709551616 is too large"):
        evaluate(net, x, attr, metric="linear_score", seed=2**64)
    with pytest.raises(InputError, match="seed="):
        perturb_inputs(x, 0.1, 2, 1.5)  # type: ignore[arg-type]
    # an int seed still gives the same subsets as before: seed=1 twice, the same number
    game, tattr = _table()
    a = linear_score(game, tattr, seed=1, n_subsets=20)
    b = linear_score(game, tattr, seed=np.int64(1), n_subsets=20)
    assert a.mean == b.mean


# --------------------------------------------------------- ties at the cut-off
def _expected_top_k(phi: np.ndarray, truth: np.ndarray, k: int, tied: list[list[int]]) -> float:
    """E[true share of the top k] when the players of each listed block are one value: every
    order of the blocks' players enumerated (the blocks in decreasing credit)."""
    import itertools

    shares = []
    for perms in itertools.product(*[itertools.permutations(b) for b in tied]):
        order = [p for block in perms for p in block]
        shares.append(truth[order[:k]].mean())
    return float(np.mean(shares))


@pytest.mark.parametrize("metric", ["precision_at_k", "relevance_rank"])
def test_credits_equal_but_for_rounding_are_a_tie_at_the_cut_off(metric: str) -> None:
    """``0.1 + 0.2`` and ``0.3`` are the same credit but for the last bit (kernel_shap gives such
    credits on a symmetric game: 6 equal Shapley values 1e-16 apart). precision_at_k and
    relevance_rank compared them exactly, so the one a rounding put ahead was "the top": 0
    where the tie's expectation is 1/3 (k=3, 2 of 6 true; kernel_shap on w = 0.1 * ones scored
    0 for all three samples while auroc, which ties them like the deletion curves, gave 0.5)."""
    game = TableGame(lambda m: m.sum(-1), 6, 1)
    phi = np.array([[0.1 + 0.2, 0.3, 0.3, 0.3, 0.3, 0.3]])
    assert phi[0, 0] != phi[0, 1]  # the rounding the metric must see through
    truth = np.array([[0, 1, 1, 0, 0, 0]], dtype=bool)
    k = 3 if metric == "precision_at_k" else 2
    kw: dict[str, Any] = {"k": 3, "absolute": False} if metric == "precision_at_k" else {}
    res = get_metric(metric)(game, table_attr(game, phi), ground_truth=truth, **kw)
    hand = _expected_top_k(phi[0], truth[0], k, [list(range(6))])
    assert hand == pytest.approx(1 / 3)
    assert res.scores[0] == pytest.approx(hand, abs=1e-12)


def test_distinct_credits_keep_their_order_at_the_cut_off() -> None:
    """Credits that differ beyond rounding are ranked, not tied: with blocks {0}, {1, 2}, {3..5}
    the top 2 are player 0 and one of the tied pair (hand: enumerate the pair's orders)."""
    game = TableGame(lambda m: m.sum(-1), 6, 1)
    phi = np.array([[0.9, 0.5, 0.5, 0.1, 0.1, 0.1 + 1e-9]])
    truth = np.array([[0, 1, 0, 1, 1, 1]], dtype=bool)
    res = get_metric("precision_at_k")(game, table_attr(game, phi), ground_truth=truth, k=2)
    hand = _expected_top_k(phi[0], truth[0], 2, [[0], [1, 2], [5], [3, 4]])
    assert res.scores[0] == pytest.approx(hand, abs=1e-12)
    assert hand == pytest.approx(0.25)


def test_explanation_constant_but_for_rounding_takes_the_constant_rule() -> None:
    """stability over three re-explanations: a ranking A, credits equal but for rounding B
    (``0.1 + 0.2`` next to five ``0.3``) and an exactly constant C. The documented rule scores a
    constant explanation 0 against a non-constant one and 1 against another constant one, so
    the pairs are (A, B) 0, (A, C) 0, (B, C) 1: mean 1/3. B was not "constant" (exact
    equality) while Spearman tied its credits: (A, B) was NaN and so the sample's score, and
    (B, C) 0."""
    game = TableGame(lambda m: m.sum(-1), 6, 1)
    phis = {0: [0.5, -1.0, 2.0, 0.1, 0.7, 0.3], 1: [0.1 + 0.2, 0.3, 0.3, 0.3, 0.3, 0.3],
            2: [0.3] * 6}

    def explain(inputs: Any, seed: int = 0) -> Attribution:
        return table_attr(game, np.array([phis[seed]]))

    res = get_metric("stability")(game, table_attr(game, np.array([phis[0]])), explain=explain,
                                  inputs=np.zeros((1, 6)), seeds=[0, 1, 2])
    np.testing.assert_allclose(res.extra["pairwise"][0], [0.0, 0.0, 1.0], atol=0)
    assert res.scores[0] == pytest.approx(1 / 3)
    assert res.extra["n_constant"] == 3


# -------------------------------------------------------------------------- blur
def _hand_blur(x: np.ndarray, sigma: float, truncate: float = 3.0) -> np.ndarray:
    """Separable Gaussian (radius ceil(truncate * sigma), normalised) over the last two axes
    with replicate padding, written as a sum over clamped indices."""
    r = max(1, int(np.ceil(truncate * sigma)))
    off = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (off / sigma) ** 2)
    k /= k.sum()
    out = x.copy()
    for axis in (-1, -2):
        n = out.shape[axis]
        cols = [np.tensordot(np.take(out, np.clip(i + off, 0, n - 1), axis=axis), k,
                             axes=([axis], [0])) for i in range(n)]
        out = np.stack(cols, axis=axis)
    return out


@pytest.mark.parametrize("sigma", [1.3, 5.0, 40.0, 2.0e4])
def test_blur_matches_the_hand_convolution_also_for_kernels_wider_than_the_image(sigma: float) -> None:
    """A kernel wider than the image (radius 15 to 6e4 on 6 x 7) is blurred through an h x h
    and a w x w matrix (replicate padding folds the tails onto the edge pixels): the same
    numbers as the clamped-index sum. Before, each row was padded by the radius: sigma=1e6
    asked for 28 GB on two 9 x 11 images."""
    x = np.random.default_rng(5).normal(size=(2, 3, 6, 7))
    got = blur(x, Blur(sigma=sigma))
    np.testing.assert_allclose(got, _hand_blur(x, sigma), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kw", [{"sigma": "2"}, {"sigma": float("inf")}, {"sigma": True},
                                {"truncate": float("nan")}, {"truncate": -1.0},
                                {"sigma": 1e9}])
def test_blur_refuses_a_sigma_or_truncate_it_cannot_use(kw: dict[str, Any]) -> None:
    """sigma='2' raised a TypeError, inf an OverflowError, truncate=nan a ValueError, and
    truncate=-1 blurred with radius 1 silently; a radius above 1e7 pixels would allocate
    gigabytes. Each is an InputError naming the argument."""
    name = next(iter(kw))
    with pytest.raises(InputError, match=rf"Blur\({name}="):
        blur(np.zeros((1, 2, 5, 5)), Blur(**kw))


# ------------------------------------------------------------------ channels-last
def _image_net(channels_last: bool) -> Any:
    g = torch.Generator().manual_seed(2)
    cf = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),
                             torch.nn.Linear(2 * 8 * 8, 3)).double()
    with torch.no_grad():
        for p in cf.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    if not channels_last:
        return cf

    class ChannelsLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = cf

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x.permute(0, 3, 1, 2))

    return ChannelsLast()


def test_image_metrics_warn_on_channels_last_inputs() -> None:
    """ROAD imputes, the square infidelity masks, SSIM maps and blur work over the last two
    axes: on (8, 8, 3) images they worked over (width, channel) planes, silently: ROAD 1.83 for
    1.65 on the same model and credits laid out channels-first. They now warn; the
    channels-first layout of the same images does not."""
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 8, 8)))
    tg = np.array([0, 2])
    for last in (False, True):
        net, xx = _image_net(last), (x.permute(0, 2, 3, 1).contiguous() if last else x)
        attr = tribute.explain(net, xx, method="saliency", target=tg)
        runs: list[tuple[str, dict[str, Any]]] = [
            ("road", {"fractions": (0.0, 0.5)}),
            ("infidelity", {"perturbation": "square", "n_perturbations": 3}),
            ("stability", {"similarity": "ssim", "seeds": [0, 1],
                           "explain": lambda z, seed=0, a=attr, **kw: a}),
        ]
        for metric, kw in runs:
            with warnings.catch_warnings(record=True) as got:
                warnings.simplefilter("always")
                evaluate(net, xx, attr, metric=metric, **kw)
            hit = [w for w in got if "channels-last" in str(w.message)]
            assert bool(hit) == last, (metric, last, [str(w.message) for w in got])
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            blur(xx.numpy())
        assert any("channels-last" in str(w.message) for w in got) == last


@pytest.mark.parametrize("layers", [[], ()])
def test_model_randomisation_refuses_an_empty_layer_list_by_name(layers: Any) -> None:
    """``layers=[]`` was refused with "the model has no layers with parameters" (it has two)."""
    net, _ = _net()
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 6)))
    attr = tribute.explain(net, x, method="saliency", target=0)
    with pytest.raises(InputError, match=r"layers=\[\] selects no layer.*\['0', '2'\]"):
        evaluate(net, x, attr, metric="model_randomisation", layers=layers)


@pytest.mark.parametrize("metric", ["relevance_mass", "auroc", "precision_at_k", "random_logit",
                                    "stability", "model_randomisation"])
@pytest.mark.parametrize("value", ["False", "no", 2, None])
def test_absolute_must_be_a_bool(metric: str, value: Any) -> None:
    """``absolute="False"`` (a non-empty string) was read as True, silently: relevance_mass
    0.836 where absolute=False gives 0.981 (the positive part), random_logit 0.257 for -0.600.
    Refused as the deletion flags are (aud41f), before any re-explanation."""
    net, _ = _net(n_out=3)
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 6)))
    attr = tribute.explain(net, x, method="integrated_gradients", target=np.array([0, 1, 2]))
    calls: list[int] = []

    def explain(*args: Any, **kw: Any) -> Attribution:
        calls.append(1)
        return attr

    kw: dict[str, Any] = {"absolute": value}
    if metric in ("relevance_mass", "auroc", "precision_at_k"):
        kw["ground_truth"] = np.repeat([[1, 1, 1, 0, 0, 0]], 3, axis=0)
    else:
        kw["explain"] = explain
    with pytest.raises(InputError, match="absolute="):
        evaluate(net, x, attr, metric=metric, **kw)
    assert not calls


@pytest.mark.parametrize("metric", ["random_logit", "stability", "model_randomisation"])
def test_unknown_similarity_is_refused_before_re_explaining(metric: str) -> None:
    net, _ = _net(n_out=3)
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 6)))
    attr = tribute.explain(net, x, method="integrated_gradients", target=np.array([0, 1, 2]))
    calls: list[int] = []

    def explain(*args: Any, **kw: Any) -> Attribution:
        calls.append(1)
        return attr

    with pytest.raises(InputError, match="similarity='pearson'"):
        evaluate(net, x, attr, metric=metric, similarity="pearson", explain=explain)
    assert not calls
