"""Text games: removal options against enumeration, estimators, gradients, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _text_models import (
    BagOfEmbeddings,
    all_masks,
    minilm_tokenizer,
    shapley_by_enumeration,
    tiny_bert,
)

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.models.text import WordTokenizer, segment

VOCAB = ["the", "cat", "sat", "on", "mat", "a", "dog", "barked", "loudly"]
TEXTS = ["the cat sat on the mat", "a dog barked"]


def _hooks(model: torch.nn.Module) -> int:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, n, {})) for m in model.modules() for n in names)


@pytest.fixture(scope="module")
def bag() -> tuple[BagOfEmbeddings, WordTokenizer]:
    tok = WordTokenizer(VOCAB, bos=True)
    return BagOfEmbeddings(tok.vocab_size), tok


@pytest.fixture(scope="module")
def bert() -> tuple[torch.nn.Module, object]:
    tok = minilm_tokenizer()
    return tiny_bert(tok.vocab_size), tok


# ------------------------------------------------------------------ references
def _bert_value(model: torch.nn.Module, ids: list[int], target: int, embeds: torch.Tensor | None = None) -> float:
    with torch.no_grad():
        if embeds is not None:
            out = model(inputs_embeds=embeds[None]).logits
        else:
            out = model(input_ids=torch.tensor([ids])).logits
    return float(out[0, target])


@pytest.mark.parametrize("removal", ["mask", "unk", "delete", "zero", "mean", 1000])
def test_exact_shapley_equals_enumeration_on_tiny_bert(bert: tuple, removal: object) -> None:
    model, tok = bert
    text = "The weather's great today"
    enc = segment(text, tok, "words")
    ids, tp = enc.input_ids[0].tolist(), enc.token_player[0].tolist()
    n = enc.n_players[0]
    emb = model.get_input_embeddings().weight.detach()
    v: dict[tuple[int, ...], float] = {}
    for s in all_masks(n):
        keep = [p < 0 or s[p] == 1 for p in tp]
        if removal == "delete":
            v[s] = _bert_value(model, [t for t, k in zip(ids, keep) if k], 2)
        elif removal in ("zero", "mean"):
            e = emb[torch.tensor(ids)].clone()
            base = torch.zeros(emb.shape[1], dtype=emb.dtype) if removal == "zero" else emb.mean(0)
            for j, k in enumerate(keep):
                if not k:
                    e[j] = base
            v[s] = _bert_value(model, [], 2, embeds=e)
        else:
            rid = {"mask": tok.mask_token_id, "unk": tok.unk_token_id}.get(removal, removal)  # type: ignore[call-overload]
            v[s] = _bert_value(model, [t if k else rid for t, k in zip(ids, keep)], 2)
    truth = shapley_by_enumeration(v, n)
    attr = tribute.explain(model, text, tokenizer=tok, method="exact_shapley", removal=removal,
                           target=2, progress=False)
    assert attr.player_names == ["The", "weather's", "great", "today"]
    assert attr.player_kind == "word"
    np.testing.assert_allclose(attr.values[0], truth, rtol=1e-9, atol=1e-12)
    assert attr.n_evals == 2**n
    assert attr.full_values is not None and attr.base_values is not None
    assert math.isclose(float(attr.full_values[0]), v[(1,) * n], rel_tol=1e-12)
    assert math.isclose(float(attr.base_values[0]), v[(0,) * n], rel_tol=1e-12, abs_tol=1e-12)


def test_batch_of_texts_pads_players_with_nan_and_matches_single_calls(bag: tuple) -> None:
    model, tok = bag
    attr = tribute.explain(model, TEXTS, tokenizer=tok, method="exact_shapley", progress=False)
    assert attr.values.shape == (2, 6)
    assert np.isnan(attr.values[1, 3:]).all() and np.isfinite(attr.values[1, :3]).all()
    assert attr.extra["text_players"] == [TEXTS[0].split(), TEXTS[1].split()]
    for i, t in enumerate(TEXTS):
        one = tribute.explain(model, t, tokenizer=tok, method="exact_shapley", progress=False)
        np.testing.assert_allclose(attr.values[i, : len(t.split())], one.values[0], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("method", ["kernel_shap", "shapley", "exact_shapley", "permutation_shapley",
                                    "feature_ablation", "lime", "banzhaf", "shapley_interactions"])
def test_every_perturbation_estimator_runs_within_budget(bag: tuple, method: str) -> None:
    model, tok = bag
    budget = 64
    # lime's kernel reads the number of players: its texts of 6 and 3 words run as two calls
    # (each its full budget per input; n_rows their sum, n_evals the larger), merged
    attr = tribute.explain(model, TEXTS, tokenizer=tok, method=method, removal="delete",
                           budget=None if method in ("exact_shapley", "shapley_interactions",
                                                     "feature_ablation") else budget,
                           progress=False)
    vals = np.asarray(attr.values)
    assert vals.shape == (2, 6)
    assert np.isfinite(vals[0]).all() and np.isnan(vals[1, 3:]).all()
    # lime's two calls each run their distinct draws once (eng46): n_rows their sum, n_evals the larger
    assert attr.n_rows <= 2 * attr.n_evals if method == "lime" else attr.n_rows == 2 * attr.n_evals
    if method in ("kernel_shap", "shapley", "permutation_shapley", "lime", "banzhaf"):
        assert attr.n_evals <= budget


def test_efficient_estimators_match_exact_with_enough_budget(bag: tuple) -> None:
    model, tok = bag
    exact = tribute.explain(model, TEXTS[0], tokenizer=tok, method="exact_shapley", progress=False)
    ks = tribute.explain(model, TEXTS[0], tokenizer=tok, method="kernel_shap", budget=64, progress=False)
    np.testing.assert_allclose(ks.values, exact.values, atol=1e-8)  # 2^6 = 64: exact regression


def test_feature_ablation_is_leave_one_out(bag: tuple) -> None:
    model, tok = bag
    attr = tribute.explain(model, TEXTS[1], tokenizer=tok, method="feature_ablation", removal="pad",
                           target=0, progress=False)
    ids = segment(TEXTS[1], tok).input_ids
    with torch.no_grad():
        full = float(model(ids)[0, 0])
        for i in range(3):
            x = ids.clone()
            x[0, i + 1] = tok.pad_token_id
            assert math.isclose(float(attr.values[0, i]), full - float(model(x)[0, 0]), rel_tol=1e-12)


def test_integrated_gradients_completeness_and_input_x_gradient(bert: tuple) -> None:
    model, tok = bert
    text = "The weather's great today"
    ig = tribute.explain(model, text, tokenizer=tok, method="integrated_gradients", removal="mask",
                         target=1, steps=64, progress=False)
    fa = tribute.explain(model, text, tokenizer=tok, method="exact_shapley", removal="mask",
                         target=1, progress=False)
    assert fa.full_values is not None and fa.base_values is not None
    total = float(fa.full_values[0] - fa.base_values[0])
    assert abs(float(ig.values.sum()) - total) < 1e-6 * max(1.0, abs(total))
    # input x gradient = sum over the player's tokens and dims of (e - b) * df/de
    ixg = tribute.explain(model, text, tokenizer=tok, method="input_x_gradient", removal="zero",
                          target=1, progress=False)
    enc = segment(text, tok)
    emb = model.get_input_embeddings()
    e = emb(enc.input_ids).detach().requires_grad_(True)
    out = model(inputs_embeds=e, attention_mask=enc.attention_mask).logits[0, 1]
    (g,) = torch.autograd.grad(out, e)
    per_tok = (g * e.detach()).sum(-1)[0]
    tp = enc.token_player[0]
    ref = [float(per_tok[tp == p].sum()) for p in range(4)]
    np.testing.assert_allclose(ixg.values[0], ref, rtol=1e-9, atol=1e-12)


def test_gradient_methods_run_and_delete_refuses_them(bag: tuple) -> None:
    model, tok = bag
    for method in ("saliency", "smoothgrad", "integrated_gradients", "input_x_gradient"):
        a = tribute.explain(model, TEXTS, tokenizer=tok, method=method, removal="mask", progress=False)
        assert np.asarray(a.values).shape == (2, 6) and np.isnan(a.values[1, 3:]).all()
    with pytest.raises((InputError, UnsupportedModelError), match="gradients"):
        tribute.explain(model, TEXTS, tokenizer=tok, method="saliency", removal="delete", progress=False)


def test_model_left_exactly_as_it_was_also_after_errors(bert: tuple) -> None:
    model, tok = bert
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    tribute.explain(model, "a short text", tokenizer=tok, method="integrated_gradients",
                    removal="zero", target=0, steps=4, progress=False)
    tribute.explain(model, "a short text", tokenizer=tok, method="kernel_shap", budget=16,
                    removal="delete", target=0, progress=False)
    with pytest.raises(InputError):
        tribute.explain(model, "a short text", tokenizer=tok, method="kernel_shap", target=99,
                        progress=False)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert _hooks(model) == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    model.eval()


def test_bad_inputs_name_the_argument(bag: tuple, bert: tuple) -> None:
    model, tok = bag
    small = BagOfEmbeddings(5)  # fewer rows than the tokenizer's ids
    with pytest.raises(InputError, match="does not match the model's vocabulary"):
        tribute.explain(small, "the cat", tokenizer=tok, method="feature_ablation", progress=False)
    with pytest.raises(InputError, match="tokenizer=None"):
        tribute.explain(model, ["the cat"], method="feature_ablation", progress=False)
    with pytest.raises(InputError, match="empty string"):
        tribute.explain(model, ["the cat", ""], tokenizer=tok, method="feature_ablation", progress=False)
    with pytest.raises(InputError, match=r"texts\[1\] is a int"):
        tribute.explain(model, ["the cat", 5], tokenizer=tok, method="feature_ablation", progress=False)
    with pytest.raises(InputError, match="removal='blank'"):
        tribute.explain(model, "the cat", tokenizer=tok, removal="blank", progress=False)
    with pytest.raises(InputError, match="do not apply to texts"):
        tribute.explain(model, "the cat", tokenizer=tok, baseline=2.0, progress=False)
    bmodel, btok = bert
    with pytest.raises(InputError, match="at most 64"):
        tribute.explain(bmodel, "word " * 80, tokenizer=btok, method="feature_ablation", progress=False)


def test_delete_needs_an_attention_mask_and_seeds_reproduce(bag: tuple) -> None:
    _, tok = bag

    class NoMask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(tok.vocab_size, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.emb(ids).sum(1)

    with pytest.raises(InputError, match="attention_mask"):
        tribute.explain(NoMask(), "the cat", tokenizer=tok, removal="delete", progress=False)
    model, _ = bag
    runs = [tribute.explain(model, TEXTS, tokenizer=tok, method="kernel_shap", budget=32, seed=3,
                            progress=False) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].values, runs[1].values)


def test_plot_is_escaped_html(bag: tuple) -> None:
    model, tok = bag
    attr = tribute.explain(model, ["the <cat> sat", "a dog"], tokenizer=tok,
                           method="exact_shapley", progress=False)
    html = attr.plot(0)
    assert "&lt;" in html.data and "<cat>" not in html.data
    assert html._repr_html_() == html.data
    assert (attr._repr_html_() or "").count("<span") >= 5
    second = attr.plot(1).data
    assert second.count("<span") == 2 and "nan" not in second.lower()


def test_component_players_of_texts_match_token_inputs(bert: tuple) -> None:
    model, tok = bert
    heads = tribute.components(model, ["bert.encoder.layer.0", "bert.encoder.layer.1"], unit="head")
    texts = ["a short text", "another one here"]
    attr = tribute.explain(model, texts, tokenizer=tok, players=heads, method="feature_ablation",
                           target=0, progress=False)
    assert attr.values.shape == (2, 4) and attr.player_kind == "component"
    enc = segment(texts, tok)
    ref = tribute.explain(model, enc.input_ids, players=heads, method="feature_ablation", target=0,
                          forward_kwargs={"attention_mask": enc.attention_mask,
                                          "token_type_ids": enc.token_type_ids}, progress=False)
    np.testing.assert_allclose(np.asarray(attr.values), np.asarray(ref.values), rtol=1e-12)
    with torch.no_grad():
        full = model(input_ids=enc.input_ids[:1, :5]).logits[0, 0]  # text 0 alone, unpadded
    assert attr.full_values is not None
    assert math.isclose(float(attr.full_values[0]), float(full), rel_tol=1e-9)


class _BagWithoutMask(torch.nn.Module):
    """Mean of token embeddings -> tanh -> linear; ``forward(ids)`` takes no attention mask."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.emb = torch.nn.Embedding(vocab, 4)
        self.lin = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(vocab, 4, generator=g))
            self.lin.weight.copy_(torch.randn(2, 4, generator=g))
        self.double()

    def head(self, e: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(e.mean(-2)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids))


