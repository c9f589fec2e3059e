"""Texts of different player counts: one group of texts per player count, merged back.

A batch of texts is one game whose players are padded to the longest text (a shorter text's
missing players are dummies with NaN credits, :mod:`tribute.games.text`). Shapley and Banzhaf
values, leave-one-out and gradients ignore such dummies; estimators whose credits read the
number of players (:meth:`tribute.methods.base.Method.reads_player_count`: LIME's kernel and
coalitions, occlusion windows wider than one player, joint Shapley values of order >= 2,
ReAGent's softmax importance, Sobol's designs per budget, RISE's
masks, integrated Hessians' steps set by a budget: ``Method.reads_player_count_at``) do not,
and a sampling method whose budget covers every coalition of a shorter text but not of the
longest would sample the shorter text's values where alone they are exact
(``Method.exact_at``); so :func:`tribute.explain` explains each group of texts of one player
count as its own call and :func:`merge_groups` lays the groups' results back out as the padded result of one
call. The metrics score such a batch group by group the same way
(:mod:`tribute.metrics._text_groups`); both use :func:`group_rows` and :func:`group_scope`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..attribution import Attribution
from ..errors import InputError, StderrWarning, user_stacklevel

__all__ = ["group_rows", "group_scope", "merge_groups"]

#: ``extra`` entries of a text game that hold one entry per text (merged in batch order).
_TEXT_LISTS = ("texts", "text_players", "text_spans")


def group_rows(counts: list[int]) -> list[tuple[int, np.ndarray]]:
    """``(player count, positions in the batch)`` of each group of texts, fewest players first."""
    by_n: dict[int, list[int]] = {}
    for i, c in enumerate(counts):
        by_n.setdefault(c, []).append(i)
    return [(n, np.asarray(rows, dtype=np.int64)) for n, rows in sorted(by_n.items())]


@contextlib.contextmanager
def group_scope(n: int, rows: np.ndarray, seen: set[str], verb: str, unit: str = "words",
                keep_class: bool = False, stderr: bool = False) -> Iterator[None]:
    """Run one group: its :class:`InputError` names the group's texts (sample numbers inside
    count within the group), and its warnings are re-issued once per message over all groups
    (``seen``). A :class:`StderrWarning` is left to the merged result (a metric's warns itself),
    unless ``stderr``: :func:`tribute.explain`'s merged :class:`Attribution` does not, so its
    groups' warnings are re-issued, naming the group's texts (a 3-text LIME call with
    ``alpha=0`` returned NaN standard errors without any warning, rev51e)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except InputError as err:
            what = unit[:-1] if n == 1 and unit.endswith("s") else unit
            msg = (f"{err} [texts of {n} {what}, {verb} as one group: texts {rows.tolist()} of "
                   "the batch; sample i above is the group's i-th of them]")
            new: InputError = InputError(msg)
            if keep_class and type(err) is not InputError:
                try:
                    new = type(err)(msg)
                except TypeError:  # a subclass with another constructor
                    pass
            raise new from err
    for w in caught:
        msg = str(w.message)
        if stderr and issubclass(w.category, StderrWarning):
            what = unit[:-1] if n == 1 and unit.endswith("s") else unit
            msg = f"{msg} [texts of {n} {what}: texts {rows.tolist()} of the batch]"
        if (stderr or not issubclass(w.category, StderrWarning)) and msg not in seen:
            seen.add(msg)
            warnings.warn(msg, w.category, stacklevel=user_stacklevel())


def _merge_rows(got: list[Any], rows: list[np.ndarray], b: int) -> tuple[bool, Any]:
    """``(merged?, value)``: per-text arrays of the groups (first axis: the group's texts) in
    batch order; trailing axes that differ (the players of each group) are padded with NaN."""
    if all(g is None for g in got):
        return True, None
    if not all(isinstance(g, np.ndarray) and g.ndim >= 1 and g.shape[0] == r.size
               for g, r in zip(got, rows)) or len({g.ndim for g in got}) != 1:
        return False, None
    shape = tuple(max(g.shape[k] for g in got) for k in range(1, got[0].ndim))
    dtype = np.result_type(*got)
    ragged = any(g.shape[1:] != shape for g in got)
    if ragged and dtype.kind not in "fc":
        return False, None
    out = np.full((b, *shape), np.nan, dtype=dtype) if ragged else np.empty((b, *shape), dtype=dtype)
    for g, r in zip(got, rows):
        where: tuple[Any, ...] = (r, *(slice(0, s) for s in g.shape[1:]))
        out[where] = g
    return True, out


def _merge_dicts(got: list[dict[Any, Any]], rows: list[np.ndarray], b: int) -> tuple[bool, Any]:
    """A dict of per-text arrays per group (joint Shapley's ``joint``: one entry per set of
    players): every key of any group, NaN for the texts of a group without it (sets with a
    player past a text's end, as its padded players' credits)."""
    keys: list[Any] = []
    for g in got:
        keys += [k for k in g if k not in keys]
    out: dict[Any, Any] = {}
    for k in keys:
        have = [g.get(k) for g in got]
        like = next(h for h in have if h is not None)
        if not isinstance(like, np.ndarray) or like.dtype.kind not in "fc":
            return False, None
        filled = [h if h is not None else np.full((r.size, *like.shape[1:]), np.nan)
                  for h, r in zip(have, rows)]
        ok, merged = _merge_rows(filled, rows, b)
        if not ok:
            return False, None
        out[k] = merged
    return True, out


def merge_groups(parts: list[tuple[int, np.ndarray, Attribution]], b: int,
                 seconds: float) -> Attribution:
    """One :class:`Attribution` over the batch from each group's ``(players, rows, result)``.

    Laid out as one call's padded result: ``batch x (targets x) players`` of the longest text,
    a shorter text's missing players NaN in ``values`` and ``stderr``; ``player_names``,
    ``layout`` and ``player_kind`` of the group with the most players; ``targets``, ``gap``,
    ``base_values``, ``full_values`` (NaN for the texts of a group whose method run did not
    evaluate it, e.g. ``v(empty)`` where only some groups' occlusion windows cover every
    player) and per-text ``extra`` arrays in batch order (arrays whose
    trailing axes follow the players, e.g. joint Shapley's ``joint_pairs``, padded with NaN;
    ``joint``'s sets of players NaN for texts too short to hold them); ``n_rows`` the sum over
    the groups, ``n_evals`` the largest per-input count of the groups, ``seconds`` the whole
    call's. ``params`` and scalar ``extra`` entries the groups share are kept; where they
    differ (a budget that follows the number of players) the longest group's stands.
    ``extra["by_word_count"]`` lists every group: ``rows``, ``n_players``, ``n_evals``,
    ``n_rows``, ``seconds``, ``params`` and its ``extra`` entries that could not be merged
    (per-text values that are neither arrays nor lists, or integer arrays of another shape).
    """
    rows = [r for _, r, _ in parts]
    attrs = [a for _, _, a in parts]
    n_max = max(n for n, _, _ in parts)
    top = attrs[[n for n, _, _ in parts].index(n_max)]
    flats = [a.flat() for a in attrs]
    t = {f.shape[1] for f in flats}
    if len(t) != 1:  # pragma: no cover - the target is the same setting for every group
        raise InputError(f"the groups of texts were explained for {sorted(t)} targets; pass one target setting.")
    vals = np.full((b, t.pop(), n_max), np.nan)
    for f, r in zip(flats, rows):
        vals[r, :, : f.shape[2]] = f
    stds = [a.flat_stderr() for a in attrs]
    std = None
    if any(s is not None for s in stds):
        std = np.full_like(vals, np.nan)
        for s, r in zip(stds, rows):
            if s is not None:
                std[r, :, : s.shape[2]] = s
    lay = top.layout
    if lay.dense and len(lay.input_shapes) == 1:
        lay = dataclasses.replace(lay, input_shapes=((n_max,),))

    def per_text(name: str) -> Any:
        got = [getattr(a, name) for a in attrs]
        like = next((g for g in got if isinstance(g, np.ndarray)), None)
        if like is not None and like.dtype.kind in "fc":  # NaN where a group has none
            got = [np.full((r.size, *like.shape[1:]), np.nan) if g is None else g
                   for g, r in zip(got, rows)]
        ok, merged = _merge_rows(got, rows, b)
        return merged if ok else getattr(top, name)

    extra: dict[str, Any] = {}
    for key in [k for k in top.extra if all(k in a.extra for a in attrs)]:
        got = [a.extra[key] for a in attrs]
        if key in _TEXT_LISTS and all(isinstance(g, list) and len(g) == r.size for g, r in zip(got, rows)):
            merged_list: list[Any] = [None] * b
            for g, r in zip(got, rows):
                for j, i in enumerate(r.tolist()):
                    merged_list[i] = g[j]
            extra[key] = merged_list
            continue
        if isinstance(got[0], np.ndarray):
            ok, merged = _merge_rows(got, rows, b)
        elif all(isinstance(g, dict) for g in got) and got[0]:
            ok, merged = _merge_dicts(got, rows, b)
        else:
            ok, merged = all(_same(g, got[0]) for g in got), got[0]
        if ok:
            extra[key] = merged
    extra["by_word_count"] = [
        {"rows": r, "n_players": n, "n_evals": a.n_evals, "n_rows": a.n_rows, "seconds": a.seconds,
         "params": a.params, "extra": {k: v for k, v in a.extra.items() if k not in extra}}
        for n, r, a in parts]
    params = dict(top.params)
    return dataclasses.replace(
        top, values=lay.to_user(vals), stderr=None if std is None else lay.to_user(std),
        params=params, n_evals=max(a.n_evals for a in attrs), n_rows=sum(a.n_rows for a in attrs),
        seconds=seconds, targets=per_text("targets"), gap=per_text("gap"),
        base_values=per_text("base_values"), full_values=per_text("full_values"),
        index=None, groups=None, layout=lay, extra=extra)


def _same(a: Any, b: Any) -> bool:
    """Whether two scalar settings (str, numbers, None, tuples of them) are equal."""
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False
