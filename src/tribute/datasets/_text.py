"""Token sequences with planted trigger tokens."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import Dataset, register

PAD = 0


@register("planted_text")
def planted_text(n: int = 2000, seq_len: int = 16, vocab: int = 50,
                 triggers: Sequence[int] = (1, 2), max_triggers: int = 2,
                 seed: int = 0) -> Dataset:
    """Random token sequences; label 1 iff at least one trigger token occurs (any position).

    The rule is "any trigger present" (a disjunction), not an ordered pair: each planted
    trigger alone suffices for class 1. Token ``0`` is reserved as padding / baseline token
    and never occurs; ordinary tokens are uniform over ``vocab`` minus ``{0} ∪ triggers``.
    Exactly ``n // 2`` sequences are positive; each contains between 1 and ``max_triggers``
    trigger tokens (drawn from ``triggers``) at distinct random positions. Negatives contain
    none.

    Args:
        n: Number of sequences; default=2000.
        seq_len: Tokens per sequence; default=16.
        vocab: Vocabulary size, including the padding token 0; default=50.
        triggers: Trigger token ids, in ``1 .. vocab - 1``; default=(1, 2).
        max_triggers: Most triggers per positive sequence (<= seq_len); default=2.
        seed: Seed; default=0.

    Returns:
        Classification :class:`Dataset`: ``X`` int64 token ids ``n × seq_len``, ``y`` int64,
        ``ground_truth`` bool ``n × seq_len`` marking trigger positions (all False in
        negatives). ``meta``: ``"vocab_size"``, ``"pad_token"`` (0, the natural baseline),
        ``"triggers"``, ``"rule"``.
    """
    trig = np.unique(np.asarray(triggers, dtype=np.int64))
    if trig.size == 0 or trig.min() < 1 or trig.max() >= vocab or vocab - 1 - trig.size < 1:
        raise ValueError(f"planted_text: triggers must be non-empty ids in 1..{vocab - 1} and "
                         f"leave ordinary tokens in the vocabulary; got {tuple(triggers)}")
    if not 1 <= max_triggers <= seq_len:
        raise ValueError(f"planted_text: max_triggers must be in 1..{seq_len}, "
                         f"got {max_triggers}")
    rng = np.random.default_rng(seed)
    ordinary = np.setdiff1d(np.arange(1, vocab), trig)
    X = ordinary[rng.integers(0, ordinary.size, size=(n, seq_len))]
    y = rng.permutation((np.arange(n) < n // 2).astype(np.int64))
    count = np.where(y == 1, rng.integers(1, max_triggers + 1, size=n), 0)
    rank = np.argsort(rng.random((n, seq_len)), axis=1).argsort(axis=1)
    gt = rank < count[:, None]
    X[gt] = trig[rng.integers(0, trig.size, size=int(gt.sum()))]
    return Dataset(
        name="planted_text",
        X=X.astype(np.int64),
        y=y,
        task="classification",
        ground_truth=gt,
        meta={
            "params": {"n": n, "seq_len": seq_len, "vocab": vocab,
                       "triggers": tuple(int(t) for t in trig), "max_triggers": max_triggers,
                       "seed": seed},
            "n_classes": 2,
            "vocab_size": vocab,
            "pad_token": PAD,
            "triggers": tuple(int(t) for t in trig),
            "rule": "label 1 iff any trigger token occurs",
            "note": "negatives have an all-False ground-truth mask",
        },
    )
