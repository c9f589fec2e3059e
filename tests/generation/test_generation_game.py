"""The generation game's values against a direct, obviously-correct computation."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from gen_models import shapley_by_enumeration

import tribute
from tribute.games.generation import PREFIX_GROUPS, GenerationGame
from tribute.methods.generation import prepare_generation

PROMPT = "the cat sat on the"


def direct_value(lm: Any, prompt: list[int], cont: list[int], players: list[int], keep: np.ndarray,
                 replace: int | None) -> np.ndarray:
    """``T + 1`` log-probs by one plain forward per coalition (no cache, no batching)."""
    ids: list[int] = []
    for pos, t in enumerate(prompt):
        if pos in players and not keep[players.index(pos)]:
            if replace is not None:
                ids.append(replace)
        else:
            ids.append(t)
    seq = torch.tensor([ids + cont])
    with torch.no_grad():
        logp = torch.log_softmax(lm(input_ids=seq).logits[0].double(), -1)
    vals = [float(logp[len(ids) - 1 + i, c]) for i, c in enumerate(cont)]
    return np.array([*vals, sum(vals)])


def _game(lm: Any, tok: Any, removal: int | None, kv: bool) -> tuple[GenerationGame, Any]:
    prep = prepare_generation(lm, tok, PROMPT, max_new_tokens=3)
    repl = None if removal is None else torch.full((len(prep.prompt_ids),), removal)
    game = GenerationGame(lm, torch.tensor(prep.prompt_ids), torch.tensor(prep.continuation),
                          prep.groups, prep.names, ["a", "b", "c"][: len(prep.continuation)],
                          repl, kv_reuse=kv)
    return game, prep


@pytest.mark.parametrize("removal", [0, None], ids=["pad", "delete"])
@pytest.mark.parametrize("kv", [True, False], ids=["kv", "nokv"])
def test_values_equal_direct_forward(lm: Any, tok: Any, removal: int | None, kv: bool) -> None:
    game, prep = _game(lm, tok, removal, kv)
    n = game.n_players
    every = np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)
    pick = np.random.default_rng(0).choice(len(every) - 2, size=10, replace=False) + 1
    masks = np.vstack([every[:1], every[pick], every[-1:]])  # empty, 10 others, full
    vals = game.value(masks)[0].numpy()
    players = [g[0] for g in prep.groups]
    want = np.stack([direct_value(lm, prep.prompt_ids, prep.continuation, players, m, removal)
                     for m in masks])
    np.testing.assert_allclose(vals, want, rtol=0, atol=1e-10)
    assert game.n_evals == 1 + len(masks)
    np.testing.assert_allclose(game.full()[0].numpy(), want[-1], atol=1e-10)
    if kv:
        assert game.positions_run < game.positions_full  # prefix reuse ran fewer positions
    else:
        assert game.positions_run == game.positions_full


def test_kv_reuse_saves_positions_for_ablation(gpt2: Any, tok: Any) -> None:
    res = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=4, method="feature_ablation")
    base = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=4, method="feature_ablation",
                                      kv_reuse=False)
    np.testing.assert_allclose(res.values, base.values, atol=1e-10)
    n, length = len(res.prompt_tokens), len(res.prompt_ids) + len(res.generated_ids)
    assert base.positions_run == (n + 1) * length
    # leave-one-out of player i (position i + 1 after BOS) may start at position i + 1; the
    # rows are cut into PREFIX_GROUPS groups by that position, each run from its smallest one
    groups = np.array_split(np.arange(1, n + 1), min(PREFIX_GROUPS, n))
    assert res.positions_run == length + sum(len(g) * (length - int(g[0])) for g in groups)
    assert res.positions_run < base.positions_run


def test_words_group_subword_tokens(gpt2: Any, tok: Any) -> None:
    prep = prepare_generation(gpt2, tok, "walking the cat", max_new_tokens=2, players="words")
    assert prep.names == ["walking", "the", "cat"]
    assert [len(g) for g in prep.groups] == [2, 1, 1]
    res = tribute.explain_generation(gpt2, tok, "walking the cat", max_new_tokens=2,
                                     method="exact_shapley", players="words")
    assert res.matrix.shape == (2, 3)
    # efficiency on every output: credits sum to v(N) - v(empty)
    gap = res.attribution.gap
    assert gap is None or np.abs(gap).max() < 1e-9


def test_a_prompt_ending_in_an_unknown_character_keeps_it(gpt2: Any, tok: Any) -> None:
    """The tiny tokenizer reads "." as its unk token, a special id: a trailing one that is no
    player (span players elsewhere) was dropped as if the tokenizer had appended it, so every
    value was of another prompt. Tokens with characters of the prompt are kept."""
    prompt = "the cat sat on the log."
    ids = tok(prompt)["input_ids"]
    assert ids[-1] == tok.unk_token_id
    res = tribute.explain_generation(gpt2, tok, prompt, target=[5, 9], players=[(4, 7)],
                                     method="exact_shapley", removal="delete", progress=False)
    assert res.prompt_ids == ids
    cat = 2  # position of "cat" (after BOS and "the")
    v = {}
    for keep in (0, 1):
        row = ids if keep else ids[:cat] + ids[cat + 1:]
        with torch.no_grad():
            lp = gpt2(input_ids=torch.tensor([[*row, 5, 9]])).logits[0].log_softmax(-1)
        v[keep] = np.array([float(lp[len(row) - 1, 5]), float(lp[len(row), 9])])
    np.testing.assert_allclose(res.log_probs, v[1], rtol=1e-10)
    np.testing.assert_allclose(res.matrix[:, 0], v[1] - v[0], rtol=1e-9, atol=1e-12)


def test_a_target_ending_in_an_unknown_character_gives_no_tokenization_warning(gpt2: Any, tok: Any) -> None:
    """"." is the tiny tokenizer's unk token: the joint tokenization's trailing unk was stripped
    as if it closed the text, so a target ending in "." always warned that it tokenizes
    differently after the prompt."""
    import warnings

    from tribute.methods.generation import TokenizationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenizationWarning)
        res = tribute.explain_generation(gpt2, tok, "the cat sat", target=" on the log.",
                                         method="feature_ablation", removal="pad", progress=False)
    assert res.generated_ids[-1] == tok.unk_token_id


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_log_probs_are_scored_in_float32(tok: Any, dtype: torch.dtype) -> None:
    # the log-softmax over the vocabulary was taken in the model's dtype: 1e-2 off in bfloat16
    from gen_models import make_lm

    lm = make_lm("llama", len(tok), dtype=dtype)
    res = tribute.explain_generation(lm, tok, PROMPT, max_new_tokens=3, method="feature_ablation",
                                     removal="pad", kv_reuse=False, batch_size=1)
    players = [g[0] for g in prepare_generation(lm, tok, PROMPT, max_new_tokens=3).groups]
    n = len(players)
    want = [direct_value(lm, res.prompt_ids, res.generated_ids, players, keep, 0)
            for keep in [np.ones(n), *(1 - np.eye(n))]]
    np.testing.assert_allclose(res.log_probs, want[0][:-1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(res.values, np.stack([want[0] - w for w in want[1:]], 1), rtol=0, atol=2e-5)


def _arch(name: str, vocab: int) -> Any:
    import transformers as tf

    model: Any

    with torch.random.fork_rng():
        torch.manual_seed(0)
        if name == "mamba":  # a state-space cache: no keys and values to cut at a prefix
            model = tf.MambaForCausalLM(tf.MambaConfig(vocab_size=vocab, hidden_size=32,
                                                       num_hidden_layers=2, state_size=4))
        elif name == "mistral-window":  # sliding-window layers keep only the last 4 positions
            model = tf.MistralForCausalLM(tf.MistralConfig(
                vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, sliding_window=4, max_position_embeddings=64))
        else:  # gemma2: sliding and full layers, NaN in fully masked attention rows
            model = tf.Gemma2ForCausalLM(tf.Gemma2Config(
                vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=4,
                max_position_embeddings=64))
    return model.double().eval()


@pytest.mark.parametrize("removal", [0, None], ids=["pad", "delete"])
@pytest.mark.parametrize("name", ["mistral-window", "gemma2", "mamba"])
def test_caches_without_every_position_and_padding_give_direct_values(tok: Any, name: str,
                                                                       removal: int | None) -> None:
    # prefix reuse cut a sliding-window cache (its last window) as if it held the prefix
    # (gemma2 pad: 0.12 off, mistral delete: 1.3e-2 off) and crashed on Mamba's cache; masking
    # the right padding gave NaN in gemma2 (fully masked rows, then 0 * NaN)
    import warnings

    lm = _arch(name, len(tok))
    prompt = "the cat sat on"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = tribute.explain_generation(lm, tok, prompt, max_new_tokens=3, method="exact_shapley",
                                         removal="pad" if removal == 0 else "delete")
    prep = prepare_generation(lm, tok, prompt, max_new_tokens=3)
    players = [g[0] for g in prep.groups]
    phi = shapley_by_enumeration(
        lambda keep: direct_value(lm, prep.prompt_ids, prep.continuation, players, np.array(keep), removal),
        len(players))
    np.testing.assert_allclose(res.values, phi, rtol=0, atol=1e-6)
    if removal == 0:  # same-length rows: fewer positions run only through prefix reuse
        # attention caches are rebuilt with every position (reuse kept); a state-space one is not
        assert (res.positions_run < res.positions_full) == (name != "mamba")
