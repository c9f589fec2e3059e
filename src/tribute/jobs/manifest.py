"""The job manifest: what a job computes, so a resumed job can prove it is the same job.

``manifest.json`` holds the settings (method, its parameters, seed, shard size, every explain
argument in a canonical JSON form — arrays by sha256, shape and dtype), the fingerprints of the
model and the data, and the tribute version. Backends and worker counts are not part of it:
they decide where shards run, never what they contain.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import hashlib
import json
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._io import atomic_write

__all__ = ["FORMAT", "MANIFEST", "canonical", "code_digest", "compare_manifests", "read_manifest",
           "write_manifest"]

FORMAT = "tribute.job/1"
MANIFEST = "manifest.json"

# Keys compared on resume, in the order differences are reported.
_COMPARED = ("format", "tribute_version", "settings", "model", "data")


def canonical(obj: Any, *, _function: Callable[[Any], str] | None = None) -> Any:
    """A JSON-able, address-free description of an explain argument (arrays by content hash).

    ``_function`` (internal): how a Python function inside ``obj`` is digested; by default a
    walk of its own (:func:`_function_digest`). A function's digest passes its own walk's, so
    a function met again inside a global it reads (a registry list or dict of functions
    calling each other) counts as itself instead of starting a fresh walk of its own: that
    walk met the registry again, without end (aud44j: over 120 s at job start)."""
    import torch

    def again(v: Any) -> Any:
        return canonical(v, _function=_function)

    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else repr(obj)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return again(obj.item())
    if isinstance(obj, enum.Enum):
        # by its class, name and value (small45: an Enum read by the target counted by its
        # type's name only, so ``MODE = Color.R`` resumed a job started with ``Color.G``)
        member = {"enum": f"{type(obj).__module__}.{type(obj).__qualname__}.{obj.name}"}
        try:
            return {**member, "value": again(obj.value)}
        except InputError:
            # a value canonical() cannot record (an object): the member by its name (rev45s:
            # the whole member fell back to its attributes and ``ObjE.B`` resumed ``ObjE.A``)
            return member
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.dtype in (torch.bfloat16,) or str(t.dtype).startswith("torch.float8"):
            # no numpy dtype: ``.numpy()`` raised TypeError and a bfloat16 weight the target
            # read counted by its type's name only, so another one resumed silently (rev44j)
            raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            name = str(t.dtype).replace("torch.", "")
            digest = hashlib.sha256(f"{name}|{tuple(t.shape)}|".encode() + raw).hexdigest()
            return {"array": {"sha256": digest, "shape": list(t.shape), "dtype": name}}
        obj = t.numpy()
    if type(obj).__module__.startswith("pandas") and type(obj).__name__ in ("DataFrame", "Series"):
        return _canonical_frame(obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        # an object array's bytes are its items' addresses, new in every process: a resume
        # of a job whose target read one (``classes_`` of string labels) was refused
        try:
            items = json.dumps(again(obj.tolist()), sort_keys=True).encode()
        except (InputError, TypeError, ValueError, RecursionError):
            items = None
        if items is not None:
            digest = hashlib.sha256(f"|O|{obj.shape}|".encode() + items).hexdigest()
            return {"array": {"sha256": digest, "shape": list(obj.shape), "dtype": "object"}}
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        digest = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode() + arr.tobytes()).hexdigest()
        return {"array": {"sha256": digest, "shape": list(arr.shape), "dtype": str(arr.dtype)}}
    if isinstance(obj, dict):
        bad = next((k for k in obj if not _plain_key(k)), None)
        if bad is not None:
            # str() of a function or of an object with the default repr holds its address, new
            # in every process: a target reading ``{fa: 1.0, fb: 2.0}`` got another digest in
            # each one, and its resume was refused (rev44j). The digest walk reads such a dict
            # item by item instead.
            raise InputError(
                f"a dict keyed by a {type(bad).__name__} cannot be recorded in the job manifest "
                "(its keys have no address-free text); use strings or numbers as keys.")
        return {str(k): again(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [again(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: again(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"type": f"{type(obj).__module__}.{type(obj).__qualname__}", "fields": fields}
    if callable(obj) and _attr(obj, "__qualname__") is not None:
        out: dict[str, Any] = {"callable": f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"}
        if _attr(obj, "__code__") is not None:
            # a name says nothing of what a function computes: a resumed job whose
            # ``target=lambda y: y.argmin(1)`` replaced ``y.argmax(1)`` (both
            # '__main__.<lambda>') was accepted and mixed shards explaining other classes
            try:
                out["code_sha256"] = _function_digest(obj) if _function is None else _function(obj)
            except (AttributeError, TypeError):  # a __code__ that is no code object: name only
                pass
        return out
    raise InputError(
        f"a job setting of type {type(obj).__name__} ({_safe_repr(obj)}) cannot be recorded in the job "
        "manifest; pass numbers, strings, arrays, lists or dataclasses."
    )


def _attr(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, also None when the object's own ``__getattr__`` raises
    something else than AttributeError (a callable instance whose ``__getattr__`` raises
    KeyError made the job start fail with it, rev44j)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _plain_key(k: Any) -> bool:
    """Whether a dict key's ``str`` is address-free: a string, number, None, or a tuple of them."""
    if isinstance(k, (str, int, float, np.integer, np.floating)) or k is None:
        return True
    return isinstance(k, tuple) and all(_plain_key(x) for x in k)


