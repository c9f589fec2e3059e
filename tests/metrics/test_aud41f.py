"""Audit aud41f (stop 41): faithfulness metrics against hand references, Captum, and option checks.

Truths are computed outside tribute's metric code: a float64 numpy forward of a tanh MLP
classifier (logits and softmax probabilities), removal to a baseline row or to the uniform
mean over a background set; the expected deletion/insertion curve under random tie-breaking by
enumerating every order of each tied block; Spearman/Pearson from scipy on the metric's seeded
subsets; Yeh et al.'s infidelity from ``captum.metrics.infidelity`` on the same perturbations.
The model is built from numpy float64 draws (the same numbers on every CPU).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch
from metric_toys import TableGame, table_attr

import tribute
from tribute.errors import InputError
from tribute.metrics import loo_correlation, mislabel_auc

N = 7


def _net() -> tuple[Any, dict[str, np.ndarray], np.random.Generator]:
    rng = np.random.default_rng(1)
    net: Any = torch.nn.Sequential(torch.nn.Linear(N, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    p = {"w1": rng.normal(size=(5, N)), "b1": rng.normal(size=5), "w2": rng.normal(size=(3, 5))}
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(p["w1"]))
        net[0].bias.copy_(torch.from_numpy(p["b1"]))
        net[2].weight.copy_(torch.from_numpy(p["w2"]))
        net[2].bias.zero_()
    return net, p, rng


def _forward(p: dict[str, np.ndarray], z: np.ndarray, output: str) -> np.ndarray:
    logits = np.tanh(z @ p["w1"].T + p["b1"]) @ p["w2"].T
    if output == "prob":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return logits


def _values(p: dict[str, np.ndarray], x: np.ndarray, base: np.ndarray, masks: np.ndarray,
            target: int, output: str) -> np.ndarray:
    """``v(m)`` for fractional presence masks ``K x n``: the mean over the background rows."""
    rows = base[None] + masks[:, None, :] * (x[None, None, :] - base[None])  # K x M x n
    return _forward(p, rows, output)[..., target].mean(1)


def _subsets(n: int, size: int, k: int, seed: int) -> np.ndarray:
    """The metrics' seeded subsets (``random_subsets``), drawn here from the same generator."""
    g = torch.Generator().manual_seed(seed)
    rank = torch.rand(k, n, generator=g, dtype=torch.float64).argsort(1).argsort(1)
    return (rank < size).double().numpy()


@pytest.mark.parametrize("output", ["raw", "prob"])
@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("insert", [False, True])
def test_deletion_insertion_are_the_expected_curve_over_tie_orders(
        output: str, background: bool, insert: bool) -> None:
    # steps=4 on 7 players (counts 0, 2, 4, 5, 7: round half to even), per-sample targets,
    # a tie of two (exact with antithetic orders) and blocks of ties (Monte Carlo)
    net, p, rng = _net()
    x = rng.normal(size=(3, N))
    base = rng.normal(size=(4, N)) if background else rng.normal(size=(1, N))
    tgt = np.array([2, 0, 1])
    phi = rng.normal(size=(3, N))
    phi[1, 2] = phi[1, 5]
    phi[2] = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0]  # steps 4 and 5 split the block of zeros
    attr = tribute.explain(net, torch.from_numpy(x), method="feature_ablation", target=tgt,
                           baseline=torch.from_numpy(base), output=output, progress=False)
    attr.values = torch.from_numpy(phi)
    res = tribute.evaluate(net, torch.from_numpy(x), attr, metric="insertion" if insert else "deletion",
                           steps=4, normalise=True, baseline=torch.from_numpy(base), tie_orders=200,
                           progress=False)
    counts = np.array([0, 2, 4, 5, 7])
    want = []
    for i in range(3):
        blocks = [np.flatnonzero(phi[i] == v) for v in np.unique(phi[i])[::-1]]
        orders: list[list[int]] = [[]]
        for blk in blocks:
            orders = [o + [int(j) for j in q] for o in orders for q in itertools.permutations(blk)]
        masks = []
        for k in counts:
            for o in orders:
                keep = np.zeros(N) if insert else np.ones(N)
                keep[o[:k]] = 1.0 if insert else 0.0
                masks.append(keep)
        v = _values(p, x[i], base, np.array(masks), tgt[i], output).reshape(len(counts), -1).mean(1)
        full, empty = _values(p, x[i], base, np.array([np.ones(N), np.zeros(N)]), tgt[i], output)
        y = (v - empty) / (full - empty)
        want.append(np.trapezoid(y, counts / N))
    se = np.asarray(res.extra["stderr_ties"])
    assert se[0] == 0.0 and se[2] > 0.0
    np.testing.assert_allclose(res.scores[:2], want[:2], rtol=1e-10)  # no tie / a tie of two
    assert abs(res.scores[2] - want[2]) < 5 * se[2]  # Monte Carlo over the tie orders


