"""Text games: players are words, tokens, sentences or character spans of a text.

A coalition ``S`` keeps its players' tokens and removes the others; the special tokens the
tokenizer adds and padding are always kept (a special token typed in the text, ``"[SEP]"`` in
the string, is a player named as typed: see :mod:`tribute.models.text`). The value is the model's explained output on the resulting sequence. Removal
options (``removal=``):

* ``"mask"`` / ``"pad"`` / ``"unk"`` / an ``int`` token id: removed tokens are replaced by that
  token (same length, positions unchanged). With an input embedding module (every Hugging Face
  model) the replacement is made on the input embeddings: the model reads that token's
  embedding at a removed token's position while ``input_ids`` stay the text's, so a model
  that also reads the ids -- a decoder classifier pooling at its last non-pad token
  (``GPT2ForSequenceClassification``), RoBERTa's position ids, which skip pad tokens -- still
  sees the text's length and positions (replacing the ids by the pad token would move its
  readout or positions); for models reading ids only through the embedding the two agree;
* ``"delete"``: removed tokens are dropped, the sequence gets shorter and the attention mask
  follows (rows of one batch are left-packed and right-padded); not differentiable, and
  fractional masks (``method="sobol"``) are refused (a token is kept or dropped). A row with
  no token left (the empty coalition of a tokenizer without special tokens, or with
  ``include_special=True``) is one padding token with attention mask 0, so ``v(empty)`` is
  the model's output on that (for a BERT-like model not a meaningful "no text" value: prefer a
  replacement token or keep the special tokens out of the players);
* ``"zero"`` / ``"mean"``: an embedding-level baseline (the zero vector, or the mean row of
  the input embedding matrix) replaces the removed tokens' input embeddings.

The game is a :class:`~tribute.games.features.FeatureGame` over a *presence* vector ``z``
(one entry per player, 1 = present): with the embedding ``e_t`` of token ``t`` and the
removal embedding ``b`` (the replacement token's embedding, the zero or the mean vector), the
model reads ``b + z_{p(t)} (e_t - b)`` at token ``t`` of player ``p(t)`` (a forward hook on the
input embedding module, for binary and fractional masks alike; only a model without an
``nn.Embedding``, or one whose forward never calls it, gets the replacement id itself, and then
no gradients nor fractional masks: they are refused). Every perturbation estimator therefore runs unchanged, and gradient
methods integrate along ``z``: integrated gradients on ``z`` from 0 to 1 is integrated
gradients on the input embeddings from ``b`` to ``e`` (Sundararajan et al. 2017) summed over
each player's tokens and embedding dimensions, and input x gradient is
``sum_t sum_d (e - b) * df/de``. Saliency and SmoothGrad differentiate w.r.t. ``z`` too, i.e.
they report the directional derivative ``sum_t sum_d (e - b) * df/de`` of each player (a
signed, per-player quantity), not ``|df/de|`` per embedding dimension.

Several texts in one call: players are padded to the longest text; the values of a shorter
text's missing players are NaN, ``attr.extra["text_players"]`` holds each text's player names
and ``attr.player_names`` the first text's (padded with ``"<none j>"``). The padded players are
dummies (no tokens) but still players of the game, so they cost budget: exact methods pay
``2^max_players`` evaluations for every text and sampling methods spread their budget over
them; explain texts of very different word counts in separate calls when that matters.
Methods whose credits read the number of players (LIME, wide occlusion windows, joint
Shapley values, ReAGent's softmax importance, Sobol's designs, RISE's masks, integrated
Hessians' steps when a budget sets them) are run by :func:`tribute.explain` on one game per player count instead
(:func:`text_player_counts` and :func:`text_subset` split the texts without running the model).

Sentence pairs: ``(first, second)`` tuples are encoded together (``pair="cross"``: one
sequence, as a cross-encoder reads it) or separately (``pair="cosine"``: the model embeds each
text, the value is the cosine similarity of the two embeddings: a dual encoder; every
coalition then runs the model on both texts, so ``n_rows`` counts two model rows per pair and
coalition while ``n_evals``, the budget, counts the coalition once). Players are
the first text's then the second's. With ``method="shapley_interactions"`` the result also
holds ``attr.extra["pair_interactions"]``, the ``batch x targets x first x second`` block of
Shapley interaction indices (Grabisch & Roubens 1999) between the first text's and the second
text's players: which word pairs drive the similarity (cf. Moeller et al. 2023, "An
attribution method for Siamese encoders", whose integrated Jacobians answer the same question
with second-order gradients). ``method="integrated_hessians"`` (Janizek et al. 2021) fills the
same block from second derivatives of the presence vector ``z``: Integrated Hessians on the
input embeddings from the removal embedding, summed over each pair of words' tokens and
embedding dimensions.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import linecache
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, ModelOutputError, TributeError, UnsupportedModelError
from ..models import ModelAdapter, TorchModel
from ..models.text import TextBatch, as_texts, segment
from ..targets import Target, TargetLike
from .features import FeatureGame

__all__ = ["EMBEDDING_REMOVALS", "PAIR_MODES", "TOKEN_REMOVALS", "TextGame", "input_embedding",
           "text_player_counts", "text_subset", "token_limit"]

TOKEN_REMOVALS = ("mask", "pad", "unk")
EMBEDDING_REMOVALS = ("zero", "mean")
PAIR_MODES = ("cross", "cosine")


def input_embedding(model: Any) -> torch.nn.Embedding | None:
    """The input (token) embedding module of ``model``, or None when it has none.

    Hugging Face models (and wrappers holding one) answer ``get_input_embeddings()``; otherwise
    the first ``nn.Embedding`` registered in the module is taken. When another ``nn.Embedding``
    holds the same weight, that one is returned: the answer can be a holder the forward pass
    never calls (transformers 5's T5 returns ``shared``; its stack calls ``encoder.embed_tokens``,
    a second module tied to the same weight), and a hook on it would never run.
    """
    if not isinstance(model, torch.nn.Module):
        return None
    for mod in model.modules():
        get = getattr(mod, "get_input_embeddings", None)
        if callable(get):
            try:
                emb = get()
            except (NotImplementedError, AttributeError):
                continue
            if isinstance(emb, torch.nn.Embedding):
                tied = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)
                        and m is not emb and m.weight is emb.weight]
                return tied[0] if tied else emb
    for mod in model.modules():
        if isinstance(mod, torch.nn.Embedding):
            return mod
    return None


def _max_positions(model: Any) -> int | None:
    """The most tokens (special tokens included) one row may have: the model's
    ``max_position_embeddings``, less the offset of models numbering positions after their
    padding index (RoBERTa, XLM-R, MPNet, ESM...: position ``padding_idx + k`` for the ``k``-th
    token, so ``max_position_embeddings - padding_idx - 1`` tokens fit, 512 of roberta-base's
    514), or None when the model does not say."""
    mods = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    limit: int | None = None
    for mod in mods:
        cfg = getattr(mod, "config", None)
        n = getattr(cfg, "max_position_embeddings", None)
        if isinstance(n, int) and n > 0:
            limit = n
            break
    for mod in mods:
        pos = getattr(mod, "position_embeddings", None)
        pad = getattr(mod, "padding_idx", None)
        if isinstance(pos, torch.nn.Embedding) and isinstance(pad, int) and not isinstance(pad, bool) \
                and 0 <= pad < pos.num_embeddings and pos.padding_idx == pad:
            fit = pos.num_embeddings - pad - 1
            limit = fit if limit is None else min(limit, fit)
            break
    return limit


def token_limit(max_length: int | None, tokenizer: Any, model: Any) -> int | None:
    """The most tokens one text may have: the smallest of the limits that apply.

    The model's (:func:`_max_positions`: past it a position embedding is missing) always
    applies. ``max_length`` when given, else the tokenizer's ``model_max_length`` when it is a
    real limit (below 10**6; Hugging Face's "no limit" is ~1e30): a tokenizer saved with a
    smaller limit than the model's positions (a sentence encoder trained on 256 tokens over a
    512-position BERT) is read at its own limit, as the tokenizer itself truncates there.
    None when nothing states a limit."""
    own = max_length
    if own is None:
        m = getattr(tokenizer, "model_max_length", None)
        own = int(m) if isinstance(m, int) and not isinstance(m, bool) and 0 < m < 10**6 else None
    limits = [v for v in (own, _max_positions(model)) if v is not None]
    return min(limits) if limits else None


class _TextForward:
    """The model as a function of the presence vector ``z`` (rows x players).

    Keyword tensors (batch first, indexed per row by the engine): ``ids``, ``attn``, ``tp``
    (player per token, -1 = always kept) and ``types`` for the (first) text; ``ids2``,
    ``attn2``, ``tp2`` for the second text of a dual-encoder pair.
    """

    def __init__(self, fn: Any, *, embedding: torch.nn.Embedding | None, removal: str | int,
                 replace_id: int | None, pad_id: int, pair: str | None, takes_mask: bool,
                 takes_types: bool, hf: bool) -> None:
        self.fn = fn
        self.embedding = embedding
        self.removal = removal
        self.replace_id = replace_id
        self.pad_id = pad_id
        self.pair = pair
        self.takes_mask = takes_mask
        self.takes_types = takes_types
        self.hf = hf
        self._groupable = True
        self.pads_safely = False  # the module's output never reads padding: no by-length runs
        self.probing = False  # module hooks read one pass per chunk: the padded batch then
        self._scale: torch.Tensor | None = None
        self._applied = 0
        self._hook_runs = True  # False once the model is seen not to call its embedding module
        self._base: torch.Tensor | None = None

    # ------------------------------------------------------------------ composing
    @staticmethod
    def _token_presence(z: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
        """``rows x length`` presence of each token (1 for tokens that are not players)."""
        ones = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
        ext = torch.cat([z, ones], dim=1)
        idx = torch.where(tp < 0, torch.full_like(tp, z.shape[1]), tp)
        return ext.gather(1, idx)

    def _base_vector(self, weight: torch.Tensor) -> torch.Tensor:
        if self.removal == "zero":
            return torch.zeros(weight.shape[1], dtype=weight.dtype, device=weight.device)
        if self.removal == "mean":
            return weight.mean(0)
        assert self.replace_id is not None
        return weight[self.replace_id]

    def _hook(self, module: torch.nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        scale = self._scale
        if scale is None:
            return out
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        base = self._base_vector(weight).to(out.dtype)
        s = scale.to(out.dtype).unsqueeze(-1)
        self._applied += 1
        if not s.requires_grad and bool(((s == 0) | (s == 1)).all()):
            return torch.where(s > 0.5, out, base)  # exact: b + 1 * (e - b) rounds in low precision
        return base + s * (out - base)

    def _delete(self, keep: torch.Tensor, ids: torch.Tensor, attn: torch.Tensor,
                types: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        keep = keep & (attn > 0)
        n_rows = ids.shape[0]
        length = max(1, int(keep.sum(1).max()))
        pos = keep.long().cumsum(1) - 1
        row = torch.arange(n_rows, device=ids.device)[:, None].expand_as(keep)
        new_ids = torch.full((n_rows, length), self.pad_id, dtype=ids.dtype, device=ids.device)
        new_attn = torch.zeros((n_rows, length), dtype=attn.dtype, device=attn.device)
        new_ids[row[keep], pos[keep]] = ids[keep]
        new_attn[row[keep], pos[keep]] = 1
        new_types = None
        if types is not None:
            new_types = torch.zeros((n_rows, length), dtype=types.dtype, device=types.device)
            new_types[row[keep], pos[keep]] = types[keep]
        return new_ids, new_attn, new_types

    def _run(self, z: torch.Tensor, ids: torch.Tensor, attn: torch.Tensor, tp: torch.Tensor,
             types: torch.Tensor | None) -> Any:
        zt = self._token_presence(z, tp)
        if self.removal == "delete":
            self._refuse_fractional(zt, "removal='delete' drops whole tokens")
            ids, attn, types = self._delete(zt > 0.5, ids, attn, types)
            return self._call(ids, attn, types)
        if self.embedding is not None and self._hook_runs:
            try:
                return self._call(ids, attn, types, zt)
            except _EmbeddingNotRun as exc:
                # the model computes its embeddings without calling the module (F.embedding or
                # indexing on its weight): binary masks replace the ids instead (the same
                # function for a model reading ids only that way); fractional masks cannot
                if self.replace_id is None or not _binary(zt):
                    raise ModelOutputError(
                        f"{exc} Perturbation methods (0/1 masks) then replace token ids, which "
                        f"needs a token removal ('mask', 'pad', 'unk' or an id; got "
                        f"{self.removal!r}); gradient methods need the model to call the module.") from None
                self._hook_runs = False
        # ids are replaced only when there is no input embedding to mix (or the model never
        # calls it): with one, binary and fractional masks run the same function (see _hook).
        # Checked on every call: the reference pass (all ones) is what finds a module that
        # never runs, so a later fractional mask would otherwise be rounded at 0.5 silently
        if zt.requires_grad:  # replaced ids carry no gradient (saliency raised a bare RuntimeError)
            raise UnsupportedModelError(
                "gradient methods differentiate the input embeddings, but the model never calls its "
                "input embedding module (F.embedding or indexing on its weight): removed tokens' ids "
                "are replaced, which has no gradient. Call the nn.Embedding module in forward (or "
                "return it from get_input_embeddings()), or use a perturbation method.")
        self._refuse_fractional(zt, "no input embedding module was found to blend a fraction of a token into"
                                if self.embedding is None else
                                "the model never calls its input embedding module (F.embedding or indexing "
                                "on its weight), so removed tokens' ids are replaced")
        keep = zt > 0.5
        assert self.replace_id is not None
        ids = torch.where(keep, ids, torch.full_like(ids, self.replace_id))
        return self._call(ids, attn, types)

    @staticmethod
    def _refuse_fractional(zt: torch.Tensor, why: str) -> None:
        """Refuse fractional presences where a token can only be kept or removed (they were
        rounded at 0.5: ``method="sobol"`` and the like scored another game, silently)."""
        if _binary(zt):
            return
        z = zt.detach()
        frac = float(z[(z != 0) & (z != 1)][0])  # 1.25 too (infidelity's 1 - u read 'nan' here)
        raise InputError(
            f"got fractional masks (e.g. presence {frac:.3g}: method='sobol', infidelity's gaussian "
            f"perturbations, a gradient path), but {why}: a token is either kept or removed here. "
            "Use a binary-mask method or metric (feature_ablation, kernel_shap, "
            "permutation_shapley, lime, ...), or a removal that blends input embeddings "
            "(removal='mask', 'pad', 'unk', an id, 'zero' or 'mean') with a model that calls its "
            "nn.Embedding input module.")

    def _call(self, ids: torch.Tensor, attn: torch.Tensor, types: torch.Tensor | None,
              scale: torch.Tensor | None = None) -> Any:
        """The model on rows of ids; ``scale`` (rows x length) mixes the input embeddings.

        A model without an ``attention_mask`` argument would read the padding of texts shorter
        than the batch's longest one (its output on a padded text is not its output on the
        text), and so would a module that takes one but reads a fixed position (a wrapper
        returning a decoder's logits at position -1 expects left padding; left padding would
        shift an absolute-position model's positions instead): rows are run in groups of equal
        length, each cut to its own length, so a text's values never depend on the other texts
        of the call. Hugging Face models get the right-padded batch with its attention mask
        (their contract; decoder classifiers find their last token by ``config.pad_token_id``,
        which pads). A module whose output is no tensor (nor ``.logits`` / tuple of them) gets
        the padded batch too, and so does a module with a true ``masks_padding`` attribute
        (its output never reads padding, e.g. :class:`~tribute.models.text.MeanPooling` over a
        Hugging Face encoder): one pass per chunk instead of one per token length.
        """
        if self.reads_padding() and not self.probing:
            lengths = attn.sum(1).clamp(min=1)  # a row left without tokens is one masked pad
            if bool((lengths < ids.shape[1]).any()):
                out = self._call_by_length(ids, attn, types, scale, lengths)
                if out is not None:
                    return out
        return self._call_one(ids, attn, types, scale)

    def reads_padding(self) -> bool:
        """Whether the model could read a shorter text's padding in a padded batch (a module
        without ``attention_mask=``, or one other than a Hugging Face model that does not
        declare ``masks_padding``): its rows then run by token length (see :meth:`_call`)."""
        return not self.takes_mask or (not self.hf and not self.pads_safely and self._groupable)

    def _call_by_length(self, ids: torch.Tensor, attn: torch.Tensor, types: torch.Tensor | None,
                        scale: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor | None:
        rows = int(ids.shape[0])
        out: torch.Tensor | None = None
        for n_tok in torch.unique(lengths).tolist():
            sel = (lengths == n_tok).nonzero().flatten()
            part = self._call_one(ids[sel, :n_tok], attn[sel, :n_tok],
                                  None if types is None else types[sel, :n_tok],
                                  None if scale is None else scale[sel, :n_tok])
            if self.takes_mask and _as_rows(part, int(sel.numel())) is None:
                self._groupable = False  # e.g. a dict of hidden states: the padded batch it is
                return None
            t = _first_tensor(part, int(sel.numel()))
            if out is None:
                out = t.new_empty((rows, *t.shape[1:]))
            out[sel.to(out.device)] = t
        assert out is not None
        return out

    def _call_one(self, ids: torch.Tensor, attn: torch.Tensor, types: torch.Tensor | None,
                  scale: torch.Tensor | None) -> Any:
        if scale is None:
            return self._call_model(ids, attn, types)
        assert self.embedding is not None
        handle = self.embedding.register_forward_hook(self._hook)
        try:
            self._scale, self._applied = scale, 0
            out = self._call_model(ids, attn, types)
            if not self._applied:  # the removal never reached the model: every credit 0
                raise _EmbeddingNotRun(
                    f"the input embedding module ({type(self.embedding).__name__} with "
                    f"{self.embedding.num_embeddings} rows) did not run in the model's forward "
                    "pass, so removed tokens would not be removed by mixing its output. Give the "
                    "model's own token embedding through get_input_embeddings(), or use "
                    "removal='delete'.")
            return out
        finally:
            self._scale = None
            handle.remove()

    def _call_model(self, ids: torch.Tensor, attn: torch.Tensor, types: torch.Tensor | None) -> Any:
        kw: dict[str, Any] = {}
        if self.takes_mask:
            kw["attention_mask"] = attn
        if types is not None and self.takes_types:
            kw["token_type_ids"] = types
        if self.hf:
            return self.fn(input_ids=ids, **kw)
        return self.fn(ids, **kw)

    def __call__(self, z: torch.Tensor, *, ids: torch.Tensor, attn: torch.Tensor, tp: torch.Tensor,
                 types: torch.Tensor | None = None, ids2: torch.Tensor | None = None,
                 attn2: torch.Tensor | None = None, tp2: torch.Tensor | None = None) -> Any:
        out = self._run(z, ids, attn, tp, types)
        if self.pair != "cosine":
            return out
        assert ids2 is not None and attn2 is not None and tp2 is not None
        out2 = self._run(z, ids2, attn2, tp2, None)
        a, b = _embedding_output(out), _embedding_output(out2)
        return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12).unsqueeze(-1)


def _raised_in_target(exc: BaseException) -> bool:
    """``exc`` was raised by a ``target=`` callable (``Target.fn``), not by the model: it passes
    unchanged. Audit aud52x: a target callable's own error was reported as "the text model ...
    failed ... make its forward take any batch x length of token ids" (integrated gradients,
    occlusion: every method on the first coalition block).

    Only the callable's own frames count: an error of tribute's code in ``Target.select``
    (``transform_output``, the class pick) is about the model's output on perturbed rows (fewer
    classes, integer logits) and keeps the text game's wrapper. Review rev52x: any error under
    ``Target.select`` passed raw ("RuntimeError: INDICES element is out of DATA bounds, id=1
    axis_dim=1" for a model that returned fewer classes on batches, where the wrapper named the
    model and the fix)."""
    tb = exc.__traceback__
    select = Target.select.__code__
    while tb is not None:
        if tb.tb_frame.f_code is select:
            nxt = tb.tb_next
            if nxt is not None:  # the frame select called: the callable's, or tribute's helpers'
                return nxt.tb_frame.f_code.co_filename != select.co_filename
            # raised in select's own line: a callable without Python frames (a builtin)
            return "self.fn(" in linecache.getline(select.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return False


def _binary(zt: torch.Tensor) -> bool:
    """Whether every presence is exactly 0 or 1."""
    return bool(((zt == 0) | (zt == 1)).all())


class _EmbeddingNotRun(ModelOutputError):
    """The input embedding module did not run in a forward pass (its hook saw nothing)."""


def _as_rows(out: Any, rows: int) -> torch.Tensor | None:
    """The ``rows x ...`` tensor of a model's output (the tensor, its ``logits`` field or
    attribute, a tuple's first tensor), or None."""
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if not isinstance(out, torch.Tensor) and isinstance(logits, torch.Tensor):
        out = logits
    if not isinstance(out, torch.Tensor) or out.ndim == 0 or int(out.shape[0]) != rows:
        return None
    return out


