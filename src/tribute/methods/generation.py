"""Explain a causal language model's generation: :func:`explain_generation`.

The prompt's tokens (or words) are the players; the value of a coalition is the vector of the
continuation's per-token log-probabilities and their sum, with removed prompt players replaced
by a named removal option (see :mod:`tribute.games.generation`). Every method of the registry
that works on feature games runs on it unchanged: perturbation estimators
(``feature_ablation``, ``permutation_shapley``, ``kernel_shap``, ``lime``, ``shapley``,
``reagent``, ...) through coalition values, gradient methods through the embedding relaxation
(``integrated_gradients``: Captum's ``LayerIntegratedGradients`` on the embedding layer with the
replacement token as baseline; ``input_x_gradient``: ``(e - e_b) . df/de``, the mask gradient at
the full prompt) or the embedding gradient itself (``saliency``: ``df/de`` summed over each
player's tokens and the embedding dimension, ``|df/de|`` with ``absolute=True``; Captum's
``LayerGradientXActivation(multiply_by_inputs=False)``). Each generated token's log-probability
and the whole continuation's are explained at once (one target each).

The result, :class:`GenerationAttribution`, holds the ``generated x prompt`` matrix, the
credits of the whole continuation's log-probability, both token lists and the underlying
:class:`~tribute.Attribution`; ``result.plot()`` draws an HTML heat map.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, TributeError, UnsupportedModelError, user_stacklevel
from ..games.generation import REMOVALS, GenerationGame, LMForward, removal_token
from ..models import TorchModel
from ..models.text import PLAYER_UNITS, encode_one, segment
from ..params import check_seed
from .base import check_budget_param, get_method

__all__ = ["GenerationAttribution", "PreparedGeneration", "TokenizationWarning", "explain_generation",
           "prepare_generation"]



#: Keys of a saved generation's fields in its attribution file's extras (GenerationAttribution.save).
_GEN_KEY, _GEN_LOG_PROBS = "generation", "generation_log_probs"


class TokenizationWarning(UserWarning):
    """A given continuation tokenizes differently in context than on its own, or than the
    model's own generation of the same text."""


