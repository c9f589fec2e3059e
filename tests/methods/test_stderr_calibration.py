"""Standard errors are calibrated: ~95% of |estimate - exact| within 2 stderr, at every budget.

Toy polynomial games (``tests/stderr_calibration.py``) have exact Shapley, Banzhaf, RISE and
Sobol values. Coverage is pooled over seeds, inputs and players; where a method cannot
estimate a standard error it must say so (NaN and a :class:`StderrWarning`), never return a
tiny number: the worst ``|error| / stderr`` stays far from "orders of magnitude".
The fast version runs a few budgets on 10 players; the sweep (>= 50 seeds, 10 and 30 players)
is ``@pytest.mark.slow`` (``make test-all``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from stderr_calibration import coverage, toy_game
from tribute.methods._stderr import StderrWarning, inflate, t_factor
from tribute_testing import shapley_from_table

LOW, HIGH = 0.88, 0.995  # coverage band for ~95% nominal (conservative regimes may reach 1.0)
WORST = 30.0  # largest |error| / stderr tolerated anywhere


def _check(c, *, high: float = HIGH) -> None:
    assert c.undefined == 0.0, f"{c}"
    assert LOW <= c.coverage <= high, f"coverage {c.coverage:.3f} outside [{LOW}, {high}]: {c}"
    assert c.worst_ratio < WORST, f"stderr far below the realised error: {c}"


FAST = [
    ("kernel_shap", {}, 60),
    ("kernel_shap", {}, 160),
    ("permutation_shapley", {}, 2 + 2 * 9 * 2),  # two antithetic pairs (conservative regime)
    ("permutation_shapley", {}, 2 + 2 * 9 * 16),
    ("banzhaf", {}, 5),
    ("banzhaf", {}, 40),
    ("banzhaf", {"estimator": "ols"}, 20),
    ("banzhaf", {"estimator": "ols"}, 80),
    ("rise", {}, 8),
    ("rise", {}, 80),
    ("sobol", {}, 2 * 12 + 1),
    ("sobol", {}, 8 * 12 + 1),
]


@pytest.mark.parametrize(("method", "params", "budget"), FAST,
                         ids=[f"{m}-{p.get('estimator', '')}-{b}" for m, p, b in FAST])
def test_stderr_coverage_fast(method: str, params: dict, budget: int) -> None:
    game = toy_game(10, seed=10)
    c = coverage(method, game, budget, range(20), **params)
    # the two conservative regimes documented by the methods may cover everything
    conservative = (method == "permutation_shapley" and budget < 2 + 2 * 9 * 8) or method == "sobol"
    _check(c, high=1.0 if conservative or budget <= 8 else HIGH)


@pytest.mark.parametrize(("method", "budget", "params"), [
    ("kernel_shap", 20, {}),  # 18 coalitions: no residual degrees of freedom for 10 players
    ("permutation_shapley", 20, {}),  # a single antithetic pair
])
def test_unestimable_stderr_is_nan_with_a_warning(method: str, budget: int, params: dict) -> None:
    game = toy_game(10, seed=10)
    with pytest.warns(StderrWarning, match=f"{method}: standard errors are not estimable"):
        attr = tribute.explain(game, game.x, method=method, budget=budget, seed=0, **params)
    assert np.isnan(attr.stderr).all() and np.isfinite(attr.values).all()


def test_kernel_shap_30_players_budget_32_no_longer_claims_precision() -> None:
    """The measured failure: mean stderr 6e-15 against an RMS error of 0.39."""
    game = toy_game(30, n_inputs=4, seed=30)
    with pytest.warns(StderrWarning):
        attr = tribute.explain(game, game.x, method="kernel_shap", budget=32, seed=0)
    assert np.isnan(attr.stderr).all()


def test_exact_paths_report_zero_stderr_without_warning() -> None:
    game = toy_game(6, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StderrWarning)
        for method in ("kernel_shap", "banzhaf", "gp_shapley"):
            attr = tribute.explain(game, game.x, method=method, budget=2**6, seed=0)
            truth = game.banzhaf() if method == "banzhaf" else game.shapley()
            np.testing.assert_allclose(attr.values, truth, atol=1e-9)
            np.testing.assert_allclose(attr.stderr, 0.0, atol=1e-7)


def test_t_factor_and_pooling() -> None:
    from scipy.stats import norm, t

    assert t_factor(float("inf")) == 1.0 and np.isnan(t_factor(0))
    # +-2 t-inflated stderr covers the same share as +-2 sigma of a normal
    for dof in (1, 3, 30):
        assert t.cdf(2 * t_factor(dof), dof) == pytest.approx(norm.cdf(2.0), abs=1e-9)
    import torch

    se = torch.tensor([[0.0, 1.0, 1.0, 2.0]])
    out = inflate(se, 1000)
    assert out[0, 0] > 0  # a zero-variance accident borrows the others' spread
    assert torch.all(out[0, 1:] >= se[0, 1:])  # pooling never shrinks a standard error


# --------------------------------------------------------------------------- kernel_shap: seed-free
@pytest.mark.parametrize("n", [10, 30])
def test_kernel_shap_stderr_exists_by_budget_not_by_seed(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below 2n + 6 (3 residual dof) NaN for every seed, naming that budget; from it on, defined
    for every seed (the first draw left it undefined on 80% of seeds at 10 players, budget 26).
    The design alone decides this; the refusal of blind fits, which depends on the values
    (``test_kernel_shap_blind_fit_is_refused``), is switched off here."""
    from tribute.methods import shapley_sampling as ss

    monkeypatch.setattr(ss, "_BLIND_RATIO", 0.0)
    game = toy_game(n, n_inputs=2, seed=n)
    for seed in range(25):
        with pytest.warns(StderrWarning, match=rf"at least {2 * n + 6} \(2n \+ 6\)"):
            low = tribute.explain(game, game.x, method="kernel_shap", budget=2 * n + 4, seed=seed)
        assert np.isnan(low.stderr).all() and np.isfinite(low.values).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error", StderrWarning)
            ok = tribute.explain(game, game.x, method="kernel_shap", budget=2 * n + 6, seed=seed)
        assert np.isfinite(ok.stderr).all() and (ok.stderr > 0).all(), seed


