"""Feature responsiveness scores: which single-feature actions can change the decision.

Cheon, Tosh, Ustun et al., "Feature Responsiveness Scores: Model-Agnostic Explanations for
Recourse", ICLR 2025. A person with an unwanted prediction ``f(x) != y*`` can act on one
feature ``j`` at a time; the *actions* open to them are the values ``x'_j`` allowed by the
actionability constraints (``A_j(x)``), all other features unchanged. The responsiveness score
of feature ``j`` is the probability that a feasible action drawn uniformly at random attains
the target,

    mu_j(x) = P_{x'_j ~ Unif(A_j(x))} [ f(x with x_j := x'_j) = y* ],

so a feature with high attribution that no allowed action can move (an immutable feature, or
one already at the end of its allowed range) scores 0 and is listed with the reason.

Actionability is data (:class:`Actionability`): ``immutable`` features, ``monotone`` ones
(``+1``: may only increase, ``-1``: may only decrease, from the current value), ``bounds``
``(lo, hi)`` and ``integer`` features. The action set is the interval ``[lo, hi]``, cut at the
current value by monotonicity, without the current value itself (doing nothing is not an
action); for integer features the integers in it.

Estimation: an integer feature with at most ``max_enumerate`` feasible values is enumerated
exactly (``stderr = 0``); otherwise ``n_samples`` values are drawn uniformly (seeded local
generator) and the score is the fraction that attains the target, with a binomial standard
error that keeps the Wilson score interval within ``score +- 2 stderr`` (never 0 for a sampled
feature; ``sqrt(s (1 - s) / n)`` for large ``n``). All candidate rows (and the inputs themselves, for the current
decision) go through one feature game, so the engine batches them and counts every row.

Decision: the predicted class is the arg-max of the model's output columns; for a single
column, ``output > 0`` for logits and ``output > 0.5`` for probabilities (a single raw output,
a regressor's, decides nothing and is refused: declare what it is, or subtract its threshold;
outputs that are all 0 or 1, a rule's or a classifier's ``predict`` on labels 0/1, are that
decision; a classifier with only ``predict`` on other labels is refused, naming the fix).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import BudgetError, InputError, user_stacklevel
from ..games.build import build_game, labels_to_columns, numeric_labels
from ..models import NumpyModel, as_model
from ..models.adapters import predict_may_differ
from ..targets import plain_target
from .analyses import register_analysis

__all__ = ["Actionability", "ResponsivenessResult", "feature_responsiveness", "responsiveness_cost"]

#: Reasons listed in :attr:`ResponsivenessResult.reasons`.
REASON_RESPONSIVE = "responsive"
REASON_IMMUTABLE = "immutable"
REASON_NO_ACTION = "no feasible action (constraints leave no other value)"
REASON_NO_FLIP = "no feasible action attains the target"
REASON_ALREADY = "already has the target prediction"


@dataclass(frozen=True)
class Actionability:
    """Actionability constraints, keyed by feature name (or column index).

    Attributes:
        immutable: features no one can act on (age, race, ...).
        monotone: feature -> ``+1`` (may only increase) or ``-1`` (may only decrease).
        bounds: feature -> ``(lo, hi)`` allowed values (finite); features without bounds take
            the range of ``data`` when :func:`feature_responsiveness` gets one.
        integer: features whose values are integers (counts, years, ordinal codes).
        categorical: group name -> its one-hot columns (at least two). The group is one
            feature of the result (named after the group, at its first column's place); its
            actions switch to each other category (enumerated exactly). Name the group in
            ``immutable`` to freeze it.
    """

    immutable: Sequence[Any] = ()
    monotone: Mapping[Any, int] = field(default_factory=dict)
    bounds: Mapping[Any, Any] = field(default_factory=dict)
    integer: Sequence[Any] = ()
    categorical: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def resolve(self, names: Sequence[str], data: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Per feature: ``{"immutable", "monotone", "lo", "hi", "integer"}``, validated.

        Raises:
            InputError: an unknown feature, a monotone direction other than +1/-1, bounds that
                are not two finite numbers with ``lo <= hi``, an immutable feature given other
                constraints, or a mutable feature without bounds (and no ``data``).
        """
        names = [str(n) for n in names]
        d = len(names)
        groups = {str(g): list(m) for g, m in dict(self.categorical).items()}

        def index(key: Any, what: str) -> int:
            if isinstance(key, (bool, np.bool_)):
                raise InputError(f"Actionability.{what}: feature {key!r} is a boolean; name a feature or give its index.")
            if isinstance(key, (int, np.integer)):
                if not 0 <= int(key) < d:
                    raise InputError(f"Actionability.{what}: feature index {int(key)} is out of range for {d} features.")
                return int(key)
            if str(key) not in names:
                raise InputError(
                    f"Actionability.{what}: feature {key!r} is not one of the features {names}; "
                    "use the model's feature names or column indices.")
            return names.index(str(key))

        rules: list[dict[str, Any]] = [
            {"immutable": False, "monotone": 0, "lo": None, "hi": None, "integer": False, "group": None}
            for _ in range(d)]
        for g, members in groups.items():
            if g in names:
                raise InputError(f"Actionability.categorical: group name {g!r} is also a column name; rename the group.")
            if len(members) < 2:
                raise InputError(f"Actionability.categorical: group {g!r} has {len(members)} column(s); "
                                 "a one-hot group needs at least two.")
            for key in members:
                j = index(key, f"categorical[{g!r}]")
                if rules[j]["group"] is not None:
                    raise InputError(f"Actionability.categorical: feature {names[j]!r} is in groups "
                                     f"{rules[j]['group']!r} and {g!r}; a column belongs to one group.")
                rules[j]["group"] = g
        for key in self.immutable:
            if str(key) in groups:
                for r in rules:
                    if r["group"] == str(key):
                        r["immutable"] = True
                continue
            rules[index(key, "immutable")]["immutable"] = True
        for key in self.integer:
            rules[index(key, "integer")]["integer"] = True
        for key, direction in dict(self.monotone).items():
            j = index(key, "monotone")
            if isinstance(direction, bool) or direction not in (1, -1):
                raise InputError(f"Actionability.monotone: feature {names[j]!r} has direction {direction!r}; "
                                 "use +1 (may only increase) or -1 (may only decrease).")
            rules[j]["monotone"] = int(direction)
        for key, bound in dict(self.bounds).items():
            j = index(key, "bounds")
            try:
                lo, hi = (float(v) for v in bound)
            except (TypeError, ValueError):
                raise InputError(f"Actionability.bounds: feature {names[j]!r} has bounds {bound!r}; "
                                 "give two numbers (lo, hi).") from None
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise InputError(f"Actionability.bounds: feature {names[j]!r} has bounds ({lo}, {hi}); "
                                 "they must be finite with lo <= hi.")
            rules[j]["lo"], rules[j]["hi"] = lo, hi
        for j, r in enumerate(rules):
            if r["group"] is not None and (r["monotone"] or r["lo"] is not None or r["integer"]):
                raise InputError(f"Actionability: feature {names[j]!r} is a column of the one-hot group "
                                 f"{r['group']!r}; it takes no monotone/bounds/integer constraint.")
            if r["immutable"] and (r["monotone"] or r["lo"] is not None):
                raise InputError(f"Actionability: feature {names[j]!r} is immutable and also has "
                                 "monotone/bounds constraints; drop one of them.")
        for j, r in enumerate(rules):
            if r["immutable"] or r["lo"] is not None or r["group"] is not None:
                continue
            if data is None:
                raise InputError(
                    f"Actionability: feature {names[j]!r} is mutable but has no bounds; give "
                    f"bounds={{{names[j]!r}: (lo, hi)}}, mark it immutable, or pass data= (the "
                    "range of the data is used).")
            r["lo"], r["hi"] = float(np.min(data[:, j])), float(np.max(data[:, j]))
        return rules


@dataclass(frozen=True)
class ResponsivenessResult:
    """Responsiveness scores of every feature for every input.

    Attributes:
        scores: ``batch x features`` probabilities in [0, 1] (NaN for inputs that already have
            the target prediction).
        stderr: ``batch x features`` binomial standard errors, Wilson-based (0 when enumerated
            exactly).
        feasible: ``batch x features``: the feature has at least one feasible action.
        exact: ``batch x features``: the action set was enumerated (no sampling).
        n_actions: ``batch x features`` actions evaluated (enumerated or sampled).
        reasons: per input, per feature, one of ``responsive``, ``immutable``, ``no feasible
            action ...``, ``no feasible action attains the target``, ``already has the target
            prediction``.
        feature_names: one name per feature (a one-hot group counts as one feature, named
            after the group).
        current: ``batch`` predicted classes on the inputs (output columns; the class labels
            for a scikit-learn classifier whose ``classes_`` are numbers other than ``0..K-1``).
        target: ``batch`` target classes (same convention as ``current``).
        n_evals: model rows evaluated (inputs plus candidate actions; twice that for a
            classifier whose ``predict`` may differ from the arg-max of its scores and so
            gives the decision: ``tribute.models.adapters.predict_may_differ``).
    """

    scores: np.ndarray
    stderr: np.ndarray
    feasible: np.ndarray
    exact: np.ndarray
    n_actions: np.ndarray
    reasons: list[list[str]]
    feature_names: list[str]
    current: np.ndarray
    target: np.ndarray
    n_evals: int

    def table(self, i: int = 0) -> list[dict[str, Any]]:
        """Input ``i``'s features as rows ``{feature, score, stderr, feasible, exact, n_actions,
        reason}``, most responsive first."""
        rows = [{"feature": n, "score": float(self.scores[i, j]), "stderr": float(self.stderr[i, j]),
                 "feasible": bool(self.feasible[i, j]), "exact": bool(self.exact[i, j]),
                 "n_actions": int(self.n_actions[i, j]), "reason": self.reasons[i][j]}
                for j, n in enumerate(self.feature_names)]
        return sorted(rows, key=lambda r: -np.nan_to_num(r["score"], nan=-1.0))

    def unresponsive(self, i: int = 0) -> dict[str, str]:
        """Features of input ``i`` that cannot give recourse, with the reason."""
        return {n: self.reasons[i][j] for j, n in enumerate(self.feature_names)
                if self.reasons[i][j] not in (REASON_RESPONSIVE, REASON_ALREADY)}

    def plot(self, i: int = 0, **kwargs: Any) -> Any:
        """Bar chart of input ``i``'s scores, unresponsive features labelled with the reason;
        see :func:`tribute.viz.responsiveness_bars`."""
        from ..viz import responsiveness_bars  # viz sits above methods: lazy

        return responsiveness_bars(self, i, **kwargs)


def _units(x: np.ndarray, names: list[str], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The result's features: single columns, and one-hot groups (validated on ``x``)."""
    units: list[dict[str, Any]] = []
    seen: set[str] = set()
    for j, r in enumerate(rules):
        g = r["group"]
        if g is None:
            units.append({**r, "name": names[j], "cols": [j]})
        elif g not in seen:
            seen.add(g)
            cols = [k for k, rk in enumerate(rules) if rk["group"] == g]
            block = x[:, cols]
            bad = ~(np.isin(block, (0.0, 1.0)).all(1) & (block.sum(1) == 1))
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"Actionability.categorical: input {i} is not one-hot over group {g!r} "
                                 f"(columns {[names[k] for k in cols]} hold {block[i].tolist()}); "
                                 "exactly one column must be 1 and the others 0.")
            units.append({**r, "name": g, "cols": cols})
    return units


def _action_plan(x: np.ndarray, rules: list[dict[str, Any]], n_samples: int, max_enumerate: int,
                 rng: np.random.Generator) -> tuple[list[list[np.ndarray]], np.ndarray, np.ndarray]:
    """Candidate values per (input, unit), plus exact and feasible flags (``rules``: units)."""
    b, d = x.shape[0], len(rules)
    plan: list[list[np.ndarray]] = [[np.zeros(0)] * d for _ in range(b)]
    exact = np.zeros((b, d), dtype=bool)
    feasible = np.zeros((b, d), dtype=bool)
    for i in range(b):
        for u, r in enumerate(rules):
            if r["immutable"]:
                continue
            if r["group"] is not None:  # switch to each other category
                cur_cat = int(np.argmax(x[i, r["cols"]]))
                plan[i][u] = np.array([c for c in range(len(r["cols"])) if c != cur_cat], dtype=np.float64)
                exact[i, u] = feasible[i, u] = True
                continue
            j = r["cols"][0]
            lo, hi, cur = r["lo"], r["hi"], float(x[i, j])
            if r["monotone"] > 0:
                lo = max(lo, cur)
            elif r["monotone"] < 0:
                hi = min(hi, cur)
            if r["integer"]:
                lo_i, hi_i = math.ceil(lo), math.floor(hi)
                count = hi_i - lo_i + 1
                has_cur = cur == round(cur) and lo_i <= cur <= hi_i
                n_values = max(0, count - int(has_cur))
                if n_values == 0:
                    continue
                feasible[i, u] = True
                if n_values <= max_enumerate:
                    vals = np.arange(lo_i, hi_i + 1, dtype=np.float64)
                    plan[i][u] = vals[vals != cur]
                    exact[i, u] = True
                else:  # uniform over the n_values integers other than the current one
                    k = rng.integers(0, n_values, size=n_samples)
                    vals = lo_i + k
                    if has_cur:
                        vals = vals + (vals >= cur)
                    plan[i][u] = vals.astype(np.float64)
            else:
                if not hi > lo:
                    continue
                feasible[i, u] = True
                plan[i][u] = rng.uniform(lo, hi, size=n_samples)
    return plan, exact, feasible


def responsiveness_cost(inputs: Any, actionability: Actionability, *, n_samples: int = 100,
                        max_enumerate: int = 64, feature_names: Sequence[str] | None = None,
                        data: Any = None, model: Any = None, model_output: str | None = None) -> int:
    """Model rows :func:`feature_responsiveness` will evaluate (inputs plus candidate actions).

    Without ``model`` this is one pass over the rows. A classifier whose own ``predict`` gives
    the decision reads every row twice (scores, then ``predict``; see
    :attr:`ResponsivenessResult.n_evals`): pass ``model=`` (and ``model_output=`` as for
    :func:`feature_responsiveness`) to count both passes, so that the cost equals ``n_evals``.
    """
    x, names, data_arr = _inputs(inputs, feature_names, data)
    units = _units(x, names, actionability.resolve(names, data_arr))
    plan, _, _ = _action_plan(x, units, n_samples, max_enumerate, np.random.default_rng(0))
    rows = int(x.shape[0] + sum(v.size for row in plan for v in row))
    if model is None:
        return rows
    as_torch = isinstance(inputs, torch.Tensor) or isinstance(model, torch.nn.Module)
    return rows * (2 if _reads_twice(as_model(model, "torch" if as_torch else "numpy", model_output)) else 1)


def _numeric(arr: np.ndarray, what: str, cols: list[Any] | None) -> np.ndarray:
    """``arr`` as float64, or a clear error naming the columns that are not numbers."""
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        bad: list[Any] = []
        if arr.ndim == 2:
            for j in range(arr.shape[1]):
                try:
                    np.asarray(arr[:, j], dtype=np.float64)
                except (TypeError, ValueError):
                    bad.append(cols[j] if cols is not None and j < len(cols) else j)
        raise InputError(
            f"feature_responsiveness: {what} must be numbers; column(s) {bad or '?'} hold values that are not "
            f"({exc}). Encode them first (e.g. one-hot columns, declared with Actionability(categorical=...)) "
            "and give the model the same encoding.") from None


def _inputs(inputs: Any, feature_names: Sequence[str] | None, data: Any) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    cols = list(getattr(inputs, "columns", [])) or None
    arr = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = _numeric(arr, "inputs", cols)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"feature_responsiveness: inputs must be a non-empty batch x features table; got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise InputError("feature_responsiveness: inputs contain NaN or inf.")
    names = [str(n) for n in (feature_names or cols or [f"x{j}" for j in range(x.shape[1])])]
    if len(names) != x.shape[1]:
        raise InputError(f"feature_responsiveness: got {len(names)} feature_names for {x.shape[1]} features.")
    data_arr = None
    if data is not None:
        data_arr = _numeric(data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data),
                            "data", list(getattr(data, "columns", [])) or None)
        if data_arr.ndim != 2 or data_arr.shape[1] != x.shape[1]:
            raise InputError(f"feature_responsiveness: data has shape {data_arr.shape}; expected (rows, {x.shape[1]}).")
    return x, names, data_arr


