"""Generation games: prompt tokens (or words) as players, a fixed continuation as the output.

For a causal language model, a prompt ``x_1..x_L`` and a continuation ``y_1..y_T`` (the model's
own greedy generation, or a given text forced by teacher forcing), the value of a coalition
``S`` of prompt players is the vector

    ``v(S) = (log p(y_1 | x(S)), ..., log p(y_T | x(S), y_<T), sum_t log p(y_t | x(S), y_<t))``

where ``x(S)`` is the prompt with the players outside ``S`` removed. Removal is a named option
(:data:`REMOVALS`): replace each removed token by one token id (``"pad"``, ``"unk"``,
``"mask"``, ``"eos"``, ``"bos"`` or an explicit id), by a token drawn uniformly from the
vocabulary once per game (``"random"``, seeded, so ``v`` stays a function of ``S``), or delete
it (``"delete"``: a shorter prompt; the continuation moves left; a coalition deleting every
token, possible only without a BOS, is refused: the first token would have no context).
Special tokens the tokenizer adds (BOS, ...) are never players and are never removed; a
special token typed in the prompt (``"</s>"`` in the string) is the user's text, a player
like any other token (see :func:`tribute.explain_generation`).

Every evaluation is one teacher-forced forward pass over ``prompt + continuation`` (all ``T``
log-probabilities at once, many coalitions per batch), not one ``generate`` per coalition.

**Prefix reuse.** Coalitions keep the prompt unchanged up to their first removed token ``p``;
the keys and values of those ``p`` positions are the ones of the unperturbed sequence, which
the reference pass (``v(N)``) computes anyway. With ``kv_reuse=True`` rows are grouped by
``p`` and each group runs only positions ``p..L+T-1`` on top of the cached prefix (Hugging Face
``past_key_values``). :attr:`GenerationGame.positions_run` and
:attr:`GenerationGame.positions_full` count the token positions run and the positions a
full forward would have run (the model's FLOPs are proportional to them, up to attention's
quadratic term), so the saving is measured, not assumed.

The relaxation for gradient methods acts on input embeddings: a player's mask ``m`` mixes its
tokens' embeddings ``e(m) = e_b + m (e_x - e_b)`` with the embedding ``e_b`` of the replacement
token, so integrated gradients along ``m`` is layer integrated gradients on the embedding
layer with the replacement token as baseline (summed over the embedding dimension), as in
Captum's ``LLMGradientAttribution``.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Layout
from ..engine import Engine, Rows
from ..errors import InputError, UnsupportedModelError
from ..models import ModelAdapter
from ..targets import Target
from .base import Game

__all__ = ["REMOVALS", "CausalLM", "GenerationGame", "LMForward", "cache_keyword", "output_cache",
           "removal_token"]

#: Forward passes per chunk of coalitions at most, when sharing cached prompt prefixes.
PREFIX_GROUPS = 4

#: Named removal options (or pass a token id).
REMOVALS = ("pad", "unk", "mask", "eos", "bos", "random", "delete")


def removal_token(tokenizer: Any, removal: str | int) -> int | None:
    """The token id a removal option replaces removed tokens by (None for ``random``/``delete``).

    Raises:
        InputError: unknown option, or the tokenizer has no such special token.
    """
    if isinstance(removal, bool):
        raise InputError(f"removal={removal!r} must be one of {REMOVALS} or a token id (int).")
    if isinstance(removal, torch.Tensor) and removal.numel() == 1 and not removal.dtype.is_floating_point \
            and removal.dtype != torch.bool:
        removal = int(removal.item())  # a token id read off a tensor (tok.pad_token_id-like)
    if isinstance(removal, numbers.Integral) and not isinstance(removal, (bool, np.bool_)):
        return int(removal)  # numpy integers too (an id read off an array)
    if not isinstance(removal, str):
        raise InputError(f"removal={removal!r} ({type(removal).__name__}) must be one of {REMOVALS} "
                         "or a token id (a whole number).")
    if removal not in REMOVALS:
        raise InputError(f"removal={removal!r} must be one of {REMOVALS} or a token id (int).")
    if removal in ("random", "delete"):
        return None
    tid = getattr(tokenizer, f"{removal}_token_id", None)
    if tid is None:
        have = [r for r in ("pad", "unk", "mask", "eos", "bos")
                if getattr(tokenizer, f"{r}_token_id", None) is not None]
        raise InputError(
            f"removal={removal!r}: the tokenizer has no {removal} token; use one of {have} "
            "(special tokens it has), 'random', 'delete' or an explicit token id."
        )
    return int(tid)


def cache_keyword(module: torch.nn.Module) -> str:
    """The forward keyword that takes a key/value cache: ``cache`` (transformers >= 5.2x)
    or ``past_key_values`` (earlier versions and most custom models)."""
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params and "past_key_values" not in params else "past_key_values"


def output_cache(out: Any) -> Any:
    """The key/value cache a forward returned (None when it returned none)."""
    for name in ("cache", "past_key_values"):
        c = getattr(out, name, None)
        if c is not None:
            return c
    return None


def _is_hf_cache(cache: Any) -> bool:
    """A Hugging Face ``Cache`` (``DynamicCache`` ...): the only kind whose prefix is sliced and
    rebuilt for prefix reuse (a custom model's own cache format is passed back only to itself)."""
    return (cache is not None and callable(getattr(cache, "update", None))
            and callable(getattr(cache, "get_seq_length", None)))


class LMForward:
    """Calls a causal LM with only the keywords its ``forward`` takes; returns logits and cache.

    Hugging Face models take ``input_ids``/``inputs_embeds``, ``attention_mask``,
    ``use_cache``, a cache keyword and ``logits_to_keep``; a custom module may take fewer
    (``forward(input_ids)``) and return a logits tensor, a tuple whose first element is the
    logits, or an object with ``.logits``. Keywords it does not take are not passed (the
    attention mask only hides right padding, which a causal model never reads); a keyword
    that cannot be dropped (``inputs_embeds`` for gradient methods) is refused by
    :meth:`require`.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        try:
            params = inspect.signature(module.forward).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        self.names = frozenset(params)
        self.var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
        self.cache_kw = cache_keyword(module)
        # logits_to_keep must be taken by name: a forward(**kw) that ignores it returns every
        # position's logits, which would then be read as the scoring positions
        self.keep_logits = "logits_to_keep" in self.names

    def takes(self, name: str) -> bool:
        """Whether ``forward`` takes the keyword ``name`` (by name or through ``**kwargs``)."""
        return name in self.names or self.var_kw

    @property
    def caches(self) -> bool:
        """Whether the model takes a key/value cache (and ``use_cache``)."""
        return self.takes(self.cache_kw) and self.takes("use_cache")

    def require(self, name: str, why: str) -> None:
        if not self.takes(name):
            raise UnsupportedModelError(
                f"{why} need the model's forward to take {name}=...; "
                f"{type(self.module).__name__}.forward takes {sorted(self.names)}. Use a "
                "perturbation method (feature_ablation, kernel_shap, ...) or add the keyword."
            )

    def __call__(self, x: torch.Tensor, **kw: Any) -> tuple[torch.Tensor, Any]:
        """Logits ``rows x positions x vocab`` and the returned cache (None when none)."""
        from ..models import as_output_tensor

        call = {k: v for k, v in kw.items() if v is not None and self.takes(k)}
        if x.dtype.is_floating_point:
            self.require("inputs_embeds", "gradient methods (embedding relaxation)")
            out = self.module(inputs_embeds=x, **call)
        elif self.takes("input_ids"):
            out = self.module(input_ids=x, **call)
        else:
            out = self.module(x, **call)
        logits = as_output_tensor(out)
        if logits.ndim != 3 or logits.shape[0] != x.shape[0]:
            raise UnsupportedModelError(
                f"explain_generation needs logits of shape rows x positions x vocab from the "
                f"model; {type(self.module).__name__} returned shape {tuple(logits.shape)} for "
                f"input of shape {tuple(x.shape)}. Wrap it to return next-token logits."
            )
        return logits, output_cache(out) if kw.get("use_cache") else None


def _legacy(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer ``(keys, values)`` ``1 x heads x positions x dim`` of a Hugging Face cache."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(lay.keys, lay.values) for lay in layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]


def _kv_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """The per-layer ``(keys, values)`` of a Hugging Face attention cache; None for no cache,
    a custom one, or a layer without keys and values (a state-space or linear-attention
    layer, as in Mamba, keeps a state that cannot be cut at a prefix)."""
    if not _is_hf_cache(cache):
        return None
    try:
        layers = _legacy(cache)
    except (AttributeError, TypeError, ValueError):
        return None
    ok = bool(layers) and all(isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)
                              and k.ndim == 4 and v.ndim == 4 for k, v in layers)
    return layers if ok else None


def _full_prefix(cache: Any, positions: int) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Copies of the per-layer keys/values of an attention cache when every layer holds all
    ``positions``; None otherwise (a sliding-window layer keeps only its last window)."""
    layers = _kv_layers(cache)
    if layers is None or any(k.shape[-2] != positions or v.shape[-2] != positions for k, v in layers):
        return None
    return [(k.clone(), v.clone()) for k, v in layers]


def _new_cache(prefix: list[tuple[torch.Tensor, torch.Tensor]], p: int, rows: int) -> Any:
    """A fresh ``DynamicCache`` holding the first ``p`` positions of ``prefix`` for ``rows`` rows."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (k, v) in enumerate(prefix):
        cache.update(k[:, :, :p].expand(rows, -1, -1, -1).contiguous(),
                     v[:, :, :p].expand(rows, -1, -1, -1).contiguous(), i)
    return cache


class CausalLM(ModelAdapter):
    """Adapter that scores a fixed continuation under a causal language model.

    Called on rows of token ids (or input embeddings) ``rows x (L' + T)`` laid out as
    ``prompt' + continuation``, it returns ``rows x T`` log-probabilities of the continuation
    tokens. ``kwargs`` may hold ``first`` (``rows``, the first position that differs from the
    cached unperturbed sequence; rows are grouped by it and run on top of the cached prefix)
    and ``lengths`` (``rows``, prompt length of each row when prompts were shortened by
    deletion; rows are right-padded).

    Args:
        module: a causal LM: Hugging Face (``forward(input_ids=..., inputs_embeds=...,
            past_key_values=..., attention_mask=...)`` returning ``.logits``) or a custom
            module called through :class:`LMForward` (keywords it lacks are not passed).
        continuation: ``T`` token ids.
        prompt_len: ``L``, the unperturbed prompt length.
    """

    framework = "torch"
    differentiable = True
    output_kind = "raw"
    output_assumed = False

    def __init__(self, module: torch.nn.Module, continuation: torch.Tensor, prompt_len: int) -> None:
        self.module = module
        self.lm: torch.nn.Module = module
        self.continuation = continuation
        self.prompt_len = int(prompt_len)
        params = list(module.parameters())
        self.device = params[0].device if params else torch.device("cpu")
        self.dtype = params[0].dtype if params else torch.float32
        self.prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.positions_run = 0
        self.call = LMForward(module)

    def compute_dtype(self, user_dtype: torch.dtype) -> torch.dtype:
        return self.dtype

    def reference(self, ids: torch.Tensor, keep_cache: bool) -> torch.Tensor:
        """Log-probs of the continuation on the unperturbed ``1 x (L + T)`` ids; caches the
        keys/values of every position when ``keep_cache``."""
        keep_cache = keep_cache and self.call.caches
        with torch.inference_mode():
            logits, pkv = self.call(ids.to(self.device), use_cache=keep_cache)
        self.positions_run += int(ids.shape[1])
        # prefix reuse needs a Hugging Face cache holding every position (sliced and rebuilt
        # per group); without one every coalition runs the full sequence (positions_run says so)
        self.prefix = _full_prefix(pkv, int(ids.shape[1]))
        if self.prefix is None and _kv_layers(pkv) is not None:
            # a sliding-window cache keeps only its last window: run once more into a plain
            # DynamicCache (every position, every layer) and reuse that if it holds them all
            from transformers import DynamicCache

            with torch.inference_mode():
                _, full = self.call(ids.to(self.device), use_cache=True,
                                    **{self.call.cache_kw: DynamicCache()})
            self.positions_run += int(ids.shape[1])
            self.prefix = _full_prefix(full, int(ids.shape[1]))
        return self._score(logits, torch.full((1,), self.prompt_len), 0)

    def _score(self, logits: torch.Tensor, lengths: torch.Tensor, offset: int | None) -> torch.Tensor:
        """``rows x T`` log-probs of the continuation from ``rows x S x vocab`` logits whose
        first column is position ``offset`` of the row (row ``r``'s prompt has ``lengths[r]``
        tokens); ``offset=None``: the logits are exactly the ``T`` scoring positions."""
        t = int(self.continuation.numel())
        rows = logits.shape[0]
        if offset is None:
            picked = logits
        else:
            pos = (lengths.to(logits.device)[:, None] - 1 - offset
                   + torch.arange(t, device=logits.device)[None, :])  # rows x T
            picked = logits[torch.arange(rows, device=logits.device)[:, None], pos]  # rows x T x V
        tok = self.continuation.to(logits.device)[None, :, None].expand(rows, t, 1)
        # at least float32: a logsumexp over the vocabulary in bfloat16 is off by ~1e-2 (as
        # large as many credits); the logits themselves are the model's own
        picked = picked.to(torch.promote_types(picked.dtype, torch.float32))
        # log p(y) = logit_y - logsumexp(logits): no rows x T x vocab log-softmax is written
        return picked.gather(-1, tok)[..., 0] - torch.logsumexp(picked, -1)

    def __call__(self, inputs: tuple[torch.Tensor, ...], extra: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> torch.Tensor:
        kw = dict(kwargs or {})
        x = inputs[0]
        rows = int(x.shape[0])
        lengths = kw.get("lengths")
        if lengths is None:
            lengths = torch.full((rows,), self.prompt_len, dtype=torch.long)
        first = kw.get("first")
        if x.dtype.is_floating_point or first is None or self.prefix is None:
            return self._forward(x, lengths, 0, None)
        out = torch.empty(rows, int(self.continuation.numel()),
                          dtype=torch.promote_types(self.dtype, torch.float32), device=self.device)
        # rows whose first removed token is at p can start from any cached prefix q <= p: sort
        # them by p and cut them into at most PREFIX_GROUPS groups, each run from its smallest
        # p (fewer, larger forward passes; most of the saving kept)
        starts = torch.minimum(first, lengths - 1)  # keep the last prompt position's logits
        order = torch.argsort(starts, stable=True)
        for sel in torch.tensor_split(order, min(PREFIX_GROUPS, rows)):
            if sel.numel() == 0:
                continue
            p = int(starts[sel].min())
            cache = _new_cache(self.prefix, p, int(sel.numel())) if p > 0 else None
            out[sel.to(self.device)] = self._forward(x[sel.to(x.device), p:], lengths[sel], p, cache)
        return out

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor, offset: int, cache: Any) -> torch.Tensor:
        rows, width = int(x.shape[0]), int(x.shape[1])
        kw: dict[str, Any] = {}
        full_len = lengths + int(self.continuation.numel())
        padded = bool((full_len < width + offset).any())  # right-padded (deleted tokens)
        # the attention mask does not hide the right padding: it comes after every position
        # scored, which a causal model never reads; hiding it made fully masked rows (NaN in
        # Gemma-2, whose values then poisoned earlier rows through 0 * NaN). All ones (rather
        # than none) so that Hugging Face does not warn about pad ids without a mask.
        kw["attention_mask"] = torch.ones(rows, width + offset, dtype=torch.long, device=self.device)
        if cache is not None:
            kw[self.call.cache_kw] = cache
        t = int(self.continuation.numel())
        keep = self.call.keep_logits and not padded
        if keep:
            # only the T scoring positions' logits are needed (the LM head is the costliest
            # layer of a small model with a large vocabulary): every row ends with its
            # continuation, so they are the last T + 1 positions but the very last. An int,
            # not a tensor of positions: a model reading logits_to_keep as an int only
            # (hidden[:, -k:], as remote-code models do) took a tensor for a TypeError
            kw["logits_to_keep"] = t + 1
        logits, _ = self.call(x.to(self.device), **kw, use_cache=cache is not None)
        self.positions_run += rows * width
        if keep and logits.shape[1] == t + 1:
            return self._score(logits[:, :t], lengths, None)
        return self._score(logits, lengths, offset)  # every position came back

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield


class GenerationGame(Game):
    """Prompt players of a causal LM generation; values are the continuation's log-probs.

    One sample; ``T + 1`` targets: the log-probability of each continuation token given the
    prompt and the previous continuation tokens, and their sum (the continuation's
    log-probability). See the module docstring for removal and prefix reuse.

    Args:
        module: a Hugging Face causal LM (already in eval mode inside the caller's session).
        prompt_ids: ``L`` prompt token ids (special tokens included).
        continuation_ids: ``T`` continuation token ids.
        groups: one list of prompt positions per player (words made of several tokens form
            one player); positions not listed (special tokens) are never removed.
        player_names: one label per player.
        target_names: one label per continuation token (``"total"`` is appended).
        replace_ids: ``L`` replacement ids (one per position: a constant id, or random draws),
            or None to delete removed tokens.
        embeddings: the model's input embedding module (gradient methods), or None.
        kv_reuse: share the unperturbed prefix's keys/values across coalitions. default=True.
        batch_size, progress, max_memory: engine settings.
    """

    kind = "feature"
    player_kind = "token"
    differentiable = True
    #: Values are log-probabilities (read by methods that work on the probability scale).
    value_scale = "log_prob"

    def __init__(self, module: torch.nn.Module, prompt_ids: torch.Tensor,
                 continuation_ids: torch.Tensor, groups: Sequence[Sequence[int]],
                 player_names: list[str], target_names: list[str],
                 replace_ids: torch.Tensor | None, *, kv_reuse: bool = True,
                 player_kind: str = "token", batch_size: int | None = None,
                 progress: bool | None = None, max_memory: int | str | None = None) -> None:
        prompt = torch.as_tensor(prompt_ids, dtype=torch.long).flatten().cpu()
        cont = torch.as_tensor(continuation_ids, dtype=torch.long).flatten().cpu()
        if cont.numel() == 0:
            raise InputError("continuation has no tokens; generate at least one (max_new_tokens >= 1).")
        if len(groups) == 0:
            raise InputError("the prompt has no players (only special tokens); give a non-empty prompt.")
        self.prompt = prompt
        self.continuation = cont
        self.prompt_len = int(prompt.numel())
        self.replace_ids = None if replace_ids is None else torch.as_tensor(replace_ids).long().cpu()
        self.kv_reuse = bool(kv_reuse)
        self.player_kind = player_kind
        n = len(groups)
        owner = torch.full((self.prompt_len,), -1, dtype=torch.long)
        for j, g in enumerate(groups):
            for pos in g:
                owner[int(pos)] = j
        self.owner = owner  # prompt position -> player (-1: never removed)
        self.adapter = CausalLM(module, cont, self.prompt_len)
        fn = _with_total
        target = Target(index=None, fn=fn, output="raw", multi=True,
                        names=[*target_names, "total"], model_output="raw")
        engine = Engine(self.adapter, target, batch_size=batch_size, progress=progress,
                        max_memory=max_memory)
        layout = Layout(input_shapes=((n,),), dense=False, multi_target=True,
                        framework="numpy", dtype="float64")
        super().__init__(engine, target, layout, list(player_names), 1)
        self.embeddings = _input_embeddings(module)
        self.sequence = torch.cat([prompt, cont])[None, :]
        full = self.adapter.reference(self.sequence, keep_cache=self.kv_reuse).to("cpu", torch.float64)
        self.positions_full = int(self.sequence.shape[1])
        self.engine.n_rows += 1
        self._set_reference(_with_total(full).to(torch.float64))
        self.row_bytes = int(self.sequence.shape[1]) * 8

    # ------------------------------------------------------------ counters
    @property
    def positions_run(self) -> int:
        """Token positions the model has run for this game (reference pass included)."""
        return self.adapter.positions_run

    # ------------------------------------------------------------- values
    def _compose_ids(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``rows x (L + T)`` ids, the first removed position and the prompt length per row."""
        rows = int(m.shape[0])
        keep_pos = torch.ones(rows, self.prompt_len, dtype=torch.bool)
        owned = self.owner >= 0
        keep_pos[:, owned] = m[:, self.owner[owned]] > 0.5
        removed = ~keep_pos
        first = torch.where(removed.any(1), removed.float().argmax(1),
                            torch.full((rows,), self.prompt_len)).long()
        cont = self.continuation[None, :].expand(rows, -1)
        if self.replace_ids is not None:
            prompt = torch.where(keep_pos, self.prompt[None, :], self.replace_ids[None, :])
            lengths = torch.full((rows,), self.prompt_len, dtype=torch.long)
            return torch.cat([prompt, cont], 1), first, lengths
        lengths = keep_pos.sum(1)
        if bool((lengths == 0).any()):
            # an empty prompt leaves the first continuation token without a position to be
            # predicted from (its logits were read from position -1: another row's tokens)
            raise InputError(
                "removal='delete' removed every token of the prompt in a coalition (the prompt "
                f"has no special token such as BOS to keep: ids {self.prompt.tolist()}), so the "
                "first generated token has nothing to be predicted from; use a replacement "
                "removal (removal='pad', 'unk', 'eos', 'random' or a token id), a tokenizer that "
                "adds a BOS token, or a method that never removes every player (feature_ablation "
                "with 2 or more players)."
            )
        width = int(lengths.max()) + int(self.continuation.numel())
        pad = 0
        ids = torch.full((rows, width), pad, dtype=torch.long)
        full = torch.cat([self.prompt[None, :].expand(rows, -1), cont], 1)
        keep_all = torch.cat([keep_pos, torch.ones(rows, cont.shape[1], dtype=torch.bool)], 1)
        # stable order of kept positions: target column = running count of kept tokens - 1
        col = keep_all.long().cumsum(1) - 1
        r_idx, c_idx = keep_all.nonzero(as_tuple=True)
        ids[r_idx, col[r_idx, c_idx]] = full[r_idx, c_idx]
        return ids, first, lengths

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        m = masks if shared else masks[0]
        if bool(((m > 0) & (m < 1)).any()):
            frac = float(m[(m > 0) & (m < 1)][0])
            raise InputError(
                f"this method drew fractional masks (e.g. {frac:.3g}), but a prompt token is "
                "either kept or removed; use a binary-mask method (feature_ablation, "
                "kernel_shap, permutation_shapley, lime, ...) or a gradient method "
                "(integrated_gradients: the embedding relaxation)."
            )
        k = int(m.shape[0])
        out = torch.zeros(k, self.n_targets, dtype=torch.float64)

        def build(start: int, stop: int) -> Rows:
            ids, first, lengths = self._compose_ids(m[start:stop])
            kw: dict[str, Any] = {"lengths": lengths}
            if self.kv_reuse:
                kw["first"] = first
            return Rows(inputs=(ids,), sample=torch.zeros(stop - start, dtype=torch.long), kwargs=kw)

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            out[start:stop] = vals.to("cpu", torch.float64)

        self.engine.run(k, build, sink, row_bytes=self.row_bytes, desc="coalitions",
                        describe_row=self.describe_rows(k))
        self.positions_full += k * int(self.sequence.shape[1])
        return out[None]

    def _evaluate_grad(self, masks: torch.Tensor, shared: bool,
                       weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.embeddings is None:
            raise UnsupportedModelError(
                "gradient methods need the model's input embeddings (get_input_embeddings()); "
                "this model has none. Use a perturbation method."
            )
        self.adapter.call.require("inputs_embeds", "gradient methods (embedding relaxation)")
        if self.replace_ids is None:
            raise UnsupportedModelError(
                "removal='delete' has no embedding relaxation (a deleted token has no baseline "
                "embedding); use a replacement token (removal='pad', 'unk', ... or an id) for "
                "gradient methods, or a perturbation method."
            )
        m = masks if shared else masks[0]
        k, n, t_count = int(m.shape[0]), self.n_players, self.n_targets
        dtype = self.adapter.dtype
        dev = self.adapter.device
        with torch.no_grad():
            e_x = self.embeddings(self.sequence.to(dev))[0]  # (L+T) x d
            base_seq = self.sequence.clone()
            base_seq[0, : self.prompt_len] = self.replace_ids
            e_b = self.embeddings(base_seq.to(dev))[0]
        owned = self.owner >= 0
        vals_out = torch.zeros(k, t_count, dtype=torch.float64)
        grad_out = (torch.zeros(k, t_count, n, dtype=torch.float64) if weights is None
                    else torch.zeros(1, t_count, n, dtype=torch.float64))

        def build(start: int, stop: int) -> Rows:
            leaf = m[start:stop].to(dev, dtype).detach().clone().requires_grad_(True)
            rows = stop - start
            pos_mask = torch.ones(rows, int(self.sequence.shape[1]), dtype=dtype, device=dev)
            cols = owned.nonzero().flatten().to(dev)
            pos_mask[:, cols] = leaf[:, self.owner[owned].to(dev)]
            emb = e_b[None] + pos_mask[..., None] * (e_x - e_b)[None]
            return Rows(inputs=(emb,), sample=torch.zeros(rows, dtype=torch.long), leaves=[leaf])

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            vals_out[start:stop] = vals.to("cpu", torch.float64)
            g = grads[0].to("cpu", torch.float64)  # rows x T x n
            if weights is None:
                grad_out[start:stop] = g
            else:
                grad_out[0] += (weights[start:stop, None, None].to(torch.float64) * g).sum(0)

        self.engine.run(k, build, sink, row_bytes=self.row_bytes * 64, grad=True,
                        desc="gradients", describe_row=self.describe_rows(k))
        self.positions_full += k * int(self.sequence.shape[1])
        if weights is None:
            return vals_out[None], grad_out[None]
        return vals_out[None], grad_out

    def embedding_gradients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradients of every target w.r.t. the unperturbed prompt's input embeddings.

        One model row (one evaluation, counted). The gradient ``df/de`` of each prompt position
        is reduced per player: ``signed`` sums it over the player's positions and the
        embedding dimensions (as Captum's ``LLMGradientAttribution`` reduces a layer gradient),
        ``absolute`` sums ``|df/de|`` the same way.

        Returns:
            ``(values 1 x 1 x targets, signed 1 x targets x players, absolute 1 x targets x
            players)``, float64 CPU.
        """
        if self.embeddings is None:
            raise UnsupportedModelError(
                "gradient methods need the model's input embeddings (get_input_embeddings()); "
                "this model has none. Use a perturbation method."
            )
        self.adapter.call.require("inputs_embeds", "gradient methods (embedding gradients)")
        n, t_count = self.n_players, self.n_targets
        dtype, dev = self.adapter.dtype, self.adapter.device
        with torch.no_grad():
            e_x = self.embeddings(self.sequence.to(dev))[0]
        vals_out = torch.zeros(1, t_count, dtype=torch.float64)
        signed = torch.zeros(1, t_count, n, dtype=torch.float64)
        absolute = torch.zeros(1, t_count, n, dtype=torch.float64)
        owned = (self.owner >= 0).nonzero().flatten()
        players = self.owner[owned]

        def build(start: int, stop: int) -> Rows:
            leaf = e_x[None].to(dtype).detach().clone().requires_grad_(True)
            return Rows(inputs=(leaf,), sample=torch.zeros(1, dtype=torch.long), leaves=[leaf])

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            vals_out[:] = vals.to("cpu", torch.float64)
            g = grads[0][0].to("cpu", torch.float64)[:, owned]  # T x positions x d
            signed[0].index_add_(1, players, g.sum(-1))
            absolute[0].index_add_(1, players, g.abs().sum(-1))

        self.count_evals(1)
        self.engine.run(1, build, sink, row_bytes=self.row_bytes * 64, grad=True,
                        desc="gradients", describe_row=lambda r: "the unperturbed prompt")
        self.positions_full += int(self.sequence.shape[1])
        return vals_out[None], signed, absolute


def _with_total(logp: torch.Tensor) -> torch.Tensor:
    """``rows x T`` log-probs -> ``rows x (T + 1)`` with their sum appended."""
    return torch.cat([logp, logp.sum(-1, keepdim=True)], -1)


def _input_embeddings(module: torch.nn.Module) -> torch.nn.Module | None:
    get = getattr(module, "get_input_embeddings", None)
    if get is None:
        return None
    try:
        emb = get()
    except (NotImplementedError, AttributeError):
        return None
    return emb if isinstance(emb, torch.nn.Module) else None
