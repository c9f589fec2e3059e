"""Run methods x metrics over the cases of a suite; collect per-sample scores and costs.

The runner never crashes on a method or metric: a failure on one case is recorded (status,
message) and the run goes on. For each case it first computes every method's attribution
(through :func:`tribute.explain`, which counts evaluations and time), then builds the case's
game once and scores every attribution with every applicable metric on it.

Reference attributions (not registry methods; they never appear in ``tribute.methods()``):

* ``oracle`` — the ground truth itself (exact values, or the relevance mask; for grouped
  players the fraction of each group that is relevant). Must rank first on ground-truth
  metrics.
* ``random`` — i.i.d. N(0, 1) credits from a seeded local generator. Must rank last there.
* ``wrong_class`` — ``feature_ablation`` credits for another class (``(target + 1) mod C``),
  scored against the true target: a deliberately wrong explanation that faithfulness metrics
  must rank below the real methods.
"""

from __future__ import annotations

import datetime
import difflib
import math
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..api import explain
from ..attribution import Attribution
from ..engine import fixed_batch_size
from ..errors import BudgetError, InputError, TributeError, UnsupportedModelError
from ..games.build import build_game
from ..methods.base import get_method, registry
from ..metrics.api import columns_to_labels, credit_units_problem
from ..metrics.base import Metric, get_metric, undefined_reported
from ..metrics.faithfulness import infidelity_unit_problem
from ..models import as_model
from ._metrics import BENCH_METRICS
from .suites import Case, Suite

#: Rows per model pass in bench runs (fixed, for runs that repeat to the last bit).
BENCH_BATCH_SIZE = 256

__all__ = [
    "REFERENCES",
    "BenchResult",
    "MethodRun",
    "Score",
    "resolve_methods",
    "resolve_metrics",
    "run",
    "run_cases",
]

#: Reference attributions added to every run (see the module docstring).
REFERENCES = ("oracle", "random", "wrong_class")
_WRONG_BASE = "feature_ablation"
#: Metric results kept whole (curves) for the report; other metrics keep scores only.
_CURVE_METRICS = ("deletion", "insertion")

Log = Callable[[str], None]


@dataclass
class MethodRun:
    """One method on one case.

    Attributes:
        case, method: names.
        reference: True for ``oracle``/``random``/``wrong_class``.
        status: ``"ok"``, ``"n/a"`` (does not apply: unsupported model, budget, no truth) or
            ``"failed"`` (raised an unexpected error; ``message`` holds it).
        message: why it is n/a or failed, or a note (e.g. which view it ran on).
        seconds: wall-clock time of the explain call.
        n_evals: value-function evaluations per input (as counted by the game).
        n_rows: model rows pushed through the model (all samples together).
        budget: the budget passed (None: the method's own default).
        flat: credits ``batch x targets x players`` (float64) when ok.
        stderr: standard errors in the same layout (stochastic methods), or None.
    """

    case: str
    method: str
    reference: bool
    status: str
    message: str = ""
    seconds: float = 0.0
    n_evals: int | None = None
    n_rows: int | None = None
    budget: int | None = None
    flat: np.ndarray | None = None
    stderr: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "method": self.method, "reference": self.reference,
                "status": self.status, "message": self.message, "seconds": self.seconds,
                "n_evals": self.n_evals, "n_rows": self.n_rows, "budget": self.budget,
                "params": {k: _jsonable(v) for k, v in self.params.items()}}


@dataclass
class Score:
    """One metric of one method on one case: per-sample scores, mean and standard error."""

    case: str
    method: str
    metric: str
    status: str
    message: str = ""
    mean: float = math.nan
    stderr: float = math.nan
    n: int = 0
    higher_is_better: bool = True
    scores: np.ndarray | None = None
    seconds: float = 0.0
    n_evals: int = 0
    curve: np.ndarray | None = None
    fraction: np.ndarray | None = None

    def as_dict(self, per_sample: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "case": self.case, "method": self.method, "metric": self.metric,
            "status": self.status, "message": self.message, "mean": _num(self.mean),
            "stderr": _num(self.stderr), "n": self.n, "higher_is_better": self.higher_is_better,
            "seconds": self.seconds, "n_evals": self.n_evals,
        }
        if per_sample and self.scores is not None:
            out["scores"] = [_num(v) for v in np.asarray(self.scores, dtype=float).ravel()]
        if self.curve is not None and self.fraction is not None:
            out["fraction"] = [float(v) for v in self.fraction]
            out["curve_mean"] = [_num(v) for v in np.nanmean(self.curve, axis=0)]
        return out


