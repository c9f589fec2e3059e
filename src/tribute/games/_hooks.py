"""Scoped hooks for component games.

Everything that touches a model's modules lives in :func:`installed` — a context manager that
registers forward hooks (and, for ``torch.nn.MultiheadAttention``, a temporary ``forward``
that exposes the per-head context), disables PyTorch's fused attention fast paths, and removes
all of it in ``finally`` (also when the forward pass raises).

The hooks are stateless functions of a shared :class:`RowState`: the game sets, per chunk of
rows, the mask of every row (``rows x players``), which input sample and which reference row
each row belongs to; the hooks read it during the forward pass. Several rows therefore carry
several coalitions through one forward pass.

Activation edits (``m`` the row's mask of a unit, ``a`` the ablation value)::

    act' = act + (1 - m) * (a - act)      # = a + m * (act - a); exact act at m = 1

"""

from __future__ import annotations

import contextlib
import math
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError, UnsupportedModelError

__all__ = ["RowState", "Site", "installed"]


@dataclass
class Site:
    """One hooked module: its players are units along one axis of its activation.

    Attributes:
        name: the name used in player names (what the user typed).
        path: the module path actually hooked.
        unit: ``"neuron"`` (last axis), ``"channel"`` (axis 1) or ``"head"`` (chunks of the last
            axis, ``num_heads`` of them).
        kind: ``"output"`` (forward hook on the module's output, first element of a tuple
            output), ``"input"`` (forward pre-hook on the module's first input — the heads'
            context entering an attention module's output projection) or ``"mha"``
            (``nn.MultiheadAttention``: the context before ``out_proj``).
        num_heads: heads (``unit="head"``).
        shapes: per-sample activation shape of each call in one forward pass (batch first,
            batch axis dropped), filled by the reference pass.
        n_units: number of players of this site.
        offset: first player id of this site.
    """

    name: str
    path: str
    unit: str
    kind: str
    num_heads: int | None = None
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    n_units: int = 0
    offset: int = 0

    @property
    def n_calls(self) -> int:
        return len(self.shapes)

    def units_of(self, shape: tuple[int, ...]) -> int:
        """Units along this site's axis for a per-sample activation shape."""
        if not shape:
            # aud46c: a module returning (aux, h) was told only "returned a scalar per sample"
            raise UnsupportedModelError(
                f"module {self.path!r} returned a scalar per sample; component players need an "
                "activation with a unit axis. Of a tuple output the first element is read: "
                "return the activation first, or name a module that returns it."
            )
        if self.unit == "channel":
            if len(shape) < 2:
                raise UnsupportedModelError(
                    f"unit='channel' on {self.path!r}: its activation has per-sample shape {shape}; "
                    "channels are axis 1 of (batch, channels, ...) outputs (Conv layers). Use "
                    "unit='neuron' for (batch, features) outputs."
                )
            return int(shape[0])
        if self.unit == "head":
            h = int(self.num_heads or 0)
            if h < 1 or shape[-1] % h:
                raise UnsupportedModelError(
                    f"unit='head' on {self.path!r}: the last axis has {shape[-1]} entries, which "
                    f"does not split into num_heads={self.num_heads} heads."
                )
            return h
        return int(shape[-1])

    def expand(self, m: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Broadcast a ``rows x units`` mask onto a batch-first activation."""
        rows, extra = act.shape[0], act.ndim - 2
        if extra == 0 and self.unit == "neuron" and m.ndim == 2 and int(m.shape[0]) == int(rows):
            return m  # (rows, units) already: the reshape would return a view of the same shape
        if self.unit == "channel":
            return m.reshape(rows, m.shape[1], *([1] * extra))
        if self.unit == "head":
            per = act.shape[-1] // m.shape[1]
            m = m.repeat_interleave(per, dim=1)
        return m.reshape(rows, *([1] * extra), m.shape[1])

    def reduce(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Sum ``... x prod(shape)`` per-element values into ``... x units``."""
        lead = x.shape[:-1]
        units = self.n_units
        if self.unit == "channel":
            pre, post = 1, math.prod(shape[1:])
        elif self.unit == "head":
            pre, post = math.prod(shape[:-1]), shape[-1] // units
        else:
            pre, post = math.prod(shape[:-1]), 1
        return x.reshape(*lead, pre, units, post).sum(dim=(-3, -1))


@dataclass
class RowState:
    """What the hooks read during one forward pass (set by the game for each chunk).

    Attributes:
        mode: ``"capture"`` (store activations, no edit), ``"mask"`` (apply masks) or ``"off"``.
        mask: ``rows x players`` masks (``mode="mask"``).
        sample: ``rows`` input sample of each row (indexes per-sample ablation values).
        ref: ``rows`` reference row of each row (resample ablation).
        ablate: ``(site, call, act, state) -> ablation value`` broadcastable to ``act``, or None
            for zero ablation.
        captured: ``site -> call -> list of chunks`` (``mode="capture"``).
        calls: calls of each site in the current forward pass.
        drop: ``rows`` index of the layer whose backward pass is dropped (GradDrop), -1 none.
        leaves: the current rows' gradient leaves (``mode="probe"`` appends a zero probe per
            site call, so gradients w.r.t. activations come back from the engine).
        probes: ``((site, call), activation)`` of each probe, in leaf order.
        record: sites whose edited activations are also stored in ``captured`` (``mode="mask"``).
        only_call: ``rows`` call index that each row's mask applies to (``-1``: every call);
            the other calls of a site run unedited (``mode="mask"``), or None (every call).
        rows: rows of the current forward pass (``mode="capture"``/``"probe"``: every hooked
            activation must have them first), or None (not checked).
    """

    mode: str = "off"
    mask: torch.Tensor | None = None
    sample: torch.Tensor | None = None
    ref: torch.Tensor | None = None
    ablate: Callable[[int, int, torch.Tensor, RowState], torch.Tensor | None] | None = None
    captured: dict[int, dict[int, list[torch.Tensor]]] = field(default_factory=dict)
    calls: list[int] = field(default_factory=list)
    drop: torch.Tensor | None = None
    leaves: list[torch.Tensor] = field(default_factory=list)
    probes: list[tuple[tuple[int, int], torch.Tensor]] = field(default_factory=list)
    record: set[int] = field(default_factory=set)
    only_call: torch.Tensor | None = None
    rows: int | None = None
    #: a sentence ending a refusal of :func:`_check_rows` (the component game's 1-D input hint)
    rows_hint: str = ""
    #: :func:`_memory_key` of an activation -> (site, its name, activation, its copy) seen in the
    #: current capture pass (the tensor is held so that its memory is not reused within the pass)
    seen: dict[Any, tuple[int, str, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    #: ``(earlier, later)`` site pairs through which one tensor object can only pass on unchanged
    #: (the later module contains the earlier, or both are children of one ``nn.Sequential``);
    #: set by :func:`installed`
    linked: set[tuple[int, int]] = field(default_factory=set)

    def new_pass(self, n_sites: int) -> None:
        self.calls = [0] * n_sites
        self.seen = {}


def _check_rows(site: Site, act: torch.Tensor, rows: int, hint: str = "") -> None:
    """Refuse an activation whose first axis is not the pass's rows (its batch axis elsewhere);
    ``hint`` (:attr:`RowState.rows_hint`) ends the refusal."""
    if act.ndim == 0 or act.shape[0] != rows:
        # aud46c: a module run once on several batches stacked along the batch axis (a siamese
        # encoder called on torch.cat([a, b])) was told only of sequence-first layouts and
        # batch_first=True, which is neither its cause nor its fix
        first = int(act.shape[0]) if act.ndim else 0
        # rev46c: a (time, batch, ...) activation (batch axis second) is the sequence-first layout,
        # not stacked batches: with T a multiple of the rows (every batch of 1) the stacking text led
        seq_first = act.ndim >= 2 and int(act.shape[1]) == rows
        stacked = (f"Its {first} rows are {first // rows} x the pass's {rows}: the model seems to run it on "
                   f"{first // rows} batches stacked along the batch axis (e.g. torch.cat([a, b]) of the two "
                   "sides of a pair); call the module once per batch (enc(a), enc(b)), or name a module "
                   "that runs on the rows as they are. Or a "
                   if rows > 0 and first > rows and first % rows == 0 and not seq_first else "A ")
        raise UnsupportedModelError(
            f"module {site.path!r} returned an activation of shape {tuple(act.shape)} on a forward pass "
            f"of {rows} rows; component games need modules whose activations keep the batch axis "
            f"first (one activation row per input row). {stacked}sequence-first module (time first, e.g. "
            "torch.nn.TransformerEncoderLayer or an RNN without batch_first=True) puts it second: "
            f"build it with batch_first=True, or name a batch-first module.{' ' + hint if hint else ''}"
        )


def _edit(site_id: int, site: Site, act: torch.Tensor, state: RowState) -> torch.Tensor:
    """Apply the state to a batch-first activation of ``site`` (returns a new tensor)."""
    if state.mode == "off" or site_id >= len(state.calls):
        return act
    call = state.calls[site_id]
    state.calls[site_id] += 1
    if state.rows is not None and state.mode in ("capture", "probe"):
        _check_rows(site, act, state.rows, state.rows_hint)
    if state.mode == "capture":
        copy = act.detach().clone()
        if state.linked:  # (rev44c: no site pair to check, no activation held for the pass)
            first, first_name, _, seen_copy = state.seen.setdefault(_memory_key(act), (site_id, site.name, act, copy))
            # the same tensor, not changed in place in between (a ReLU(inplace=True) site after a
            # BatchNorm site returns the BatchNorm's tensor, with other values)
            # rev44c: only where the first site's tensor can reach nothing but the second module; two
            # eval Dropouts on one hidden state in two branches, or an Identity norm on a residual
            # stream next to its input's site, are other players (credits = hand ablation, 0.0 off)
            if first != site_id and (first, site_id) in state.linked and seen_copy.shape == act.shape \
                    and torch.equal(seen_copy, act):
                # aud44c: a module returning another site's activation itself (a Sequential and its last
                # child, or an eval-mode Dropout after a Linear): every unit was two players, each given
                # half its credit (-0.077 and -0.077 where the unit's own is -0.154), without a word
                raise InputError(
                    f"modules {first_name!r} and {site.name!r} give the same activation tensor (one "
                    "returns the other's output unchanged), so their units would be the same players twice, "
                    "each credited with half; list one of them.")
        state.captured.setdefault(site_id, {}).setdefault(call, []).append(copy)
        return act
    if state.mode == "probe":
        probe = torch.zeros_like(act, requires_grad=True)
        state.leaves.append(probe)
        # a copy (aud44c): an activation aliasing a tensor the model later changes in place (an
        # nn.Identity or eval-mode Dropout site, then ``h += ...`` on its input) was read after that
        # change; layer_grad_cam on such a site was 0.047 off ``grad x act``, without a word
        state.probes.append(((site_id, call), act.detach().clone()))
        return act + probe
    if state.mode != "mask" or state.mask is None:
        return act
    mask = state.mask
    _check_rows(site, act, int(mask.shape[0]), state.rows_hint)
    # issue #9 (eng43b): one site spanning every player column takes the mask itself (the same
    # tensor as the full slice), and a mask of the activation's dtype is not converted: ~4.5 us
    # hot per hooked pass of the ~9 us these steps cost
    lo, n_units = site.offset, site.n_units
    m = mask if lo == 0 and int(mask.shape[1]) == n_units else mask[:, lo : lo + n_units]
    if m.dtype != act.dtype:
        m = m.to(act.dtype)
    if state.only_call is not None:
        # a row ablating one call of a module called several times keeps the other calls
        keep = (state.only_call < 0) | (state.only_call == call)
        m = torch.where(keep[:, None], m, torch.ones_like(m))
    m = site.expand(m, act)
    abl = state.ablate(site_id, call, act, state) if state.ablate is not None else None
    # one fused op: abl + m (act - abl), exactly act where m = 1 and abl where m = 0
    new = act * m if abl is None else torch.lerp(abl.expand_as(act), act, m.expand_as(act))
    if site_id in state.record:
        state.captured.setdefault(site_id, {}).setdefault(call, []).append(new.detach().clone())
    return new


def _output_hook(site_id: int, site: Site, state: RowState) -> Callable[..., Any]:
    def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return _edit(site_id, site, output, state)
        if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            new = _edit(site_id, site, output[0], state)
            rest = list(output[1:])
            if isinstance(module, torch.nn.RNNBase) and new is not output[0]:
                rest = _rnn_final_state(module, new, rest)
            return _same_kind(output, [new, *rest])
        raise UnsupportedModelError(
            f"module {site.path!r} returned {type(output).__name__}; component players need a "
            "tensor output (or a tuple whose first element is the activation)."
        )

    return hook


def _same_kind(output: tuple[Any, ...] | list[Any], items: list[Any]) -> Any:
    """``items`` in the container type of ``output``: a list, a plain tuple, a named tuple (aud44c:
    a module returning ``NamedTuple(h, aux)`` got a plain tuple back, and the model's ``out.h``
    raised ``AttributeError: 'tuple' object has no attribute 'h'``) or another tuple subclass
    built from one sequence (``torch.return_types``)."""
    kind = type(output)
    if kind is tuple:
        return tuple(items)
    make = getattr(kind, "_make", None)
    if callable(make):
        return make(items)
    try:
        return kind(items)
    except TypeError:
        return tuple(items) if isinstance(output, tuple) else list(items)


def _memory_key(act: torch.Tensor) -> Any:
    """The memory an activation reads, as it reads it: a view of another site's activation with
    its layout (``x.view(x.shape)``, ``x.squeeze(-1)`` without a unit axis) has that one's key,
    as the tensor itself does. rev44z: keyed by ``id`` alone, a ``View`` module after a Linear
    gave each unit twice, each credited half (0.0238 twice where the unit's own is 0.0476),
    silently. Empty tensors and tensors without plain storage are keyed by ``id``."""
    if act.numel() == 0:
        return id(act)
    try:
        ptr = act.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):  # no plain storage (sparse, wrappers)
        return id(act)
    return (ptr, act.storage_offset(), tuple(act.shape), act.stride(), act.dtype, str(act.device))


def _rnn_final_state(module: torch.nn.RNNBase, seq: torch.Tensor, rest: list[Any]) -> list[Any]:
    """``(h_n,)`` / ``((h_n, c_n),)`` of an RNN / GRU / LSTM whose output sequence was edited to
    ``seq`` (batch first): the last layer's ``h_n`` is the same numbers as the sequence's last
    step (first step for the backward direction), so it is taken from ``seq``. Before, a model
    reading ``h_n`` saw the unedited state: its units got all-zero credits (ablation) or a
    crash (AtP). ``c_n`` and lower layers' ``h_n`` are not output units and stay as computed."""
    if seq.ndim != 3 or not rest:
        return rest
    lstm = isinstance(rest[0], tuple)
    h = rest[0][0] if lstm else rest[0]
    if not isinstance(h, torch.Tensor) or h.ndim != 3:
        return rest
    dirs = 2 if module.bidirectional else 1
    width = seq.shape[-1] // dirs
    last = [seq[:, -1, :width]] + ([seq[:, 0, width:]] if dirs == 2 else [])
    h_new = torch.cat([h[:-dirs], torch.stack(last).to(h.dtype)], 0)
    return [(h_new, *rest[0][1:]) if lstm else h_new, *rest[1:]]


def _input_hook(site_id: int, site: Site, state: RowState) -> Callable[..., Any]:
    def hook(module: torch.nn.Module, args: Any) -> Any:
        if not args or not isinstance(args[0], torch.Tensor):
            raise UnsupportedModelError(
                f"module {site.path!r} was called without a tensor as its first argument; cannot "
                "read the heads' context from it."
            )
        return (_edit(site_id, site, args[0], state), *args[1:])

    return hook


def _mha_forward(site_id: int, site: Site, state: RowState) -> Callable[..., Any]:
    """A ``MultiheadAttention.forward`` that exposes the per-head context before ``out_proj``.

    ``F.multi_head_attention_forward`` is called with an identity output projection (exact: a
    product with an identity matrix adds only zeros), so masking, biases, dropout and weights
    follow PyTorch's own implementation; the heads' context is edited and the module's real
    ``out_proj`` is applied as a module (so hooks on it fire too).
    """

    def forward(self: torch.nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Any, Any]:
        if query.dim() != 3:
            raise UnsupportedModelError(
                f"module {site.path!r} got an unbatched query of shape {tuple(query.shape)}; "
                "component games batch coalitions along the batch axis."
            )
        key_padding_mask = F._canonical_mask(
            mask=key_padding_mask, mask_name="key_padding_mask",
            other_type=F._none_or_dtype(attn_mask), other_name="attn_mask", target_type=query.dtype,
        )
        attn_mask = F._canonical_mask(
            mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
            target_type=query.dtype, check_other=False,
        )
        if self.batch_first:
            query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        e = self.embed_dim
        eye = torch.eye(e, dtype=query.dtype, device=query.device)
        zero = torch.zeros(e, dtype=query.dtype, device=query.device)
        ctx, weights = F.multi_head_attention_forward(
            query, key, value, e, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, eye, zero,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        ctx = _edit(site_id, site, ctx.transpose(0, 1), state)  # batch x L x E
        out = self.out_proj(ctx)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    return forward


def _drop_hook(layer_id: int, state: RowState) -> Callable[..., Any]:
    """GradDrop: rows with ``drop == layer_id`` see the layer as a pure skip in the backward pass.

    Forward values are unchanged exactly (``out.detach() - out`` and ``x - x.detach()`` are
    zero); the gradient w.r.t. the layer's input becomes the identity (the residual path).
    """

    def hook(module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> Any:
        if state.drop is None or not torch.is_grad_enabled():
            return output
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None:
            x = kwargs.get("hidden_states")
        out = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or x.shape != out.shape:
            raise UnsupportedModelError(
                "GradDrop needs residual layers whose output has the shape of their first input; "
                f"layer {layer_id} maps {getattr(x, 'shape', None)} to {getattr(out, 'shape', None)}."
            )
        d = (state.drop == layer_id).to(out.dtype).reshape(-1, *([1] * (out.ndim - 1)))
        new = out + d * ((out.detach() - out) + (x - x.detach()))
        if isinstance(output, (tuple, list)):
            return (new, *output[1:])
        return new

    return hook


@contextlib.contextmanager
def installed(model: torch.nn.Module, sites: list[Site], state: RowState,
              drop_layers: list[str] | None = None) -> Iterator[RowState]:
    """Install the hooks of ``sites`` (and GradDrop hooks on ``drop_layers``) for a ``with`` block.

    Everything is removed on exit, also after an exception; PyTorch's fused attention fast
    path (which would bypass module hooks) is disabled inside the block and restored when the
    last block open in any thread ends.
    """
    handles: list[Any] = []
    overridden: list[tuple[torch.nn.Module, Any]] = []
    _FASTPATH.disable()
    try:
        state.linked = _linked(model, sites)
        for i, site in enumerate(sites):
            module = model.get_submodule(site.path)
            if site.kind == "mha":
                overridden.append((module, module.__dict__.get("forward", _MISSING)))
                module.forward = types.MethodType(_mha_forward(i, site, state), module)
            elif site.kind == "input":
                handles.append(module.register_forward_pre_hook(_input_hook(i, site, state)))
            else:
                handles.append(module.register_forward_hook(_output_hook(i, site, state)))
        for j, path in enumerate(drop_layers or []):
            layer = model.get_submodule(path)
            handles.append(layer.register_forward_hook(_drop_hook(j, state), with_kwargs=True))
        yield state
    finally:
        for h in handles:
            h.remove()
        for module, old in overridden:
            if old is _MISSING:
                module.__dict__.pop("forward", None)
            else:
                module.forward = old
        _FASTPATH.restore()
        state.mode = "off"
        state.mask = None
        state.drop = None
        state.only_call = None
        state.rows = None
        state.leaves = []
        state.probes = []
        state.seen = {}
        state.linked = set()


def _linked(model: torch.nn.Module, sites: list[Site]) -> set[tuple[int, int]]:
    """Site pairs ``(i, j)`` where a tensor object leaving site ``i`` can reach site ``j`` only
    as the input or output of ``j``'s module: ``j`` contains ``i`` (a block returning its last
    child's output), or both are children of one plain ``nn.Sequential`` (each child's output
    feeds only the next one)."""
    out: set[tuple[int, int]] = set()
    for i, a in enumerate(sites):
        for j, b in enumerate(sites):
            if i == j:
                continue
            if b.path == "" or a.path.startswith(b.path + "."):
                out.add((i, j))
                continue
            pa, pb = a.path.rpartition(".")[0], b.path.rpartition(".")[0]
            if pa == pb and a.path and b.path:
                parent = model.get_submodule(pa)
                if isinstance(parent, torch.nn.Sequential) and type(parent).forward is torch.nn.Sequential.forward:
                    out.add((i, j))
    return out


_MISSING = object()


class _FastPathOff:
    """PyTorch's fused attention fast path (a process-wide flag), off while any :func:`installed`
    block runs, in any thread; the first block to enter saves the caller's setting, the last to
    leave restores it.

    aud44c: each block saved and restored the flag on its own. With two explanations in two
    threads (two models), the first to finish turned the fast path back on under the other,
    whose ``nn.TransformerEncoderLayer`` then took the fused kernel around its patched
    attention: head credits 0.0 instead of up to 0.208, without a word; and the last to finish
    wrote back the ``False`` it had found, leaving the fast path off in the user's process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._saved = True

    def disable(self) -> None:
        with self._lock:
            if self._open == 0:
                self._saved = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
            self._open += 1

    def restore(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                torch.backends.mha.set_fastpath_enabled(self._saved)


_FASTPATH = _FastPathOff()
