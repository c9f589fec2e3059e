"""Sparse-autoencoder (and transcoder) latents as players of a component game.

A user-supplied sparse autoencoder (Bricken et al. 2023, "Towards Monosemanticity"; Cunningham
et al. 2023, "Sparse Autoencoders Find Highly Interpretable Features in Language Models") with
``z = encode(h)`` and ``h_hat = decode(z)`` is *spliced* into the model at module ``at``: the
module's output ``h`` is replaced by ::

    h' = h + (decode(z') - decode(z)) + (e' - e),     z = encode(h),  e = h - decode(z)

where ``z'`` are the latents after the coalition's edit and ``e'`` the edited reconstruction
error. The players are the ``d_sae`` latents plus one player ``"<name>_error"``: the error
term, kept as its own player so that with every player present ``h' = h`` *exactly* (both
differences are computed from identical tensors and are exactly zero) and the model's output
is unchanged; ``h' = decode(z') + e'`` up to rounding otherwise. Removing a latent sets it to
its ablation value (``"zero"``, or ``"mean"`` over a reference set, or its value on a
counterfactual with ``"patch"``), exactly as :func:`tribute.components` ablates units; removing
the error player replaces ``e`` the same way. With per-token latents (``batch x tokens x d_sae``)
a latent is one player across all positions (its credit sums over them), and its ``"mean"`` is
taken over the reference rows at each position, as :func:`tribute.components` takes a unit's mean.

A **transcoder** (Dunefsky, Chlenski & Nanda 2024, "Transcoders Find Interpretable LLM Feature
Circuits") reads the module's *input* ``x`` and predicts its output: ``z = encode(x)``,
``e = y - decode(z)`` with ``y`` the module's output, and the same splice ``y' = y + (decode(z')
- decode(z)) + (e' - e)``. A *skip* transcoder (``y_hat = decode(z) + W_skip x``) fits this
only with ``decoder = decode`` (the latents' part): its skip term ``W_skip x`` then lies in
the error player ``e = y - decode(z)``, so the error player's credit includes the skip path's.

Because the game is a :class:`~tribute.games.components.ComponentGame` (on a wrapper module
whose two identity submodules ``sae.latents`` and ``sae.error`` carry the latents and the error),
every component estimator runs on features unchanged: ``feature_ablation`` (activation
patching), ``atp`` / ``atp_star`` (attribution patching), ``coar``, the Shapley estimators.
The splice is a forward hook on ``at`` installed for each forward pass of the wrapper and
removed in ``finally``; the user's model is never modified (the wrapper only refers to it).

>>> import torch, tribute
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
>>> sae = tribute.SAE(torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU()), torch.nn.Linear(8, 6), at="1")
>>> attr = tribute.explain(net, torch.randn(3, 4), method="feature_ablation", target=0,
...                        players=tribute.components(net, sae=sae))
>>> attr.player_names[0], attr.player_names[-1], tuple(attr.values.shape)
('sae latent 0', 'sae_error', (3, 9))
"""

from __future__ import annotations

import contextlib
import contextvars
import dis
import functools
import hashlib
import itertools
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from ..errors import InputError, TributeError, UnsupportedModelError
from ..models import ModelAdapter, TorchModel, as_model
from ..targets import TargetLike
from ._hooks import Site, _rnn_final_state, _same_kind
from .components import ComponentGame, ComponentSet
from .sites import Ablation, as_ablation, get_module, refuse_sequence_first

__all__ = ["SAE", "SAEComponentSet", "SAEGame", "sae_features"]

_KINDS = ("sae", "transcoder")


class SAE:
    """A sparse autoencoder (or transcoder) attached at a module.

    Args:
        encoder: ``activation -> latents`` (a ``torch.nn.Module`` or a callable on tensors);
            latents have the activation's leading axes and ``d_sae`` features last. Each row
            is encoded on its own: an encoder that picks latents across the batch (batch top-k
            as trained) is refused; give its inference form (a JumpReLU threshold).
        decoder: ``latents -> activation`` (same conventions).
        at: module path of the model where it is attached.
        kind: ``"sae"`` (encoder reads the module's output, decoder reconstructs it) or
            ``"transcoder"`` (encoder reads the module's first input, decoder predicts its
            output), default="sae".
        name: name used in player names (``"<name> latent 3"``, ``"<name>_error"``),
            default="sae".
    """

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor],
                 decoder: Callable[[torch.Tensor], torch.Tensor], *, at: str, kind: str = "sae",
                 name: str = "sae") -> None:
        if not callable(encoder) or not callable(decoder):
            raise InputError(f"SAE(encoder=..., decoder=...) must be callables (e.g. torch.nn.Module); got "
                             f"{type(encoder).__name__} and {type(decoder).__name__}.")
        if not isinstance(at, str) or not at:
            raise InputError(f"SAE(at={at!r}): give the module path where the SAE is attached, e.g. at='blocks.3'.")
        if kind not in _KINDS:
            raise InputError(f"SAE(kind={kind!r}) must be one of {_KINDS}.")
        if not isinstance(name, str) or not name or " " in name:
            raise InputError(f"SAE(name={name!r}) must be a non-empty name without spaces.")
        self.encoder = encoder
        self.decoder = decoder
        self.at = at
        self.kind = kind
        self.name = name

    def __repr__(self) -> str:
        return f"SAE(at={self.at!r}, kind={self.kind!r}, name={self.name!r})"


