"""Adapters for ``torch.nn.Module`` and for any callable on numpy arrays.

Each adapter also knows what its model returns (``output_kind``, one of
:data:`tribute.models.MODEL_OUTPUTS`), so ``output="prob"`` never applies a softmax on top of
probabilities:

* scikit-learn style estimators (also Pipelines, XGBoost and LightGBM sklearn wrappers): a
  regressor's ``predict`` returns ``"raw"`` values; a classifier's ``predict_proba`` returns
  ``"probability"``; ``decision_function`` returns ``"logit"`` scores (for a binary
  classifier its single column is the positive-class logit; a one-vs-one
  ``decision_function``, ``SVC(decision_function_shape="ovo")`` with three or more classes, is
  refused: its columns score pairs of classes); an ``XGBClassifier`` with the
  ``binary:logitraw`` objective (whose ``predict_proba`` is ``[1 - s, s]`` for its margin ``s``)
  and an ``LGBMClassifier`` with a custom objective (whose ``predict_proba`` returns raw scores)
  are called for their margins, ``predict(output_margin=True)`` / ``predict(raw_score=True)``:
  ``"logit"`` (assumed, for the custom objective);
* ``xgboost.Booster``: called through a ``DMatrix``; for ``binary:*``/``multi:*`` objectives
  with ``output_margin=True`` (its margins are its ``"logit"``), otherwise ``"raw"``;
  ``lightgbm.Booster`` likewise with ``raw_score=True`` for the binary, softmax multiclass and
  cross-entropy objectives; its one-vs-all multiclass objective (``multiclassova``: per-class
  sigmoids that do not sum to one) and a binary objective with ``sigmoid`` other than 1 return
  their ``"probability"`` (no softmax or plain sigmoid of their scores is what they predict);
* a declaration the called method contradicts is refused by the outputs themselves
  (``ModelOutputError``): ``model_output="logit"`` for an estimator called through
  ``predict_proba`` whose rows are probabilities (in [0, 1], summing to 1: a softmax of them
  would be explained), ``model_output="probability"`` for one called through
  ``decision_function`` whose scores leave [0, 1];
* objects with only ``predict``: ``"raw"`` (a *classifier* with only ``predict``, e.g.
  ``OutputCodeClassifier``, is refused unless ``model_output=`` is declared: its labels are
  not scores);
* torch modules and plain callables: ``"logit"`` unless declared otherwise with
  ``model_output=`` (a warning is issued when such outputs look like probabilities and a
  conversion is asked for).

**Known binary classifiers.** A scikit-learn style estimator with ``classes_`` of length 2
(also Pipelines, XGBClassifier, LGBMClassifier), an ``xgboost.Booster`` with a ``binary:*``
objective and a ``lightgbm.Booster`` with the ``binary`` objective are *known* to be binary
classifiers; their :attr:`ModelAdapter.output_kind` is then a :class:`BinaryKind` (a ``str``
equal to ``"logit"``/``"probability"`` that also carries this fact), so that when such a model
returns ONE column (the positive class's score: a 1-D ``decision_function``, a Booster's
margin) ``target=k`` still means class ``k`` (see :mod:`tribute.targets`). Torch modules and
plain callables are never assumed binary (they may be regressors).

Estimators fitted on a pandas DataFrame (``feature_names_in_``) get a DataFrame with those
column names back, so scikit-learn does not warn about missing feature names on every call.
Where the explained DataFrame has integer or bool columns and the model may read their dtypes
(a class of the user's, or a ``FunctionTransformer`` on the frame, anywhere in a pipeline or
meta-estimator: :func:`tribute.models.tabular.reads_column_dtypes`), those columns get their
dtypes back (``202``, not ``202.0``).
Their column names, and those of Boosters trained on a DataFrame (``Booster.feature_names`` /
``Booster.feature_name()``), are :attr:`NumpyModel.feature_names`: a DataFrame input whose
columns differ from them (another order) is refused instead of being read by position.
"""

from __future__ import annotations

import contextlib
import copy
import json
import operator
import os
import sys
import threading
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, ModelOutputError, WeightsFormatError, user_stacklevel

__all__ = ["MODEL_OUTPUTS", "BinaryKind", "ModelAdapter", "NumpyModel", "TorchModel", "as_model",
           "as_output_tensor", "is_binary", "is_multilabel", "load_weights"]

#: What a model returns: ``"logit"`` (scores a softmax/sigmoid turns into probabilities: torch
#: classifiers, ``decision_function``, XGBoost margins), ``"probability"`` (``predict_proba``),
#: ``"raw"`` (regression outputs or anything that is not a class score).
MODEL_OUTPUTS = ("logit", "probability", "raw")
#: a batch of a table model split into more frames than this (typed columns holding baseline
#: values their dtype cannot hold, :func:`.tabular.dtype_row_groups`) warns why and how to avoid it
_SPLIT_WARN_FRAMES = 8



class BinaryKind(str):
    """An output kind (``"logit"`` or ``"probability"``, equal to that plain string) of a model
    tribute knows to be a binary classifier (see the module docstring).

    When such a model returns one column, it is the positive class's score ``s`` (or
    probability ``p``), and :mod:`tribute.targets` reads ``target=k`` as class ``k``: class 0
    is the complementary quantity (``-s``, ``1 - sigmoid(s)``, ``1 - p``).
    """

    binary = True


def is_binary(kind: str) -> bool:
    """True when ``kind`` (an adapter's ``output_kind``) marks a known binary classifier."""
    return bool(getattr(kind, "binary", False))


def _kind(kind: str, binary: bool) -> str:
    return BinaryKind(kind) if binary and kind in ("logit", "probability") else str(kind)


_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
    # (stop 44: hooks a forward registered in these two stayed on the model, rev44e)
    "_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_HOOK_GET = operator.itemgetter(*_HOOK_DICTS)


def _hook_dicts(modules: list[torch.nn.Module]) -> list[dict[Any, Any]]:
    """The hook dicts (:data:`_HOOK_DICTS`) of every module, in order, as ``mod.__dict__`` holds
    them (a name a module lacks, or holds None, is left out). Read with one ``itemgetter`` per
    module instead of a Python loop over the eleven names (issue #9, eng44: 79 -> 42 us on
    all-MiniLM-L6's 122 modules)."""
    out: list[dict[Any, Any]] = []
    for mod in modules:
        attrs = mod.__dict__
        try:
            got = _HOOK_GET(attrs)
        except KeyError:  # a module that never ran Module.__init__'s setup of them all
            got = tuple(attrs.get(name) for name in _HOOK_DICTS)
        out.extend(got)
    if None in out:  # (one C-level scan: the dicts compare unequal to None)
        out = [d for d in out if d is not None]
    return out


#: the defaults behind ``Module.modules()`` (a class overriding one is walked by torch), and
#: identity as the modules' equality (torch dedups them in a set)
_OBJECT_HASH, _OBJECT_EQ = object.__hash__, object.__eq__


def _all_modules(root: torch.nn.Module) -> list[torch.nn.Module]:
    """``list(root.modules())`` (see :func:`_module_walk`)."""
    return _module_walk(root)[0]


def _module_walk(root: torch.nn.Module) -> tuple[list[torch.nn.Module], bool]:
    """``list(root.modules())``: the module and its submodules depth first in registration
    order, each once (a shared one at its first place; the subtree of a repeat is not walked
    again), read off each module's own child dict without ``named_modules``' generators and
    names (issue #9, eng44: 79 -> 33 us on all-MiniLM-L6's 122 modules). Torch walks a tree
    holding a class that overrides ``modules``/``named_modules``, or gives its modules value
    equality or a hash of their own, or children that are not a plain dict (TorchScript), and
    one whose instance has its own ``modules``/``named_modules``. The flag tells that torch
    walked it (its list may then lack modules that ``Module.train`` still reaches)."""
    base = torch.nn.Module
    walk, named = base.modules, base.named_modules
    if type(root).modules is not walk or "modules" in root.__dict__:
        return list(root.modules()), True
    out: list[torch.nn.Module] = []
    seen: set[int] = set()
    stack: list[torch.nn.Module | None] = [root]
    while stack:
        mod = stack.pop()
        if mod is None:
            continue
        cls = type(mod)
        attrs = mod.__dict__
        children = attrs.get("_modules")
        if cls.named_modules is not named or "named_modules" in attrs \
                or cls.__hash__ is not _OBJECT_HASH or cls.__eq__ is not _OBJECT_EQ \
                or not isinstance(children, dict):
            return list(root.modules()), True
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        out.append(mod)
        if children:
            stack.extend(reversed(children.values()))
    return out, False