def _wilson_stderr(s: float, n: int) -> float:
    """Standard error of a sampled share ``s`` of ``n`` draws such that ``s +- 2 stderr`` holds
    the Wilson score interval at ``z = 2`` (Wilson 1927): the larger distance from ``s`` to its
    ends, over 2. The plain ``sqrt(s (1 - s) / n)`` is 0 when no (or every) sampled action
    attains the target and covers a small score far less than 95% of the time (0.79 at a true
    score of 0.03 with 100 draws); this one is positive and tends to it as ``n`` grows.
    """
    z2 = 4.0
    centre = (s + z2 / (2.0 * n)) / (1.0 + z2 / n)
    half = 2.0 / (1.0 + z2 / n) * math.sqrt(s * (1.0 - s) / n + z2 / (4.0 * n * n))
    return max(s - (centre - half), centre + half - s) / 2.0


def _check_assumed_logit(out: torch.Tensor, model_output: str, assumed: bool) -> None:
    """Warn when one output column assumed to be a logit holds only values in [0, 1].

    The decision of a one-column logit is ``output > 0``: a sigmoid model's probabilities
    (never negative) read as logits would make every row class 1 and every score 0 without a
    word. The same check as :func:`tribute.explain` (``tribute.targets``); logits that all happen
    to lie in [0, 1] are a false positive (declare ``model_output="logit"`` to silence it).
    """
    o = out.detach()
    if not assumed or model_output != "logit" or o.numel() == 0 or (o.ndim == 2 and o.shape[1] != 1):
        return
    lo, hi = float(o.min()), float(o.max())
    # only where the two readings disagree (some row in (0, 0.5]): hard 0/1 labels decide the same
    differs = bool(((o > 0) != (o > 0.5)).any())
    if lo >= 0.0 and hi <= 1.0 and differs:
        warnings.warn(
            f"feature_responsiveness: the model returns one column whose values all lie in [0, 1] "
            f"([{lo:.4g}, {hi:.4g}]), like a probability, but it was not declared to return "
            "probabilities, so it is read as a logit and the decision is output > 0 (rows with an "
            "output in (0, 0.5] read as class 1). If the model returns probabilities, pass model_output='probability' "
            "(decision: output > 0.5); pass model_output='logit' to silence this warning.",
            UserWarning, stacklevel=user_stacklevel())


