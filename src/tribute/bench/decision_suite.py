"""The ``decision`` suite: recourse, SHAP-KL, DhondtXAI and certified attributions against ground truth.

Four parts, each with a ground truth (run ``tribute bench --suite decision``; ``decision-tiny``
for tests):

1. **Recourse on a linear credit model** (known recourse). A synthetic credit table (income,
   debt, savings, years employed, age, postcode score); approval is a fixed linear logit
   in which the immutable ``age`` and ``postcode`` carry large weights. For a linear model the
   responsiveness score of every feature has a closed form (the fraction of the feasible
   interval beyond the decision boundary; the count of integers beyond it), so the suite reports
   the largest error of :func:`~tribute.methods.responsiveness.feature_responsiveness` against
   it and the share of sampled scores within 3 binomial standard deviations of it. Then the paper's comparison (Cheon et
   al. 2025): for each denied applicant, the feature with the largest ``|credit|`` under exact
   Shapley values (and LIME) -- is it unresponsive (score 0)? The share of denied applicants
   whose top-ranked feature cannot give recourse is reported.
2. **SHAP-KL with planted features.** A 3-class softmax model on 8 standardised features whose
   logits depend on features 1, 4 and 6 only; ``explain(..., output="kl")`` with exact
   enumeration. Reported: share of inputs whose 3 largest ``|credit|`` are the planted ones,
   mean ``|credit|`` of planted vs other features, the largest efficiency gap, and the
   label-leakage diagnostic (a selection that encodes the label vs the SHAP-KL top-3).
3. **Certified attributions.** A small tanh MLP on 6 features, input x gradient smoothed with
   uniform L2-ball noise of three sizes, top-1 certified: certified share, median radius, and an
   empirical check (a random perturbation at 0.99 x the radius, the top-1 re-estimated with 8x
   the draws) counting violations (a violation: the certified player no longer has the largest
   estimated frequency).
   Next to it, Wang & Kong's cosine certificate from the same draws (unit-normalised maps,
   ``min_cosine=0.9``): the share of inputs whose certified cosine bound reaches 0.9 at
   ``eps`` = 0.01, 0.02, 0.05, the median cosine radius for 0.9 and 0.8, and empirical
   violations at 0.99 x each input's radius -- under a random perturbation and under L2 PGD on
   the cosine of the smoothed estimate (fixed draws, differentiable input x gradient) -- with
   the cosine re-estimated at ``x`` and ``x + delta`` with 8x the draws and fresh seeds -- and
   the slack: the smallest multiple of the certified radius (2, 3, 4, 6, 8, 12, 16) at which the
   same PGD does bring the re-estimated cosine below 0.9.
4. **DhondtXAI with a known parliament.** A linear model on 10 independent standardised features
   with planted weights (three of them zero). With the mean as baseline, the exact Shapley credit
   of feature ``i`` is ``w_i (x_i - mean_i)``, so the true votes (mean ``|credit|``) and the true
   D'Hondt parliament (100 seats, 5% threshold) are known in closed form. Reported per estimator
   (exact Shapley, kernel SHAP and LIME at 32 and 128 evaluations, integrated gradients): the share of seats placed as in the true
   parliament, seats won by the zero-weight features (which should be none), and whether the
   lists below the threshold match; and, for a tanh MLP on the same data whose truth is exact
   Shapley by enumeration, the same against that truth.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..api import explain, feature_responsiveness
from ..atomic import atomic_write
from ..errors import StderrWarning
from ..games.build import build_game
from ..methods.certified import certified_attribution
from ..methods.dhondt import dhondt_seats
from ..methods.responsiveness import Actionability
from ..methods.shap_kl import label_leakage, top_k_selection
from ._io import json_safe

__all__ = ["CREDIT_FEATURES", "cmd_decision_suite", "credit_actionability", "format_decision_results",
           "linear_responsiveness", "run_decision_suite"]

CREDIT_FEATURES = ["income", "debt", "savings", "years_employed", "age", "postcode_score"]
_W = np.array([0.8, -0.9, 0.5, 0.15, 0.06, 1.2])
_C = -4.0


def credit_actionability() -> Actionability:
    """The credit table's constraints: age and postcode immutable, debt only down, years up."""
    return Actionability(
        immutable=["age", "postcode_score"],
        monotone={"debt": -1, "years_employed": 1, "income": 1},
        bounds={"income": (0.0, 6.0), "debt": (0.0, 5.0), "savings": (0.0, 4.0), "years_employed": (0, 12)},
        integer=["years_employed"])


