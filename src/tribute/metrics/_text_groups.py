"""Metrics on a batch of texts of different word counts: one evaluation per word count.

A batch of texts is explained as one game whose players are padded to the longest text: a
shorter text's missing players get NaN credits (``tribute.games.text``). Every metric is
defined per text over *its own* players (a deletion curve removes ``round(j * n_i / steps)``
of text ``i``'s ``n_i`` words, a random coalition keeps ``round(alpha * n_i)`` of them, a
Gini index ranks ``n_i`` credits), so the padded players must not take part; before this
module every metric scored such texts NaN (their credits "hold NaN values").

:func:`evaluate_by_word_count` splits the texts into groups of equal word count, scores each
group on its own game (the credits cut to the group's players), and merges the per-sample
scores back into the batch order. Curves and other per-sample arrays whose shape does not
depend on the word count are merged too; the others stay per group in
``extra["by_word_count"]``. Each group draws its random coalitions from the same ``seed``
(as a separate call on those texts would), so the groups' draw noise is independent and
their standard errors combine as a weighted sum of variances.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..attribution import Attribution
from ..methods.text_split import group_rows, group_scope
from .base import MetricInfo, MetricResult, Scores, finish, undefined_reported

__all__ = ["evaluate_by_word_count", "group_players", "recorded_spans", "recorded_specials",
           "text_players_mismatch", "word_counts"]

#: ``extra`` entries whose first axis is the batch (merged into batch order when their other
#: axes do not depend on the word count; e.g. ``predicted`` but not ``loo``).
_PER_SAMPLE = frozenset({"curve", "curve_normalised", "auc", "morf", "lerf", "auc_morf",
                         "auc_lerf", "predicted", "actual", "exact", "spearman", "entropy",
                         "per_draw", "pairwise", "per_layer", "other_class", "loo",
                         "self_influence", "stderr_ties"})

#: Keys of ``extra`` that :func:`tribute.metrics.base.finish` derives itself (recomputed).
_DERIVED = ("stderr_samples", "dof", "skew", "ci95_note", "n_undefined")


def word_counts(attr: Attribution) -> list[int] | None:
    """Players of each text of a text attribution (``extra["text_players"]``), or None."""
    per = attr.extra.get("text_players") if isinstance(attr.extra, dict) else None
    if not isinstance(per, list) or not per or not all(isinstance(p, list) for p in per):
        return None
    return [len(p) for p in per]


def recorded_spans(attr: Attribution) -> list[Any] | None:
    """``players=`` that rebuilds the game of an attribution over character-span players: per
    text its players' ``(start, end)`` spans from ``extra["text_spans"]`` (for a pair a
    ``(first side's, second side's)`` tuple), or None when ``attr`` is not one.

    A span attribution scored without ``players=`` was scored on a game of *words*: when the
    counts agreed no error was raised (``shapley_error`` 0.62 for exact Shapley values of two
    sub-word spans, 1.5e-13 on their own spans)."""
    spans = attr.extra.get("text_spans") if isinstance(attr.extra, dict) else None
    texts = attr.extra.get("texts") if isinstance(attr.extra, dict) else None
    if attr.player_kind != "span" or not isinstance(spans, list) or not isinstance(texts, list) \
            or len(spans) != len(texts):
        return None
    out: list[Any] = []
    for text, per in zip(texts, spans):
        sides: list[list[tuple[int, int]]] = [[], []]
        for g, a, b in per:
            # a special token (include_special) is no span: (-1, 0, 0), or (1, 0, 0) on the second
            # side of a cosine pair (rev45t: rebuilding it as span (0, 0) was refused)
            if int(g) in (0, 1) and int(b) > int(a):
                sides[int(g)].append((int(a), int(b)))
        out.append((sides[0], sides[1]) if isinstance(text, (list, tuple)) else sides[0])
    return out


def recorded_specials(attr: Attribution) -> bool:
    """Whether a text attribution's players include special tokens (``include_special=True``:
    players with span ``(-1, 0, 0)`` in ``extra["text_spans"]``); its game is rebuilt so."""
    spans = attr.extra.get("text_spans") if isinstance(attr.extra, dict) else None
    if attr.player_kind not in ("word", "token", "sentence", "span") or not isinstance(spans, list):
        return False
    return any(isinstance(per, list) and any(int(s[0]) == -1 for s in per) for per in spans)


def group_players(texts: list[Any], players: Any, rows: np.ndarray) -> Any:
    """``players=`` of the texts ``rows`` of ``texts``: one span list per text follows its texts
    (each group of texts is scored on a game of its own texts), a shared setting stays."""
    from ..games.text import text_subset

    return text_subset(texts, players, [int(i) for i in rows])[1]


def text_players_mismatch(attr: Attribution, game: Any) -> str | None:
    """Why the text game rebuilt by a metric has other players than the credits (None when each
    text has the same players: names and character spans), e.g. ``players="words"`` for
    credits of spans or tokens."""
    extra = attr.extra if isinstance(attr.extra, dict) else {}
    names, spans = extra.get("text_players"), extra.get("text_spans")
    enc = getattr(game, "text", None)
    if not isinstance(names, list) or not isinstance(spans, list) or enc is None:
        return None
    got_names = [list(n) for n in enc.player_names]
    got_spans = [[tuple(int(v) for v in s) for s in sp] for sp in enc.player_spans]
    want_names = [[str(v) for v in n] for n in names]
    want_spans = [[tuple(int(v) for v in s) for s in sp] for sp in spans]
    if len(got_names) != len(want_names):
        return None  # other texts: the counts' own checks say so
    for i, (a, b, c, d) in enumerate(zip(got_names, want_names, got_spans, want_spans)):
        if a != b or c != d:
            return (f"the credits of text {i} are for players {b[:6]} but the game rebuilt for the "
                    f"metric has players {a[:6]}; pass the players= (and tokenizer) the attribution "
                    "was explained with.")
    return None


def sub_attribution(attr: Attribution, rows: np.ndarray, n: int) -> Attribution:
    """The attribution of texts ``rows`` (all with ``n`` players), cut to their players."""
    lay = attr.layout
    if lay.dense and len(lay.input_shapes) == 1:  # a text game's players are its one input
        lay = dataclasses.replace(lay, input_shapes=((n,),))
    flat = attr.flat()[rows][:, :, :n]
    std = attr.flat_stderr()

    def per_row(a: Any) -> Any:
        return None if a is None else np.asarray(a)[rows]

    extra = dict(attr.extra)
    for key in ("texts", "text_players", "text_spans"):
        if isinstance(extra.get(key), list):
            extra[key] = [extra[key][int(i)] for i in rows]
    names = [str(p) for p in extra["text_players"][0]] if extra.get("text_players") else \
        list(attr.player_names[:n])
    return dataclasses.replace(
        attr, values=lay.to_user(flat), stderr=None if std is None else lay.to_user(std[rows][:, :, :n]),
        player_names=names, targets=per_row(attr.targets), gap=per_row(attr.gap),
        base_values=per_row(attr.base_values), full_values=per_row(attr.full_values),
        index=None if attr.index is None else [attr.index[int(i)] for i in rows], layout=lay,
        extra=extra)


def _merge_draws(parts: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Shared-draw standard error of the weighted mean of the groups' means (independent
    draws per group): ``sqrt(sum w_g^2 se_g^2)``; unknown (NaN, with the first note) when a
    group's is."""
    if not any("stderr_draws" in ex for _, ex in parts):
        return {}
    notes = [ex["stderr_draws_note"] for _, ex in parts if "stderr_draws_note" in ex]
    draws = [float(ex.get("stderr_draws", math.nan)) for _, ex in parts]
    if notes or not all(math.isfinite(d) for d in draws):
        return {"stderr_draws": math.nan,
                "stderr_draws_note": notes[0] if notes else "a group's draw noise is unknown"}
    var = sum((w * d) ** 2 for (w, _), d in zip(parts, draws))
    dofs = [float(ex.get("stderr_draws_dof", math.inf)) for _, ex in parts]
    return {"stderr_draws": math.sqrt(var), "stderr_draws_dof": min(dofs)}


