"""Rashomon feature interaction scores: pairwise interactions across near-equally good models.

Many models fit the data about equally well (the *Rashomon set*, Breiman 2001; Semenova, Rudin
& Parr 2022), and they can explain it differently. Dong & Rudin (2020) map the *cloud of
variable importance* over that set; Li, Wang, Deng & Barnard (2024) do the same for feature
*interactions*. This module follows the latter:

* **Rashomon set.** ``n_candidates`` models are trained by a sampler (a user ``fit`` with seeds
  and hyperparameter ``configs``, or the built-in ``"mlp"`` / ``"tree"`` / ``"forest"``); the
  set keeps those whose loss on the evaluation data is within ``epsilon`` of the best candidate
  (``L(f) <= L* + epsilon``, or with ``relative=True`` ``L(f) <= L* + epsilon |L*|``, i.e.
  ``(1 + epsilon) L*`` for a non-negative loss); the others are reported as rejected.
* **Model reliance** of a set of features ``S`` (Fisher, Rudin & Dominici 2019): the loss
  increase when the columns of ``S`` are permuted, ``phi_S(f) = E L(f(X_pi(S)), y) -
  E L(f(X), y)``, averaged over ``n_repeats`` permutations. The same permutation of a column is
  used for its main effect and for every pair it belongs to (common random numbers), so the
  difference below carries no extra permutation noise.
* **Feature interaction score** (FIS) of a pair: ``FIS_ij(f) = phi_ij(f) - phi_i(f) -
  phi_j(f)`` — zero when the pair's effects on the loss add up (e.g. ``y = x_i + x_j``),
  non-zero when the pair acts jointly (``y = x_i x_j``: removing either feature already
  destroys the joint term, so the joint reliance is *less* than the sum and FIS < 0).
* **The cloud** (FISC): FIS of every pair on every model of the set, with its range
  (min / max per pair), a **swarm plot** (each pair's scores across models) and a **halo plot**
  (per pair, the joint reliance ``phi_ij`` against the sum of the main effects ``phi_i +
  phi_j``, one point per model: the diagonal is "no interaction").

References: Li, Wang, Deng & Barnard (2024), "Exploring the cloud of feature interaction scores
in a Rashomon set" (ICLR); Dong & Rudin (2020), "Exploring the cloud of variable importance for
the set of all good models" (Nature Machine Intelligence); Fisher, Rudin & Dominici (2019),
"All Models are Wrong, but Many are Useful".

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> def data(n):
...     X = rng.normal(size=(n, 3))
...     return X, X[:, 0] * X[:, 1] + X[:, 2]  # a planted interaction of x0 and x1
>>> (X, y), (X_val, y_val) = data(400), data(300)
>>> r = rashomon_interactions(X, y, fit="forest", n_candidates=4, epsilon=0.2,
...                           X_eval=X_val, y_eval=y_val, seed=0)
>>> int(r.accepted.sum()), r.top_pair_fraction((0, 1))  # models in the set; share ranking (x0, x1) first
(2, 1.0)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .analyses import register_analysis

__all__ = ["RashomonResult", "fit_mlp", "fit_tree", "rashomon_interactions"]

#: Default hyperparameter configurations the built-in samplers cycle through.
DEFAULT_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "mlp": [{"hidden": 16}, {"hidden": 32}, {"hidden": 64}],
    "tree": [{"max_depth": 6}, {"max_depth": 8}, {"max_depth": 10}, {"max_depth": None}],
    "forest": [{"max_depth": 6, "n_estimators": 30}, {"max_depth": 10, "n_estimators": 30},
               {"max_depth": None, "n_estimators": 30}],
}


@dataclass(frozen=True)
class RashomonResult:
    """Feature interaction scores over a Rashomon set (a cloud of FIS).

    Attributes:
        pairs: the feature pairs ``(i, j)`` scored (``pairs``).
        fis: ``models x pairs`` interaction scores ``phi_ij - phi_i - phi_j``.
        joint: ``models x pairs`` joint reliance ``phi_ij``.
        main: ``models x features`` main effects (model reliance ``phi_i``); NaN for a feature
            in none of the scored ``pairs`` (not computed).
        losses: loss of each model of the set (``models``).
        candidate_losses: loss of every candidate trained (``candidates``).
        accepted: which candidates are in the set (``candidates`` booleans).
        threshold: the loss bound of the set (``L* + epsilon`` or ``L* + epsilon |L*|``).
        best_loss: ``L*``, the best candidate's loss.
        epsilon: the tolerance given.
        configs: hyperparameters of the models of the set (seed included).
        feature_names: one name per feature.
        loss: the loss used (its name).
    """

    pairs: list[tuple[int, int]]
    fis: np.ndarray
    joint: np.ndarray
    main: np.ndarray
    losses: np.ndarray
    candidate_losses: np.ndarray
    accepted: np.ndarray
    threshold: float
    best_loss: float
    epsilon: float
    configs: list[dict[str, Any]]
    feature_names: list[str]
    loss: str = "mse"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_models(self) -> int:
        return int(self.fis.shape[0])

    def pair_names(self) -> list[str]:
        return [f"{self.feature_names[i]} x {self.feature_names[j]}" for i, j in self.pairs]

    def _col(self, pair: tuple[int, int]) -> int:
        a, b = sorted((int(pair[0]), int(pair[1])))
        if (a, b) not in self.pairs:
            raise InputError(f"pair {pair} was not scored; scored pairs: {self.pairs}.")
        return self.pairs.index((a, b))

    def range(self) -> dict[tuple[int, int], tuple[float, float]]:
        """Pair -> (min, max) of its FIS over the Rashomon set."""
        return {p: (float(self.fis[:, k].min()), float(self.fis[:, k].max()))
                for k, p in enumerate(self.pairs)}

    def top_pairs(self) -> list[tuple[int, int]]:
        """Per model, the pair with the largest ``|FIS|``."""
        return [self.pairs[int(k)] for k in np.abs(self.fis).argmax(1)]

    def top_pair_fraction(self, pair: tuple[int, int]) -> float:
        """Fraction of the set's models whose strongest interaction (``|FIS|``) is ``pair``."""
        col = self._col(pair)
        return float(np.mean(np.abs(self.fis).argmax(1) == col))

    def plot(self, kind: str = "swarm", **kwargs: Any) -> Any:
        """Draw the cloud: ``kind="swarm"`` (FIS per pair across models) or ``"halo"`` (joint
        vs summed main effects per pair); see :func:`tribute.viz.rashomon_swarm` /
        :func:`tribute.viz.rashomon_halo`."""
        from ..viz import rashomon_halo, rashomon_swarm  # viz sits above methods: lazy

        if kind == "swarm":
            return rashomon_swarm(self, **kwargs)
        if kind == "halo":
            return rashomon_halo(self, **kwargs)
        raise InputError(f"RashomonResult.plot: kind={kind!r} must be 'swarm' or 'halo'.")