def _first_tensor(out: Any, rows: int) -> torch.Tensor:
    """The ``rows x ...`` output tensor of a model run per length."""
    got = _as_rows(out, rows)
    if got is None:
        raise InputError(
            f"texts of different token lengths and a model without an attention_mask argument: "
            f"tribute runs each length separately and needs a batch-first tensor output, got "
            f"{type(out).__name__}. Give the model's forward an attention_mask parameter, or "
            "explain texts of one token length per call."
        )
    return got


def _embedding_output(out: Any) -> torch.Tensor:
    """A ``rows x dim`` sentence embedding from a model's output (tensor, pooled output...)."""
    for name in ("sentence_embedding", "pooler_output"):
        v = getattr(out, name, None) if not isinstance(out, (torch.Tensor, dict)) else None
        if isinstance(out, dict):
            v = out.get(name)
        if isinstance(v, torch.Tensor):
            return v
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if isinstance(out, torch.Tensor) and out.ndim == 2:
        return out
    raise InputError(
        "pair='cosine' needs a model returning one embedding per text (rows x dim); wrap an "
        "encoder that returns token states in tribute.models.text.MeanPooling(encoder)."
    )


def _accepts(fn: Any, name: str) -> bool:
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _takes_types(fn: Any, hf: bool) -> bool:
    """Whether the model is given ``token_type_ids=`` (segment ids of a cross-encoded pair).

    A Hugging Face model is when its forward accepts them; any other module or callable when
    its signature names ``token_type_ids`` (a wrapper around a cross-encoder must see which
    tokens are the second text's: without them it reads the pair as one text). A bare
    ``**kwargs`` is not enough there: it may forward to a model without segment ids.
    """
    if hf:
        return _accepts(fn, "token_type_ids")
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return "token_type_ids" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def _pad_id(tokenizer: Any, module: Any, hf: bool, vocab: int | None) -> int:
    """The id that pads shorter texts (and rows shortened by ``removal="delete"``).

    A Hugging Face model's ``config.pad_token_id`` when it has one in its vocabulary: decoder
    classifiers (GPT-2, Llama...) pool at the last token that is not that id, so padding with
    another id (GPT-2's tokenizer has no pad token; 0 is ``"!"``) would read a shorter text's
    padding. Else the tokenizer's pad id, else 0 (padding is attention-masked either way).
    """
    if hf:
        cfg = getattr(module, "config", None)
        pid = getattr(cfg, "pad_token_id", None)
        if isinstance(pid, int) and not isinstance(pid, bool) and 0 <= pid and (vocab is None or pid < vocab):
            return pid
    tid = getattr(tokenizer, "pad_token_id", None)
    return 0 if tid is None else int(tid)


