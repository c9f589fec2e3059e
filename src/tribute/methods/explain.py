"""Run one method on one game: the body of :func:`tribute.explain`.

It lives in the methods layer (it needs only games and the method registry), so metrics that
re-explain and the bench can use it without reaching up to the public API module.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..engine.memory import resolve_max_memory
from ..engine.progress import progress_scope
from ..errors import BudgetError, InputError, user_stacklevel
from ..games.build import PlayerSet, build_game, check_text_baseline, framework_of
from ..games.components import ComponentSet
from ..games.features import DEFAULT_BASELINE, UNREAD_BASELINE, FeatureGame
from ..games.sites import Ablation
from ..games.text import text_player_counts, text_subset
from ..models import NumpyModel, as_model
from ..params import check_seed, check_unique_names
from ..targets import Target, TargetLike, plain_target, warn_clipped
from .base import Method, check_budget_param, estimate_seconds, get_method, solve_seconds
from .text_split import group_rows, group_scope, merge_groups

__all__ = ["explain"]


def _malformed_budget(budget: Any) -> bool:
    """``budget`` is not a positive int (numpy integers count as ints; bools do not): what
    :meth:`Method.check` refuses by its value, whatever the game."""
    if isinstance(budget, numbers.Integral) and not isinstance(budget, bool):
        return int(budget) < 1
    return True


def _refuse_padded_texts(estimator: Method, game: Any, budget: Any) -> None:
    """Refuse texts of different player counts in one game for a method whose credits depend on
    the number of players (:meth:`Method.reads_player_count`). :func:`explain` splits such texts
    into groups of one player count before building a game (``tribute.methods.text_split``);
    this guard keeps a game that reaches the method another way from padding them silently.

    A batch of texts is one game padded to the longest text's players; a shorter text's padded
    players change nothing, which Shapley/Banzhaf values, leave-one-out and gradients ignore,
    but LIME's kernel, wide occlusion windows and joint Shapley values do not: "a dog barked"
    next to a 7-word text got LIME credits 20 standard errors from its own (aud36x), occlusion
    (window 3) credits 87% off.
    """
    counts = getattr(game, "players_per_text", None)
    per = list(counts()) if callable(counts) else []
    why = estimator.reads_player_count_at(budget) if len(set(per)) > 1 else None
    if why is not None:
        raise InputError(
            f"method {estimator.name!r} on texts of {sorted(set(per))} players in one call: "
            f"{why}; the texts of a call are padded to the longest one's {max(per)} players, "
            "so a shorter text's credits would depend on the other texts. Explain texts of one "
            "player count per call (e.g. group them by their number of words), or one at a time.")


def _exact_below_longest(estimator: Method, counts: list[int], budget: Any) -> bool:
    """Whether a text shorter than the longest would get exact values alone
    (:meth:`Method.exact_at`) where the padded game of the call samples them: permutation
    Shapley with budget=300 gave a 5-word text next to a 9-word one a sampled estimate (186
    rows, 0.0079 from its exact values), alone the exact values in 32 rows (aud50x; rev50x)."""
    if budget is not None and (not isinstance(budget, numbers.Integral) or isinstance(budget, bool)):
        return False  # refused by the method's own check
    k = None if budget is None else int(budget)
    return not estimator.exact_at(max(counts), k) and any(estimator.exact_at(n, k) for n in set(counts))


def _group_target(target: Any, batch: int, rows: np.ndarray) -> Any:
    """The target of the texts at ``rows``: one given per text (an array, a tensor, a Series, a
    nested list of rows) follows its texts; any other (an int, a list of classes for every
    text, ``"predicted"``, a callable) is the same setting for every group."""
    plain = plain_target(target)
    if not isinstance(plain, (np.ndarray, torch.Tensor)) or plain.ndim == 0:
        return target
    if plain.shape[0] != batch:
        raise InputError(
            f"target has shape {tuple(plain.shape)} but there are {batch} texts; pass one index "
            f"per text (shape ({batch},)), ({batch}, n_targets), an int, or a list of ints to "
            "explain the same classes for every text.")
    return plain[torch.as_tensor(rows)] if isinstance(plain, torch.Tensor) else plain[rows]


def explain(
    model: Any,
    inputs: Any,
    method: str = "kernel_shap",
    *,
    target: TargetLike = None,
    baseline: Any = DEFAULT_BASELINE,
    groups: Any = None,
    budget: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool | None = None,
    output: str = "raw",
    players: PlayerSet | str | Any = None,
    ablation: Any = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    model_output: str | None = None,
    max_memory: int | str | None = None,
    tokenizer: Any = None,
    removal: Any = None,
    pair: str | None = None,
    include_special: bool = False,
    max_length: int | None = None,
    **params: Any,
) -> Attribution:
    """Credit the model's output to players (input features by default).

    Args:
        model: a ``torch.nn.Module`` (one or several input tensors), or any callable on numpy
            arrays: scikit-learn estimators and Pipelines (regressors use ``predict``;
            classifiers ``predict_proba``, then ``decision_function``), XGBoost/LightGBM
            sklearn wrappers, an ``xgboost.Booster`` or ``lightgbm.Booster`` (margins), or a
            plain function.
            Estimators fitted on a DataFrame are called with one (their ``feature_names_in_``);
            DataFrame inputs must have the columns the model was fitted on, in that order
            (``feature_names_in_``, or a Booster's feature names), else they are refused.
        inputs: tensor or array with the batch first, or a tuple of them, or a pandas
            DataFrame (numeric columns, or any columns the model reads, e.g. a Pipeline's
            encoders; players are then named after the columns and ``attr.to_pandas()`` keeps
            its index). Results come back in the same framework
            (torch in, torch out; numpy or pandas in, numpy out).
        method: registry name (see :func:`methods`). default="kernel_shap".
        target: ``None`` (regression output / predicted class), ``"predicted"``, an int, a
            list of ints (several targets, adds a target axis), one index per sample (1-D array),
            ``batch x targets`` indices, or a callable ``output -> rows``. default=None.
            A model returning raw values with several outputs (a multi-output regressor) has
            no predicted class: pass the output's index there. Indices are classes for every classifier tribute knows to be binary, also when it
            returns one column (a 1-D ``decision_function`` of ``SVC``/``LinearSVC``/
            ``RidgeClassifier``, a binary Booster's margin ``s``): ``target=1`` is class 1
            and ``target=0`` class 0, the complementary quantity (``-s``, ``sigmoid(-s)``,
            ``log sigmoid(-s)``), and ``None`` each row's predicted class, for every method.
            A torch module or plain function returning one column keeps the plain reading
            (index 0 is that column); see :mod:`tribute.targets`. For a scikit-learn
            classifier whose ``classes_`` are numbers other than ``0..K-1`` (e.g. labels 1, 2,
            3) integer targets are class labels, looked up in ``classes_`` (``target=y_true``
            explains each row's true class); string labels work for string classes (one, a list,
            or one per sample), and for the class names of a Hugging Face classifier
            (``model.config.id2label``). A pandas or polars Series (``target=y_test``) is read by
            position; next to a DataFrame its index must be the DataFrame's (a Series in
            another row order is refused rather than matched to the wrong rows).
        baseline: removal value: a scalar, an array broadcast to one sample, one per sample, or
            a background set ``M x *shape`` (the value averages over it: interventional SHAP;
            wrap in :class:`tribute.Background` when ``M`` equals the batch; for tables a plain
            array of ``batch`` rows is read per sample with a warning, which
            :class:`tribute.PerSample` silences). default=0.0,
            which suits images, embeddings and standardised features; for tabular numpy or
            DataFrame inputs (every input 2-D and real-valued) a default 0.0 is usually out of
            distribution for unscaled features, so a warning is issued then (pass the baseline
            explicitly, e.g. ``baseline=X_train.mean(0)`` or
            ``tribute.Background(X_train[:100])``, or ``baseline=0.0`` to keep zeros silently).
        groups: which elements form one player: None (every element), an integer mask of ids
            ``0..n-1`` (superpixels, column groups, token spans), :func:`tribute.patches`, or
            for tables the columns of each player: ``{"name": ["col", ...], ...}`` or a list of
            column lists (names or positions; every column in exactly one group).
        budget: model evaluations per input (coalitions or gradient points). default=None
            (the method's own default).
        seed: seed of the method's local random generator. default=0.
        batch_size: rows per forward pass. default=None (automatic).
        progress: show a progress bar (None: on a terminal, for runs over two seconds).
        output: which output to explain: ``"raw"`` (what the model returns), ``"logit"``,
            ``"prob"`` or ``"log_prob"``, converted from what the model returns (see
            ``model_output``): from logits by softmax/sigmoid; from probabilities ``prob`` is
            the identity, ``log_prob`` is ``log p`` and ``logit`` is ``log(p / (1 - p))``
            (probabilities clipped to ``[1e-12, 1 - 1e-12]``); a regressor's raw values
            allow only ``"raw"``; ``"kl"`` is SHAP-KL, ``-KL(p(.|x) || p(.|x_S))`` of the whole
            label distribution (target must be None; see :mod:`tribute.targets`). default="raw".
            Exception: ``tree_shap`` reads the trees, and for a tree classifier ``"raw"`` is its
            margin (log-odds, as in SHAP's TreeExplainer), not ``predict_proba``.
        players: a player set other than input features, e.g. ``tribute.components(...)``.
        ablation: how removed components are replaced (component games only).
        forward_args, forward_kwargs: extra non-attributed model arguments; tensors whose first
            axis is the batch are indexed per row.
        feature_names: one name per player.
        model_output: what the model returns: ``"logit"`` (scores), ``"probability"`` or
            ``"raw"`` (regression values). default=None: detected for estimators
            (``predict_proba`` -> probability, ``decision_function`` -> logit, a regressor's
            ``predict`` -> raw) and ``"logit"`` for torch modules and plain functions; declare
            it for a function or module that returns probabilities.
        max_memory: bytes tribute itself may allocate (masks, composed rows, gradients, the
            estimator's solve, results), a number or a string such as ``"8GiB"``. A call whose
            estimate exceeds it is refused before it starts, with settings that fit.
            default=None (half the memory available when the call starts; with a model on a
            CUDA device, at most half of that device's free memory).
        tokenizer: for text inputs (a string, a list of strings, or ``(first, second)`` pairs):
            a Hugging Face fast tokenizer or a ``tribute.models.text.OffsetTokenizer``.
            Players are then ``players="words"`` (default), ``"tokens"``, ``"sentences"`` or
            character spans (see :mod:`tribute.games.text`). Texts of different player counts
            are padded to the longest one's players (NaN credits past a text's end); for a
            method whose credits read the number of players (``lime``, ``occlusion`` with a
            window over one player, ``joint_shapley`` of order >= 2), and for a sampling method
            whose budget covers every coalition of a shorter text but not of the longest
            (``permutation_shapley``, ``kernel_shap``, ``banzhaf``, ``gp_shapley``: exact values
            at ``budget >= 2^n``, :meth:`Method.exact_at`), each group of texts of one
            player count is explained as its own call, the most players first, and the groups
            are merged into one result in the batch order
            (:func:`tribute.methods.text_split.merge_groups`): every text gets the credits it
            gets alone.
        removal: how removed text players are replaced: ``"mask"``, ``"pad"``, ``"unk"``, a
            token id, ``"delete"``, or the embedding baselines ``"zero"`` / ``"mean"``.
            default=None (the tokenizer's mask token, else unk, else pad).
        pair: for sentence pairs, ``"cross"`` (encoded together) or ``"cosine"`` (cosine of
            the two texts' embeddings). default=None (``"cross"``).
        include_special: special tokens ([CLS], [SEP], BOS) become players too. default=False.
        max_length: most tokens per text; longer texts are refused. default=None (the
            tokenizer's and model's limits).
        **params: the method's hyperparameters (see ``tribute.methods()[name].defaults``).

    Returns:
        An :class:`Attribution`.

    Example:
        >>> from sklearn.datasets import load_wine
        >>> from sklearn.linear_model import LinearRegression
        >>> X, y = load_wine(return_X_y=True)
        >>> reg = LinearRegression().fit(X, y)
        >>> attr = tribute.explain(reg, X[:5], method="exact_shapley", baseline=X.mean(0))
        >>> attr.values.shape
        (5, 13)
    """
    cls = get_method(method)
    unknown = set(params) - set(cls.defaults())
    if unknown:
        raise InputError(
            f"method {method!r} got unknown parameter(s) {sorted(unknown)}; its parameters are "
            f"{sorted(cls.defaults()) or 'none'}."
        )
    if isinstance(feature_names, str):  # a str is a sequence: "abcd" named 4 players a, b, c, d
        raise InputError(
            f"feature_names={feature_names!r} is one string; pass a list with one name per "
            "player (e.g. feature_names=['age', 'income'] or text.split(','))."
        )
    if feature_names is not None:
        check_unique_names(list(feature_names))
    seed = check_seed(seed)
    check_text_baseline(baseline, inputs, tokenizer, players)  # baseline=0 on texts was ignored (rev49x)
    estimator = cls(**params)
    if budget is not None and type(estimator).check is Method.check and _malformed_budget(budget):
        # refused before the game is built: building it runs the reference pass, one model row
        # per input (a whole forward pass of a large model spent on a typo such as budget=0);
        # the same refusal, in the same order, as Method.check (parameters first)
        estimator.validate_params()
        raise InputError(f"budget={budget!r} must be a positive int (evaluations per input).")
    # a count the budget would set but the user gave (integrated Hessians' steps=5 with budget=48)
    # is the same for every text: it does not follow the player count (rev49x: a split refused
    # the 1-word group's steps=5 after the 8-word group had run 43 rows; one game ran it before)
    count = estimator.budget_count()
    split_budget = None if count is not None and params.get(count) is not None else budget
    reads_count = estimator.reads_player_count_at(split_budget) is not None
    if tokenizer is not None and (reads_count or type(estimator).exact_at is not Method.exact_at) \
            and not isinstance(players, PlayerSet):
        counts = text_player_counts(as_model(model, "torch", model_output), inputs,
                                    tokenizer=tokenizer, players=players, pair=pair,
                                    include_special=include_special, max_length=max_length)
        if counts is not None and len(set(counts)) > 1 \
                and (reads_count or _exact_below_longest(estimator, counts, split_budget)):
            t0 = time.perf_counter()
            parts: list[tuple[int, np.ndarray, Attribution]] = []
            seen: set[str] = set()
            with progress_scope(0, cls.name, progress) as bar:  # one bar: the groups share it
                left = len(counts)
                # most players first: a budget or setting too small for the longest texts is
                # refused before the shorter groups spend model rows (sobol budget=12 ran 20
                # rows, then asked for 13 where the 8-word text needs 21; aud49x)
                for n, rows in reversed(group_rows(counts)):
                    bar.split(left, len(rows))  # the group's plan, scaled to the texts left
                    left -= len(rows)
                    texts, players_g = text_subset(inputs, players, rows.tolist())
                    with group_scope(n, rows, seen, "explained", unit="players", keep_class=True, stderr=True):
                        attr = explain(
                            model, texts, method, target=_group_target(target, len(counts), rows),
                            baseline=baseline, groups=groups, budget=budget, seed=seed,
                            batch_size=batch_size, progress=progress, output=output,
                            players=players_g, ablation=ablation, forward_args=forward_args,
                            forward_kwargs=forward_kwargs, feature_names=feature_names,
                            model_output=model_output, max_memory=max_memory, tokenizer=tokenizer,
                            removal=removal, pair=pair, include_special=include_special,
                            max_length=max_length, **params)
                    parts.insert(0, (n, rows, attr))  # listed fewest players first
            return merge_groups(parts, len(counts), time.perf_counter() - t0)
    baseline_given = baseline is not DEFAULT_BASELINE
    if not baseline_given and not cls.reads_baseline(params):
        baseline = UNREAD_BASELINE  # the method ignores the removal value: no out-of-distribution warning
    framework = framework_of(inputs)
    adapter = as_model(model, framework, model_output)
    extra: dict[str, Any] = {}
    if ablation is not None:
        extra["ablation"] = ablation
    if not cls.reads_ablation and isinstance(players, ComponentSet):
        # conductance / layer_grad_cam ablate nothing: no reference / counterfactual capture
        # pass (aud51k: ablation='mean' with 8 reference rows cost 4 evaluations per input, and
        # under budget=10 halved conductance's steps, 8 -> 4; the method still warns it is unread)
        extra["read_ablation"] = False
    if tokenizer is not None:
        extra.update(tokenizer=tokenizer, removal=removal, pair=pair,
                     include_special=include_special, max_length=max_length)
    elif removal is not None or pair is not None:
        raise InputError("removal= and pair= apply to texts; pass texts with tokenizer=...")
    if max_memory is not None:
        resolve_max_memory(max_memory)  # a malformed cap is refused before any work
    t0 = time.perf_counter()
    with adapter.session(), progress_scope(0, cls.name, progress) as bar:
        game = build_game(
            adapter, inputs, target=target, baseline=baseline, groups=groups, output=output,
            players=players, forward_args=forward_args, forward_kwargs=forward_kwargs,
            feature_names=feature_names, batch_size=batch_size, progress=progress,
            allow_missing=cls.tags.reads_missing and players is None, **extra,
        )
        # the default cap knows the model's device once the game placed it (CUDA: its memory)
        game.engine.max_memory = resolve_max_memory(
            max_memory, getattr(game, "compute_device", getattr(adapter, "device", None)))
        game.baseline_given = baseline_given  # tree_shap's "auto" reads it
        # passes a game's build made per input besides v(N) (the counterfactual's capture of
        # ablation="patch", the reference rows of "mean"/"resample"): rows that reached the model, so they come off the method's budget
        # and count in n_evals (methods plan from one reference evaluation)
        pre = int(getattr(game, "capture_evals", 0))
        # a malformed budget (a float, a bool, < 1) goes to check() as given, which refuses it
        # by its own value (rev38a: budget=20.5 ran as 20 - pre; budget <= pre was refused as
        # "budget=-2 must be a positive int")
        given = int(budget) if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool) \
            and budget >= 1 else None
        try:
            if pre and given is not None and given <= pre:
                what, need = getattr(game, "capture_what", "a capture pass"), estimator.min_budget(game)
                raise BudgetError(
                    f"budget={budget} is too small for {cls.name!r}: {pre} evaluation(s) per input "
                    f"go to {what} before the method runs, which leaves none for the method (it "
                    f"needs at least {need}). Raise budget to >= {pre + need}.")
            use_budget = estimator.check(game, given - pre if pre and given is not None
                                         else budget)  # validates the parameters first
        except BudgetError as err:
            if not pre or given is None or given <= pre:
                raise
            raise BudgetError(
                f"{err} [budget={budget} given: {pre} evaluation(s) per input went to "
                f"{getattr(game, 'capture_what', 'a capture pass')} before the method ran; raise "
                f"budget by {pre}]") from None
        _refuse_padded_texts(estimator, game, split_budget)
        check_budget_param(estimator, params, game, budget)
        # the estimate check() just made for this game and budget (the same object)
        memo = estimator.__dict__.pop("_checked_cost", None)
        cost = memo[2] if memo is not None and memo[0]() is game and memo[1] == use_budget \
            else estimator.estimate_cost(game, use_budget)
        known = estimate_seconds(game.engine, game, cost) is not None  # announced by check()

        def plan(seconds: float) -> str:
            return estimator.plan_message(game, use_budget, cost, seconds)

        # the estimate counts the whole call, v(N)'s reference pass included (one row per input,
        # already run by build_game); the counterfactual / resample rows a component game's build
        # ran are not in it, so only the reference pass is taken off
        bar.replan(max(cost.rows - min(bar.done, int(game.n_samples)), 0), estimator.solve_rows(game, cost),
                   None if known else plan, solve_seconds(cost))
        if type(estimator).check is Method.check:  # it validated the parameters just now
            estimator.__dict__["_params_checked"] = True
        if getattr(game, "kind", None) == "data" and use_budget is not None:
            game.fit_budget = use_budget  # type: ignore[attr-defined]  # retrains within budget
        attr = estimator.attribute(game, budget=use_budget, seed=seed)
        attr.n_evals += pre
    # the clip before the log of output='logit'/'log_prob' bound some value: said once per call
    tgt = getattr(game.engine, "target", None)
    warn_clipped(tgt if isinstance(tgt, Target) else None,
                 adapter.estimator if isinstance(adapter, NumpyModel) and adapter.kind != "callable"
                 else None)
    abl = getattr(game, "ablation", None)
    if baseline_given and getattr(game, "baseline_read", None) is False and isinstance(abl, Ablation):
        # aud42c: baseline=5.0 next to component players changed nothing and said nothing (it is
        # the input baseline of conductance's path; the other methods ablate units)
        # small42b: layer_grad_cam removes nothing (it weighs the activations by their gradients),
        # the warning said it "removes units by ablation=..." all the same
        how = getattr(cls, "component_credit", None)
        warnings.warn(
            f"method {cls.name!r} does not read baseline= on component players: "
            + (f"{how}, nothing is removed (only conductance reads baseline=, the start of its input "
               "path). Drop baseline=." if how else
               f"it removes units by ablation={abl.kind!r} (only conductance reads baseline=, the start of "
               "its input path). Drop baseline=, or set what removed units become with ablation= (zero, "
               "mean, resample, patch)."), UserWarning, stacklevel=user_stacklevel())
    if getattr(game, "kind", None) == "component" and isinstance(abl, Ablation):
        attr.params.setdefault("ablation", abl.kind)  # evaluate's default
        keys = getattr(game, "site_keys", None)
        if callable(keys):  # what was ablated, for evaluate's same-components check
            attr.params.setdefault("component_sites", keys())
        if abl.reference is not None or abl.counterfactual is not None or \
                abl.counterfactual_kwargs is not None or (abl.kind == "resample" and (abl.seed, abl.n_resample) != (0, 16)):
            # settings a component set of the same kind may not share: evaluate asks for them
            attr.params.setdefault("ablation_own_data", True)
    labels = adapter.class_labels() if isinstance(adapter, NumpyModel) else None
    if labels is not None and players is None:  # targets are columns: name their classes
        attr.extra.setdefault("class_labels", labels)
    note = getattr(game, "background_note", None)
    if note:  # a summarised background set is stated in the result
        attr.params.setdefault("background", note)
    digest = game.baseline_digest() if isinstance(game, FeatureGame) else None
    if digest is not None:  # evaluate's re-explaining metrics check they use the same baselines
        attr.params.setdefault("baseline_digest", digest)
    attr.seconds = time.perf_counter() - t0
    attr.n_rows = game.engine.n_rows
    attr.params = {**attr.params, "budget": use_budget, "seed": seed, "output": output,
                   "model_output": str(adapter.output_kind)}
    return attr

