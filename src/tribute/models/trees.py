"""Tree ensembles read into one array form, for exact tree attribution.

:func:`parse_trees` turns a fitted scikit-learn tree model (decision trees, random forests,
extra trees, gradient boosting, histogram gradient boosting, a ``Pipeline`` ending in one), an
XGBoost model or a LightGBM model into a :class:`TreeEnsemble`: per tree the children, split
feature, threshold, where missing values go, the node cover (training weight reaching the
node, used by path-dependent TreeSHAP; the training row count for ``HistGradientBoosting*`` and
LightGBM, which store no weight: see :mod:`tribute.methods.tree_shap`) and the leaf values, already scaled so that the
ensemble's raw output is ``offset + sum of the reached leaves``.

The raw output is the model's own *margin*: log-odds for boosted classifiers, the prediction
for regressors, and for scikit-learn forest/tree classifiers the average of the trees' class
probabilities (what ``predict_proba`` returns). :meth:`TreeEnsemble.check` compares the parsed
ensemble with the model's own prediction on the rows being explained (and tree_shap on its
background rows) and refuses to go on when they differ, so a reading error can never become a
silently wrong attribution. A value an XGBoost wrapper reads as missing (``missing=-999``) is
read as NaN (:meth:`TreeEnsemble.read_missing`). A GradientBoosting model's initial estimator
is its constant offset, or (regressors) the trees of a scikit-learn tree/forest ``init``;
others are refused. XGBoost models with several targets grow one tree per target (read like
classes); CatBoost's symmetric trees and its Depthwise/Lossguide (nested) trees are read;
LightGBM ``linear_tree`` and XGBoost ``multi_output_tree`` models are refused by name.

XGBoost and LightGBM are optional: they are only touched when the model comes from them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError

__all__ = ["Tree", "TreeEnsemble", "is_tree_model", "parse_trees", "snap_zero"]


@dataclass
class Tree:
    """One tree in array form (``nodes`` entries each; ``left[i] == -1`` marks a leaf).

    Attributes:
        left, right: child node ids.
        feature: split feature per node (-1 at leaves).
        threshold: split threshold per node.
        missing_left: where a NaN goes at each split.
        cover: training weight reaching each node (path-dependent TreeSHAP's weights).
        value: ``nodes x outputs`` leaf values (scaled; zero columns for other classes' trees).
        strict: ``True`` when ``x < threshold`` goes left (XGBoost), else ``x <= threshold``.
        float32: inputs are rounded to float32 before the comparison (scikit-learn trees and
            XGBoost read inputs as float32).
        threshold32: thresholds are float32 too (XGBoost).
        zero_as_missing: LightGBM's ``missing_type="Zero"`` nodes (zeros follow ``missing_left``).
        nan_as_zero: LightGBM's ``missing_type="None"`` nodes (NaN is read as 0).
        zero_below: inputs with ``|x| <= zero_below`` are read as exactly 0 (LightGBM's
            ``kZeroThreshold``, ``1e-35f``: its dense-row reader drops them as zeros before any
            split compares them); 0 reads every input as it is.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    cover: np.ndarray
    value: np.ndarray
    strict: bool = False
    float32: bool = False
    threshold32: bool = False
    zero_as_missing: np.ndarray | None = None
    nan_as_zero: np.ndarray | None = None
    zero_below: float = 0.0

    @property
    def n_nodes(self) -> int:
        return int(self.left.shape[0])

    def go_left(self, x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """``rows x len(nodes)`` booleans: does each row go left at each of ``nodes``."""
        return self.decide(x[:, self.feature[nodes]], nodes)

    def round_inputs(self, x: np.ndarray) -> np.ndarray:
        """Inputs as the trees compare them (float32-rounded where the library does so; read
        as 0 within :attr:`zero_below` of it, as LightGBM reads them)."""
        x = x.astype(np.float32).astype(np.float64) if self.float32 else x
        return snap_zero(x, self.zero_below)

    def decide(self, v: np.ndarray, nodes: np.ndarray, rounded: bool = False) -> np.ndarray:
        """Go-left decisions for feature values ``v`` at ``nodes`` (broadcast together);
        ``rounded``: ``v`` already went through :meth:`round_inputs`."""
        thr = self.threshold[nodes]
        if not rounded:
            v = self.round_inputs(v)
        if self.threshold32:
            thr = thr.astype(np.float32).astype(np.float64)
        nan = np.isnan(v)
        if self.nan_as_zero is not None:
            v = np.where(nan & self.nan_as_zero[nodes], 0.0, v)
            nan = nan & ~self.nan_as_zero[nodes]
        with np.errstate(invalid="ignore"):
            left = v < thr if self.strict else v <= thr
        miss = nan
        if self.zero_as_missing is not None:
            miss = miss | (self.zero_as_missing[nodes] & (np.abs(np.nan_to_num(v)) <= 1e-35))
        return np.asarray(np.where(miss, self.missing_left[nodes], left))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``rows x outputs`` leaf values reached by each row (for the reading check)."""
        node = np.zeros(x.shape[0], dtype=np.int64)
        rows = np.arange(x.shape[0])
        while True:
            internal = self.left[node] >= 0
            if not internal.any():
                break
            r = rows[internal]
            n = node[internal]
            gl = self.decide(x[r, self.feature[n]], n)
            node[internal] = np.where(gl, self.left[n], self.right[n])
        return self.value[node]


@dataclass
class TreeEnsemble:
    """A tree model in array form: ``raw(x) = offset + sum_t tree_t(x)``.

    Attributes:
        trees: the trees (leaf values already scaled by learning rate / averaging).
        offset: ``outputs`` constant added to the sum (base score, initial prediction).
        n_features: input columns.
        n_outputs: output columns of the raw output.
        link: how the raw output maps to the model's probabilities: ``"identity"`` (regression,
            or forests that average probabilities), ``"logistic"`` (binary boosted) or
            ``"softmax"`` (multiclass boosted).
        kind: a short description of the model (``"xgboost"``, ``"sklearn forest"``, ...).
        raw_output: a short name of what the raw output is (``"margin"``, ``"probability"``,
            ``"prediction"``).
    """

    trees: list[Tree]
    offset: np.ndarray
    n_features: int
    n_outputs: int
    link: str
    kind: str
    raw_output: str
    binary_single: bool = False
    model_raw: Any = field(default=None, repr=False)
    #: Rows this reader passed to the model's own raw prediction (offset and reading check);
    #: they bypass the engine, so methods report them.
    raw_rows: int = 0
    #: A value the model reads as missing besides NaN (``XGBModel(missing=-999)``); the trees
    #: read it as NaN (:meth:`read_missing`).
    missing_value: float = float("nan")
    #: For a logistic link: the log-odds are ``logit_scale * margin`` (``p = sigmoid(logit_scale
    #: * margin)``): 2 for scikit-learn's exponential loss, LightGBM's ``sigmoid=`` parameter.
    logit_scale: float = 1.0
    #: The model's probabilities are hard 0/1 classes, a step of the margin (XGBoost's
    #: ``binary:hinge``): no probability is additive over its trees.
    hard_classes: bool = False

    _merged: tuple[Tree, np.ndarray] | None = field(default=None, repr=False)

    def merged(self) -> tuple[Tree, np.ndarray]:
        """Every tree in one node table with global child ids, and each tree's root id.

        The split rules (``strict``, ``float32``, ``threshold32``) are the ensemble's, shared by
        its trees; per-node flags are concatenated."""
        if self._merged is None:
            trees = self.trees
            sizes = np.array([t.n_nodes for t in trees], dtype=np.int64)
            off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

            def cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
                return np.concatenate(parts) if parts else empty

            def flags(name: str) -> np.ndarray | None:
                parts = [getattr(t, name) for t in trees]
                if not parts or any(p is None for p in parts):
                    return None
                return np.concatenate(parts)

            i0, f0 = np.zeros(0, np.int64), np.zeros(0)
            t0 = trees[0] if trees else None
            tree = Tree(
                left=cat([np.where(t.left >= 0, t.left + o, -1) for t, o in zip(trees, off)], i0),
                right=cat([np.where(t.left >= 0, t.right + o, -1) for t, o in zip(trees, off)], i0),
                feature=cat([t.feature for t in trees], i0),
                # float32 thresholds rounded once (rounding is idempotent)
                threshold=cat([t.threshold.astype(np.float32).astype(np.float64)
                               if t.threshold32 else t.threshold for t in trees], f0),
                missing_left=cat([t.missing_left for t in trees], np.zeros(0, bool)),
                cover=cat([np.asarray(t.cover, dtype=np.float64) for t in trees], f0),
                value=cat([t.value for t in trees], np.zeros((0, self.n_outputs))),
                strict=bool(t0.strict) if t0 else False,
                float32=bool(t0.float32) if t0 else False,
                threshold32=False,
                zero_as_missing=flags("zero_as_missing"),
                nan_as_zero=flags("nan_as_zero"),
                zero_below=float(t0.zero_below) if t0 else 0.0,
            )
            self._merged = (tree, off)
        return self._merged

    def read_missing(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the entries the model reads as missing set to NaN (a copy when any is):
        :attr:`missing_value`, compared in float32 as XGBoost does. Idempotent."""
        if np.isnan(self.missing_value):
            return x
        hit = x.astype(np.float32) == np.float32(self.missing_value)
        return np.where(hit, np.nan, x) if hit.any() else x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``rows x outputs`` raw output: all trees walked together, one level at a time."""
        x = self.read_missing(x)
        out = np.tile(self.offset, (x.shape[0], 1)).astype(np.float64)
        if not self.trees or x.shape[0] == 0:
            return out
        tree, roots = self.merged()
        x = tree.round_inputs(x)
        node = np.tile(roots, (x.shape[0], 1))  # rows x trees
        rows = np.repeat(np.arange(x.shape[0]), roots.size).reshape(node.shape)
        active = np.flatnonzero(tree.left[node.reshape(-1)] >= 0)
        flat_node, flat_row = node.reshape(-1), rows.reshape(-1)
        while active.size:
            n = flat_node[active]
            gl = tree.decide(x[flat_row[active], tree.feature[n]], n, rounded=True)
            nxt = np.where(gl, tree.left[n], tree.right[n])
            flat_node[active] = nxt
            active = active[tree.left[nxt] >= 0]
        leaves: np.ndarray = tree.value[flat_node].reshape(x.shape[0], roots.size, -1)
        return np.asarray(out + leaves.sum(1))

    def check(self, x: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6,
              got: np.ndarray | None = None) -> None:
        """Refuse when the parsed ensemble's output differs from the model's own on ``x``
        (``got``: the parsed ensemble's output on ``x`` when the caller already has it)."""
        if self.model_raw is None:
            return
        want = np.asarray(self.model_raw(x), dtype=np.float64).reshape(x.shape[0], -1)
        self.raw_rows += int(x.shape[0])
        got = self.predict(x) if got is None else got
        if self.binary_single and want.shape[1] == 1 and got.shape[1] == 2:
            got = got[:, 1:]
        if want.shape != got.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
            err = np.max(np.abs(got - want)) if want.shape == got.shape else float("nan")
            raise UnsupportedModelError(
                f"tree_shap could not read this {self.kind.removesuffix(' model')} model exactly (its trees give outputs "
                f"up to {err:.3g} away from the model's own raw prediction); this model feature "
                "is not supported. Use a model-agnostic method such as method='shapley'."
            )


def snap_zero(x: np.ndarray, below: float) -> np.ndarray:
    """``x`` with the entries ``|x| <= below`` set to 0.0 (NaN kept); ``x`` itself when
    ``below`` is 0 or no entry is that small (a copy otherwise)."""
    if not below:
        return x
    with np.errstate(invalid="ignore"):
        tiny = np.abs(x) <= below
    tiny &= x != 0
    return np.where(tiny, 0.0, x) if tiny.any() else x


def is_tree_model(model: Any) -> bool:
    """True for the tree models :func:`parse_trees` reads."""
    try:
        _final_estimator(model)
        est = _final_estimator(model)
    except Exception:
        return False
    name = type(est).__module__ + "." + type(est).__name__
    return any(k in name for k in _KNOWN)


_KNOWN = ("DecisionTree", "ExtraTree", "RandomForest", "ExtraTrees", "GradientBoosting",
          "HistGradientBoosting", "xgboost", "lightgbm", "catboost")


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    if steps is not None and isinstance(steps, list) and steps:
        if len(steps) > 1:
            raise UnsupportedModelError(
                "tree_shap reads the tree model itself; this Pipeline has preprocessing steps "
                f"({[s[0] for s in steps[:-1]]}): tribute.explain(pipeline, ...) traces "
                "column-wise preprocessing back to the original columns; otherwise explain the "
                "final tree model on transformed inputs, or use method='shapley' on the whole "
                "pipeline."
            )
        return steps[-1][1]
    return model


def parse_trees(model: Any) -> TreeEnsemble:
    """Read a fitted tree model into a :class:`TreeEnsemble`.

    Raises:
        UnsupportedModelError: not a supported tree model, not fitted, categorical splits,
            DART boosting, a custom objective without a known link, multi-output trees.
    """
    est = _final_estimator(model)
    mod = type(est).__module__
    name = type(est).__name__
    if mod.startswith("xgboost"):
        return _parse_xgboost(est)
    if mod.startswith("lightgbm"):
        return _parse_lightgbm(est)
    if mod.startswith("sklearn"):
        return _parse_sklearn(est, name)
    if mod.startswith("catboost"):
        return _parse_catboost(est)
    raise UnsupportedModelError(
        f"tree_shap does not know models of type {mod}.{name}; it reads scikit-learn trees, "
        "forests and gradient boosting, XGBoost, LightGBM and CatBoost. Use method='shapley' "
        "instead."
    )


# --------------------------------------------------------------------------- scikit-learn
def _not_fitted(est: Any) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"tree_shap: the {type(est).__name__} is not fitted; call .fit(X, y) first."
    )


def _named(est: Any, fn: Any) -> Any:
    """``fn`` called with a DataFrame of the estimator's column names when it was fitted on
    one (scikit-learn warns "X does not have valid feature names" on every array call)."""
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        return fn

    def call(x: np.ndarray) -> Any:
        import pandas as pd  # fitted on a DataFrame, so pandas is there

        return fn(pd.DataFrame(x, columns=list(names), copy=False))

    return call


def _sk_tree(tree_: Any, scale: float, n_out: int, col: int | None, proba: bool) -> Tree:
    left = np.asarray(tree_.children_left, dtype=np.int64)
    right = np.asarray(tree_.children_right, dtype=np.int64)
    feature = np.asarray(tree_.feature, dtype=np.int64)
    feature = np.where(left >= 0, feature, -1)
    thr = np.asarray(tree_.threshold, dtype=np.float64)
    cover = np.asarray(tree_.weighted_n_node_samples, dtype=np.float64)
    raw = np.asarray(tree_.value, dtype=np.float64)  # nodes x outputs x classes
    if raw.shape[1] != 1:
        raise UnsupportedModelError(
            f"tree_shap: multi-output scikit-learn trees ({raw.shape[1]} outputs) are not supported; "
            "use a model-agnostic method (method='shapley' or 'exact_shapley') with target=j for "
            "output j.")
    vals = raw[:, 0, :]
    if proba:
        s = vals.sum(axis=1, keepdims=True)
        vals = np.divide(vals, s, out=np.zeros_like(vals), where=s > 0)
    value = np.zeros((left.shape[0], n_out))
    if col is None:
        value[:, : vals.shape[1]] = vals * scale
    else:
        value[:, col] = vals[:, 0] * scale
    mgl = getattr(tree_, "missing_go_to_left", None)
    missing_left = (np.asarray(mgl, dtype=bool) if mgl is not None
                    else np.zeros(left.shape[0], dtype=bool))
    return Tree(left, right, feature, thr, missing_left, cover, value, float32=True)


def _parse_sklearn(est: Any, name: str) -> TreeEnsemble:
    n_features = getattr(est, "n_features_in_", None)
    if n_features is None:
        raise _not_fitted(est)
    n_features = int(n_features)
    classes: Any = getattr(est, "classes_", None)
    is_clf = classes is not None
    if name in ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier",
                "ExtraTreeRegressor"):
        n_out = len(classes) if classes is not None else 1
        tree = _sk_tree(est.tree_, 1.0, n_out, None, is_clf)
        return TreeEnsemble([tree], np.zeros(n_out), n_features, n_out, "identity",
                            f"scikit-learn {name}", "probability" if is_clf else "prediction",
                            model_raw=_named(est, est.predict_proba if is_clf else est.predict))
    if name in ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
                "ExtraTreesRegressor"):
        ests = getattr(est, "estimators_", None)
        if not ests:
            raise _not_fitted(est)
        n_out = len(classes) if classes is not None else 1
        if classes is not None and np.ndim(classes[0]) > 0:
            raise UnsupportedModelError("tree_shap: multi-output forests are not supported.")
        trees = [_sk_tree(e.tree_, 1.0 / len(ests), n_out, None, is_clf) for e in ests]
        return TreeEnsemble(trees, np.zeros(n_out), n_features, n_out, "identity",
                            f"scikit-learn {name}", "probability" if is_clf else "prediction",
                            model_raw=_named(est, est.predict_proba if is_clf else est.predict))
    if name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        ests = getattr(est, "estimators_", None)
        if ests is None or len(ests) == 0:
            raise _not_fitted(est)
        lr = float(est.learning_rate)
        k = ests.shape[1]
        n_out = k
        trees = [_sk_tree(ests[i, j].tree_, lr, n_out, j, False)
                 for i in range(ests.shape[0]) for j in range(k)]
        trees = _gb_init_trees(est, name, is_clf) + trees
        raw = _named(est, est.decision_function if is_clf else est.predict)
        link = "identity" if not is_clf else ("logistic" if k == 1 else "softmax")
        ens = TreeEnsemble(trees, np.zeros(n_out), n_features, n_out, link,
                           f"scikit-learn {name}", "margin" if is_clf else "prediction",
                           model_raw=raw)
        if is_clf and k == 1 and getattr(est, "loss", None) == "exponential":
            ens.logit_scale = 2.0  # AdaBoost's loss: p = sigmoid(2 margin)
        _fit_offset(ens, n_features)
        return ens
    if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        preds = getattr(est, "_predictors", None)
        if not preds:
            raise _not_fitted(est)
        cat = getattr(est, "is_categorical_", None)
        order = None
        if cat is not None and bool(np.any(cat)):
            cat = np.asarray(cat, dtype=bool)
            if not _numeric_categories(est):
                # it reads those columns' categories (pandas categoricals / strings): the
                # trees' bins of them are not numbers tribute can compose (a bare TypeError
                # from the model before)
                names = getattr(est, "feature_names_in_", None)
                cols = [str(names[i]) if names is not None else int(i) for i in np.flatnonzero(cat)]
                raise UnsupportedModelError(
                    f"tree_shap: this {name} treats column(s) {cols[:8]} as categorical "
                    "features with non-numeric categories, which tree_shap does not read; "
                    "one-hot encode them, or use method='exact_shapley' / 'kernel_shap' on the "
                    "model."
                )
            # numeric categories: the model's own preprocessor puts the categorical columns
            # first, and the trees' feature indices count in that order; a tree that splits
            # on a categorical column is refused by _hgb_tree (review rev36b: a model with
            # categorical_features set but no categorical split was refused)
            order = np.concatenate([np.flatnonzero(cat), np.flatnonzero(~cat)])
        k = len(preds[0])
        trees = []
        for it in preds:
            for j, p in enumerate(it):
                trees.append(_hgb_tree(p, k, j, order))
        raw = _named(est, est.decision_function if is_clf else est.predict)
        link = "identity" if not is_clf else ("logistic" if k == 1 else "softmax")
        loss = getattr(est, "loss", "squared_error")
        if not is_clf and loss in ("poisson", "gamma"):
            # a log link, as XGBoost's / LightGBM's Poisson and Gamma models (explained as
            # their margin, the log of the prediction): they were refused (aud52r)
            raw, link = _log_of(raw), "exp"
        elif not is_clf and loss not in ("squared_error", "absolute_error", "quantile"):
            raise UnsupportedModelError(
                f"tree_shap: HistGradientBoostingRegressor with loss={est.loss!r} predicts through a "
                "link function; explain it with method='shapley'."
            )
        ens = TreeEnsemble(trees, np.zeros(k), n_features, k, link, f"scikit-learn {name}",
                           "margin" if is_clf or link == "exp" else "prediction", model_raw=raw)
        _fit_offset(ens, n_features)
        return ens
    raise UnsupportedModelError(
        f"tree_shap does not read scikit-learn {name}; supported: decision trees, random forests, "
        "extra trees, GradientBoosting and HistGradientBoosting. Use a model-agnostic method "
        "such as method='exact_shapley' or 'kernel_shap' for it."
    )


