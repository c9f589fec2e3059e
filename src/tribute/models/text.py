"""Text segmentation: from strings and a tokenizer to token ids and a token -> player map.

:func:`segment` turns texts (or pairs of texts) into padded ``input_ids`` / ``attention_mask``
tensors and ``token_player``, the player id of every token (``-1``: not a player, always kept).
Players are ``"words"``, ``"tokens"``, ``"sentences"`` or explicit character spans; their names
are exact substrings of the text. Special tokens the tokenizer adds ([CLS], [SEP], BOS/EOS)
and padding are never players unless ``include_special=True``; a special token typed in the
text (``"[SEP]"`` or ``"</s>"`` in the string, which a Hugging Face tokenizer parses as that
special token) is the user's text: a player named as typed, like any word. A word made of
several sub-tokens is one player, and a combining mark (``"e\u0301"``) stays in the player of
the character it follows, so names reproduce the text's characters.

Two kinds of tokenizer work:

* a Hugging Face *fast* tokenizer (``PreTrainedTokenizerFast``): character offsets come from
  ``return_offsets_mapping`` and special tokens from ``return_special_tokens_mask``;
* anything implementing :class:`OffsetTokenizer`: ``encode_offsets(text) -> (ids, offsets)``
  with ``(0, 0)`` offsets for special tokens, plus ``pad_token_id`` (and optionally
  ``mask_token_id``, ``unk_token_id``). :class:`WordTokenizer` is a small one for plain torch
  modules over word ids.

How a token is assigned: a token belongs to every unit (word, sentence, span) whose characters
it overlaps (whitespace excluded); units sharing a token merge into one player (a BPE token
spanning two words makes them one player), so every token has at most one player.

Texts longer than the model's maximum length are refused (an error naming the text, its length
and the limit): truncating silently would drop players the user asked about.

>>> tok = WordTokenizer(["the", "cat", "sat"], bos=True)
>>> enc = segment(["the cat sat", "the cat"], tok)
>>> enc.player_names
[['the', 'cat', 'sat'], ['the', 'cat']]
>>> enc.token_player.tolist()
[[-1, 0, 1, 2], [-1, 0, 1, -1]]
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import InputError, user_stacklevel

__all__ = [
    "PLAYER_UNITS",
    "MeanPooling",
    "OffsetTokenizer",
    "TextBatch",
    "WordTokenizer",
    "as_texts",
    "encode_one",
    "segment",
]

#: Names accepted by ``players=`` (besides explicit character spans).
PLAYER_UNITS = ("words", "tokens", "sentences")

_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_SENTENCE = re.compile(r"[^.!?]*(?:[.!?]+|$)")

Text = str | tuple[str, str]


@runtime_checkable
class OffsetTokenizer(Protocol):
    """The minimal tokenizer protocol for plain torch modules over token ids.

    ``encode_offsets(text)`` returns the token ids of ``text`` (special tokens included) and one
    ``(start, end)`` character span per token, ``(0, 0)`` for special tokens.
    """

    pad_token_id: int | None

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]: ...


class WordTokenizer:
    """A whitespace/punctuation word tokenizer over a fixed vocabulary (implements the protocol).

    Ids: ``0`` = pad, ``1`` = unk, ``2`` = mask, ``3`` = bos (added first when ``bos=True``),
    then the vocabulary in order. Words are matched lower-cased.

    Args:
        vocab: the known words.
        bos: prepend a BOS token to every text. default=False.
    """

    pad_token_id = 0
    unk_token_id = 1
    mask_token_id = 2
    bos_token_id = 3

    def __init__(self, vocab: Sequence[str], bos: bool = False) -> None:
        self.vocab = {w.lower(): i + 4 for i, w in enumerate(dict.fromkeys(vocab))}
        self.bos = bos
        self.vocab_size = len(self.vocab) + 4

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids = [self.bos_token_id] if self.bos else []
        offs = [(0, 0)] if self.bos else []
        for m in _WORD.finditer(text):
            ids.append(self.vocab.get(m.group().lower(), self.unk_token_id))
            offs.append((m.start(), m.end()))
        return ids, offs


@dataclass
class TextBatch:
    """Texts tokenized, padded and mapped to players.

    Attributes:
        texts: the texts (a pair is a ``(first, second)`` tuple).
        input_ids: ``batch x length`` long, padded with the pad id.
        attention_mask: ``batch x length`` long (1 = real token).
        token_type_ids: ``batch x length`` long segment ids for pairs encoded together, or None.
        token_player: ``batch x length`` long player id per token, ``-1`` when not a player.
        player_names: per text, the players' names (exact substrings of the text).
        player_spans: per text, ``(segment, start, end)`` character span of each player
            (``segment`` is 0 for a single text or the first of a pair, 1 for the second).
        tokens: per text, the token strings (the text's characters for tokens with offsets,
            the tokenizer's own string for special tokens).
    """

    texts: list[Text]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    token_player: torch.Tensor
    player_names: list[list[str]]
    player_spans: list[list[tuple[int, int, int]]]
    tokens: list[list[str]]

    @property
    def n_players(self) -> list[int]:
        """Number of players per text."""
        return [len(n) for n in self.player_names]

    @property
    def max_players(self) -> int:
        return max(self.n_players) if self.player_names else 0


# ------------------------------------------------------------------ inputs
def as_texts(texts: Any, name: str = "texts") -> tuple[list[Text], bool]:
    """Validate texts: a string, a ``(first, second)`` pair, or a list of either.

    Returns ``(list of texts, single)``; ``single`` is True when one text (or pair) was given.
    """
    def check_one(t: Any, where: str) -> Text:
        if isinstance(t, str):
            if not t.strip():
                raise InputError(f"{where} is an empty string; give text with at least one word.")
            return t
        if isinstance(t, tuple) and len(t) == 2 and all(isinstance(s, str) for s in t):
            for j, s in enumerate(t):
                if not s.strip():
                    raise InputError(f"{where}[{j}] is an empty string; both texts of a pair need words.")
            return (t[0], t[1])
        raise InputError(
            f"{where} is a {type(t).__name__} ({t!r:.60}); give a string, a (first, second) "
            "tuple of strings for a sentence pair, or a list of them."
        )

    if isinstance(texts, str) or (isinstance(texts, tuple) and len(texts) == 2
                                  and all(isinstance(s, str) for s in texts)):
        return [check_one(texts, name)], True
    if not isinstance(texts, (list, tuple)):
        raise InputError(
            f"{name} is a {type(texts).__name__}; give a string, a list of strings, or "
            "(first, second) tuples of strings for sentence pairs."
        )
    if not texts:
        raise InputError(f"{name} is empty; give at least one text.")
    out = [check_one(t, f"{name}[{i}]") for i, t in enumerate(texts)]
    kinds = {isinstance(t, tuple) for t in out}
    if len(kinds) > 1:
        raise InputError(f"{name} mixes single texts and pairs; give one kind per call.")
    return out, False


# ------------------------------------------------------------------ tokenizers
def _is_hf(tokenizer: Any) -> bool:
    return hasattr(tokenizer, "convert_ids_to_tokens") and callable(tokenizer)


def encode_one(tokenizer: Any, text: Text) -> tuple[list[int], list[tuple[int, int]], list[int],
                                                   list[bool], list[int] | None, list[str]]:
    """One text (or pair) through ``tokenizer``: ids, character offsets, segment per token (-1
    special), special flags, token types, token strings."""
    if isinstance(tokenizer, OffsetTokenizer) and not _is_hf(tokenizer):
        parts = [text] if isinstance(text, str) else list(text)
        ids: list[int] = []
        offs: list[tuple[int, int]] = []
        seg: list[int] = []
        for k, part in enumerate(parts):
            i, o = tokenizer.encode_offsets(part)
            if len(i) != len(o):
                raise InputError(
                    f"tokenizer.encode_offsets returned {len(i)} ids but {len(o)} offsets; "
                    "give one (start, end) span per token."
                )
            ids += [int(v) for v in i]
            offs += [(int(a), int(b)) for a, b in o]
            seg += [k] * len(i)
        special = [a == b for a, b in offs]
        seg = [-1 if s else g for s, g in zip(special, seg)]
        toks = [("<special>" if sp else parts[max(g, 0)][a:b]) for sp, g, (a, b) in zip(special, seg, offs)]
        return ids, offs, seg, special, None, toks
    if not _is_hf(tokenizer):
        raise InputError(
            f"tokenizer of type {type(tokenizer).__name__} is not supported; pass a Hugging Face "
            "fast tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True)) or an object "
            "with encode_offsets(text) -> (ids, offsets) (see tribute.models.text.OffsetTokenizer)."
        )
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            f"tokenizer {type(tokenizer).__name__} is a slow (Python) tokenizer without offset "
            "mappings; load the fast one: AutoTokenizer.from_pretrained(name, use_fast=True)."
        )
    args = (text,) if isinstance(text, str) else (text[0], text[1])
    enc = tokenizer(*args, return_offsets_mapping=True, return_special_tokens_mask=True,
                    add_special_tokens=True, truncation=False)
    ids = [int(v) for v in enc["input_ids"]]
    offs = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    special = [bool(s) for s in enc["special_tokens_mask"]]
    seq = enc.sequence_ids()
    seg = [-1 if (sp or s is None) else int(s) for sp, s in zip(special, seq)]
    types = enc.get("token_type_ids")
    parts = [text] if isinstance(text, str) else list(text)
    raw = tokenizer.convert_ids_to_tokens(ids)
    toks = [raw[j] if g < 0 else parts[g][a:b] for j, (g, (a, b)) in enumerate(zip(seg, offs))]
    return ids, offs, seg, special, None if types is None else [int(t) for t in types], toks


# ------------------------------------------------------------------ units
def _units(text: str, players: Any, where: str) -> list[tuple[int, int]]:
    """Character spans of the candidate units of one text (before merging)."""
    if isinstance(players, str):
        if players == "words":
            return _words(text)
        if players == "sentences":
            spans = []
            for m in _SENTENCE.finditer(text):
                s, e = m.start(), m.end()
                while s < e and text[s].isspace():
                    s += 1
                while e > s and text[e - 1].isspace():
                    e -= 1
                if e > s:
                    spans.append((s, e))
            return spans
        raise InputError(
            f"players={players!r} is not one of {PLAYER_UNITS} or a list of (start, end) "
            "character spans."
        )
    try:
        spans = sorted((int(a), int(b)) for a, b in players)
    except (TypeError, ValueError):
        raise InputError(
            f"players for {where} must be {PLAYER_UNITS} or (start, end) character spans; got "
            f"{players!r:.80}."
        ) from None
    for (a, b), nxt in zip(spans, [*spans[1:], (len(text), len(text))]):
        if not 0 <= a < b <= len(text):
            raise InputError(
                f"players span ({a}, {b}) of {where} is outside the text (length {len(text)}) "
                "or empty; give 0 <= start < end <= len(text)."
            )
        if b > nxt[0]:
            raise InputError(f"players spans ({a}, {b}) and {nxt} of {where} overlap; give disjoint spans.")
    return spans


def _is_mark(ch: str) -> bool:
    """A combining mark (Unicode category M*: an accent written as its own character, a vowel
    sign of an Indic script); Python's ``\\w`` does not match it."""
    return unicodedata.category(ch).startswith("M")


def _words(text: str) -> list[tuple[int, int]]:
    """Word spans: :data:`_WORD` matches, with combining marks kept in the word they follow
    (``"cafe\\u0301"`` is one word, not ``"cafe"`` and a lone accent; a word with a vowel
    sign in its middle stays one word)."""
    spans: list[tuple[int, int]] = []
    for m in _WORD.finditer(text):
        a, b = m.start(), m.end()
        if spans and spans[-1][1] == a and a > 0 and (_is_mark(text[a]) or (
                _is_mark(text[a - 1]) and not _is_mark(text[a]) and _WORD.match(text, a) is not None
                and (text[a].isalnum() or text[a] == "_"))):
            spans[-1] = (spans[-1][0], b)  # a mark joins its base; the word goes on after it
        else:
            spans.append((a, b))
    return spans


def _marks_after(text: str, b: int, taken: set[int]) -> int:
    """``b`` moved past the combining marks that follow it and no token covers (a tokenizer
    that strips accents gives ``"cafe\\u0301"`` the offsets of ``"cafe"``)."""
    while b < len(text) and b not in taken and _is_mark(text[b]):
        b += 1
    return b


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _assign(parts: list[str], offs: list[tuple[int, int]], seg: list[int], special: list[bool],
            players: Any, include_special: bool, where: str, toks: list[str] | None = None,
            ) -> tuple[list[int], list[str], list[tuple[int, int, int]]]:
    """Player id per token, player names and spans for one text (or pair).

    Units (words, sentences, spans, or the tokens themselves) are collected per segment; a
    token belongs to the units it overlaps, and units sharing a token merge (union-find).
    """
    n_tok = len(offs)
    stripped = [_strip(parts[g], *offs[j]) if g >= 0 else (0, 0) for j, g in enumerate(seg)]
    # a token's span takes the combining marks after it that no token covers, so that players
    # (and their names) hold every character of the text: "cafe\u0301", not "cafe"
    taken = [{c for j, (a, b) in enumerate(stripped) if seg[j] == g for c in range(a, b)}
             for g in range(len(parts))]
    stripped = [(a, _marks_after(parts[g], b, taken[g])) if g >= 0 and b > a else (a, b)
                for (a, b), g in zip(stripped, seg)]
    units: list[tuple[int, int, int]] = []
    for g, part in enumerate(parts):
        setting = players[g] if (isinstance(players, tuple) and len(parts) == 2) else players
        label = f"{where}[{g}]" if len(parts) == 2 else where
        if setting is None:
            continue
        if isinstance(setting, str) and setting == "tokens":
            spans_g = sorted({(a, b) for j, (a, b) in enumerate(stripped) if seg[j] == g and b > a})
        else:
            spans_g = _units(part, setting, label)
        units += [(g, a, b) for a, b in spans_g]
    parent = list(range(len(units)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_seg: dict[int, list[int]] = {}
    for u, (g, _, _) in enumerate(units):
        by_seg.setdefault(g, []).append(u)
    tok_units: list[list[int]] = []
    for j in range(n_tok):
        g = seg[j]
        a, b = stripped[j]
        hit = [u for u in by_seg.get(g, []) if b > a and units[u][1] < b and a < units[u][2]] \
            if g >= 0 else []
        for u in hit[1:]:
            parent[find(u)] = find(hit[0])
        tok_units.append(hit)
    members: dict[int, list[int]] = {}
    for u in sorted({u for hit in tok_units for u in hit}):
        members.setdefault(find(u), []).append(u)
    groups = sorted(members.values(), key=lambda us: (units[us[0]][0], units[us[0]][1]))
    pid: dict[int, int] = {}
    names: list[str] = []
    spans: list[tuple[int, int, int]] = []
    for i, us in enumerate(groups):
        g = units[us[0]][0]
        a, b = min(units[u][1] for u in us), max(units[u][2] for u in us)
        pid[find(us[0])] = i
        names.append(parts[g][a:b])
        spans.append((g, a, b))
    tp = [pid[find(h[0])] if h else -1 for h in tok_units]
    for g in range(len(parts)):
        setting = players[g] if (isinstance(players, tuple) and len(parts) == 2) else players
        if setting is None or isinstance(setting, str):
            continue
        given = [(int(a), int(b)) for a, b in setting]
        got = [(a, b) for h, a, b in spans if h == g]
        if got != given:
            label = f"{where}[{g}]" if len(parts) == 2 else where
            warnings.warn(
                f"players spans of {label}: the players are {got[:6]}, not the spans as given "
                f"{given[:6]} (players follow the text order; spans sharing a token merge, spans "
                "covering no token are dropped); value j belongs to attr.extra['text_spans'][j] / "
                "['text_players'][j], not to the j-th span given.", UserWarning, stacklevel=user_stacklevel())
    return _specials(tp, names, spans, special, include_special, toks)


def _specials(tp: list[int], names: list[str], spans: list[tuple[int, int, int]], special: list[bool],
              include_special: bool, toks: list[str] | None = None,
              ) -> tuple[list[int], list[str], list[tuple[int, int, int]]]:
    """Append special tokens as players (one each, after the text's players) when asked.

    Each is named by its token (``[CLS]``, ``</s>``; a token that occurs twice, like a pair's
    two ``[SEP]``, adds its position: ``[SEP] @5``), or ``<special j>`` when the tokenizer does
    not say (``encode_offsets`` tokenizers)."""
    if include_special:
        own = [toks[j] if toks is not None and j < len(toks) and toks[j] and toks[j] != "<special>"
               else None for j in range(len(special))]
        counts: dict[str, int] = {}
        for tok_j, sp in zip(own, special):
            if sp and tok_j is not None:
                counts[tok_j] = counts.get(tok_j, 0) + 1
        words = set(names)  # a text player spelled like a special token ("[SEP]" typed in the text)
        for j, sp in enumerate(special):
            if sp:
                tp[j] = len(names)
                tok = own[j]
                alone = tok is not None and counts[tok] == 1 and tok not in words
                names.append(f"<special {j}>" if tok is None else tok if alone else f"{tok} @{j}")
                spans.append((-1, 0, 0))
    return tp, names, spans


# ------------------------------------------------------------------ entry point
def segment(
    texts: Any,
    tokenizer: Any,
    players: Any = "words",
    *,
    include_special: bool = False,
    max_length: int | None = None,
    require_players: bool = True,
    pad_id: int | None = None,
) -> TextBatch:
    """Tokenize texts and map every token to its player.

    Args:
        texts: a string, a ``(first, second)`` pair (encoded together, as a cross-encoder
            reads it), or a list of either.
        tokenizer: a Hugging Face fast tokenizer or an :class:`OffsetTokenizer`.
        players: ``"words"``, ``"tokens"``, ``"sentences"``, or explicit ``(start, end)``
            character spans: one list for one text, a list of lists (one per text), or for
            pairs a ``(spans_first, spans_second)`` tuple per text. Tokens outside every span
            are not players (always kept). A word is a run of letters, digits and
            apostrophes with the combining marks written after its letters (an accent, an Indic
            or Thai vowel sign), or one punctuation mark; in a script written without spaces
            (Thai, Chinese, Japanese) a word is the whole run between spaces and punctuation,
            so use ``"tokens"`` (or spans) for finer players there. default="words".
        include_special: special tokens (CLS, SEP, BOS, EOS) become players too, after the
            text's players, named by their tokens (``[CLS]``; ``[SEP] @5`` for a token that
            occurs twice or is also a text player's name; ``<special j>`` when the tokenizer
            does not say). default=False.
        max_length: the most tokens a text may have (special tokens included); longer texts
            are refused. default=None (the tokenizer's ``model_max_length`` when it is a real
            limit, i.e. below 10**6).
        require_players: refuse a text without players. default=True (``players=None`` gives
            texts without players, e.g. the unexplained side of a pair, with False).
        pad_id: the id padding shorter texts. default=None (the tokenizer's pad id, 0 when it
            has none; :class:`tribute.games.text.TextGame` passes a Hugging Face model's
            ``config.pad_token_id``, the id such a model compares to find its padding).

    Returns:
        A :class:`TextBatch`; texts are right-padded with ``pad_id`` to the longest one.
    """
    items, _ = as_texts(texts)
    per_text = _per_text_players(players, items)
    limit = max_length
    if limit is None:
        m = getattr(tokenizer, "model_max_length", None)
        limit = int(m) if isinstance(m, int) and 0 < m < 10**6 else None
    rows = []
    for i, text in enumerate(items):
        where = f"texts[{i}]"
        ids, offs, seg, special, types, toks = encode_one(tokenizer, text)
        if limit is not None and len(ids) > limit:
            raise InputError(
                f"{where} has {len(ids)} tokens but the model takes at most {limit} (the "
                "smallest of max_length=, the tokenizer's model_max_length and the model's "
                "max_position_embeddings); shorten the text or explain it in parts (tribute "
                "refuses rather than truncating players away)."
            )
        parts = [text] if isinstance(text, str) else list(text)
        tp, names, spans = _assign(parts, offs, seg, special, per_text[i], include_special, where, toks)
        if not names and require_players:
            raise InputError(
                f"{where} ({text!r:.60}) has no players for players={per_text[i]!r:.40}; "
                "give text with words, or spans that cover some tokens."
            )
        rows.append((ids, types, tp, names, spans, toks))
    length = max(len(r[0]) for r in rows)
    pad = getattr(tokenizer, "pad_token_id", None) if pad_id is None else pad_id
    pad = 0 if pad is None else int(pad)
    b = len(rows)
    input_ids = torch.full((b, length), pad, dtype=torch.long)
    attention = torch.zeros((b, length), dtype=torch.long)
    token_player = torch.full((b, length), -1, dtype=torch.long)
    has_types = any(r[1] is not None for r in rows)
    token_types = torch.zeros((b, length), dtype=torch.long) if has_types else None
    for i, (ids, types, tp, _, _, _) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids, dtype=torch.long)
        attention[i, :n] = 1
        token_player[i, :n] = torch.tensor(tp, dtype=torch.long)
        if token_types is not None and types is not None:
            token_types[i, :n] = torch.tensor(types, dtype=torch.long)
    return TextBatch(
        texts=items, input_ids=input_ids, attention_mask=attention, token_type_ids=token_types,
        token_player=token_player, player_names=[r[3] for r in rows],
        player_spans=[r[4] for r in rows], tokens=[r[5] for r in rows],
    )


def _per_text_players(players: Any, items: list[Text]) -> list[Any]:
    """``players=`` expanded to one setting per text."""
    if isinstance(players, str) or players is None:
        return [players] * len(items)
    if not isinstance(players, (list, tuple)) or not players:
        raise InputError(
            f"players={players!r:.80} is not one of {PLAYER_UNITS} or a list of (start, end) "
            "character spans."
        )
    first = players[0]
    is_span = isinstance(first, (tuple, list)) and len(first) == 2 and all(
        isinstance(v, int) for v in first)
    pairs = isinstance(items[0], tuple)
    if pairs and isinstance(players, tuple) and len(players) == 2 and not is_span:
        return [players] * len(items)
    if is_span:
        if len(items) != 1 or pairs:
            raise InputError(
                "players: one list of (start, end) spans fits one text; for several texts give "
                "one list per text (for pairs a (spans_first, spans_second) tuple per text)."
            )
        return [list(players)]
    if len(players) != len(items):
        raise InputError(f"players has {len(players)} span lists but there are {len(items)} texts; give one per text.")
    return list(players)


class MeanPooling(torch.nn.Module):
    """Sentence embeddings from a token encoder: the attention-masked mean of its last hidden
    states, L2-normalised (how sentence-transformers' all-MiniLM-L6-v2 pools).

    ``forward(input_ids, attention_mask=None, token_type_ids=None) -> batch x dim``.

    Args:
        encoder: a Hugging Face encoder (``AutoModel``) returning ``last_hidden_state``, or a
            module returning ``batch x length x dim`` states.
        normalize: L2-normalise the embeddings. default=True.
    """

    def __init__(self, encoder: torch.nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize

    @property
    def masks_padding(self) -> bool:
        """Whether the output never reads padding: a Hugging Face encoder (it masks its
        attention by ``attention_mask``) and the masked mean. Text games then run rows of
        different token lengths as one padded batch instead of one pass per length."""
        enc = self.encoder
        return hasattr(enc, "config") and callable(getattr(enc, "get_input_embeddings", None))

    def get_input_embeddings(self) -> Any:
        get = getattr(self.encoder, "get_input_embeddings", None)
        return get() if callable(get) else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kw: dict[str, Any] = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        out = self.encoder(input_ids, **kw)
        h = getattr(out, "last_hidden_state", out)
        if isinstance(h, (tuple, list)):
            h = h[0]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e, dim=-1) if self.normalize else e
