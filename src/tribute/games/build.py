"""Build the game a call explains: input features by default, or another player set.

:func:`build_game` is what :func:`tribute.explain` and :func:`tribute.evaluate` use; custom
methods and metrics call it too. Player sets other than features (components, training data)
implement the :class:`PlayerSet` protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import InputError
from ..models import ModelAdapter, as_model
from ..models.tabular import from_polars, prepare_categorical
from ..targets import TargetLike, plain_target, warn_integer_string_labels
from .base import Game
from .features import DEFAULT_BASELINE, UNREAD_BASELINE, Background, FeatureGame, PerSample

__all__ = ["PlayerSet", "build_game", "check_forward_arguments", "check_text_baseline", "framework_of", "labels_to_columns",
           "numeric_labels"]


@runtime_checkable
class PlayerSet(Protocol):
    """Something that defines players other than input features (components, training data).

    ``tribute.explain(..., players=obj)`` calls ``obj.make_game(model, inputs, **settings)``
    with the adapted model, the user's inputs and the call's settings (target, output,
    baseline, ablation, forward arguments, batch_size, progress) and runs the method on the
    returned game.
    """

    def make_game(self, model: ModelAdapter, inputs: Any, **settings: Any) -> Game: ...


def build_game(
    model: Any,
    inputs: Any,
    *,
    target: TargetLike = None,
    baseline: Any = DEFAULT_BASELINE,
    groups: Any = None,
    output: str = "raw",
    players: PlayerSet | str | Any = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    model_output: str | None = None,
    allow_missing: bool = False,
    tokenizer: Any = None,
    removal: Any = None,
    pair: str | None = None,
    include_special: bool = False,
    max_length: int | None = None,
    labels: bool = True,
    **settings: Any,
) -> Game:
    """Build the game :func:`explain` would explain (useful for metrics and custom methods).

    ``target`` is read as :func:`explain` reads it: for a scikit-learn classifier whose numeric
    ``classes_`` are not ``0..K-1``, integer targets are class labels (``target=2`` is the
    class labelled 2, not column 2; :func:`labels_to_columns`), and the game's targets are
    output columns. ``labels=False`` takes integer targets as columns already (callers that
    hold resolved columns, e.g. an attribution's ``targets``).

    Must be called inside ``adapter.session()`` when the caller wants the model restored; the
    public functions do that for you. ``allow_missing`` lets NaN through in feature inputs and
    baselines (for methods that read missing values as the model does, such as ``tree_shap``).
    With ``tokenizer=`` the inputs are texts and the game is a
    :class:`~tribute.games.text.TextGame` (``players``, ``removal``, ``pair``,
    ``include_special`` and ``max_length`` are its settings).
    """
    check_forward_arguments(forward_args, forward_kwargs)
    framework = framework_of(inputs)
    adapter = as_model(model, framework, model_output)
    target = plain_target(target, inputs)  # a pandas / polars Series of labels -> numpy
    if labels and players is None:
        target = labels_to_columns(adapter, target)  # a classifier's labels -> its columns
    if tokenizer is not None or _is_text(inputs):
        return _text_game(adapter, inputs, tokenizer=tokenizer, players=players, removal=removal,
                          pair=pair, include_special=include_special, max_length=max_length,
                          target=target, baseline=baseline, groups=groups, output=output,
                          forward_args=forward_args, forward_kwargs=forward_kwargs,
                          feature_names=feature_names, batch_size=batch_size, progress=progress,
                          settings=settings)
    if removal is not None or pair is not None:
        raise InputError("removal= and pair= apply to texts; pass texts with tokenizer=...")
    if players is not None:
        if not isinstance(players, PlayerSet):
            raise InputError(
                f"players of type {type(players).__name__} is not a player set; use "
                "tribute.components(model, 'module.path', unit=...) or leave it None for features."
            )
        if groups is not None:
            raise InputError("groups applies to input features; with players=... leave groups=None.")
        if feature_names is not None:
            # aud42c: dropped without a word (the players kept their own names), as texts refuse it
            raise InputError(
                "feature_names names input features; with players=... the player set names its "
                "players (attr.player_names, e.g. 'fc1 neuron 3'), so leave feature_names=None.")
        return players.make_game(
            adapter, inputs, target=target, baseline=baseline, output=output,
            forward_args=forward_args, forward_kwargs=forward_kwargs, batch_size=batch_size,
            progress=progress, **settings,
        )
    if settings:
        raise InputError(f"unexpected argument(s) {sorted(settings)} for a feature game.")
    # polars tables are read as pandas ones (column names become player names)
    inputs = from_polars(inputs)
    if isinstance(baseline, (Background, PerSample)):
        baseline = dataclasses.replace(baseline, data=from_polars(baseline.data))
    else:
        baseline = from_polars(baseline)
    # DataFrames with categorical columns: one player per original column, rows decoded back
    # into the user's values before the model (its own pipeline) sees them.
    adapter, inputs, baseline = prepare_categorical(adapter, inputs, baseline, (Background, PerSample))
    return FeatureGame(
        adapter, inputs, target=target, baseline=baseline, groups=groups, output=output,
        forward_args=forward_args, forward_kwargs=forward_kwargs, feature_names=feature_names,
        batch_size=batch_size, progress=progress, allow_missing=allow_missing,
    )


def check_forward_arguments(forward_args: Any, forward_kwargs: Any) -> None:
    """``forward_args`` a tuple or list, ``forward_kwargs`` a dict (aud44o: a bare tensor as
    ``forward_args`` failed with "Boolean value of Tensor with more than one value is
    ambiguous", an int with "'int' object is not iterable", a list of pairs as
    ``forward_kwargs`` with "dictionary update sequence element #0 ...")."""
    if forward_args is not None and not isinstance(forward_args, (list, tuple)):
        raise InputError(
            f"forward_args of type {type(forward_args).__name__} is not a tuple or list; it holds the "
            "model's extra positional arguments, one item each: forward_args=(mask,) for one.")
    if forward_kwargs is not None and not isinstance(forward_kwargs, Mapping):
        raise InputError(
            f"forward_kwargs of type {type(forward_kwargs).__name__} is not a dict; it maps the "
            "model's extra keyword arguments to their values, e.g. forward_kwargs={'mask': mask}.")


def numeric_labels(adapter: ModelAdapter) -> np.ndarray | None:
    """The classifier's ``classes_`` when they are numbers other than ``0..K-1`` (then an
    integer target is a class label, not a column index); None otherwise."""
    if getattr(adapter, "kind", None) not in ("predict_proba", "decision_function"):
        return None
    classes = getattr(getattr(adapter, "estimator", None), "classes_", None)
    if classes is None:
        return None
    arr = np.asarray(classes)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf" or \
            np.array_equal(arr, np.arange(arr.shape[0])):
        return None
    return arr


def labels_to_columns(adapter: ModelAdapter, target: Any) -> Any:
    """Class labels to output columns for scikit-learn-style classifiers.

    A classifier fitted on labels such as ``1, 2, 3`` (``classes_ = [1, 2, 3]``) returns its
    probabilities in ``classes_`` order, and an integer target used to be read as a column
    index: ``target=y_true`` explained the next class up, silently (P = 0.018 explained where
    the true label had 0.98). For such classifiers -- numeric ``classes_`` other than
    ``0..K-1`` -- integer targets (an int, a list, one per sample) are labels, looked up in
    ``classes_``; a value that is not one of them is refused. Where ``classes_`` are
    ``0..K-1`` labels and columns coincide; string labels (``classes_`` of strings) are looked
    up the same way (a str target, a list of them, or one per sample such as a ``y_true`` of
    strings), and integers stay column indices there. ``None``,
    ``"predicted"`` and callables are unchanged (a callable ``lambda p: p[:, j]`` explains a
    column by its index). Applied by :func:`tribute.explain` and :func:`tribute.evaluate` to
    the user's ``target`` only (an attribution's ``targets`` are already columns).
    """
    if target is None or (callable(target) and not isinstance(target, (np.ndarray, torch.Tensor))):
        return target
    classes = getattr(getattr(adapter, "estimator", None), "classes_", None) \
        if getattr(adapter, "kind", None) in ("predict_proba", "decision_function") else None
    if classes is None:
        classes = _config_labels(adapter)  # a Hugging Face classifier's id2label: names only
        if classes is None or not (isinstance(target, str) or _as_strings(target) is not None):
            return target
    labels = np.asarray(classes)
    if isinstance(target, str):
        if target == "predicted":
            return target
        return int(_string_columns(labels, np.asarray([target]), f"={target!r}")[0])
    strings = _as_strings(target)
    if strings is not None:  # several string labels: a list, or one per sample (y_true)
        what = f" list {list(target)}" if isinstance(target, (list, tuple)) \
            else f" array of shape {strings.shape}"
        out = _string_columns(labels, strings, what)
        return [int(i) for i in out] if isinstance(target, (list, tuple)) else out
    if labels.ndim == 1 and labels.dtype.kind == "b":
        return _bool_columns(labels, target)
    warn_integer_string_labels(labels, target)  # classes_ ['1', '10', '2']: target=1 is '10'
    numeric = numeric_labels(adapter)
    if numeric is None:
        return target

    def lookup(values: np.ndarray, what: str) -> np.ndarray:
        pos = np.searchsorted(numeric, values) if bool(np.all(np.diff(numeric) > 0)) else None
        out = np.empty(values.shape, dtype=np.int64)
        for i, v in np.ndenumerate(values):
            if pos is not None and pos[i] < numeric.shape[0] and numeric[pos[i]] == v:
                out[i] = pos[i]
                continue
            hit = np.flatnonzero(numeric == v)
            if hit.size != 1:
                raise InputError(
                    f"target{what} holds {v.item() if hasattr(v, 'item') else v!r}, which is not one of the classifier's classes_ "
                    f"{numeric.tolist()[:20]}: for a classifier whose classes are not 0..K-1, "
                    "integer targets are class labels (looked up in classes_). To explain an "
                    "output column by its index j, pass target=lambda p: p[:, j].")
            out[i] = hit[0]
        return out

    if isinstance(target, (bool, np.bool_)):
        return target  # refused by the target resolver
    if isinstance(target, (int, np.integer, float, np.floating)):
        return int(lookup(np.asarray([target]), f"={target}")[0])
    if isinstance(target, (list, tuple)):
        return [int(i) for i in lookup(np.asarray(target), f" list {list(target)}")]
    if isinstance(target, (np.ndarray, torch.Tensor)):
        arr = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else target
        if arr.dtype.kind in "biuf":
            return lookup(np.asarray(arr), f" array of shape {tuple(arr.shape)}")
    return target


def _bool_columns(labels: np.ndarray, target: Any) -> Any:
    """Boolean targets of a classifier with boolean ``classes_`` (fitted on ``y > 0``): each
    ``True``/``False`` (a bool, a list of them, or a bool array such as ``y_true``) becomes the
    column of that class in ``classes_``; integers stay column indices (``False``/``True`` are
    columns 0/1 of ``classes_ == [False, True]``, so both readings agree)."""
    def column(v: Any, what: str) -> int:
        hit = np.flatnonzero(labels == bool(v))
        if hit.size != 1:
            raise InputError(
                f"target{what} holds {bool(v)!r}, which is not one of the classifier's classes_ "
                f"{labels.tolist()}; pass one of them (or a column index).")
        return int(hit[0])

    if isinstance(target, (bool, np.bool_)):
        return column(target, f"={target!r}")
    if isinstance(target, (list, tuple)) and target and all(
            isinstance(t, (bool, np.bool_)) for t in target):
        return [column(t, f" list {list(target)}") for t in target]
    if isinstance(target, (np.ndarray, torch.Tensor)):
        arr = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else target
        if arr.dtype.kind == "b":
            what = f" array of shape {tuple(arr.shape)}"
            return np.vectorize(lambda v: column(v, what), otypes=[np.int64])(arr)
    return target


def _config_labels(adapter: ModelAdapter) -> list[str] | None:
    """Class names of a Hugging Face classifier (``model.config.id2label``, ids ``0..K-1``), so
    ``target="positive"`` works for text classifiers; None without such a config."""
    module = getattr(adapter, "module", None)
    id2label = getattr(getattr(module, "config", None), "id2label", None)
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        return None
    if ids != list(range(len(ids))):
        return None
    return [str(id2label.get(i, id2label.get(str(i)))) for i in ids]


def _as_strings(target: Any) -> np.ndarray | None:
    """``target`` as a numpy array of str when it is a non-empty list/tuple/array of strings."""
    if isinstance(target, (list, tuple)):
        if not target or not all(isinstance(t, (str, np.str_)) for t in target):
            return None
        return np.asarray([str(t) for t in target])
    if isinstance(target, np.ndarray) and target.size and (
            target.dtype.kind in "US" or (target.dtype.kind == "O" and all(
                isinstance(t, (str, np.str_)) for t in target.ravel()))):
        return target.astype(str)
    return None


def _string_columns(labels: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    """Output columns of string class labels ``values`` (any shape) among ``labels``
    (a classifier's ``classes_``); a value that is not one of them is refused."""
    names = labels.astype(str) if labels.dtype.kind in "OUS" else None
    out = np.empty(values.shape, dtype=np.int64)
    for i, v in np.ndenumerate(values):
        hits = np.flatnonzero(names == v) if names is not None else np.array([], dtype=np.int64)
        if hits.size != 1:
            raise InputError(
                f"target{what} holds {str(v)!r}, which is not one of the classifier's classes_ "
                f"(or config.id2label names) {labels.tolist()[:20]}; pass class labels, "
                "'predicted' or None.")
        out[i] = hits[0]
    return out


def _is_text(inputs: Any) -> bool:
    """Inputs are a string, a pair of strings or a list of them (text players)."""
    if isinstance(inputs, str):
        return True
    if isinstance(inputs, (list, tuple)) and inputs:
        first = inputs[0]
        return isinstance(first, str) or (isinstance(first, tuple) and bool(first)
                                          and isinstance(first[0], str))
    return False


def check_text_baseline(baseline: Any, inputs: Any, tokenizer: Any, players: Any) -> None:
    """Refuse a baseline the user gave for texts that the word game would read as "none given".

    Texts remove words with ``removal=`` and refuse a baseline, but one equal to 0 (``0``,
    ``0.0``, ``False``) passed the text game's check and was dropped: ``baseline=0`` meant as
    "[PAD], id 0 on BERT" gave the [MASK] credits (rev49x). :func:`tribute.explain` and
    :func:`tribute.evaluate` call this with the baseline the user gave (their own default is
    not given); component players of texts (a :class:`PlayerSet`) read their baseline.
    """
    if tokenizer is None or isinstance(players, PlayerSet) or baseline is DEFAULT_BASELINE \
            or baseline is UNREAD_BASELINE or not _is_text(inputs):
        return
    if isinstance(baseline, (int, float)) and float(baseline) == 0.0:
        raise InputError(
            f"baseline={baseline!r} does not apply to texts: words are removed by removal= "
            "(default 'mask', the tokenizer's mask token), so this baseline would be ignored. "
            "To remove words with the pad token (id 0 on BERT) pass removal='pad'; removal=<int> "
            "removes with any token id, removal='zero' with a zero embedding."
        )


def _text_game(adapter: ModelAdapter, inputs: Any, *, tokenizer: Any, players: Any, removal: Any,
               pair: str | None, include_special: bool, max_length: int | None, target: TargetLike,
               baseline: Any, groups: Any, output: str, forward_args: Any, forward_kwargs: Any,
               feature_names: Any, batch_size: int | None, progress: bool | None,
               settings: dict[str, Any]) -> Game:
    from .text import TextGame

    if tokenizer is None:
        raise InputError(
            "inputs are texts but tokenizer=None; pass the model's tokenizer, e.g. "
            "tokenizer=AutoTokenizer.from_pretrained(name) (or a tribute.models.text.WordTokenizer)."
        )
    if not _is_text(inputs):
        raise InputError(
            f"tokenizer= was given but inputs is a {type(inputs).__name__}; pass texts: a string, "
            "a list of strings, or (first, second) tuples for sentence pairs."
        )
    if isinstance(players, PlayerSet):
        return _text_components(adapter, inputs, tokenizer=tokenizer, players=players,
                                removal=removal, pair=pair, include_special=include_special,
                                max_length=max_length, target=target, baseline=baseline,
                                groups=groups, output=output, forward_args=forward_args,
                                forward_kwargs=forward_kwargs, feature_names=feature_names,
                                batch_size=batch_size, progress=progress, settings=settings)
    unused = {"groups": groups is not None, "forward_args": bool(forward_args),
              "forward_kwargs": bool(forward_kwargs), "feature_names": feature_names is not None,
              "baseline": not isinstance(baseline, (int, float)) or float(baseline) != 0.0,
              **{k: True for k in settings}}
    bad = sorted(k for k, v in unused.items() if v)
    if bad:
        raise InputError(
            f"argument(s) {bad} do not apply to texts: players are chosen by players= "
            "('words', 'tokens', 'sentences' or spans) and removed by removal= ('mask', 'pad', "
            "'unk', a token id, 'delete', 'zero' or 'mean')."
        )
    return TextGame(adapter, inputs, tokenizer=tokenizer, players="words" if players is None else players,
                    removal=removal, pair=pair, include_special=include_special,
                    max_length=max_length, target=target, output=output, batch_size=batch_size,
                    progress=progress)


def _text_components(adapter: ModelAdapter, inputs: Any, *, tokenizer: Any, players: PlayerSet,
                     removal: Any, pair: str | None, include_special: bool,
                     max_length: int | None, target: TargetLike, baseline: Any, groups: Any,
                     output: str, forward_args: Any, forward_kwargs: Any, feature_names: Any,
                     batch_size: int | None, progress: bool | None,
                     settings: dict[str, Any]) -> Game:
    """Component players (``tribute.components``) of a model reading texts: the texts are
    tokenized and padded once, and the component game runs on their token ids (with
    ``attention_mask=`` / ``token_type_ids=`` when the model takes them)."""
    from ..models.text import segment
    from .text import _accepts, _is_hf_model, _pad_id, _takes_types, input_embedding

    given = {"removal": removal is not None, "pair": pair is not None, "groups": groups is not None,
             "include_special": include_special, "forward_args": bool(forward_args),
             "forward_kwargs": bool(forward_kwargs), "feature_names": feature_names is not None}
    bad = sorted(k for k, v in given.items() if v)
    if bad:
        raise InputError(f"argument(s) {bad} do not apply to component players of texts.")
    fn = getattr(adapter, "fn", None)
    module = getattr(adapter, "module", None)
    hf = _is_hf_model(module)
    emb = input_embedding(module)
    # padded with the id the model compares to find its padding (a decoder classifier pools at
    # its last token that is not config.pad_token_id), as the text game pads
    pad_id = _pad_id(tokenizer, module, hf, None if emb is None else int(emb.num_embeddings))
    enc = segment(inputs, tokenizer, "words", max_length=max_length, require_players=False,
                  pad_id=pad_id)
    kw: dict[str, Any] = {}
    if hf or _accepts(fn, "attention_mask"):
        kw["attention_mask"] = enc.attention_mask
    if enc.token_type_ids is not None and _takes_types(fn, hf):
        kw["token_type_ids"] = enc.token_type_ids
    return players.make_game(adapter, enc.input_ids, target=target, baseline=baseline,
                             output=output, forward_args=None, forward_kwargs=kw,
                             batch_size=batch_size, progress=progress, **settings)


def framework_of(inputs: Any) -> str:
    """``"torch"`` when the (first) input is a tensor (or inputs are texts), else ``"numpy"``."""
    import torch

    if _is_text(inputs):
        return "torch"
    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    return "torch" if isinstance(first, torch.Tensor) else "numpy"