def _audit_game(n: int = 10) -> tuple:
    """The auditor's 10-player game: linear, two pairwise terms and one three-way term."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=n)

    def f(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return (x @ w + 0.8 * x[:, 0] * x[:, 1] - 0.6 * np.tanh(x[:, 2] * x[:, 3] * x[:, 4])
                + 0.4 * np.maximum(x[:, 5] + x[:, 6], 0) ** 2)

    return f, rng.normal(size=(2, n)), w


def test_kernel_shap_blind_fit_is_refused() -> None:
    """The audited failure (budget 40 = 4n, seed 13; budget 30, seed 9): no sampled pair separates
    the three-way term of players 2, 3, 4 from their main effects, every residual is 0 and the
    stderr was 4e-15 against errors of 0.1 to 0.2. Now NaN with a warning naming 6n; an additive
    game keeps its (honest) zero, and from 6n on nothing is refused."""
    f, x, w = _audit_game()
    for budget, seed in [(40, 13), (30, 9)]:
        with pytest.warns(StderrWarning, match=r"fitted almost exactly.*at least 60 \(6n\)"):
            attr = tribute.explain(f, x, method="kernel_shap", baseline=0.0, budget=budget, seed=seed)
        se = np.asarray(attr.stderr)
        assert np.isnan(se[1]).all() and np.isfinite(attr.values).all()
        assert not (se[np.isfinite(se)] < 1e-6).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StderrWarning)
        lin = tribute.explain(lambda z: np.asarray(z) @ w, x, method="kernel_shap", baseline=0.0,
                              budget=40, seed=13)
        np.testing.assert_allclose(lin.values, x * w, atol=1e-9)
        np.testing.assert_allclose(lin.stderr, 0.0, atol=1e-9)
        for seed in range(10):
            big = tribute.explain(f, x, method="kernel_shap", baseline=0.0, budget=60, seed=seed)
            assert np.isfinite(big.stderr).all() and (np.asarray(big.stderr) > 1e-6).all()


def test_kernel_shap_redraws_only_defective_designs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first draw that leaves the standard errors undefined (rank-deficient, or a pair of
    leverage 1) is redrawn; an acceptable first draw is kept bit for bit."""
    from tribute.methods import shapley_sampling as ss

    def defect(masks: torch.Tensor, w: torch.Tensor, strata: list[tuple[int, int, float]]) -> str | None:
        return ss._design_defect(masks, w, strata, ss._kkt_inverse(masks, w)[:10, :10])

    once, kept = {}, {}
    monkeypatch.setattr(ss, "_REDRAWS", 1)
    for seed in range(30):
        once[seed] = ss.kernel_shap_design(10, 24, seed)
    monkeypatch.undo()
    reasons = set()
    for seed in range(30):
        m1, w1, st1 = once[seed]
        m2, w2, st2 = kept[seed] = ss.kernel_shap_design(10, 24, seed)
        first = defect(m1, w1, st1)
        assert defect(m2, w2, st2) is None
        if first is None:
            assert torch.equal(m1, m2) and torch.equal(w1, w2) and st1 == st2
        else:
            reasons.add(first.split(" (")[0])
            assert not torch.equal(m1, m2)
    # both root causes occur among 30 first draws (measured: 24% rank-deficient, 56% leverage 1)
    assert reasons == {"24 coalitions cannot identify 10 Shapley values",
                       "a sampled pair is fitted exactly"}, reasons


