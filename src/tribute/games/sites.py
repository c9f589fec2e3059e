"""Where component players live: resolving module paths to hook sites, and ablations.

:func:`resolve_site` turns a user's module path and unit (``neuron``, ``channel``, ``head``)
into a :class:`~tribute.games._hooks.Site` (which module to hook, on its input or output, and
how its activation splits into units); attention heads are found through the usual attribute
names (``num_heads``, ``num_attention_heads``, ...) and output projections. :class:`Ablation`
says how removed units are replaced.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import InputError, UnsupportedModelError
from ..params import check_seed
from ._hooks import Site

__all__ = ["ABLATIONS", "UNITS", "Ablation", "as_ablation", "get_module", "head_count",
           "qk_context_sites", "refuse_same_module", "refuse_sequence_first", "resolve_site",
           "sequence_first_owner"]

UNITS = ("neuron", "channel", "head")
ABLATIONS = ("zero", "mean", "resample", "patch")
HEAD_ATTRS = ("num_attention_heads", "num_heads", "n_heads", "n_head")
#: Names of query/key projections inside attention modules (AtP*'s QK fix applies to them).
QK_NAMES = ("query", "key", "q_proj", "k_proj", "q", "k", "wq", "wk", "to_q", "to_k", "q_lin", "k_lin",
            "query_proj", "key_proj")
#: The key projections among them (a grouped-query key head serves several query heads).
KEY_NAMES = ("key", "k_proj", "k", "wk", "to_k", "k_lin", "key_proj")
#: Names of output projections inside attention modules (their input is the heads' context):
#: Llama ``o_proj``, BART/OPT ``out_proj``, GPT-2 ``c_proj``, Falcon/Bloom ``dense``, T5/MPNet
#: ``o``, DistilBERT ``out_lin``.
OUT_PROJ = ("o_proj", "out_proj", "c_proj", "dense", "proj", "wo", "o", "out_lin")
#: Names of fused query-key-value projections (GPT-2 ``c_attn``, GPT-NeoX/Falcon/Bloom
#: ``query_key_value``, Phi-3/CodeGen ``qkv_proj``, Bark ``att_proj``, Baichuan ``W_pack``,
#: LayoutLMv2 ``qkv_linear``): with a ``config``, their holder is an attention module.
QKV_NAMES = ("c_attn", "query_key_value", "qkv", "Wqkv", "in_proj", "qkv_proj", "att_proj", "W_pack",
             "qkv_linear")


@dataclass(frozen=True)
class Ablation:
    """How removed units are replaced.

    Attributes:
        kind: ``"zero"``; ``"mean"`` (mean activation over ``reference``, default the inputs);
            ``"resample"`` (activations of ``n_resample`` reference rows, the value averages over
            them like a background set); ``"patch"`` (the activation on ``counterfactual``, one
            corrupted input per sample: activation patching).
        reference: inputs for ``mean``/``resample`` (same structure as the inputs), or None.
        counterfactual: corrupted inputs for ``patch`` (same structure and batch as the inputs).
            Row ``i`` runs with input ``i``'s ``forward_args``/``forward_kwargs`` unless
            ``counterfactual_kwargs`` says otherwise.
        n_resample: reference rows per coalition for ``resample``. default=16.
        seed: seed of the draw of resample rows. default=0.
        counterfactual_kwargs: keyword arguments of the model for the counterfactual run of
            ``patch``, replacing the ``forward_kwargs`` of the same name (e.g. the
            counterfactual's own ``attention_mask``, one row per sample); ``{}`` says the
            counterfactual runs with the inputs' ``forward_kwargs`` on purpose; a tensor with
            one row serves every counterfactual. default=None (the inputs' kwargs, with a
            warning when they hold per-sample tensors).
    """

    kind: str = "zero"
    reference: Any = None
    counterfactual: Any = None
    n_resample: int = 16
    seed: int = 0
    counterfactual_kwargs: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in ABLATIONS:
            close = difflib.get_close_matches(str(self.kind), ABLATIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InputError(f"ablation={self.kind!r} is not one of {ABLATIONS}.{hint}")
        if self.kind == "patch" and self.counterfactual is None:
            raise InputError(
                "ablation='patch' needs counterfactual=... (one corrupted input per sample, same "
                "structure as the inputs): tribute.components(model, ..., counterfactual=x_corrupt)."
            )
        if isinstance(self.n_resample, bool) or not isinstance(self.n_resample, numbers.Integral) \
                or self.n_resample < 1:
            raise InputError(f"n_resample={self.n_resample!r} must be a positive int.")
        # aud44c: a numpy int was refused as "n_resample=np.int64(4) must be a positive int"; a seed
        # of 1.5 was cut to 1 without a word, "x" / None / 2**70 raised a bare ValueError/TypeError
        # after the reference pass had run
        object.__setattr__(self, "n_resample", int(self.n_resample))
        object.__setattr__(self, "seed", check_seed(self.seed, "seed"))
        ck = self.counterfactual_kwargs
        if ck is not None:
            if not isinstance(ck, dict) or not all(isinstance(k, str) for k in ck):
                raise InputError(
                    f"counterfactual_kwargs={type(ck).__name__}: give a dict of keyword arguments "
                    "of the model, e.g. counterfactual_kwargs={'attention_mask': mask_cf}."
                )
            if self.kind != "patch":
                raise InputError(
                    f"counterfactual_kwargs= is read only by ablation='patch' (got ablation={self.kind!r}); "
                    "drop it, or use ablation='patch' with counterfactual=..."
                )

    def unread(self) -> list[str]:
        """The settings given that this ``kind`` does not read (``reference`` is read by
        ``mean``/``resample`` only, ``counterfactual`` by ``patch`` only)."""
        out = []
        if self.reference is not None and self.kind not in ("mean", "resample"):
            out.append("reference")
        if self.counterfactual is not None and self.kind != "patch":
            out.append("counterfactual")
        return out

    def with_kind(self, kind: str) -> Ablation:
        """The same settings with another ``kind`` (an explicit override, e.g.
        ``explain(..., ablation="mean")``): the settings the new kind does not read are dropped
        (``counterfactual``/``counterfactual_kwargs`` kept for ``patch`` only, ``reference`` for
        ``mean``/``resample`` only)."""
        return replace(self, kind=kind,
                       reference=self.reference if kind in ("mean", "resample") else None,
                       counterfactual=self.counterfactual if kind == "patch" else None,
                       counterfactual_kwargs=self.counterfactual_kwargs if kind == "patch" else None)


def as_ablation(value: Any, *, reference: Any = None, counterfactual: Any = None,
                 n_resample: int = 16, seed: int = 0,
                 counterfactual_kwargs: dict[str, Any] | None = None) -> Ablation:
    if isinstance(value, str):
        return Ablation(value, reference, counterfactual, n_resample, seed, counterfactual_kwargs)
    if isinstance(value, (Ablation, dict)):
        # aud42c: an Ablation carries its own settings; reference= given beside it was dropped
        # without a word (Ablation("mean") + reference=ref ablated to the inputs' mean: 1.0e-2 off)
        beside = [name for name, v in (("reference", reference), ("counterfactual", counterfactual),
                                       ("counterfactual_kwargs", counterfactual_kwargs)) if v is not None]
        beside += [name for name, v, default in (("n_resample", n_resample, 16), ("seed", seed, 0))
                   if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v == default)]
        if beside:
            kind = value.kind if isinstance(value, Ablation) else value.get("kind", "zero")
            given = ", ".join(f"{b}=" for b in beside)
            what = f"tribute.Ablation({kind!r}, ...)" if isinstance(value, Ablation) else f"a dict (kind={kind!r})"
            raise InputError(
                f"ablation={what} carries its own settings, so {given} given beside it would not be "
                f"read; put {'it' if len(beside) == 1 else 'them'} in it (tribute.Ablation({kind!r}, "
                f"{beside[0]}=...)) or pass ablation={kind!r} as a string with {given}.")
        if isinstance(value, Ablation):
            return value
        known = [f.name for f in dataclasses.fields(Ablation)]
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise InputError(f"ablation={{...}} has key(s) {unknown} that tribute.Ablation does not take; "
                             f"its keys are {known}.")
        return Ablation(**value)
    raise InputError(
        f"ablation={value!r}: pass one of {ABLATIONS} or tribute.Ablation(...)."
    )


def get_module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(path, names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else (
            f" Available: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}.")
        raise InputError(f"module {path!r} is not a submodule of {type(model).__name__}.{hint}") from None


def _positive_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def head_count(module: torch.nn.Module) -> int | None:
    """The head count of an attention module, or None.

    Read from a ``num_heads``-like attribute, or, for attention modules that keep it only in
    their ``config`` (Hugging Face Llama/Mistral/Qwen ``*Attention`` since transformers 4.48:
    ``config.num_attention_heads``), from the config when the module also holds a query/key
    projection and an output projection (so a whole model with a ``config`` is not taken for
    one attention module).
    """
    for attr in HEAD_ATTRS:
        v = _positive_int(getattr(module, attr, None))
        if v is not None:
            return v
    config = getattr(module, "config", None)
    if config is not None:
        children = dict(module.named_children())
        if any(c in children for c in (*QK_NAMES, *QKV_NAMES)) and any(c in children for c in OUT_PROJ):
            for attr in HEAD_ATTRS:
                v = _positive_int(getattr(config, attr, None))
                if v is not None:
                    return v
    return None


def _head_width(module: torch.nn.Module) -> int | None:
    """Features per head of an attention module (``head_dim`` / ``attention_head_size``, also
    in its ``config``), or None when it does not say."""
    for holder in (module, getattr(module, "config", None)):
        for attr in ("head_dim", "attention_head_size"):
            v = _positive_int(getattr(holder, attr, None)) if holder is not None else None
            if v is not None:
                return v
    return None


def _proj_head_width(module: torch.nn.Module, heads: int) -> int | None:
    """Features per head read from an attention module's output projection (its input is the
    ``heads`` contexts side by side), or None."""
    for name, child in module.named_children():
        if name in OUT_PROJ and isinstance(child, torch.nn.Linear) and child.in_features % heads == 0:
            return int(child.in_features) // heads
    return None


def _linear_out(module: torch.nn.Module) -> int | None:
    """Output width of a linear layer: ``torch.nn.Linear``, or Hugging Face's GPT-2 ``Conv1D``
    (weight ``in x out``, width ``nf``); None for other modules."""
    if isinstance(module, torch.nn.Linear):
        return int(module.out_features)
    weight = getattr(module, "weight", None)
    nf = _positive_int(getattr(module, "nf", None))
    return nf if isinstance(weight, torch.Tensor) and weight.ndim == 2 and nf == weight.shape[1] else None


def _agreed_heads(given: int | None, found: int, name: str) -> int:
    """The head count read from the attention module ``name``; ``num_heads=`` may only repeat it."""
    if given is not None and given != found:
        raise InputError(f"num_heads={given} but the attention module {name!r} has {found} heads; drop num_heads= "
                         "(it is read from the module).")
    return found


def _is_attention(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.MultiheadAttention) or head_count(module) is not None


def _holds_attention(module: torch.nn.Module) -> bool:
    """Whether an attention module sits *below* ``module``: a decoder layer or a whole model
    that carries a ``num_heads``-like attribute too (Falcon ``FalconDecoderLayer``, Bloom
    ``BloomBlock``, MPNet's encoder) is not itself the attention; its output is the residual
    stream, not the heads' context."""
    return any(n and _is_attention(m) for n, m in module.named_modules())


def _looks_like_out_proj(name: str, module: torch.nn.Module) -> bool:
    """A linear child named like an output projection (``o_lin``, ``out_linear``, ``output``) but not in ``OUT_PROJ``."""
    weight = getattr(module, "weight", None)
    linear = isinstance(weight, torch.Tensor) and weight.ndim == 2 and not isinstance(module, torch.nn.Embedding)
    words = name.lower().replace("-", "_").split("_")
    return linear and name not in OUT_PROJ and any(w == "o" or w.startswith("out") for w in words)


def _uncle_heads(model: torch.nn.Module, holder: str, proj: torch.nn.Module) -> int | None:
    """Heads projected by ``proj`` (a linear named like an output projection in ``holder``) when
    ``holder`` is the ``output`` sibling of one attention module whose heads' context is
    ``proj``'s input (BERT / ViT: ``attention.output.dense`` after ``attention.self``), else
    None. The parent must hold nothing else with parameters: in a BERT layer, ``output.dense``
    (the feed-forward output) and ``intermediate.dense`` sit next to the attention too, and
    their inputs are not heads."""
    if "." not in holder or not isinstance(proj, torch.nn.Linear):
        return None
    up_name, child = holder.rsplit(".", 1)
    if child != "output":
        return None
    up = model.get_submodule(up_name)
    kids = [m for _, m in up.named_children() if next(m.parameters(), None) is not None]
    att = [m for m in kids if _is_attention(m)]
    if len(kids) != 2 or len(att) != 1:
        return None
    heads, width = head_count(att[0]), _head_width(att[0])
    if heads is None or width is None or proj.in_features != heads * width:
        return None
    return heads


def _torch_batch_first(module: torch.nn.Module) -> bool | None:
    """The ``batch_first`` that torch set on one of its own sequence modules, else None."""
    nn = torch.nn
    if isinstance(module, (nn.MultiheadAttention, nn.RNNBase, nn.Transformer)):
        return bool(module.batch_first)
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return bool(module.self_attn.batch_first)
    if isinstance(module, (nn.TransformerEncoder, nn.TransformerDecoder)) and len(module.layers):
        return _torch_batch_first(module.layers[0])
    return None


def sequence_first_owner(model: torch.nn.Module, path: str) -> str | None:
    """The path of the torch module that makes the activation of module ``path`` sequence-first
    (time axis first, batch second: built with ``batch_first=False``), or None.

    Reads ``batch_first`` on the module itself and on its owners (nearest first), only where torch
    sets it (``nn.MultiheadAttention``, ``nn.RNN``/``LSTM``/``GRU``, ``nn.Transformer*``). A
    module *inside* an ``nn.MultiheadAttention`` (its ``out_proj``) is not: torch does not call it
    as a module, and head players (``kind="mha"``) call it on a batch-first context. Modules that
    transpose their input in their own code cannot be seen this way.
    """
    parts = path.split(".") if path else []
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        module = model.get_submodule(prefix)
        if i < len(parts) and isinstance(module, torch.nn.MultiheadAttention):
            return None
        bf = _torch_batch_first(module)
        if bf is not None:
            return None if bf else prefix
    return None


def refuse_same_module(model: torch.nn.Module, sites: list[Site]) -> None:
    """Refuse two sites that hook one module object registered under two paths.

    aud44c: a siamese model holding one encoder as ``enc_a`` and ``enc_b`` gave players
    ``enc_a.0 neuron j`` and ``enc_b.0 neuron j`` whose credits were each half of the shared
    unit's (both hooks edit every call of the one module): -0.096 and -0.096 where the two
    branches' own credits are -0.240 and +0.048, without a word.
    """
    seen: dict[int, Site] = {}
    for site in sites:
        module = model.get_submodule(site.path)
        first = seen.setdefault(id(module), site)
        if first is not site:
            raise InputError(
                f"modules {first.name!r} and {site.name!r} are one module ({type(module).__name__} registered "
                "under two names), so their players would be the same units, each hooked twice; its units "
                f"are ablated at every call of the module (every branch that uses it). List it once, e.g. "
                f"components(model, {first.name!r}), or give each branch its own module to credit them apart.")


def refuse_sequence_first(model: torch.nn.Module, sites: list[Site]) -> None:
    """Refuse sites whose activations are sequence-first (the games edit axis 0 as the batch).

    rev42c: with as many tokens as rows, a sequence-first activation has the shape of a
    batch-first one; atp and layer_grad_cam then read token t's activation as input t's (atp 0.32 off
    on a seq-first nn.TransformerEncoderLayer with 4 tokens and 4 inputs), without a word.
    """
    for site in sites:
        if site.kind == "mha":  # the patched forward transposes a seq-first attention itself
            continue
        owner = sequence_first_owner(model, site.path)
        if owner is None:
            continue
        mod = model.get_submodule(owner)
        where = f"module {owner!r}" if owner else "the model"
        kind = type(mod).__name__
        head = (f"module {site.name!r} ({kind}) is" if owner == site.path
                else f"module {site.name!r} sits in {where} ({kind}), which is")
        raise UnsupportedModelError(
            f"{head} sequence-first (batch_first=False), so the activation "
            f"of {site.path!r} has the time axis first and the batch axis second; "
            "component games need the batch axis first (one activation row per input row). Build it with "
            "batch_first=True (and feed it (batch, time, features) inputs)"
            + (", or name the attention module itself with unit='head' (its heads are read batch-first)."
               if isinstance(mod, torch.nn.MultiheadAttention) else "."))


def resolve_site(model: torch.nn.Module, name: str, unit: str, num_heads: int | None) -> Site:
    module = get_module(model, name)
    holder = name.rsplit(".", 1)[0] if "." in name else None
    if holder is not None and isinstance(model.get_submodule(holder), torch.nn.MultiheadAttention):
        # aud44c: torch's attention uses out_proj's weights directly, never calls it as a module:
        # a site there was refused as "not called during the forward pass"
        if unit == "head" and name == f"{holder}.out_proj":  # its input is the heads' context
            sub = resolve_site(model, holder, "head", num_heads)
            return Site(name=name, path=sub.path, unit="head", kind=sub.kind, num_heads=sub.num_heads)
        raise UnsupportedModelError(
            f"module {name!r} sits inside the torch.nn.MultiheadAttention {holder!r}, which uses its weights "
            "directly instead of calling it, so no hook sees its activation. Name the attention module: "
            f"components(model, {holder!r}, unit='head') for its heads, or components(model, {holder!r}, "
            f"unit={unit!r}) for the units of its output (out_proj's output).")
    if unit != "head":
        return Site(name=name, path=name, unit=unit, kind="output")
    if _linear_out(module) is not None and "." in name:
        holder, child = name.rsplit(".", 1)
        parent = head_count(model.get_submodule(holder))
        if parent is None and child in OUT_PROJ and num_heads is not None:
            # BERT: attention.output.dense projects attention.self's heads (an uncle module)
            parent = _uncle_heads(model, holder, module)
        if parent is not None and child in OUT_PROJ:
            # the output projection mixes the heads: its *input* is the heads' context (also
            # with num_heads= given: chunks of its output are not heads)
            return Site(name=name, path=name, unit="head", kind="input",
                        num_heads=_agreed_heads(num_heads, parent, holder))
        if parent is not None and num_heads is None and child in QKV_NAMES:
            raise UnsupportedModelError(
                f"unit='head' on {name!r}: a fused query-key-value projection lays out its heads' queries, "
                "keys and values in a model-specific order, so chunks of its output are not heads. Name "
                f"the attention module ({holder!r}) for the heads' context instead.")
        if parent is not None and child not in QKV_NAMES:
            # e.g. attention.self.query: split its output per head
            att = model.get_submodule(holder)
            width = _head_width(att) or _proj_head_width(att, parent)
            out = int(_linear_out(module) or 0)
            count: int | None = parent
            if width is not None and out != parent * width:
                kv = out // width if out % width == 0 else 0
                # grouped-query attention: k_proj / v_proj hold fewer (key-value) heads
                count = kv if 0 < kv < parent and parent % kv == 0 else None
            if num_heads is None:
                if count is None:
                    # aud37c: CodeGen's fused qkv_proj (48 = 12 x 4 features, 4 heads) was split
                    # into 12 "heads" that mix queries, keys and values
                    raise UnsupportedModelError(
                        f"unit='head' on {name!r}: its output has {out} features, which is neither the {parent} "
                        f"heads x {width} features of the attention module {holder!r} nor a grouped-query count "
                        "of key/value heads dividing them; it looks like a fused projection (queries, keys and "
                        "values together), whose chunks are not heads. Name the attention module "
                        f"({holder!r}) for the heads' context, or pass num_heads=... to split this output anyway.")
                return Site(name=name, path=name, unit="head", kind="output", num_heads=count)
            if count is not None and width is not None and num_heads != count:
                # aud37c: num_heads=4 on a grouped-query k_proj (2 key heads of 4 features) split it
                # into 4 half-heads of 2 features
                what = (f"{count} key/value heads of {width} features (grouped-query attention: "
                        f"{parent} query heads)") if count != parent else f"the {count} heads of {holder!r}"
                raise InputError(
                    f"num_heads={num_heads} but {name!r} projects {what}; chunks of {out // num_heads} "
                    "features would not be heads. Drop num_heads= (it is read from the module).")
    if isinstance(module, torch.nn.MultiheadAttention):
        if module.add_zero_attn:
            raise UnsupportedModelError(f"module {name!r}: add_zero_attn=True is not supported for head players.")
        return Site(name=name, path=name, unit="head", kind="mha",
                    num_heads=_agreed_heads(num_heads, module.num_heads, name))
    holds = _holds_attention(module)
    own = head_count(module) if not holds else None
    h = _agreed_heads(num_heads, own, name) if own is not None else (None if holds else num_heads)
    if h is not None and _linear_out(module) is None:
        # attention modules that apply their output projection inside (GPT-2 c_proj, Llama
        # o_proj, ...) return mixed heads: read the projection's input instead (also with
        # num_heads= given: chunks of the projected output are not heads)
        children = dict(module.named_children())
        proj = next((c for c in OUT_PROJ if c in children), None)
        if proj is not None:
            return Site(name=name, path=f"{name}.{proj}", unit="head", kind="input", num_heads=h)
        mixer = next((c for c, m in children.items() if _looks_like_out_proj(c, m)), None)
        if mixer is not None:
            raise UnsupportedModelError(
                f"unit='head' on {name!r} ({type(module).__name__}): its child {mixer!r} looks like an output "
                "projection that mixes the heads, so splitting the module's output would not give heads, and "
                f"tribute does not know the name {mixer!r} (known: {OUT_PROJ}). Point at a module that returns "
                "the concatenated heads' context, or wrap the projection so its input is a module's output.")
        return Site(name=name, path=name, unit="head", kind="output", num_heads=h)
    if num_heads is not None and not holds:
        return Site(name=name, path=name, unit="head", kind="output", num_heads=num_heads)
    found = [(n, m) for n, m in module.named_modules() if n and _is_attention(m)]
    # keep the outermost attention modules only (e.g. BertSelfAttention, not its children)
    outer = [(n, m) for n, m in found if not any(n.startswith(o + ".") for o, _ in found if o != n)]
    if len(outer) == 1:  # num_heads= must agree with the attention module's own count
        sub = resolve_site(model, f"{name}.{outer[0][0]}", "head", num_heads)
        return Site(name=name, path=sub.path, unit="head", kind=sub.kind, num_heads=sub.num_heads)
    where = f" It contains {len(outer)} attention modules: {[n for n, _ in outer][:6]}; name one." if outer else ""
    # num_heads= splits the output of a module without attention modules below it (returned
    # above); a module holding several is refused with or without it
    split = (f". num_heads={num_heads} does not split the output of a module holding attention modules (it "
             "is the residual stream, not heads)." if num_heads is not None else ".") if holds else \
        ", or pass num_heads=... to split its output's last axis."
    raise UnsupportedModelError(
        f"unit='head' on {name!r} ({type(module).__name__}): cannot find its heads.{where} Point at "
        "an nn.MultiheadAttention or a module returning the concatenated heads' context (e.g. "
        f"'encoder.layer.3.attention.self'){split}"
    )


def qk_context_sites(model: torch.nn.Module, sites: list[Site]) -> dict[int, Site]:
    """Player sites that are the queries or keys of an attention module's heads.

    Maps the index (in ``sites``) of each query/key head site to the head-output site of its
    attention module (the heads' context, read where head players of that module would be).
    A grouped-query key site (``k_proj`` with fewer heads than its module) maps too: its key
    head ``j`` serves the ``r = H / H_kv`` query heads ``j r .. j r + r - 1`` (transformers'
    ``repeat_kv`` layout).
    """
    out: dict[int, Site] = {}
    for i, site in enumerate(sites):
        if site.unit != "head" or site.kind != "output" or "." not in site.path:
            continue
        parent, child = site.path.rsplit(".", 1)
        if child not in QK_NAMES or head_count(model.get_submodule(parent)) is None:
            continue
        try:
            ctx = resolve_site(model, parent, "head", None)
        except UnsupportedModelError:
            continue
        if ctx.kind not in ("output", "input") or not ctx.num_heads or not site.num_heads:
            continue
        # grouped-query keys (aud38c): key head j serves query heads j*r .. j*r + r - 1
        # (r = query heads / key heads, transformers' repeat_kv); the QK fix sums their contexts
        grouped = (child in KEY_NAMES and site.num_heads < ctx.num_heads
                   and ctx.num_heads % site.num_heads == 0)
        if ctx.num_heads == site.num_heads or grouped:
            out[i] = ctx
    return out