@dataclass
class GenerationAttribution:
    """Credits of a generation's tokens to the prompt's players.

    Attributes:
        matrix: ``generated x players`` credits of each generated token's log-probability.
        total: ``players`` credits of the whole continuation's log-probability.
        stderr: ``(generated + 1) x players`` standard errors (stochastic methods), else None.
        prompt_tokens: one label per player (tokens or words of the prompt).
        generated_tokens: the continuation's tokens, as text.
        prompt_ids: the prompt's token ids (special tokens included).
        generated_ids: the continuation's token ids.
        log_probs: ``generated`` log-probabilities of the continuation under the full prompt.
        attribution: the underlying :class:`~tribute.Attribution` (``1 x (generated + 1) x
            players``; the last target is the total).
        method: the method's registry name.
        n_evals: coalitions (or gradient points) evaluated, ``v(N)`` included (the greedy
            generation of the continuation, and the check of a text target against it, run
            the model too and are not counted).
        seconds: wall time of the call.
        positions_run: token positions the model ran (prefix reuse counted).
        positions_full: token positions a full forward per evaluation would have run.
    """

    matrix: np.ndarray
    total: np.ndarray
    stderr: np.ndarray | None
    prompt_tokens: list[str]
    generated_tokens: list[str]
    prompt_ids: list[int]
    generated_ids: list[int]
    log_probs: np.ndarray
    attribution: Attribution
    method: str
    n_evals: int
    seconds: float = 0.0
    positions_run: int = 0
    positions_full: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> np.ndarray:
        """``(generated + 1) x players``: :attr:`matrix` with :attr:`total` as the last row."""
        return np.vstack([self.matrix, self.total[None, :]])

    @property
    def player_names(self) -> list[str]:
        return list(self.prompt_tokens)

    def to_pandas(self) -> Any:
        """:attr:`values` as a ``pandas.DataFrame``: rows ``(step, token)`` (the generated
        tokens, then ``(len(generated), "total")``), columns ``(position, player)`` (player
        index and label: a prompt may repeat a token, a continuation too)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("GenerationAttribution.to_pandas needs pandas: pip install pandas") from exc
        rows = pd.MultiIndex.from_arrays(
            [list(range(len(self.generated_tokens) + 1)), [*self.generated_tokens, "total"]],
            names=["step", "token"])
        cols = pd.MultiIndex.from_arrays([list(range(len(self.prompt_tokens))), list(self.prompt_tokens)],
                                         names=["position", "player"])
        return pd.DataFrame(self.values, index=rows, columns=cols)

    def plot(self, *, signed: bool = True, title: str | None = None) -> str:
        """An HTML heat map (inline styles, every token escaped): one row per generated token
        (and the total), one column per prompt player; red raises the log-probability."""
        from ..viz import generation_heatmap

        return generation_heatmap(self.prompt_tokens, self.generated_tokens, self.matrix,
                                  total=self.total, signed=signed,
                                  title=title if title is not None else self.method)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (``.npz`` appended if missing) atomically, without pickle: the
        underlying :class:`~tribute.Attribution`'s file, whose header also holds the prompt's and
        the continuation's tokens and ids, the counts and the timings (read back by :meth:`load`;
        :meth:`tribute.Attribution.load` reads the same file as the plain attribution)."""
        gen = {"prompt_tokens": list(self.prompt_tokens), "generated_tokens": list(self.generated_tokens),
               "prompt_ids": [int(i) for i in self.prompt_ids],
               "generated_ids": [int(i) for i in self.generated_ids], "method": self.method,
               "n_evals": int(self.n_evals), "seconds": float(self.seconds),
               "positions_run": int(self.positions_run), "positions_full": int(self.positions_full)}
        extra = {**self.attribution.extra, _GEN_KEY: gen,
                 _GEN_LOG_PROBS: np.asarray(self.log_probs, dtype=np.float64)}
        return replace(self.attribution, extra=extra).save(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GenerationAttribution:
        """Load a file written by :meth:`save` (never unpickles).

        Raises:
            InputError: ``path`` is not an attribution file, or one of a plain attribution
                (load it with :meth:`tribute.Attribution.load`), or its parts disagree in size.
        """
        attr = Attribution.load(path)
        extra = dict(attr.extra)
        gen, log_probs = extra.pop(_GEN_KEY, None), extra.pop(_GEN_LOG_PROBS, None)
        if not isinstance(gen, dict) or log_probs is None:
            raise InputError(f"{os.fspath(path)!r} holds an attribution, not a generation's (saved by "
                             "GenerationAttribution.save); load it with tribute.Attribution.load.")
        flat = np.asarray(attr.flat())
        n_gen, n_players = len(gen["generated_tokens"]), len(gen["prompt_tokens"])
        if flat.shape != (1, n_gen + 1, n_players) or np.shape(log_probs) != (n_gen,):
            raise InputError(f"{os.fspath(path)!r}: credits of shape {flat.shape} and {np.shape(log_probs)} "
                             f"log-probabilities do not fit {n_gen} generated tokens and {n_players} "
                             "prompt players; the file was not written by GenerationAttribution.save.")
        values = flat[0]
        se = None if attr.stderr is None else np.asarray(attr.stderr, dtype=np.float64).reshape(values.shape)
        return cls(matrix=values[:-1].copy(), total=values[-1].copy(), stderr=se,
                   prompt_tokens=[str(t) for t in gen["prompt_tokens"]],
                   generated_tokens=[str(t) for t in gen["generated_tokens"]],
                   prompt_ids=[int(i) for i in gen["prompt_ids"]],
                   generated_ids=[int(i) for i in gen["generated_ids"]],
                   log_probs=np.asarray(log_probs, dtype=np.float64),
                   attribution=replace(attr, extra=extra), method=str(gen["method"]),
                   n_evals=int(gen["n_evals"]), seconds=float(gen["seconds"]),
                   positions_run=int(gen["positions_run"]), positions_full=int(gen["positions_full"]),
                   params=dict(attr.params))

    def _repr_html_(self) -> str:
        return self.plot()

    def __repr__(self) -> str:
        return (f"GenerationAttribution(method={self.method!r}, generated={self.generated_tokens!r}, "
                f"players={len(self.prompt_tokens)}, n_evals={self.n_evals})")


# ----------------------------------------------------------------------- inputs
def _check_model(model: Any) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(
            f"explain_generation: model must be a torch causal language model (an nn.Module such "
            f"as a Hugging Face AutoModelForCausalLM), got {type(model).__name__}."
        )
    return model


def _vocab_rows(model: torch.nn.Module) -> int | None:
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if get is not None else None
    return int(emb.num_embeddings) if isinstance(emb, torch.nn.Embedding) else None


def _max_positions(model: torch.nn.Module, tokenizer: Any = None) -> int | None:
    """The most positions (prompt + continuation) a row may have: the smaller of the model's
    ``config`` limit and the tokenizer's ``model_max_length`` (when a real limit, below 10**6),
    or None when neither states one."""
    cfg = getattr(model, "config", None)
    limits: list[int] = []
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            limits.append(v)
            break
    m = getattr(tokenizer, "model_max_length", None)
    if isinstance(m, int) and not isinstance(m, bool) and 0 < m < 10**6:
        limits.append(m)
    return min(limits) if limits else None


def _limit_source(model: torch.nn.Module, tokenizer: Any) -> str:
    """Which limits :func:`_max_positions` took, with their values, for a refusal's message
    (a tokenizer saved with a smaller ``model_max_length`` than the model's positions is the
    one the user can lift)."""
    config = _max_positions(model)
    m = getattr(tokenizer, "model_max_length", None)
    tok = int(m) if isinstance(m, int) and not isinstance(m, bool) and 0 < m < 10**6 else None
    text = f"the model's config allows {config if config is not None else 'any number of'} positions"
    if tok is None:
        return text
    text += f", its tokenizer's model_max_length is {tok}"
    if config is None or tok < config:
        text += (" (the smaller; if the model reads more positions than its tokenizer says, set "
                 f"tokenizer.model_max_length = {config if config is not None else 'its length'})")
    return text


def _special_ids(tokenizer: Any) -> set[int]:
    return {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    enc = tokenizer(text, add_special_tokens=special)
    ids = enc["input_ids"] if isinstance(enc, dict) or hasattr(enc, "keys") else enc
    return [int(i) for i in ids]


def _token_text(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([int(i)]) for i in ids]


def _segment(tokenizer: Any, prompt: str, players: Any, special: set[int]) -> tuple[list[int], list[int], list[str]]:
    """Prompt ids (trailing special tokens dropped: a prompt is continued, not closed), the
    player of each position (-1: special, never removed) and the players' names.

    Words, sentences and character spans come from :func:`tribute.models.text.segment` (fast
    tokenizers with offsets); token players also work with tokenizers without offsets.
    """
    try:
        enc = segment(prompt, tokenizer, players, max_length=10**9)
    except InputError:
        if players != "tokens" or not callable(tokenizer):
            raise
        ids = _encode(tokenizer, prompt, True)
        # no offsets: the text's own tokens are those of the prompt encoded without the
        # template; a special token typed in the prompt ("</s>") is one of them (a player, as
        # with offsets), the template's added ones are not
        plain = _encode(tokenizer, prompt, False)
        at = next((k for k in range(len(ids) - len(plain) + 1) if ids[k : k + len(plain)] == plain), None)
        if at is None:
            if any(t in special for t in plain):
                raise InputError(
                    f"prompt={prompt!r:.60} holds special token(s) "
                    f"{[tokenizer.decode([t]) for t in plain if t in special][:4]} typed in the text, "
                    "and the tokenizer (without character offsets) does not show which tokens are "
                    "the text's; load its fast tokenizer (use_fast=True) or remove them.") from None
            at = -1
        in_text = [at >= 0 and at <= k < at + len(plain) for k in range(len(ids))]
        from_text = list(in_text)
        player_of: list[int] = []
        names: list[str] = []
        for k, t in enumerate(ids):
            own = in_text[k] or t not in special
            player_of.append(len(names) if own else -1)
            if own:
                names.append(tokenizer.decode([t]))
    else:
        n_tok = int(enc.attention_mask[0].sum())
        ids = [int(t) for t in enc.input_ids[0, :n_tok]]
        player_of = [int(j) for j in enc.token_player[0, :n_tok]]
        names = list(enc.player_names[0])
        # a token with characters of the prompt is text, even when its id is a special one
        # (the unk token an unreadable character becomes): never dropped, though not a player
        offsets = encode_one(tokenizer, prompt)[1][:n_tok]
        from_text = [a < b for a, b in offsets]
    while len(ids) > 1 and ids[-1] in special and player_of[-1] < 0 and not from_text[len(ids) - 1]:
        ids.pop()
        player_of.pop()
    return ids, player_of, names


def _eos_ids(model: torch.nn.Module, tokenizer: Any) -> frozenset[int]:
    """The ids that end a greedy continuation: the tokenizer's EOS and every id of the model's
    ``generation_config.eos_token_id`` / ``config.eos_token_id`` (an int or a list: Llama-3
    ends turns with ``<|eot_id|>`` as well as ``<|end_of_text|>``, and ``model.generate``
    stops at either)."""
    found: set[int] = set()
    sources = [getattr(tokenizer, "eos_token_id", None)]
    for holder in ("generation_config", "config"):
        sources.append(getattr(getattr(model, holder, None), "eos_token_id", None))
    for src in sources:
        for v in (src if isinstance(src, (list, tuple, set, frozenset)) else [src]):
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and int(v) >= 0:
                found.add(int(v))
    return frozenset(found)


def _greedy(model: torch.nn.Module, ids: list[int], max_new_tokens: int, eos: frozenset[int],
            device: torch.device) -> list[int]:
    """Greedy decoding with the model's own cache (a full forward per token for a model
    without one); stops after any of the ``eos`` ids (:func:`_eos_ids`)."""
    out_ids: list[int] = []
    call = LMForward(model)
    seq = torch.tensor([ids], device=device)
    with torch.inference_mode():
        logits, cache = call(seq, use_cache=call.caches)
        for step in range(max_new_tokens):
            nxt = int(logits[0, -1].argmax())
            out_ids.append(nxt)
            if nxt in eos:
                break
            if step + 1 < max_new_tokens:
                step_ids = torch.tensor([[nxt]], device=device)
                seq = torch.cat([seq, step_ids], 1)
                if cache is None:
                    logits, _ = call(seq)
                else:
                    logits, cache = call(step_ids, use_cache=True, **{call.cache_kw: cache})
    return out_ids


def _target_ids(target: Any) -> list[int]:
    """Token ids given as ``target``: a flat sequence of non-negative whole numbers."""
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    try:
        arr = np.asarray(target)
    except (TypeError, ValueError) as exc:
        raise InputError(f"target={target!r} must be a text, None or a flat sequence of token ids.") from exc
    if arr.ndim != 1:
        raise InputError(
            f"target must be a flat sequence of token ids; got shape {arr.shape}. Pass one "
            "continuation (e.g. ids[0] of a 1 x T batch)."
        )
    whole = (arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr)))
                                         and bool(np.all(arr == np.round(arr)))))
    if arr.size and (not whole or arr.dtype == np.bool_):
        raise InputError(f"target={target!r}: token ids must be whole numbers (dtype {arr.dtype}).")
    ids = [int(t) for t in arr.tolist()]
    if ids and min(ids) < 0:
        raise InputError(f"target token id {min(ids)} is negative; token ids are 0..vocab-1.")
    return ids