# ----------------------------------------------------------------------------- samplers
def _seed_below(seed: int, limit: int) -> int:
    """``seed`` itself below ``limit`` (scikit-learn's ``random_state`` takes ``< 2**32``, torch's
    generator ``< 2**64``); a seed at or past it is hashed into range by numpy's ``SeedSequence``.

    Candidate ``k`` gets ``seed + k``, which passed 2**32 for a forest from seed ``2**32 - 3`` and
    2**64 for an MLP from ``2**64 - 1``: the fit failed after the earlier candidates were trained
    (rev48r). Hashing, not a modulo, keeps such a seed's candidates off the small seeds' (``seed +
    k mod 2**32`` would give seed ``2**32`` the models of seed 0). Negative seeds pass unchanged.
    """
    s = int(seed)
    if s < limit:
        return s
    dtype = np.uint32 if limit <= 2**32 else np.uint64
    return int(np.random.SeedSequence(s).generate_state(1, dtype)[0]) % limit


def fit_mlp(X: np.ndarray, y: np.ndarray, *, seed: int, hidden: int = 32, steps: int = 300,
            lr: float = 0.02, n_classes: int | None = None) -> Any:
    """A one-hidden-layer tanh MLP trained full-batch with Adam from a seeded initialisation.

    Regression (``n_classes=None``: one output, squared error) or classification (``n_classes``
    logits, cross-entropy). Deterministic for a seed (float64, CPU). Trains with gradients on
    even inside the caller's ``torch.no_grad()`` / ``torch.inference_mode()`` (under either,
    torch's "does not require grad" / "cannot be saved for backward" came out before).
    """
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        return _fit_mlp(X, y, seed=seed, hidden=hidden, steps=steps, lr=lr, n_classes=n_classes)