def _credit_table(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.uniform(0.5, 3.0, n), rng.uniform(0.5, 4.0, n), rng.uniform(0.0, 2.0, n),
        rng.integers(0, 6, n).astype(np.float64), rng.integers(18, 70, n).astype(np.float64),
        rng.normal(0.0, 1.0, n)])


def _credit_logit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.asarray(x, dtype=np.float64) @ _W + _C
    return out


def linear_responsiveness(x: np.ndarray, w: np.ndarray, c: float, rules: list[dict[str, Any]]) -> np.ndarray:
    """Closed-form responsiveness of a linear logit ``w.x + c`` (target: logit > 0), per feature."""
    out = np.zeros(len(rules))
    z = float(x @ w + c)
    for j, r in enumerate(rules):
        if r["immutable"] or w[j] == 0:
            continue
        lo, hi, cur = r["lo"], r["hi"], float(x[j])
        if r["monotone"] > 0:
            lo = max(lo, cur)
        elif r["monotone"] < 0:
            hi = min(hi, cur)
        t = cur - z / w[j]  # x_j = t puts the logit on the boundary
        if r["integer"]:
            vals = np.arange(math.ceil(lo), math.floor(hi) + 1, dtype=np.float64)
            vals = vals[vals != cur]
            if vals.size:
                out[j] = float(np.mean(z + w[j] * (vals - cur) > 0))
        elif hi > lo:
            frac = (hi - max(lo, t)) / (hi - lo) if w[j] > 0 else (min(hi, t) - lo) / (hi - lo)
            out[j] = float(np.clip(frac, 0.0, 1.0))
    return out


def _recourse_part(n: int, n_samples: int, seed: int) -> dict[str, Any]:
    x_all = _credit_table(4 * n, seed)
    denied = x_all[_credit_logit(x_all) < 0][:n]
    act = credit_actionability()
    t0 = time.perf_counter()
    res = feature_responsiveness(_credit_logit, denied, act, n_samples=n_samples, seed=seed,
                                 feature_names=CREDIT_FEATURES, model_output="logit")
    secs = time.perf_counter() - t0
    rules = act.resolve(CREDIT_FEATURES)
    ref = np.stack([linear_responsiveness(row, _W, _C, rules) for row in denied])
    err = np.abs(res.scores - ref)
    sampled = ~res.exact & res.feasible
    # z-test against the closed form: the binomial sd of the reference, sqrt(p (1 - p) / n)
    within = err[sampled] <= 3 * np.sqrt(ref[sampled] * (1 - ref[sampled]) / n_samples) + 1e-12
    background = x_all.mean(0)
    shap = explain(_credit_logit, denied, method="exact_shapley", baseline=background,
                   feature_names=CREDIT_FEATURES, model_output="logit").values
    lime = explain(_credit_logit, denied, method="lime", baseline=background, budget=256, seed=seed,
                   feature_names=CREDIT_FEATURES, model_output="logit").values
    out: dict[str, Any] = {"denied": int(denied.shape[0]), "n_samples": n_samples, "seconds": secs,
                           "n_evals": res.n_evals, "max_abs_error_vs_closed_form": float(err.max()),
                           "max_abs_error_exact_features": float(err[res.exact].max()) if res.exact.any() else 0.0,
                           "share_within_3_stderr": float(within.mean()) if within.size else 1.0,
                           "mean_score": {n: float(res.scores[:, j].mean()) for j, n in enumerate(CREDIT_FEATURES)}}
    for name, vals in (("shap", np.asarray(shap)), ("lime", np.asarray(lime))):
        top = np.argmax(np.abs(vals), axis=1)
        unresp = res.scores[np.arange(len(top)), top] == 0.0
        out[f"top_{name}_unresponsive_share"] = float(unresp.mean())
        out[f"top_{name}_feature_counts"] = {CREDIT_FEATURES[j]: int((top == j).sum()) for j in set(top.tolist())}
    out["no_recourse_share"] = float((np.nan_to_num(res.scores).max(1) == 0).mean())
    return out


