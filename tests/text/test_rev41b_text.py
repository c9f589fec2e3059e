"""rev41b: word players keep the combining marks of scripts other than Latin (Thai, Arabic
harakat, a Japanese dakuten written apart) with a tokenizer that gives character offsets
inside a word (a BPE over whitespace-split words, as byte-level tokenizers do).

Truth: ``str.split()`` (these texts have no punctuation, so a word is the run between spaces).
On main, Python's ``\\w`` split the words at every mark: 8 "words" for the 2 of the Thai
text, 'ั' and 'ื' among them as players of their own.
"""

from __future__ import annotations

import unicodedata

import pytest

from tribute.models.text import segment

TEXTS = ["สวัสดีครับ ผมชื่อสมชาย", "مَرْحَبًا بِالْعَالَم", unicodedata.normalize("NFD", "がっこうへ いきます"),
         "नमस्ते दुनिया"]


def _bpe() -> object:
    pytest.importorskip("transformers")
    tk = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    tok = tk.Tokenizer(tk.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tk.pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(TEXTS * 3, tk.trainers.BpeTrainer(vocab_size=60, special_tokens=["[PAD]", "[UNK]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


@pytest.mark.parametrize("text", TEXTS)
def test_words_keep_their_marks_in_other_scripts(text: str) -> None:
    tok = _bpe()
    words = segment([text], tok, players="words").player_names[0]
    assert words == text.split()
    tokens = segment([text], tok, players="tokens").player_names[0]
    assert "".join(tokens) == "".join(text.split())  # every character, in order, NFD kept