def _fit_mlp(X: np.ndarray, y: np.ndarray, *, seed: int, hidden: int, steps: int, lr: float,
             n_classes: int | None) -> Any:
    import torch

    g = torch.Generator().manual_seed(_seed_below(seed, 2**64))
    Xt = torch.as_tensor(X, dtype=torch.float64)
    d = int(Xt.shape[1])
    out = 1 if n_classes is None else int(n_classes)
    model = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(),
                                torch.nn.Linear(hidden, out)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / max(p.shape[-1], 1) ** 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if n_classes is None:
        yt = torch.as_tensor(y, dtype=torch.float64).reshape(-1)

        def loss_fn() -> torch.Tensor:
            out: torch.Tensor = ((model(Xt)[:, 0] - yt) ** 2).mean()
            return out
    else:
        yl = torch.as_tensor(y).long().reshape(-1)

        def loss_fn() -> torch.Tensor:
            return torch.nn.functional.cross_entropy(model(Xt), yl)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()  # type: ignore[no-untyped-call]
        opt.step()
    model.eval()
    return model


def fit_tree(X: np.ndarray, y: np.ndarray, *, seed: int, forest: bool = False,
             classification: bool = False, **params: Any) -> Any:
    """A scikit-learn decision tree (or random forest) with ``random_state=seed`` (a seed past
    scikit-learn's ``2**32 - 1`` is hashed into range)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    cls: Any = ((RandomForestClassifier if classification else RandomForestRegressor) if forest
                else (DecisionTreeClassifier if classification else DecisionTreeRegressor))
    if not forest:
        params = {"max_features": None, **params}
    return cls(random_state=_seed_below(seed, 2**32), **params).fit(X, y)


def _sampler(fit: Any, classification: bool, n_classes: int) -> tuple[Callable[..., Any], str]:
    if callable(fit):
        return fit, getattr(fit, "__name__", type(fit).__name__)
    if fit == "mlp":
        def mlp(X: np.ndarray, y: np.ndarray, *, seed: int, **cfg: Any) -> Any:
            return fit_mlp(X, y, seed=seed, n_classes=n_classes if classification else None, **cfg)
        return mlp, "mlp"
    if fit in ("tree", "forest"):
        def tree(X: np.ndarray, y: np.ndarray, *, seed: int, **cfg: Any) -> Any:
            return fit_tree(X, y, seed=seed, forest=fit == "forest", classification=classification, **cfg)
        return tree, str(fit)
    raise InputError(f"rashomon_interactions: fit={fit!r} must be 'mlp', 'tree', 'forest' or a "
                     "callable fit(X, y, *, seed, **config) -> model.")


# ----------------------------------------------------------------------------- predictions
def _predict(model: Any, X: np.ndarray, classification: bool) -> np.ndarray:
    """Regression: predictions ``n``; classification: log-probabilities ``n x C``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(model, torch.nn.Module):
        from ._eval_mode import eval_mode

        p = next(model.parameters(), None)
        dtype = p.dtype if p is not None else torch.float64
        with eval_mode(model), torch.no_grad():
            out = model(torch.as_tensor(X, dtype=dtype))
        if isinstance(out, (tuple, list)):
            out = out[0]
        o = out.detach().double()
        if classification:
            lp: np.ndarray = torch.log_softmax(o.reshape(o.shape[0], -1), 1).numpy()
            return lp
        flat: np.ndarray = o.reshape(o.shape[0], -1)[:, 0].numpy()
        return flat
    if classification:
        if hasattr(model, "predict_proba"):
            pr = np.asarray(model.predict_proba(X), dtype=np.float64)
            classes = getattr(model, "classes_", None)
            if classes is not None:
                # predict_proba's columns follow classes_ (labels such as 0, 2, 3): put each in
                # the column of its label, so that the loss reads p(label); unseen labels get 0
                lab = np.asarray(classes)
                if lab.dtype.kind not in "iubf" or lab.shape != (pr.shape[1],) or (lab < 0).any() \
                        or not np.array_equal(lab, np.round(lab)):
                    raise InputError(f"rashomon_interactions: the classifier's classes_ {lab.tolist()[:20]} "
                                     "must be non-negative integer labels, one per predict_proba column.")
                if not np.array_equal(lab, np.arange(pr.shape[1])):
                    full = np.zeros((pr.shape[0], int(lab.max()) + 1))
                    full[:, lab.astype(np.int64)] = pr
                    pr = full
            return np.log(np.clip(pr, 1e-12, None))
        if not callable(model):
            raise InputError(f"rashomon_interactions: a classifier needs predict_proba or logits; "
                             f"got {type(model).__name__}.")
        z = np.asarray(model(X), dtype=np.float64)
        z = z - z.max(1, keepdims=True)
        logp: np.ndarray = z - np.log(np.exp(z).sum(1, keepdims=True))
        return logp
    if hasattr(model, "predict"):
        return np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)[:, 0]
    if callable(model):
        return np.asarray(model(X), dtype=np.float64).reshape(len(X), -1)[:, 0]
    raise InputError(f"rashomon_interactions: fit returned {type(model).__name__}, which has no "
                     "predict and is not callable.")