def test_kernel_shap_design_defect_names_a_leverage_one_pair() -> None:
    from tribute.methods import shapley_sampling as ss

    # 4 players, pairs (z, 1 - z) measure z . phi (given sum(phi)): {0}, {1} and {0, 1} leave
    # phi_2 + phi_3 known from the constraint, and only the pair {2} splits it (leverage 1)
    z = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]])
    masks = torch.cat([z, 1 - z]).double()
    w = torch.full((8,), 0.1, dtype=torch.float64)
    reason = ss._design_defect(masks, w, [(0, 4, 1.0)], ss._kkt_inverse(masks, w)[:4, :4])
    assert reason is not None and "leverage 1" in reason
    # {0, 2} predicts phi_2 from phi_0: no pair is alone any more
    z2 = torch.cat([z, torch.tensor([[1.0, 0, 1, 0]])])
    masks2 = torch.cat([z2, 1 - z2]).double()
    w2 = torch.full((10,), 0.1, dtype=torch.float64)
    assert ss._design_defect(masks2, w2, [(0, 5, 1.0)], ss._kkt_inverse(masks2, w2)[:4, :4]) is None
    # without {2}: phi_2 and phi_3 are not identified at all
    z3 = z[:3]
    masks3 = torch.cat([z3, 1 - z3]).double()
    w3 = torch.full((6,), 0.1, dtype=torch.float64)
    reason = ss._design_defect(masks3, w3, [(0, 3, 1.0)], ss._kkt_inverse(masks3, w3)[:4, :4])
    assert reason is not None and "cannot identify" in reason


# --------------------------------------------------------------------------- coar
def _coar_game() -> tuple:
    """The auditor's 8-player game: a saturating linear part, a pairwise and a three-way term."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=8)

    def f(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return (np.tanh(x @ w / 2) + 0.8 * x[:, 0] * x[:, 1]
                - 0.6 * np.tanh(x[:, 2] * x[:, 3] * x[:, 4]))

    return f, rng.normal(size=(2, 8))


def test_coar_stderr_covers_its_own_limit() -> None:
    """The linear surrogate is misspecified here, so the classical OLS errors covered the
    infinite-budget fit 78% (budget 256) and 80% (1024) of the time (60 seeds); the sandwich
    covers 94%. Checked on 30 seeds against a 400 000-subset fit."""
    f, x = _coar_game()
    limit = np.asarray(tribute.explain(f, x, method="coar", baseline=0.0, budget=400_000,
                                       seed=12345).values)
    for budget in (256, 1024):
        hits = []
        for seed in range(30):
            attr = tribute.explain(f, x, method="coar", baseline=0.0, budget=budget, seed=seed)
            se = np.asarray(attr.stderr)
            assert np.isfinite(se).all()
            hits.append(np.abs(np.asarray(attr.values) - limit) <= 2 * se)
        assert np.mean(hits) >= 0.9, (budget, np.mean(hits))


def test_coar_unidentified_credit_alone_is_nan() -> None:
    """A player kept in every subset has no credit to speak of: its stderr is NaN (warned),
    the others keep theirs."""
    from tribute.methods.component_methods import _coar_stderr

    gen = torch.Generator().manual_seed(0)
    masks = (torch.rand(40, 5, generator=gen, dtype=torch.float64) < 0.6).double()
    masks[:, 2] = 1.0
    x = torch.cat([torch.ones(40, 1, dtype=torch.float64), masks], 1)
    y = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    a = x.T @ x
    coef = torch.linalg.lstsq(a, x.T @ y).solution
    with pytest.warns(StderrWarning, match="1 of 5 credits"):
        se = _coar_stderr(x, a, y - x @ coef)
    assert se.shape == (5, 3) and torch.isnan(se[2]).all()
    assert torch.isfinite(se[[0, 1, 3, 4]]).all() and (se[[0, 1, 3, 4]] > 0).all()


# --------------------------------------------------------------------------- sobol: replicates
def test_sobol_replicate_layout() -> None:
    from tribute.methods.sobol import replicate_count, sobol_designs

    assert [replicate_count(k) for k in (2, 8, 15, 16, 32, 100, 128)] == [2, 8, 15, 8, 8, 12, 8]
    assert replicate_count(32, "random") == 32 and replicate_count(32, replicates=1) == 1
    # 8 replicates of 4 points: each replicate is a scrambled Sobol sequence, so each of its
    # coordinates has exactly one point in every quarter of [0, 1)
    a, b = sobol_designs(5, 32, seed=3, replicates=8)
    for r in range(8):
        pts = torch.cat([a[r::8], b[r::8]], 1)
        assert torch.equal((pts * 4).floor().sort(0).values,
                           torch.arange(4.0, dtype=torch.float64)[:, None].expand(4, 10))


def test_sobol_two_points_of_one_sequence_are_not_independent() -> None:
    """The root cause at 2 designs: one sequence's two points are in opposite halves of every
    coordinate (perfectly anti-correlated halves), two replicates' points are independent."""
    from tribute.methods.sobol import sobol_designs

    same, split = [], []
    for seed in range(200):
        a1, _ = sobol_designs(30, 2, seed, replicates=1)
        a2, _ = sobol_designs(30, 2, seed, replicates=2)
        same.append(float(((a1[0] < 0.5) != (a1[1] < 0.5)).double().mean()))
        split.append(float(((a2[0] < 0.5) != (a2[1] < 0.5)).double().mean()))
    assert min(same) == 1.0
    assert abs(np.mean(split) - 0.5) < 0.03