def evaluate_by_word_count(
    info: MetricInfo,
    attr: Attribution,
    inputs: Any,
    counts: list[int],
    call: Callable[[Any, Attribution, np.ndarray, int], MetricResult],
) -> MetricResult:
    """Score texts of different word counts group by group and merge the results.

    Args:
        info: the metric's registry entry.
        attr: the attribution of the whole batch (players padded to the longest text).
        inputs: the texts (a list).
        counts: players of each text.
        call: ``call(texts, sub_attribution, rows, n) -> MetricResult``: the metric on one
            group (``rows``: the group's positions in the batch; ``n``: its word count).

    Returns:
        One :class:`MetricResult` over the batch: per-sample ``scores`` in batch order, mean and
        standard error over every text, ``extra["by_word_count"]`` with each group's
        ``rows``, ``n_players``, ``n_evals`` and its ``extra`` entries that could not be
        merged; ``n_evals`` is the largest per-input count of the groups.
    """
    b = len(counts)
    results: list[tuple[np.ndarray, int, MetricResult]] = []
    seen: set[str] = set()
    for n, rows in group_rows(counts):
        # its errors name the group (sample numbers count within it); its own warnings are
        # re-issued once each, the merged result warns about its standard error itself
        with group_scope(n, rows, seen, "scored"), undefined_reported():  # the merged result warns
            res = call([inputs[int(i)] for i in rows], sub_attribution(attr, rows, n), rows, n)
        results.append((rows, n, res))
    multi = attr.layout.multi_target
    t = attr.flat().shape[1]
    vals = np.full((b, t), np.nan)
    extra: dict[str, Any] = {}
    groups: list[dict[str, Any]] = []
    keys = set.intersection(*(set(r.extra) for _, _, r in results)) - set(_DERIVED)
    keys -= {"stderr_draws", "stderr_draws_note", "stderr_draws_dof", "stderr_draws_skew"}
    for key in sorted(keys):
        got = [r.extra[key] for _, _, r in results]
        if key in _PER_SAMPLE and all(isinstance(g, np.ndarray) and g.ndim >= 1 and g.shape[0] == rows.size
               for g, (rows, _, _) in zip(got, results)) and len({g.shape[1:] for g in got}) == 1:
            merged = np.empty((b, *got[0].shape[1:]), dtype=np.result_type(*got))
            for g, (rows, _, _) in zip(got, results):
                merged[rows] = g
            extra[key] = merged
        elif key not in _PER_SAMPLE and all(isinstance(g, (str, int, float)) and g == got[0]
                                            for g in got):
            extra[key] = got[0]
    for rows, n, res in results:
        vals[rows] = np.asarray(res.scores, dtype=np.float64).reshape(rows.size, t)
        groups.append({"rows": rows, "n_players": n, "n_evals": res.n_evals,
                       "extra": {k: v for k, v in res.extra.items() if k not in extra}})
    extra["by_word_count"] = groups
    extra.update(_merge_draws([(rows.size / b, r.extra) for rows, _, r in results]))
    floors = [int(r.extra.get("min_samples_ci95", 0)) for _, _, r in results]
    if any(floors):
        extra["min_samples_ci95"] = max(floors)
    params = results[0][2].params
    out = finish(info, Scores(vals, extra), params, max(r.n_evals for _, _, r in results),
                 sum(r.seconds for _, _, r in results), multi_target=multi)
    return out
