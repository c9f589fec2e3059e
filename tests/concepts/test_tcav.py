"""TCAV on a synthetic model whose concept direction is known (Kim et al. 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.tcav import (
    bonferroni,
    concept_activation_vector,
    one_set_p_value,
    permutation_p_value,
    tcav,
    tcav_scores,
    welch_p_value,
)

D = 6


class Known(torch.nn.Module):
    """``a = W x`` (layer "body"); logit 1 = ``u.a + 1.5 (v.a)^2``, logit 0 = its negative.

    The gradient of logit 1 w.r.t. ``a`` is ``u + 3 (v.a) v`` with ``v`` orthogonal to ``u``,
    so along the concept direction ``u`` every directional derivative is exactly 1 > 0.
    """

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.body = torch.nn.Linear(D, D, bias=False)
        with torch.no_grad():
            self.body.weight.copy_(torch.eye(D) + 0.1 * torch.randn(D, D, generator=g))
        self.register_buffer("u", torch.eye(D)[0])
        self.register_buffer("v", torch.eye(D)[1])
        self.dropout = torch.nn.Dropout(0.5)  # training mode would make results random

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.dropout(self.body(x))
        z = a @ self.u + 1.5 * (a @ self.v) ** 2
        return torch.stack([-z, z], dim=1)


def _data(seed: int = 1) -> tuple[Known, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = Known()
    winv = torch.linalg.inv(model.body.weight.detach())
    inputs = torch.randn(40, D, generator=g)
    random = torch.randn(60, D, generator=g)
    # Concept examples: activations shifted by +3 along u (inputs mapped back through W^-1).
    concept = torch.randn(20, D, generator=g) + (3.0 * torch.eye(D)[0]) @ winv.T
    return model, inputs, concept, random


def _snapshot(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], bool, int]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return state, model.training, hooks


def _assert_unchanged(model: torch.nn.Module, snap: tuple[dict[str, torch.Tensor], bool, int]) -> None:
    state, training, hooks = snap
    assert model.training == training
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_known_concept_scores_one_and_is_significant() -> None:
    model, inputs, concept, random = _data()
    model.train()  # tcav must evaluate in eval mode and restore this
    snap = _snapshot(model)
    r = tribute.tcav(model, inputs, concept, random, layer="body", target=1, n_random=10, concept_name="u")
    _assert_unchanged(model, snap)
    assert r.score > 0.95 and np.all(r.scores > 0.9)
    # default test: permutation, at its smallest attainable p-value 1/(B+1); the paper's Welch too
    assert r.test == "permutation" and r.p_value == pytest.approx(1 / 201) and r.significant
    assert r.p_values["welch"] < 1e-3 and r.p_values["permutation"] == r.p_value
    assert r.null_scores.shape == (200,) and np.all(np.abs(r.null_scores - 0.5) < 0.5)
    assert abs(r.cav @ np.eye(D)[0]) > 0.9  # the CAV found the planted direction
    assert np.all(r.cav_accuracy > 0.9)
    assert r.sensitivities.shape == (40,) and np.mean(r.sensitivities > 0) > 0.9
    # Class 0 is pushed down by the concept: TCAV = 0, significant too.
    r0 = tcav(model, inputs, concept, random, layer="body", target=0, n_random=10)
    assert r0.score < 0.05 and r0.significant


def _calibration_counts(draws: int, offset: int) -> tuple[int, int, int]:
    """(random-law sets flagged by the permutation test, by Welch, planted sets flagged) over ``draws``."""
    model, inputs, concept, _ = _data()
    flagged = welch = planted = 0
    for s in range(draws):
        g = torch.Generator().manual_seed(offset + s)
        random = torch.randn(200, D, generator=g)
        fake = torch.randn(20, D, generator=g)
        r = tcav(model, inputs, fake, random, layer="body", target=1, n_permutations=100, seed=s)
        flagged += r.significant
        welch += r.p_values["welch"] < 0.05
        planted += tcav(model, inputs, concept, random, layer="body", target=1, n_permutations=100, seed=s).significant
    return flagged, welch, planted


@pytest.mark.slow
def test_permutation_test_is_calibrated_and_finds_the_planted_concept() -> None:
    # 100 concept sets drawn from the random law (H0 true): the permutation test's rejections are
    # Binomial(100, <= 0.05); P(X > 13) = 0.0005 at exactly 0.05, so more than 13 means
    # miscalibration (the paper's Welch test flags ~30 of them). The planted concept (fixed set
    # of 20, fresh random pools) must be flagged in >= 95 of 100 draws.
    from scipy import stats

    limit = int(stats.binom.ppf(0.999, 100, 0.05))
    assert limit == 13
    flagged, welch, planted = _calibration_counts(100, 5000)
    assert flagged <= limit, flagged
    assert planted >= 95, planted
    assert welch > limit, welch  # the paper's test is the miscalibrated one (documented)


def test_permutation_test_calibration_quick() -> None:
    # The same with 25 draws (default suite): Binomial(25, 0.05) > 5 has probability 0.007.
    flagged, welch, planted = _calibration_counts(25, 9000)
    assert flagged <= 5, flagged
    assert planted >= 24, planted
    assert welch >= 3, welch  # Welch's expected count is ~8 (rate ~0.3)


def test_kernel_scores_equal_explicit_cavs() -> None:
    # tcav_scores (primal when d <= rows, dual otherwise) against concept_activation_vector
    rng = np.random.default_rng(0)
    for d in (3, 40):
        acts = rng.normal(size=(30, d))
        acts[:8, 0] += 2.0
        grads = rng.normal(size=(25, d))
        pos = np.stack([rng.choice(30, 8, replace=False) for _ in range(6)])
        neg = np.stack([rng.choice(30, 9, replace=False) for _ in range(6)])
        got = tcav_scores(acts, grads, pos, neg, l2=0.05, chunk_elems=50)  # several chunks
        want = [np.mean(grads @ concept_activation_vector(acts[p], acts[q], 0.05)[0] > 0) for p, q in zip(pos, neg, strict=True)]
        np.testing.assert_array_equal(got, want)


def test_permutation_p_value_and_bonferroni() -> None:
    null = np.array([0.5, 0.45, 0.8, 0.1, 0.55])
    # |null - 0.5| >= |0.8 - 0.5| = 0.3: 0.8 and 0.1 -> (1 + 2) / 6
    assert permutation_p_value(0.8, null) == pytest.approx(0.5)
    assert permutation_p_value(0.2, null) == pytest.approx(0.5)  # two-sided
    assert permutation_p_value(1.0, null) == pytest.approx(1 / 6)
    assert bonferroni([0.01, 0.02, 0.001]).tolist() == [True, False, True]
    with pytest.raises(InputError, match="alpha=0"):
        bonferroni([0.1], alpha=0)
    with pytest.raises(InputError, match=r"\[1\.5\]"):
        bonferroni([1.5])


def test_one_set_and_welch_tests_selectable() -> None:
    model, inputs, concept, random = _data()
    r = tcav(model, inputs, concept, random, layer="body", target=1, test="welch", n_permutations=0)
    assert r.test == "welch" and r.p_value == r.p_values["welch"] and "permutation" not in r.p_values
    assert r.null_scores.size == 0
    r1 = tcav(model, inputs, concept, random, layer="body", target=1, test="one_set", n_permutations=10)
    assert r1.p_value == r1.p_value_one_set and r1.null_scores.shape == (10,)


def test_plot_renders_scores_null_and_significance() -> None:
    from matplotlib.figure import Figure

    from tribute.viz import tcav_bars

    model, inputs, concept, random = _data()
    r = tcav(model, inputs, concept, random, layer="body", target=1, concept_name="u")
    g = torch.Generator().manual_seed(1)
    fake = tcav(model, inputs, torch.randn(20, D, generator=g), random, layer="body", target=1, concept_name="noise")
    fig = r.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "u" and labels[1] == "random vs random" and labels[2].startswith("permutation null")
    texts = [t.get_text() for t in ax.texts]
    assert "*" in texts and any("permutation test: p=" in t and "significant" in t for t in texts)
    assert "body" in ax.get_title() and "class 1" in ax.get_title()
    fig.canvas.draw()
    nofig = fake.plot()
    assert fake.significant or "n.s." in [t.get_text() for t in nofig.axes[0].texts]
    both = tcav_bars([r, fake])
    t = [x.get_text() for x in both.axes[0].texts]
    assert t.count("*") == int(r.p_value < 0.025) + int(fake.p_value < 0.025) and "0.05/2" in both.axes[0].get_title()
    both.canvas.draw()
    with pytest.raises(InputError, match="TCAVResult"):
        tcav_bars([object()])


def test_same_seed_same_result() -> None:
    model, inputs, concept, random = _data()
    a = tcav(model, inputs, concept, random, layer="body", target=1, n_random=4, seed=3)
    b = tcav(model, inputs, concept, random, layer="body", target=1, n_random=4, seed=3)
    np.testing.assert_array_equal(a.random_scores, b.random_scores)
    np.testing.assert_array_equal(a.cav, b.cav)


def test_cav_closed_form_primal_equals_dual() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=(30, 3)) + np.array([2.0, 0.0, 0.0]), rng.normal(size=(30, 3))
    cav, acc = concept_activation_vector(pos, neg)
    # Dual form (d > n) on the same data padded with zero columns gives the same direction.
    cav_dual, _ = concept_activation_vector(np.pad(pos, ((0, 0), (0, 80))), np.pad(neg, ((0, 0), (0, 80))))
    np.testing.assert_allclose(cav_dual[:3], cav, atol=1e-10)
    assert acc >= 0.8 and cav[0] > 0.8


def test_model_restored_after_exception() -> None:
    model, inputs, concept, random = _data()
    model.train()
    snap = _snapshot(model)
    with pytest.raises(InputError, match="target=5"):
        tcav(model, inputs, concept, random, layer="body", target=5)
    _assert_unchanged(model, snap)
    with pytest.raises(UnsupportedModelError, match="'nope'"):
        tcav(model, inputs, concept, random, layer="nope", target=1)
    _assert_unchanged(model, snap)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"n_random": 1}, "n_random=1"), ({"alpha": 2.0}, "alpha=2.0"), ({"l2": 0.0}, "l2=0.0"),
     ({"test": "t"}, "test='t'"), ({"n_permutations": 0}, "n_permutations=0")],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    model, inputs, concept, random = _data()
    with pytest.raises(InputError, match=needle):
        tcav(model, inputs, concept, random, layer="body", target=1, **kwargs)
    with pytest.raises(InputError, match="random must hold at least 4"):
        tcav(model, inputs, concept, random[:3], layer="body", target=1)


def test_welch_matches_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=10), rng.uniform(size=7) + 0.2
    assert welch_p_value(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-10)
    assert welch_p_value(np.ones(5), np.ones(5)) == 1.0 and welch_p_value(np.ones(5), np.zeros(5)) == 0.0


def test_one_set_p_value_closed_form() -> None:
    from scipy import stats

    r = np.array([0.2, 0.4, 0.6, 0.5, 0.3])
    t = (0.9 - r.mean()) / (r.std(ddof=1) * np.sqrt(1 + 1 / 5))
    assert one_set_p_value(0.9, r) == pytest.approx(2 * stats.t.sf(t, 4), rel=1e-12)
    assert one_set_p_value(0.4, r) == 1.0


def test_concept_suite_tcav_entry() -> None:
    from tribute.bench.concept_suite import (
        TCAV_CONCEPTS,
        format_tcav_rows,
        pattern_cnn,
        run_tcav_bench,
        two_pattern_images,
    )

    model, acc = pattern_cnn(two_pattern_images(600, 32, 0), steps=300)
    assert acc > 0.9
    tx = two_pattern_images(120, 32, 2)
    threads = torch.get_num_threads()
    rows = run_tcav_bench(model, tx.X[tx.y == 1][:30], seeds=(0,), spatial=("mean",), n_permutations=50)
    assert torch.get_num_threads() == threads
    assert [r.concept for r in rows] == list(TCAV_CONCEPTS)
    by = {r.concept: r for r in rows}
    # channel-mean CAVs: the class needs both patterns, so the logit rises along plus and ring
    assert by["plus"].score > 0.9 and by["ring"].score > 0.9
    assert by["random law"].score < 0.9
    assert all(0 < r.p_permutation <= 1 and 0 <= r.p_welch <= 1 for r in rows)
    assert by["plus"].matches("permutation") == (by["plus"].p_permutation < 0.05)
    text = format_tcav_rows(rows)
    assert "decisions matching the truth: permutation" in text and "random law" in text


def test_cav_accuracy_counts_the_intercept_of_unbalanced_sets() -> None:
    # 1-D activations: positives {1, 2, 3}, negative {0}. The least-squares fit of +-1 labels is
    # w c + mean(y) with mean(y) = 1/2 (c centred at 1.5): it classifies all four rows right.
    # Dropping the intercept (sign(w c)) calls the positive at 1 (c = -0.5) negative: 3/4.
    pos, neg = np.array([[1.0], [2.0], [3.0]]), np.array([[0.0]])
    c = np.array([-0.5, 0.5, 1.5, -1.5])
    y = np.array([1.0, 1.0, 1.0, -1.0])
    w = (c @ y) / (c @ c + 1e-2)
    assert np.all(np.sign(w * c + y.mean()) == y)  # the hand-computed separator: 4 of 4
    cav, acc = concept_activation_vector(pos, neg)
    assert cav.tolist() == [1.0] and acc == 1.0


def test_submodule_training_flags_restored() -> None:
    # model.train(was_training) set every submodule to the root's flag: a dropout the user had
    # switched off came back in training mode
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Dropout(0.5), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    net.train()
    net[1].eval()
    flags = [m.training for m in net.modules()]
    tcav(net, torch.randn(6, 4), torch.randn(5, 4), torch.randn(10, 4), layer="2", target=0, n_permutations=5)
    assert [m.training for m in net.modules()] == flags


def test_examples_the_model_cannot_take_are_named() -> None:
    model, inputs, concept, random = _data()
    with pytest.raises(InputError, match="fails on the concept examples"):
        tcav(model, inputs, concept[:, :-1], random, layer="body", target=1)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(3, 2))
    x, small, rand = torch.randn(6, 1, 8, 8), torch.randn(5, 1, 5, 5), torch.randn(10, 1, 8, 8)
    with pytest.raises(InputError, match="27 values per concept example"):
        tcav(conv, x, small, rand, layer="1", target=0, n_permutations=3)
    # channel means: concept patches of another size are fine
    assert 0.0 <= tcav(conv, x, small, rand, layer="1", target=0, n_permutations=3, spatial="mean").score <= 1.0


def test_n_evals_counts_the_rows_the_model_saw() -> None:
    model, inputs, concept, random = _data()
    rows = []
    handle = model.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    try:
        r = tcav(model, inputs, concept, random, layer="body", target=1, n_permutations=5, batch_size=7)
    finally:
        handle.remove()
    assert r.n_evals == sum(rows) == len(inputs) + len(concept) + len(random)


@pytest.mark.parametrize("target", [1.5, True, "1"])
def test_non_integer_target_is_refused(target: Any) -> None:
    """aud35t: target=1.5 was read as int(1.5) = 1 and target=True as 1, silently."""
    model, inputs, concept, random = _data()
    with pytest.raises(InputError, match=f"target={target!r} must be an integer"):
        tcav(model, inputs, concept, random, layer="body", target=target)


def test_integer_like_targets_are_accepted() -> None:
    model, inputs, concept, random = _data()
    a = tcav(model, inputs, concept, random, layer="body", target=np.int64(1), n_permutations=10)  # type: ignore[arg-type]
    b = tcav(model, inputs, concept, random, layer="body", target=torch.tensor(1), n_permutations=10)  # type: ignore[arg-type]
    assert a.target == b.target == 1 and a.score == b.score


@pytest.mark.parametrize("which", ["inputs", "concept", "random"])
def test_non_finite_examples_are_refused(which: str) -> None:
    """aud35t: NaN concept examples were reported as 'the CAV is zero: cannot be separated', and
    NaN inputs gave a score (0.5 on a ReLU MLP) without a word."""
    model, inputs, concept, random = _data()
    args = {"inputs": inputs.clone(), "concept": concept.clone(), "random": random.clone()}
    args[which][1, 2] = float("nan")
    with pytest.raises(InputError, match=rf"{which} holds NaN or inf values \(1 of"):
        tcav(model, args["inputs"], args["concept"], args["random"], layer="body", target=1)