def _losses(pred: np.ndarray, y: np.ndarray, loss: str | Callable[..., Any],
            classification: bool) -> np.ndarray:
    if callable(loss):
        out = np.asarray(loss(pred, y), dtype=np.float64).reshape(-1)
        if out.shape != (len(y),):
            # a loss returning its mean (sklearn's mean_squared_error) crashed later with "cannot
            # reshape array of size 1 into shape (6, 100)"
            raise InputError(f"rashomon_interactions: loss(pred, y) returned {out.size} value(s) for {len(y)} "
                             "examples; it must return one loss per example (e.g. (pred - y) ** 2, not its mean).")
        return out
    if loss == "mse":
        sq: np.ndarray = (pred - y) ** 2
        return sq
    lab = y.astype(np.int64)
    if pred.shape[1] <= int(lab.max()):
        raise InputError(f"rashomon_interactions: the model gives {pred.shape[1]} class scores but "
                         f"y has label {int(lab.max())}.")
    return -pred[np.arange(len(lab)), lab]


def _check_xy(X: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    Xa = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X, dtype=np.float64)
    ya = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if Xa.ndim != 2 or Xa.shape[0] < 2:
        raise InputError(f"rashomon_interactions: {what}X must be samples x features (2-D, >= 2 "
                         f"rows); got shape {Xa.shape}.")
    if ya.shape != (Xa.shape[0],):
        raise InputError(f"rashomon_interactions: {what}y has shape {ya.shape}; give one target per "
                         f"row of {what}X ({Xa.shape[0]},).")
    if not np.all(np.isfinite(Xa)):
        raise InputError(f"rashomon_interactions: {what}X contains NaN or inf.")
    return Xa, ya


@register_analysis("rashomon_interactions", kind="model_set",
                   paper="Li, Wang, Deng & Barnard (2024), Exploring the cloud of feature "
                         "interaction scores in a Rashomon set (ICLR)")