@dataclass
class PreparedGeneration:
    prompt_ids: list[int]
    continuation: list[int]
    groups: list[list[int]]
    names: list[str]


def prepare_generation(model: Any, tokenizer: Any, prompt: str, target: Any = None, *,
                       max_new_tokens: int = 8, players: Any = "tokens") -> PreparedGeneration:
    """Tokenize and check the prompt, produce (or tokenize) the continuation, define players.

    Raises:
        InputError: empty prompt, bad ``max_new_tokens``/``players``, tokenizer and model
            vocabularies that do not match, prompt + continuation longer than the model allows.
    Warns:
        TokenizationWarning: a given continuation tokenizes differently in context than on its
            own, or differently from the model's own greedy generation of the same text.
    """
    module = _check_model(model)
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a string, got {type(prompt).__name__}.")
    if not prompt.strip():
        raise InputError(f"prompt={prompt!r} is empty; give the text whose tokens get credit.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens={max_new_tokens!r} must be a positive int.")
    if isinstance(players, str) and players not in PLAYER_UNITS:
        raise InputError(f"players={players!r} must be one of {PLAYER_UNITS} or a list of "
                         "(start, end) character spans of the prompt.")
    special = _special_ids(tokenizer)
    ids, player_of, names = _segment(tokenizer, prompt, players, special)
    rows = _vocab_rows(module)
    n_tok = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    if rows is not None and ((n_tok is not None and n_tok > rows) or max(ids) >= rows):
        raise InputError(
            f"the tokenizer does not match the model: it has {n_tok} tokens (prompt ids up to "
            f"{max(ids)}) but the model's input embedding has {rows} rows. Load the tokenizer "
            "that was trained with this model."
        )
    if not names:
        raise InputError(f"prompt={prompt!r} has no players (only special tokens); there is nothing to credit.")
    device = next(iter(module.parameters())).device
    eos = _eos_ids(module, tokenizer)
    limit = _max_positions(module, tokenizer)
    if target is None and limit is not None and len(ids) + max_new_tokens > limit:
        raise InputError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) = "
            f"{len(ids) + max_new_tokens} positions exceeds the model's maximum length {limit} "
            f"({_limit_source(module, tokenizer)}); shorten the "
            "prompt or lower max_new_tokens."
        )
    if target is None:
        cont = _greedy(module, ids, max_new_tokens, eos, device)
    elif isinstance(target, str):
        if not target:
            raise InputError("target='' is empty; give a continuation text or None (greedy generation).")
        cont = _encode(tokenizer, target, False)
        raw_joint = _encode(tokenizer, prompt + target, True)
        joint = list(raw_joint)
        while joint and joint[-1] in special:  # a closing [SEP]/EOS of the tokenizer's template
            joint.pop()
        if ids + cont not in (joint, raw_joint):  # raw: the target ends in a special id (an unk)
            warnings.warn(
                f"target={target!r} tokenizes differently after the prompt than on its own: "
                f"in context {_token_text(tokenizer, joint[len(ids):]) if joint[:len(ids)] == ids else _token_text(tokenizer, joint)} "
                f"vs alone {_token_text(tokenizer, cont)}; the tokens alone are forced "
                "(pass token ids as target to choose).", TokenizationWarning, stacklevel=user_stacklevel())
        own = _greedy(module, ids, len(cont), frozenset(), device)
        if own != cont and tokenizer.decode(own).strip() == tokenizer.decode(cont).strip():
            warnings.warn(
                f"target={target!r} tokenizes as {_token_text(tokenizer, cont)} but the model "
                f"generates the same text as {_token_text(tokenizer, own)}; the target's "
                "tokenization is forced, so the log-probabilities are those of tokens the model "
                "would not produce.", TokenizationWarning, stacklevel=user_stacklevel())
    else:
        cont = _target_ids(target)
    if not cont:
        raise InputError("the continuation has no tokens; give a non-empty target or max_new_tokens >= 1.")
    if rows is not None and max(cont) >= rows:
        raise InputError(f"target token id {max(cont)} is outside the model's vocabulary ({rows} rows).")
    if limit is not None and len(ids) + len(cont) > limit:
        raise InputError(
            f"prompt ({len(ids)} tokens) + continuation ({len(cont)} tokens) = "
            f"{len(ids) + len(cont)} positions exceeds the model's maximum length {limit} "
            f"({_limit_source(module, tokenizer)}); shorten the "
            "prompt or the target."
        )
    groups = [[pos for pos, j in enumerate(player_of) if j == k] for k in range(len(names))]
    return PreparedGeneration(ids, cont, groups, names)