def _log_of(fn: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The log of a log-link model's prediction: its margin (``exp(margin)`` is predicted)."""

    def margin(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(fn(x), dtype=np.float64))

    return margin


#: DummyRegressor / DummyClassifier strategies that predict one constant for every row.
_CONSTANT_DUMMY = ("mean", "median", "quantile", "constant", "prior", "most_frequent")


def _gb_init_trees(est: Any, name: str, is_clf: bool) -> list[Tree]:
    """The trees of a GradientBoosting model's initial estimator ``init_`` (its raw output is
    ``init_``'s prediction plus the boosted trees).

    A constant ``init_`` (the default ``DummyRegressor`` / ``DummyClassifier``, or ``"zero"``)
    is the offset read by :func:`_fit_offset`: no trees. A regressor whose ``init`` is itself a
    scikit-learn tree model adds that model's trees (``raw = init.predict(x) + sum``). Any other
    initial model is refused: it was read as the constant it predicts at the row of zeros, so
    path-dependent values silently left out what it adds (audit aud41t:
    ``init=DecisionTreeRegressor(max_depth=1)``, explained rows on the zero row's side of its
    split: credit 0 where the truth is -0.863; the reading check passed on those rows)."""
    init = getattr(est, "init_", None)
    if init is None or isinstance(init, str):
        return []
    iname = type(init).__name__
    if iname in ("DummyRegressor", "DummyClassifier") and \
            getattr(init, "strategy", None) in _CONSTANT_DUMMY:
        return []
    if not is_clf and type(init).__module__.startswith("sklearn") and iname in (
            "DecisionTreeRegressor", "ExtraTreeRegressor", "RandomForestRegressor",
            "ExtraTreesRegressor"):
        sub = _parse_sklearn(init, iname)
        if sub.n_outputs == 1:
            return sub.trees
    raise UnsupportedModelError(
        f"tree_shap: this {name} starts from init={iname}, whose predictions are not a sum of "
        "trees tribute reads (tree_shap reads a constant initial model, or for a regressor a "
        "scikit-learn tree or forest regressor). Use a model-agnostic method such as "
        "method='exact_shapley' or 'kernel_shap'."
    )


def _numeric_categories(est: Any) -> bool:
    """Whether every categorical column of a HistGradientBoosting model has numeric categories
    (categorical_features on numbers: the model reads the column's values as they are)."""
    try:
        cats = est._preprocessor.named_transformers_["encoder"].categories_
    except Exception:  # another scikit-learn layout: not known to be numeric
        return False
    return all(np.asarray(c).dtype.kind in "biuf" for c in cats)


def _hgb_tree(pred: Any, n_out: int, col: int, order: np.ndarray | None = None) -> Tree:
    nodes = pred.nodes
    if "is_categorical" in nodes.dtype.names and bool(np.any(nodes["is_categorical"])):
        raise UnsupportedModelError(
            "tree_shap: categorical splits of HistGradientBoosting are not supported; one-hot "
            "encode the column, or use method='shapley'."
        )
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    idx = nodes["feature_idx"].astype(np.int64)
    if order is not None:  # the model's preprocessor's column order -> the input's
        idx = order[idx]
    feature = np.where(leaf, -1, idx)
    value = np.zeros((len(nodes), n_out))
    value[:, col] = nodes["value"].astype(np.float64)
    return Tree(left, right, feature, nodes["num_threshold"].astype(np.float64),
                nodes["missing_go_to_left"].astype(bool), nodes["count"].astype(np.float64), value)


def _fit_offset(ens: TreeEnsemble, n_features: int) -> None:
    """The constant ``raw - sum(trees)`` (initial prediction / base score), read off the model."""
    assert ens.model_raw is not None
    x = np.zeros((1, n_features))
    want = np.asarray(ens.model_raw(x), dtype=np.float64).reshape(1, -1)
    ens.raw_rows += 1
    got = ens.predict(x)
    if want.shape[1] == 1 and got.shape[1] == 1:
        ens.offset = (want - got)[0]
    elif want.shape == got.shape:
        ens.offset = (want - got)[0]
    else:
        raise UnsupportedModelError(
            f"tree_shap: the {ens.kind}'s raw output has {want.shape[1]} columns but its trees "
            f"give {got.shape[1]}; this model is not supported."
        )


# --------------------------------------------------------------------------- XGBoost
def _parse_xgboost(est: Any) -> TreeEnsemble:
    import xgboost

    booster = est.get_booster() if hasattr(est, "get_booster") else est
    if not isinstance(booster, xgboost.Booster):
        raise UnsupportedModelError(f"tree_shap: cannot read XGBoost object {type(est).__name__}.")
    # a scikit-learn wrapper's `missing` value is missing besides NaN (its DMatrix says so)
    missing = getattr(est, "missing", None) if booster is not est else None
    missing = float("nan") if missing is None else float(missing)
    best = getattr(est, "best_iteration", None) if booster is not est else None
    if best is not None and int(best) + 1 < booster.num_boosted_rounds():
        # a wrapper fitted with early stopping predicts with its best iteration's trees only
        booster = booster[: int(best) + 1]
    try:
        cfg = json.loads(booster.save_config())
    except Exception as exc:  # an unfitted sklearn wrapper raises here
        raise _not_fitted(est) from exc
    learner = cfg["learner"]
    btype = learner["gradient_booster"]["name"]
    if btype != "gbtree":
        raise UnsupportedModelError(
            f"tree_shap: XGBoost booster {btype!r} is not supported (only gbtree; DART weights "
            "trees at prediction time and gblinear has no trees)."
        )
    objective = learner["objective"]["name"]
    if learner.get("learner_train_param", {}).get("multi_strategy") == "multi_output_tree":
        # (its trees hold a vector per leaf; the dump raised a bare XGBoostError before)
        raise UnsupportedModelError(
            "tree_shap: XGBoost multi_strategy='multi_output_tree' (vector leaves) is not "
            "supported; refit with multi_strategy='one_output_per_tree' (the default), or use "
            "a model-agnostic method such as method='exact_shapley' or 'kernel_shap'."
        )
    n_class = int(learner["learner_model_param"].get("num_class", "0") or 0)
    # several targets (a 2-d y, several quantile_alpha): one tree per target per round, as
    # classes are (they were refused as "2 columns but its trees give 1")
    n_target = int(learner["learner_model_param"].get("num_target", "1") or 1)
    gbtree = learner["gradient_booster"]
    npt = int(gbtree.get("gbtree_model_param", {}).get("num_parallel_tree", "1") or 1)
    if objective in ("binary:logistic", "binary:logitraw", "reg:logistic"):
        link = "logistic"
    elif objective in ("multi:softprob", "multi:softmax"):
        link = "softmax"
    elif objective in ("reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror",
                       "reg:absoluteerror", "reg:quantileerror", "binary:hinge",
                       "rank:pairwise", "rank:ndcg", "rank:map"):
        link = "identity"
    elif objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox",
                       "survival:aft"):
        link = "exp"
    else:
        raise UnsupportedModelError(
            f"tree_shap: XGBoost objective {objective!r} (a custom objective?) has no known link; "
            "the margin would be explained but its meaning is unknown. Use method='shapley'."
        )
    n_out = max(n_class, n_target, 1)
    names = booster.feature_names
    n_features = int(booster.num_features())
    index = {n: i for i, n in enumerate(names)} if names else {}
    dumps = booster.get_dump(dump_format="json", with_stats=True)
    saved: list[list[dict[str, Any]]] = []

    def saved_tree(i: int) -> dict[str, Any]:
        # the model's own arrays (read once, when a dump lacks a split's threshold)
        if not saved:
            model = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]
            saved.append(model["trees"])
        return saved[0][i]

    # features whose dump does not write the model's own threshold: "int" ones (their
    # split_condition is rounded up to an integer) and indicators "i" (none written); their
    # splits are read from the saved model (rev43t)
    types = list(booster.feature_types or [])
    rounded = frozenset(j for j, t in enumerate(types) if t not in ("float", "q", "c"))
    trees = []
    for i, d in enumerate(dumps):
        col = (i // npt) % n_out if n_out > 1 else 0
        trees.append(_xgb_tree(json.loads(d), index, n_out, col,
                               functools.partial(saved_tree, i), rounded))

    def raw(x: np.ndarray) -> np.ndarray:
        dm = xgboost.DMatrix(x, feature_names=names, missing=missing)
        return np.asarray(booster.predict(dm, output_margin=True, validate_features=False))

    ens = TreeEnsemble(trees, np.zeros(n_out), n_features, n_out, link, "XGBoost model",
                       "margin", model_raw=raw, missing_value=missing,
                       hard_classes=objective == "binary:hinge")
    _fit_offset(ens, n_features)
    return ens


def _xgb_tree(root: dict[str, Any], index: dict[str, int], n_out: int, col: int,
              saved: Callable[[], dict[str, Any]] | None = None,
              rounded: frozenset[int] = frozenset()) -> Tree:
    """One tree from its JSON dump; ``saved`` gives the tree's arrays in the saved model
    (``save_raw``), read for splits the dump writes without a threshold: those on an indicator
    feature (feature type ``"i"``, e.g. a bool column of a DataFrame), dumped as ``"split"``,
    ``"yes"`` (the non-default child) and ``"no"`` (the default child) only. They were refused
    as categorical splits (aud43t), though they are ordinary ``x < split_condition`` splits.
    Splits on the features in ``rounded`` (feature type ``"int"``) are read there too: their
    dump writes the threshold rounded up to an integer (``x < -0.15`` dumped as ``x < 0``),
    which was silently wrong for non-integer inputs (rev43t)."""
    nodes: dict[int, dict[str, Any]] = {}
    stack = [root]
    while stack:
        nd = stack.pop()
        nodes[int(nd["nodeid"])] = nd
        stack.extend(nd.get("children", []))
    n = max(nodes) + 1
    left = -np.ones(n, dtype=np.int64)
    right = -np.ones(n, dtype=np.int64)
    feature = -np.ones(n, dtype=np.int64)
    thr = np.zeros(n)
    mleft = np.zeros(n, dtype=bool)
    cover = np.zeros(n)
    value = np.zeros((n, n_out))
    for i, nd in nodes.items():
        cover[i] = float(nd.get("cover", 0.0))
        if "leaf" in nd:
            value[i, col] = float(nd["leaf"])
            continue
        indicator = "split_condition" not in nd
        tree_arrays = saved() if indicator and saved is not None else None
        if isinstance(nd.get("split_condition"), list) or (indicator and (
                tree_arrays is None or int(tree_arrays["split_type"][i]) != 0)):
            raise UnsupportedModelError("tree_shap: XGBoost categorical splits are not supported; one-hot "
                                    "encode the column, or use method='exact_shapley' / 'kernel_shap' "
                                    "on the model.")
        s = nd["split"]
        if isinstance(s, str) and s in index:
            f = index[s]
        elif isinstance(s, str) and s.startswith("f") and s[1:].isdigit():
            f = int(s[1:])
        else:
            f = int(s)
        feature[i] = f
        if tree_arrays is None and f in rounded and saved is not None:
            tree_arrays = saved()
            if int(tree_arrays["split_indices"][i]) != f or int(tree_arrays["split_type"][i]) != 0:
                raise UnsupportedModelError(
                    f"tree_shap: XGBoost split {i} on feature {s!r} does not match the saved model; "
                    "use method='exact_shapley' / 'kernel_shap' on the model.")
        if tree_arrays is not None:  # the saved model's split: x < split_condition goes left
            thr[i] = float(tree_arrays["split_conditions"][i])
            left[i] = int(tree_arrays["left_children"][i])
            right[i] = int(tree_arrays["right_children"][i])
            mleft[i] = bool(int(tree_arrays["default_left"][i]))
            continue
        thr[i] = float(nd["split_condition"])
        left[i] = int(nd["yes"])
        right[i] = int(nd["no"])
        mleft[i] = int(nd["missing"]) == int(nd["yes"])
    return Tree(left, right, feature, thr, mleft, cover, value, strict=True, float32=True,
                threshold32=True)


# --------------------------------------------------------------------------- LightGBM
def _parse_lightgbm(est: Any) -> TreeEnsemble:
    import lightgbm

    booster = getattr(est, "booster_", None) if not isinstance(est, lightgbm.Booster) else est
    if booster is None:
        try:
            booster = est.booster_
        except Exception as exc:
            raise _not_fitted(est) from exc
    dump = booster.dump_model()
    obj = str(dump.get("objective", "regression")).split(" ")[0]
    if "sqrt" in str(dump.get("objective", "")).split(" ")[1:]:
        # (refused before by the game check, blaming early stopping / random forests; aud52r)
        raise UnsupportedModelError(
            "tree_shap: this LightGBM model was fitted with reg_sqrt=True: it predicts "
            "sign(s) * s^2 of its trees' sum s, which is not additive over its trees. Use a "
            "model-agnostic method such as method='exact_shapley' or 'kernel_shap' (or refit "
            "without reg_sqrt).")
    n_class = int(dump.get("num_class", 1))
    n_out = n_class if n_class > 1 else 1
    if obj in ("binary", "cross_entropy", "xentropy", "multiclassova"):
        link = "logistic"  # (one-vs-all: a sigmoid per class, not a softmax over them)
    elif obj in ("multiclass", "softmax"):
        link = "softmax"
    elif obj in ("regression", "regression_l2", "regression_l1", "huber", "fair", "quantile",
                 "mape", "l1", "l2", "lambdarank", "rank_xendcg"):
        link = "identity"
    elif obj in ("poisson", "gamma", "tweedie"):
        link = "exp"
    else:
        raise UnsupportedModelError(
            f"tree_shap: LightGBM objective {obj!r} (a custom objective?) has no known link. "
            "Use method='shapley'."
        )
    n_features = int(dump.get("max_feature_idx", -1)) + 1
    per_iter = int(dump.get("num_tree_per_iteration", n_out))
    trees = [_lgb_tree(t["tree_structure"], n_out, (i % per_iter) if n_out > 1 else 0)
             for i, t in enumerate(dump["tree_info"])]
    # boosting_type="rf" predicts the average of its trees (its raw score is their sum)
    scale = 1.0 / max(1, len(trees) // max(per_iter, 1)) if dump.get("average_output") else 1.0
    for t in trees:
        t.value *= scale

    def raw(x: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(x, raw_score=True)) * scale

    ens = TreeEnsemble(trees, np.zeros(n_out), n_features, n_out, link, "LightGBM model", "margin",
                       model_raw=raw)
    if obj in ("binary", "multiclassova"):  # p = sigmoid(sigmoid_param * margin)
        ens.logit_scale = _lgb_sigmoid(str(dump.get("objective", "")))
    _fit_offset(ens, n_features)
    return ens


def _lgb_sigmoid(objective: str) -> float:
    """LightGBM's ``sigmoid`` parameter from its objective string (``"binary sigmoid:2"``)."""
    for part in objective.split(" ")[1:]:
        if part.startswith("sigmoid:"):
            try:
                return float(part.split(":", 1)[1])
            except ValueError:
                break
    return 1.0


def _lgb_tree(root: dict[str, Any], n_out: int, col: int) -> Tree:
    rows: list[dict[str, Any]] = []
    left_l: list[int] = []
    right_l: list[int] = []

    def visit(nd: dict[str, Any]) -> int:
        i = len(rows)
        rows.append(nd)
        left_l.append(-1)
        right_l.append(-1)
        if "split_index" in nd:
            left_l[i] = visit(nd["left_child"])
            right_l[i] = visit(nd["right_child"])
        return i

    visit(root)
    n = len(rows)
    feature = -np.ones(n, dtype=np.int64)
    thr = np.zeros(n)
    mleft = np.zeros(n, dtype=bool)
    zero_m = np.zeros(n, dtype=bool)
    nan0 = np.zeros(n, dtype=bool)
    cover = np.zeros(n)
    value = np.zeros((n, n_out))
    for i, nd in enumerate(rows):
        if "split_index" not in nd:
            if "leaf_coeff" in nd or "leaf_const" in nd:
                # (refused before only by the reading check, as "this model feature")
                raise UnsupportedModelError(
                    "tree_shap: LightGBM linear_tree=True models have a linear model in each "
                    "leaf, which tree_shap does not read; refit with linear_tree=False, or use "
                    "a model-agnostic method such as method='exact_shapley' or 'kernel_shap'.")
            value[i, col] = float(nd.get("leaf_value", 0.0))
            cover[i] = float(nd.get("leaf_count", 0.0))
            continue
        if nd.get("decision_type", "<=") != "<=":
            raise UnsupportedModelError("tree_shap: LightGBM categorical splits are not supported; one-hot "
                                    "encode the column, or use method='exact_shapley' / 'kernel_shap' "
                                    "on the model.")
        feature[i] = int(nd["split_feature"])
        thr[i] = float(nd["threshold"])
        mleft[i] = bool(nd.get("default_left", True))
        cover[i] = float(nd.get("internal_count", 0.0))
        mt = nd.get("missing_type", "None")
        zero_m[i] = mt == "Zero"
        nan0[i] = mt in ("None", "Zero")
    return Tree(np.asarray(left_l), np.asarray(right_l), feature, thr, mleft, cover, value,
                zero_as_missing=zero_m, nan_as_zero=nan0, zero_below=_LGB_ZERO)


#: LightGBM's ``kZeroThreshold`` (``1e-35f``): its dense-row reader keeps a value only when
#: ``|x| > kZeroThreshold`` and reads the others as 0, so ``x = -1.0000000180025095e-35`` goes
#: where 0 goes at its split ``x <= -1.0000000180025095e-35`` (audit aud52r: read as it is,
#: interventional credits were 0.15 off enumeration through ``predict``).
_LGB_ZERO = float(np.float32(1e-35))


# --------------------------------------------------------------------------- CatBoost
def _parse_catboost(est: Any) -> TreeEnsemble:
    """CatBoost's symmetric (oblivious) trees: every node of a level splits on the same
    ``feature > border`` (bit 1 = right); the leaf index takes level ``i``'s bit as bit ``i``.
    Float features only (categorical/text features use CTR statistics, not read here)."""
    import os
    import tempfile

    if not est.is_fitted():
        raise _not_fitted(est)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.json")
        est.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            dump = json.load(fh)
    info = dump.get("features_info", {})
    if set(info) - {"float_features"}:
        raise UnsupportedModelError(
            "tree_shap: this CatBoost model uses categorical/text/embedding features "
            f"({sorted(set(info) - {'float_features'})}); their CTR statistics are not read. "
            "Use method='shapley'."
        )
    floats = info.get("float_features", [])
    nan_right = {int(f["flat_feature_index"]): f.get("nan_value_treatment") == "AsTrue"
                 for f in floats}
    n_features = max([int(f["flat_feature_index"]) for f in floats], default=-1) + 1
    params = dump.get("model_info", {}).get("params", {})
    loss = str(params.get("loss_function", {}).get("type", ""))
    if loss in ("Logloss", "CrossEntropy", "MultiClassOneVsAll"):
        link = "logistic"  # (one-vs-all: a sigmoid per class, not a softmax over them)
    elif loss == "MultiClass":
        link = "softmax"
    elif loss in ("RMSE", "MAE", "Quantile", "MAPE", "Huber", "Expectile", "LogLinQuantile",
                  "Lq", "RMSEWithUncertainty", "MultiRMSE", "", *_CAT_RANKING):
        link = "identity"
    elif loss in ("Poisson", "Tweedie"):
        link = "exp"
    else:
        raise UnsupportedModelError(
            f"tree_shap: CatBoost loss {loss!r} has no known link; use method='shapley'.")
    scale, bias = dump.get("scale_and_bias", [1.0, [0.0]])
    bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    trees_json = dump.get("oblivious_trees", [])
    if trees_json:
        n_out = max(1, len(trees_json[0]["leaf_values"])
                    // max(1, len(trees_json[0]["leaf_weights"])))
        trees = [_cat_tree(t, n_out, float(scale), nan_right) for t in trees_json]
    elif dump.get("trees"):
        # grow_policy="Depthwise" / "Lossguide": nested, non-symmetric trees (they crashed
        # with a bare IndexError, or were refused as unreadable, before)
        n_out = max(1, bias.size, _cat_leaf_width(dump["trees"][0]))
        trees = [_cat_nested_tree(t, n_out, float(scale), nan_right) for t in dump["trees"]]
    else:
        n_out, trees = max(1, bias.size), []
    offset = bias if bias.size == n_out else np.full(n_out, float(bias[0]))

    ranker = type(est).__name__ == "CatBoostRanker"

    def raw(x: np.ndarray) -> np.ndarray:
        if ranker:  # CatBoostRanker.predict gives the raw score and takes no prediction_type
            return np.asarray(est.predict(x, thread_count=1))
        return np.asarray(est.predict(x, prediction_type="RawFormulaVal", thread_count=1))

    kind = type(est).__name__
    return TreeEnsemble(trees, offset, n_features, n_out, link, f"CatBoost {kind}", "margin",
                        model_raw=raw)


#: CatBoost ranking losses: the raw score is the ranking score (identity), what
#: ``CatBoostRanker.predict`` returns; they were refused as having "no known link" (aud52r).
_CAT_RANKING = ("YetiRank", "YetiRankPairwise", "PairLogit", "PairLogitPairwise", "QueryRMSE",
                "QuerySoftMax", "StochasticRank", "LambdaMart")


def _cat_leaf_width(node: dict[str, Any]) -> int:
    """Outputs per leaf of a nested CatBoost tree (its first leaf's value length)."""
    while "split" in node:
        node = node["left"]
    return int(np.size(node.get("value", 0.0)))


def _cat_nested_tree(root: dict[str, Any], n_out: int, scale: float,
                     nan_right: dict[int, bool]) -> Tree:
    """A non-symmetric CatBoost tree (``"trees"`` of the JSON dump): each split sends
    ``feature > border`` right, as in the symmetric trees; leaves hold ``value`` and ``weight``
    (the cover)."""
    rows: list[dict[str, Any]] = []
    kids: list[list[int]] = []

    def visit(nd: dict[str, Any]) -> int:
        i = len(rows)
        rows.append(nd)
        kids.append([-1, -1])
        if "split" in nd:
            kids[i] = [visit(nd["left"]), visit(nd["right"])]
        return i

    visit(root)
    n = len(rows)
    left = np.array([k[0] for k in kids], dtype=np.int64)
    right = np.array([k[1] for k in kids], dtype=np.int64)
    feature, threshold, missing_left, cover, value = _blank_nodes(n, n_out)
    for i, nd in enumerate(rows):
        sp = nd.get("split")
        if sp is None:
            v = np.atleast_1d(np.asarray(nd.get("value", 0.0), dtype=np.float64)) * scale
            if v.size != n_out:
                raise UnsupportedModelError(
                    f"tree_shap: a CatBoost leaf holds {v.size} values, not {n_out}; this model "
                    "is not supported. Use method='exact_shapley' or 'kernel_shap'.")
            value[i] = v
            cover[i] = float(nd.get("weight", 0.0))
            continue
        if sp.get("split_type", "FloatFeature") != "FloatFeature":
            raise UnsupportedModelError("tree_shap: CatBoost one-hot/CTR splits are not "
                                        "supported; use method='shapley'.")
        f = int(sp["float_feature_index"])
        feature[i] = f
        threshold[i] = float(sp["border"])
        missing_left[i] = not nan_right.get(f, False)
    for i in range(n - 1, -1, -1):  # children come after their parent
        if left[i] >= 0:
            cover[i] = cover[left[i]] + cover[right[i]]
    return Tree(left, right, feature, threshold, missing_left, cover, value,
                float32=True, threshold32=True)


def _blank_nodes(n: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of ``n`` nodes before they are read: feature -1 (a leaf), threshold 0, missing
    values to the left, cover 0 and ``n x n_out`` values 0."""
    return (-np.ones(n, dtype=np.int64), np.zeros(n), np.ones(n, dtype=bool), np.zeros(n),
            np.zeros((n, n_out)))


def _cat_tree(t: dict[str, Any], n_out: int, scale: float, nan_right: dict[int, bool]) -> Tree:
    splits = t.get("splits", [])
    if any(sp.get("split_type", "FloatFeature") != "FloatFeature" for sp in splits):
        raise UnsupportedModelError("tree_shap: CatBoost one-hot/CTR splits are not supported; "
                                    "use method='shapley'.")
    depth = len(splits)
    n_leaves = 2**depth
    weights = np.asarray(t.get("leaf_weights", [1.0] * n_leaves), dtype=np.float64)
    values = np.asarray(t["leaf_values"], dtype=np.float64).reshape(n_leaves, n_out) * scale
    n_nodes = 2 * n_leaves - 1
    left = -np.ones(n_nodes, dtype=np.int64)
    right = -np.ones(n_nodes, dtype=np.int64)
    feature, threshold, missing_left, cover, value = _blank_nodes(n_nodes, n_out)
    # breadth-first ids: level l holds nodes 2^l - 1 .. 2^(l+1) - 2; position p's path bits
    # are p's binary digits, most significant first (level 0's bit is the leaf index's bit 0)
    for lvl, sp in enumerate(splits):
        first = 2**lvl - 1
        f = int(sp["float_feature_index"])
        for p in range(2**lvl):
            node = first + p
            left[node] = 2 * node + 1
            right[node] = 2 * node + 2
            feature[node] = f
            threshold[node] = float(sp["border"])
            missing_left[node] = not nan_right.get(f, False)
    first_leaf = n_leaves - 1
    for p in range(n_leaves):
        leaf_index = sum(((p >> (depth - 1 - lvl)) & 1) << lvl for lvl in range(depth))
        node = first_leaf + p
        value[node] = values[leaf_index]
        cover[node] = weights[leaf_index]
    for node in range(first_leaf - 1, -1, -1):
        cover[node] = cover[left[node]] + cover[right[node]]
    return Tree(left, right, feature, threshold, missing_left, cover, value,
                float32=True, threshold32=True)