def rashomon_interactions(
    X: Any,
    y: Any,
    fit: str | Callable[..., Any] = "forest",
    *,
    configs: Sequence[Mapping[str, Any]] | None = None,
    n_candidates: int = 20,
    epsilon: float = 0.05,
    relative: bool = False,
    loss: str | Callable[..., Any] | None = None,
    X_eval: Any = None,
    y_eval: Any = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    n_repeats: int = 10,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
) -> RashomonResult:
    """Pairwise feature interaction scores (FIS) over a Rashomon set of near-equally good models.

    Trains ``n_candidates`` models (seeds ``seed, seed+1, ...``, hyperparameters cycling through
    ``configs``), keeps those whose loss on ``(X_eval, y_eval)`` is within ``epsilon`` of the
    best, and scores every pair on each kept model by permutation model reliance (module
    docstring).

    Args:
        X: training inputs ``samples x features``.
        y: targets (regression) or integer class labels ``samples``.
        fit: ``"forest"``, ``"tree"``, ``"mlp"`` or ``fit(X, y, *, seed, **config) -> model``
            (a torch module, a scikit-learn estimator, or a callable). default="forest".
        configs: hyperparameter dicts passed to ``fit`` in turn. default=None (the sampler's
            :data:`DEFAULT_CONFIGS`; ``[{}]`` for a user fit).
        n_candidates: models trained. default=20.
        epsilon: tolerance of the set (loss units; a fraction with ``relative``). default=0.05.
        relative: accept ``L <= L* + epsilon |L*|`` (``(1 + epsilon) L*`` for a non-negative loss)
            instead of ``L <= L* + epsilon``. default=False.
        loss: ``"mse"``, ``"cross_entropy"`` (log-probabilities from ``predict_proba``, or logits
            from a torch module / callable) or ``loss(pred, y) -> per-example``. default=None
            (cross-entropy for integer ``y``, else squared error).
        X_eval, y_eval: data the losses and reliances are measured on. default=None (X, y).
        pairs: feature pairs to score. default=None (all pairs; at most 40 features).
        n_repeats: permutations averaged per reliance. default=10.
        feature_names: one name per feature. default=None (``x0, x1, ...``).
        seed: seeds the candidates and the permutations. default=0.

    Returns:
        :class:`RashomonResult` (``.range()``, ``.top_pair_fraction(pair)``, ``.plot(kind=...)``).
    """
    Xa, ya = _check_xy(X, y, "")
    if (X_eval is None) != (y_eval is None):
        raise InputError("rashomon_interactions: pass X_eval and y_eval together (or neither).")
    Xe, ye = (Xa, ya) if X_eval is None else _check_xy(X_eval, y_eval, "eval ")
    if Xe.shape[1] != Xa.shape[1]:
        raise InputError(f"rashomon_interactions: X_eval has {Xe.shape[1]} features but X has "
                         f"{Xa.shape[1]}.")
    d = int(Xa.shape[1])
    if isinstance(n_candidates, (bool, np.bool_)) or not isinstance(n_candidates, (int, np.integer)) \
            or n_candidates < 1:
        raise InputError(f"rashomon_interactions: n_candidates={n_candidates!r} must be an int >= 1.")
    if isinstance(n_repeats, (bool, np.bool_)) or not isinstance(n_repeats, (int, np.integer)) or n_repeats < 1:
        raise InputError(f"rashomon_interactions: n_repeats={n_repeats!r} must be an int >= 1.")
    n_candidates, n_repeats = int(n_candidates), int(n_repeats)
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not epsilon >= 0:
        raise InputError(f"rashomon_interactions: epsilon={epsilon!r} must be a number >= 0.")
    integer_y = np.issubdtype(ya.dtype, np.integer) or ya.dtype == np.bool_
    loss_name = loss if loss is not None else ("cross_entropy" if integer_y else "mse")
    if not callable(loss_name) and loss_name not in ("mse", "cross_entropy"):
        raise InputError(f"rashomon_interactions: loss={loss!r} must be 'mse', 'cross_entropy' or "
                         "a callable loss(pred, y) -> per-example losses.")
    classification = loss_name == "cross_entropy"
    if classification and not integer_y:
        raise InputError("rashomon_interactions: loss='cross_entropy' needs integer class labels y.")
    if classification and (int(ya.min()) < 0 or int(ye.min()) < 0):
        # a label -1 would index the last score column (numpy), so every example of that class
        # read another class's probability without a word
        neg = int(min(ya.min(), ye.min()))
        raise InputError(f"rashomon_interactions: loss='cross_entropy' reads class label y as the column of "
                         f"the model's scores; y{'' if ya.min() < 0 else '_eval'} has the negative label {neg}. "
                         "Map the labels to 0..K-1 first (e.g. classes, y = np.unique(y, return_inverse=True)), "
                         "and fit the models on those labels.")
    n_classes = int(max(ya.max(), ye.max())) + 1 if classification else 0
    names = [f"x{i}" for i in range(d)] if feature_names is None else [str(s) for s in feature_names]
    if len(names) != d:
        raise InputError(f"rashomon_interactions: {len(names)} feature_names for {d} features.")
    if pairs is None:
        if d > 40:
            raise InputError(f"rashomon_interactions: {d} features make {d * (d - 1) // 2} pairs; "
                             "pass pairs=[(i, j), ...] to score the ones you need.")
        pair_list = list(itertools.combinations(range(d), 2))
    else:
        pair_list = []
        for p in pairs:
            i, j = (int(p[0]), int(p[1]))
            if i == j or not (0 <= i < d and 0 <= j < d):
                raise InputError(f"rashomon_interactions: pair {tuple(p)} must name two different "
                                 f"features in 0..{d - 1}.")
            if (min(i, j), max(i, j)) in pair_list:
                raise InputError(f"rashomon_interactions: pair {tuple(p)} is given twice (pairs are unordered); "
                                 "list each pair once.")
            pair_list.append((min(i, j), max(i, j)))
    sampler, sampler_name = _sampler(fit, classification, n_classes)
    cfgs = [dict(c) for c in (configs if configs is not None
                              else DEFAULT_CONFIGS.get(sampler_name, [{}]))] or [{}]
    # candidates
    models, cand_cfgs = [], []
    cand_loss = np.empty(n_candidates)
    for k in range(n_candidates):
        cfg = cfgs[k % len(cfgs)]
        try:
            model = sampler(Xa, ya, seed=seed + k, **cfg)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"rashomon_interactions: fit failed on candidate {k} (seed={seed + k}, "
                             f"config={cfg}): {type(exc).__name__}: {exc}") from exc
        cand_loss[k] = float(_losses(_predict(model, Xe, classification), ye, loss_name,
                                     classification).mean())
        models.append(model)
        cand_cfgs.append({**cfg, "seed": seed + k})
    if not np.all(np.isfinite(cand_loss)):
        bad = np.flatnonzero(~np.isfinite(cand_loss)).tolist()
        raise InputError(f"rashomon_interactions: candidates {bad} have a non-finite loss.")
    best = float(cand_loss.min())
    # relative: L* + epsilon |L*| (= (1 + epsilon) L* for a non-negative loss); (1 + epsilon) L* would
    # fall below L* for a negative custom loss and reject every candidate, the best one included
    threshold = best + epsilon * abs(best) if relative else best + epsilon
    accepted = cand_loss <= threshold + 1e-12 * max(1.0, abs(threshold))
    keep = np.flatnonzero(accepted)
    # shared permutations: one per (repeat, feature), used for mains and pairs alike
    rng = np.random.default_rng(seed + 7919)
    n_e = Xe.shape[0]
    perms = np.stack([np.stack([rng.permutation(n_e) for _ in range(d)]) for _ in range(n_repeats)])
    needed = sorted({i for p in pair_list for i in p})
    main = np.full((len(keep), d), np.nan)
    joint = np.empty((len(keep), len(pair_list)))
    for m_i, k in enumerate(keep.tolist()):
        model = models[k]
        base = float(cand_loss[k])
        sets: list[tuple[int, ...]] = [(i,) for i in needed] + list(pair_list)
        acc = np.zeros(len(sets))
        for r in range(n_repeats):
            blocks = []
            for s in sets:
                Xp = Xe.copy()
                for i in s:
                    Xp[:, i] = Xe[perms[r, i], i]
                blocks.append(Xp)
            pred = _predict(model, np.concatenate(blocks), classification)
            lv = _losses(pred, np.tile(ye, len(sets)), loss_name, classification)
            acc += lv.reshape(len(sets), n_e).mean(1)
        rel = acc / n_repeats - base
        for t, i in enumerate(needed):
            main[m_i, i] = rel[t]
        joint[m_i] = rel[len(needed):]
    fis = np.empty_like(joint)
    for q, (i, j) in enumerate(pair_list):
        fis[:, q] = joint[:, q] - main[:, i] - main[:, j]
    return RashomonResult(
        pairs=pair_list, fis=fis, joint=joint, main=main, losses=cand_loss[keep],
        candidate_losses=cand_loss, accepted=accepted, threshold=float(threshold), best_loss=best,
        epsilon=float(epsilon), configs=[cand_cfgs[k] for k in keep], feature_names=names,
        loss=loss_name if isinstance(loss_name, str) else getattr(loss_name, "__name__", "custom"),
        extra={"sampler": sampler_name, "n_repeats": n_repeats, "relative": relative})
