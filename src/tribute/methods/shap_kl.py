"""SHAP-KL and label leakage: evaluating feature selections without conditioning on the label.

**SHAP-KL** is a value function, not an estimator: ``tribute.explain(model, x,
method=<any Shapley estimator>, output="kl")`` explains the game
``v(S) = -KL(p(.|x) || p(.|x_S))`` (see :mod:`tribute.targets`), so exact enumeration,
permutation sampling, KernelSHAP and every other estimator work on it unchanged, with
efficiency ``sum_i phi_i = KL(p(.|x) || p(.|x_empty))``.

**Label leakage** (Jethani, Saporta and Ranganath, "Don't be fooled: label leakage in
explanation methods and the importance of their quantitative evaluation", AISTATS 2023): an
explanation that *selects* features by looking at the predicted label can encode that label
in the selection itself. An evaluation that asks "can the label be read from the explanation?"
(for example an evaluator trained on masked inputs *and* the mask, as in EVAL-X-style
evaluations that condition on the predicted class) then rewards the leak: it reads the label
from *which* features were chosen, not from their values. A distribution-aware evaluation
that only asks how far the model's label distribution moves when the other features are
removed, ``KL(p(.|x) || p(.|x_S))`` (the SHAP-KL game), gains nothing from the choice pattern.

:func:`label_leakage` builds the paper's diagnostic for any selection of ``k`` features per
input:

- ``leaky_accuracy`` — accuracy of the best predictor of the model's predicted label from the
  selection *pattern* alone (majority label per distinct selected set; the Bayes-optimal
  evaluator that sees only which features were kept). Near 1 while the kept features carry no
  information is the signature of leakage.
- ``kl_retained`` — the fraction of the full-input information the selection keeps under the
  SHAP-KL game, ``1 - KL(p(.|x) || p(.|x_S)) / KL(p(.|x) || p(.|x_empty))``, averaged over
  inputs (1: the kept features alone reproduce the label distribution; 0: no better than
  removing everything).

Both are computed through the counted game interface (one coalition per input).

>>> import torch, tribute
>>> net = torch.nn.Linear(3, 2).double()
>>> x = torch.randn(4, 3, dtype=torch.float64)
>>> a = tribute.explain(net, x, method="exact_shapley", output="kl", baseline=0.0)
>>> tuple(a.values.shape), bool((a.values.sum(1) >= -1e-9).all())  # sum = KL(full || empty) >= 0
((4, 3), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..games.base import Game
from .analyses import register_analysis

__all__ = ["LeakageReport", "label_leakage", "top_k_selection"]


@dataclass(frozen=True)
class LeakageReport:
    """The label-leakage diagnostic of a feature selection (see the module docstring).

    Attributes:
        leaky_accuracy: accuracy of predicting the model's label from the selection pattern
            alone (majority label per distinct selected set), in [0, 1].
        chance_accuracy: accuracy of always predicting the most frequent label (the floor).
        kl_retained: mean over inputs of ``1 - KL(p||p_S) / KL(p||p_empty)``.
        kl_per_input: ``batch`` values of ``KL(p(.|x) || p(.|x_S))`` (nats).
        labels: ``batch`` predicted labels.
        n_evals: model evaluations spent.
    """

    leaky_accuracy: float
    chance_accuracy: float
    kl_retained: float
    kl_per_input: np.ndarray
    labels: np.ndarray
    n_evals: int


def _cpu(t: torch.Tensor) -> torch.Tensor:
    """A tensor numpy can read: detached, on the CPU, bfloat16 as float32 (numpy has none)."""
    t = t.detach().cpu()
    return t.float() if t.dtype == torch.bfloat16 else t


def top_k_selection(values: Any, k: int) -> np.ndarray:
    """``batch x players`` boolean masks keeping the ``k`` largest credits of each row.

    NaN credits that end a row (a shorter text's padding players, as :func:`tribute.explain` gives
    texts of different lengths) are never kept; each row needs at least ``k`` credits before them.
    A NaN anywhere else cannot be ranked and is refused."""
    # an Attribution's credits; not a tensor's own ``.values`` (a method: top_k_selection(attr.values, k)
    # on a torch tensor raised "float() argument must be ... not 'builtin_function_or_method'")
    held = getattr(values, "values", None) if not isinstance(values, (torch.Tensor, np.ndarray)) else None
    src = values if held is None or callable(held) else held
    arr = np.asarray(_cpu(src) if isinstance(src, torch.Tensor) else src, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"top_k_selection: values must be batch x players; got shape {arr.shape}.")
    if not 1 <= k <= arr.shape[1]:
        raise InputError(f"top_k_selection: k={k} must be in 1..{arr.shape[1]} (the number of players).")
    nan = np.isnan(arr)
    if nan.any():
        # NaN credits ending a row are a shorter text's padding (tribute.explain pads texts of different
        # lengths to the longest one's players): never kept, as before (the full refusal of aud49k turned
        # explain(texts) -> top_k_selection(attr, k) -> label_leakage into an error; rev49k). A NaN
        # elsewhere has no rank (argsort put it last: silently never kept), and a row with fewer than k
        # credits would keep padding (an all-NaN row kept its first k players).
        n_real = (~nan).sum(axis=1)
        inner = (nan != (np.arange(arr.shape[1])[None, :] >= n_real[:, None])).any(axis=1)
        if inner.any():
            raise InputError(
                f"top_k_selection: values hold NaN before the end of {int(inner.sum())} of {arr.shape[0]} rows "
                f"(first: row {int(np.flatnonzero(inner)[0])}); a NaN credit cannot be ranked (only NaN padding "
                "at a row's end, as for shorter texts, is left out). Drop those rows or recompute their credits.")
        short = n_real < k
        if short.any():
            i, empty = int(np.flatnonzero(short)[0]), n_real == 0
            fix = [f"use k <= {int(n_real[~empty].min())} or select the shorter rows apart"] \
                if (short & ~empty).any() else []
            if empty.any():
                fix.append(f"drop the {int(empty.sum())} rows whose credits are all NaN (first: row "
                           f"{int(np.flatnonzero(empty)[0])})")
            raise InputError(
                f"top_k_selection: k={k} but {int(short.sum())} of {arr.shape[0]} rows have fewer credits before "
                f"their NaN padding (first: row {i}, {int(n_real[i])} players); {' and '.join(fix)}.")
    idx = np.argsort(-arr, axis=1, kind="stable")[:, :k]
    out = np.zeros(arr.shape, dtype=bool)
    np.put_along_axis(out, idx, True, axis=1)
    return out


@register_analysis("label_leakage", kind="decision", paper="Jethani, Saporta & Ranganath (2023), Don't be "
                   "fooled: label leakage in explanation methods and the importance of their "
                   "quantitative evaluation (AISTATS)")
def label_leakage(game: Game, selection: Any) -> LeakageReport:
    """Score a feature selection two ways: from its pattern (leaky) and by SHAP-KL (not).

    Args:
        game: a game built with ``output="kl"`` (``tribute.build_game(model, x,
            output="kl", baseline=...)``); removed features take the game's baseline.
        selection: ``batch x players`` booleans (True = kept), e.g. from
            :func:`top_k_selection`.

    Returns:
        A :class:`LeakageReport`.
    """
    target = getattr(game, "target", None)
    if target is None or getattr(target, "kl_reference", None) is None:
        raise InputError("label_leakage: the game must be built with output='kl' (the SHAP-KL game).")
    module = getattr(getattr(game, "model", None), "module", None)
    if isinstance(module, torch.nn.Module):
        # the game is the user's (tribute.build_game opens no session): a dropout or batch norm in
        # training mode made p(.|x) and every KL random (two identical calls: 0.165 vs 0.064 nats)
        # (a dropout with p=0, as timm's and many configs' defaults, draws nothing: not refused)
        live = [n or type(m).__name__ for n, m in module.named_modules() if m.training and (
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            or (isinstance(m, torch.nn.modules.dropout._DropoutNd) and float(m.p) > 0.0))]
        if live:
            raise InputError(
                f"label_leakage: the game's model has dropout / batch-norm modules in training mode ({live[:3]}"
                f"{' ...' if len(live) > 3 else ''}), so its label distributions are random draws. Call "
                "model.eval() before tribute.build_game(...).")
    raw = np.asarray(_cpu(selection) if isinstance(selection, torch.Tensor) else selection)
    if raw.shape != (game.n_samples, game.n_players):
        raise InputError(
            f"label_leakage: selection has shape {raw.shape}; expected (batch, players) = "
            f"({game.n_samples}, {game.n_players}), one boolean per player (True = kept)."
        )
    if raw.dtype == object and all(isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))
                                   and v in (0, 1) for v in raw.flat):
        # pandas masks with nullable ``boolean`` / ``Int64`` or mixed bool and int columns come as
        # objects: aud46k's check refused them, where main scored them right (rev46k)
        raw = raw.astype(bool)
    if raw.dtype != bool and not (raw.dtype.kind in "iuf" and np.isin(raw, (0, 1)).all()):
        # credits or probabilities passed as the selection were read as "kept where non-zero" (every
        # feature, silently: leaky accuracy 0.625 and kl_retained 1.0 for top-2 masks scoring 1.0 / 0.865)
        bad = raw[~np.isin(raw, (0, 1))][:3].tolist() if raw.dtype.kind in "iuf" else raw.reshape(-1)[:3].tolist()
        raise InputError(
            f"label_leakage: selection must be booleans (True = kept) or 0/1 values; got dtype {raw.dtype} "
            f"with values such as {bad}. For credits, keep the k largest per row: "
            "tribute.top_k_selection(attr, k).")
    sel = raw.astype(bool)
    start = game.n_evals
    kept = game.value(torch.as_tensor(sel[:, None, :], dtype=torch.float64))[:, 0, 0].numpy()
    empty = game.empty()[:, 0].numpy()
    kl_s, kl_0 = -kept, -empty
    retained = np.where(kl_0 > 0, 1.0 - kl_s / np.where(kl_0 > 0, kl_0, 1.0), 1.0)
    labels = target.kl_reference.argmax(dim=1).cpu().numpy()
    keys = [row.tobytes() for row in sel]
    votes: dict[bytes, dict[int, int]] = {}
    for key, lab in zip(keys, labels):
        votes.setdefault(key, {}).setdefault(int(lab), 0)
        votes[key][int(lab)] += 1
    correct = sum(max(v.values()) for v in votes.values())
    chance = np.bincount(labels).max() / len(labels)
    return LeakageReport(float(correct / len(labels)), float(chance), float(retained.mean()),
                         kl_s, labels, int(game.n_evals - start))