class _Splice(torch.nn.Module):
    """Holds the SAE and the two identity sites the component hooks edit."""

    def __init__(self, sae: SAE, model: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.latents = torch.nn.Identity()
        self.error = torch.nn.Identity()
        self._fns = (sae.encoder, sae.decoder)  # plain tuple: callables that are not modules
        # the modules behind the callables (a module, or the module of a bound method such as
        # SAELens' ``sae.encode``) are children, so the session puts them in eval mode, freezes and
        # restores them as it does the model: a bound method's module stayed in training mode (a
        # dropout in it made two identical exact_shapley calls differ by 0.035)
        enc, dec = _module_behind(sae.encoder), _module_behind(sae.decoder)
        if enc is not None:
            self.encoder = enc
        if dec is not None and dec is not enc:
            self.decoder = dec
        # so are the modules a plain function reaches (``lambda a: sae(a)``, a nested function,
        # a partial's arguments, a global it names): before, they stayed in training mode and two
        # identical calls differed by 2.36. The explained model's own modules are the session's.
        own = {id(m) for m in model.modules()} if model is not None else set()
        own.update(id(m) for m in self.modules())
        extra, self._plain = _reached_by(self._fns, set(own), ordered=True)
        if extra:
            self.reached = torch.nn.ModuleList(extra)
        # what the digest read before small45 sorted a dict's values by key (in insertion order):
        # kept where it differs, so credits saved by an earlier release with such a dictionary
        # ({"W_enc": ..., "W_dec": ...}) are still scored (rev45z: refused as another SAE)
        old = _reached_by(self._fns, set(own), ordered=False)
        same = [id(m) for m in old[0]] == [id(m) for m in extra] and \
            [id(t) for t in old[1]] == [id(t) for t in self._plain]
        self._unsorted: tuple[tuple[torch.nn.Module, ...], tuple[torch.Tensor, ...]] | None = \
            None if same else (tuple(old[0]), old[1])
        self.kind = sae.kind
        self.at = sae.at
        #: whether the encoder cannot be checked to give a row the latents it gives that row alone
        #: (it refuses fewer rows); else every pass whose rows are not all the same is checked
        self._rows_unchecked = False

    def _call(self, which: str, fn: Callable[[torch.Tensor], Any], arg: torch.Tensor, what: str) -> Any:
        """``fn(arg)``; a failure inside it (a width mismatch, say) names the SAE, the call and the shape."""
        try:
            return fn(arg)
        except TributeError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            mod = _module_behind(fn)
            other = sorted({str(p.dtype) for p in (mod.parameters() if mod is not None else ())
                            if p.is_floating_point() and p.dtype != arg.dtype})
            if other and arg.is_floating_point():
                # a dictionary loaded from a file keeps its dtype (float32, bfloat16): say so, not "retrain"
                raise UnsupportedModelError(
                    f"SAE at {self.at!r}: the {which} failed on {what} of shape {tuple(arg.shape)} and dtype "
                    f"{arg.dtype}: its weights are {', '.join(o.replace('torch.', '') for o in other)} "
                    f"({type(e).__name__}: {e}). Cast the SAE to the model's dtype, e.g. "
                    f"sae_module.to({arg.dtype}).") from e
            raise UnsupportedModelError(
                f"SAE at {self.at!r}: the {which} failed on {what} of shape {tuple(arg.shape)} "
                f"({type(e).__name__}: {e}). Check that the SAE was trained for this module"
                f"{' (a transcoder reads its first input)' if self.kind == 'transcoder' and which == 'encoder' else ''}."
            ) from e

    def _code(self, read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc, dec = self._fns
        src = "the module's first input" if self.kind == "transcoder" else "the module's output"
        z = self._call("encoder", enc, read, src)
        if not isinstance(z, torch.Tensor):
            raise UnsupportedModelError(f"SAE at {self.at!r}: the encoder returned {type(z).__name__}, not a tensor.")
        if z.ndim < 2 or z.shape[0] != read.shape[0] or z.shape[-1] == 0:
            raise UnsupportedModelError(
                f"SAE at {self.at!r}: the encoder maps {tuple(read.shape)} to {tuple(z.shape)}; latents must "
                "keep the batch axis first and have at least one feature last (batch x ... x d_sae, d_sae >= 1).")
        rec = self._call("decoder", dec, z, "the latents")
        return z, rec

    def _check_rows(self, read: torch.Tensor, z: torch.Tensor) -> None:
        """Refuse an encoder whose latents of a row depend on the other rows of the batch.

        A batch top-k encoder (the ``k x rows`` largest pre-activations of the whole batch, as
        trained by Bussmann et al. 2024) gives a row more or fewer latents depending on the rows
        stacked with it: credits explained for several inputs together were 0.21 off the same
        inputs explained one at a time, silently. Checked on every pass with two different rows
        (a pass of one input's coalitions has equal rows: nothing to tell), not only the first: a
        pass of two inputs whose top latents happen to split evenly passed, and passes mixing other
        inputs were then 0.77 off explained alone (rev46k, batch_size=2, 13 of 40 seeds). A pass
        of a few runs of equal rows (coalitions of a few inputs) encodes each run's first row
        alone (a few one-row encodings); a pass of many different rows is encoded again in parts
        (its first row alone, the rest of its first half, its second half): one more encoding of
        its rows. No model rows either way. The latents are compared with the pass's.
        Flips of a few latents sitting on a threshold or a tie (a batched and a one-row matrix
        product round differently) are not counted: over 1 in 1,000 of the active latents must
        differ by over 1e-3 of the largest (8 rounding steps in half precision). (The engine's check
        that rows do not depend on each other reads gradients, and a top-k selection carries none
        across rows.)
        """
        n = read.shape[0]
        if n < 2:
            return
        flat = read.detach().reshape(n, -1)
        first = [0, *((flat[1:] != flat[:-1]).any(1).nonzero().flatten() + 1).tolist()]
        if len(first) == 1:
            return
        try:
            with torch.no_grad():
                if len(first) <= _ALONE_RUNS:
                    runs = list(zip(first, [*first[1:], n]))
                    parts = [self._fns[0](read[a:a + 1].detach()).to(z.dtype) for a, _ in runs]
                    alone = torch.cat([p.expand(b - a, *p.shape[1:]) for p, (a, b) in zip(parts, runs)])
                else:
                    half = max(1, n // 2)
                    cuts = [c for c in ((0, 1), (1, half), (half, n)) if c[1] > c[0]]
                    alone = torch.cat([self._fns[0](read[a:b].detach()).to(z.dtype) for a, b in cuts])
        except Exception:  # an encoder that cannot take fewer rows: nothing to compare
            self._rows_unchecked = True
            return
        batched = z.detach()
        if alone.shape != batched.shape:
            self._rows_unchecked = True
            return
        scale = float(torch.maximum(batched.abs().max(), alone.abs().max()))
        # 1e-3 of the largest, or a few steps of a half-precision dictionary's rounding
        tol = max(1e-3, 8 * torch.finfo(batched.dtype).eps) * scale if batched.is_floating_point() else 0.0
        differ = int(((alone - batched).abs() > tol).sum())
        active = int(((alone != 0) | (batched != 0)).sum())
        if differ > 1e-3 * max(active, 1):
            raise UnsupportedModelError(
                f"SAE at {self.at!r}: the encoder gives rows other latents in a batch of {n} rows than in smaller "
                f"batches ({differ} of {active} active latents differ), so credits would depend on which rows the "
                "game stacks together. A batch top-k encoder (the k x rows largest latents of the whole batch) does "
                "this: give the SAE its inference form, e.g. a JumpReLU with the learned threshold, or a per-row "
                "top-k.")

    def splice(self, read: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        z, rec = self._code(read)
        if not self._rows_unchecked:
            self._check_rows(read, z)
        if not isinstance(rec, torch.Tensor) or rec.shape != out.shape:
            shape = tuple(rec.shape) if isinstance(rec, torch.Tensor) else type(rec).__name__
            raise UnsupportedModelError(
                f"SAE at {self.at!r}: the decoder returns {shape} but the module outputs {tuple(out.shape)}; "
                "the decoder must reconstruct the module's output.")
        if rec.dtype != out.dtype:
            raise UnsupportedModelError(
                f"SAE at {self.at!r}: the decoder returns {rec.dtype} but the module outputs {out.dtype} "
                f"(shape {tuple(out.shape)}); cast the SAE to the model's dtype (e.g. sae_module.to({out.dtype})).")
        err = out - rec
        z2 = self.latents(z)
        e2 = self.error(err)
        rec2: torch.Tensor = rec if z2 is z else self._call("decoder", self._fns[1], z2, "the edited latents")
        new: torch.Tensor = out + (rec2 - rec) + (e2 - err)
        return new


#: most runs of equal rows in a pass whose first rows the batch top-k check encodes one by one
_ALONE_RUNS = 8
#: how deep :func:`modules_reached` follows functions, partials and containers
_REACH_DEPTH = 4
#: most items of one container (list, tuple, dict) it looks at
_REACH_ITEMS = 64
#: most items of one container it looks at for tensors (leaves, nothing to walk: a bundle of
#: many layers' dictionaries in one dict of tensors)
_REACH_TENSORS = 4096


def modules_reached(fn: Any, depth: int = _REACH_DEPTH) -> list[torch.nn.Module]:
    """The torch modules a callable computes with: itself, a bound method's ``__self__``, a
    ``functools.partial``'s function and arguments, a function's closure cells, defaults and the
    globals its code names (nested code too; of a global class or Python module, the attributes
    the code names: ``Holder.enc``, ``my_saes.enc``; of a classmethod's class, likewise), and what
    those reach in turn, to ``depth`` levels of functions and containers (lists, tuples, dicts).
    Each module once, in the order found."""
    return _reached(fn, depth)[0]


def tensors_reached(fn: Any, depth: int = _REACH_DEPTH) -> list[torch.Tensor]:
    """The tensors a callable computes with outside any module it reaches (found as
    :func:`modules_reached` finds modules: a dictionary's weights held in a closure, a dict of
    tensors loaded from a file, a plain object's attributes). Each tensor once, in the order found."""
    return _reached(fn, depth)[1]


def _reached_by(fns: Sequence[Any], own: set[int], ordered: bool
                ) -> tuple[list[torch.nn.Module], tuple[torch.Tensor, ...]]:
    """The modules the functions ``fns`` reach that are not in ``own`` (updated), and the
    plain tensors they compute with (a dictionary held as tensors in a closure, a dict loaded
    from a file): fingerprinted with the modules' weights (a plain tuple, not state)."""
    walks = [_reached(fn, _REACH_DEPTH, ordered) for fn in fns]
    extra: list[torch.nn.Module] = []
    for m in (m for mods, _ in walks for m in mods):
        if id(m) not in own:
            own.update(id(k) for k in m.modules())
            extra.append(m)
    return extra, tuple({id(t): t for _, ts in walks for t in ts}.values())


def _reached(fn: Any, depth: int, ordered: bool = True) -> tuple[list[torch.nn.Module], list[torch.Tensor]]:
    out: dict[int, torch.nn.Module] = {}
    tensors: dict[int, torch.Tensor] = {}
    seen: set[int] = set()

    def visit(obj: Any, left: int) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            tensors.setdefault(id(obj), obj)
            return
        if isinstance(obj, torch.nn.Module):
            out.setdefault(id(obj), obj)
            return
        if left <= 0:
            return
        if isinstance(obj, functools.partial):
            for o in (obj.func, *obj.args[:_REACH_ITEMS], *list(obj.keywords.values())[:_REACH_ITEMS]):
                visit(o, left - 1)
        elif isinstance(obj, types.MethodType):
            visit(obj.__self__, left - 1)
            visit(obj.__func__, left - 1)
            if isinstance(obj.__func__, types.FunctionType) and not isinstance(obj.__self__, torch.nn.Module):
                # the class attributes its code names (a classmethod's ``cls.enc``; a method's
                # ``self.sae`` where ``sae`` is a class attribute or a property): they stayed in
                # training mode (a dropout: two identical calls 1.47 / 1.91 apart)
                owner = obj.__self__ if isinstance(obj.__self__, type) else type(obj.__self__)
                for o in _members_by_name(owner, _attr_names(obj.__func__.__code__)):
                    visit(o, left - 1)
        elif isinstance(obj, (classmethod, staticmethod)):
            visit(obj.__func__, left - 1)
        elif isinstance(obj, types.FunctionType):
            reads: list[Any] = []
            for cell in obj.__closure__ or ():
                try:
                    reads.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            reads += [*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()]
            glob = obj.__globals__
            reads += [glob[name] for name in _code_names(obj.__code__) if name in glob]
            attrs: list[str] | None = None
            for o in reads:
                if isinstance(o, (type, types.ModuleType)):
                    # a class or a Python module is not walked, only the attributes the code
                    # names on it (``Holder.enc(a)``, ``import my_saes; my_saes.enc(a)``): those
                    # stayed in training mode (a dropout made two identical calls differ by 0.08)
                    attrs = _attr_names(obj.__code__) if attrs is None else attrs
                    for member in _members_by_name(o, attrs):
                        visit(member, left - 1)
                else:
                    visit(o, left - 1)
        elif isinstance(obj, (list, tuple, dict)):
            # a dict's values in the order of its keys, not of insertion: an equal dictionary
            # loaded with its keys in another order got another digest and its credits were
            # refused (small45); the key order keeps a tensor's role (W_enc vs W_dec) in it
            items = iter([obj[k] for k in (sorted(obj, key=_key_order) if ordered else list(obj))]
                         if isinstance(obj, dict) else obj)
            for o in itertools.islice(items, _REACH_ITEMS):
                visit(o, left - 1)
            # the tensors past the first items are taken too, to _REACH_TENSORS items (leaves:
            # nothing to walk): a bundle of 26 layers' dictionaries in one dict
            # (``P[f"blocks.{i}.W_enc"]``) left the SAE's own tensors (entries 75 and 76) out of the
            # digest, and credits explained with one dictionary were scored on a retrained one's
            # game silently (shapley_error 1.54, not 0; rev44a)
            for o in itertools.islice(items, _REACH_TENSORS - _REACH_ITEMS):
                if isinstance(o, torch.Tensor):
                    tensors.setdefault(id(o), o)
        elif not isinstance(obj, (type, types.ModuleType)) and (
                isinstance(state := _state(obj), dict) or (slots := _slot_values(obj))):
            # an object's state (the wrapper behind a bound method: ``wrapper.encode``) and a
            # callable object's own __call__ (its class's or a base's)
            call = next((vars(k)["__call__"] for k in type(obj).__mro__ if "__call__" in vars(k)), None)
            if isinstance(call, types.FunctionType):
                visit(call, left - 1)
                for o in _members_by_name(type(obj), _attr_names(call.__code__)):
                    visit(o, left - 1)
            if isinstance(state, dict):
                visit(state, left - 1)
                slots = _slot_values(obj)
            # a slotted object's state (``@dataclass(slots=True)``, ``attrs.define``): not walked, its
            # SAE stayed in training mode (a dropout: two identical calls 2.25 apart)
            for o in slots:
                visit(o, left - 1)

    visit(fn, depth)
    return list(out.values()), list(tensors.values())


def _key_order(k: Any) -> tuple[str, str]:
    """A sort key for a dict's keys that depends on their value (strings, numbers, tuples of
    them), never on insertion order."""
    return (type(k).__name__, str(k) if isinstance(k, (str, int, float, tuple, bool)) or k is None else "")


def _state(obj: Any) -> Any:
    """``obj.__dict__``, or None where reading it fails: an object whose ``__getattr__`` raises
    something else than AttributeError for a missing ``__dict__`` (a ``__slots__`` class looking
    names up in a dict: KeyError) made building the SAE's players fail with ``KeyError:
    '__dict__'``, for an object the SAE's function merely names."""
    try:  # not through a class's ``__getattr__`` (a lazy loader's side effects; rev44a)
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None


def _slot_values(obj: Any) -> list[Any]:
    """The values of the ``__slots__`` an object's classes declare (set ones only; names
    mangled as Python mangles them), at most ``_REACH_ITEMS``."""
    out: list[Any] = []
    for k in type(obj).__mro__:
        declared = vars(k).get("__slots__", ())
        for name in (declared,) if isinstance(declared, str) else declared:
            if len(out) >= _REACH_ITEMS:
                return out
            if not isinstance(name, str) or name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{k.__name__.lstrip('_')}{name}"
            # read through the slot's own descriptor: ``getattr`` evaluated a subclass's property of
            # that name and called the class's ``__getattr__`` for an unset slot (side effects of
            # an object the SAE's function merely names; rev44a)
            slot = vars(k).get(name)
            if not isinstance(slot, types.MemberDescriptorType):
                continue
            try:
                out.append(slot.__get__(obj, type(obj)))
            except Exception:  # an unset slot (AttributeError)
                continue
    return out


#: byte code that reads a global by name (LOAD_NAME: module-level and exec'd code; Python 3.12+:
#: LOAD_FROM_DICT_OR_GLOBALS in class bodies)
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})


def _code_names(code: types.CodeType) -> list[str]:
    """Global names a code object (and the code nested in it: lambdas, comprehensions) reads.

    Only names loaded as globals: ``co_names`` also holds attribute names, so the decoder
    ``lambda z: sm.d(z)`` reached an unrelated global module named ``d`` (rev43s: it was put
    in eval mode during each pass and its weights entered the SAE's digest)."""
    names = [str(i.argval) for i in dis.get_instructions(code) if i.opname in _GLOBAL_LOADS]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _code_names(const)
    return names


def _attr_names(code: types.CodeType) -> list[str]:
    """Every name a code object (and the code nested in it) uses: globals and attribute names."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _attr_names(const)
    return list(dict.fromkeys(names))


def _members_by_name(holder: type | types.ModuleType, names: list[str]) -> list[Any]:
    """The members of a class (its own or a base's, as stored: a classmethod / staticmethod by its
    function, a property by its getter) or of a Python module that are among ``names``; never a
    Python module."""
    spaces: list[Mapping[str, Any]] = ([vars(k) for k in holder.__mro__ if k is not object]
                                       if isinstance(holder, type) else [vars(holder)])
    out: list[Any] = []
    for name in names:
        if len(out) >= _REACH_ITEMS:
            break
        space = next((d for d in spaces if name in d), None)
        if space is None:
            continue
        member = space[name]
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        elif isinstance(member, property):
            member = member.fget
        if not isinstance(member, types.ModuleType):
            out.append(member)
    return out


def _module_behind(fn: Any) -> torch.nn.Module | None:
    """The module a callable computes with: itself, the module of a bound method (SAELens'
    ``sae.encode``), or of a ``functools.partial`` of one; None for a plain function."""
    for obj in (fn, getattr(fn, "__self__", None), getattr(getattr(fn, "func", None), "__self__", None)):
        if isinstance(obj, torch.nn.Module):
            return obj
    return None


def _weights_digest(splice: torch.nn.Module, unsorted: bool = False) -> str:
    """A short sha1 of the encoder's and decoder's parameters and buffers (bytes as stored, so
    bfloat16 too; one module behind both is read once), or, where there are none, of the plain
    tensors they hold or reach; "" when they compute with no tensor at all (nothing to
    fingerprint). About 1.4 s per GB of weights. With ``unsorted``: as a release before small45
    computed it (a dict's values in insertion order)."""
    fns = getattr(splice, "_fns", ())
    modules: list[torch.nn.Module] = []
    reached: Any = getattr(splice, "reached", None)  # modules a plain function reaches (closure, ...)
    plain: tuple[torch.Tensor, ...] = getattr(splice, "_plain", ())
    old = getattr(splice, "_unsorted", None) if unsorted else None
    if old is not None:
        reached, plain = old
    for mod in [*(_module_behind(fn) for fn in fns), *(reached if reached is not None else ())]:
        if mod is not None and all(mod is not m for m in modules):
            modules.append(mod)
    tensors = [t for mod in modules for t in (*mod.parameters(), *mod.buffers())]
    # the dictionary may be plain tensors, held in a closure (a dict of tensors loaded from a
    # file), by a plain object, or as a module's plain attributes (``self.W_enc = torch.load(...)``).
    # Read none, two dictionaries of one width (a retrained SAE) gave one key, and credits
    # explained with one were scored on the other's game silently (shapley_error 2.14 where the
    # own game gives 0). A module's plain attributes are read only where no module has a
    # parameter or buffer (beside parameters they may be per-pass caches); the tensors the
    # functions reach outside modules always: beside a module with parameters (a LayerNorm
    # before the dictionary, ``relu(ln(a) @ P["W_enc"])``) they were left out and a retrained
    # dictionary was scored silently (shapley_error 4.47, not 0; rev44a)
    attrs = [] if tensors else [t for mod in modules for k in mod.modules() for t in vars(k).values()
                                if isinstance(t, torch.Tensor)]
    held = {id(t) for t in tensors}
    tensors += {id(t): t for t in (*attrs, *plain)
                if id(t) not in held and t.layout == torch.strided and not t.is_meta}.values()
    if not tensors:
        return ""
    memo = _DIGEST_MEMO.get()
    key = (id(splice), unsorted, *((id(t), _version_of(t), t.data_ptr(), tuple(t.shape), t.dtype) for t in tensors))
    if memo is not None and key in memo:
        return memo[key][0]
    out = _hash_tensors(tensors)
    if memo is not None:  # the tensors are kept: their ids are not reused within the scope
        memo[key] = (out, tensors)
    return out


def _hash_tensors(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


def _version_of(t: torch.Tensor) -> int | None:
    try:
        return int(t._version)
    except RuntimeError:  # an inference tensor keeps no version counter
        return None


#: digests computed in the current :func:`digest_memo` scope (None outside one)
_DIGEST_MEMO: contextvars.ContextVar[dict[Any, tuple[str, list[torch.Tensor]]] | None] = \
    contextvars.ContextVar("tribute_sae_digest_memo", default=None)


@contextlib.contextmanager
def digest_memo() -> Iterator[None]:
    """Within: an SAE's weights digest is computed once per state of its tensors (small45:
    ``tribute.evaluate`` hashed a plain-tensor dictionary three times, 1.9 s each at 512 MB;
    the checks of one call see the same tensors). Only for the span of one call: a tensor
    written through ``.data`` or numpy keeps its version counter, so a memo kept across calls
    could miss a retrained dictionary."""
    token = _DIGEST_MEMO.set({} if _DIGEST_MEMO.get() is None else _DIGEST_MEMO.get())
    try:
        yield
    finally:
        _DIGEST_MEMO.reset(token)


class _Spliced(torch.nn.Module):
    """``model`` with the SAE spliced in at ``sae.at`` for the duration of each forward pass."""

    def __init__(self, model: torch.nn.Module, sae: SAE) -> None:
        super().__init__()
        self.model = model
        self.sae = _Splice(sae, model)
        self._at = (get_module(model, sae.at),)  # a tuple: not registered twice as a child
        # run the splice before the hooks already on ``at`` (set while GradDrop hooks that very
        # module: its detach must see the spliced output, so the latents are the layer's nodes)
        self.splice_first = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        splice = self.sae

        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
            out = output[0] if isinstance(output, (tuple, list)) and output else output
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModelError(
                    f"SAE at {splice.at!r}: the module returned {type(output).__name__}; an SAE needs a tensor "
                    "output (or a tuple whose first element is the activation).")
            if splice.kind == "transcoder":
                read = inputs[0] if inputs else None
                if not isinstance(read, torch.Tensor):
                    raise UnsupportedModelError(f"transcoder at {splice.at!r}: the module's first input is not a tensor.")
            else:
                read = out
            new = splice.splice(read, out)
            if out is output:
                return new
            rest = list(output[1:])
            if isinstance(module, torch.nn.RNNBase):
                # rev43s: a model reading an RNN's h_n saw the unspliced state (the latents'
                # credits were all zero): the last layer's h_n is the spliced sequence's last step
                rest = _rnn_final_state(module, new, rest)
            # rev44c: a module returning a named tuple got a plain tuple back, and the model's
            # ``out.h`` raised AttributeError (aud44c's fix of the component sites, here too)
            return _same_kind(output, [new, *rest])

        # the SAE runs in eval mode, as the model does in a session (the session covers the user's
        # model, not the SAE): a dropout left on in its encoder made two identical exact_shapley
        # calls differ by 0.035; the flags are restored after the pass
        modules = list(splice.modules())
        training = [m.training for m in modules]
        handle = self._at[0].register_forward_hook(hook, prepend=self.splice_first)
        try:
            if any(training):
                splice.eval()
            return self.model(*args, **kwargs)
        finally:
            handle.remove()
            for m, flag in zip(modules, training, strict=True):
                m.training = flag


def _sites(sae: SAE) -> list[Site]:
    return [Site(sae.name, "sae.latents", "neuron", "output"),
            Site(f"{sae.name}_error", "sae.error", "head", "output", num_heads=1)]


class SAEGame(ComponentGame):
    """A :class:`ComponentGame` whose players are SAE latents and the reconstruction error.

    Module paths given to methods (AtP*'s ``layers``) are paths of the user's model; the game
    maps them into the wrapper it runs (``"blocks.1"`` -> ``"model.blocks.1"``).
    """

    @staticmethod
    def _unit_name(site: Site, j: int) -> str:
        return site.name if site.unit == "head" else f"{site.name} latent {j}"

    def site_keys(self) -> list[str]:
        """:meth:`ComponentGame.site_keys` with the SAE's module, kind and a digest of its
        weights: SAEs of one name and width at two modules, or retrained at one, have the same
        player names but other latents."""
        wrapper = self.module
        assert isinstance(wrapper, _Spliced)
        digest = _weights_digest(wrapper.sae)
        # "k": a digest of a dictionary's tensors in its keys' order (small45), never equal to
        # one read in insertion order before, which :meth:`unsorted_site_keys` gives (rev45z)
        where = f"sae@{wrapper.sae.at}|{wrapper.sae.kind}|{'k' + digest if digest else ''}|"
        return [where + k for k in super().site_keys()]

    def unsorted_site_keys(self) -> list[str] | None:
        """:meth:`site_keys` as a release before small45 recorded them: the weights digest of a
        dictionary's tensors in its keys' insertion order, untagged (attributions it saved hold
        these; the "k" tag of :meth:`site_keys` keeps a new record from ever matching them, so
        a dictionary with its tensors' roles swapped is still told apart). None without
        tensors (the keys are then the same)."""
        wrapper = self.module
        assert isinstance(wrapper, _Spliced)
        digest = _weights_digest(wrapper.sae, unsorted=True)
        if not digest:
            return None
        where = f"sae@{wrapper.sae.at}|{wrapper.sae.kind}|{digest}|"
        return [where + k for k in super().site_keys()]

    def _user_model(self) -> tuple[torch.nn.Module, str]:
        wrapper = self.module
        assert isinstance(wrapper, _Spliced)
        return wrapper.model, wrapper.sae.at

    def residual_layers(self) -> list[str]:
        """The elements of the ``ModuleList`` above the SAE's module, as paths of the user's model."""
        model, at = self._user_model()
        named = dict(model.named_modules())
        parts = at.split(".")
        for cut in range(len(parts), 0, -1):
            holder = ".".join(parts[: cut - 1])
            ml = named.get(holder)
            if isinstance(ml, torch.nn.ModuleList) and parts[cut - 1].isdigit():
                return [f"{holder}.{i}" if holder else str(i) for i in range(len(ml))]
        raise UnsupportedModelError(
            f"cannot find the residual layers above the SAE's module {at!r} (no torch.nn.ModuleList holds it); "
            "pass layers=[...] (module paths of the residual blocks) to the method.")

    def graddrop_gradients(self, layers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """GradDrop rows (see :meth:`ComponentGame.graddrop_gradients`) on the user's layer paths.

        When the SAE sits at one of the layers (a residual-stream SAE at ``blocks.3``), its
        latents are that layer's nodes, as the layer's units are: dropping the layer gives them
        no gradient (the splice runs before the GradDrop hook; it ran after, and the latents'
        own-layer term was plain AtP, inflating credits by up to ``L / (L - 1)``).
        """
        model, at = self._user_model()
        mods = [get_module(model, p) for p in layers]  # user paths; clear error when one is wrong
        wrapper = self.module
        assert isinstance(wrapper, _Spliced)
        at_module = get_module(model, at)
        wrapper.splice_first = any(m is at_module for m in mods)
        paths = [f"model.{p}" for p in layers]
        self._check_drop_layers(paths, shown=list(layers))  # named as the user gave them
        try:
            return super().graddrop_gradients(paths)
        finally:
            wrapper.splice_first = False


class SAEComponentSet(ComponentSet):
    """Players: the latents of an :class:`SAE` and its error term (see :func:`sae_features`).

    Its ``sites`` are the two identity modules of the splice (``sae.latents``, ``sae.error``),
    paths inside the wrapper the game runs, not inside the user's model.
    """

    def __init__(self, model: torch.nn.Module, sae: SAE, ablation: Ablation) -> None:
        super().__init__(model, _sites(sae), ablation)
        self.sae = sae

    def __repr__(self) -> str:
        return f"SAEComponentSet({self.sae!r}, ablation={self.ablation.kind!r})"

    def make_game(self, model: ModelAdapter, inputs: Any, *, target: TargetLike = None,
                  baseline: Any = 0.0, output: str = "raw",
                  forward_args: Sequence[Any] | None = None,
                  forward_kwargs: dict[str, Any] | None = None, batch_size: int | None = None,
                  progress: bool | None = None, ablation: Any = None, read_ablation: bool = True,
                  **unknown: Any) -> SAEGame:
        """Build the :class:`SAEGame` for ``inputs`` (called by ``tribute.explain``)."""
        if unknown:
            raise InputError(f"unexpected argument(s) {sorted(unknown)} for an SAE feature game.")
        abl = self.ablation
        if ablation is not None:
            abl = (abl.with_kind(ablation)
                   if isinstance(ablation, str) else as_ablation(ablation))
        adapter = model if isinstance(model, ModelAdapter) else as_model(model, "torch")
        if not isinstance(adapter, TorchModel) or adapter.module is None:
            raise UnsupportedModelError(
                f"SAE feature players need a torch.nn.Module model (a hook at the SAE's module); got {type(adapter).__name__}.")
        wrapper = _Spliced(adapter.module, self.sae)
        wrapped = TorchModel(wrapper, differentiable=adapter.differentiable,
                             model_output=None if adapter.output_assumed else adapter.output_kind)
        return SAEGame(wrapped, inputs, _sites(self.sae), abl, target=target, baseline=baseline, output=output,
                       forward_args=forward_args, forward_kwargs=forward_kwargs, batch_size=batch_size,
                       progress=progress, read_ablation=read_ablation)


def sae_features(model: torch.nn.Module, sae: SAE, *, ablation: str | Ablation = "zero", reference: Any = None,
                 counterfactual: Any = None, n_resample: int = 16, seed: int = 0,
                 counterfactual_kwargs: dict[str, Any] | None = None) -> SAEComponentSet:
    """Players that are the latents of ``sae`` (plus its error term); pass as ``players=`` to ``explain``.

    Same as ``tribute.components(model, sae=sae, ...)``. ``ablation``, ``reference``,
    ``counterfactual``, ``n_resample``, ``seed`` and ``counterfactual_kwargs`` mean what they mean for
    :func:`tribute.components` (``"mean"`` ablates a latent to its mean over ``reference``).

    Args:
        model: the torch module (the one passed to :func:`tribute.explain`).
        sae: an :class:`SAE` (or transcoder) attached at a module of ``model``.
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"sae_features(model=...) needs a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(sae, SAE):
        raise InputError(f"sae={sae!r} must be a tribute.SAE(encoder, decoder, at='module.path').")
    get_module(model, sae.at)  # fails early with close matches when the path is wrong
    refuse_sequence_first(model, [Site(sae.at, sae.at, "neuron", "output")])
    return SAEComponentSet(model, sae, as_ablation(ablation, reference=reference, counterfactual=counterfactual,
                                                   n_resample=n_resample, seed=seed,
                                                   counterfactual_kwargs=counterfactual_kwargs))