def _resolve_removal(tokenizer: Any, removal: Any) -> Any:
    """``removal=None`` -> the first of pad, unk, eos the tokenizer has (else the option itself)."""
    if removal is None:
        for name in ("pad", "unk", "eos"):
            if getattr(tokenizer, f"{name}_token_id", None) is not None:
                return name
        raise InputError(f"the tokenizer has no pad/unk/eos token; pass removal= (one of {REMOVALS} or a token id).")
    return removal


def _replacements(tokenizer: Any, removal: Any, n_vocab: int, length: int, seed: int) -> torch.Tensor | None:
    removal = _resolve_removal(tokenizer, removal)
    tid = removal_token(tokenizer, removal)
    if tid is not None:
        if not 0 <= tid < n_vocab:
            raise InputError(f"removal token id {tid} is outside the model's vocabulary (0..{n_vocab - 1}).")
        return torch.full((length,), tid, dtype=torch.long)
    if removal == "delete":
        return None
    # the tokenizer's tokens only: an embedding padded past the vocabulary (GPT-2: 50257
    # tokens, often 50304 rows) has rows that no text produces
    n_tokens = min(n_vocab, len(tokenizer)) if hasattr(tokenizer, "__len__") else n_vocab
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, n_tokens, (length,), generator=gen)


