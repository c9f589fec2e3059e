"""aud46t (stop 46): explain_generation on a hand-written (non Hugging Face) causal model with
learned absolute positions, under each removal, prefix reuse on and off, and a tokenizer
set to left or right padding: exact Shapley values of every per-token log-probability (and
the total) vs the model called by hand on each coalition's own prompt (deleted tokens
dropped, no padding anywhere)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gen_models import make_tokenizer, shapley_by_enumeration

import tribute


class _CausalMean(torch.nn.Module):
    """Logits at position i read tokens 0..i only (a running mean of token + position embeddings)."""

    def __init__(self, vocab: int, width: int = 16, positions: int = 40) -> None:
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, width)
        self.pos = torch.nn.Embedding(positions, width)
        self.mix = torch.nn.Linear(width, width)
        self.head = torch.nn.Linear(width, vocab)

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        length = input_ids.shape[1]
        h = self.tok(input_ids) + self.pos(torch.arange(length))[None]
        mean = torch.cumsum(h, 1) / torch.arange(1, length + 1)[None, :, None]
        return self.head(torch.tanh(self.mix(mean)))


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("removal", ["delete", "pad", "mask"])
@pytest.mark.parametrize("kv_reuse", [True, False])
def test_custom_model_matches_hand_enumeration(side: str, removal: str, kv_reuse: bool) -> None:
    tok = make_tokenizer()
    tok.padding_side = side
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _CausalMean(len(tok)).double().eval()
    prompt = "the cat sat on the mat"
    ids = list(tok(prompt)["input_ids"])  # [BOS] + 6 tokens
    a = tribute.explain_generation(model, tok, prompt, max_new_tokens=3, method="exact_shapley",
                                   removal=removal, kv_reuse=kv_reuse)
    assert list(a.prompt_ids) == ids
    cont = list(a.generated_ids)
    fill = {"pad": tok.pad_token_id, "mask": tok.mask_token_id}.get(removal)

    def value(keep: tuple[int, ...]) -> np.ndarray:
        seq = [ids[0]]
        for k, i in zip(keep, ids[1:]):
            if k:
                seq.append(i)
            elif fill is not None:
                seq.append(int(fill))
        with torch.no_grad():
            lp = model(torch.tensor([seq + cont]))[0].log_softmax(-1)
        per = [float(lp[len(seq) - 1 + t, cont[t]]) for t in range(len(cont))]
        return np.array([*per, sum(per)])

    truth = shapley_by_enumeration(value, len(ids) - 1)
    got = np.vstack([a.matrix, a.total[None]])
    np.testing.assert_allclose(got, truth, atol=1e-12)
    np.testing.assert_allclose(a.log_probs, value((1,) * (len(ids) - 1))[:-1], atol=1e-12)