def test_model_without_attention_mask_never_reads_the_padding_of_shorter_texts() -> None:
    # a shorter text shares the call with a longer one: the model must see it unpadded (the
    # padded text is another input, with another output), for token and embedding removal
    tok = WordTokenizer(VOCAB, bos=True)
    model = _BagWithoutMask(tok.vocab_size)
    long_text, short = TEXTS
    ids = tok.encode_offsets(short)[0]  # [bos, a, dog, barked]
    n = len(ids) - 1
    with torch.no_grad():
        v = {m: float(model(torch.tensor([[ids[0]] + [t if k else tok.mask_token_id
                                                        for t, k in zip(ids[1:], m)]]))[0, 1])
             for m in all_masks(n)}
        e = model.emb(torch.tensor(ids))
        e_zero = e.clone()
        e_zero[1:] = 0.0
        gap = float(model.head(e)[1] - model.head(e_zero)[1])
    truth = shapley_by_enumeration(v, n)
    attr = tribute.explain(model, [long_text, short], method="exact_shapley", tokenizer=tok,
                           target=1, removal="mask")
    np.testing.assert_allclose(np.asarray(attr.values)[1, :n], truth, atol=1e-12)
    np.testing.assert_allclose(np.asarray(attr.full_values)[1], v[(1,) * n], atol=1e-12)
    ig = tribute.explain(model, [long_text, short], method="integrated_gradients", tokenizer=tok,
                         target=1, removal="zero", steps=64)
    np.testing.assert_allclose(np.nansum(np.asarray(ig.values)[1]), gap, atol=1e-10)