def _shap_kl_part(n: int, seed: int) -> dict[str, Any]:
    planted = [1, 4, 6]
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(3, 8, dtype=torch.float64)
    w[:, planted] = torch.randn(3, 3, generator=gen, dtype=torch.float64) * 2.0
    model = torch.nn.Linear(8, 3).double()
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.zero_()
    x = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    t0 = time.perf_counter()
    attr = explain(model, x, method="exact_shapley", output="kl", baseline=0.0)
    secs = time.perf_counter() - t0
    v = attr.values.numpy()
    top3 = np.argsort(-np.abs(v), axis=1)[:, :3]
    game = build_game(model, x, output="kl", baseline=0.0)
    kl_empty = -game.empty()[:, 0].numpy()
    kl_ref = game.target.kl_reference
    assert kl_ref is not None
    labels = kl_ref.argmax(1).numpy()
    leaky = np.zeros((n, 8), dtype=bool)
    leaky[np.arange(n), np.array([0, 2, 3, 5, 7])[labels % 5]] = True  # an unplanted feature per label
    leak = label_leakage(game, leaky)
    honest = label_leakage(game, top_k_selection(np.abs(v), 1))
    others = [j for j in range(8) if j not in planted]
    return {"inputs": n, "seconds": secs, "top3_is_planted_share": float(np.mean([set(r) == set(planted) for r in top3.tolist()])),
            "mean_abs_credit_planted": float(np.abs(v[:, planted]).mean()),
            "mean_abs_credit_other": float(np.abs(v[:, others]).mean()),
            "max_efficiency_gap": float(np.abs(v.sum(1) - kl_empty).max()),
            "leaky_selection": {"leaky_accuracy": leak.leaky_accuracy, "chance": leak.chance_accuracy,
                                "kl_retained": leak.kl_retained},
            "shap_kl_top1_selection": {"leaky_accuracy": honest.leaky_accuracy, "chance": honest.chance_accuracy,
                                       "kl_retained": honest.kl_retained}}


_DHONDT_W = np.array([2.0, -1.6, 1.2, 0.9, -0.6, 0.35, 0.15, 0.0, 0.0, 0.0])


def _seat_agreement(est: dict[str, int], true: dict[str, int], seats: int) -> float:
    """Share of seats placed as in the true parliament: ``1 - sum |est - true| / (2 seats)``."""
    return 1.0 - sum(abs(est[k] - true[k]) for k in true) / (2.0 * seats)


def _dhondt_part(n: int, seed: int, seats: int = 100, threshold: float = 0.05) -> dict[str, Any]:
    names = [f"x{j}" for j in range(_DHONDT_W.size)]
    zero = [names[j] for j in np.nonzero(_DHONDT_W == 0)[0]]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, _DHONDT_W.size, generator=gen, dtype=torch.float64)
    base = x.mean(0)
    w = torch.as_tensor(_DHONDT_W)
    torch.manual_seed(seed)
    first = torch.nn.Linear(10, 16).double()
    with torch.no_grad():  # saturating (strong interactions); the zero-weight inputs unused
        first.weight.mul_(3.0 * torch.as_tensor(np.where(_DHONDT_W == 0, 0.0, 1.0)))
    mlp = torch.nn.Sequential(first, torch.nn.Tanh(), torch.nn.Linear(16, 1).double())

    def linear(z: torch.Tensor) -> torch.Tensor:
        return (z - base) @ w

    estimators: list[tuple[str, dict[str, Any]]] = [
        ("exact_shapley", {"method": "exact_shapley"}),
        ("kernel_shap@32", {"method": "kernel_shap", "budget": 32, "seed": seed}),
        ("kernel_shap@128", {"method": "kernel_shap", "budget": 128, "seed": seed}),
        ("lime@32", {"method": "lime", "budget": 32, "seed": seed}),
        ("lime@128", {"method": "lime", "budget": 128, "seed": seed}),
        ("integrated_gradients", {"method": "integrated_gradients"}),
    ]
    out: dict[str, Any] = {"inputs": n, "seats": seats, "threshold": threshold,
                           "weights": _DHONDT_W.tolist(), "zero_weight_features": zero}
    for model_name, model, truth_credits in (
        ("linear", linear, ((x - base) * w).numpy()),
        ("tanh_mlp", mlp, None),
    ):
        if truth_credits is None:
            truth_credits = explain(model, x, method="exact_shapley", baseline=base[None]).values.numpy()
        true = dhondt_seats(truth_credits, seats, names=names, threshold=threshold)
        rows = []
        for label, kw in estimators:
            with warnings.catch_warnings():  # only the values are used here, not standard errors
                warnings.simplefilter("ignore", StderrWarning)
                vals = explain(model, x, baseline=base[None], **kw).values.numpy()
            est = dhondt_seats(vals, seats, names=names, threshold=threshold)
            rows.append({"estimator": label, "seat_agreement": _seat_agreement(est.seats, true.seats, seats),
                         "zero_weight_seats": int(sum(est.seats[z] for z in zero)),
                         "excluded_match": sorted(est.excluded) == sorted(true.excluded),
                         "max_seat_error": int(max(abs(est.seats[k] - true.seats[k]) for k in names))})
        out[model_name] = {"true_seats": true.seats, "true_excluded": sorted(true.excluded), "rows": rows}
    return out