def _is_hf_model(model: Any) -> bool:
    return isinstance(model, torch.nn.Module) and hasattr(model, "config") and callable(
        getattr(model, "get_input_embeddings", None))


def _resolve_removal(removal: Any, tokenizer: Any, vocab: int | None) -> tuple[str | int, int | None]:
    """``(removal, replacement token id or None)``; errors name the option and the fix."""
    if removal is None:
        for name in ("mask", "unk", "pad"):  # as documented: mask, else unk, else pad
            if getattr(tokenizer, f"{name}_token_id", None) is not None:
                removal = name
                break
        else:
            raise InputError(
                "removal=None: the tokenizer has no mask, pad or unk token; pass removal=<token "
                "id>, 'delete', 'zero' or 'mean'."
            )
    if isinstance(removal, bool) or not isinstance(removal, (str, int, np.integer)):
        raise InputError(
            f"removal={removal!r} must be one of {(*TOKEN_REMOVALS, 'delete', *EMBEDDING_REMOVALS)} "
            "or a token id (int)."
        )
    if isinstance(removal, (int, np.integer)):
        rid = int(removal)
        if rid < 0 or (vocab is not None and rid >= vocab):
            raise InputError(f"removal={rid} is not a token id of the model (0..{vocab - 1 if vocab else '?'}).")
        return rid, rid
    if removal in TOKEN_REMOVALS:
        tid = getattr(tokenizer, f"{removal}_token_id", None)
        if tid is None:
            raise InputError(
                f"removal={removal!r}: the tokenizer has no {removal} token; use another of "
                f"{TOKEN_REMOVALS}, a token id, 'delete', 'zero' or 'mean'."
            )
        return str(removal), int(tid)
    if removal == "delete" or removal in EMBEDDING_REMOVALS:
        return str(removal), None
    raise InputError(
        f"removal={removal!r} is not one of {(*TOKEN_REMOVALS, 'delete', *EMBEDDING_REMOVALS)} "
        "or a token id (int)."
    )


