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


# ----------------------------------------------------------------------- word players
#: Ordinary words: short (one sub-token, at most 5 letters) and long (two sub-tokens).
SHORT_WORDS = ("the", "a", "cat", "dog", "sat", "ran", "big", "red", "old", "new", "park",
               "tree", "house", "blue", "green", "small", "bird", "sun", "road", "milk",
               "door", "lamp", "hat", "cup", "fish", "rain", "book", "car", "hill", "bread")
LONG_WORDS = ("garden", "window", "yellow", "kitchen", "morning", "evening", "quickly",
              "slowly", "teacher", "student", "village", "mountain", "blanket", "pencil",
              "market", "letter", "bottle", "jacket", "bridge", "forest")
#: Trigger words (one short, one long): label 1 iff one of them occurs.
TRIGGER_WORDS = ("great", "wonderful")
#: Word-length class of each slot of a sentence: 0 = short (1 sub-token), 1 = long (2).
SLOTS = (0, 1, 0, 1, 0, 0, 1, 0)


class SubwordTokenizer:
    """A tiny deterministic sub-word tokenizer: words are cut into pieces of at most 5 letters.

    ``"wonderful" -> "wonde", "##rful"``. Ids: 0 pad, 1 unk, 2 mask, then the pieces of the
    vocabulary in order. Implements :class:`tribute.models.text.OffsetTokenizer` (character
    offsets per piece), so ``tribute.explain(model, texts, tokenizer=...)`` maps pieces back
    to words.

    Args:
        words: the vocabulary.
        piece: letters per piece. default=5.
    """

    pad_token_id = 0
    unk_token_id = 1
    mask_token_id = 2

    def __init__(self, words: Sequence[str], piece: int = 5) -> None:
        self.piece = piece
        pieces: dict[str, int] = {}
        for w in words:
            for p in self._pieces(w.lower()):
                pieces.setdefault(p, len(pieces) + 3)
        self.vocab = pieces
        self.vocab_size = len(pieces) + 3

    def _pieces(self, word: str) -> list[str]:
        return [("##" if i else "") + word[i : i + self.piece] for i in range(0, len(word), self.piece)]

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        import re

        ids: list[int] = []
        offs: list[tuple[int, int]] = []
        for m in re.finditer(r"\S+", text):
            word = m.group().lower()
            for i, p in enumerate(self._pieces(word)):
                ids.append(self.vocab.get(p, self.unk_token_id))
                start = m.start() + i * self.piece
                offs.append((start, min(start + self.piece, m.end())))
        return ids, offs


@register("planted_words")
def planted_words(n: int = 2000, max_triggers: int = 2, seed: int = 0) -> Dataset:
    """Sentences of real words, tokenized into sub-words; label 1 iff a trigger word occurs.

    Every sentence has 8 words whose lengths follow :data:`SLOTS` (short words are one
    sub-token, long words two), so all sentences have the same 11 tokens and the same
    token -> word map ``meta["word_of_token"]``: the players of the text game are words made of
    one or two tokens. Positives hold 1..``max_triggers`` trigger words ("great" in a short
    slot or "wonderful" in a long one) at random slots; negatives none.

    Returns:
        Classification :class:`Dataset`: ``X`` int64 sub-token ids ``n × 11``, ``y`` int64,
        ``ground_truth`` bool ``n × 11`` marking the trigger words' tokens. ``meta``:
        ``"texts"`` (the sentences), ``"word_of_token"``, ``"vocab_size"``, ``"pad_token"``,
        ``"mask_token"``, ``"trigger_words"``, ``"rule"``; ``tokenizer()`` on the dataset's
        vocabulary is :func:`planted_words_tokenizer`.
    """
    if not 1 <= max_triggers <= len(SLOTS):
        raise ValueError(f"planted_words: max_triggers must be in 1..{len(SLOTS)}, got {max_triggers}")
    rng = np.random.default_rng(seed)
    pools = (np.array(SHORT_WORDS), np.array(LONG_WORDS))
    words = np.empty((n, len(SLOTS)), dtype=object)
    for j, cls in enumerate(SLOTS):
        words[:, j] = pools[cls][rng.integers(0, pools[cls].size, size=n)]
    y = rng.permutation((np.arange(n) < n // 2).astype(np.int64))
    count = np.where(y == 1, rng.integers(1, max_triggers + 1, size=n), 0)
    rank = np.argsort(rng.random((n, len(SLOTS))), axis=1).argsort(axis=1)
    trig_word = rank < count[:, None]
    for i, j in zip(*np.nonzero(trig_word)):
        words[i, j] = TRIGGER_WORDS[SLOTS[j]]
    texts = [" ".join(row) for row in words.tolist()]
    tok = planted_words_tokenizer()
    word_of_token = np.array([j for j, cls in enumerate(SLOTS) for _ in range(cls + 1)], dtype=np.int64)
    X = np.array([tok.encode_offsets(t)[0] for t in texts], dtype=np.int64)
    gt = trig_word[:, word_of_token]
    return Dataset(
        name="planted_words",
        X=X,
        y=y,
        task="classification",
        ground_truth=gt,
        meta={
            "params": {"n": n, "max_triggers": max_triggers, "seed": seed},
            "n_classes": 2,
            "texts": texts,
            "word_of_token": word_of_token,
            "vocab_size": tok.vocab_size,
            "pad_token": tok.pad_token_id,
            "mask_token": tok.mask_token_id,
            "trigger_words": TRIGGER_WORDS,
            "rule": "label 1 iff 'great' or 'wonderful' occurs",
        },
    )


def planted_words_tokenizer() -> SubwordTokenizer:
    """The :class:`SubwordTokenizer` of :func:`planted_words` (its whole vocabulary)."""
    return SubwordTokenizer(SHORT_WORDS + LONG_WORDS + TRIGGER_WORDS)