def test_sobol_badly_paired_player_is_covered() -> None:
    """The measured far-out point: input 4, player 12 of the 30-player toy game, whose Sobol
    coordinates 12 and 42 pair badly at 8 and 32 points. One sequence covered its error within
    2 stderr on 56% / 6% of 50 seeds (worst ratio 39 / 22); independent replicates do not
    understate it."""
    game = toy_game(30, seed=30)
    truth = game.sobol_total()[4, 12]
    for budget in (8 * 32 + 1, 32 * 32 + 1):
        ratio = []
        for seed in range(50):
            attr = tribute.explain(game, game.x[4:5], method="sobol", budget=budget, seed=seed)
            ratio.append(abs(attr.values[0, 12] - truth) / attr.stderr[0, 12])
        assert np.mean(np.array(ratio) <= 2) >= 0.8 and max(ratio) < 15, (budget, max(ratio))


# --------------------------------------------------------------------------- gp_shapley
@pytest.mark.slow
def test_gp_shapley_error_shrinks_with_budget_and_stderr_follows() -> None:
    game = toy_game(10, n_inputs=2, seed=10)
    rows = [coverage("gp_shapley", game, b, range(3)) for b in (12, 40, 120)]
    errs = [r.rms_error for r in rows]
    assert errs[0] > errs[1] > errs[2]
    ses = [r.rms_stderr for r in rows]
    assert ses[0] > ses[2]


@pytest.mark.slow
@pytest.mark.parametrize(("budget", "cross_fitted"), [(2 + 2 * 24, True), (2 + 2 * 60, False)])
def test_gp_shapley_beyond_max_pairs(budget: int, cross_fitted: bool) -> None:
    """``m > max_pairs`` pairs: the GP on a subset, corrected by paired KernelSHAP on the rest
    (cross-fitted halves between ``max_pairs`` and ``2 max_pairs``)."""
    game = toy_game(10, n_inputs=4, seed=10)
    c = coverage("gp_shapley", game, budget, range(5), max_pairs=16)
    attr = tribute.explain(game, game.x, method="gp_shapley", budget=budget, seed=0, max_pairs=16)
    m = (budget - 2) // 2
    assert attr.extra["n_pairs"] == m
    assert attr.n_evals <= budget
    if cross_fitted:
        # 12 held-out pairs per half leave the correction's KernelSHAP no residual degrees of
        # freedom for 10 players: the GP is fitted on all 24 pairs instead, said in the note
        # (audit stop 35, F1; it returned NaN standard errors with a warning before)
        assert attr.params["path"] == "gp" and "max_pairs=16" in attr.extra["note"], attr.extra
    else:
        assert attr.params["path"] == "gp+adjustment" and attr.extra["cross_fitted"] is False
        assert attr.extra["gp_pairs"] == 16
    assert c.undefined == 0 and c.coverage >= 0.85 and c.worst_ratio < WORST, c


