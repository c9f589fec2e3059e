"""The ``generation`` suite: a causal LM that copies a planted prompt word.

Ground truth: prompts are six filler words (``the``, ``of``, ``and`` ...) with one content word
(``apple``, ``river`` ...) planted at a random position, followed by the marker ``answer``; a
one-layer GPT-2 (width 32, 2 heads) is trained for a few seconds (240 Adam steps, seed 0,
CPU) to continue with the planted word, then ``[EOS]`` (training prompts also contain blanks,
``[PAD]``, the removal token; one whose planted word is blanked is answered ``[UNK]``). The copied token's log-probability
depends on the planted word only, so a faithful attribution of the first generated token
puts its largest credit on the planted word. The players are the six words (character spans); the marker is kept in every
coalition (it is the query the copy needs, also causally necessary). Metrics per method: ``top1`` (share of prompts
whose largest credit is the planted word), ``rank`` (mean rank of the planted word, 1 =
best), evaluations and seconds. Ties count as broken at random (:func:`planted_rank`): a planted
word tied with ``t`` others scores ``top1 = 1 / (t + 1)`` and ``rank = 1 + greater + t / 2``, so
an all-equal attribution scores chance (1/6 and 3.5), not a hit whenever the word comes first. Nothing is downloaded: the tokenizer is a word-level
``tokenizers`` vocabulary built in memory.

Run it with ``tribute bench --suite generation`` (``generation-tiny``: 4 prompts, for tests);
needs the ``transformers`` and ``tokenizers`` packages (``pip install transformers``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..api import explain_generation
from ..errors import InputError

__all__ = ["GENERATION_METHODS", "CopyTask", "cmd_generation_suite", "copy_task",
           "format_generation_results", "planted_rank", "run_generation_suite"]

FILLERS = ("the", "a", "of", "and", "to", "in", "is", "it", "on", "at", "by", "as", "we", "so",
           "or", "if")
CONTENT = ("apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "rocket", "candle",
           "forest")
SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
MARKER = "answer"
PROMPT_WORDS = 6

#: Methods the suite compares (budgets: ``budget`` evaluations for the budgeted ones).
GENERATION_METHODS = ("feature_ablation", "permutation_shapley", "kernel_shap", "lime",
                      "reagent", "integrated_gradients")


@dataclass
class CopyTask:
    """The trained copy model, its tokenizer and the prompts with their planted word index."""

    model: torch.nn.Module
    tokenizer: Any
    prompts: list[str]
    planted: list[int]
    accuracy: float


def _tokenizer() -> Any:
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, processors
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:  # pragma: no cover - optional extra
        raise InputError("the generation suite needs transformers and tokenizers: "
                         "pip install transformers") from exc
    vocab = {w: i for i, w in enumerate((*SPECIALS, *FILLERS, *CONTENT, MARKER))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A",
                                                       special_tokens=[("[BOS]", vocab["[BOS]"])])
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
        eos_token="[EOS]")


def _sequences(gen: torch.Generator, rows: int, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows x (PROMPT_WORDS + 4)`` ids ``[BOS] words answer word [EOS]`` and planted indices."""
    f0, c0 = len(SPECIALS), len(SPECIALS) + len(FILLERS)
    words = torch.randint(f0, c0, (rows, PROMPT_WORDS), generator=gen)
    content = torch.randint(c0, c0 + len(CONTENT), (rows,), generator=gen)
    pos = torch.randint(0, PROMPT_WORDS, (rows,), generator=gen)
    words[torch.arange(rows), pos] = content
    if train:
        # blanks ([PAD], the removal token) appear in training, and a prompt whose content
        # word is blanked out is answered [UNK]: the copy is then the only way to the word
        words[torch.rand(rows, PROMPT_WORDS, generator=gen) < 0.1] = 0
        content = torch.where(words[torch.arange(rows), pos] == 0, torch.ones_like(content), content)
    marker = c0 + len(CONTENT)
    seq = torch.cat([torch.full((rows, 1), 2), words, torch.full((rows, 1), marker),
                     content[:, None], torch.full((rows, 1), 3)], 1)
    return seq, pos


def copy_task(n_prompts: int = 16, seed: int = 0, steps: int = 240) -> CopyTask:
    """Train the copy model (fixed training seed 0) and draw ``n_prompts`` prompts with ``seed``."""
    tok = _tokenizer()
    vocab = len(tok)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and immune to a busy machine
    try:
        model = _train(vocab, steps)
    finally:
        torch.set_num_threads(threads)
    test, _ = _sequences(torch.Generator().manual_seed(10_000 + seed), 256)
    with torch.no_grad():
        acc = float((model(input_ids=test[:, :-2]).logits[:, -1].argmax(-1) == test[:, -2]).double().mean())
    seq, pos = _sequences(torch.Generator().manual_seed(seed), n_prompts)
    words = [tok.convert_ids_to_tokens(row[1:-2].tolist()) for row in seq]
    prompts = [" ".join(w) for w in words]
    return CopyTask(model, tok, prompts, [int(p) for p in pos], acc)


