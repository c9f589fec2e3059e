"""Rashomon feature interaction scores: planted interaction, additive truth, the epsilon filter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.methods.rashomon import rashomon_interactions


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Small MLP training is dominated by thread synchronisation on a loaded 2-core box (a
    150-step fit takes 16 s with 2 threads, 0.5 s with 1); pytest-xdist runs 2 workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FOREST: list[dict[str, Any]] = [{"max_depth": 8, "n_estimators": 15}, {"max_depth": None, "n_estimators": 15}]


def _data(kind: str, n: int = 400, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X, Xe = rng.normal(size=(n, 3)), rng.normal(size=(300, 3))

    def f(a: np.ndarray) -> np.ndarray:
        return a[:, 0] * a[:, 1] + a[:, 2] if kind == "planted" else a.sum(1)

    return X, f(X) + 0.05 * rng.normal(size=n), Xe, f(Xe)


def test_planted_interaction_shows_on_every_model_of_the_set_and_only_on_its_pair() -> None:
    X, y, Xe, ye = _data("planted")
    r = rashomon_interactions(X, y, fit="forest", configs=FOREST, n_candidates=6, epsilon=0.5,
                              X_eval=Xe, y_eval=ye, seed=0)
    assert r.n_models >= 3 and r.pairs == [(0, 1), (0, 2), (1, 2)]
    # y = x0 x1 + x2, x ~ N(0, I): permuting x0 or x1 alone, or both, each cost ~2 (the x0 x1
    # term's variance twice), so FIS(0, 1) ~ 2 - 2 - 2 = -2 for a perfect model
    f01 = r.fis[:, 0]
    others = np.abs(r.fis[:, 1:])
    assert np.all(f01 < -0.3), f01  # forests on 400 points learn the product partly
    assert np.all(others < 0.25 * np.abs(f01)[:, None]), (f01, others)
    assert r.top_pair_fraction((0, 1)) == 1.0
    lo, hi = r.range()[(0, 1)]
    assert lo == pytest.approx(f01.min()) and hi == pytest.approx(f01.max())
    # FIS is phi_ij - phi_i - phi_j, term by term
    np.testing.assert_allclose(r.fis[:, 1], r.joint[:, 1] - r.main[:, 0] - r.main[:, 2])


def test_additive_ground_truth_has_no_interaction() -> None:
    X, y, Xe, ye = _data("additive")
    r = rashomon_interactions(X, y, fit="forest", configs=FOREST, n_candidates=4, epsilon=1.0,
                              X_eval=Xe, y_eval=ye, seed=1)
    scale = r.main.mean()
    assert scale > 1.0  # each feature's reliance is ~2 (twice its variance)
    assert np.abs(r.fis).max() < 0.12 * scale, (r.fis, scale)


def test_models_outside_epsilon_are_rejected() -> None:
    X, y, Xe, ye = _data("planted", n=300)
    cfg = [{"max_depth": 1}, {"max_depth": 6}]  # stumps are clearly worse (1.36 vs <= 1.23)
    r = rashomon_interactions(X, y, fit="tree", configs=cfg, n_candidates=6, epsilon=0.1,
                              X_eval=Xe, y_eval=ye, n_repeats=2)
    best = r.candidate_losses.min()
    np.testing.assert_array_equal(r.accepted, r.candidate_losses <= best + 0.1)
    assert 0 < r.accepted.sum() < 6 and r.n_models == int(r.accepted.sum())
    assert all(c["max_depth"] == 6 for c in r.configs)  # the stumps are out
    np.testing.assert_allclose(r.losses, r.candidate_losses[r.accepted])
    assert r.threshold == pytest.approx(best + 0.1) and r.best_loss == pytest.approx(best)
    # relative tolerance: (1 + eps) L*
    rr = rashomon_interactions(X, y, fit="tree", configs=cfg, n_candidates=6, epsilon=10.0,
                               relative=True, X_eval=Xe, y_eval=ye, n_repeats=2)
    assert rr.threshold == pytest.approx(11 * rr.best_loss)
    np.testing.assert_array_equal(rr.accepted, rr.candidate_losses <= 11 * rr.best_loss)


def test_deterministic_per_seed() -> None:
    X, y, Xe, ye = _data("planted", n=200)
    kw: dict[str, Any] = {"fit": "forest", "configs": FOREST, "n_candidates": 3, "epsilon": 5.0,
                          "X_eval": Xe, "y_eval": ye, "n_repeats": 2}
    a = rashomon_interactions(X, y, seed=3, **kw)
    b = rashomon_interactions(X, y, seed=3, **kw)
    c = rashomon_interactions(X, y, seed=4, **kw)
    np.testing.assert_array_equal(a.fis, b.fis)
    np.testing.assert_array_equal(a.candidate_losses, b.candidate_losses)
    assert not np.array_equal(a.fis, c.fis)


def test_mlp_sampler_and_user_fit_leave_models_as_they_were() -> None:
    X, y, Xe, ye = _data("planted", n=200)
    r = rashomon_interactions(X, y, fit="mlp", configs=[{"hidden": 16, "steps": 150, "lr": 0.05}],
                              n_candidates=2, epsilon=10.0, X_eval=Xe, y_eval=ye, n_repeats=2)
    assert r.n_models == 2 and r.top_pair_fraction((0, 1)) == 1.0
    made: list[torch.nn.Module] = []

    def fit(Xa: np.ndarray, ya: np.ndarray, *, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1)).double()
        m.train()
        made.append(m)
        return m

    r2 = rashomon_interactions(X, y, fit=fit, n_candidates=2, epsilon=100.0, n_repeats=1)
    assert r2.n_models == 2 and all(m.training for m in made)  # training flag restored
    # classification (integer labels): scikit-learn classifiers scored by predict_proba
    yc = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    rc = rashomon_interactions(X, yc, fit="tree", configs=[{"max_depth": 4}], n_candidates=2,
                               epsilon=10.0, n_repeats=2, X_eval=Xe, y_eval=(Xe[:, 0] * Xe[:, 1] > 0).astype(np.int64))
    assert rc.loss == "cross_entropy" and rc.fis.shape == (2, 3)
    assert rc.top_pair_fraction((0, 1)) == 1.0


def test_bad_input_is_refused_clearly() -> None:
    X, y, Xe, _ = _data("planted", n=50)
    with pytest.raises(InputError, match=r"y has shape \(49,\)"):
        rashomon_interactions(X, y[:-1])
    with pytest.raises(InputError, match="fit='svm'"):
        rashomon_interactions(X, y, fit="svm")
    with pytest.raises(InputError, match=r"pair \(1, 1\)"):
        rashomon_interactions(X, y, pairs=[(1, 1)], n_candidates=1)
    with pytest.raises(InputError, match=r"pair \(1, 0\) is given twice"):
        rashomon_interactions(X, y, pairs=[(0, 1), (1, 0)], n_candidates=1)
    with pytest.raises(InputError, match="X_eval and y_eval together"):
        rashomon_interactions(X, y, X_eval=Xe)
    with pytest.raises(InputError, match="epsilon=-1"):
        rashomon_interactions(X, y, epsilon=-1)
    with pytest.raises(InputError, match="fit failed on candidate 0"):
        rashomon_interactions(X, y, fit=lambda a, b, *, seed: 1 / 0)


def test_registered_plots_and_public() -> None:
    info = tribute.analyses()["rashomon_interactions"]
    assert info.kind == "model_set" and info.returns == "RashomonResult"
    X, y, _, _ = _data("planted", n=150)
    r = tribute.run_analysis("rashomon_interactions", X, y, configs=FOREST, n_candidates=3,
                             epsilon=5.0, n_repeats=1, feature_names=["a", "b", "c"])
    from matplotlib.figure import Figure

    sw = r.plot()
    assert isinstance(sw, Figure)
    labels = [t.get_text() for t in sw.axes[0].get_yticklabels()]
    strongest = r.pair_names()[int(np.abs(r.fis).mean(0).argmax())]
    assert labels[-1] == strongest  # the strongest pair on top
    halo = r.plot(kind="halo")
    assert isinstance(halo, Figure) and len(halo.axes) == 3
    with pytest.raises(InputError, match="kind='violin'"):
        r.plot(kind="violin")


def test_bench_suite_recovers_the_planted_pair() -> None:
    from tribute.bench.rashomon_suite import format_rashomon_results, run_rashomon_suite

    rows = run_rashomon_suite(tiny=True, samplers=("forest",))
    planted = next(r for r in rows if r["case"] == "planted")
    additive = next(r for r in rows if r["case"] == "additive")
    assert planted["top_pair_fraction"] == 1.0 and planted["n_models"] >= 1
    assert additive["max_abs_fis_over_main"] < 0.3  # tiny: 200 points, 3 permutations
    assert "(x0,x1) top in 100% of models" in format_rashomon_results(rows)


def test_bench_suite_reads_each_score_against_the_formula_itself() -> None:
    """Truth by hand: for the noiseless planted formula ``x0 x1 + x2`` under squared loss,
    permuting x0, x1 or both raises the loss by 2 each (E[(x0 x1 - x0' x1)^2] = 2), so
    FIS(x0, x1) = 2 - 2 - 2 = -2; the additive formula's FIS is 0 in expectation but not on 200
    points with 3 permutations -- the floor the suite's rows are read against (it printed the
    tree set's 0.340 and the forest's 0.211 with no reference; the formula itself reads 0.255)."""
    from tribute.bench.rashomon_suite import format_rashomon_results, run_rashomon_suite

    rows = run_rashomon_suite(tiny=True, samplers=("tree",))
    planted = next(r for r in rows if r["case"] == "planted")["formula"]
    additive = next(r for r in rows if r["case"] == "additive")["formula"]
    lo, hi = planted["fis01_range"]
    assert lo == hi and abs(lo + 2.0) < 0.3 and planted["top_pair_fraction"] == 1.0
    assert 0.1 < additive["max_abs_fis_over_main"] < 0.4
    assert "(formula 0.255)" in format_rashomon_results(rows)


def test_cross_entropy_reads_predict_proba_by_classes_labels() -> None:
    """classes_ = [0, 2, 3] (columns 0, 1, 2): label 2 is column 1, not column 2 (p(class 3)).
    Truth: the mean of -log p(label) read through classes_ by hand."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] > 0.5, 3, np.where(X[:, 0] < -0.5, 0, 2)).astype(np.int64)
    Xe = rng.normal(size=(200, 3))
    ye = np.where(Xe[:, 0] > 0, 2, 0).astype(np.int64)  # the eval labels hold 0 and 2 only

    def fit(X: np.ndarray, y: np.ndarray, *, seed: int) -> Any:
        return LogisticRegression(max_iter=2000).fit(X, y)

    r = rashomon_interactions(X, y, fit=fit, n_candidates=1, X_eval=Xe, y_eval=ye, n_repeats=1)
    model = fit(X, y, seed=0)
    col = {int(c): k for k, c in enumerate(model.classes_)}
    p = model.predict_proba(Xe)[np.arange(len(ye)), [col[int(v)] for v in ye]]
    assert r.candidate_losses[0] == pytest.approx(float(-np.log(np.clip(p, 1e-12, None)).mean()), rel=1e-10)


def test_relative_epsilon_keeps_the_best_model_of_a_negative_loss() -> None:
    # a custom loss in [-1, 0]; (1 + epsilon) L* lies below L* and rejected every candidate,
    # the best one included. The set is L <= L* + epsilon |L*| (hand-computed here).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = X[:, 0] + 0.1 * rng.normal(size=60)

    class Shifted:
        def __init__(self, c: float) -> None:
            self.c = c

        def predict(self, a: np.ndarray) -> np.ndarray:
            return a[:, 0] + self.c

    shifts = [0.0, 0.2, 0.6, 1.5]

    def fit(_x: np.ndarray, _y: np.ndarray, *, seed: int) -> Shifted:
        return Shifted(shifts[seed])

    def loss(p: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.asarray(-np.exp(-((p - t) ** 2)))

    r = rashomon_interactions(X, y, fit, n_candidates=4, epsilon=0.1, relative=True, loss=loss, n_repeats=2)
    losses = np.array([loss(X[:, 0] + c, y).mean() for c in shifts])
    best = losses.min()
    np.testing.assert_allclose(r.candidate_losses, losses)
    assert r.threshold == pytest.approx(best + 0.1 * abs(best))
    assert r.accepted.tolist() == (losses <= best + 0.1 * abs(best)).tolist()
    assert r.accepted[int(np.argmin(losses))] and r.n_models >= 1
