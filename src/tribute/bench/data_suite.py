"""The ``data`` suite: training-data attribution scored against real retraining.

Cases are generated deterministically from the seed (no downloads; digits ship with
scikit-learn):

* ``ridge`` — ridge regression on synthetic data (leave-one-out has a closed form);
* ``logistic`` — 3-class logistic regression on synthetic data;
* ``digits_logistic`` — scikit-learn digits, multinomial logistic regression (a torch linear
  model trained by Newton's method);
* ``digits_mlp`` — scikit-learn digits, a 64-32-10 tanh MLP trained by full-batch gradient
  descent with momentum;
* ``digits_mlp_flipped`` — the same with a fraction of training labels flipped (self-influence
  should find them: ``mislabel_auc``);
* ``digits_cnn`` (optional: run when named, not part of the default suite) — scikit-learn
  digits with a small CNN (:class:`~tribute.games.data_fits.ConvFit`: an 8-channel ``3 x 3``
  convolution, tanh, ``2 x 2`` average pooling, a linear read-out), where EK-FAC's
  ``nn.Conv2d`` factors are exercised.

Every method is scored by the linear datamodeling score (``linear_score`` on held-out random
subsets of half the training set, retrained through one shared retrain bank) with a 95%
Student-t interval over test points, by ``loo_correlation`` where leave-one-out is affordable, and by
``mislabel_auc`` on the flipped case; time and peak traced memory are recorded per method.

``digits_mlp`` also has optional labels, run only when named (``--methods``): ensembles of
``n_models`` independently trained models (:meth:`tribute.games.data.DataGame.ensemble`) —
``influence_abs_ens2`` / ``influence_abs_ens3`` and ``trak_ens5`` / ``trak_ens10``; their
seconds include training the extra models. ``influence_abs_half`` is ``influence(indefinite="abs",
subset_fraction=0.5)``: gradients at the expected model of the score's random halves.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..api import explain
from ..errors import InputError
from ..games.build import build_game
from ..metrics import linear_score, loo_correlation, mislabel_auc
from ._io import atomic_write_text, json_safe

__all__ = ["DATA_CASES", "OPTIONAL_CASES", "DataCase", "build_data_case", "cmd_data_suite", "data_gallery",
           "format_data_results", "run_data_case", "run_data_suite"]


@dataclass
class DataCase:
    """One data-attribution case: a training set, a fit, the full model and test points."""

    name: str
    title: str
    X: torch.Tensor
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    fit: Any
    model: torch.nn.Module
    methods: dict[str, dict[str, Any]]
    n_subsets: int = 100
    loo: bool = False
    flipped: np.ndarray | None = None
    images: tuple[int, int] | None = None
    small_drop: bool = False
    notes: list[str] = field(default_factory=list)
    #: labels run only when named in ``methods=`` (costlier variants, e.g. ensembles)
    optional: dict[str, dict[str, Any]] = field(default_factory=dict)

    def data(self, bank: str | None = None, workers: int = 1) -> Any:
        from ..games.data import TrainingData

        return TrainingData(self.X, self.y, fit=self.fit, bank=bank, workers=workers)


def _synthetic(kind: str, n: int, d: int, n_test: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n + n_test, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    z = X @ w + 0.5 * torch.randn(n + n_test, generator=g, dtype=torch.float64)
    y = z if kind == "ridge" else (z > 0.5).long() + (z > -0.5).long()
    return X[:n], y[:n], X[n:], y[n:]


def _digits(n_train: int, n_test: int, seed: int) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(X))
    X = torch.as_tensor(X[order] / 16.0, dtype=torch.float64)
    y = torch.as_tensor(y[order], dtype=torch.long)
    return X[:n_train], y[:n_train], X[n_train : n_train + n_test], y[n_train : n_train + n_test]


_GRAD: dict[str, dict[str, Any]] = {"grad_dot": {}, "tracin": {}, "influence": {}, "representer": {}}


def build_data_case(name: str, seed: int = 0, scale: str = "quick") -> DataCase:
    """Build one case. ``scale="tiny"`` shrinks it for tests."""
    from ..games.data_fits import ConvFit, LogisticFit, MLPFit, RidgeFit

    if scale not in ("tiny", "quick"):
        raise InputError(f"scale={scale!r} is not a data-suite scale; choose 'tiny' (tests) or 'quick'.")
    tiny = scale == "tiny"
    if name in ("ridge", "logistic"):
        n = 40 if tiny else 200
        X, y, Xt, yt = _synthetic(name, n, 8, 6 if tiny else 50, seed)
        fit: Any = RidgeFit(l2=1.0) if name == "ridge" else LogisticFit(3, l2=1.0)
        methods = {**_GRAD, "influence_loo_step": {"method": "influence", "loo_step": True},
                   "influence_loo_newton": {"method": "influence", "loo_step": True, "loo_iters": 30},
                   "trak": {"proj_dim": 16}, "datamodels": {"budget": 20 if tiny else 400},
                   "freeshap": {}}
        return DataCase(name, f"{name} regression (synthetic, n={n})", X, y, Xt, yt, fit,
                        fit(X, y, seed=0), methods, n_subsets=20 if tiny else 100, loo=True)
    if name.startswith("digits"):
        n_train, n_test = (60, 5) if tiny else (900, 100)
        X, y, Xt, yt = _digits(n_train, n_test, seed)
        flipped = None
        if name == "digits_mlp_flipped":
            rng = np.random.default_rng(seed + 1)
            flipped = np.sort(rng.choice(n_train, size=max(2, n_train // 20), replace=False))
            y = y.clone()
            y[flipped] = (y[flipped] + torch.as_tensor(rng.integers(1, 10, len(flipped)))) % 10
        trak = {"proj_dim": 16 if tiny else 256}
        ekfac = {"method": "influence", "solver": "ekfac"}
        if name == "digits_cnn":
            fit = ConvFit(10, channels=8, steps=40 if tiny else 300, lr=0.5, l2=1e-3)
            methods = {"grad_dot": {}, "influence_abs": {"method": "influence", "indefinite": "abs"},
                       "influence_ekfac": ekfac, "trak": trak}
        elif name == "digits_logistic":
            fit = LogisticFit(10, l2=1.0)
            methods = {**_GRAD, "trak": trak, "influence_ekfac": ekfac,
                       "influence_loo_step": {"method": "influence", "loo_step": True}}
        else:
            fit = MLPFit(10, hidden=32, steps=40 if tiny else 300, lr=0.5, l2=1e-3)
            methods = {**_GRAD, "influence_abs": {"method": "influence", "indefinite": "abs"},
                       "influence_ekfac": ekfac, "trak": trak, "metagradient": {}, "freeshap": {},
                       "metagradient_2nd": {"method": "metagradient", "curvature_probes": 16}}
        optional: dict[str, dict[str, Any]] = {} if name == "digits_logistic" else {
            **{f"influence_abs_ens{k}": {"method": "influence", "indefinite": "abs", "n_models": k}
               for k in (2, 3)},
            **{f"trak_ens{k}": {"method": "trak", **trak, "n_models": k} for k in (5, 10)},
            "influence_abs_half": {"method": "influence", "indefinite": "abs", "subset_fraction": 0.5}}
        return DataCase(name, f"{name} (scikit-learn digits, n_train={n_train})", X, y, Xt, yt,
                        fit, fit(X, y, seed=0), methods, n_subsets=20 if tiny else 100,
                        flipped=flipped, images=(8, 8), small_drop=name == "digits_mlp",
                        optional=optional)
    raise InputError(f"unknown data case {name!r}; choose from {DATA_CASES + OPTIONAL_CASES}.")


DATA_CASES = ("ridge", "logistic", "digits_logistic", "digits_mlp", "digits_mlp_flipped")
#: Cases run only when named (``cases=``/``--cases``).
OPTIONAL_CASES = ("digits_cnn",)


#: Small-drop LDS of the ``small_drop`` case: (fraction of the training set dropped, key, seed
#: offset of its held-out subsets). The metagradient's goal is LDS >= 0.9 at 1-5% dropped.
SMALL_DROPS = ((0.01, "lds_drop1pct", 555), (0.03, "lds_drop3pct", 777), (0.05, "lds_drop5pct", 999))


def _ci(scores: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval over the finite per-test-point scores (``n - 1`` dof:
    with the tiny scale's 5 or 6 test points a normal 1.96 made it 27-31% too narrow), clipped
    to [-1, 1], the range of the Spearman correlations it averages (the tiny digits_logistic
    influence row read [0.230, 1.265])."""
    from scipy.stats import t as student_t

    s = scores[np.isfinite(scores)]
    if len(s) < 2:
        return float(np.mean(s)) if len(s) else float("nan"), float("nan"), float("nan")
    m, se = float(s.mean()), float(s.std(ddof=1) / np.sqrt(len(s)))
    q = float(student_t.ppf(0.975, len(s) - 1))
    return m, max(-1.0, m - q * se), min(1.0, m + q * se)