def _decide(out: torch.Tensor, model_output: str) -> np.ndarray:
    o = out.detach().double().cpu()
    if o.ndim == 2 and o.shape[1] >= 2:
        return o.argmax(1).numpy()
    o = o.reshape(-1)
    return (o > (0.5 if model_output == "probability" else 0.0)).long().numpy()


def _some(out: torch.Tensor) -> str:
    """The distinct values of ``out`` (at most six) for a message."""
    vals = sorted({float(v) for v in out.reshape(-1).tolist()})
    return ", ".join(f"{v:g}" for v in vals[:6]) + (", ..." if len(vals) > 6 else "")


def _predicts_labels(adapter: Any) -> bool:
    """Whether the model is a scikit-learn style classifier called for its ``predict`` (its
    labels, not scores: a classifier with neither ``predict_proba`` nor ``decision_function``
    and a declared ``model_output``)."""
    if not (isinstance(adapter, NumpyModel) and adapter.kind == "predict"):
        return False
    try:
        return getattr(adapter.estimator, "classes_", None) is not None
    except Exception:  # an unfitted wrapper may raise from the property
        return False


def _reads_twice(adapter: Any) -> bool:
    """Whether the decision also runs the estimator's own ``predict`` over every row (after its
    scores): a classifier whose ``predict`` may differ from the arg-max of its scores."""
    if not (isinstance(adapter, NumpyModel) and adapter.kind in ("predict_proba", "decision_function")
            and predict_may_differ(adapter.estimator)):
        return False
    # as NumpyModel.predicted_classes: no predict or no classes_, no second pass
    try:
        classes = getattr(adapter.estimator, "classes_", None)
    except Exception:  # an unfitted wrapper may raise from the property
        return False
    return getattr(adapter.estimator, "predict", None) is not None and classes is not None