@dataclass
class BenchResult:
    """Everything a run produced (see :mod:`tribute.bench.leaderboard` and ``report``)."""

    suite: str
    seed: int
    methods: list[str]
    metrics: list[str]
    cases: list[Case]
    runs: list[MethodRun]
    scores: list[Score]
    metric_info: dict[str, dict[str, Any]]
    method_info: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def case(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(name)

    def run_of(self, case: str, method: str) -> MethodRun | None:
        for r in self.runs:
            if r.case == case and r.method == method:
                return r
        return None

    def score(self, case: str, method: str, metric: str) -> Score | None:
        for s in self.scores:
            if s.case == case and s.method == method and s.metric == metric:
                return s
        return None

    def all_methods(self) -> list[str]:
        """Real methods then references, in run order."""
        return list(self.methods) + [m for m in REFERENCES if any(
            r.method == m for r in self.runs)]

    def metrics_of(self, case: str) -> list[str]:
        """Metrics with at least one finite score on ``case``, in run order."""
        have = {s.metric for s in self.scores if s.case == case and s.status == "ok"
                and math.isfinite(s.mean)}
        return [m for m in self.metrics if m in have]


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return repr(v)


# --------------------------------------------------------------------------- resolution
def _unknown_names(what: str, unknown: list[str], known: list[str], listing: str) -> InputError:
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return InputError(f"--{what}: unknown {what[:-1]} name(s) {', '.join(hints)}; fix the "
                      f"spelling or drop them ({listing} lists the names).")


def resolve_methods(names: list[str] | tuple[str, ...] | None,
                    strict: bool = False) -> tuple[list[str], list[str]]:
    """Registered methods among ``names`` (None: every feature-game method) and notes.

    Reference names are dropped (they are always added by the runner). Unregistered names
    raise :class:`~tribute.errors.InputError` with ``strict`` (names the user typed: a typo must
    not turn into a run without the method and exit status 0); otherwise (a preset's
    defaults) they are dropped with a note.
    """
    reg = registry()
    notes: list[str] = []
    if names is None:
        out = [n for n, cls in reg.items() if "feature" in cls.tags.games]
        return out, notes
    out = []
    unknown = []
    for name in names:
        if name in REFERENCES:
            continue
        try:
            get_method(name)
        except InputError:
            unknown.append(name)
            notes.append(f"method {name!r} is not registered in this install; skipped")
            continue
        if name not in out:
            out.append(name)
    if strict and unknown:
        raise _unknown_names("methods", unknown, [*reg, *REFERENCES], "`tribute methods`")
    return out, notes


def resolve_metrics(names: list[str] | tuple[str, ...],
                    strict: bool = False) -> tuple[dict[str, Metric], list[str]]:
    """Metric objects for ``names`` (registry first, then bench-only metrics) and notes.

    Unknown names raise :class:`~tribute.errors.InputError` with ``strict`` (names the user
    typed), else they are dropped with a note.
    """
    out: dict[str, Metric] = {}
    notes: list[str] = []
    unknown = []
    for name in names:
        if name in BENCH_METRICS:
            out[name] = BENCH_METRICS[name]
            continue
        try:
            out[name] = get_metric(name)
        except InputError:
            unknown.append(name)
            notes.append(f"metric {name!r} is not registered in this install; skipped")
    if strict and unknown:
        from ..metrics.base import metric_registry

        raise _unknown_names("metrics", unknown, [*metric_registry(), *BENCH_METRICS],
                             "tribute.metrics()")
    return out, notes


# --------------------------------------------------------------------------- explaining
@dataclass
class _Plan:
    """How one method runs on one case (view and budget, decided once)."""

    budget: int | None
    view: str


def _framework(x: Any) -> str:
    return "torch" if isinstance(x, torch.Tensor) else "numpy"


def _view(case: Case, name: str, model: Any, inputs: Any) -> tuple[Any, Any, Any, Any, str]:
    cls = get_method(name)
    if cls.tags.needs_gradients and case.grad_view is not None:
        m, x, base, groups = case.grad_view.make(model, inputs)
        return m, x, base, groups, "embeddings"
    groups = case.groups
    if "groups" in case.method_params.get(name, {}):
        groups = case.method_params[name]["groups"]
    return model, inputs, case.baseline, groups, "inputs"


def _extra_params(case: Case, name: str) -> dict[str, Any]:
    return {k: v for k, v in case.method_params.get(name, {}).items()
            if k not in ("groups", "budget")}


def _to_case_players(case: Case, flat: np.ndarray,
                     own_groups: Any = None) -> tuple[np.ndarray, str]:
    """Credits in the case's players: per-element credits (a method run ungrouped) averaged
    over the case's groups, or the credits of a method run on its own coarser groups
    (``method_params[name]["groups"]``, e.g. LIME's superpixels) spread evenly over each
    group's elements when the case's players are the elements."""
    if own_groups is not None and case.groups is None:
        g = np.asarray(own_groups).reshape(-1)
        if (g.size == case.n_players and flat.shape[-1] != case.n_players
                and flat.shape[-1] == int(g.max()) + 1):
            counts = np.bincount(g, minlength=flat.shape[-1]).astype(np.float64)
            return flat[..., g] / counts[g], "group credits spread evenly over their elements"
        return flat, ""
    if case.groups is None or flat.shape[-1] == case.n_players:
        return flat, ""
    g = np.asarray(case.groups).reshape(-1)
    if flat.shape[-1] != g.size:
        return flat, ""
    counts = np.bincount(g, minlength=case.n_players).astype(np.float64)
    onehot = np.zeros((g.size, case.n_players))
    onehot[np.arange(g.size), g] = 1.0
    return (flat @ onehot) / counts, "per-element credits averaged over each group"


#: Enumerating methods (``Tags.max_players``) are skipped where ``2^n`` evaluations per input
#: exceed this multiple of the case's budget (exact Shapley on 16 tokens: 65536 per input).
EXACT_BUDGET_FACTOR = 16


def _plan(case: Case, name: str) -> _Plan:
    cls = get_method(name)
    if cls.tags.images_only and case.modality != "image":  # e.g. a text case's embeddings
        raise UnsupportedModelError(f"{name} explains images with regions of pixels; "
                                    f"{case.name} is a {case.modality} case")
    if cls.tags.max_players is not None and 2 ** min(case.n_players, 60) > (
            EXACT_BUDGET_FACTOR * case.budget):
        raise BudgetError(
            f"{name} enumerates all 2^{case.n_players} coalitions per input; the bench skips it "
            f"above {EXACT_BUDGET_FACTOR} x the case budget ({EXACT_BUDGET_FACTOR * case.budget} "
            "evaluations)")
    m, x, base, groups, view = _view(case, name, case.model, case.inputs)
    if not cls.tags.budgeted:
        return _Plan(None, view)
    gradient = cls.tags.needs_gradients or cls.tags.family == "gradient"
    want = case.grad_budget if gradient else case.budget
    if "budget" in case.method_params.get(name, {}):  # a case's own budget for this method
        want = int(case.method_params[name]["budget"])
    adapter = as_model(m, _framework(x))
    with adapter.session():
        game = build_game(adapter, x, target=case.target, labels=False, baseline=base, groups=groups,
                          progress=False)
        need = cls().min_budget(game)
    return _Plan(max(want, int(need)), view)


def explain_case(case: Case, name: str, inputs: Any = None,
                 target: Any = None, *, seed: int = 0, budget: int | None = None,
                 model: Any = None, progress: bool | None = False) -> Attribution:
    """Run registry method ``name`` on ``case`` (or on other inputs/targets/model of it).

    Gradient methods on token inputs run on the case's :class:`~tribute.bench.suites.GradView`.
    """
    x0 = case.inputs if inputs is None else inputs
    m, x, base, groups, _ = _view(case, name, case.model if model is None else model, x0)
    tg = case.target if target is None and inputs is None else target
    # case targets are output columns; explain reads integer targets of a classifier with
    # classes_ other than 0..K-1 as labels, so pass the labels of those columns
    tg = columns_to_labels(as_model(m, _framework(x)), tg)
    return explain(m, x, method=name, target=tg, baseline=base, groups=groups, budget=budget,
                   seed=seed, progress=progress, **_extra_params(case, name))


def _classify(exc: BaseException) -> tuple[str, str]:
    msg = f"{type(exc).__name__}: {exc}".strip()
    first = msg.splitlines()[0] if msg else type(exc).__name__
    if isinstance(exc, TributeError):
        return "n/a", first
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return "failed", first + where


def _run_method(case: Case, name: str, seed: int, progress: bool | None) -> MethodRun:
    try:
        plan = _plan(case, name)
        attr = explain_case(case, name, seed=seed, budget=plan.budget, progress=progress)
    except Exception as exc:  # recorded, never fatal
        status, msg = _classify(exc)
        return MethodRun(case.name, name, False, status, msg)
    flat, how = _to_case_players(case, attr.flat(),
                                 case.method_params.get(name, {}).get("groups"))
    bad = _not_finite(flat)
    if bad:  # a NaN credit scores NaN on every metric, which would read as "does not apply"
        return MethodRun(case.name, name, False, "failed", bad)
    stderr = None if attr.stderr is None else attr.layout.to_flat(attr.stderr)
    if how:
        stderr = None  # a group mean of correlated element errors has no honest stderr here
    note = case.grad_view.note if plan.view == "embeddings" and case.grad_view else how
    if case.method_params.get(name):
        note = (note + "; " if note else "") + "run with " + ", ".join(
            f"{k}={v}" for k, v in case.method_params[name].items())
    return MethodRun(case.name, name, False, "ok", note, seconds=float(attr.seconds),
                     n_evals=int(attr.n_evals), n_rows=int(attr.n_rows), budget=plan.budget,
                     flat=flat, stderr=stderr, params=dict(attr.params))


def _not_finite(flat: np.ndarray) -> str:
    """Why credits cannot be scored (some are NaN or infinite), or "" when all are finite."""
    bad = ~np.isfinite(flat)
    if not bad.any():
        return ""
    rows = int(bad.reshape(bad.shape[0], -1).any(axis=1).sum())
    return f"{int(bad.sum())} of {flat.size} credits are not finite ({rows} of {flat.shape[0]} inputs)"


def _references(case: Case, seed: int, progress: bool | None) -> list[MethodRun]:
    out = []
    b, n = case.n_samples, case.n_players
    truth = case.truth_players()
    if truth is None:
        out.append(MethodRun(case.name, "oracle", True, "n/a", "no ground truth on this case"))
    else:
        what = case.truth_label or "the relevance mask" + (
            " (fraction of each group that is relevant)" if case.groups is not None else "")
        out.append(MethodRun(case.name, "oracle", True, "ok", f"credits = {what}",
                             n_evals=0, flat=truth[:, None, :].astype(np.float64)))
    # seeded by (seed, case name): the same case gets the same noise in any selection of cases
    rng = np.random.default_rng([int(seed), zlib.crc32(case.name.encode())])
    out.append(MethodRun(case.name, "random", True, "ok", "i.i.d. N(0, 1) credits (seeded)",
                         n_evals=0, flat=rng.standard_normal((b, 1, n))))
    if case.target is None or not case.n_classes or case.n_classes < 2:
        out.append(MethodRun(case.name, "wrong_class", True, "n/a",
                             "regression: there is no other class to explain"))
        return out
    other = (np.asarray(case.target) + 1) % case.n_classes
    try:
        t0 = time.perf_counter()
        attr = explain_case(case, _WRONG_BASE, case.inputs, other, seed=seed, progress=progress)
        secs = time.perf_counter() - t0
        bad = _not_finite(attr.flat())
        if bad:
            out.append(MethodRun(case.name, "wrong_class", True, "failed", bad))
            return out
        out.append(MethodRun(case.name, "wrong_class", True, "ok",
                             f"{_WRONG_BASE} credits for class (target + 1) mod "
                             f"{case.n_classes}", seconds=secs, n_evals=int(attr.n_evals),
                             n_rows=int(attr.n_rows), flat=attr.flat()))
    except Exception as exc:
        status, msg = _classify(exc)
        out.append(MethodRun(case.name, "wrong_class", True, status, msg))
    return out


# --------------------------------------------------------------------------- scoring
def _applicable(case: Case, metric: Metric, reference: bool) -> str | None:
    """Why ``metric`` does not apply (None if it does)."""
    info = metric.info
    if info.name in case.skip_metrics:
        return case.skip_metrics[info.name]
    if "ground_truth" in info.needs and case.ground_truth is None:
        return "no ground-truth mask on this case"
    if "truth_values" in info.needs and case.truth_values is None:
        return "no exact attribution values on this case"
    if "image" in info.needs and case.modality != "image":
        return "needs image inputs"
    if reference and ({"explain", "model_explain"} & set(info.needs)):
        return "re-explains with the method; reference attributions cannot be re-computed"
    return None


def _explainers(case: Case, run: MethodRun, seed: int,
                like: Attribution | None = None) -> tuple[Callable[..., Attribution],
                                                          Callable[..., Attribution]]:
    """``explain(x, target=, sample=, **overrides)`` and ``model_explain(model, x, ...)``.

    A method run on other players than the case's (occlusion's windows on a grouped case,
    LIME's superpixels on pixel players) is re-explained the same way and mapped into the
    case's players like its first run (:func:`_to_case_players`), in the layout of ``like``
    (the scored attribution): re-explaining metrics compare the two credit for credit.
    """
    name = run.method

    def in_case_players(attr: Attribution) -> Attribution:
        flat = attr.flat()
        if like is None or flat.shape[-1] == case.n_players:
            return attr
        mapped, how = _to_case_players(case, flat, case.method_params.get(name, {}).get("groups"))
        if not how:
            return attr
        return replace(attr, values=like.layout.to_user(mapped), stderr=None,
                       layout=like.layout, groups=like.groups,
                       player_names=list(like.player_names), player_kind=like.player_kind)

    def rows_target(target: Any, sample: Any, n_rows: int) -> Any:
        if target is not None:
            return target
        if case.target is None:
            return None
        if sample is not None:
            return np.asarray(case.target)[np.asarray(sample)]
        return np.asarray(case.target)[:n_rows]

    def ex(x: Any, *, target: Any = None, sample: Any = None, **overrides: Any) -> Attribution:
        return in_case_players(explain_case(case, name, x, rows_target(target, sample, len(x)),
                                            seed=int(overrides.get("seed", seed)),
                                            budget=overrides.get("budget", run.budget)))

    def mex(model: Any, x: Any, *, target: Any = None, sample: Any = None) -> Attribution:
        return in_case_players(explain_case(case, name, x, rows_target(target, sample, len(x)),
                                            seed=seed, budget=run.budget, model=model))

    return ex, mex


def _score_case(case: Case, runs: list[MethodRun], metrics: dict[str, Metric],
                params: dict[str, dict[str, Any]], seed: int,
                progress: bool | None) -> list[Score]:
    out: list[Score] = []
    adapter = as_model(case.model, _framework(case.inputs))
    with adapter.session():
        game = build_game(adapter, case.inputs, target=case.target, labels=False, baseline=case.baseline,
                          groups=case.groups, progress=progress)
        expected = (game.n_samples, game.n_targets, game.n_players)
        for run in runs:
            if run.status != "ok" or run.flat is None:
                continue
            if run.flat.shape != expected:
                run.status, run.message = "failed", (
                    f"credits have shape {run.flat.shape} (batch x targets x players); the "
                    f"case's game expects {expected}")
                continue
            attr = game.attribution(torch.from_numpy(np.ascontiguousarray(run.flat)),
                                    run.method, run.params)
            ex, mex = _explainers(case, run, seed, attr)
            for mname, metric in metrics.items():
                info = metric.info
                why = _applicable(case, metric, run.reference)
                if why is None and mname == "infidelity":
                    # a score in unlike units is no ranking (rev41a): infidelity warns, the bench says
                    # n/a; units='output' / 'gradient' given are read as asked, as infidelity does
                    given = {**params.get(mname, {}), **case.metric_params.get(mname, {})}
                    if given.get("units", "auto") == "auto":
                        why = infidelity_unit_problem(game, run.method, bool(given.get("scale_invariant")))
                if why is None:
                    # aud52m: tree_shap's margins against the probability game (evaluate refuses it)
                    why = credit_units_problem(attr, mname, "raw", adapter)
                if why is not None:
                    out.append(Score(case.name, run.method, mname, "n/a", why,
                                     higher_is_better=info.higher_is_better))
                    continue
                own = {**params.get(mname, {}), **case.metric_params.get(mname, {})}
                kw: dict[str, Any] = {k: v for k, v in own.items() if k in info.defaults}
                if "seed" in info.defaults:
                    kw.setdefault("seed", seed)
                ctx: dict[str, Any] = {}
                if "ground_truth" in info.needs:
                    ctx["ground_truth"] = case.ground_truth
                if "truth_values" in info.needs:
                    ctx["truth_values"] = case.truth_values
                if "inputs" in info.needs:
                    ctx["inputs"] = case.inputs
                if "explain" in info.needs:
                    ctx["explain"] = ex
                if "model_explain" in info.needs:
                    ctx["model_explain"] = mex
                try:
                    with undefined_reported():  # said below: "n/a", undefined for every sample
                        res = metric(game, attr, **ctx, **kw)
                except Exception as exc:  # recorded, never fatal
                    status, msg = _classify(exc)
                    out.append(Score(case.name, run.method, mname, status, msg,
                                     higher_is_better=info.higher_is_better))
                    continue
                sc = Score(case.name, run.method, mname, "ok", "", mean=res.mean,
                           stderr=res.stderr, n=res.n, higher_is_better=res.higher_is_better,
                           scores=np.asarray(res.scores, dtype=np.float64),
                           seconds=res.seconds, n_evals=res.n_evals)
                if mname in _CURVE_METRICS and "curve" in res.extra:
                    sc.curve = np.asarray(res.extra["curve"], dtype=np.float64)
                    sc.fraction = np.asarray(res.extra["fraction"], dtype=np.float64)
                if not math.isfinite(res.mean):
                    sc.status, sc.message = "n/a", "undefined for every sample (NaN)"
                out.append(sc)
    return out


def _stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fmt_run(r: MethodRun) -> str:
    if r.status == "ok":
        cost = "" if r.n_evals is None else f"{r.n_evals:>6} evals/input"
        return f"    {r.method:<24} {r.seconds:7.2f}s {cost}"
    return f"    {r.method:<24} {r.status}: {r.message[:90]}"


def run_cases(cases: list[Case], *, methods: list[str], metrics: dict[str, Metric],
              metric_params: dict[str, dict[str, Any]] | None = None, seed: int = 0,
              references: bool = True, progress: bool | None = False,
              log: Log | None = None, verbose: bool = True) -> tuple[list[MethodRun],
                                                                     list[Score]]:
    """Run ``methods`` (registry names, already resolved) and ``metrics`` on ``cases``.

    Every model pass runs :data:`BENCH_BATCH_SIZE` rows (not the self-tuned size, which
    depends on timing and would change the last bits of float results between runs): the same
    seed gives the same scores.
    """
    with fixed_batch_size(BENCH_BATCH_SIZE):
        return _run_cases(cases, methods, metrics, metric_params or {}, seed, references,
                          progress, log, verbose)


def _run_cases(cases: list[Case], methods: list[str], metrics: dict[str, Metric],
               params: dict[str, dict[str, Any]], seed: int, references: bool,
               progress: bool | None, log: Log | None,
               verbose: bool) -> tuple[list[MethodRun], list[Score]]:
    runs: list[MethodRun] = []
    scores: list[Score] = []
    shared: dict[tuple[str, str], MethodRun] = {}
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        case_runs: list[MethodRun] = []
        for name in methods:
            key = (case.share_key, name)
            if case.share_key and key in shared:
                r = replace(shared[key], case=case.name)
            else:
                r = _run_method(case, name, seed, progress)
                if case.share_key:
                    shared[key] = r
            case_runs.append(r)
            if log and verbose:
                log(_fmt_run(r))
        if references:
            refs = _references(case, seed, progress)
            case_runs.extend(refs)
        case_scores = _score_case(case, case_runs, metrics, params, seed, progress)
        runs.extend(case_runs)
        scores.extend(case_scores)
        if log:
            ok = sum(r.status == "ok" for r in case_runs if not r.reference)
            n_ok = sum(s.status == "ok" for s in case_scores)
            log(f"[{i + 1}/{len(cases)}] {case.name}: {case.n_samples} samples x "
                f"{case.n_players} players; {ok}/{len(methods)} methods ran, {n_ok} scores, "
                f"{time.perf_counter() - t0:.1f}s")
    return runs, scores


def run(suite: Suite, methods: list[str] | tuple[str, ...] | None = None,
        metrics: list[str] | tuple[str, ...] | None = None, *, references: bool = True,
        progress: bool | None = False, log: Log | None = _stderr_log,
        verbose: bool = True) -> BenchResult:
    """Run a suite: methods x metrics x cases.

    Args:
        suite: from :func:`~tribute.bench.suites.build_suite`.
        methods: registry names; default the suite's methods (unregistered ones are skipped
            with a note in ``BenchResult.notes``).
        metrics: metric names; default the suite's metrics.
        references: add ``oracle``, ``random`` and ``wrong_class``; default=True.
        progress: the engine's progress bars (None: on a terminal, for long runs);
            default=False.
        log: receives one line per case (and per method with ``verbose``); None is silent.
        verbose: log one line per method too; default=True.

    Returns:
        A :class:`BenchResult`. Same suite seed -> same scores (times differ).
    """
    t0 = time.perf_counter()
    names, notes = resolve_methods(suite.preset.methods if methods is None else methods,
                                   strict=methods is not None)
    mets, mnotes = resolve_metrics(suite.preset.metrics if metrics is None else metrics,
                                   strict=metrics is not None)
    notes += mnotes
    if log:
        for note in notes:
            log(f"note: {note}")
        log(f"suite {suite.name!r} (seed {suite.seed}): {len(suite.cases)} cases, "
            f"{len(names)} methods + references, {len(mets)} metrics")
    runs, scores = run_cases(suite.cases, methods=names, metrics=mets,
                             metric_params=suite.preset.metric_params, seed=suite.seed,
                             references=references, progress=progress, log=log,
                             verbose=verbose)
    return make_result(suite.name, suite.seed, suite.cases, names, mets, runs, scores, notes,
                       time.perf_counter() - t0)


def make_result(suite: str, seed: int, cases: list[Case], names: list[str],
                mets: dict[str, Metric], runs: list[MethodRun], scores: list[Score],
                notes: list[str], seconds: float) -> BenchResult:
    """Pack a run into a :class:`BenchResult` (with metric/method metadata and versions)."""
    from ..api import methods as method_infos
    from ..version import __version__

    infos = method_infos()
    method_info = {n: {"family": infos[n].tags.family, "paper": infos[n].paper,
                       "summary": infos[n].summary} for n in names if n in infos}
    return BenchResult(
        suite=suite, seed=seed, methods=names, metrics=list(mets), cases=cases, runs=runs,
        scores=scores, metric_info={k: m.info.as_dict() for k, m in mets.items()},
        method_info=method_info, notes=notes, seconds=seconds,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        versions={"tribute": __version__, "torch": torch.__version__,
                  "numpy": np.__version__},
    )
