"""The metric contract: :class:`MetricResult`, metric metadata as data, and the registry.

A metric is a plain function of a game and an :class:`~tribute.attribution.Attribution`::

    @register_metric(name="my_metric", higher_is_better=True, category="faithfulness",
                     paper="Author (2024), Title")
    def my_metric(game, attr, *, alpha=0.5, seed=0) -> Scores:
        ...
        return Scores(per_sample_scores, extra={"curve": curve})

Keyword-only arguments with defaults are the metric's hyperparameters (they become the
registry's defaults). Arguments named in ``needs`` (``explain``, ``model_explain``,
``inputs``, ``ground_truth``, ``model``) are context that :func:`tribute.evaluate` supplies.
The decorator returns a :class:`Metric`: calling it runs the function, times it, counts the
game's evaluations and packs the :class:`MetricResult` (per-sample scores + mean and standard
error across samples + curves in ``extra``).

Every metric evaluates the model only through the game (``game.value(masks)`` with ``K x n``
or ``batch x K x n`` masks, batched by the engine) or, for metrics that must re-explain, through
the ``explain`` callable it is given.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..attribution import Attribution
from ..errors import InputError, StderrWarning, UndefinedScoreWarning, user_stacklevel
from ..games.base import Game
from ..registry import Registry

__all__ = [
    "CONTEXT_ARGS",
    "METRICS",
    "Metric",
    "MetricInfo",
    "MetricResult",
    "Scores",
    "get_metric",
    "metric_registry",
    "register_metric",
    "undefined_reported",
]

#: Arguments a metric may declare in ``needs``; :func:`tribute.evaluate` fills them in.
CONTEXT_ARGS = ("explain", "model_explain", "inputs", "ground_truth", "model")


@dataclass
class Scores:
    """What a metric function returns: per-sample scores and optional curves/diagnostics.

    Attributes:
        values: ``batch x targets`` float64 scores (NaN where undefined for a sample).
        extra: curves (e.g. ``batch x targets x steps`` arrays), per-layer scores, diagnostics.
        n_evals: value-function evaluations per input spent outside the game passed in (e.g.
            on an imputation game); the decorator adds the game's own count.
    """

    values: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)
    n_evals: int = 0


@dataclass
class MetricResult:
    """Per-sample scores of one metric, their summary and any curves.

    Attributes:
        metric: registry name.
        scores: per-sample scores, ``batch`` (or ``batch x targets`` with several targets);
            NaN where the score is undefined for a sample (e.g. a constant attribution has no
            rank correlation).
        mean: mean score over samples (a sample's targets are averaged first; NaNs skipped).
        stderr: standard error of ``mean`` across samples (``std(ddof=1) / sqrt(n)``; NaN with
            fewer than two finite samples). Metrics whose random draws (coalitions,
            perturbations) are shared by every sample -- linear_score,
            faithfulness_correlation, infidelity -- add the draws' own part, a
            delete-a-group jackknife over the draws (``extra["stderr_draws"]``; the
            across-sample part is ``extra["stderr_samples"]``): without it the 95% interval
            covered the metric's expectation 0.58-0.61 of the time with 5 subsets.
            ``extra["dof"]`` then holds the Welch-Satterthwaite degrees of freedom of the
            sum, which :attr:`ci95` uses. NaN, with a :class:`~tribute.StderrWarning` and
            ``extra["stderr_draws_note"]``, where the draws' noise cannot be estimated (fewer
            than 20 draws, or fewer than 30 that all give the same mean score).
        n: number of samples with a finite score.
        higher_is_better: direction of the score.
        params: the metric's hyperparameters as used (defaults filled in).
        n_evals: value-function evaluations per input spent by the metric (the game's count;
            re-explanations through an ``explain`` callable are counted in
            ``extra["explain_calls"]`` instead).
        seconds: wall-clock time.
        extra: curves (``deletion`` curves are ``batch x [targets x] steps + 1``), per-layer
            scores, x-axes and diagnostics; arrays are numpy.
    """

    metric: str
    scores: np.ndarray
    mean: float
    stderr: float
    n: int
    higher_is_better: bool
    params: dict[str, Any] = field(default_factory=dict)
    n_evals: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ci95(self) -> tuple[float, float]:
        """95% confidence interval of ``mean``: Student's ``t`` quantile ``q`` for ``n - 1``
        degrees of freedom (2.78 at 5 samples, 2.26 at 10, 1.98 at 100; the normal 1.96
        undercovered with few samples), corrected for the skewness of the per-sample scores.
        Metrics with shared random draws use ``extra["dof"]``, the Welch-Satterthwaite degrees
        of freedom of their two variance parts (a jackknife over 20 draws has 9, whatever the
        number of samples).

        Skewness: per-sample scores near a bound (correlations near 1 with a tail below) make
        the mean's studentised error skewed, and ``mean +- q * stderr`` covered the truth in
        only 0.72-0.81 of runs at 10 samples (faithfulness_correlation, three models). The
        interval is ``[mean - g^-1(q) stderr, mean - g^-1(-q) stderr]`` with Hall's (1992)
        transformation ``g`` (:func:`hall_quantile`) for ``extra["skew"]``, the samples'
        skewness ``m3 / m2^1.5`` over ``sqrt(n)``, plus, where shared draws add their part,
        the draws' (``extra["stderr_draws_skew"]``), each weighted by its share of the variance
        to the power 3/2: longer on the side of the tail, symmetric (plain Student) without
        ``extra["skew"]``. NaN with fewer than two samples or a NaN ``stderr``, and,
        from :func:`tribute.evaluate` and every registered metric, with fewer than
        :data:`MIN_SAMPLES` (20) samples whose scores differ, or than the metric's own
        ``extra["min_samples_ci95"]`` (``faithfulness_correlation``, ``infidelity`` and
        ``avg_sensitivity``: 200,
        see :data:`~tribute.metrics._util.HEAVY_TAILED_MIN_SAMPLES`) (``extra["ci95_note"]``
        says so,
        and reading ``ci95`` warns with a :class:`~tribute.StderrWarning`): the skewness
        correction cannot be checked there."""
        if "ci95_note" in self.extra:
            warnings.warn(f"metric {self.metric!r}: {self.extra['ci95_note']}", StderrWarning,
                          stacklevel=user_stacklevel())
            return (float("nan"), float("nan"))
        if self.n < 2:
            return (float("nan"), float("nan"))
        from scipy.stats import t as student_t

        dof = float(self.extra.get("dof", self.n - 1))
        q = float(student_t.ppf(0.975, dof))
        kappa = float(self.extra.get("skew", 0.0))
        return (self.mean - self.stderr * hall_quantile(q, kappa),
                self.mean - self.stderr * hall_quantile(-q, kappa))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (arrays become lists)."""

        def conv(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                return v.item()
            if isinstance(v, dict):
                return {str(k): conv(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            return v if isinstance(v, (str, int, float, bool)) or v is None else repr(v)

        return {
            "metric": self.metric, "scores": self.scores.tolist(), "mean": self.mean,
            "stderr": self.stderr, "n": self.n, "higher_is_better": self.higher_is_better,
            "params": conv(self.params), "n_evals": self.n_evals, "seconds": self.seconds,
            "extra": conv(self.extra),
        }

    def __repr__(self) -> str:
        arrow = "higher is better" if self.higher_is_better else "lower is better"
        return (f"MetricResult({self.metric}: {self.mean:.4g} ± {self.stderr:.2g} (n={self.n}), "
                f"{arrow})")


@dataclass(frozen=True)
class MetricInfo:
    """What the registry says about a metric (for ``tribute.metrics()``, the CLI, the report).

    Attributes:
        name: registry name.
        category: ``"faithfulness"``, ``"robustness"``, ``"complexity"``, ``"randomisation"``
            or ``"ground_truth"``.
        higher_is_better: direction of the score.
        needs: context arguments the metric needs (see :data:`CONTEXT_ARGS`) plus
            capability notes such as ``"image"`` (image-shaped inputs), ``"torch_module"``.
        paper: citation of the paper the metric comes from.
        defaults: hyperparameters and their defaults.
        summary: first paragraph of the docstring.
        games: game kinds it works on.
        reads_values: whether the score depends on the game's values (its removal operator:
            baseline, background, ablation), not only on the credits. default=True.
    """

    name: str
    category: str
    higher_is_better: bool
    needs: tuple[str, ...]
    paper: str
    defaults: dict[str, Any]
    summary: str
    games: tuple[str, ...]
    reads_values: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category,
                "higher_is_better": self.higher_is_better, "needs": list(self.needs),
                "paper": self.paper, "defaults": dict(self.defaults), "summary": self.summary,
                "games": list(self.games), "reads_values": self.reads_values}


class Metric:
    """A registered metric: the function plus its metadata. Call it like the function.

    ``metric(game, attr, **context_and_params) -> MetricResult``.
    """

    def __init__(self, fn: Callable[..., Scores], info: MetricInfo) -> None:
        self.fn = fn
        self.info = info
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn

    @property
    def name(self) -> str:
        return self.info.name

    def __call__(self, game: Game, attr: Attribution, **kwargs: Any) -> MetricResult:
        info = self.info
        unknown = set(kwargs) - set(info.defaults) - set(info.needs)
        if unknown:
            raise InputError(
                f"metric {info.name!r} got unknown argument(s) {sorted(unknown)}; its parameters "
                f"are {sorted(info.defaults) or 'none'}"
                + (f" and it takes {sorted(set(info.needs) & set(CONTEXT_ARGS))}"
                   if set(info.needs) & set(CONTEXT_ARGS) else "") + "."
            )
        if game.kind not in info.games:
            raise InputError(
                f"metric {info.name!r} works on {info.games} games, not {game.kind!r} games."
            )
        missing = [k for k in info.needs if k in CONTEXT_ARGS and kwargs.get(k) is None]
        if missing:
            raise InputError(
                f"metric {info.name!r} needs {', '.join(f'{k}=...' for k in missing)}"
                + (" (explain: a callable inputs -> Attribution)" if "explain" in missing else "")
                + (" (model_explain: a callable (model, inputs) -> Attribution)"
                   if "model_explain" in missing else "")
                + "; tribute.evaluate supplies them from its arguments."
            )
        flat = check_attribution(game, attr, info.name)
        params = {**info.defaults, **{k: v for k, v in kwargs.items() if k in info.defaults}}
        before = game.n_evals
        t0 = time.perf_counter()
        out = self.fn(game, attr, **kwargs)
        seconds = time.perf_counter() - t0
        out = undefined_where_not_finite(info.name, flat, out)
        return finish(info, out, params, game.n_evals - before + out.n_evals, seconds,
                      multi_target=attr.layout.multi_target)

    def __repr__(self) -> str:
        return f"<metric {self.info.name!r}>"


def undefined_where_not_finite(metric: str, flat: np.ndarray, out: Scores) -> Scores:
    """NaN scores for the samples (and targets) whose credits hold a NaN or an infinity.

    Such credits have no order, sum or share: deletion ranked NaN credits last and scored
    the sample as if they were the smallest, complexity gave an infinite credit a perfect 0,
    auroc and precision_at_k a number. Their score is undefined (NaN, counted in
    ``extra["n_undefined"]``), and a :class:`RuntimeWarning` names the samples.
    """
    bad = ~np.isfinite(flat).all(axis=-1)  # B x T
    if not bad.any():
        return out
    vals = np.array(out.values, dtype=np.float64)  # a copy: the metric may share its array
    if vals.ndim == 1:
        vals[bad.any(axis=1)] = np.nan
    elif vals.shape == bad.shape:
        vals[bad] = np.nan
    else:
        vals[bad.any(axis=1)] = np.nan
    rows = np.flatnonzero(bad.any(axis=1))
    warnings.warn(
        f"metric {metric!r}: the credits of sample(s) {rows[:10].tolist()}"
        f"{' ...' if rows.size > 10 else ''} hold NaN or infinite values; their scores are NaN "
        "(left out of the mean). Check the method's output for those samples.",
        RuntimeWarning, stacklevel=user_stacklevel())
    extra = {**out.extra, "nonfinite_credit_samples": rows}
    return Scores(vals, extra, out.n_evals)


#: True inside :func:`undefined_reported`: :func:`finish` leaves the all-undefined warning out.
_REPORTED: contextvars.ContextVar[bool] = contextvars.ContextVar("tribute_undefined_reported", default=False)


@contextlib.contextmanager
def undefined_reported() -> Iterator[None]:
    """Metric calls inside issue no :class:`~tribute.errors.UndefinedScoreWarning`: the caller
    reports a score undefined on every sample itself (the bench's ``n/a``), or merges the
    calls into one result that warns (text groups)."""
    token = _REPORTED.set(True)
    try:
        yield
    finally:
        _REPORTED.reset(token)


def finish(info: MetricInfo, out: Scores, params: dict[str, Any], n_evals: int,
           seconds: float, multi_target: bool) -> MetricResult:
    """Pack :class:`Scores` into a :class:`MetricResult` (summary across samples)."""
    vals = np.asarray(out.values, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, on purpose
        per_sample = np.nanmean(vals, axis=1)
    finite = per_sample[np.isfinite(per_sample)]
    n = int(finite.size)
    mean = float(finite.mean()) if n else math.nan
    stderr = float(finite.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    scores = vals if multi_target else vals[:, 0]
    extra = dict(out.extra)
    draws = extra.get("stderr_draws")
    if draws is not None and not math.isfinite(float(draws)) and "stderr_draws_note" in extra:
        # the shared draws' noise is unknown: a standard error without it would claim too much
        extra["stderr_samples"] = stderr
        stderr = math.nan
        warnings.warn(f"metric {info.name!r}: {extra['stderr_draws_note']}", StderrWarning,
                      stacklevel=user_stacklevel())
    elif draws is not None and math.isfinite(float(draws)):
        # the draws every sample shares add their own noise (see MetricResult.stderr)
        extra["stderr_samples"] = stderr
        if math.isfinite(stderr):
            extra["dof"] = welch_dof(stderr**2, n - 1, float(draws) ** 2,
                                     float(extra.get("stderr_draws_dof", math.inf)))
            stderr = math.sqrt(stderr**2 + float(draws) ** 2)
    if n >= 2 and math.isfinite(stderr) and stderr > 0:
        # the samples' skewness, for Hall's correction of the interval (see MetricResult.ci95)
        # third cumulants add: samples' skewness over sqrt(n) times their se^3, plus the draws'
        ss = float(extra.get("stderr_samples", stderr))
        kappa = sample_skewness(finite) / math.sqrt(n) * (ss / stderr) ** 3
        if math.isfinite(float(extra.get("stderr_draws", math.nan))):
            kappa += float(extra.get("stderr_draws_skew", 0.0)) * (
                float(extra["stderr_draws"]) / stderr) ** 3
        if kappa != 0.0:
            extra["skew"] = kappa
        floor = max(MIN_SAMPLES, int(extra.get("min_samples_ci95", 0)))
        if n < floor:
            extra["ci95_note"] = (
                f"{n} samples: too few for a 95% interval of this metric's mean (skewed or "
                f"heavy-tailed per-sample scores made such intervals cover 0.7-0.9 of the "
                f"time even with the skewness correction), so ci95 is NaN (stderr is still "
                f"given): evaluate at least {floor} inputs")
    n_undefined = int(vals.shape[0] - n)
    if n_undefined:
        extra.setdefault("n_undefined", n_undefined)
    if n == 0 and vals.shape[0] and not _REPORTED.get() and "nonfinite_credit_samples" not in extra:
        # aud47m: a constant model gave NaN for every sample of 9 metrics with no word (NaN or
        # infinite credits have warned already: undefined_where_not_finite)
        warnings.warn(
            f"metric {info.name!r}: the score is undefined (NaN) on every one of the {vals.shape[0]} "
            "sample(s), so its mean and stderr are NaN (n = 0). The metric's documentation says when "
            "a score is undefined (e.g. a model whose output does not change, or credits that are "
            "all zero).", UndefinedScoreWarning, stacklevel=user_stacklevel())
    return MetricResult(metric=info.name, scores=scores, mean=mean, stderr=stderr, n=n,
                        higher_is_better=info.higher_is_better, params=params,
                        n_evals=int(n_evals), seconds=seconds, extra=extra)


#: Fewer samples than this give no ``ci95`` (NaN, with a warning when it is read; ``stderr`` is
#: still given), unless their scores are all equal: Hall's skewness correction needs the
#: samples' skewness, and per-sample correlations near 1 are skewed enough (-4 to -12) that the
#: corrected 95% interval covered the metric's expectation 0.80-0.87 of the time at 10 samples
#: (faithfulness_correlation, three models, 150 seeds; linear_score 0.86-0.96).
MIN_SAMPLES = 20


def sample_skewness(x: np.ndarray) -> float:
    """Sample skewness ``m3 / m2^1.5`` (central moments with divisor ``n``; 0 when constant)."""
    x = np.asarray(x, dtype=np.float64)
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if not m2 > 1e-30 * max(1.0, float(np.mean(x * x))):
        return 0.0
    return float(np.mean(d**3)) / (m2 * math.sqrt(m2))


def hall_quantile(q: float, kappa: float) -> float:
    """Hall's (1992) inverse transformation ``g^-1(q)`` for a studentised mean of skewness
    ``kappa`` (the samples' skewness over ``sqrt(n)``): ``g(t) = t + kappa t^2 / 3 +
    kappa^2 t^3 / 27 + kappa / 6`` is close to normal where ``t`` is not, and is monotone, so
    ``g^-1(q) = 3 / kappa ((1 + kappa (q - kappa / 6))^(1/3) - 1)``."""
    if kappa == 0.0:
        return q
    return float(3.0 / kappa * (np.cbrt(1.0 + kappa * (q - kappa / 6.0)) - 1.0))


def welch_dof(var_a: float, dof_a: float, var_b: float, dof_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom of ``var_a + var_b``, two independent variance
    estimates with ``dof_a`` and ``dof_b`` degrees of freedom (Satterthwaite 1946)."""
    total = var_a + var_b
    denom = (var_a**2 / dof_a if var_a > 0 else 0.0) + (var_b**2 / dof_b if var_b > 0 else 0.0)
    if total <= 0 or denom <= 0:
        return float(min(dof_a, dof_b))
    return float(total**2 / denom)


#: The game kind whose players an attribution's ``player_kind`` names (text kinds are features).
_KIND_GAME = {"component": "component", "example": "data"}


def recorded_sites_match(recorded: list[str], game: Any) -> bool:
    """Whether component sites recorded by an earlier release are this game's: an SAE whose
    dictionary's tensors were read in insertion order before small45 (rev45z: credits saved
    then were refused as another SAE's after the digest sorted them by key)."""
    unsorted = getattr(game, "unsorted_site_keys", None)
    return callable(unsorted) and recorded == unsorted()


def player_kind_mismatch(attr: Attribution, game: Game) -> str | None:
    """Why ``attr`` does not credit ``game``'s kind of players (None when it may).

    A metric called on a game directly (``deletion(game, attr)``) checked only the number of
    players: exact Shapley values of 5 neurons scored on a feature game of 5 inputs got a
    ``shapley_error`` of 2.1 (their own game: 0), and input-feature credits scored on a
    component game ablated neurons for them, silently. Component and training-example credits
    must meet a game of their kind; credits of input elements (a feature attribution with
    input-element players: dense, grouped, or text units) must not meet a component or data
    game. An attribution built by hand without a ``player_kind`` (the default ``"feature"``, no
    input layout) is accepted on any game.
    """
    kind = str(attr.player_kind)
    want = _KIND_GAME.get(kind, "feature")
    game_kind = str(getattr(game, "kind", "feature"))
    if want == game_kind:
        return None
    feature_credits = want == "feature" and (
        kind != "feature" or attr.layout.dense or attr.groups is not None)
    if want == "feature" and not feature_credits:
        return None  # built by hand: no player kind recorded
    return (f"the attribution credits {kind} players but the game's players are "
            f"{getattr(game, 'player_kind', game_kind)}s ({game_kind} game): the metric would "
            f"remove players the credits are not about. Score it on the game it was explained "
            f"on (tribute.evaluate(..., players=...) with the same player set, or without "
            f"players= for input features).")


def component_site_mismatch(attr: Attribution, game: Game) -> str | None:
    """Why component credits ``attr`` are not about ``game``'s components (None when they are).

    ``tribute.evaluate`` compared the sites (``_check_same_components``), but a metric called
    on a game directly only compared the kind and the number of players: exact Shapley values
    of layer ``"0"``'s 5 neurons scored on a game of layer ``"2"``'s 5 neurons got a
    ``shapley_error`` of 1.33 (their own game: 1e-17), silently. Compares what each site hooks
    (``params["component_sites"]``, recorded by ``explain``) with ``game.site_keys()``; an
    attribution without that record (built by hand, ``game.attribution``) is not checked.
    """
    if str(attr.player_kind) != "component" or str(getattr(game, "kind", "")) != "component":
        return None
    recorded = attr.params.get("component_sites") if isinstance(attr.params, dict) else None
    keys = getattr(game, "site_keys", None)
    if not isinstance(recorded, (list, tuple)) or not callable(keys):
        return None
    mine, here = [str(k) for k in recorded], [str(k) for k in keys()]
    if mine == here or recorded_sites_match(mine, game):
        return None
    j = next((i for i, (a, b) in enumerate(zip(mine, here)) if a != b), min(len(mine), len(here)))
    return (f"the attribution's component site {j} hooks "
            f"{mine[j] if j < len(mine) else 'nothing'!r}, but the game's hooks "
            f"{here[j] if j < len(here) else 'nothing'!r}: the metric would ablate units the "
            "credits are not about. Score it on a game built with the component set it was "
            "explained with (tribute.build_game(..., players=...)).")


def data_mismatch(attr: Attribution, game: Game) -> str | None:
    """Why training-example credits ``attr`` are not about ``game``'s training set (None when
    they are).

    With as many training examples, credits explained on one training set were scored on
    another (a new draw, a shuffled copy, other labels), silently: the players were other
    examples. Compares the fingerprint every data attribution records
    (``params["data_fingerprint"]``, :meth:`tribute.TrainingData.fingerprint`) with the game's
    training data's; an attribution without one (built by hand) is not checked.
    """
    if str(getattr(game, "kind", "")) != "data" or not isinstance(attr.params, dict):
        return None
    recorded = attr.params.get("data_fingerprint")
    data = getattr(game, "data", None)
    fingerprint = getattr(data, "fingerprint", None)
    if not isinstance(recorded, str) or not callable(fingerprint):
        return None
    here = fingerprint()
    if recorded == here:
        return None
    return (f"the attribution was explained on training data with fingerprint {recorded}, but "
            f"the game's training data has fingerprint {here} (same number of players, other "
            "examples, labels, dtype or groups): the metric would judge credits of one "
            "training set on another. Pass the TrainingData (the same X_train, y_train and "
            "groups) the attribution was explained with (players=... in tribute.evaluate).")


def same_target_layout(mine: np.ndarray, here: np.ndarray) -> np.ndarray:
    """``mine`` (an attribution's ``targets``) in the layout of ``here`` (a game's resolved
    targets) where both hold one class per sample written two ways, ``(b,)`` and ``(b, 1)``;
    else unchanged."""
    if mine.shape != here.shape and mine.ndim and here.ndim and mine.shape[0] == here.shape[0] \
            and mine.size == here.size:
        return mine.reshape(here.shape)
    return mine


def differing_targets(mine: Any, want: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(mine, want, rows)`` where the class indices ``mine`` (an attribution's targets) and
    ``want`` (the columns a score reads) differ in some rows, ``rows`` those rows' indices (one
    class per row may be written ``(b,)`` or ``(b, 1)``: :func:`same_target_layout`); None where
    they agree or cannot be compared (other shapes, not numbers)."""
    try:
        want = np.asarray(want)
        mine = same_target_layout(np.asarray(mine), want)
    except (TypeError, ValueError):
        return None
    if mine.shape != want.shape or mine.dtype.kind not in "iubf" or \
            want.dtype.kind not in "iubf" or np.array_equal(mine, want):
        return None
    return mine, want, np.flatnonzero((mine != want).reshape(mine.shape[0], -1).any(axis=1))


def target_mismatch(attr: Attribution, game: Game) -> str | None:
    """Why ``attr`` does not explain the output columns ``game`` scores (None when it may).

    A metric called on a game directly (``deletion(game, attr)``) checked the number of
    targets, not which: per-sample credits of classes 0, 2, 1, 2 scored on a game of classes
    1, 0, 0, 1 gave the deletion area of the other classes, silently (aud47m). Compares the
    attribution's ``targets`` with the game's resolved ones where both are class indices (an
    attribution without them, a callable or regression target, is not checked).
    """
    target = getattr(game, "target", None)
    to_numpy = getattr(target, "to_numpy", None)
    if attr.targets is None or not callable(to_numpy):
        return None
    here = to_numpy()
    if here is None:
        return None
    diff = differing_targets(attr.targets, here)
    if diff is None:
        return None
    mine, here, bad = diff
    i = int(bad[0])
    return (f"the attribution explains output column(s) {np.atleast_1d(mine[i]).tolist()} for "
            f"sample {i}, but the game scores column(s) {np.atleast_1d(here[i]).tolist()} there "
            f"({bad.size} of {mine.shape[0]} samples differ): the score would judge credits of "
            "one class on another. Build the game with the attribution's targets "
            "(target=attr.targets).")


def check_attribution(game: Game, attr: Attribution, metric: str) -> np.ndarray:
    """Check that ``attr`` credits the game's players; returns its flat ``B x T x n`` values."""
    if not isinstance(attr, Attribution):
        raise InputError(
            f"metric {metric!r}: attr is a {type(attr).__name__}; pass the Attribution returned "
            "by tribute.explain (or build one with game.attribution(values, ...))."
        )
    mismatch = player_kind_mismatch(attr, game) or component_site_mismatch(attr, game)
    if mismatch is not None:
        raise InputError(f"metric {metric!r}: {mismatch}")
    if attr.n_players and attr.n_players != game.n_players:
        raise InputError(
            f"metric {metric!r}: the attribution credits {attr.n_players} players but the game "
            f"has {game.n_players}; evaluate with the same groups/players the attribution was "
            "computed with (e.g. pass groups=... as in tribute.explain)."
        )
    wrong_data = data_mismatch(attr, game)
    if wrong_data is not None:
        raise InputError(f"metric {metric!r}: {wrong_data}")
    wrong_target = target_mismatch(attr, game)
    if wrong_target is not None:
        raise InputError(f"metric {metric!r}: {wrong_target}")
    flat = attr.flat()
    expected = (game.n_samples, game.n_targets, game.n_players)
    if flat.shape != expected:
        raise InputError(
            f"metric {metric!r}: attribution values have flat shape {flat.shape} (batch x "
            f"targets x players) but the game expects {expected}; evaluate on the same inputs "
            "and targets the attribution was computed for."
        )
    return flat


# ------------------------------------------------------------------- registry
def _load_all() -> None:
    """Import every module of :mod:`tribute.metrics` so that each registers its metrics."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name not in ("base", "api"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


#: The metric registry (same class as the method and dataset registries).
METRICS: Registry[Metric] = Registry(
    "metric", hint="See tribute.metrics() for the list.", loader=_load_all,
    same=lambda old, new: old.fn is new.fn)


def register_metric(
    *,
    name: str,
    higher_is_better: bool,
    category: str,
    paper: str,
    needs: tuple[str, ...] = (),
    games: tuple[str, ...] = ("feature", "component", "data"),
    reads_values: bool = True,
) -> Callable[[Callable[..., Scores]], Metric]:
    """Decorator: register a metric function with its metadata (see the module docstring).

    ``reads_values=False`` marks a metric computed from the credits alone (and a truth), whose
    score does not depend on the game's removal operator (see :class:`MetricInfo`).
    """

    def deco(fn: Callable[..., Scores]) -> Metric:
        sig = inspect.signature(fn)
        defaults = {
            p.name: p.default for p in sig.parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
            and p.name not in CONTEXT_ARGS
        }
        doc = inspect.getdoc(fn) or ""
        info = MetricInfo(name=name, category=category, higher_is_better=higher_is_better,
                          needs=tuple(needs), paper=paper, defaults=defaults,
                          summary=doc.split("\n\n")[0].replace("\n", " "), games=tuple(games),
                          reads_values=reads_values)
        metric = Metric(fn, info)
        METRICS.add(name, metric)
        return metric

    return deco


def metric_registry() -> dict[str, Metric]:
    """All registered metrics, by name (imports every metric module on first use)."""
    return METRICS.entries()


def get_metric(name: str) -> Metric:
    """The registered metric called ``name`` (with a did-you-mean hint otherwise)."""
    if isinstance(name, Metric):
        return name
    return METRICS.get(name)