@pytest.mark.parametrize("output", ["raw", "prob"])
def test_subset_metrics_on_a_background_set_match_scipy(output: str) -> None:
    net, p, rng = _net()
    x = rng.normal(size=(3, N))
    bg = rng.normal(size=(5, N))
    tgt = np.array([1, 2, 0])
    phi = rng.normal(size=(3, N))
    attr = tribute.explain(net, torch.from_numpy(x), method="feature_ablation", target=tgt,
                           baseline=torch.from_numpy(bg), output=output, progress=False)
    attr.values = torch.from_numpy(phi)
    kw: dict[str, Any] = {"baseline": torch.from_numpy(bg), "progress": False}
    ls = tribute.evaluate(net, torch.from_numpy(x), attr, metric="linear_score", alpha=0.3,
                          n_subsets=25, seed=3, **kw)
    fc = tribute.evaluate(net, torch.from_numpy(x), attr, metric="faithfulness_correlation",
                          subset_size=3, n_subsets=25, seed=2, **kw)
    keep, drop = _subsets(N, 2, 25, 3), _subsets(N, 3, 25, 2)
    for i in range(3):
        v = _values(p, x[i], bg, keep, tgt[i], output)
        assert ls.scores[i] == pytest.approx(scipy.stats.spearmanr(phi[i] @ keep.T, v).statistic,
                                             rel=1e-10)
        full = _values(p, x[i], bg, np.ones((1, N)), tgt[i], output)[0]
        d = full - _values(p, x[i], bg, 1.0 - drop, tgt[i], output)
        assert fc.scores[i] == pytest.approx(scipy.stats.pearsonr(phi[i] @ drop.T, d).statistic,
                                             rel=1e-10)


