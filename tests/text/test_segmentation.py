"""Segmentation: tokens -> players for words, tokens, sentences and character spans."""

from __future__ import annotations

import pytest
import torch
from _text_models import minilm_tokenizer

from tribute.errors import InputError
from tribute.models.text import TextBatch, WordTokenizer, segment


def _check_names_are_substrings(enc: TextBatch) -> None:
    for text, names, spans in zip(enc.texts, enc.player_names, enc.player_spans):
        parts = [text] if isinstance(text, str) else list(text)
        for name, (g, a, b) in zip(names, spans):
            if g >= 0:
                assert parts[g][a:b] == name


def test_words_merge_subwords_and_skip_specials() -> None:
    tok = minilm_tokenizer()
    text = "Unbelievably, the weather's great."
    enc = segment(text, tok, "words")
    assert enc.player_names == [["Unbelievably", ",", "the", "weather's", "great", "."]]
    tp = enc.token_player[0].tolist()
    ids = enc.input_ids[0].tolist()
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tp[0] == -1 and tp[-1] == -1
    # "Unbelievably" is several word pieces, all mapped to player 0
    assert tp.count(0) == len(tok.tokenize("Unbelievably")) > 1
    assert tp.count(3) == len(tok.tokenize("weather's")) == 3
    _check_names_are_substrings(enc)


def test_tokens_sentences_and_include_special() -> None:
    tok = minilm_tokenizer()
    text = "It rains. The streets are wet!"
    toks = segment(text, tok, "tokens")
    assert [n.lower() for n in toks.player_names[0]] == tok.tokenize(text)  # names keep the case
    sents = segment(text, tok, "sentences")
    assert sents.player_names == [["It rains.", "The streets are wet!"]]
    special = segment(text, tok, "sentences", include_special=True)
    assert special.player_names[0][2:] == ["[CLS]", "[SEP]"]  # named by their tokens
    pair = segment(("It rains.", "The streets are wet!"), tok, "sentences", include_special=True)
    last = len(pair.tokens[0]) - 1
    sep = [j for j, t in enumerate(pair.tokens[0]) if t == "[SEP]"]
    assert pair.player_names[0][2:] == ["[CLS]", f"[SEP] @{sep[0]}", f"[SEP] @{last}"]
    typed = segment("a [SEP] b", tok, "words", include_special=True)  # a word spelled like a token
    names = typed.player_names[0]
    assert len(set(names)) == len(names) and "[CLS]" in names
    assert (special.token_player[0] >= 0).all()
    _check_names_are_substrings(toks)
    _check_names_are_substrings(sents)


def test_spans_and_batch_padding() -> None:
    tok = WordTokenizer(["the", "cat", "sat", "on", "mat"], bos=True)
    enc = segment(["the cat sat on the mat", "the cat"], tok, [[(0, 7), (15, 22)], [(4, 7)]])
    assert enc.player_names == [["the cat", "the mat"], ["cat"]]
    assert enc.token_player.tolist() == [[-1, 0, 0, -1, -1, 1, 1], [-1, -1, 0, -1, -1, -1, -1]]
    assert enc.attention_mask.tolist() == [[1] * 7, [1, 1, 1, 0, 0, 0, 0]]
    assert enc.input_ids[1, 3:].tolist() == [tok.pad_token_id] * 4


def test_pairs_segment_ids_and_one_sided_players() -> None:
    tok = minilm_tokenizer()
    enc = segment(("A man plays.", "Someone plays music."), tok, "words")
    assert enc.player_names == [["A", "man", "plays", ".", "Someone", "plays", "music", "."]]
    assert [s[0] for s in enc.player_spans[0]] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert enc.token_type_ids is not None and int(enc.token_type_ids.max()) == 1
    first_only = segment(("A man plays.", "Someone plays music."), tok, ("words", None))
    assert first_only.player_names == [["A", "man", "plays", "."]]
    _check_names_are_substrings(enc)


def test_bpe_tokens_spanning_words_merge_into_one_player() -> None:
    class Chunky:  # a tokenizer whose second token crosses a word boundary
        pad_token_id = 0

        def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
            return [5, 6, 7], [(0, 2), (2, 8), (8, 10)]  # "ab", " cd ef", "gh"

    enc = segment("ab cd efgh", Chunky(), "words")  # words "ab", "cd", "efgh"
    assert enc.player_names == [["ab", "cd efgh"]]
    assert enc.token_player.tolist() == [[0, 1, 1]]


@pytest.mark.parametrize(
    ("texts", "players", "match"),
    [
        ("", "words", "empty string"),
        (["ok", "   "], "words", r"texts\[1\] is an empty string"),
        (3, "words", "int"),
        (["fine", 7], "words", r"texts\[1\] is a int"),
        ("the cat", "paragraphs", "players='paragraphs'"),
        ("the cat", [(0, 5), (3, 7)], "overlap"),
        ("the cat", [(0, 50)], "outside the text"),
        ("!!!", [(0, 1)], None),
    ],
)
def test_bad_inputs_name_the_argument(texts: object, players: object, match: str | None) -> None:
    tok = WordTokenizer(["the", "cat"])
    if match is None:
        assert segment(texts, tok, players).player_names == [["!"]]
        return
    with pytest.raises(InputError, match=match):
        segment(texts, tok, players)


def test_too_long_is_refused_and_slow_tokenizer_explained() -> None:
    tok = WordTokenizer(["a"])
    with pytest.raises(InputError, match=r"texts\[0\] has 6 tokens but the model takes at most 4"):
        segment("a a a a a a", tok, max_length=4)

    class NotATokenizer:
        pass

    with pytest.raises(InputError, match="tokenizer of type NotATokenizer"):
        segment("a", NotATokenizer())


def test_word_tokenizer_ids() -> None:
    tok = WordTokenizer(["hello", "world"])
    enc = segment("Hello, world zzz", tok)
    assert enc.input_ids.tolist() == [[4, tok.unk_token_id, 5, tok.unk_token_id]]
    assert enc.player_names == [["Hello", ",", "world", "zzz"]]
    assert torch.equal(enc.token_player, torch.tensor([[0, 1, 2, 3]]))


def test_span_players_out_of_order_or_merged_warn_with_the_players_they_became() -> None:
    """Span players follow the text order (and spans sharing a token merge): values were
    silently in another order than the spans given; a warning now names the players."""
    import warnings

    tok = WordTokenizer(["the", "plot", "was", "thin"])
    text = "the plot was thin"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = segment(text, tok, [(0, 3), (4, 8)])  # in order: no warning
    assert enc.player_names == [["the", "plot"]]
    with pytest.warns(UserWarning, match=r"players are \[\(0, 3\), \(4, 8\)\], not the spans as given \[\(4, 8\), \(0, 3\)\]") as seen:
        enc = segment(text, tok, [(4, 8), (0, 3)])
    assert enc.player_names == [["the", "plot"]]
    assert seen[0].filename == __file__
    with pytest.warns(UserWarning, match="merge"):
        segment(text, tok, [(0, 2), (2, 3)])  # both inside the token "the": one player