def _decisions(adapter: Any, model_in: Any, allx: np.ndarray, names: list[str],
               batch_size: int | None) -> tuple[torch.Tensor, np.ndarray, int]:
    """The model's outputs and decisions on every row, and the rows it evaluated.

    The model runs in eval mode with its parameters frozen (dropout off) and is restored
    afterwards, as in :func:`tribute.explain` (``adapter.session``).
    """
    with adapter.session():
        game = build_game(adapter, model_in, target=lambda o: o if o.ndim == 2 else o[:, None], output="raw",
                          baseline=0.0, feature_names=names, batch_size=batch_size)
        out = game.full()
        _check_assumed_logit(out, game.target.model_output, bool(getattr(adapter, "output_assumed", False)))
        decision = _decide(out, game.target.model_output)
        n_rows = int(allx.shape[0])
        own = _predicted_in_chunks(adapter, torch.as_tensor(allx)) if isinstance(adapter, NumpyModel) else None
    if own is not None:
        # a scikit-learn classifier decides with its predict (a tuned threshold, SVC's Platt
        # scaling can disagree with the arg-max of predict_proba): recourse is about that decision
        decision = own.numpy()
        n_rows *= 2
    return out, decision, n_rows


@register_analysis("responsiveness", kind="decision", paper="Cheon, Tosh, Ustun et al. (2025), Feature "
                   "Responsiveness Scores: Model-Agnostic Explanations for Recourse, ICLR")