@pytest.mark.parametrize("perturbation", ["gaussian", "square"])
@pytest.mark.parametrize("scale_invariant", [False, True])
def test_infidelity_equals_captum_on_the_same_perturbations(perturbation: str,
                                                           scale_invariant: bool) -> None:
    captum_metrics = pytest.importorskip("captum.metrics")
    rng = np.random.default_rng(7)
    c, h, w, k, seed = 2, 6, 5, 30, 4
    net: Any = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c * h * w, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.from_numpy(rng.normal(size=tuple(prm.shape)) * 0.4))
    x = torch.from_numpy(rng.normal(size=(3, c, h, w)))
    base = torch.from_numpy(rng.normal(size=(1, c, h, w)))
    tgt = torch.tensor([2, 0, 1])
    square: dict[str, Any] = {"square_size": 2} if perturbation == "square" else {}
    attr = tribute.explain(net, x, method="saliency", target=tgt.numpy(), baseline=base,
                           progress=False)
    res = tribute.evaluate(net, x, attr, metric="infidelity", baseline=base, seed=seed,
                           perturbation=perturbation, n_perturbations=k, noise=0.3,
                           scale_invariant=scale_invariant, progress=False, **square)
    assert res.extra["units"] == "gradient"  # Yeh et al.'s I^T grad, I = u * (x - b)
    g = torch.Generator().manual_seed(seed)
    if perturbation == "gaussian":
        u = torch.randn(k, c * h * w, generator=g, dtype=torch.float64) * 0.3
    else:  # 2 x 2 squares over both channels
        s = 2
        top = torch.randint(0, h - s + 1, (k,), generator=g)
        left = torch.randint(0, w - s + 1, (k,), generator=g)
        sq = torch.zeros(k, c, h, w, dtype=torch.float64)
        for j in range(k):
            sq[j, :, top[j]:top[j] + s, left[j]:left[j] + s] = 1.0
        u = sq.reshape(k, -1)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        big = u.repeat(inputs.shape[0] // k, 1).reshape(inputs.shape) * (inputs - base)
        return big, inputs - big

    want = captum_metrics.infidelity(net, perturb, x, torch.as_tensor(np.asarray(attr.values)),
                                     target=tgt, n_perturb_samples=k, max_examples_per_batch=3 * k,
                                     normalize=scale_invariant)
    np.testing.assert_allclose(res.scores, want.numpy(), rtol=1e-10)


# ------------------------------------------------------------------ option checks
def _image_case() -> tuple[Any, torch.Tensor, tribute.Attribution]:
    rng = np.random.default_rng(3)
    net: Any = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.from_numpy(rng.normal(size=tuple(prm.shape))))
    x = torch.from_numpy(rng.normal(size=(2, 1, 4, 4)))
    return net, x, tribute.explain(net, x, method="feature_ablation", target=0, progress=False)


def _run(net: Any, x: torch.Tensor, attr: tribute.Attribution, metric: str, **kw: Any) -> Any:
    return tribute.evaluate(net, x, attr, metric=metric, progress=False, **kw)


@pytest.mark.parametrize(("metric", "flag"), [("deletion", "normalise"), ("insertion", "normalise"),
                                              ("infidelity", "scale_invariant")])
def test_a_flag_given_as_a_string_is_refused(metric: str, flag: str) -> None:
    # bool("no") is True: normalise="no" normalised the curve, scale_invariant="False" rescaled
    # the credits (3x exact credits of a linear model scored 1e-30 for 11.4 and 9.5), silently
    net, x, attr = _image_case()
    attr.values = 3 * attr.values  # exact credits of a linear model, 3x too large
    bads: tuple[Any, ...] = ("no", "False", 2, None)
    for bad in bads:
        with pytest.raises(InputError, match=rf"{flag}={bad!r} must be True or False"):
            _run(net, x, attr, metric, **{flag: bad})
    off = _run(net, x, attr, metric, **{flag: False})
    on = _run(net, x, attr, metric, **{flag: True})
    assert not np.allclose(off.scores, on.scores)
    sames: tuple[tuple[Any, Any], ...] = ((0, off), (np.False_, off), (1, on), (np.True_, on))
    for same, ref in sames:
        np.testing.assert_array_equal(
            _run(net, x, attr, metric, **{flag: same}).scores,
            ref.scores)


def test_loo_correlation_rank_given_as_a_string_is_refused() -> None:
    w = torch.tensor([[3.0, -1.0, 2.0, 0.5]], dtype=torch.float64)
    game = TableGame(lambda m: (m * w[:, None, :]).sum(-1) ** 2, 4, 1)
    attr = table_attr(game, np.array([[1.0, 0.2, -0.3, 4.0]]))
    with pytest.raises(InputError, match=r"rank='no' must be True or False"):
        loo_correlation(game, attr, rank="no")
    pearson = loo_correlation(game, attr, rank=False).scores
    assert loo_correlation(game, attr, rank=0).scores == pytest.approx(pearson)


@pytest.mark.parametrize("kw", [{"noise": -0.1}, {"noise": float("nan")}, {"noise": "a"},
                                {"noise": float("inf")}])