def test_label_names_of_a_hugging_face_classifier_are_targets(bert: tuple) -> None:
    """``target="pos"`` reads ``config.id2label`` (it was refused: "not understood"), also as
    a list or one per text; an unknown name is refused with the names."""
    model, tok = bert
    old = dict(model.config.id2label), dict(model.config.label2id)
    model.config.id2label = {0: "neg", 1: "neu", 2: "pos"}
    model.config.label2id = {"neg": 0, "neu": 1, "pos": 2}
    try:
        kw = {"tokenizer": tok, "method": "exact_shapley", "removal": "mask", "progress": False}
        texts = ["a fine day", "so dull"]
        by_name = tribute.explain(model, texts, target="pos", **kw)
        by_index = tribute.explain(model, texts, target=2, **kw)
        np.testing.assert_array_equal(np.asarray(by_name.values), np.asarray(by_index.values))
        several = tribute.explain(model, texts, target=["neg", "pos"], **kw)
        np.testing.assert_array_equal(np.asarray(several.values)[:, 1], np.asarray(by_index.values))
        per_text = tribute.explain(model, texts, target=np.array(["pos", "neg"]), **kw)
        both = tribute.explain(model, texts, target=np.array([2, 0]), **kw)
        np.testing.assert_array_equal(np.asarray(per_text.values), np.asarray(both.values))
        with pytest.raises(InputError, match=r"'happy'.*neg"):
            tribute.explain(model, texts, target="happy", **kw)
    finally:
        model.config.id2label, model.config.label2id = old


def test_plot_names_special_token_players(bert: tuple) -> None:
    # with include_special=True the highlighted text listed [CLS]/[SEP] as "<special j>"
    model, tok = bert
    attr = tribute.explain(model, ["a short text"], tokenizer=tok, include_special=True,
                           method="feature_ablation", target=0, progress=False)
    names = attr.extra["text_players"][0]
    assert "[CLS]" in names and "[SEP]" in names
    html = attr.plot(0).data
    assert "[CLS]" in html and "[SEP]" in html and "&lt;special" not in html