def _safe_repr(obj: Any) -> str:
    """``repr(obj)`` cut to 80 characters, or the type's name when the user's ``__repr__`` raises
    (rev44j: a list holding such an object in a global the target read made the job start
    fail with that object's own error)."""
    try:
        return f"{obj!r:.80}"
    except Exception:
        return f"<{type(obj).__qualname__}>"


#: how many functions deep :func:`_function_digest` follows the functions a function calls
_MAX_FN_DEPTH = 6
#: how many containers and objects deep one value is walked (``cfg.a.b.c``, a list of configs)
_MAX_NEST = 16


@functools.lru_cache(maxsize=1)
def _library_paths() -> tuple[str, ...]:
    """Folders of installed code (the standard library, site-packages): functions and modules
    from there are the installed version's, recorded by their name, never by their code."""
    import site
    import sysconfig

    paths = {sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site module
        pass
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def _is_user_code(obj: Any) -> bool:
    """Whether a module (or a function's module) is the user's own code, not an installed library:
    not built in, not in the standard library or site-packages. ``__main__`` and a notebook's
    cells are the user's."""
    mod = obj if isinstance(obj, types.ModuleType) else sys.modules.get(getattr(obj, "__module__", None) or "")
    if mod is None:
        return isinstance(obj, types.FunctionType)  # exec'd code: no module to tell it by
    name = mod.__name__.split(".")[0]
    if name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return False
    file = getattr(mod, "__file__", None)
    if not file:
        return name == "__main__"
    return not os.path.realpath(file).startswith(_library_paths())


#: byte code that names an attribute (``y.mean``, ``cfg.cols``), not a global
_ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR", "LOAD_SUPER_ATTR"})


def _global_reads(c: Any) -> set[str]:
    """The names of ``co_names`` a code object (and the code nested in it) uses other than as an
    attribute name: the globals it reads (also imports, stores; when in doubt a name counts).
    ``co_names`` mixes both, so ``y.mean(1)`` recorded an unrelated global named ``mean`` and
    a resumed job was refused when it changed (aud44j)."""
    names = {str(i.argval) for i in dis.get_instructions(c)
             if i.opcode in dis.hasname and i.opname not in _ATTRIBUTE_OPS}
    for k in c.co_consts:
        if hasattr(k, "co_code"):
            names |= _global_reads(k)
    return names


def _walk_key(x: Any, _depth: int = 0) -> str:
    """A sort key for the items of a set (or a dict's keys) that depends on what they are, never
    on hash order or addresses: a walk follows them in this order, so that the digest of
    functions calling each other through a set does not depend on the set's order (aud44j:
    the digest of one target differed between two processes with the set's order)."""
    code = _attr(x, "__code__") if callable(x) else None
    if code is not None and hasattr(code, "co_code"):
        body = hashlib.sha256(code.co_code + repr(code.co_names).encode()).hexdigest()
        return f"fn:{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', '?')}:{body}"
    if isinstance(x, (tuple, frozenset)) and _depth < 8:
        parts = [_walk_key(i, _depth + 1) for i in x]
        return f"{type(x).__name__}({', '.join(sorted(parts) if isinstance(x, frozenset) else parts)})"
    if isinstance(x, (str, bytes, bool, int, float)) or x is None:
        return f"{type(x).__name__}:{x!r}"
    return f"<{type(x).__module__}.{type(x).__qualname__}>"


def _user_call(v: Any) -> Any:
    """``v.__call__`` bound to ``v`` for an instance of a class of the user's own code whose
    ``__call__`` is a Python function; else None."""
    if isinstance(v, (type, types.FunctionType, types.MethodType)):
        return None
    call = next((vars(c)["__call__"] for c in type(v).__mro__ if "__call__" in vars(c)), None)
    if not isinstance(call, types.FunctionType) or not _is_user_code(call):
        return None
    return types.MethodType(call, v)


def _plain_object(g: Any) -> bool:
    """Whether ``g`` is an object whose attributes a function reads as settings (a config
    object, ``types.SimpleNamespace``): not None, a class, a callable, a tensor or an array."""
    import torch

    return g is not None and not isinstance(g, type) and not callable(g) and _own_dict(g) is not None \
        and not isinstance(g, (torch.Tensor, np.ndarray))


def _own_dict(g: Any) -> dict[str, Any] | None:
    """``vars(g)`` read without the object's ``__getattr__`` (an object with ``__slots__`` and a
    ``__getattr__`` that raises: ``hasattr(g, "__dict__")`` ran it and the job start failed
    with its error, rev44j); None when it has none."""
    try:
        d = object.__getattribute__(g, "__dict__")
    except AttributeError:
        return None
    return d if isinstance(d, dict) else None


def _code_names(c: Any) -> list[str]:
    """The names a code object reads as globals or attributes, nested code's too (lambdas and,
    from Python 3.11 on, comprehensions: ``[y[:, c] * SCALE for c in ...]``), in order."""
    names = list(c.co_names)
    for k in c.co_consts:
        if hasattr(k, "co_code"):
            names += [n for n in _code_names(k) if n not in names]
    return names


def _function_digest(fn: Any, _seen: frozenset[int] = frozenset(), _depth: int = 0,
                     _memo: dict[tuple[int, int], tuple[Any, str]] | None = None) -> str:
    """sha256 of what a Python function computes: its byte code, constants and names (nested
    functions' too; not line numbers, so moving it in its file keeps the digest), default
    arguments, the values its closure holds and the plain values (numbers, strings, arrays) of
    the globals it names. A value that cannot be recorded counts by its type's name.

    Also what a resumed job could otherwise not see change (rev42f): a global ``dict`` (or
    ``set``) the function reads, the code of the user's own functions it calls (recursively, to
    ``_MAX_FN_DEPTH`` calls deep), and the attributes it reads from the user's own modules or
    from a global object (``cfg.COLS``, ``mod.COLS``). Installed libraries (``np.argmax``) are
    not followed. Everything is hashed by value, never by address or hash order, so the digest
    is the same in every process.

    And (aud44j) the globals read in nested code (a generator, an inner lambda), the attributes
    read from a bound method's object and from objects in the closure or defaults, and a torch
    module (class and weights) or pandas table the function reads. Names used only as
    attribute names (``y.mean``) are not looked up among the globals.

    Each function is digested once per depth in one call (rev43s: without it, helpers calling
    helpers were digested once per call path, 8 calls each over 6 levels took 83 s); for call
    graphs without cycles that is the very digest a fresh walk gives."""
    import torch

    memo: dict[tuple[int, int], tuple[Any, str]] = {} if _memo is None else _memo
    hit = memo.get((id(fn), _depth))
    if hit is not None and hit[0] is fn:
        return hit[1]
    h = hashlib.sha256()
    seen = _seen | {id(fn)}
    inside: set[int] = set()  # containers and objects being walked (a list holding itself)
    walked: dict[int, tuple[Any, int]] = {}  # plain objects read in this walk: their visit number
    names = _code_names(fn.__code__)

    def function(v: Any) -> str:  # a function met in a value: digested in this walk
        if id(v) in seen:
            return "<self>"
        if _depth >= _MAX_FN_DEPTH:
            return f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', '?')}"
        return _function_digest(v, seen, _depth + 1, memo)

    def value(v: Any) -> str:
        if id(v) in seen:
            return "<self>"
        if callable(v) and _attr(v, "__code__") is not None:
            return "fn:" + function(v)
        if isinstance(v, (set, frozenset)):
            # each item read from the objects walked before the set (rev45s): a set's order
            # follows the objects' hashes, which must not decide which item meets a shared
            # object first (and so which one reads it by number)
            texts = []
            for x in sorted(v, key=_walk_key):
                before = dict(walked)
                texts.append(value(x))
                walked.clear()
                walked.update(before)
            return "set(" + ", ".join(sorted(texts)) + ")"
        if isinstance(v, functools.partial):
            return f"partial({value(v.func)}; {value(v.args)}; {value(v.keywords)})"
        if isinstance(v, torch.nn.Module):  # a module it calls (``HEAD(y)``): class and weights
            from .model import fingerprint_model

            # once per walk (rev44j: three helpers calling one 50M-parameter module hashed its
            # 200 MB three times, 1.8 s at job start)
            got = memo.get((id(v), -1))
            if got is None or got[0] is not v:
                got = (v, f"module:{fingerprint_model(v)}")
                memo[(id(v), -1)] = got
            return got[1]
        call = _user_call(v)
        if call is not None:
            # a callable instance of the user's class (``PICK = Picker(1)``, ``PICK(y)``): its
            # ``__call__`` and what it reads from the object, as a bound-method target; it
            # counted by its type's name only and ``Picker(0)`` resumed silently (rev44j)
            return "call:" + function(call)
        try:
            return json.dumps(canonical(v, _function=function), sort_keys=True)
        except (InputError, TypeError, ValueError, RecursionError):
            pass
        if _plain_object(v) and id(v) not in inside and len(inside) < _MAX_NEST:
            # a config object met inside a list, dict or tuple (``CFGS[0].col``) or as another
            # object's attribute (``cfg.sub.col``): the attributes the code reads, as for a
            # global config object; both counted by the type's name only and a changed ``col``
            # resumed silently (small45)
            first = walked.get(id(v))
            if first is not None and first[0] is v:
                # met again: by the number of its first visit, so each object is read once
                # (rev45s: objects reaching each other through several paths, 30 nodes with 6
                # neighbours each, were walked once per path: job start hung over 120 s)
                return f"obj@{first[1]}"
            walked[id(v)] = (v, len(walked))
            inside.add(id(v))
            try:
                return f"obj:{type(v).__module__}.{type(v).__qualname__}(" \
                    + ", ".join(read_attributes(_own_dict(v) or {})) + ")"
            finally:
                inside.discard(id(v))
        if isinstance(v, (dict, list, tuple)) and id(v) not in inside:
            # a container holding a function or an object canonical() cannot record: item by
            # item, so a changed number beside them still counts
            inside.add(id(v))
            try:
                if isinstance(v, dict):
                    items = sorted(v.items(), key=lambda kv: _walk_key(kv[0]))
                    return "{" + ", ".join(sorted(f"{value(k)}: {value(x)}" for k, x in items)) + "}"
                return f"{type(v).__name__}(" + ", ".join(value(x) for x in v) + ")"
            finally:
                inside.discard(id(v))
        return f"<{type(v).__module__}.{type(v).__qualname__}>"

    def read_attributes(attrs: Any) -> list[str]:  # ``attr=value`` of those the code names
        out = []
        for attr in names:
            if attr in attrs and not isinstance(attrs[attr], (types.ModuleType, type)):
                a = attrs[attr]
                # a partial by its function, as a global partial (rev45s: ``cfg.fn =
                # partial(scale, k=2)`` was skipped as library code, so ``k=3`` resumed)
                if callable(a) and not _is_user_code(a.func if isinstance(a, functools.partial) else a):
                    continue
                out.append(f"{attr}={value(a)}")
        return out

    def code(c: Any) -> None:
        h.update(c.co_code)
        h.update(repr((c.co_names, c.co_varnames, c.co_freevars, c.co_argcount,
                       c.co_kwonlyargcount)).encode())
        for k in c.co_consts:
            if hasattr(k, "co_code"):
                code(k)
            else:
                h.update(f"{const(k)}|".encode())

    def const(k: Any) -> str:  # a frozenset's repr follows string hashing, random per process
        if isinstance(k, (tuple, frozenset)):
            parts = [const(x) for x in k]
            return f"{type(k).__name__}({', '.join(sorted(parts) if isinstance(k, frozenset) else parts)})"
        return f"{type(k).__name__}:{k!r}"

    code(fn.__code__)
    h.update(value(getattr(fn, "__defaults__", None)).encode())
    h.update(value(getattr(fn, "__kwdefaults__", None)).encode())
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            h.update(value(cell.cell_contents).encode())
        except ValueError:  # an empty cell
            h.update(b"<empty>")
    globs = getattr(fn, "__globals__", {})

    def attributes(owner: str, attrs: Any) -> None:  # the attributes of an object it reads
        for text in read_attributes(attrs):
            h.update(f"{owner}.{text}".encode())

    # the globals it reads, in nested code too (``sum(y[:, c] * W[c] for c in ...)``: a
    # changed ``W`` read in the generator resumed silently, aud44j), never a global that is only
    # named like an attribute it reads (``y.mean``)
    read = _global_reads(fn.__code__)
    for name in names:
        if name not in read:
            continue
        g = globs.get(name)
        # a tuple or list of columns and a torch tensor were not recorded: ``y[:, COLS]`` with
        # another ``COLS`` resumed silently
        if isinstance(g, (bool, int, float, str, tuple, list, np.ndarray, np.generic, torch.Tensor, enum.Enum)):
            h.update(f"{name}=".encode() + value(g).encode())
        elif isinstance(g, torch.nn.Module) or (type(g).__module__.startswith("pandas")
                                                and type(g).__name__ in ("DataFrame", "Series")) \
                or _user_call(g) is not None:
            # a module it calls and a pandas table or Series of weights were unrecorded (aud44j)
            h.update(f"{name}=".encode() + value(g).encode())
    # what rev42f found unrecorded (recorded after the above, so a function reading none of it
    # keeps the digest it had): dicts and sets, the user's functions, attributes read from the
    # user's modules and from global objects
    for name in names:
        if name not in read:
            continue
        g = globs.get(name)
        if isinstance(g, (dict, set, frozenset)) or (
                isinstance(g, (types.FunctionType, functools.partial)) and _is_user_code(
                    g.func if isinstance(g, functools.partial) else g)):
            h.update(f"{name}=".encode() + value(g).encode())
            continue
        if isinstance(g, types.ModuleType):
            if not _is_user_code(g):
                continue
            attrs = vars(g)
        elif _plain_object(g):
            attrs = _own_dict(g) or {}  # a global config object: ``CFG.cols``
        else:
            continue
        attributes(name, attrs)
    # a bound method (``target=picker.pick``): what it reads from its object (``self.col``);
    # ``Picker(0).pick`` resumed a job of ``Picker(2).pick``, mixing shards of two outputs (aud44j)
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType) \
            and isinstance(getattr(owner, "__dict__", None), (dict, types.MappingProxyType)):
        attributes("self", vars(owner))
        if isinstance(owner, torch.nn.Module):
            # its parameters, buffers and submodules are not in ``vars``: ``m.pick`` reading
            # ``self.w`` (a Parameter) resumed silently with other weights (rev44j)
            h.update(b"self=" + value(owner).encode())
    # likewise an object in its closure or defaults (``lambda y: y[:, cfg.col]`` made by a
    # function of ``cfg``), recorded above by its type's name only (aud44j)
    held: list[tuple[str, Any]] = []
    for name, cell in zip(fn.__code__.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            held.append((name, cell.cell_contents))
        except ValueError:  # an empty cell
            pass
    held += [(f"default{i}", d) for i, d in enumerate(getattr(fn, "__defaults__", None) or ())]
    held += sorted((getattr(fn, "__kwdefaults__", None) or {}).items())
    for name, obj in held:
        if _plain_object(obj):
            attributes(name, _own_dict(obj) or {})
    out = h.hexdigest()
    memo[(id(fn), _depth)] = (fn, out)  # keeps fn alive: its id is not reused within the call
    return out


def _canonical_frame(obj: Any) -> dict[str, Any]:
    """A pandas DataFrame/Series (e.g. ``tribute.Background(df)``, a baseline row) by its
    columns, dtypes and a content hash of its rows (pandas' own row hash, index included:
    object and string columns have no address-free bytes of their own)."""
    import pandas as pd

    frame = obj.to_frame() if type(obj).__name__ == "Series" else obj
    rows = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return {"frame": {"columns": [str(c) for c in frame.columns],
                      "dtypes": [str(d) for d in frame.dtypes], "rows": canonical(rows)}}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write(folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def read_manifest(folder: Path) -> dict[str, Any] | None:
    p = folder / MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"out: {str(p)!r} is not a readable job manifest ({exc}); choose another output folder.") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(
            f"out: {str(p)!r} is not a tribute job manifest (format {data.get('format') if isinstance(data, dict) else None!r}, "
            f"expected {FORMAT!r}); choose another output folder."
        )
    return data


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of tribute's own Python source (relative paths and bytes, in sorted order).

    Recorded next to ``tribute_version``: a development checkout changes what a method computes
    without changing the version string (stop 48: text sobol credits moved by 0.17-0.31), and a
    job resumed across such a change would mix shards computed two ways."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        data = path.read_bytes()
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def compare_manifests(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences (``settings.budget: 128 -> 256``), empty when equal."""
    diffs: list[str] = []
    for key in _COMPARED:
        _diff(key, old.get(key), new.get(key), diffs)
    return diffs


def _diff(path: str, a: Any, b: Any, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict) and "array" not in a:
        for k in sorted(set(a) | set(b)):
            _diff(f"{path}.{k}", a.get(k, "<absent>"), b.get(k, "<absent>"), out)
        return
    if a != b:
        out.append(f"{path}: {_short(a)} -> {_short(b)}")


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= 90 else text[:87] + "..."