def _with_children(root: torch.nn.Module, modules: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """``modules`` and, after them, every module reached through the modules' own child dicts
    (``_modules``, as ``Module.train``/``eval`` reach them) that ``modules`` lacks: a module an
    override of ``named_modules``/``modules`` hides is still switched by ``m.eval()``, so its
    training flag (and hooks) are recorded and restored too (rev44e)."""
    out = list(modules)
    listed = {id(mod) for mod in out}
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        mod = stack.pop()
        if mod is None or id(mod) in seen:
            continue
        seen.add(id(mod))
        if id(mod) not in listed:
            listed.add(id(mod))
            out.append(mod)
        children = getattr(mod, "_modules", None)
        if children:
            stack.extend(reversed(list(children.values())))
    return out


def _own_buffers(modules: list[torch.nn.Module]) -> list[tuple[torch.nn.Module, str, torch.Tensor, int | None]]:
    """``(module, name, buffer, version)`` for every buffer ``module.named_buffers(recurse=False)``
    lists, module by module: read off the module's own buffer dict (None entries and a tensor
    registered twice in one module left out, as torch does), without its generator machinery
    (issue #9, eng44: 87 -> 7 us on all-MiniLM-L6's 122 modules). A class overriding
    ``named_buffers``/``_named_members`` (or an instance with its own), or a buffer dict that
    is not a plain dict (TorchScript), is listed by torch."""
    base = torch.nn.Module
    out: list[tuple[torch.nn.Module, str, torch.Tensor, int | None]] = []
    for mod in modules:
        attrs = mod.__dict__
        own = attrs.get("_buffers")
        cls = type(mod)
        if cls.named_buffers is not base.named_buffers or \
                cls._named_members is not base._named_members or \
                "named_buffers" in attrs or "_named_members" in attrs or not isinstance(own, dict):
            out.extend((mod, name, b, _version(b)) for name, b in mod.named_buffers(recurse=False))
        elif own:
            seen: set[int] = set()
            for name, b in own.items():
                if b is not None and id(b) not in seen:
                    seen.add(id(b))
                    try:
                        out.append((mod, name, b, b._version))
                    except RuntimeError:  # an inference tensor: see _version
                        out.append((mod, name, b, None))
    return out


def _version(b: torch.Tensor) -> int | None:
    """``b._version``, or None for an inference tensor, which keeps no version counter (torch
    raises on reading it): a buffer made under ``torch.inference_mode()``, or one the model's
    forward stored while tribute evaluated it (rev44e: the next call raised "Inference tensors
    do not track version counter"). Such a buffer is then only checked for replacement."""
    try:
        return b._version
    except RuntimeError:
        return None


class ModelAdapter(ABC):
    """Common interface of all adapters.

    Attributes:
        framework: ``"torch"`` or ``"numpy"`` — how the model wants its inputs.
        differentiable: gradients of the output w.r.t. the inputs are available.
        device: where rows must live when they are passed to the model.
        module: the wrapped ``torch.nn.Module`` (None for numpy callables).
        output_kind: what the model returns: ``"logit"``, ``"probability"`` or ``"raw"``
            (see :data:`tribute.models.MODEL_OUTPUTS`).
        output_assumed: ``output_kind`` is a default guess rather than declared by the user or
            read off the estimator's API (torch modules and plain callables).
        sequences_per_row: model rows one input row costs (2 for a dual encoder's text pair,
            whose two texts are embedded separately); the engine counts ``n_rows`` in them.
    """

    framework: str = "torch"
    differentiable: bool = False
    device: torch.device = torch.device("cpu")
    module: torch.nn.Module | None = None
    output_kind: str = "logit"
    output_assumed: bool = True
    sequences_per_row: int = 1

    def with_output_kind(self, model_output: str) -> ModelAdapter:
        """A shallow copy declared to return ``model_output`` (``logit``/``probability``/``raw``)."""
        _check_kind(model_output)
        twin = copy.copy(self)
        twin.output_kind = _kind(model_output, is_binary(self.output_kind))
        twin.output_assumed = False
        return twin

    @abstractmethod
    def __call__(self, inputs: tuple[torch.Tensor, ...], extra: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> torch.Tensor:
        """Run the model on a batch of rows; returns the raw output (rows first)."""

    def compute_dtype(self, user_dtype: torch.dtype) -> torch.dtype:
        """The floating dtype rows are composed in."""
        return user_dtype if user_dtype.is_floating_point else torch.float32

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Evaluation context; leaves the model exactly as it was."""
        yield


#: ``{id(parameter): requires_grad}`` as the caller set them, for the parameters of every open
#: :meth:`TorchModel.session` (read by data games: see ``TorchModel.requires_grad_before``)
_REQUIRES_GRAD_BEFORE: dict[int, bool] = {}
#: ``{id(parameter): open sessions covering it}``: an entry leaves the record when the last
#: session over it closes (sessions over one module in two threads may close in any order)
_REQUIRES_GRAD_OPEN: dict[int, int] = {}
_REQUIRES_GRAD_LOCK = threading.Lock()
#: one re-entrant lock per module: sessions over a module in two threads run one after the
#: other (each sets eval mode, freezes parameters and adds hooks, and restores them on exit:
#: interleaved, the first to close would put the module back in training mode and remove the
#: other's hooks while the other still runs); nested sessions in one thread pass through
#: (keyed by ``id``: a module class may define ``__eq__`` without ``__hash__``; an entry leaves
#: when its module is collected)
_SESSION_LOCKS: dict[int, threading.RLock] = {}


class TorchModel(ModelAdapter):
    """A ``torch.nn.Module`` or a callable on tensors.

    The output may be a tensor, a tuple/list whose first element is a tensor, an object with
    a ``logits`` attribute (Hugging Face ``ModelOutput``) or a mapping with a ``"logits"``
    tensor (a plain dict); anything else is refused (wrap the model to return the output).

    Args:
        model: the module or callable.
        differentiable: gradients w.r.t. the inputs are available. default=True.
        model_output: what it returns (``"logit"``, ``"probability"``, ``"raw"``).
            default=None (assumed ``"logit"``).
    """

    framework = "torch"

    @property
    def requires_grad_before(self) -> dict[int, bool] | None:
        """``{id(parameter): requires_grad}`` as the caller set them, while a session runs
        (``None`` outside any): one record for every adapter, so a session of another adapter
        over the same module nested inside this one (``evaluate`` re-explaining through
        ``explain``, which wraps the module anew) still reads the caller's flags, not the
        ``False`` the outer session set."""
        return _REQUIRES_GRAD_BEFORE or None

    def __init__(self, model: Callable[..., Any], differentiable: bool = True,
                 model_output: str | None = None) -> None:
        if model_output is not None:
            _check_kind(model_output)
        self.output_kind = model_output or "logit"
        self.output_assumed = model_output is None
        self.fn = model
        self.module = model if isinstance(model, torch.nn.Module) else None
        self.differentiable = differentiable
        # one walk over the parameters (then the buffers, only when needed) gives the device,
        # the floating dtype and the parameter count (four walks before: issue #9, ~30 us of a
        # small model's ~0.8 ms per call)
        self.device = torch.device("cpu")
        self._param_dtype: torch.dtype | None = None
        self._device_known = False
        #: parameters of the module (the engine caps chunks of very large models)
        self.n_params = 0
        if self.module is not None:
            params: list[torch.Tensor] = _unique_parameters(self.module)
            try:
                self.n_params = sum(p.numel() for p in params)
            except ValueError:  # small45: torch's own error for an uninitialised lazy module
                _raise_if_lazy(self.module)
                raise
            tensors: list[torch.Tensor] = list(params)
            if not params or not any(p.dtype.is_floating_point for p in params):
                tensors = params + list(self.module.buffers())
            if tensors:
                self.device, self._device_known = tensors[0].device, True
                if self.device.type == "meta":
                    raise InputError(
                        f"model: the {type(self.module).__name__}'s parameters are on the "
                        "'meta' device (shapes without values, e.g. built under "
                        "init_empty_weights or with device='meta'), so it cannot be evaluated. "
                        "Materialise it first: model.to_empty(device='cpu') and load its "
                        "weights (tribute.models.load_weights or load_state_dict)."
                    )
                self._param_dtype = next(
                    (t.dtype for t in tensors if t.dtype.is_floating_point), None)

    def adopt_device(self, device: torch.device) -> None:
        """Parameter-free models and plain callables run where the inputs are."""
        if not self._device_known:
            self.device = device

    def compute_dtype(self, user_dtype: torch.dtype) -> torch.dtype:
        if self._param_dtype is not None:
            return self._param_dtype
        return user_dtype if user_dtype.is_floating_point else torch.float32

    def __call__(self, inputs: tuple[torch.Tensor, ...], extra: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> torch.Tensor:
        out = self.fn(*inputs, *extra, **(kwargs or {}))
        return as_output_tensor(out)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        m = self.module
        if m is None:
            yield
            return
        with _REQUIRES_GRAD_LOCK:
            lock = _SESSION_LOCKS.get(id(m))
            if lock is None:
                lock = _SESSION_LOCKS[id(m)] = threading.RLock()
                weakref.finalize(m, _SESSION_LOCKS.pop, id(m), None)
        with lock, self._open_session(m):
            yield

    @contextlib.contextmanager
    def _open_session(self, m: torch.nn.Module) -> Iterator[None]:
        # One walk over the modules records what the session may change: training flags,
        # requires_grad, and the keys of every hook dict (issue #9: cheap enough to run per
        # call; parameter values are never written, so they are not copied).
        modules, by_torch = _module_walk(m)
        # the modules m.eval() switches: a module hidden from torch's listing by an override is
        # switched too, so its flag (and hook dicts) are kept as well (rev44e: it was left in
        # eval mode, and a hidden Dropout in training mode stayed active during the run)
        reached = _with_children(m, modules) if by_torch else modules
        training = [mod.training for mod in reached]
        params = [p for mod in modules for p in mod._parameters.values() if p is not None]
        req = [p.requires_grad for p in params]
        # the flags as the caller set them (every one reads False inside the session): a data
        # game trains only the parameters that required grad (a frozen layer stays fixed)
        # the outermost session's record is kept (a nested one, of this adapter or another
        # wrapping the same parameters, finds every flag False); an entry is dropped when the
        # last session covering its parameter closes (counted, so that sessions over one module
        # in two threads, closing in either order, keep the record the other still reads)
        ids = [id(p) for p in params]
        with _REQUIRES_GRAD_LOCK:
            for k, r in zip(ids, req):
                if k not in _REQUIRES_GRAD_BEFORE:
                    _REQUIRES_GRAD_BEFORE[k] = r
                _REQUIRES_GRAD_OPEN[k] = _REQUIRES_GRAD_OPEN.get(k, 0) + 1
            # what this session restores: the caller's flag (a session opened inside another
            # reads False; the last one to close writes the caller's flags back)
            req = [_REQUIRES_GRAD_BEFORE[k] for k in ids]
        # buffers are not copied (a model's may be large): their version counters tell when
        # the model's own forward wrote one, which is then reported (see _warn_buffers)
        buffers = _own_buffers(modules)
        # every hook dict, and the keys of those holding hooks now: on exit a dict holding
        # hooks it did not hold here loses those (most dicts are empty: issue #9, eng44)
        hooks = _hook_dicts(reached)
        keys = {id(d): set(d) for d in filter(None, hooks)}
        try:
            if any(training):
                try:
                    m.eval()
                except RecursionError:  # small45: torch's own error for a module cycle
                    _raise_if_cycle(m)
                    raise
            for p, r in zip(params, req):
                if r:
                    p.requires_grad_(False)
            yield
        finally:
            with _REQUIRES_GRAD_LOCK:
                last = []
                for k in ids:
                    left = _REQUIRES_GRAD_OPEN.get(k, 1) - 1
                    last.append(left <= 0)
                    if left > 0:
                        _REQUIRES_GRAD_OPEN[k] = left
                    else:
                        _REQUIRES_GRAD_OPEN.pop(k, None)
                        _REQUIRES_GRAD_BEFORE.pop(k, None)
            # only what differs is written back (Module.__setattr__ is slow: issue #9)
            for mod, flag in zip(reached, training):
                if mod.training != flag:
                    mod.training = flag
            # a session still open over a parameter keeps it frozen; the last one restores it
            for p, r, is_last in zip(params, req, last):
                if is_last and p.requires_grad != r:
                    try:
                        p.requires_grad_(r)
                    except RuntimeError:  # an inference tensor (a model built under
                        with torch.inference_mode():  # torch.inference_mode()): torch sets its
                            p.requires_grad_(r)  # flag back only there (rev44e)
            for d in filter(None, hooks):  # the dicts holding hooks now
                had = keys.get(id(d))
                if had is None:
                    d.clear()
                else:
                    for k in [k for k in d if k not in had]:
                        del d[k]
            _warn_buffers(m, buffers)


def _raise_if_lazy(root: torch.nn.Module) -> None:
    """An InputError naming the first module with uninitialised (lazy) parameters, if any: an
    ``nn.LazyLinear`` before its first forward raised torch's raw ValueError (rev44e)."""
    for name, p in root.named_parameters():
        if torch.nn.parameter.is_lazy(p):
            path = name.rpartition(".")[0]
            mod = root.get_submodule(path) if path else root
            where = f"the module {path!r}" if path else "the model itself"
            raise InputError(
                f"model: {where} ({type(mod).__name__}) has uninitialised parameters "
                f"({name!r}: a lazy module such as nn.LazyLinear before its first forward), so its "
                "size and weights are unknown. Run the model once on an example batch "
                "(model(x)) before explaining it.")


def _raise_if_cycle(root: torch.nn.Module) -> None:
    """An InputError naming a module registered as its own descendant, if any: ``m.eval()``
    recursed without end and torch's RecursionError came out (rev44e)."""
    path: list[tuple[str, torch.nn.Module]] = [("", root)]
    on_path = {id(root)}
    done: set[int] = set()
    stack: list[Any] = [iter(list(root._modules.items()))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            done.add(id(path[-1][1]))
            on_path.discard(id(path.pop()[1]))
            continue
        name, child = nxt
        if child is None or id(child) in done:
            continue
        where = ".".join([n for n, _ in path[1:]] + [name])
        if id(child) in on_path:
            first = next(".".join(n for n, _ in path[1:i + 1]) for i, (_, mod) in enumerate(path) if mod is child)
            raise InputError(
                f"model: its module graph has a cycle: {where!r} is "
                f"{'the model itself' if not first else repr(first)} ({type(child).__name__}), a "
                "module registered as its own descendant, which torch cannot walk (m.eval() "
                "recurses without end). Keep that reference out of the module tree (e.g. "
                "object.__setattr__(module, name, other) or a weakref) instead of registering it.")
        path.append((name, child))
        on_path.add(id(child))
        stack.append(iter(list(child._modules.items())))


def _warn_buffers(root: torch.nn.Module,
                  buffers: list[tuple[torch.nn.Module, str, torch.Tensor, int | None]]) -> None:
    """Warn when the model's forward wrote buffers during a session (a call counter, a cache,
    running statistics updated outside training mode): tribute restores training flags,
    ``requires_grad`` and hooks, but does not copy buffers to restore them."""
    moved = [(mod, name) for mod, name, b, version in buffers
             if getattr(mod, name, None) is not b or (version is not None and b._version != version)]
    if moved:  # the module names are looked up only then (issue #9: ~4 us per session)
        names = {id(mod): prefix for prefix, mod in root.named_modules()}
        changed = [f"{names.get(id(mod), '?')}.{name}".lstrip(".") for mod, name in moved]
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        warnings.warn(
            f"the model's forward changed its buffer(s) {', '.join(map(repr, changed[:3]))}{more} "
            "while tribute evaluated it; tribute puts the model in eval mode and restores its "
            "training flags, requires_grad and hooks, but not buffer values, so they now hold "
            "what the last evaluated rows left. Copy the model first (copy.deepcopy) if they "
            "matter.", UserWarning, stacklevel=user_stacklevel())


class NumpyModel(ModelAdapter):
    """Any callable on numpy arrays: scikit-learn, XGBoost, LightGBM, a plain function.

    For a regressor ``predict`` is called; for other estimator objects the first of
    ``predict_proba``, ``decision_function``, ``predict`` that exists (see the module
    docstring for the output kind each implies).

    Args:
        model: estimator, ``xgboost.Booster`` or callable.
        np_dtypes: numpy dtype per input (set by the game from the user's arrays).
        model_output: what the model returns (``"logit"``, ``"probability"``, ``"raw"``).
            default=None (detected from the estimator API; ``"logit"`` for plain callables).

    Attributes:
        kind: which method is called (``"predict_proba"``, ``"decision_function"``,
            ``"predict"``, ``"booster"`` or ``"callable"``).
        feature_names: column names the estimator was fitted with (``feature_names_in_``);
            2-D inputs with that many columns are passed as a pandas DataFrame.
    """

    framework = "numpy"
    differentiable = False
    #: the least precise float dtype the model returned (before the float64 conversion of
    #: :meth:`__call__`), None before its first call (the flat-draws gate reads it)
    output_dtype: np.dtype[Any] | None = None
    #: integer and bool columns (name -> dtype) of the user's DataFrame of numbers, given back
    #: to the rows handed to an estimator fitted on a DataFrame (set by
    #: :func:`tribute.models.tabular.prepare_categorical`); None otherwise
    column_dtypes: dict[Any, Any] | None = None
    #: which forward arguments (positions, keywords) the game indexes per row, set by the
    #: feature game before each chunk; None: any array as long as the batch is read so
    row_arguments: tuple[tuple[bool, ...], frozenset[str]] | None = None
    #: the model reads a DataFrame of numbers as one array (validating FunctionTransformers
    #: only), so its rows need two dtype frames at most (:func:`.tabular.dtype_row_groups`)
    one_array_dtypes: bool = False

    def __init__(self, model: Any, np_dtypes: tuple[np.dtype[Any], ...] | None = None,
                 model_output: str | None = None) -> None:
        self.fn, self.kind, detected = _numpy_callable(model)
        self.estimator = model  # the user's object (model-specific methods read it, e.g. trees)
        if self.kind == "decision_function":
            _refuse_one_vs_one(model)
        elif self.kind == "predict" and model_output is None and \
                _estimator_type(model) == "classifier":
            raise InputError(
                f"model: {type(model).__name__} is a classifier with neither predict_proba nor "
                "decision_function, and its predict returns class labels, not scores: tribute "
                "would explain the label numbers (class 3 counting as three times class 1). "
                "Pass a function returning one score per class, or model_output='raw' to "
                "explain predict's labels as numbers (e.g. a 0/1 decision)."
            )
        if model_output is not None:
            _check_kind(model_output)
        #: a known binary classifier (see the module docstring)
        self.binary = _known_binary(model, self.kind)
        self.output_kind = _kind(model_output or detected, self.binary)
        # a custom objective's raw scores (LightGBM) are read as logits by assumption
        self.output_assumed = model_output is None and (
            self.kind == "callable"
            or _score_classifier_option(model) == {"raw_score": True})
        self.np_dtypes = np_dtypes
        names = (_booster_feature_names(model) if self.kind == "booster"
                 else getattr(model, "feature_names_in_", None) if self.kind != "callable"
                 else None)
        self.feature_names: list[str] | None = (
            [str(n) for n in np.asarray(names).tolist()] if names is not None else None
        )
        self._declared = _contradicted(self.kind, model_output)

    def with_output_kind(self, model_output: str) -> ModelAdapter:
        twin = super().with_output_kind(model_output)
        if isinstance(twin, NumpyModel):
            twin._declared = _contradicted(self.kind, model_output)
        return twin

    def _check_declared(self, arr: np.ndarray) -> None:
        """Refuse outputs that contradict the declared ``model_output`` (see
        :func:`_contradicted`): probabilities read as logits (a softmax of probabilities, the
        double conversion of the first release), or scores read as probabilities."""
        if arr.size == 0 or not np.issubdtype(arr.dtype, np.floating) \
                or not bool(np.isfinite(arr).all()):
            return
        name = type(self.estimator).__name__
        lo, hi = float(arr.min()), float(arr.max())
        if self._declared == "logit":
            if arr.ndim != 2 or arr.shape[1] < 2 or lo < 0.0 or hi > 1.0 \
                    or not bool((np.abs(arr.sum(1) - 1.0) <= 1e-6).all()):
                return
            raise ModelOutputError(
                f"model_output='logit' was declared, but tribute calls {name}.predict_proba, "
                f"whose {arr.shape[0]} rows x {arr.shape[1]} columns are probabilities (in "
                f"[{lo:.3g}, {hi:.3g}], each row summing to 1): read as logits, a softmax / "
                "log-softmax would be taken of probabilities. Drop model_output= (predict_proba "
                "is read as probabilities, and output='logit' explains their log-odds)"
                + (f", or pass model={name.lower()}.decision_function to explain its scores."
                   if callable(getattr(self.estimator, "decision_function", None)) else ".")
            )
        if lo >= 0.0 and hi <= 1.0:
            return
        # XGBoost binary:logitraw / LightGBM custom objectives: predict's margins (rev45a)
        option = _score_classifier_option(self.estimator)
        method = ("decision_function" if option is None else
                  "predict(" + ", ".join(f"{k}={v}" for k, v in option.items()) + ")")
        raise ModelOutputError(
            f"model_output='probability' was declared, but tribute calls "
            f"{name}.{method}, whose scores range over [{lo:.4g}, {hi:.4g}], outside "
            "[0, 1]: they are not probabilities (a log of them would be clipped). Drop "
            "model_output= (decision_function scores are read as logits), or explain "
            "calibrated probabilities (CalibratedClassifierCV)."
        )

    def __call__(self, inputs: tuple[torch.Tensor, ...], extra: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> torch.Tensor:
        extra_np = tuple(e.detach().cpu().numpy() if isinstance(e, torch.Tensor) else e for e in extra)
        groups = None
        if len(inputs) == 1 and (self.column_dtypes or getattr(self, "codec", None) is not None):
            from .tabular import dtype_row_groups, typed_positions

            rows, typed = inputs[0].detach().cpu().double().numpy(), typed_positions(self)
            groups = dtype_row_groups(rows, typed, one_array=self.one_array_dtypes)
            if groups is not None and len(groups) > _SPLIT_WARN_FRAMES:
                self._warn_split(rows, typed, len(groups))
        if groups is None:
            arr = self._scores(self._arrays(inputs), extra_np, kwargs or {})
        else:
            # rows whose integer / bool columns hold values of their dtype and rows holding a
            # baseline they cannot hold (a mean 2.07) are separate frames: each row reaches the
            # model typed as alone (tabular.dtype_row_groups; aud50t). Per-row forward
            # arguments (the game's, indexed per row) are split with them.
            # Only the arguments the game indexed per row are split (row_arguments): a shared
            # argument as long as the batch was split too (aud51t: a length-2 weight vector
            # summed per frame, credit -3132.7 for a truth of -13.3)
            n = int(inputs[0].shape[0])
            flags = self.row_arguments

            def rows_of(v: Any, idx: np.ndarray, per_row: bool) -> Any:
                return v[idx] if per_row and isinstance(v, np.ndarray) and v.ndim > 0 \
                    and v.shape[0] == n else v

            parts = []
            for idx in groups:
                part = self._scores(
                    self._arrays((inputs[0][torch.from_numpy(idx)],)),
                    tuple(rows_of(e, idx, flags is None or (i < len(flags[0]) and flags[0][i]))
                          for i, e in enumerate(extra_np)),
                    {k: rows_of(v, idx, flags is None or k in flags[1])
                     for k, v in (kwargs or {}).items()})
                if part.ndim == 0 or part.shape[0] != idx.size:
                    raise ModelOutputError(
                        f"model returned an array of shape {tuple(part.shape)} for {idx.size} "
                        "rows; it must return one output (or one row of outputs) per row.")
                parts.append(part)
            arr = np.empty((n, *parts[0].shape[1:]), dtype=np.result_type(*parts))
            for idx, part in zip(groups, parts):
                arr[idx] = part
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))

    def _warn_split(self, rows: np.ndarray, typed: list[tuple[int, Any]], frames: int) -> None:
        """Say why one batch took ``frames`` model calls (:func:`~.tabular.dtype_row_groups`) and
        how to make it one: rev50t measured 2,555 calls for 2,560 rows (178 s, 2.9 s on main) for
        exact Shapley with a mean baseline on 10 integer columns of a dtype-reading pipeline."""
        from .tabular import _fits_rows

        codec = getattr(self, "codec", None)
        names = list(codec.columns) if codec is not None else list(getattr(self, "feature_names", None) or [])
        split = [names[j] if j < len(names) else j for j, dt in typed
                 if not _fits_rows(rows[:, j], dt).all()]
        warnings.warn(
            f"{type(self.estimator).__name__}: a batch of {rows.shape[0]} rows took {frames} model "
            f"calls: columns {split} hold baseline values their dtype cannot hold (e.g. the mean "
            "of an integer column), and a DataFrame column has one dtype, so each combination is "
            "its own frame (every row reaches the model typed as it would alone). A baseline "
            "those columns can hold (a Background of data rows, or rounded values) makes it one "
            "call per batch.", UserWarning, stacklevel=user_stacklevel())

    def _scores(self, arrays: list[Any], extra_np: tuple[Any, ...],
                kwargs: dict[str, Any]) -> np.ndarray:
        """The model's outputs on ``arrays`` (as :meth:`_arrays` gives them), checked."""
        out = self.fn(*arrays, *extra_np, **kwargs)
        if isinstance(out, list) and out and all(getattr(o, "ndim", 0) == 2 for o in out):
            method = "" if self.kind == "callable" else f".{self.kind}"
            raise ModelOutputError(
                f"model{method} returned a list of {len(out)} arrays (rows x classes each): a "
                "multi-output or multi-label classifier, one array per output. Explain one "
                f"output k with a function, e.g. model=lambda X: est{method}(X)[k], declaring "
                "model_output='probability' (or 'logit' for decision_function scores)."
            )
        arr = np.asarray(out)
        if arr.dtype == object and arr.size and all(
                isinstance(v, (int, float, np.integer, np.floating, np.bool_)) for v in arr.flat):
            # numbers in an object array: a function computing on a DataFrame with bool and
            # float columns (``X.to_numpy() @ w``) returns them so (aud49a)
            arr = arr.astype(np.float64)
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
            raise ModelOutputError(
                f"model returned a non-numeric array (dtype {arr.dtype}); tribute needs numbers: "
                "pass predict_proba / decision_function instead of a label-returning predict."
            )
        if self._declared is not None:
            self._check_declared(arr)
        if np.issubdtype(arr.dtype, np.floating) and (
                self.output_dtype is None or np.finfo(arr.dtype).eps > np.finfo(self.output_dtype).eps):
            # the least precise float dtype the model returned: its values carry that rounding
            # after the float64 conversion below (the flat-draws gate reads it; rev48s)
            self.output_dtype = arr.dtype
        return arr

    def class_labels(self) -> list[Any] | None:
        """The class of each output column, ``classes_`` as plain Python values, when they are
        not the column indices themselves (labels ``[0, 2, 5]``, ``[-1, 1]``, strings); None
        for ``classes_ = [0, ..., K-1]`` (or ``[False, True]``), for regressors and callables.

        An attribution's ``targets`` are output columns; these labels say which class a column
        is (``Attribution.extra["class_labels"]``, read by ``to_pandas`` and ``plot``).
        """
        if self.kind not in ("predict_proba", "decision_function"):
            return None
        try:
            classes = getattr(self.estimator, "classes_", None)
        except Exception:  # an unfitted wrapper may raise from the property
            return None
        if classes is None:
            return None
        arr = np.asarray(classes)
        if arr.ndim != 1 or arr.size == 0 or (arr.dtype.kind in "biuf"
                                              and np.array_equal(arr, np.arange(arr.shape[0]))):
            return None
        return [c.item() if isinstance(c, np.generic) else c for c in arr.tolist()]

    def predicted_classes(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """Column indices of the classes the estimator's own ``predict`` returns, or None.

        For a classifier explained through ``predict_proba`` or ``decision_function`` whose
        ``predict`` can differ from the arg-max of those scores (``SVC(probability=True)``,
        whose Platt scaling is fitted apart from its decision function; a tuned or fixed
        decision threshold such as ``TunedThresholdClassifierCV``; a class tribute does not
        know): "the predicted class" is what ``predict`` says. None (the arg-max is used, as
        ``predict`` would give) for estimators known to predict the arg-max
        (:func:`predict_may_differ`), multi-label outputs, or labels not in ``classes_``.
        """
        if self.kind not in ("predict_proba", "decision_function") or \
                not predict_may_differ(self.estimator):
            return None
        predict = getattr(self.estimator, "predict", None)
        try:
            classes = getattr(self.estimator, "classes_", None)
        except Exception:  # an unfitted wrapper may raise from the property
            return None
        if predict is None or classes is None:
            return None
        classes = np.asarray(classes)
        arrays = self._arrays(inputs)
        codec = getattr(self, "codec", None)
        if codec is not None and len(arrays) == 1:
            # a DataFrame with text columns: the rows hold category codes, which the model
            # reads through the codec's decoder (tabular.prepare_categorical); its predict was
            # called on the codes, failed, and the arg-max was explained instead (aud45a)
            arrays[0] = codec.decode(arrays[0])
        try:
            labels = np.asarray(predict(*arrays))
        except Exception as exc:  # the scores worked; keep the documented arg-max
            warnings.warn(
                f"target 'predicted': the classifier's predict failed ({type(exc).__name__}: "
                f"{exc}); the predicted class is read as the arg-max of its {self.kind} "
                "instead, which can differ from what predict would return. Pass target= "
                "explicitly.",
                UserWarning, stacklevel=user_stacklevel())
            return None
        if classes.ndim != 1 or labels.ndim != 1 or labels.shape[0] != inputs[0].shape[0]:
            return None
        column = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(classes.tolist())}
        try:
            idx = [column[lab] for lab in labels.tolist()]
        except (KeyError, TypeError):
            return None
        return torch.tensor(idx, dtype=torch.long)

    def _arrays(self, inputs: tuple[torch.Tensor, ...]) -> list[Any]:
        """The inputs as the estimator takes them (dtypes; a DataFrame with its columns)."""
        arrays: list[Any] = []
        for i, t in enumerate(inputs):
            a = t.detach().cpu().numpy()
            if self.np_dtypes is not None and a.dtype != self.np_dtypes[i]:
                a = a.astype(self.np_dtypes[i])
            arrays.append(a)
        if self.feature_names is not None and self.kind != "booster" and len(arrays) == 1 \
                and arrays[0].ndim == 2 and arrays[0].shape[1] == len(self.feature_names):
            import pandas as pd  # the estimator was fitted on a DataFrame, so pandas is there

            if self.column_dtypes:  # the user's integer / bool columns, not float64 (aud49a)
                from .tabular import typed_frame

                arrays[0] = typed_frame(arrays[0], self.feature_names, self.column_dtypes)
            else:
                arrays[0] = pd.DataFrame(arrays[0], columns=self.feature_names, copy=False)
        return arrays


#: scikit-learn classifiers whose ``predict`` is the arg-max of their ``predict_proba`` (or,
#: without it, of their ``decision_function``): checked against ``predict`` (review rev31b).
#: Others (``SVC``/``NuSVC`` with Platt scaling, ``NearestCentroid``, ``DummyClassifier``,
#: threshold classifiers, ``SGDClassifier``'s clipped modified_huber, any class not listed)
#: get their ``predict`` read.
_SKLEARN_ARGMAX = frozenset({
    "LogisticRegression", "LogisticRegressionCV", "RidgeClassifier", "RidgeClassifierCV",
    "LinearSVC", "Perceptron", "PassiveAggressiveClassifier",
    "DecisionTreeClassifier", "ExtraTreeClassifier", "RandomForestClassifier",
    "ExtraTreesClassifier", "GradientBoostingClassifier", "HistGradientBoostingClassifier",
    "AdaBoostClassifier", "BaggingClassifier", "KNeighborsClassifier",
    "RadiusNeighborsClassifier", "GaussianNB", "MultinomialNB", "BernoulliNB",
    "ComplementNB", "CategoricalNB", "MLPClassifier", "LinearDiscriminantAnalysis",
    "QuadraticDiscriminantAnalysis", "GaussianProcessClassifier", "CalibratedClassifierCV",
    "LabelPropagation", "LabelSpreading", "OneVsRestClassifier",
})
#: Packages all of whose classifiers predict the arg-max of ``predict_proba``.
_ARGMAX_PACKAGES = ("xgboost.", "lightgbm.", "catboost.")


def predict_may_differ(estimator: Any, depth: int = 0) -> bool:
    """False when ``estimator.predict`` is known to return the arg-max of its
    ``predict_proba`` / ``decision_function`` (so reading it costs a pass for nothing): the
    scikit-learn classifiers of :data:`_SKLEARN_ARGMAX`, XGBoost, LightGBM and CatBoost, and
    pipelines, searches, stacks and meta-estimators ending in or wrapping one. True for
    anything else (one more pass of the samples, never a wrong class)."""
    if depth > 8:
        return True
    steps = getattr(estimator, "steps", None)
    name = type(estimator).__name__
    module = type(estimator).__module__ + "."
    if name == "Pipeline" and isinstance(steps, list) and steps:
        return predict_may_differ(steps[-1][1], depth + 1)
    for attr, suffix in (("best_estimator_", "SearchCV"), ("final_estimator_", "StackingClassifier")):
        if name.endswith(suffix):
            found = getattr(estimator, attr, None)
            return True if found is None else predict_may_differ(found, depth + 1)
    if module.startswith(_ARGMAX_PACKAGES):
        return False
    if module.startswith("sklearn.") and name == "VotingClassifier":
        # soft voting predicts the arg-max of its (weighted) average predict_proba, whatever
        # it averages (aud50t: one predict pass more); hard voting has no scores to explain
        return getattr(estimator, "voting", None) != "soft"
    if not (module.startswith("sklearn.") and name in _SKLEARN_ARGMAX):
        return True
    wrapped = getattr(estimator, "estimator", None)  # a meta-estimator (OneVsRestClassifier...)
    return wrapped is not None and hasattr(wrapped, "fit") and predict_may_differ(wrapped, depth + 1)


def _final_estimator(estimator: Any, depth: int = 0) -> Any:
    """The estimator that computes ``estimator``'s scores: the last step of a Pipeline, a
    search's ``best_estimator_``; ``estimator`` itself otherwise."""
    if depth > 8:
        return estimator
    steps = getattr(estimator, "steps", None)
    if type(estimator).__name__ == "Pipeline" and isinstance(steps, list) and steps:
        return _final_estimator(steps[-1][1], depth + 1)
    if type(estimator).__name__.endswith("SearchCV"):
        found = getattr(estimator, "best_estimator_", None)
        if found is not None:
            return _final_estimator(found, depth + 1)
    return estimator


def is_multilabel(estimator: Any) -> bool:
    """Whether ``estimator`` (or the last step of its pipeline, its search's best) is a
    scikit-learn classifier fitted on a multi-label indicator matrix, whose output columns are
    one label each, not classes competing for one prediction: ``MLPClassifier``,
    ``RidgeClassifier``, ``OneVsRestClassifier`` (``multilabel_``) and ``ClassifierChain``;
    also an ``XGBClassifier`` / ``xgboost.Booster`` with a ``binary:*`` objective and several
    targets, and a ``CatBoostClassifier`` with a multi-label loss (:func:`_boosting_multilabel`)."""
    final = _final_estimator(estimator)
    module = type(final).__module__
    if module.startswith(("xgboost.", "catboost.")):
        return _boosting_multilabel(final)
    if not module.startswith("sklearn."):
        return False
    if type(final).__name__ == "ClassifierChain":
        return True
    try:
        if getattr(final, "multilabel_", False) is True:
            return True
    except Exception:  # an unfitted wrapper may raise from the property
        return False
    for attr in ("_label_binarizer", "label_binarizer_"):
        y_type = getattr(getattr(final, attr, None), "y_type_", None)
        if isinstance(y_type, str) and y_type.startswith("multilabel"):
            return True
    return False


def _boosting_multilabel(model: Any) -> bool:
    """An XGBoost classifier or Booster fitted on a label matrix (a ``binary:*`` objective with
    ``num_target > 1``: one independent sigmoid per label), or a CatBoost classifier with the
    ``MultiLogloss`` / ``MultiCrossEntropy`` loss. aud51t: an ``XGBClassifier`` fitted on 3
    labels has ``classes_ = [0, 1]`` and returns 3 label probabilities (rows summing to 1.88),
    and ``target=None`` explained the most probable label only, silently."""
    try:
        if type(model).__module__.startswith("catboost."):
            params = model.get_params()
            loss = params.get("loss_function") or params.get("objective")
            return str(loss).split(":")[0] in ("MultiLogloss", "MultiCrossEntropy")
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        learner = json.loads(booster.save_config())["learner"]
        return str(learner["objective"]["name"]).startswith("binary:") \
            and int(learner["learner_model_param"].get("num_target", 1)) > 1
    except Exception:  # unfitted, or a configuration without these fields
        return False


def _refuse_one_vs_one(model: Any) -> None:
    """Refuse a classifier of three or more classes whose ``decision_function`` is one-vs-one
    (``SVC``/``NuSVC(decision_function_shape="ovo")``): its ``K (K - 1) / 2`` columns score
    pairs of classes, not classes, so ``target=k`` would explain the pair in column ``k``
    (with three classes there are as many columns as classes: nothing else would tell)."""
    final = _final_estimator(model)
    if getattr(final, "decision_function_shape", None) != "ovo":
        return
    try:
        n_classes = len(getattr(final, "classes_", ()))
    except Exception:  # an unfitted wrapper may raise from the property
        return
    if n_classes > 2:
        raise InputError(
            f"model: {type(final).__name__} with decision_function_shape='ovo' and {n_classes} "
            f"classes returns {n_classes * (n_classes - 1) // 2} one-vs-one pair scores, not one "
            "score per class, so a target class cannot be read from them. Set "
            f"`{type(final).__name__.lower()}.decision_function_shape = 'ovr'` (no refit "
            "needed: one column per class), or explain calibrated probabilities "
            "(CalibratedClassifierCV)."
        )


def _contradicted(kind: str, model_output: str | None) -> str | None:
    """The declared ``model_output`` when the estimator method tribute calls says otherwise by
    its contract (its outputs are then checked on every call, :meth:`NumpyModel._check_declared`):
    ``"logit"`` for ``predict_proba`` (probabilities), ``"probability"`` for
    ``decision_function`` (scores); None otherwise (a declaration is taken as given)."""
    if (kind, model_output) in (("predict_proba", "logit"), ("decision_function", "probability")):
        return model_output
    return None


def _check_kind(model_output: str) -> None:
    if model_output not in MODEL_OUTPUTS:
        raise InputError(
            f"model_output={model_output!r} is not one of {MODEL_OUTPUTS}; say what the model "
            "returns: 'logit' (scores/logits), 'probability' (e.g. predict_proba) or 'raw' "
            "(regression values)."
        )


def _estimator_type(model: Any) -> str | None:
    """``"classifier"``, ``"regressor"`` or None, without importing scikit-learn."""
    base = sys.modules.get("sklearn.base")
    if base is not None and hasattr(model, "fit"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if base.is_classifier(model):
                    return "classifier"
                if base.is_regressor(model):
                    return "regressor"
        except Exception:  # objects sklearn cannot read tags from: fall back to the attribute
            pass
    kind = getattr(model, "_estimator_type", None)
    return kind if kind in ("classifier", "regressor") else None


def _known_binary(model: Any, kind: str) -> bool:
    """``model`` is known to be a binary classifier (see the module docstring)."""
    if kind == "booster":
        return _booster_objective(model) in ("binary", "xgb-binary")
    if kind not in ("predict_proba", "decision_function"):
        return False
    try:
        classes = getattr(model, "classes_", None)
        return classes is not None and len(classes) == 2
    except Exception:  # an unfitted wrapper may raise from the property
        return False


def _booster_objective(booster: Any) -> str:
    """``"xgb-binary"`` for an ``xgboost.Booster`` with a ``binary:*`` objective, else the
    objective's name (``lightgbm.Booster``: e.g. ``"binary"``; ``""`` when unknown)."""
    mod = type(booster).__module__
    try:
        if mod.startswith("xgboost"):
            name = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
            return "xgb-binary" if name.startswith("binary:") else name
        return _lightgbm_objective(booster)[0]
    except (KeyError, TypeError, ValueError, AttributeError):
        return ""


#: LightGBM's names (and aliases) of its softmax and one-vs-all multiclass objectives.
_LGB_SOFTMAX = ("multiclass", "softmax")
_LGB_OVA = ("multiclassova", "multiclass_ova", "ova", "ovr")


def _lightgbm_objective(booster: Any) -> tuple[str, float]:
    """``(objective name, sigmoid)`` of a ``lightgbm.Booster``: the canonical name its model
    dump records (``"binary sigmoid:2"`` -> ``("binary", 2.0)``), else its training
    parameters' (which may be an alias); ``sigmoid`` is 1.0 when not recorded."""
    objective = ""
    with contextlib.suppress(Exception):  # a Booster without a model dump: the parameters
        objective = str(booster.dump_model(num_iteration=1).get("objective", ""))
    params = getattr(booster, "params", None) or {}
    if not objective:
        objective = str(params.get("objective") or "")
    words = objective.split()
    sigmoid = float(params.get("sigmoid", 1.0) or 1.0)
    for word in words[1:]:
        key, _, value = word.partition(":")
        if key == "sigmoid":
            with contextlib.suppress(ValueError):
                sigmoid = float(value)
    return (words[0] if words else ""), sigmoid


def _booster_feature_names(booster: Any) -> list[str] | None:
    """The column names a Booster was trained with, or None (trained on an array: XGBoost has
    none, LightGBM makes up ``Column_0, Column_1, ...``)."""
    if type(booster).__module__.startswith("xgboost"):
        names = booster.feature_names
        return [str(n) for n in names] if names else None
    try:
        names = booster.feature_name()
    except Exception:
        return None
    if not names or [str(n) for n in names] == [f"Column_{i}" for i in range(len(names))]:
        return None
    return [str(n) for n in names]


def _numpy_callable(model: Any) -> tuple[Callable[..., Any], str, str]:
    """``(function to call, which method it is, output kind)`` for an estimator or callable."""
    cls = type(model)
    if cls.__name__ == "Booster" and cls.__module__.startswith("xgboost"):
        return _xgboost_booster(model)
    if cls.__name__ == "Booster" and cls.__module__.startswith("lightgbm"):
        return _lightgbm_booster(model)
    margin = _margin_of_score_classifier(model)
    if margin is not None:
        return margin, "decision_function", "logit"
    est = _estimator_type(model)
    if est == "regressor" and callable(getattr(model, "predict", None)):
        return model.predict, "predict", "raw"
    for name, kind in (("predict_proba", "probability"), ("decision_function", "logit"),
                       ("predict", "raw")):
        fn = getattr(model, name, None)
        if callable(fn):
            return fn, name, kind
    if callable(model):
        return model, "callable", "logit"
    raise InputError(
        f"model of type {type(model).__name__} is neither a torch.nn.Module nor callable; pass a "
        "module, an estimator with predict_proba/decision_function/predict, or a function."
    )


def _score_classifier_option(model: Any) -> dict[str, bool] | None:
    """The ``predict`` option giving the scores of an XGBoost/LightGBM scikit-learn classifier
    (or a Pipeline ending in one) whose ``predict_proba`` does not return probabilities, else
    None: XGBoost's ``binary:logitraw`` returns ``[1 - s, s]`` for its margin ``s`` (read as
    probabilities, a softmax of them is ``sigmoid(2 s - 1)``, not the model's
    ``sigmoid(s)``), LightGBM with a custom (callable) objective its raw scores."""
    final = _final_estimator(model)
    mod = type(final).__module__
    if not (callable(getattr(final, "predict_proba", None))
            and callable(getattr(model, "predict", None))):
        return None
    if mod.startswith("xgboost"):
        try:
            name = json.loads(final.get_booster().save_config())["learner"]["objective"]["name"]
        except Exception:  # unfitted, or not a booster-backed wrapper
            return None
        return {"output_margin": True} if name == "binary:logitraw" else None
    if mod.startswith("lightgbm") and callable(getattr(final, "objective", None)):
        return {"raw_score": True}
    return None


def _margin_of_score_classifier(model: Any) -> Callable[..., Any] | None:
    """``predict`` returning the margins (one column for a binary model, the positive class's)
    of a classifier whose ``predict_proba`` returns scores (:func:`_score_classifier_option`),
    else None."""
    option = _score_classifier_option(model)
    if option is None:
        return None

    def margin(x: Any, *args: Any, **kwargs: Any) -> Any:
        return _predict_final(model, x, {**kwargs, **option}, *args)

    return margin


def _predict_final(est: Any, x: Any, option: dict[str, Any], *args: Any, depth: int = 0) -> Any:
    """``predict(x, **option)`` of ``est``'s final estimator (:func:`_final_estimator`), ``x``
    transformed by the Pipeline steps before it: a ``SearchCV``'s ``predict`` takes no
    options, and a Pipeline with scikit-learn's metadata routing on refuses an unrequested
    ``output_margin``, so the option goes to the final estimator itself."""
    if depth <= 8:
        steps = getattr(est, "steps", None)
        if type(est).__name__ == "Pipeline" and isinstance(steps, list) and steps:
            if len(steps) > 1:
                x = est[:-1].transform(x)
            return _predict_final(steps[-1][1], x, option, *args, depth=depth + 1)
        if type(est).__name__.endswith("SearchCV"):
            found = getattr(est, "best_estimator_", None)
            if found is not None:
                return _predict_final(found, x, option, *args, depth=depth + 1)
    return est.predict(x, *args, **option)


def _xgboost_booster(booster: Any) -> tuple[Callable[..., Any], str, str]:
    """Call an ``xgboost.Booster`` through a ``DMatrix``: margins for classification objectives."""
    xgb = sys.modules["xgboost"]
    try:
        objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"could not read the objective of the xgboost.Booster ({exc}); wrap the model in a "
            "function returning what to explain and pass model_output='logit'|'probability'|'raw'."
        ) from exc
    margin = objective.startswith(("binary:", "multi:"))
    names = booster.feature_names

    def predict(x: np.ndarray) -> np.ndarray:
        dm = xgb.DMatrix(x, feature_names=names if names and x.ndim == 2
                         and x.shape[1] == len(names) else None)
        return np.asarray(booster.predict(dm, output_margin=margin))

    return predict, "booster", "logit" if margin else "raw"


def _lightgbm_booster(booster: Any) -> tuple[Callable[..., Any], str, str]:
    """A ``lightgbm.Booster``: raw scores (its logits) for the binary (with the default
    ``sigmoid=1``), softmax multiclass and cross-entropy objectives, whose probabilities are the
    sigmoid / softmax of them. One-vs-all multiclass objectives (each class's probability is
    the sigmoid of its own score; the rows do not sum to one) and a binary objective with
    another ``sigmoid`` are called for their probabilities instead (``"probability"``): a
    softmax, or a plain sigmoid, of their raw scores is not what the model predicts."""
    name, sigmoid = _lightgbm_objective(booster)
    if name in _LGB_OVA or (name == "binary" and sigmoid != 1.0):
        margin, kind = False, "probability"
    elif name in ("binary", "cross_entropy", "xentropy", *_LGB_SOFTMAX):
        margin, kind = True, "logit"
    else:
        margin, kind = False, "raw"

    scale = 1.0
    if margin and _lightgbm_averages(booster):
        # boosting="rf" predicts from the average of its trees' scores, but raw_score=True
        # returns their sum (n_iterations x the logit its probabilities are computed from)
        n_iter = int(getattr(booster, "best_iteration", 0) or 0) or int(booster.current_iteration())
        scale = 1.0 / max(n_iter, 1)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(x, raw_score=margin)) * scale

    return predict, "booster", kind


def _lightgbm_averages(booster: Any) -> bool:
    """Whether a ``lightgbm.Booster`` averages its trees (``boosting="rf"``)."""
    with contextlib.suppress(Exception):
        return bool(booster.dump_model(num_iteration=1).get("average_output"))
    return False


def as_model(model: Any, framework: str, model_output: str | None = None) -> ModelAdapter:
    """Wrap ``model`` for inputs of ``framework`` (``"torch"`` or ``"numpy"``).

    Args:
        model: a ``torch.nn.Module``, an estimator, an ``xgboost.Booster``, a callable, or an
            adapter (returned as it is, or re-declared when ``model_output`` is given).
        framework: ``"torch"`` or ``"numpy"``, the framework of the inputs.
        model_output: what the model returns (``"logit"``, ``"probability"``, ``"raw"``);
            default=None (detected, see the module docstring).
    """
    if isinstance(model, ModelAdapter):
        return model if model_output is None else model.with_output_kind(model_output)
    if isinstance(model, torch.nn.Module):
        return TorchModel(model, model_output=model_output)
    if framework == "torch" and callable(model) and not any(
        hasattr(model, n) for n in ("predict_proba", "decision_function", "predict")
    ):
        return TorchModel(model, model_output=model_output)
    return NumpyModel(model, model_output=model_output)


#: the methods behind ``Module.parameters()``; a module overriding one keeps its own listing
_PARAMETER_WALK = ("parameters", "named_parameters", "_named_members", "modules", "named_modules")


def _unique_parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    """``list(module.parameters())``: every parameter once (a tied one at its first place), in
    the same order, from one walk over the modules and their own parameter dicts (as the
    session reads them), without ``named_parameters``' generators and its set of tensors hashed
    by ``Tensor.__hash__`` (issue #9, eng43: 6.4 -> 5.0 us on a 3-layer MLP, 138 -> 104 us per
    call on all-MiniLM-L6's 121 modules)."""
    cls, base, attrs = type(module), torch.nn.Module, module.__dict__
    if any(getattr(cls, n) is not getattr(base, n) or n in attrs for n in _PARAMETER_WALK):
        return list(module.parameters())  # a module that lists its parameters its own way
    seen: set[int] = set()
    out: list[torch.Tensor] = []
    for mod in _all_modules(module):
        for p in mod._parameters.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def _tensors_of(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


def _module_device(module: torch.nn.Module) -> torch.device:
    for t in _tensors_of(module):
        return t.device
    return torch.device("cpu")


def _module_dtype(module: torch.nn.Module) -> torch.dtype | None:
    for t in _tensors_of(module):
        if t.dtype.is_floating_point:
            return t.dtype
    return None


def as_output_tensor(out: Any) -> torch.Tensor:
    """A torch model's output as one tensor: the tensor itself, a ``logits`` field (a dict or a
    Hugging Face ``ModelOutput``), the first tensor of a tuple (warned when it holds several) or
    a numpy array."""
    if isinstance(out, torch.Tensor):
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        if sum(isinstance(o, torch.Tensor) for o in out) > 1:
            # e.g. (hidden, logits): explaining hidden unit k for target=k, silently, surprised
            # users (audit); the warnings module shows it once per call site
            warnings.warn(
                f"the model returned a {type(out).__name__} of {len(out)} outputs; tribute "
                "explains the first (shape "
                f"{tuple(out[0].shape)}). If another one is the output to explain, wrap the model "
                "to return it (e.g. lambda x: model(x)[1]).", UserWarning, stacklevel=user_stacklevel())
        return out[0]
    if isinstance(out, np.ndarray):
        return torch.from_numpy(out)
    raise ModelOutputError(
        f"model returned {type(out).__name__}; tribute needs a tensor (or a tuple whose first "
        "element is one, an object with .logits, or a mapping with a 'logits' tensor). Wrap the "
        "model to return the output to explain (e.g. lambda x: model(x)['scores'])."
    )


def load_weights(module: torch.nn.Module, path: str | os.PathLike[str], strict: bool = True) -> None:
    """Load a ``.safetensors`` file into ``module`` (never unpickles).

    Raises:
        WeightsFormatError: the file is not safetensors (e.g. a ``torch.save`` pickle).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights file {str(p)!r} does not exist.")
    with open(p, "rb") as fh:
        head = fh.read(16)
    kind = _sniff(head)
    if kind != "safetensors":
        raise WeightsFormatError(
            f"weights file {str(p)!r} is not safetensors (it looks like {kind}). tribute never "
            "unpickles files; convert it once, in a trusted environment, with "
            "`safetensors.torch.save_file(model.state_dict(), 'model.safetensors')`."
        )
    from safetensors.torch import load_file

    try:
        state = load_file(str(p), device=str(_module_device(module)))
    except Exception as exc:  # safetensors raises its own error type
        raise WeightsFormatError(f"weights file {str(p)!r} is a corrupt safetensors file: {exc}") from exc
    own = module.state_dict()
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if wrong:  # checked before loading, so the module is left untouched
        k, got, want = wrong[0]
        more = f" ({len(wrong) - 1} more tensors differ)" if len(wrong) > 1 else ""
        raise WeightsFormatError(
            f"weights file {str(p)!r} does not match the model: tensor {k!r} is {list(got)} in "
            f"the file but {list(want)} in the model{more}. Check that the model is built with "
            "the same sizes the weights were saved from."
        )
    missing, unexpected = module.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise WeightsFormatError(
            f"weights file {str(p)!r} does not match the model: missing keys {list(missing)[:5]}, "
            f"unexpected keys {list(unexpected)[:5]}. Check that the factory builds the same "
            "architecture the weights were saved from."
        )


def _sniff(head: bytes) -> str:
    if head[:2] == b"PK":
        return "a zip archive (torch.save's default format, a pickle inside)"
    if head[:1] == b"\x80":
        return "a Python pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head[:6] == b"\x93NUMPY":
        return "a numpy .npy file"
    return "an unknown format"