class PeakRSS:
    """Peak resident memory above the starting point while the block runs (Linux; MiB).

    Samples ``/proc/self/statm`` every 2 ms in a thread (torch allocations are invisible to
    ``tracemalloc``). 0 where ``/proc`` is unavailable.
    """

    def __init__(self) -> None:
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page / 2**20
        except OSError:
            return 0.0

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._rss() - self._start)
            time.sleep(0.002)

    def __enter__(self) -> PeakRSS:
        self._start = self._rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._rss() - self._start)


def run_data_case(case: DataCase, *, methods: list[str] | None = None, seed: int = 0,
                  bank: str | None = None, workers: int = 1, lds_alpha: float = 0.5,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Explain the case's test points with each method and score them against retraining.

    Returns a JSON-friendly dict: per method LDS (mean and 95% interval over the test points where
    it is defined; ``lds_undefined`` counts the others, absent when none), loo_correlation,
    mislabel_auc (flipped cases), seconds and peak traced memory (MiB).
    """
    say = log or (lambda s: None)
    data = case.data(bank=bank, workers=workers)
    game = build_game(case.model, case.X_test, target=case.y_test, players=data)
    t0 = time.perf_counter()
    # fill the bank with the held-out LDS subsets once (shared by every method's score)
    linear_score(game, _zero_attr(game), n_subsets=case.n_subsets,
                                 alpha=lds_alpha, seed=seed + 12345)
    if case.small_drop:
        for frac, _, off in SMALL_DROPS:
            linear_score(game, _zero_attr(game), n_subsets=case.n_subsets, alpha=1 - frac,
                         seed=seed + off)
    say(f"{case.name}: {len(data.bank)} retrained subsets in {time.perf_counter() - t0:.1f}s")
    out: dict[str, Any] = {"case": case.name, "title": case.title, "n_train": int(case.X.shape[0]),
                           "n_test": int(case.X_test.shape[0]), "n_subsets": case.n_subsets,
                           "bank_seconds": time.perf_counter() - t0, "methods": {}}
    names = methods or list(case.methods)
    _warm_up(case, data, seed)
    best: tuple[float, str, Any] | None = None
    for label in names:
        if label not in case.methods and label not in case.optional and not _registered(label):
            # a label of another case's table (``--methods`` spans the cases): not run here, said so
            out["methods"][label] = {"not_run": f"not a method of the {case.name!r} case "
                                                f"(its methods: {', '.join([*case.methods, *case.optional])})"}
            continue
        params = dict(case.methods.get(label, case.optional.get(label, {})))
        method = params.pop("method", label)
        t = time.perf_counter()
        try:
            with PeakRSS() as mem:
                attr = explain(case.model, case.X_test, method=method, target=case.y_test,
                                       players=data, seed=seed, **params)
            _check_finite(attr, label)
        except Exception as exc:  # a failure, recorded and reported (the suite's exit status is 1)
            out["methods"][label] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"  {label}: FAILED: {type(exc).__name__}: {exc}")
            continue
        secs = time.perf_counter() - t
        peak = mem.peak_mib
        lds = linear_score(game, attr, n_subsets=case.n_subsets, alpha=lds_alpha,
                                           seed=seed + 12345)
        per_point = np.asarray(lds.scores, dtype=np.float64).reshape(-1)
        m, lo, hi = _ci(per_point)
        row: dict[str, Any] = {"lds": m, "lds_ci95": [lo, hi], "seconds": secs, "peak_mib": peak}
        undefined = int((~np.isfinite(per_point)).sum())
        if undefined:  # Spearman undefined (constant credits or outputs): not averaged, and said so
            row["lds_undefined"] = undefined
        if case.small_drop:
            for frac, key, off in SMALL_DROPS:
                sd = linear_score(game, attr, n_subsets=case.n_subsets, alpha=1 - frac,
                                  seed=seed + off)
                row[key], *ci = _ci(np.asarray(sd.scores, dtype=np.float64).reshape(-1))
                row[f"{key}_ci95"] = ci
        if case.loo:
            row["loo_correlation"] = loo_correlation(game, attr).mean
        if "damping" in attr.extra:
            row["damping"] = attr.extra["damping"]
        if "fit_seconds" in attr.extra:  # an ensemble: its extra training (in ``seconds``)
            row["fit_seconds"] = attr.extra["fit_seconds"]
            row["n_models"] = attr.extra["n_models"]
        out["methods"][label] = row
        if np.isfinite(m) and (best is None or m > best[0]):
            best = (m, label, attr)
        say(f"  {label}: LDS {m:.3f} [{lo:.3f}, {hi:.3f}] in {secs:.2f}s, peak {peak:.1f} MiB"
            + (f", LOO corr {row['loo_correlation']:.4f}" if case.loo else "")
            + ("".join(f", LDS({f:.0%} dropped) {row[k]:.3f}" for f, k, _ in SMALL_DROPS)
               if case.small_drop else ""))
    if case.flipped is not None:
        ran = [n for n in names if n in out["methods"] and "not_run" not in out["methods"][n]]
        out["mislabel_auc"], errors = _mislabel(case, data, ran, seed, say)
        if errors:
            out["mislabel_errors"] = errors
    if case.images is not None and best is not None:
        out["gallery"] = data_gallery(case, best[2], best[1])
    return out


def _warm_up(case: DataCase, data: Any, seed: int) -> None:
    """One untimed ``grad_dot`` on the first test point: the first ``explain`` of a process
    imports the method modules (3-18 s measured, 840 modules), which the first method's
    ``seconds`` used to carry (ridge: grad_dot 6.03 s against 0.01 s for the same sums in
    tracin). A failure here is left to the methods' own runs, which report it."""
    try:
        explain(case.model, case.X_test[:1], method="grad_dot", target=case.y_test[:1], players=data,
                seed=seed)
    except Exception:  # warm-up only: each method's own run reports its failure
        return


#: Test points and proponents/opponents per test point in the report's gallery.
GALLERY_TEST_POINTS = 3
GALLERY_K = 4


def data_gallery(case: DataCase, attr: Any, label: str, n_test: int = GALLERY_TEST_POINTS,
                 k: int = GALLERY_K) -> dict[str, Any]:
    """Top-``k`` proponents and opponents (``attr.top``) of the first test points, JSON-friendly.

    Each entry carries the example's index, label, credit and pixels (``case.images`` shape),
    so the report can draw the images next to their labels and scores.
    """
    assert case.images is not None
    shape = case.images

    def pix(x: torch.Tensor) -> list[list[float]]:
        return [[round(float(v), 4) for v in row] for row in x.detach().reshape(shape).tolist()]

    rows = []
    for i in range(min(n_test, int(case.X_test.shape[0]))):
        top = attr.top(i, k)
        rows.append({
            "test": i, "label": int(case.y_test[i]), "image": pix(case.X_test[i]),
            **{side: [{"index": j, "label": int(case.y[j]), "score": float(v),
                       "image": pix(case.X[j])} for j, _, v in top[side]]
               for side in ("proponents", "opponents")},
        })
    return {"method": label, "k": k, "rows": rows}


def _zero_attr(game: Any) -> Any:
    return game.attribution(torch.zeros(game.n_samples, 1, game.n_players), "zero")


#: Methods left out of ``mislabel_auc``: they explain no ``output="loss"`` of the training points
#: themselves (the metagradient differentiates the test points' outputs through training, the
#: representer's credits are not a self-influence, FreeShap's kernel regression has no loss).
NO_SELF_INFLUENCE = ("metagradient", "representer", "freeshap")


def _registered(name: str) -> bool:
    from ..methods.base import METHODS

    return name in METHODS


def _check_labels(cases: list[DataCase], methods: list[str] | None) -> None:
    """Refuse a ``methods`` label that no case's table has and no registered method is
    (it used to run as ``method=label``, fail and print as skipped, exit status 0)."""
    if not methods:
        return
    known = {k for c in cases for k in (*c.methods, *c.optional)}
    unknown = [m for m in methods if m not in known and not _registered(m)]
    if unknown:
        raise InputError(f"--methods {','.join(methods)!r}: {unknown} are neither labels of the data "
                         f"suite's cases ({', '.join(sorted(known))}) nor registered methods; "
                         "fix the names (see `tribute methods`).")


def _check_finite(attr: Any, label: str) -> None:
    values = attr.values
    if not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise InputError(f"{label}: {bad} of {values.numel()} credits are NaN or infinite.")


def failures(results: list[dict[str, Any]]) -> list[str]:
    """``case/method`` of every failed method (an exception or non-finite credits, in the LDS
    run or in the mislabel run); empty when all ran."""
    return [f"{r['case']}/{m}" for r in results for m, row in r["methods"].items() if "error" in row] + \
        [f"{r['case']}/{m} (mislabel)" for r in results for m in r.get("mislabel_errors", {})]


def _mislabel(case: DataCase, data: Any, names: list[str], seed: int,
              say: Callable[[str], None]) -> tuple[dict[str, float], dict[str, str]]:
    game = build_game(case.model, case.X, target=case.y, output="loss", players=data)
    res: dict[str, float] = {}
    errors: dict[str, str] = {}
    for label in names:
        params = dict(case.methods.get(label, case.optional.get(label, {})))
        method = params.pop("method", label)
        if method in NO_SELF_INFLUENCE:
            continue
        try:
            attr = explain(case.model, case.X, method=method, target=case.y,
                                   output="loss", players=data, seed=seed, **params)
            _check_finite(attr, label)
        except Exception as exc:  # a failure: recorded (``mislabel_errors``), exit status 1
            errors[label] = f"{type(exc).__name__}: {exc}"
            say(f"  mislabel {label}: FAILED: {type(exc).__name__}: {exc}")
            continue
        auc = mislabel_auc(game, attr, ground_truth=case.flipped).extra["auc"]
        res[label] = float(auc)
        say(f"  mislabel_auc {label}: {auc:.3f}")
    return res, errors


def _case_names(cases: list[str] | None) -> list[str]:
    """The cases to run, each once, in the order given (default :data:`DATA_CASES`).

    An unknown name is refused before any case is built, naming ``--cases`` with the closest
    case; a repeated one (``--cases ridge,ridge``) used to retrain and rescore the case and
    print its table twice.
    """
    import difflib

    if not cases:
        return list(DATA_CASES)
    known = (*DATA_CASES, *OPTIONAL_CASES)
    unknown = [c for c in cases if c not in known]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InputError(f"--cases: unknown data case(s) {', '.join(hints)}; the data suite has "
                         f"{', '.join(DATA_CASES)} (and, run only when named, "
                         f"{', '.join(OPTIONAL_CASES)}).")
    return list(dict.fromkeys(cases))


def run_data_suite(seed: int = 0, cases: list[str] | None = None, scale: str = "quick",
                   methods: list[str] | None = None, workers: int = 1,
                   bank_dir: str | None = None,
                   log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Build and run every case of the data suite (or ``cases``).

    ``bank_dir``: keep each case's retrain bank on disk under ``bank_dir/<case>-<seed>-<scale>`` (a
    rerun, or another script, then trains nothing twice).
    """
    names = _case_names(cases)
    built = [build_data_case(name, seed, scale) for name in names]
    _check_labels(built, methods)
    out = []
    for name, case in zip(names, built, strict=True):
        bank = None if bank_dir is None else os.path.join(bank_dir, f"{name}-{seed}-{scale}")
        out.append(run_data_case(case, methods=methods, seed=seed, workers=workers, bank=bank, log=log))
    return out


def format_data_results(results: list[dict[str, Any]]) -> str:
    """A plain-text leaderboard: per case and method, LDS [95% interval], time, memory."""
    lines = []
    for r in results:
        lines.append(f"== {r['case']}: {r['title']} ({r['n_subsets']} retrained subsets of half "
                     f"the training set, {r['n_test']} test points)")
        for name, row in r["methods"].items():
            if "error" in row:
                lines.append(f"  {name:<20} FAILED: {row['error'][:90]}")
                continue
            if "not_run" in row:
                lines.append(f"  {name:<20} not run: {row['not_run'][:90]}")
                continue
            lo, hi = row["lds_ci95"]
            extra = "".join(
                f"  {k}={row[k]:.4f}" for k in ("loo_correlation", "lds_drop1pct", "lds_drop3pct",
                                                    "lds_drop5pct") if k in row)
            if row.get("lds_undefined"):
                extra += f"  (LDS over {r['n_test'] - row['lds_undefined']} of {r['n_test']} test points: undefined on the rest)"
            lines.append(f"  {name:<20} LDS {row['lds']:.3f} [{lo:.3f}, {hi:.3f}]  "
                         f"{row['seconds']:.2f}s  {row['peak_mib']:.0f} MiB{extra}")
        for name, auc in r.get("mislabel_auc", {}).items():
            lines.append(f"  mislabel_auc {name:<14} {auc:.3f}")
        for name, err in r.get("mislabel_errors", {}).items():
            lines.append(f"  mislabel_auc {name:<14} FAILED: {err[:90]}")
    return "\n".join(lines)


def cmd_data_suite(args: Any) -> int:
    """``tribute bench --suite data``: run, print the leaderboard, write ``results.json``."""
    import json
    from pathlib import Path

    scale = "tiny" if args.suite == "data-tiny" else "quick"
    cases = [c for c in (args.cases or "").split(",") if c] or None
    methods = [m for m in (args.methods or "").split(",") if m] or None
    out = Path(args.out or "bench-out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = run_data_suite(seed=args.seed, cases=cases, scale=scale, methods=methods,
                             bank_dir=str(out / "banks"),
                             log=None if args.quiet else (lambda s: print(s, flush=True)))
    print(format_data_results(results))
    path = out / "data_results.json"
    # NaN (an LDS undefined on every test point, an interval over fewer than 2) is written as
    # null: json.dumps wrote the token NaN, which is not JSON, and strict parsers refused the file
    atomic_write_text(path, json.dumps(json_safe(results), indent=1, default=float, allow_nan=False))
    print(f"wrote {path}")
    if not getattr(args, "no_report", False):
        from .data_report import write_data_report

        print(f"wrote {write_data_report(results, out / 'data_report.html')}")
    print(f"total {time.perf_counter() - t0:.1f}s")
    failed = failures(results)
    if failed:
        print(f"FAILED: {len(failed)} method run(s) crashed or returned non-finite credits: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