@contextlib.contextmanager
def _model_errors(module: torch.nn.Module, tokenizer: Any, method: str) -> Iterator[None]:
    """An exception the model raised itself inside :func:`explain_generation` (a shape error of
    a wrapped LM, an assertion), as an :class:`InputError` naming the method and the model, with
    the model's exception as ``__cause__``; tribute's own errors and running out of memory pass
    unchanged."""
    try:
        yield
    except TributeError:
        raise
    except Exception as exc:
        if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower():
            raise
        raise InputError(
            f"explain_generation(method={method!r}): the model ({type(module).__name__}) or its "
            f"tokenizer ({type(tokenizer).__name__}) failed: {type(exc).__name__}: {exc}. The "
            "model is called on rows x positions token ids (input_ids=, "
            "batches of several coalitions; inputs_embeds= for gradient methods) and must return "
            "rows x positions x vocab logits; the original error is the __cause__ of this one."
        ) from exc


# ----------------------------------------------------------------------- entry point
def explain_generation(
    model: Any,
    tokenizer: Any,
    prompt: str,
    target: str | Sequence[int] | np.ndarray | torch.Tensor | None = None,
    *,
    max_new_tokens: int = 8,
    method: str = "feature_ablation",
    players: Any = "tokens",
    removal: str | int | None = None,
    budget: int | None = None,
    seed: int = 0,
    kv_reuse: bool = True,
    batch_size: int | None = None,
    progress: bool | None = None,
    max_memory: int | str | None = None,
    **params: Any,
) -> GenerationAttribution:
    """Credit each generated token's log-probability (and the continuation's) to the prompt.

    Args:
        model: a causal language model (``torch.nn.Module``; Hugging Face
            ``AutoModelForCausalLM``, or a custom module whose ``forward`` takes ``input_ids``
            and returns next-token logits ``rows x positions x vocab``, as a tensor, the first
            element of a tuple or ``.logits``; keywords it does not take are not passed, and
            prefix reuse needs a Hugging Face cache, else every coalition runs in full).
        tokenizer: its tokenizer (Hugging Face; ``players="words"`` needs a fast one).
        prompt: the prompt text (tokenized with the tokenizer's special tokens; trailing ones
            such as ``[SEP]``/EOS are dropped, and the special tokens the tokenizer adds are
            never players). A special token typed in the prompt (``"[SEP]"``, ``"</s>"``,
            ``"<|endoftext|>"`` in the string) is the user's text: the model reads it as that
            special token (as the tokenizer parses it), and it is a player named as typed.
        target: None (greedy generation of ``max_new_tokens`` tokens, stopping after EOS),
            a continuation text (forced by teacher forcing; tokenized on its own, with a
            :class:`TokenizationWarning` when that differs from its tokenization after the
            prompt or from the model's own generation of the same text), or token ids (a
            flat sequence, array or tensor of non-negative whole numbers).
            default=None.
        max_new_tokens: tokens to generate when ``target`` is None. default=8.
        method: registry name of a method that works on feature games. default="feature_ablation".
        players: ``"tokens"``, ``"words"`` (sub-word tokens of a word form one player),
            ``"sentences"`` or a list of ``(start, end)`` character spans of the prompt
            (segmentation of :func:`tribute.models.text.segment`). default="tokens".
        removal: how removed players are replaced: ``"pad"``, ``"unk"``, ``"mask"``, ``"eos"``,
            ``"bos"`` (that special token), a token id, ``"random"`` (a uniform vocabulary token
            per position, drawn once with ``seed``) or ``"delete"`` (shorter prompt; a
            coalition deleting every prompt token, possible only when the tokenizer adds no
            BOS, is refused with an InputError: the first token would have no context).
            default=None (the first of pad, unk, eos the tokenizer has).
        budget: evaluations (coalitions or gradient points), ``v(N)`` included. default=None
            (the method's own default).
        seed: seed of the method's local generator (and of ``removal="random"``). default=0.
        kv_reuse: reuse the unperturbed prompt prefix's keys/values across coalitions.
            default=True.
        batch_size, progress, max_memory: as in :func:`tribute.explain`.
        **params: the method's hyperparameters.

    Returns:
        A :class:`GenerationAttribution` (``result.matrix`` is ``generated x players``).

    Example:
        >>> res = tribute.explain_generation(lm, tok, "the cat sat on the", max_new_tokens=3)  # doctest: +SKIP
        >>> res.matrix.shape, res.generated_tokens  # doctest: +SKIP
    """
    cls = get_method(method)
    if "feature" not in cls.tags.games:
        raise InputError(f"method {method!r} does not work on feature games; pick one that does "
                         "(e.g. 'feature_ablation', 'permutation_shapley', 'kernel_shap', 'reagent').")
    unknown = set(params) - set(cls.defaults())
    if unknown:
        raise InputError(
            f"method {method!r} got unknown parameter(s) {sorted(unknown)}; its parameters are "
            f"{sorted(cls.defaults()) or 'none'}."
        )
    seed = check_seed(seed)
    if not isinstance(kv_reuse, (bool, np.bool_)):  # kv_reuse="False" would read as True
        raise InputError(f"kv_reuse={kv_reuse!r} must be True or False.")
    kv_reuse = bool(kv_reuse)
    estimator = cls(**params)
    module = _check_model(model)
    t0 = time.perf_counter()
    with TorchModel(module).session(), _model_errors(module, tokenizer, cls.name):
        prep = prepare_generation(module, tokenizer, prompt, target,
                                  max_new_tokens=max_new_tokens, players=players)
        n_vocab = _vocab_rows(module) or (len(tokenizer) if hasattr(tokenizer, "__len__") else 0)
        removal = _resolve_removal(tokenizer, removal)  # recorded in params as used
        if not isinstance(removal, str):
            removal = removal_token(tokenizer, removal)  # an id as a plain int (numpy/tensor ids)
        repl = _replacements(tokenizer, removal, int(n_vocab), len(prep.prompt_ids), seed)
        gen_text = _token_text(tokenizer, prep.continuation)
        game = GenerationGame(
            module, torch.tensor(prep.prompt_ids), torch.tensor(prep.continuation), prep.groups,
            prep.names, gen_text, repl, kv_reuse=kv_reuse,
            player_kind=players[:-1] if isinstance(players, str) else "span",
            batch_size=batch_size, progress=progress, max_memory=max_memory)
        use_budget = estimator.check(game, budget)
        check_budget_param(estimator, params, game, budget)
        attr = estimator.attribute(game, budget=use_budget, seed=seed)
    attr.seconds = time.perf_counter() - t0
    attr.n_rows = game.engine.n_rows
    attr.params = {**attr.params, "budget": use_budget, "seed": seed, "removal": removal,
                   "players": players, "kv_reuse": kv_reuse}
    flat = np.asarray(attr.flat())[0]  # (T + 1) x players
    se = None if attr.stderr is None else np.asarray(attr.stderr, dtype=np.float64).reshape(flat.shape)
    full = game.peek_full()
    assert full is not None
    return GenerationAttribution(
        matrix=flat[:-1].copy(), total=flat[-1].copy(), stderr=se, prompt_tokens=list(prep.names),
        generated_tokens=gen_text, prompt_ids=list(prep.prompt_ids),
        generated_ids=list(prep.continuation), log_probs=full[0, :-1].numpy().copy(),
        attribution=attr, method=cls.name, n_evals=int(attr.n_evals), seconds=attr.seconds,
        positions_run=game.positions_run, positions_full=game.positions_full,
        params=dict(attr.params))