_COS_EPS = (0.01, 0.02, 0.05)
_SLACK_MULTIPLES = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def _smoothed_clipped_ixg(net: torch.nn.Module, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Differentiable ``mean_k a(y + z_k) / ||a(y + z_k)||`` for input x gradient ``a(v) = v * grad f(v)``
    (baseline 0, the suite's base method), for the PGD attack on the certified cosine."""
    v = y[None, :] + z
    if not v.requires_grad:
        v.requires_grad_(True)
    out = net(v).sum()
    (grad,) = torch.autograd.grad(out, v, create_graph=True)
    a: torch.Tensor = v * grad
    mean: torch.Tensor = (a / a.norm(dim=1, keepdim=True).clamp_min(1e-300)).mean(0)
    return mean


def _pgd_on_cosine(net: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor, radius: float, noise: float,
                   draws: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    """L2 PGD (normalised gradient steps, projection on the ``radius`` ball) minimising the cosine between
    the smoothed clipped map at ``x + delta`` (``draws`` fixed uniform-ball draws) and ``ref``: ``steps``
    steps from a random start on the sphere; the best of the start and the ``steps`` iterates is returned."""
    d = x.numel()
    g = torch.randn(draws, d, generator=gen, dtype=torch.float64)
    z = g / g.norm(dim=1, keepdim=True) * torch.rand(draws, 1, generator=gen, dtype=torch.float64) ** (1.0 / d)
    z = z * noise
    delta = torch.randn(d, generator=gen, dtype=torch.float64)
    delta = delta / delta.norm() * radius
    best: torch.Tensor = delta.clone()
    best_cos = math.inf
    for step in range(steps + 1):  # the start and every step's iterate are evaluated, the last one too
        delta.requires_grad_(True)
        gm = _smoothed_clipped_ixg(net, x + delta, z)
        cos = torch.dot(gm, ref) / (gm.norm() * ref.norm())
        if float(cos.detach()) < best_cos:
            best, best_cos = delta.detach().clone(), float(cos.detach())
        if step == steps:
            break
        (grad,) = torch.autograd.grad(cos, delta)
        with torch.no_grad():
            delta = delta - radius / 4 * grad / grad.norm().clamp_min(1e-300)
            delta = delta * min(1.0, radius / float(delta.norm()))
    return best


def _cosine_checks(net: torch.nn.Module, x: torch.Tensor, r: Any, idx: np.ndarray, noise: float, n_samples: int,
                   seed: int, rng: np.random.Generator, pgd_draws: int, pgd_steps: int) -> dict[str, Any]:
    """Random and PGD perturbations at 0.99 x the cosine radius; the cosine of the smoothed clipped maps
    re-estimated with 8x the draws (fresh seeds) at ``x`` and ``x + delta``; a violation: below min_cosine."""
    if idx.size == 0:
        return {"pgd_break_multiple_median": None, "pgd_break_multiple_min": None,
                "pgd_unbroken_at_max_multiple": 0, "checks": 0, "random_violations": 0, "pgd_violations": 0, "random_min_cosine": None,
                "pgd_min_cosine": None, "random_mean_cosine": None, "pgd_mean_cosine": None}
    big = 8 * n_samples

    def smoothed(inputs: torch.Tensor, s: int) -> np.ndarray:
        res = certified_attribution(net, inputs, "input_x_gradient", noise=noise, k=1, n_samples=big, seed=s)
        out: np.ndarray = res.clipped
        return out

    ref = smoothed(x[idx], seed + 101)
    rad = 0.99 * r.cosine_radius[idx]
    d = rng.normal(size=(idx.size, x.shape[1]))
    d *= (rad / np.linalg.norm(d, axis=1))[:, None]
    rand = smoothed(x[idx] + torch.as_tensor(d), seed + 202)
    gen = torch.Generator().manual_seed(seed + 303)
    adv = torch.stack([_pgd_on_cosine(net, x[i], torch.as_tensor(ref[j]), float(rad[j]), noise, pgd_draws,
                                      pgd_steps, gen) for j, i in enumerate(idx)])
    attacked = smoothed(x[idx] + adv, seed + 404)

    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out: np.ndarray = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return out

    c_rand, c_adv = cos(ref, rand), cos(ref, attacked)
    # slack: the smallest multiple of the certified radius at which PGD breaks min_cosine
    broken = np.full(idx.size, np.inf)
    for mult in _SLACK_MULTIPLES:
        todo = np.nonzero(np.isinf(broken))[0]
        if todo.size == 0:
            break
        adv_m = torch.stack([_pgd_on_cosine(net, x[idx[j]], torch.as_tensor(ref[j]), mult * float(rad[j]) / 0.99,
                                            noise, pgd_draws, pgd_steps, gen) for j in todo])
        c_m = cos(ref[todo], smoothed(x[idx[todo]] + adv_m, seed + 505 + int(mult)))
        broken[todo[c_m < r.min_cosine]] = mult
    return {"pgd_break_multiple_median": _finite(float(np.median(broken))),  # None: beyond the largest multiple
            "pgd_break_multiple_min": _finite(float(broken.min())),
            "pgd_unbroken_at_max_multiple": int(np.isinf(broken).sum()),
            "checks": int(idx.size), "random_violations": int((c_rand < r.min_cosine).sum()),
            "pgd_violations": int((c_adv < r.min_cosine).sum()), "random_min_cosine": float(c_rand.min()),
            "pgd_min_cosine": float(c_adv.min()), "random_mean_cosine": float(c_rand.mean()),
            "pgd_mean_cosine": float(c_adv.mean())}


def _certified_part(n: int, n_samples: int, n_checks: int, seed: int, pgd_draws: int = 128,
                    pgd_steps: int = 20) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: one thread is fastest, and immune to a busy machine
    try:
        out = _certified_rows(n, n_samples, n_checks, seed, pgd_draws, pgd_steps)
    finally:
        torch.set_num_threads(threads)
    out["torch_threads"] = 1
    return out


def _certified_rows(n: int, n_samples: int, n_checks: int, seed: int, pgd_draws: int,
                    pgd_steps: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n, 6, generator=gen, dtype=torch.float64) * 2 - 1
    rng = np.random.default_rng(seed)
    rows = []
    cos_rows = []
    for noise in (0.1, 0.2, 0.4):
        t0 = time.perf_counter()
        r = certified_attribution(net, x, "input_x_gradient", noise=noise, k=1, n_samples=n_samples, seed=seed,
                                  min_cosine=0.9)
        secs = time.perf_counter() - t0
        checks = violations = 0
        for i in np.nonzero(r.certified)[0][:n_checks]:
            top = set(r.topk[i].tolist())
            d = rng.normal(size=6)
            d *= 0.99 * r.radius[i] / np.linalg.norm(d)
            big = certified_attribution(net, x[i:i + 1] + torch.as_tensor(d[None]), "input_x_gradient",
                                        noise=noise, k=1, n_samples=8 * n_samples, seed=seed + 17)
            f = big.frequency[0]
            rest = [j for j in range(6) if j not in top]
            checks += 1
            violations += int(min(f[list(top)]) <= max(f[rest]))  # estimated: Monte-Carlo noise counts too
        rows.append({"noise": noise, "certified_share": float(r.certified.mean()),
                     "median_radius": float(np.median(r.radius)), "mean_radius": float(r.radius.mean()),
                     "empirical_checks": checks, "violations": violations, "seconds": secs,
                     "n_evals_per_input": r.n_evals})
        t0 = time.perf_counter()
        cos_checks = _cosine_checks(net, x, r, np.nonzero(r.cosine_radius > 0)[0][:n_checks], noise, n_samples, seed,
                                rng, pgd_draws, pgd_steps)
        bounds = r.cosine_bound(list(_COS_EPS))
        cos_rows.append({
            "noise": noise, "norm_error": r.norm_error, "median_norm_lower": float(np.median(r.norm_lower)),
            "certified_share_at_eps": {str(e): float((bounds[:, j] >= 0.9).mean()) for j, e in enumerate(_COS_EPS)},
            "median_radius_cos_0.9": float(np.median(r.cosine_radius)),
            "median_radius_cos_0.8": float(np.median(r.radius_at(0.8))),
            "certified_share_cos_0.9": float((r.cosine_radius > 0).mean()), **cos_checks,
            "check_seconds": time.perf_counter() - t0})
    return {"inputs": n, "n_samples": n_samples, "k": 1, "alpha": 0.05, "smoothing": "l2",
            "method": "input_x_gradient", "rows": rows,
            "cosine": {"min_cosine": 0.9, "clip": "unit-normalised maps (M = 1)", "pgd_draws": pgd_draws,
                       "pgd_steps": pgd_steps, "rows": cos_rows}}


def run_decision_suite(*, tiny: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run the four parts (see the module docstring); ``tiny`` for tests."""
    torch_threads = torch.get_num_threads()
    # the parts seed torch's global generator; the caller's is left as it was (CPU only: no
    # device generator is touched, so no CUDA context starts)
    with torch.random.fork_rng(devices=[]):
        return {
            "recourse": _recourse_part(8 if tiny else 100, 200 if tiny else 1000, seed),
            "shap_kl": _shap_kl_part(8 if tiny else 100, seed),
            "dhondt": _dhondt_part(16 if tiny else 200, seed),
            "certified": _certified_part(4 if tiny else 50, 100 if tiny else 500, 2 if tiny else 20, seed,
                                         pgd_draws=32 if tiny else 128, pgd_steps=5 if tiny else 20),
            "torch_threads": torch_threads,
        }


def format_decision_results(res: dict[str, Any]) -> str:
    """Plain-text summary of :func:`run_decision_suite`."""
    rc, kl, ce = res["recourse"], res["shap_kl"], res["certified"]
    lines = [
        f"Recourse (linear credit model, {rc['denied']} denied applicants, n_samples={rc['n_samples']}):",
        f"  max |score - closed form| = {rc['max_abs_error_vs_closed_form']:.4f} "
        f"(exact integer features: {rc['max_abs_error_exact_features']:.2e}); "
        f"within 3 binomial sd of it: {rc['share_within_3_stderr']:.1%}; {rc['n_evals']} model rows, {rc['seconds']:.2f}s",
        f"  top-|SHAP| feature unresponsive for {rc['top_shap_unresponsive_share']:.1%} of denied applicants "
        f"(top features {rc['top_shap_feature_counts']}); top-|LIME|: {rc['top_lime_unresponsive_share']:.1%}",
        f"  no single-feature recourse at all: {rc['no_recourse_share']:.1%}",
        f"SHAP-KL (planted features 1, 4, 6 of 8; {kl['inputs']} inputs, exact enumeration, {kl['seconds']:.2f}s):",
        f"  top-3 |credit| = planted for {kl['top3_is_planted_share']:.1%}; mean |credit| planted "
        f"{kl['mean_abs_credit_planted']:.4f} vs other {kl['mean_abs_credit_other']:.2e}; "
        f"max efficiency gap {kl['max_efficiency_gap']:.1e}",
        f"  label leakage: leaky selection accuracy {kl['leaky_selection']['leaky_accuracy']:.2f} "
        f"(chance {kl['leaky_selection']['chance']:.2f}), KL retained {kl['leaky_selection']['kl_retained']:.3f}; "
        f"SHAP-KL top-1: accuracy {kl['shap_kl_top1_selection']['leaky_accuracy']:.2f}, "
        f"KL retained {kl['shap_kl_top1_selection']['kl_retained']:.3f}",
        f"Certified top-{ce['k']} ({ce['method']}, tanh MLP, {ce['inputs']} inputs, n_samples={ce['n_samples']}, "
        f"alpha={ce['alpha']}, L2-ball noise):",
    ]
    for row in ce["rows"]:
        lines.append(f"  noise {row['noise']:<5} certified {row['certified_share']:.1%}  median radius "
                     f"{row['median_radius']:.4f}  violations {row['violations']}/{row['empirical_checks']}  "
                     f"{row['seconds']:.2f}s")
    cc = ce.get("cosine")
    if cc:
        lines.append(f"Certified cosine (Wang & Kong; {cc['clip']}, same draws; min_cosine {cc['min_cosine']}; "
                     f"checks at 0.99 x radius, 8x draws, PGD {cc['pgd_steps']} steps on {cc['pgd_draws']} draws):")
        big = f">{_SLACK_MULTIPLES[-1]:g}"
        for row in cc["rows"]:
            shares = ", ".join(f"eps {e}: {v:.0%}" for e, v in row["certified_share_at_eps"].items())
            lines.append(
                f"  noise {row['noise']:<5} beta {row['norm_error']:.3f}  cos>=0.9 certified at {shares}; "
                f"median radius cos 0.9 {row['median_radius_cos_0.9']:.4f}, cos 0.8 {row['median_radius_cos_0.8']:.4f}; "
                f"violations random {row['random_violations']}/{row['checks']} "
                f"(min/mean cos {_opt(row['random_min_cosine'])}/{_opt(row['random_mean_cosine'])}), "
                f"PGD {row['pgd_violations']}/{row['checks']} "
                f"(min/mean cos {_opt(row['pgd_min_cosine'])}/{_opt(row['pgd_mean_cosine'])}); PGD breaks cos "
                f"{cc['min_cosine']} at a median {_opt(row['pgd_break_multiple_median'], big)} x the radius (min "
                f"{_opt(row['pgd_break_multiple_min'], big)}; unbroken at {_SLACK_MULTIPLES[-1]:g}x: "
                f"{row['pgd_unbroken_at_max_multiple']})  {row['check_seconds']:.1f}s")
    dh = res.get("dhondt")
    if dh is not None:
        lines.append(f"DhondtXAI ({dh['seats']} seats, threshold {dh['threshold']:.0%}, {dh['inputs']} inputs, "
                     f"zero-weight features {', '.join(dh['zero_weight_features'])}):")
        for model_name in ("linear", "tanh_mlp"):
            part = dh[model_name]
            lines.append(f"  {model_name}: true parliament {part['true_seats']} (below threshold: "
                         f"{', '.join(part['true_excluded']) or 'none'})")
            for row in part["rows"]:
                lines.append(f"    {row['estimator']:<16} seats as in the truth {row['seat_agreement']:.1%}  "
                             f"largest seat error {row['max_seat_error']}  seats to zero-weight features "
                             f"{row['zero_weight_seats']}  threshold exclusions match: {row['excluded_match']}")
    return "\n".join(lines)


def _opt(v: float | None, beyond: str = "n/a") -> str:
    return beyond if v is None else f"{v:.4g}"


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def cmd_decision_suite(args: Any) -> int:
    """``tribute bench --suite decision`` (``decision-tiny``: a few inputs, for tests)."""
    res = run_decision_suite(tiny=args.suite == "decision-tiny", seed=int(getattr(args, "seed", 0) or 0))
    print(format_decision_results(res))
    out = Path(getattr(args, "out", None) or "bench-out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "decision.json",
                 (json.dumps(json_safe(res), indent=2, allow_nan=False) + "\n").encode())
    print(f"wrote {out / 'decision.json'}")
    return 0