def test_gp_shapley_correction_without_dof_fits_the_gp_on_every_pair() -> None:
    # 7 held-out pairs for 9 free parameters: the paired correction of the regression adjustment
    # has no residual degrees of freedom. It used to return NaN standard errors with a warning
    # (and a correction fitted on fewer pairs than players); the GP is now fitted on all 12 pairs
    # (audit stop 35, F1), with finite standard errors that cover the exact values
    game = toy_game(10, n_inputs=4, seed=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StderrWarning)
        attr = tribute.explain(game, game.x, method="gp_shapley", budget=2 + 2 * 12, seed=0,
                               max_pairs=5)
    assert attr.params["path"] == "gp" and "max_pairs=5" in attr.extra["note"]
    se = np.asarray(attr.stderr)
    assert np.isfinite(se).all() and (se > 0).all() and np.isfinite(attr.values).all()
    z = np.abs(np.asarray(attr.values) - game.shapley()) / se
    assert np.mean(z <= 1.96) >= 0.9, z


# --------------------------------------------------------------------------- the sweep
SWEEP = {
    "kernel_shap": lambda n: [2 * n + 6, 4 * n, 16 * n],
    "permutation_shapley": lambda n: [2 + 2 * (n - 1) * p for p in (2, 4, 8, 16)],
    "banzhaf": lambda n: [5, 2 * n, 4 * n, 16 * n],
    "banzhaf_ols": lambda n: [2 * n, 4 * n, 16 * n],
    "rise": lambda n: [8, 2 * n, 8 * n],
    "sobol": lambda n: [2 * (n + 2) + 1, 8 * (n + 2) + 1, 32 * (n + 2) + 1],
}
SWEEP_CASES = [(m, n, b) for m, f in SWEEP.items() for n in (10, 30) for b in f(n)]
#: Known gaps (none at present). kernel_shap near its minimum budget was one (#14): the few
#: sampled pairs fitted exactly by a wrong additive model (one dominant three-way term, in 2 to
#: 6 of 50 designs; worst |err|/stderr 730 at 26, 855 at 40 for 10 players, 82 at 66 for 30).
#: Below 6n such fits are now refused (NaN with a warning, per sample and target) when their
#: pair sums v(z) + v(1 - z) show the game is not additive.
_SWEEP_KNOWN: dict[tuple[str, int, int], str] = {}
SWEEP_PARAMS = [pytest.param(m, n, b, id=f"{m}-{n}-{b}",
                             marks=[pytest.mark.xfail(reason=_SWEEP_KNOWN[(m, n, b)], strict=False)]
                             if (m, n, b) in _SWEEP_KNOWN else [])
                for m, n, b in SWEEP_CASES]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "n", "budget"), SWEEP_PARAMS)
def test_stderr_coverage_sweep(method: str, n: int, budget: int) -> None:
    name, params = ("banzhaf", {"estimator": "ols"}) if method == "banzhaf_ols" else (method, {})
    c = coverage(name, toy_game(n, seed=n), budget, range(50), **params)
    if c.undefined and (method != "kernel_shap" or budget >= 6 * n or c.undefined == 1.0):
        assert c.undefined == 1.0 and c.warned  # all or nothing, and said out loud
        return
    if c.undefined:  # kernel_shap below 6n refuses the blind fits, one (sample, target) at a time
        assert c.warned and c.undefined < 0.5, c
        c.undefined = 0.0
    conservative = method == "sobol" or (method == "permutation_shapley" and budget < 2 + 16 * (n - 1))
    _check(c, high=1.0 if conservative or budget <= 8 else HIGH)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [6, 20, 40, 160])
def test_gp_shapley_stderr_coverage_sweep(budget: int) -> None:
    """Measured (50 seeds, 10 players, seed-10 toy game), plug-in amplitude -> Student-t (and,
    with at most n pairs, the even half's amplitude): coverage 0.846 -> 0.973 at 6,
    0.953 -> 0.974 at 20, 0.925 -> 0.933 at 40, 0.981 -> 0.983 at 160. Up to 1.5 pairs per
    player (budget <= 32 here) no member of the model average reports less than the isotropic
    tau = 0 members (round 7 of #14): a conservative regime, 0.974 -> 0.998 at 20."""
    c = coverage("gp_shapley", toy_game(10, seed=10), budget, range(50))
    _check(c, high=1.0 if budget <= 2 + 2 * 15 else HIGH)