def test_road_refuses_a_noise_that_is_not_a_std(kw: dict[str, Any]) -> None:
    # -0.1 was read as a std (no error), nan reached the model (ModelOutputError), "a" a bare
    # ValueError from float()
    net, x, attr = _image_case()
    with pytest.raises(InputError, match=r"noise \(std of the imputation noise\)=.* must be a "
                                         r"finite number >= 0"):
        tribute.evaluate(net, x, attr, metric="road", progress=False, **kw)


@pytest.mark.parametrize("fractions", [0.5, (0.0, float("nan")), ("a", "b"), None])
def test_road_refuses_fractions_that_are_not_increasing_numbers(fractions: Any) -> None:
    # 0.5 and None raised a bare TypeError; (0, nan) passed the check and removed
    # round(nan * n) players (NaN cast to int64: a RuntimeWarning, then garbage counts)
    net, x, attr = _image_case()
    with pytest.raises(InputError, match=r"fractions=.* must be at least two increasing numbers"):
        tribute.evaluate(net, x, attr, metric="road", fractions=fractions, progress=False)


def test_gaussian_infidelity_noise_must_be_a_finite_std() -> None:
    # noise=inf reached the model (ModelOutputError: output is NaN); noise=True was read as 1.0;
    # a numpy float32 std was refused as "not a positive std"
    net, x, attr = _image_case()
    for bad in (float("inf"), True, 0.0, -1):
        with pytest.raises(InputError, match=r"noise \(std of the gaussian perturbations\)=.* "
                                             r"must be a finite number > 0"):
            tribute.evaluate(net, x, attr, metric="infidelity", noise=bad, progress=False)
    f32 = tribute.evaluate(net, x, attr, metric="infidelity", noise=np.float32(0.25), progress=False)
    py = tribute.evaluate(net, x, attr, metric="infidelity", noise=0.25, progress=False)
    np.testing.assert_array_equal(f32.scores, py.scores)


def test_mislabel_auc_extra_auc_leaves_out_an_undefined_self_influence() -> None:
    # a flipped example with a NaN self-influence sorted above every clean example and counted
    # as a perfect detection in extra["auc"]: 0.78 where the scores' mean and sklearn's AUROC
    # over the examples with finite credits are 0.67
    phi = np.random.default_rng(0).normal(size=(6, 6)) * 0.1
    np.fill_diagonal(phi, [0.9, 0.1, 0.5, np.nan, 0.3, 0.2])
    _assert_auc_over_finite_rows(phi, np.array([True, False, False, True, False, True]))