def _train(vocab: int, steps: int) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = GPT2Config(vocab_size=vocab, n_positions=16, n_embd=32, n_layer=1, n_head=2,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=2,
                         eos_token_id=3, pad_token_id=0)
        model = GPT2LMHeadModel(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            seq, _ = _sequences(gen, 64, train=True)
            logits = model(input_ids=seq[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits[:, -2:].reshape(-1, vocab),
                                                     seq[:, -2:].reshape(-1))
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    model.train(False)
    return model


def _word_spans(prompt: str) -> list[tuple[int, int]]:
    """Character spans of the prompt's words before the marker (the marker is the query the
    copy needs; it is kept in every coalition, not a player)."""
    spans, at = [], 0
    for w in prompt.split(" ")[:PROMPT_WORDS]:
        spans.append((at, at + len(w)))
        at += len(w) + 1
    return spans


def planted_rank(row: np.ndarray, planted: int) -> tuple[float, float]:
    """``(top1, rank)`` of player ``planted`` in ``row`` (larger credit = better), ties at random.

    Expected values under uniformly random tie-breaking: with ``g`` players strictly above and
    ``t`` others tied, ``top1 = 1 / (t + 1)`` if ``g == 0`` (else 0) and ``rank = 1 + g + t / 2``.
    A non-finite credit for the planted player ranks last; other non-finite credits are not above it.
    """
    row = np.asarray(row, dtype=np.float64)
    c = row[planted]
    if not np.isfinite(c):
        return 0.0, float(len(row))
    others = np.delete(row, planted)
    greater = int(np.sum(others > c))
    tied = int(np.sum(others == c))
    return (1.0 / (tied + 1) if greater == 0 else 0.0), 1.0 + greater + tied / 2.0


def run_generation_suite(n_prompts: int = 16, seed: int = 0, budget: int = 64,
                         methods: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """Explain the copied token of every prompt with every method; score against the planted word.

    Returns:
        ``{"accuracy": copy accuracy of the model, "results": [{"method", "top1", "rank",
        "n_evals", "seconds"}, ...]}``; a method that raised or returned non-finite credits
        gets ``{"method", "error"}`` instead (a failure, not a score), and the others still run.
    """
    for arg, val, low in (("n_prompts", n_prompts, 1), ("budget", budget, 1)):
        if not isinstance(val, int) or isinstance(val, bool) or val < low:
            raise InputError(f"{arg}={val!r} must be an int >= {low}.")
    from ..methods.base import get_method

    for method in methods or GENERATION_METHODS:  # a typo is refused before the model trains
        get_method(method)
    task = copy_task(n_prompts, seed)
    out: list[dict[str, Any]] = []
    for method in dict.fromkeys(methods or GENERATION_METHODS):  # a name given twice runs once
        hits: list[float] = []
        ranks: list[float] = []
        evals, t0 = [], time.perf_counter()
        try:
            for prompt, planted in zip(task.prompts, task.planted):
                kw: dict[str, Any] = {}
                if method in ("permutation_shapley", "kernel_shap", "lime", "reagent"):
                    kw["budget"] = budget
                res = explain_generation(task.model, task.tokenizer, prompt, max_new_tokens=2,
                                         method=method, seed=seed, players=_word_spans(prompt), **kw)
                row = np.asarray(res.matrix[0], dtype=np.float64)  # the copied token
                if not np.isfinite(row).all():
                    # aud47b: scored before -- planted_rank puts no NaN above the planted word, so
                    # credits NaN everywhere but on it read top1 1.0, rank 1.0
                    raise InputError(f"{int((~np.isfinite(row)).sum())} of {row.size} credits of the "
                                     "copied token are NaN or infinite")
                top1, rank = planted_rank(row, planted)
                hits.append(top1)
                ranks.append(rank)
                evals.append(res.n_evals)
        except Exception as exc:  # a failure, recorded and reported (exit status 1), never a score
            # aud47b: one method that raised (grad_cam: it needs a feature game) ended the whole
            # suite with a traceback after the model trained, losing the other methods' rows
            out.append({"method": method, "error": f"{type(exc).__name__}: {exc}"})
            continue
        out.append({"method": method, "top1": float(np.mean(hits)), "rank": float(np.mean(ranks)),
                    "n_evals": float(np.mean(evals)),
                    "seconds": (time.perf_counter() - t0) / max(len(task.prompts), 1)})
    return {"accuracy": task.accuracy, "results": out}


def format_generation_results(res: dict[str, Any]) -> str:
    lines = [f"generation suite: copy the planted word (model copy accuracy {res['accuracy']:.3f})",
             f"{'method':<24}{'top1':>7}{'rank':>7}{'evals':>8}{'s/prompt':>10}"]
    for r in res["results"]:
        if "error" in r:
            lines.append(f"{r['method']:<24}FAILED: {r['error'][:120]}")
            continue
        lines.append(f"{r['method']:<24}{r['top1']:>7.2f}{r['rank']:>7.2f}{r['n_evals']:>8.0f}"
                     f"{r['seconds']:>10.3f}")
    return "\n".join(lines)


def cmd_generation_suite(args: Any) -> int:
    """``tribute bench --suite generation`` (``generation-tiny``: 4 prompts)."""
    n = 4 if args.suite == "generation-tiny" else 16
    methods = getattr(args, "methods", None)
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m]
    res = run_generation_suite(n_prompts=n, seed=int(getattr(args, "seed", 0) or 0),
                               methods=methods or None)
    print(format_generation_results(res))
    failed = [r["method"] for r in res["results"] if "error" in r]
    if failed:
        print(f"FAILED: {len(failed)} method(s) raised or returned non-finite credits: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0