def feature_responsiveness(
    model: Any,
    inputs: Any,
    actionability: Actionability | None = None,
    *,
    target: Any = None,
    n_samples: int = 100,
    max_enumerate: int = 64,
    budget: int | None = None,
    seed: int = 0,
    data: Any = None,
    feature_names: Sequence[str] | None = None,
    model_output: str | None = None,
    batch_size: int | None = None,
) -> ResponsivenessResult:
    """Responsiveness score of each feature: the chance a random allowed action on it attains the target.

    Args:
        model: a classifier (torch module, scikit-learn estimator, or callable on numpy).
        inputs: ``batch x features`` table (numpy, torch or pandas).
        actionability: the constraints (:class:`Actionability`); default=None (no constraint
            besides the bounds taken from ``data``).
        target: the wanted class: an int, one per input, or None (binary models: the class
            other than the predicted one). As in :func:`tribute.explain`, integers are class
            labels for a scikit-learn classifier whose ``classes_`` are numbers other than
            ``0..K-1`` (and a string names a label of string ``classes_``); otherwise output
            columns. default=None.
        n_samples: actions drawn per continuous (or large integer) feature. default=100.
        max_enumerate: integer features with at most this many feasible values are enumerated
            exactly. default=64.
        budget: most model rows per input (candidate actions plus the input itself); a plan
            over it is refused with the ``n_samples`` that fits. A classifier whose own
            ``predict`` gives the decision reads every row twice (scores, then ``predict``):
            the budget and ``n_evals`` count both passes. default=None (no limit).
        seed: seed of the local generator. default=0.
        data: reference rows whose per-feature range bounds features without ``bounds``.
        feature_names: one name per column (default: the DataFrame's columns, else ``x0..``).
        model_output: what the model returns (``"logit"`` / ``"probability"``), default=None
            (detected as in :func:`tribute.explain`).
        batch_size: rows per forward pass, default=None (automatic).

    Returns:
        A :class:`ResponsivenessResult`.
    """
    x, names, data_arr = _inputs(inputs, feature_names, data)
    for what, val, low in (("n_samples", n_samples, 1), ("max_enumerate", max_enumerate, 0)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise InputError(f"feature_responsiveness: {what}={val!r} must be an integer >= {low}.")
    rules = _units(x, names, (actionability or Actionability()).resolve(names, data_arr))
    plan, exact, feasible = _action_plan(x, rules, int(n_samples), int(max_enumerate),
                                         np.random.default_rng(seed))
    b, d = x.shape[0], len(rules)
    counts = np.array([[v.size for v in row] for row in plan], dtype=np.int64).reshape(b, d)
    as_torch = isinstance(inputs, torch.Tensor) or isinstance(model, torch.nn.Module)
    adapter: Any = as_model(model, "torch" if as_torch else "numpy", model_output)
    passes = 2 if _reads_twice(adapter) else 1  # scores, then the classifier's own predict
    if budget is not None:
        worst = (int(counts.sum(1).max()) + 1) * passes
        if worst > budget:
            n_sampled = int((feasible & ~exact).sum(1).max())
            n_exact = int((counts * exact).sum(1).max())
            fit = (budget // passes - 1 - n_exact) // max(n_sampled, 1)
            raise BudgetError(
                f"feature_responsiveness: the plan needs {worst} model rows for one input "
                f"({n_exact} enumerated actions, {n_sampled} sampled features x n_samples={n_samples}, "
                f"plus the input" + (", each read twice: scores, then the classifier's own predict"
                                     if passes == 2 else "") + f") but budget={budget}; "
                + (f"use n_samples <= {fit}" if fit >= 1 else "raise budget or lower max_enumerate") + ".")
    rows = [x]
    for i in range(b):
        for j in range(d):
            if counts[i, j]:
                cand = np.repeat(x[i:i + 1], counts[i, j], axis=0)
                cols = rules[j]["cols"]
                if rules[j]["group"] is None:
                    cand[:, cols[0]] = plan[i][j]
                else:  # one-hot: the chosen category's column is 1, the group's others 0
                    cand[:, cols] = 0.0
                    cand[np.arange(counts[i, j]), np.asarray(cols)[plan[i][j].astype(np.int64)]] = 1.0
                rows.append(cand)
    allx = np.concatenate(rows)
    if as_torch:
        dtype = inputs.dtype if isinstance(inputs, torch.Tensor) and inputs.dtype.is_floating_point else None
        if dtype is None and isinstance(model, torch.nn.Module):
            dtype = next((p.dtype for p in model.parameters()), torch.float32)
        model_in: Any = torch.as_tensor(allx, dtype=dtype or torch.float32)
    else:
        model_in = allx
    out, decision, n_rows = _decisions(adapter, model_in, allx, names, batch_size)
    labels_out = _predicts_labels(adapter)
    if int(out.shape[1]) == 1 and (labels_out or str(getattr(adapter, "output_kind", "")) == "raw") \
            and not bool(((out == 0) | (out == 1)).all()):
        # a regressor's one raw output decides no class: it was read as output > 0 without a
        # word (a credit model predicting 580 vs a bar of 600 "approved" everyone) (aud43x);
        # 0/1 outputs (a rule's or a classifier's predict on labels 0/1) are that decision
        # (refused since aud43x: rev43x); a classifier's predict on labels 3/7 read as a
        # logit/probability was class 1 for every row (rev43x)
        raise InputError(
            "feature_responsiveness: the model returns one raw output per row (a regressor's predict, "
            "or model_output='raw'), which is no decision: recourse needs the class the model gives. "
            "If the output is a classifier's score, declare it: model_output='logit' (decision: output "
            "> 0) or model_output='probability' (output > 0.5); for a regressor with a threshold t, "
            "pass lambda X: model.predict(X) - t with model_output='logit'; for a classifier that only "
            "predicts labels, lambda X: (model.predict(X) == label).astype(float) with "
            "model_output='probability'." if not labels_out else
            "feature_responsiveness: the model is a classifier with only predict, whose labels "
            f"({_some(out)}) are no score: read as "
            f"model_output={str(adapter.output_kind)!r} every row would be one class. Pass "
            "lambda X: (model.predict(X) == label).astype(float) with model_output='probability' "
            "(the decision: predict gives label).")
    current = decision[:b]
    n_classes = int(out.shape[1]) if out.shape[1] >= 2 else 2
    # a scikit-learn classifier fitted on labels such as 1, 2, 3: target is a class label, as in
    # tribute.explain (labels_to_columns), and current / target are reported as labels
    labels = numeric_labels(adapter)
    if target is None:
        if n_classes != 2:
            raise InputError(f"feature_responsiveness: the model has {n_classes} classes; pass target= "
                             "(the wanted class, one int or one per input).")
        tgt = 1 - current
    else:
        cols = labels_to_columns(adapter, plain_target(target, inputs))
        tgt = np.broadcast_to(np.asarray(cols, dtype=np.int64), (b,)).copy() if np.ndim(cols) == 0 else \
            np.asarray(cols, dtype=np.int64)
        if tgt.shape != (b,) or (tgt < 0).any() or (tgt >= n_classes).any():
            raise InputError(f"feature_responsiveness: target={target!r} must be a class in 0..{n_classes - 1} "
                             f"or one per input ({b}).")
    scores = np.zeros((b, d))
    stderr = np.zeros((b, d))
    reasons: list[list[str]] = []
    pos = b
    for i in range(b):
        rr = []
        for j in range(d):
            n = int(counts[i, j])
            hit = decision[pos:pos + n] == tgt[i]
            pos += n
            s = float(hit.mean()) if n else 0.0
            scores[i, j] = s
            stderr[i, j] = 0.0 if exact[i, j] or n == 0 else _wilson_stderr(s, n)
            if current[i] == tgt[i]:
                rr.append(REASON_ALREADY)
                scores[i, j], stderr[i, j] = np.nan, np.nan
            elif rules[j]["immutable"]:
                rr.append(REASON_IMMUTABLE)
            elif not feasible[i, j]:
                rr.append(REASON_NO_ACTION)
            elif s == 0.0:
                rr.append(REASON_NO_FLIP)
            else:
                rr.append(REASON_RESPONSIVE)
        reasons.append(rr)
    if labels is not None and labels.shape[0] == n_classes:
        current, tgt = labels[current], labels[tgt]
    return ResponsivenessResult(scores, stderr, feasible, exact, counts, reasons, [u["name"] for u in rules],
                                current, tgt, n_rows)


#: rows per call of a classifier's own ``predict`` (the candidates of every input and feature
#: together can be millions of rows; the scores go through the engine's chunks already)
PREDICT_CHUNK_ROWS = 65536


def _predicted_in_chunks(adapter: NumpyModel, allx: torch.Tensor) -> torch.Tensor | None:
    """:meth:`NumpyModel.predicted_classes` over ``allx`` in chunks of
    :data:`PREDICT_CHUNK_ROWS` rows (None as soon as one chunk says the arg-max holds)."""
    parts = []
    for lo in range(0, int(allx.shape[0]), PREDICT_CHUNK_ROWS):
        got = adapter.predicted_classes((allx[lo:lo + PREDICT_CHUNK_ROWS],))
        if got is None:
            return None
        parts.append(got)
    return torch.cat(parts) if parts else None