class TextGame(FeatureGame):
    """Players are units of text (words, tokens, sentences, character spans).

    Args:
        model: adapted torch model: a Hugging Face model (called with ``input_ids=``,
            ``attention_mask=`` and, for pairs, ``token_type_ids=``), or a module/callable over
            ``batch x length`` token ids (given ``attention_mask=`` when its signature has it,
            and a pair's ``token_type_ids=`` when its signature names that argument).
        texts: a string, a ``(first, second)`` pair, or a list of either.
        tokenizer: a Hugging Face fast tokenizer or a :class:`tribute.models.text.OffsetTokenizer`.
        players: ``"words"``, ``"tokens"``, ``"sentences"`` or character spans (see
            :func:`tribute.models.text.segment`); for pairs also ``(first, second)`` settings,
            ``None`` for a side without players. default="words".
        removal: see the module docstring. default=None (the tokenizer's mask token, else its
            unk, else its pad token).
        pair: ``"cross"`` or ``"cosine"`` for sentence pairs. default=None (``"cross"``).
        include_special: special tokens become players too. default=False.
        max_length: the most tokens per text (special tokens included); longer texts are
            refused. The model's own limit (``max_position_embeddings``) always applies too.
            default=None (the smaller of the tokenizer's ``model_max_length`` and the model's
            limit).
        target, output, batch_size, progress: as for :class:`FeatureGame`.
    """

    def baseline_digest(self) -> str | None:
        """None: a text's removal is a setting of the game (``removal=``), not a baseline table."""
        return None

    def __init__(
        self,
        model: ModelAdapter,
        texts: Any,
        *,
        tokenizer: Any,
        players: Any = "words",
        removal: Any = None,
        pair: str | None = None,
        include_special: bool = False,
        max_length: int | None = None,
        target: TargetLike = None,
        output: str = "raw",
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> None:
        if not isinstance(model, TorchModel):
            raise InputError(
                f"text inputs need a torch model over token ids (an nn.Module or a callable on "
                f"tensors); got {type(model).__name__}."
            )
        items, _ = as_texts(texts)
        is_pair = isinstance(items[0], tuple)
        if pair is not None and pair not in PAIR_MODES:
            raise InputError(f"pair={pair!r} is not one of {PAIR_MODES}.")
        if pair is not None and not is_pair:
            raise InputError(f"pair={pair!r} needs (first, second) tuples of texts; texts are single strings.")
        mode = (pair or "cross") if is_pair else None
        module = model.module
        emb = input_embedding(module)
        vocab = int(emb.num_embeddings) if emb is not None else None
        rem, rid = _resolve_removal(removal, tokenizer, vocab)
        if rem in EMBEDDING_REMOVALS and emb is None:
            raise InputError(
                f"removal={rem!r} replaces input embeddings, but the model has no nn.Embedding "
                "input layer; use a token removal ('mask', 'pad', 'unk', an id) or 'delete'."
            )
        limit = token_limit(max_length, tokenizer, module)
        hf = _is_hf_model(module)
        pad_id = _pad_id(tokenizer, module, hf, vocab)
        enc, main, kw = _segment_texts(items, tokenizer, players, mode, include_special, limit, pad_id)
        self.text = enc
        all_ids = [main.input_ids] + ([kw["ids2"]] if "ids2" in kw else [])
        if vocab is not None:
            top = max(int(t.max()) for t in all_ids)
            if top >= vocab:
                raise InputError(
                    f"tokenizer produced token id {top} but the model's input embedding has "
                    f"{vocab} rows: the tokenizer does not match the model's vocabulary; load the "
                    "tokenizer that belongs to the model."
                )
        fn = model.fn
        takes_mask = hf or _accepts(fn, "attention_mask")
        if rem == "delete" and not takes_mask:
            raise InputError(
                "removal='delete' makes rows of different lengths, padded in one batch; the model "
                "takes no attention_mask= argument to ignore the padding, so values would depend "
                "on the batch. Use removal='mask'/'pad'/'unk' or a token id, or give the model's "
                "forward an attention_mask parameter."
            )
        forward = _TextForward(
            fn, embedding=emb, removal=rem, replace_id=rid,
            pad_id=pad_id, pair=mode,
            takes_mask=takes_mask,
            takes_types=_takes_types(fn, hf), hf=hf,
        )
        # a module declaring that its output never reads padding (MeanPooling over a Hugging
        # Face encoder) keeps the padded batch: one pass per chunk, not one per token length
        forward.pads_safely = takes_mask and bool(getattr(module, "masks_padding", False))
        adapter = copy.copy(model)
        adapter.fn = forward
        if mode == "cosine":
            adapter.output_kind, adapter.output_assumed = "raw", False
            adapter.sequences_per_row = 2  # both texts run through the model: n_rows counts both
        kw.update(ids=main.input_ids, attn=main.attention_mask, tp=main.token_player)
        if main.token_type_ids is not None and mode != "cosine":
            kw["types"] = main.token_type_ids
        n_max = enc.max_players
        names = list(enc.player_names[0]) + [f"<none {j}>" for j in range(len(enc.player_names[0]), n_max)]
        dtype = model.compute_dtype(torch.float32)
        super().__init__(
            adapter, torch.ones(len(items), n_max, dtype=dtype), target=target, baseline=0.0,
            output=output, forward_kwargs=kw, feature_names=names, batch_size=batch_size,
            progress=progress,
        )
        self._forward = forward
        self.removal = rem
        self.pair = mode
        self.differentiable = bool(model.differentiable) and emb is not None and rem != "delete"
        hidden = int(emb.embedding_dim) if emb is not None else 64
        n_seq = 2 if mode == "cosine" else 1
        self.row_bytes = max(self.row_bytes, n_seq * int(main.input_ids.shape[1]) * hidden * 4 * 8)
        unit = players if isinstance(players, str) else "span"
        self.player_kind = {"words": "word", "tokens": "token", "sentences": "sentence"}.get(unit, "span")
        self.layout = dataclasses.replace(self.layout, framework="numpy", device="cpu", dtype="float64")

    # ------------------------------------------------------------------ model errors
    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        with self._model_errors("coalition values", masks):
            return super()._evaluate(masks, shared)

    def _evaluate_grad(self, masks: torch.Tensor, shared: bool,
                       weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        with self._model_errors("gradients", masks):
            return super()._evaluate_grad(masks, shared, weights)

    @contextlib.contextmanager
    def _model_errors(self, what: str, masks: torch.Tensor) -> Iterator[None]:
        """An exception the model raised itself (a shape error, an assertion) while the game
        evaluated perturbed texts, as an :class:`InputError` naming the model, what was being
        computed and the texts, with the model's exception as ``__cause__`` (tribute's own
        errors and running out of memory pass unchanged; the engine has already retried
        smaller chunks where the error could be about the batch size)."""
        try:
            yield
        except TributeError:
            raise
        except Exception as exc:
            if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or \
                    "out of memory" in str(exc).lower() or _raised_in_target(exc):
                raise
            model = self.model.module if isinstance(self.model, TorchModel) else self.model
            texts = [t if isinstance(t, str) else " / ".join(t) for t in self.text.texts]
            shown = "; ".join(repr(t[:40]) for t in texts[:3]) + ("; ..." if len(texts) > 3 else "")
            n_rows = int(masks.shape[-2]) if masks.ndim >= 2 else 1
            raise InputError(
                f"the text model ({type(model).__name__}) failed while tribute computed {what} "
                f"for {n_rows} mask row(s) (coalitions or gradient points) of {len(texts)} "
                f"text(s) ({shown}; removal="
                f"{self.removal!r}): {type(exc).__name__}: {exc}. The model ran on the whole "
                "texts, so it fails on texts with players removed, on batches of several rows, "
                "or (gradients) when autograd is on; make its forward take any batch x length "
                "of token ids (with attention_mask=), or pick another removal or method. The "
                "model's own error is the __cause__ of this one."
            ) from exc

    def players_per_text(self) -> list[int]:
        """The number of players of each text (the game's players are padded to the largest)."""
        return [len(p) for p in self.text.player_names]

    def probe(self, on_chunk: Any, **kwargs: Any) -> None:
        """As :meth:`FeatureGame.probe`. Hooks on modules (``modules=``, ``context=``) read one
        forward pass per chunk, so rows are then not run by token length (see
        ``_TextForward._call``): a module that takes ``attention_mask=`` gets the padded batch."""
        fwd = self._forward
        was = fwd.probing
        fwd.probing = bool(kwargs.get("modules")) or kwargs.get("context") is not None
        try:
            super().probe(on_chunk, **kwargs)
        finally:
            fwd.probing = was

    def probe_by_length(self, on_chunk: Any, **kwargs: Any) -> None:
        """As :meth:`probe` (module hooks included), but for a model that could read padding
        (:meth:`_TextForward.reads_padding`) with texts of different token lengths, one probe
        per token length over those texts cut to it: a module reading a fixed position (a
        wrapper returning ``logits[:, -1]``) reads each text's own last token, as it does for
        the other methods. Chunks then carry the batch's sample ids and activations and
        gradients of their texts' token length (no padding columns); rows and evaluations
        are counted as by one probe."""
        attn = self.forward_kwargs["attn"]
        lengths = attn.sum(1).clamp(min=1).cpu()
        uniq = torch.unique(lengths).tolist()
        if len(uniq) < 2 or self.pair == "cosine" or not self._forward.reads_padding():
            self.probe(on_chunk, **kwargs)
            return
        k_count = int(kwargs.get("n_points", 1))
        evals = kwargs.pop("evals", None)
        for n_tok in uniq:
            sel = (lengths == n_tok).nonzero().flatten()
            view = self._texts_view(sel, int(n_tok))

            def relay(c: Any, sel: torch.Tensor = sel) -> None:
                on_chunk(dataclasses.replace(c, sample=sel[c.sample]))

            view.probe(relay, evals=0, **kwargs)
        self.count_evals(k_count * int(kwargs.get("rows_per_point", 1)) if evals is None else int(evals))

    def _texts_view(self, sel: torch.Tensor, n_tok: int) -> TextGame:
        """This game on the texts ``sel`` (of ``n_tok`` tokens each), cut to ``n_tok`` tokens:
        same model, engine (rows counted once) and settings; evaluations are not reported."""
        view = copy.copy(self)
        dev = self.model.device
        sel_d = sel.to(dev)
        view.inputs = [dataclasses.replace(
            inp, x=inp.x[sel_d], base=inp.base[sel_d] if inp.base_mode == "per_sample" else inp.base,
            groups=inp.groups[sel_d.to(inp.groups.device)] if inp.groups is not None and inp.groups.ndim == 2
            else inp.groups) for inp in self.inputs]
        view.n_samples = int(sel.numel())
        t = self.target
        view.target = dataclasses.replace(
            t, index=None if t.index is None else t.index[sel.to(t.index.device)], names=list(t.names),
            kl_reference=None if t.kl_reference is None else t.kl_reference[sel.to(t.kl_reference.device)])

        def cut(key: str, v: Any) -> Any:
            if not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[0] != self.n_samples:
                return v
            v = v[sel.to(v.device)]
            return v[:, :n_tok] if key in ("ids", "attn", "tp", "types") else v

        view.forward_args = tuple(cut("", a) for a in self.forward_args)
        view.forward_kwargs = {k: cut(k, v) for k, v in self.forward_kwargs.items()}
        view.reference_output = self.reference_output[sel.to(self.reference_output.device)]
        view.n_evals = 0
        view._full, view._empty, view._full_counted = None, None, False
        view._diff_cache = {}
        view._report_to = None
        view._sample_evals = None
        return view

    # ------------------------------------------------------------------ results
    def attribution(self, values: torch.Tensor, method: str, params: dict[str, Any] | None = None,
                    *, stderr: torch.Tensor | None = None, gap: torch.Tensor | None = None,
                    extra: dict[str, Any] | None = None) -> Attribution:
        """As :meth:`Game.attribution`; a shorter text's missing players get NaN values."""
        missing = torch.zeros(self.n_samples, self.n_players, dtype=torch.bool)
        for i, n in enumerate(self.text.n_players):
            missing[i, n:] = True
        if bool(missing.any()):
            values = values.double().masked_fill(missing[:, None, :], math.nan)
            if stderr is not None:
                stderr = stderr.double().masked_fill(missing[:, None, :], math.nan)
        info = {
            "texts": [list(t) if isinstance(t, tuple) else t for t in self.text.texts],
            "text_players": [list(n) for n in self.text.player_names],
            "text_spans": [[list(s) for s in sp] for sp in self.text.player_spans],
            "removal": self.removal,
            "pair": self.pair,
        }
        extra = dict(extra or {})
        inter = extra.get("interactions")
        if self.pair is not None and isinstance(inter, np.ndarray) and inter.ndim == 4:
            extra["pair_interactions"] = self._cross_block(inter)
        return super().attribution(values, method, params, stderr=stderr, gap=gap,
                                   extra={**extra, **info})

    def _cross_block(self, inter: np.ndarray) -> np.ndarray:
        """``batch x targets x first x second`` word-by-word block of an interaction matrix
        (first text's players in rows, second's in columns; NaN-padded across the batch)."""
        sides = [[sum(1 for s in sp if s[0] == k) for sp in self.text.player_spans] for k in (0, 1)]
        na, nb = max(sides[0]), max(sides[1])
        out = np.full((inter.shape[0], inter.shape[1], na, nb), np.nan)
        for i, (a, b) in enumerate(zip(*sides)):
            out[i, :, :a, :b] = inter[i, :, :a, a : a + b]
        return out



def _segment_texts(items: list[Any], tokenizer: Any, players: Any, mode: str | None,
                   include_special: bool, limit: int | None,
                   pad_id: int) -> tuple[TextBatch, TextBatch, dict[str, Any]]:
    """``(players of every text, the (first) text's tokens, the second text's tensors)``: the
    segmentation :class:`TextGame` builds its game on (no model is run)."""
    kw: dict[str, Any] = {}
    if mode == "cosine":
        sides = [segment([t[k] for t in items], tokenizer, _side(players, k),
                         include_special=include_special, max_length=limit,
                         require_players=False, pad_id=pad_id) for k in (0, 1)]
        enc = _join_sides(items, sides)
        b_tp = sides[1].token_player.clone()
        counts = torch.tensor(sides[0].n_players)[:, None]
        b_tp = torch.where(b_tp >= 0, b_tp + counts, b_tp)
        kw.update(ids2=sides[1].input_ids, attn2=sides[1].attention_mask, tp2=b_tp)
        main = sides[0]
        empty = [i for i, n in enumerate(enc.n_players) if n == 0]
        if empty:
            raise InputError(f"texts{empty[:5]} have no players on either side; check players=.")
    else:
        enc = segment(items, tokenizer, players, include_special=include_special, max_length=limit,
                      pad_id=pad_id)
        main = enc
    return enc, main, kw


def _side(players: Any, k: int) -> Any:
    """The ``players=`` setting of side ``k`` of a dual-encoder pair."""
    if isinstance(players, tuple) and len(players) == 2:
        return players[k]
    if isinstance(players, list) and players and isinstance(players[0], tuple) and len(players[0]) == 2 \
            and not all(isinstance(v, int) for v in players[0]):
        return [p[k] for p in players]
    return players


def _join_sides(items: Sequence[Any], sides: list[TextBatch]) -> TextBatch:
    """One :class:`TextBatch` describing both sides' players (first text's, then second's)."""
    a, b = sides
    names = [na + nb for na, nb in zip(a.player_names, b.player_names)]
    spans = [sa + [(1, s, e) for _, s, e in sb] for sa, sb in zip(a.player_spans, b.player_spans)]
    return TextBatch(
        texts=list(items), input_ids=a.input_ids, attention_mask=a.attention_mask,
        token_type_ids=None, token_player=a.token_player, player_names=names,
        player_spans=spans, tokens=[ta + tb for ta, tb in zip(a.tokens, b.tokens)],
    )


def text_player_counts(model: ModelAdapter, texts: Any, *, tokenizer: Any, players: Any = "words",
                       pair: str | None = None, include_special: bool = False,
                       max_length: int | None = None) -> list[int] | None:
    """Players of each text as :class:`TextGame` would segment ``texts`` (no model is run), or
    None when the texts would not make a text game (the game's own build then says why)."""
    from .build import _is_text

    if not isinstance(model, TorchModel) or not _is_text(texts):
        return None
    try:
        items, _ = as_texts(texts)
        is_pair = isinstance(items[0], tuple)
        if (pair is not None and (pair not in PAIR_MODES or not is_pair)) or not items:
            return None
        mode = (pair or "cross") if is_pair else None
        limit = token_limit(max_length, tokenizer, model.module)
        enc, _, _ = _segment_texts(items, tokenizer, "words" if players is None else players, mode,
                                   include_special, limit, 0)
    except InputError:
        return None
    return [len(p) for p in enc.player_names]


def text_subset(texts: Any, players: Any, rows: Sequence[int]) -> tuple[list[Any], Any]:
    """``(texts, players)`` of the texts at positions ``rows``: a per-text ``players=`` (one
    span list per text) follows its texts; a setting shared by every text stays as it is."""
    items, _ = as_texts(texts)
    picked = [items[int(i)] for i in rows]
    if not isinstance(players, (list, tuple)) or len(players) != len(items):
        return picked, players  # one setting for every text (or one the game refuses)
    first = players[0]
    if isinstance(first, (tuple, list)) and len(first) == 2 and all(isinstance(v, int) for v in first):
        return picked, players  # one text's (start, end) spans: refused for several texts
    if isinstance(items[0], tuple) and isinstance(players, tuple) and len(players) == 2:
        return picked, players  # (first side's, second side's) setting of every pair
    return picked, [players[int(i)] for i in rows]