@pytest.mark.slow
def test_gp_shapley_blind_design_is_seen_by_the_even_half() -> None:
    """The far-out point at 2 pairs: seed 26, input 2 of the toy game, whose two pair differences
    (-0.033, 0.022) and v(N) - v(empty) (-0.058) are all tiny while its Shapley values reach
    +-0.68 (pairwise terms that cancel in every observed odd difference). With the odd half
    alone its stderr was 0.018 against an error of 0.67 (|err|/stderr 38 with the Student-t
    factor, 63 without); the pair sums v(z) + v(1 - z) (-1.89, -2.73) show the game is large."""
    game = toy_game(10, seed=10)
    attr = tribute.explain(game, game.x, method="gp_shapley", budget=6, seed=26)
    ratio = np.abs(np.asarray(attr.values) - game.shapley()) / np.asarray(attr.stderr)
    assert ratio[2].max() < 6.0, ratio[2]
    assert float(np.asarray(attr.stderr)[2].min()) > 0.1


def test_kernel_shap_blind_fits_warn_once_with_every_block_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large calls solve a block of samples at a time: the blind fits of every block are
    refused and counted in one warning (not only the first block's)."""
    from tribute.methods import shapley_sampling as ss

    monkeypatch.setattr(ss, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(ss, "_MIN_BLOCK", 2)
    f, x, _w = _audit_game()
    xs = np.repeat(x[1:2], 40, axis=0)  # the blind sample 40 times: blocks of 16 (the grain)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        attr = tribute.explain(f, xs, method="kernel_shap", baseline=0.0, budget=40, seed=13)
    msgs = [str(m.message) for m in rec if issubclass(m.category, StderrWarning)]
    assert len(msgs) == 1 and "for 40 of 40 (sample, target)" in msgs[0], msgs
    assert np.isnan(np.asarray(attr.stderr)).all()


def test_expected_gradients_stderr_covers_with_few_draws() -> None:
    """Student's factor with n_samples - 1 dof: at 4 draws +-2 stderr covered the
    infinite-sample value 85% of the time without it (tanh MLP, background set), ~94% with."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    bg = torch.randn(20, 5, dtype=torch.float64)
    limit = np.asarray(tribute.explain(net, x, method="expected_gradients", baseline=bg,
                                       n_samples=50_000, target=0).values)
    hits = []
    for seed in range(120):
        a = tribute.explain(net, x, method="expected_gradients", baseline=bg, n_samples=4,
                            seed=seed, target=0)
        hits.append(np.abs(np.asarray(a.values) - limit) <= 2 * np.asarray(a.stderr))
    assert float(np.mean(hits)) >= 0.91


# --------------------------------------------------------------------------- kernel_shap: few players
def _ridge_data_game() -> tuple:
    """The notes25 data audit's 6-example ridge game (an outlier makes v(S) non-additive) and its
    exact data Shapley values by enumerating all 64 subsets with a closed-form ridge (not tribute)."""
    import itertools

    from tribute.games.data_fits import RidgeFit

    rng = np.random.default_rng(5)
    n = 6
    X = rng.normal(size=(n, 2))
    y = X @ [2.0, -1.0] + rng.normal(size=n)
    X[0] *= 3
    y[0] += 4
    Xt = rng.normal(size=(2, 2))
    At = np.c_[Xt, np.ones(2)]

    def ridge(m: np.ndarray) -> np.ndarray:
        A = np.c_[X[m], np.ones(int(m.sum()))]
        return At @ np.linalg.solve(A.T @ A + 0.3 * np.eye(3), A.T @ y[m])

    v = {b: ridge(np.array(b, bool)) for b in itertools.product([0, 1], repeat=n)}
    truth = shapley_from_table(v, n)  # 2 x n
    fit = RidgeFit(l2=0.3)
    return fit(torch.as_tensor(X), torch.as_tensor(y), seed=0), Xt, tribute.TrainingData(X, y, fit=fit), truth


def test_kernel_shap_stderr_covers_on_a_six_example_data_game() -> None:
    """notes25 #12: at 6 players, budget 24, the t factor used pairs - (n - 1) = 6 dof, but 6 of
    the 11 pairs are the exhaustively sampled size-1 stratum (no variance); the variance comes from
    5 pairs (~3 effective dof). +-1.96 se covered 0.87 (150 seeds); Welch-Satterthwaite dof: 0.95."""
    model, xt, data, truth = _ridge_data_game()
    covered = []
    for seed in range(100):
        attr = tribute.explain(model, xt, method="kernel_shap", players=data, seed=seed, budget=24)
        err = np.abs(np.asarray(attr.values).reshape(2, -1) - truth)
        covered.append(err <= 1.96 * np.asarray(attr.stderr).reshape(2, -1))
    assert 0.92 <= np.mean(covered) <= 0.99, np.mean(covered)


def test_kernel_shap_welch_dof_matches_satterthwaite() -> None:
    """The t factor of a stratified variance uses (sum V_h)^2 / sum V_h^2 / dof_h, within [1, dof]."""
    from scipy.stats import t

    from tribute.methods._stderr import _TAIL, moderate
    from tribute.methods.shapley_sampling import _inflate_welch

    parts = torch.tensor([[[[4.0, 1.0, 0.0]], [[1.0, 1.0, 0.0]]]], dtype=torch.float64)  # 1 x 2 strata x 1 x 3
    dofs = torch.tensor([3.0, 1.0], dtype=torch.float64)[None, :, None, None]
    var, welch = parts.sum(1), (parts**2 / dofs).sum(1)
    se = _inflate_welch(var, welch, dof=50)
    eff = np.array([25.0 / (16 / 3 + 1), 4.0 / (1 / 3 + 1)])
    pooled = moderate(var, 50.0)[0, 0].numpy()  # pooling keeps the fit's dof
    for j in range(2):
        lo = np.floor(eff[j])
        f = (t.ppf(_TAIL, lo) * (lo + 1 - eff[j]) + t.ppf(_TAIL, lo + 1) * (eff[j] - lo)) / 2
        assert abs(float(se[0, 0, j]) - np.sqrt(pooled[j]) * f) < 1e-12
    # a player with no variance in any stratum: pooled up, with the fit's dof
    assert abs(float(se[0, 0, 2]) - np.sqrt(pooled[2]) * t.ppf(_TAIL, 50) / 2) < 1e-12
    # one stratum of one pair: 1 dof; never more than the fit's dof
    one = _inflate_welch(torch.tensor([[[1.0]]]), torch.tensor([[[1.0]]]), dof=7)
    assert abs(float(one) - t.ppf(_TAIL, 1) / 2) < 1e-12
    many = _inflate_welch(torch.tensor([[[1.0]]]), torch.tensor([[[1e-9]]]), dof=7)
    assert abs(float(many) - t.ppf(_TAIL, 7) / 2) < 1e-12


# --------------------------------------------------------------------------- stop 29 (cal29)
def _logprob_coverage(n: int, budget: int, seeds: range) -> float:
    from stderr_calibration import logprob_game

    g = logprob_game(n)
    truth, hits = g.shapley(), []
    for seed in seeds:
        a = tribute.explain(g, g.x, method="gp_shapley", baseline=tribute.Background(g.background),
                            budget=budget, seed=seed)
        se = np.asarray(a.stderr)
        assert np.isfinite(se).all()
        hits.append(np.abs(np.asarray(a.values) - truth) <= 1.96 * se)
    return float(np.mean(hits))


@pytest.mark.parametrize(("n", "budget", "low"), [(6, 60, 0.88), (9, 100, 0.925)])
def test_gp_shapley_stderr_covers_the_audited_logprob_game(n: int, budget: int, low: float) -> None:
    """stop 29: the audit's log-probability game (tanh MLP, 5-row background), seeds 0-19 x 3
    inputs. The ARD, sign-aware and NNGP members' per-player scales come from the same pairs and
    the maximum-likelihood amplitude of the smooth kernels was too small (their leave-one-out
    residuals were larger than predicted): 95% intervals covered 0.683 at 6 players / budget 60
    (29 of 31 pairs) and 0.911 at 9 / 100; with the leave-one-out amplitude check and the
    isotropic floor at every budget 0.911 and 0.937 (150 seeds: 0.790 -> see the report)."""
    assert _logprob_coverage(n, budget, range(20)) >= low


def test_banzhaf_repeated_coalitions_give_nan_not_zero() -> None:
    """4 players, 4 uniform draws: seeds 10, 30 and 50 drew each player's side as one coalition
    twice, and reported stderr 0 against errors of 0.1-1 (|err| / stderr = inf); now NaN with a
    StderrWarning, and no zero stderr next to a non-zero error on any of 60 seeds."""
    game = toy_game(4, n_inputs=4, seed=4, pairs=0, triples=0)
    truth = game.banzhaf()
    for seed in range(60):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            a = tribute.explain(game, game.x, method="banzhaf", budget=5, seed=seed)
        se, err = np.asarray(a.stderr), np.abs(np.asarray(a.values) - truth)
        assert not ((se == 0) & (err > 1e-9)).any(), seed
        warned = any(issubclass(r.category, StderrWarning) for r in rec)
        assert warned == bool(np.isnan(se).any()), seed
        if seed in (10, 30, 50):
            assert warned and np.isfinite(a.values).all()


def test_banzhaf_msr_uses_welch_dof() -> None:
    """Unequal sides: the t factor uses the Welch-Satterthwaite dof of the two sides' variances
    (Welch 1947), not K - 2 (at 4 players and 8 draws that under-covered, 0.961 additive)."""
    from tribute.methods._stderr import inflate_welch
    from tribute.methods.banzhaf import msr_estimate

    masks = torch.tensor([[1, 0], [1, 1], [1, 0], [0, 1], [0, 0], [0, 1], [1, 1], [1, 0]],
                         dtype=torch.float64)
    y = torch.tensor([3.0, 0.1, -2.0, 0.2, 0.0, 0.1, 5.0, 1.0], dtype=torch.float64)[None, :, None]
    _, se = msr_estimate(masks, y)
    z = masks
    k1 = z.sum(0)
    yy = y[0, :, 0]
    v1 = torch.stack([yy[z[:, i] > 0].var() / k1[i] for i in range(2)])
    v0 = torch.stack([yy[z[:, i] == 0].var() / (8 - k1[i]) for i in range(2)])
    welch = v1**2 / (k1 - 1) + v0**2 / (8 - k1 - 1)
    torch.testing.assert_close(se[0, 0], inflate_welch(v1 + v0, welch, 6), rtol=1e-12, atol=0)
    assert bool((se[0, 0] > inflate(torch.sqrt(v1 + v0), 6)).all())


# --------------------------------------------------------------------------- skewed draws (stop 30)
def _draw_coverage(draws: torch.Tensor, truth: float, skewed: bool) -> tuple[float, float]:
    """Coverage of ``truth`` within 2 stderr of each row's mean (rows: independent samples of
    ``n`` draws) and the mean stderr, plain (t-inflated) or skewness-aware."""
    from tribute.methods._stderr import central_moments, inflate_skewed

    n = draws.shape[1]
    m2, m3, m4 = central_moments(draws.sum(1), (draws**2).sum(1), (draws**3).sum(1),
                                 (draws**4).sum(1), n)
    se = (m2 / (n - 1)).sqrt()[:, None]  # each row its own entry: no pooling across rows
    out = (inflate_skewed(se, m2[:, None], m3[:, None], m4[:, None], n) if skewed
           else inflate(se, n - 1))[:, 0]
    hit = (draws.mean(1) - truth).abs() <= 2 * out
    return float(hit.double().mean()), float(out.mean())


def test_skewed_draws_get_the_edgeworth_width_and_normal_ones_keep_theirs() -> None:
    """Means of 26 exponential draws (skewness 2): the t interval covers 0.93 of the true mean,
    the Edgeworth-widened one 0.95 (Hall 1992); on normal draws it widens by ~3% only (the
    sample skewness of 26 draws is never exactly 0), and never narrows."""
    g = torch.Generator().manual_seed(0)
    expo = -torch.log(torch.rand(20000, 26, generator=g, dtype=torch.float64))
    plain, _ = _draw_coverage(expo, 1.0, skewed=False)
    wide, _ = _draw_coverage(expo, 1.0, skewed=True)
    assert plain < 0.935 and wide >= 0.945, (plain, wide)
    normal = torch.randn(20000, 26, generator=g, dtype=torch.float64)
    plain_n, se_n = _draw_coverage(normal, 0.0, skewed=False)
    wide_n, se_wn = _draw_coverage(normal, 0.0, skewed=True)
    assert 0.945 <= plain_n <= wide_n <= 0.97 and se_wn <= 1.05 * se_n, (plain_n, wide_n, se_wn / se_n)


@pytest.mark.parametrize(("n", "budget", "low"), [(4, 40, 0.95), (9, 18, 0.94), (6, 60, 0.955)])
def test_rise_stderr_covers_a_rare_strong_interaction(n: int, budget: int, low: float) -> None:
    """RISE on a game whose three-way AND a random mask switches on 1 time in 8: the per-mask
    contributions are skewed, and the t interval covered 0.930, 0.920 and 0.941 within 2 stderr
    (150 seeds x 4 inputs); widened by the masks' own skewness and kurtosis 0.962, 0.948, 0.969."""
    from stderr_calibration import and_game

    game = and_game(n, n_inputs=4, seed=n)
    c = coverage("rise", game, budget, range(150))
    assert c.undefined == 0.0
    assert low <= c.coverage <= 0.99, f"{c}"