def _assert_auc_over_finite_rows(phi: np.ndarray, flipped: np.ndarray) -> None:
    """mislabel_auc (its mean and extra["auc"]) = sklearn's AUROC of the self-influences over the
    examples whose credits are all finite."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    n = phi.shape[0]
    game = TableGame(lambda m: m.sum(-1), n, n)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        res = mislabel_auc(game, table_attr(game, phi), ground_truth=flipped)
    ok = np.isfinite(phi).all(axis=1)
    want = sklearn_metrics.roc_auc_score(flipped[ok], np.abs(np.diag(phi))[ok])
    assert res.mean == pytest.approx(want, rel=1e-12)
    assert res.extra["auc"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad"])
def test_infidelity_warns_on_grouped_gradient_credits(method: str) -> None:
    # grouped saliency credits are sums of element gradients; units='auto' read them as output
    # changes on a grouped game: 0.009 and 0.006 where the exact credits of this linear model
    # (grouped input x gradient) score ~1e-33, with no word
    import warnings

    rng = np.random.default_rng(0)
    net = torch.nn.Linear(6, 2).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(rng.normal(size=(2, 6))))
    x = torch.from_numpy(rng.normal(size=(2, 6)))
    groups = np.array([0, 0, 1, 1, 2, 2])
    grouped = tribute.explain(net, x, method=method, target=0, groups=groups, progress=False)
    with pytest.warns(UserWarning, match=rf"{method}' are gradients \(summed over each player's "
                                         r"elements\).*Explain without groups"):
        tribute.evaluate(net, x, grouped, metric="infidelity", progress=False)
    exact = tribute.explain(net, x, method="input_x_gradient", target=0, groups=groups,
                            progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tribute.evaluate(net, x, exact, metric="infidelity", progress=False).mean < 1e-25
        tribute.evaluate(net, x, grouped, metric="infidelity", units="output", progress=False)
        dense = tribute.explain(net, x, method=method, target=0, progress=False)
        res = tribute.evaluate(net, x, dense, metric="infidelity", progress=False)
        assert res.extra["units"] == "gradient" and res.mean < 1e-25  # Yeh's reading: exact


@pytest.mark.parametrize("weighted", [False, True])
def test_road_fallback_for_a_removed_channel_averages_the_background_rows(weighted: bool) -> None:
    # a channel with no kept pixel takes the baseline; with a background set compose() gave the
    # set's FIRST row, so the score depended on the rows' order (on a linear model in the audit:
    # -11.55 where the rows average -6.55)
    rng = np.random.default_rng(3)
    c, h, w = 3, 4, 4
    net: Any = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c * h * w, 2), torch.nn.Tanh()).double()
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.from_numpy(rng.normal(size=tuple(prm.shape)) * 0.3))
    x = torch.from_numpy(rng.normal(size=(2, c, h, w)))
    rows = rng.normal(size=(4, c, h, w))
    wts = np.array([0.1, 0.2, 0.3, 0.4]) if weighted else np.full(4, 0.25)
    phi = np.concatenate([10 + rng.random((2, 1, h, w)), rng.random((2, c - 1, h, w))], axis=1)
    scores = []
    for perm in (np.arange(4), np.array([2, 0, 3, 1])):
        bg = tribute.Background(torch.from_numpy(rows[perm]), weights=wts[perm] if weighted else None)
        attr = tribute.explain(net, x, method="feature_ablation", target=0, baseline=bg, progress=False)
        attr.values = torch.from_numpy(phi)
        res = tribute.evaluate(net, x, attr, metric="road", baseline=bg, noise=0.0,
                               fractions=(0.0, 1 / 3, 0.5), progress=False)
        scores.append(res.extra["morf"][:, 1])  # channel 0 (16 of 48 elements) removed whole
    # the game's removal: the weighted mean over the background rows of the model with channel 0
    # at each row's values (rev41a: the mean row fed to this tanh model is not that value)
    want = np.zeros(2)
    with torch.no_grad():
        for r, wt in zip(rows, wts):
            z = x.clone()
            z[:, 0] = torch.from_numpy(r[0])
            want += wt * net(z)[:, 0].numpy()
    np.testing.assert_allclose(scores[0], want, rtol=1e-12)
    np.testing.assert_allclose(scores[1], want, rtol=1e-12)


def test_road_whole_channel_removals_average_the_background_rows_per_sample() -> None:
    # rev41a: samples whose MoRF/LeRF remove whole channels at different points (and one sample
    # that never removes a whole channel) in one batch; a removed channel is averaged over the
    # background rows as the game removes players, not fed as the mean row (tanh MLP: the mean
    # row missed the game's value by up to 0.27)
    rng = np.random.default_rng(5)
    c, h, w = 3, 4, 4
    net: Any = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c * h * w, 8), torch.nn.Tanh(),
                                   torch.nn.Linear(8, 2)).double()
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.from_numpy(rng.normal(size=tuple(prm.shape))))
    x = torch.from_numpy(rng.normal(size=(3, c, h, w)))
    rows = rng.normal(size=(5, c, h, w)) * 1.5
    wts = np.array([0.1, 0.15, 0.2, 0.25, 0.3])
    level = np.array([[30.0, 20.0, 10.0], [10.0, 30.0, 20.0]])  # channel credit levels
    phi = np.empty((3, c, h, w))
    phi[:2] = level[:, :, None, None] + rng.random((2, c, h, w))
    phi[2] = rng.random((c, h, w))
    phi[2, :, ::2, ::2] += 10  # every channel keeps some pixels at each point
    bg = tribute.Background(torch.from_numpy(rows), weights=wts)
    attr = tribute.explain(net, x, method="feature_ablation", target=0, baseline=bg, progress=False)
    attr.values = torch.from_numpy(phi)
    fractions = (0.0, 1 / 3, 2 / 3)
    res = tribute.evaluate(net, x, attr, metric="road", baseline=bg, noise=0.0, fractions=fractions,
                           progress=False)

    def game_value(i: int, gone: list[int]) -> float:
        with torch.no_grad():
            z = x[i].repeat(len(rows), 1, 1, 1)
            z[:, gone] = torch.from_numpy(rows[:, gone])
            return float((wts * net(z)[:, 0].numpy()).sum())

    for i in range(2):
        order = list(np.argsort(-level[i]))
        for j, n_gone in enumerate((1, 2), start=1):
            assert res.extra["morf"][i, j] == pytest.approx(game_value(i, order[:n_gone]), rel=1e-12)
            assert res.extra["lerf"][i, j] == pytest.approx(game_value(i, order[::-1][:n_gone]),
                                                            rel=1e-12)
    # a sample that never removes a whole channel is imputed only: the baseline plays no part
    single = tribute.evaluate(net, x, attr, metric="road", baseline=0.0, noise=0.0,
                              fractions=fractions, progress=False)
    np.testing.assert_allclose(res.extra["morf"][2], single.extra["morf"][2], rtol=1e-12)
    np.testing.assert_allclose(res.extra["lerf"][2], single.extra["lerf"][2], rtol=1e-12)


@pytest.mark.parametrize("groups", [np.arange(6), np.array([3, 5, 0, 1, 4, 2])])
def test_infidelity_reads_saliency_on_one_element_groups_as_gradients(groups: np.ndarray) -> None:
    # rev41a: groups that give each element its own player keep Yeh et al.'s reading
    # (sum_i u_i (x_i - b_i) phi_i, exact on a linear model); they were read as output changes
    # (0.0098 where the same credits ungrouped score ~1e-33) with a warning that the players
    # were not single elements
    import warnings

    rng = np.random.default_rng(0)
    net = torch.nn.Linear(6, 2).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(rng.normal(size=(2, 6))))
    x = torch.from_numpy(rng.normal(size=(2, 6)))
    bg = tribute.Background(torch.from_numpy(rng.normal(size=(3, 6))))
    for baseline in (0.5, bg):
        sal = tribute.explain(net, x, method="saliency", target=0, groups=groups, baseline=baseline,
                              progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = tribute.evaluate(net, x, sal, metric="infidelity", baseline=baseline, progress=False)
            forced = tribute.evaluate(net, x, sal, metric="infidelity", baseline=baseline,
                                      units="gradient", progress=False)
        assert res.extra["units"] == "gradient" and res.mean < 1e-25
        np.testing.assert_allclose(forced.scores, res.scores, rtol=1e-12, atol=1e-30)


@pytest.mark.parametrize("where", [(1, 3), (3, 1), (1, 1), (3, 3)])
def test_mislabel_auc_leaves_out_clean_and_flipped_rows_with_undefined_credits_alike(
        where: tuple[int, int]) -> None:
    # rev41a: a NaN credit in a flipped row left that example out, one in a clean row (off its
    # diagonal) did not: 0.80 where sklearn's AUROC over the examples with finite credits is 0.75
    phi = np.random.default_rng(0).normal(size=(8, 8)) * 0.1
    np.fill_diagonal(phi, [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.05, 0.6])
    phi[where] = np.nan
    _assert_auc_over_finite_rows(phi, np.array([1, 0, 0, 1, 0, 1, 0, 0], dtype=bool))
