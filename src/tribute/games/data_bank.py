"""The retrain bank: models trained on subsets of the training set, once, on disk.

Retraining is the ground truth of data attribution and an estimator in its own right
(leave-one-out, datamodels, data Shapley/Banzhaf, the LDS metric). Every one of them asks for
``v(S)`` on some subsets ``S``; the bank trains each distinct subset once and keeps it:

* a subset is a mask over training examples (0/1, or fractional example weights);
* its model is ``fit(X[S], y[S], seed=seed, weights=w[S])`` — one seed for every subset
  (common random numbers: two subsets differ only in their data), so a subset's result depends
  on nothing but the subset, never on order, timing or worker;
* what is stored is the trained model's flattened ``state_dict`` (float64); outputs on any test
  points are recomputed from it in one cheap forward pass, so one bank serves every test set;
* finished subsets are written in atomic ``.npz`` shards (temp file + rename) next to a
  ``manifest.json`` holding fingerprints of the data, of ``fit`` and of the seed. Reopening a
  directory whose fingerprints differ is refused (nothing is deleted); an interrupted run
  resumes and trains only what is missing;
* independent subsets train in worker processes (``workers=N``, spawn context) or as Ray tasks
  (``backend="ray"``, through :mod:`tribute.ray_tasks`, the plumbing dataset jobs use too). A
  training job is the pure function :func:`fit_subset` of ``(fit, X, y, mask, seed)``, so every
  backend stores bitwise the same parameters; finished subsets are written by the driver alone,
  in shards, as they arrive (an interrupted Ray run resumes like a local one).

``fit`` must be deterministic for a seed: the first subset the bank trains is trained twice and
compared (:class:`~tribute.errors.InputError` if the two differ). That second fit counts like any
other (:attr:`RetrainBank.n_fits`). A caller with a budget of fits defers it
(``params(..., check=False)``) and makes it at the end where the budget has room
(:meth:`RetrainBank.verify_determinism`); the data game does so under an estimator's budget, so
128 coalitions under ``budget=128`` are 128 fits, not 129 (the check then waits for a later call).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import tempfile
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..ray_tasks import run_ray_tasks

__all__ = ["BANK_BACKENDS", "RetrainBank", "fit_fingerprint", "fit_subset", "float_state"]

BANK_BACKENDS = ("local", "processes", "ray")

_FORMAT = "tribute.retrain_bank/1"
FitFn = Callable[..., torch.nn.Module]


def fit_fingerprint(fit: Any) -> str:
    """A stable fingerprint of a ``fit`` callable: its qualified name, source and ``repr``, plus
    the values a function's behaviour depends on beyond its source.

    Frozen dataclass trainers (``tribute.games.data_fits``) fingerprint by their field values;
    plain functions by their source code and, when present, their default arguments, the values
    captured in their closure and the module globals of immutable plain data (numbers, strings,
    tuples, arrays, tensors; not dicts or lists, which often hold caches or counters) their code
    (or a function nested in it) reads — so ``fit`` closing over ``epochs = 300`` differs from one closing over
    ``epochs = 100``. ``functools.partial`` objects add their bound arguments, bound methods their
    instance. Values are digested by content (arrays and tensors by their bytes); objects whose
    ``repr`` carries a memory address are named by type only, so a fingerprint is the same in
    every process (a bank resumes after a restart).
    """
    return _fingerprint(fit, 0)


def _fingerprint(fit: Any, depth: int) -> str:
    parts = [getattr(fit, "__module__", "") or "", getattr(fit, "__qualname__", type(fit).__qualname__)]
    target = fit if inspect.isfunction(fit) or inspect.ismethod(fit) else type(fit)
    try:
        parts.append(inspect.getsource(target))
    except (OSError, TypeError):
        pass
    if not inspect.isfunction(fit):
        parts.append(_repr_digest(fit, depth + 1))
    extra = _behaviour_digest(fit, depth)
    if extra:
        parts.append(extra)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


_MAX_DEPTH = 8  # nesting digested before a value is named by its type only
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _value_digest(value: Any, depth: int = 0) -> str:
    """A process-independent digest of a value ``fit`` may depend on."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        return f"tensor{tuple(t.shape)}{t.dtype}:" + hashlib.sha256(_bytes_view(t).tobytes()).hexdigest()[:16]
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        if a.dtype.hasobject:
            return f"ndarray{a.shape}object"
        return f"ndarray{a.shape}{a.dtype.str}:" + hashlib.sha256(a.tobytes()).hexdigest()[:16]
    if depth >= _MAX_DEPTH:
        return type(value).__qualname__
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_value_digest(v, depth + 1) for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort()
        return f"{type(value).__name__}[{', '.join(items)}]"
    if isinstance(value, dict):
        items = sorted(f"{_value_digest(k, depth + 1)}: {_value_digest(v, depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, functools.partial):
        if depth >= _MAX_DEPTH - 2:  # also ends a function that refers to itself
            return str(getattr(value, "__qualname__", type(value).__qualname__))
        return _fingerprint(value, depth + 1)
    if inspect.ismodule(value) or inspect.isclass(value) or inspect.isbuiltin(value):
        return str(getattr(value, "__name__", type(value).__qualname__))
    return _repr_digest(value, depth + 1)


def _repr_digest(value: Any, depth: int) -> str:
    """``repr(value)`` unless it carries a memory address (which differs between processes):
    then a dataclass by its fields' digests, anything else by its type's name."""
    text = repr(value)
    if " at 0x" not in text:
        return text
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and depth < _MAX_DEPTH:
        fields = ", ".join(f"{f.name}={_value_digest(getattr(value, f.name), depth + 1)}"
                           for f in dataclasses.fields(value))
        return f"{type(value).__qualname__}({fields})"
    return type(value).__qualname__


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _behaviour_digest(fit: Any, depth: int) -> str:
    """What a callable's behaviour depends on besides its source (empty when nothing)."""
    parts: list[str] = []
    d = depth + 1
    if isinstance(fit, functools.partial):
        parts += [f"partial {_value_digest(fit.func, depth)}", _value_digest(fit.args, d),
                  _value_digest(fit.keywords, d)]
        return "\n".join(parts)
    if inspect.ismethod(fit):
        parts.append(f"self {_value_digest(fit.__self__, d)}")
        fit = fit.__func__
    if not inspect.isfunction(fit):
        return "\n".join(parts)
    if fit.__defaults__:
        parts.append(f"defaults {_value_digest(fit.__defaults__, d)}")
    if fit.__kwdefaults__:
        parts.append(f"kwdefaults {_value_digest(fit.__kwdefaults__, d)}")
    if fit.__closure__:
        cells = []
        for name, cell in zip(fit.__code__.co_freevars, fit.__closure__, strict=True):
            try:
                cells.append(f"{name}={_value_digest(cell.cell_contents, d)}")
            except ValueError:  # an empty cell
                cells.append(f"{name}=<empty>")
        parts.append("closure " + "; ".join(cells))
    glob = fit.__globals__
    plain = {n: glob[n] for n in sorted(_global_names(fit.__code__))
             if n in glob and isinstance(glob[n], (*_PLAIN, tuple, frozenset, np.ndarray, torch.Tensor))}
    if plain:
        parts.append("globals " + "; ".join(f"{n}={_value_digest(v, d)}" for n, v in plain.items()))
    return "\n".join(parts)


_SAME_WIDTH_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bytes_view(t: torch.Tensor) -> np.ndarray:
    """A contiguous CPU tensor as a numpy array over the same bytes (no copy). Dtypes numpy
    lacks (bfloat16, the float8 types) are viewed as integers of the same width: before,
    ``.numpy()`` raised torch's ``Got unsupported ScalarType BFloat16`` and every data method
    failed on a bfloat16 ``X_train``."""
    try:
        return t.numpy()
    except TypeError:
        return t.view(_SAME_WIDTH_INT[t.element_size()]).numpy()


def data_fingerprint(X: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 (16 hex digits) of the dtypes, shapes and every byte of ``X`` and ``y``.

    The bytes are hashed in place (no copy): about 0.12 s for 60,000 x 784 float32. A dtype
    numpy lacks (bfloat16) is named by torch's name, so its bytes never collide with an integer
    tensor's."""
    h = hashlib.sha256()
    for t in (X, y):
        t = t.detach().cpu().resolve_conj().resolve_neg().contiguous()
        a = _bytes_view(t)
        if a.dtype.kind in "iu" and t.dtype.is_floating_point:
            h.update(str((str(t.dtype), a.shape)).encode())
        else:
            h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()[:16]


def mask_key(mask: np.ndarray) -> str:
    """The bank's key of a mask: its float64 bytes, with ``-0.0`` read as ``0.0`` (``+ 0.0``
    changes no other value's bytes, so keys of stored banks stand; aud50d: a ``-0.0`` entry,
    the same subset, was trained again)."""
    m = np.ascontiguousarray(mask, dtype=np.float64) + 0.0
    return hashlib.sha1(m.tobytes()).hexdigest()[:24]


def float_state(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """A trained model's floating-point state: its ``state_dict`` entries, then its
    *non-persistent* buffers (absent from ``state_dict``, yet part of what ``fit`` trained, e.g.
    an input normaliser computed from the subset: before, a retrained subset ran with the
    explained model's, and its leave-one-out credits were off by up to 96%)."""
    state = module.state_dict()
    items = [(k, v) for k, v in state.items() if v.dtype.is_floating_point]
    items += [(k, v) for k, v in module.named_buffers()
              if k not in state and v.dtype.is_floating_point]
    return items


def flatten_state(module: torch.nn.Module) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    """A module's floating-point state (:func:`float_state`) as one float64 vector plus its
    (name, shape) list."""
    items = float_state(module)
    spec = [(k, tuple(int(d) for d in v.shape)) for k, v in items]
    flat = (np.concatenate([v.detach().cpu().double().reshape(-1).numpy() for _, v in items])
            if items else np.zeros(0))
    return flat, spec


def fit_subset(fit: FitFn, X: torch.Tensor, y: torch.Tensor, mask: np.ndarray,
               seed: int) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    """Train ``fit`` on the examples kept by ``mask`` (weights where fractional).

    A pure function of its arguments: the unit of work of a worker process or a Ray task.
    Training runs single-threaded (restored afterwards): parallelism is across subsets, small
    models train fastest that way, and the result is bitwise the same in every process.
    Returns the trained model's flattened float64 state and its (name, shape) spec.
    """
    keep = np.flatnonzero(mask > 0)
    w = mask[keep]
    weights = None if np.all(w == 1.0) else torch.as_tensor(w, dtype=torch.float64)
    idx = torch.as_tensor(keep, dtype=torch.long)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise the same result in this process and in workers
    try:
        model = fit(X[idx], y[idx], seed=seed, weights=weights)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"fit raised {type(exc).__name__}: {exc} while training on a subset of {len(keep)} "
            f"of {len(mask)} examples (seed={seed}). fit(X, y, *, seed, weights=None) must accept "
            "any subset, including an empty one (return the untrained model)."
        ) from exc
    finally:
        torch.set_num_threads(threads)
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"fit returned {type(model).__name__}; it must return a trained torch.nn.Module.")
    return flatten_state(model)


# ------------------------------------------------------------------ worker side
_WORKER: dict[str, Any] = {}


def _init_worker(fit: FitFn, X: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    torch.set_num_threads(1)
    _WORKER.update(fit=fit, X=X, y=y, seed=seed)


def _worker_job(key: str, mask: np.ndarray) -> tuple[str, np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    flat, spec = fit_subset(_WORKER["fit"], _WORKER["X"], _WORKER["y"], mask, _WORKER["seed"])
    return key, flat, spec


def _ray_fit(shared: tuple[FitFn, torch.Tensor, torch.Tensor, int],
             item: tuple[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    """One subset as a Ray task: ``fit_subset`` on the shared ``(fit, X, y, seed)``."""
    fit, X, y, seed = shared
    return fit_subset(fit, X, y, item[1], seed)


class RetrainBank:
    """Models trained on subsets of ``(X, y)`` by ``fit``, each subset once (see the module doc).

    Args:
        fit: ``fit(X, y, *, seed, weights=None) -> torch.nn.Module``, deterministic for a seed.
            With ``workers > 1`` it must be picklable (a module-level function or a dataclass).
        X, y: the training set (tensors, first axis = examples).
        path: directory of the on-disk bank; None keeps everything in memory.
        seed: the seed every subset is trained with. default=0.
        workers: worker processes, or Ray tasks in flight, for independent subsets.
            default=1.
        backend: ``"local"`` (this process), ``"processes"`` (``workers`` spawned processes) or
            ``"ray"`` (Ray tasks on ``address`` or a local instance; ``pip install
            "tribute[ray]"``). default=None (``"processes"`` when ``workers > 1``, else
            ``"local"``).
        address: the Ray cluster (``backend="ray"``); None: an initialised Ray, else
            ``RAY_ADDRESS``, else a new local instance. default=None.
        shard_size: finished subsets per shard file (the resume granularity). default=16.
        check_determinism: train the first subset twice and compare. default=True.
    """

    def __init__(self, fit: FitFn, X: torch.Tensor, y: torch.Tensor, *,
                 path: str | os.PathLike[str] | None = None, seed: int = 0, workers: int = 1,
                 shard_size: int = 16, check_determinism: bool = True,
                 backend: str | None = None, address: str | None = None) -> None:
        if not callable(fit):
            raise InputError(f"fit={fit!r} is not callable; pass fit(X, y, *, seed, weights=None) -> module.")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers={workers!r} must be a positive int (worker processes).")
        if backend is None:
            backend = "processes" if workers > 1 else "local"
        if backend not in BANK_BACKENDS:
            raise InputError(f"backend={backend!r} is not one of {list(BANK_BACKENDS)}.")
        self.backend = backend
        self.address = address
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise InputError(f"shard_size={shard_size!r} must be a positive int.")
        self.fit = fit
        self.X, self.y = X, y
        self.n = int(X.shape[0])
        self.seed = int(seed)
        self.workers = workers
        self.shard_size = shard_size
        self.check_determinism = check_determinism
        self.fingerprints = {"data": data_fingerprint(X, y), "fit": fit_fingerprint(fit),
                             "seed": str(self.seed), "n_train": str(self.n)}
        self.path = None if path is None else Path(path)
        self._params: dict[str, np.ndarray] = {}
        self._masks: dict[str, np.ndarray] = {}
        self.spec: list[tuple[str, tuple[int, ...]]] | None = None
        self.n_trained = 0  # subsets trained by this object (not loaded from disk)
        self.n_fits = 0  # calls of fit by this object: n_trained plus the determinism check
        self._deterministic_checked = False
        if self.path is not None:
            self._open()

    # ------------------------------------------------------------------ disk
    def _open(self) -> None:
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True)
        man = self.path / "manifest.json"
        if man.exists():
            stored = json.loads(man.read_text())
            if stored.get("format") != _FORMAT:
                raise InputError(f"{man} is not a tribute retrain bank manifest (format {stored.get('format')!r}).")
            diff = [k for k, v in self.fingerprints.items() if stored.get("fingerprints", {}).get(k) != v]
            if diff:
                raise InputError(
                    f"retrain bank at {self.path} was built with a different {', '.join(diff)} "
                    f"(stored fingerprints {stored.get('fingerprints')}, now {self.fingerprints}). "
                    "Its stored subsets were kept untouched; use another bank path for the new "
                    "fit/data/seed, or delete that directory to rebuild it."
                )
            self.spec = [(k, tuple(s)) for k, s in stored["spec"]] if stored.get("spec") else None
            self._deterministic_checked = bool(stored.get("determinism_checked", False))
            for shard in sorted(self.path.glob("shard-*.npz")):
                with np.load(shard, allow_pickle=False) as z:
                    for key, m, p in zip(z["keys"], z["masks"], z["params"]):
                        self._params[str(key)] = p
                        self._masks[str(key)] = m
        else:
            self._write_manifest()

    def _write_manifest(self) -> None:
        if self.path is None:
            return
        body = {"format": _FORMAT, "fingerprints": self.fingerprints,
                "spec": [[k, list(s)] for k, s in self.spec] if self.spec else None,
                "determinism_checked": self._deterministic_checked}
        _atomic_write(self.path / "manifest.json", json.dumps(body, indent=1).encode())

    def _write_shard(self, keys: list[str]) -> None:
        if self.path is None or not keys:
            return
        name = "shard-" + hashlib.sha1("".join(sorted(keys)).encode()).hexdigest()[:16] + ".npz"
        fd, tmp = tempfile.mkstemp(prefix=".shard-", suffix=".npz", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=np.array(keys), masks=np.stack([self._masks[k] for k in keys]),
                         params=np.stack([self._params[k] for k in keys]))
            os.replace(tmp, self.path / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, mask: np.ndarray) -> bool:
        return mask_key(np.asarray(mask, dtype=np.float64)) in self._params

    def stored_masks(self) -> np.ndarray:
        """All stored subsets, ``subsets x n_train`` float64 (insertion order)."""
        return np.stack(list(self._masks.values())) if self._masks else np.zeros((0, self.n))

    def params(self, masks: np.ndarray, *, check: bool = True) -> np.ndarray:
        """Flattened trained parameters for each mask (``K x n_train``), training what is missing.

        ``check``: make the determinism check (one more fit) if it is still due; False defers it
        (to :meth:`verify_determinism` or a later call).

        Returns ``K x n_params`` float64.
        """
        m = np.asarray(masks, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != self.n:
            raise InputError(f"masks has shape {m.shape}; expected (subsets, {self.n}).")
        if np.any(m < 0):
            raise InputError("masks must be >= 0 (0 drops an example; other values weight it).")
        keys = [mask_key(r) for r in m]
        missing: dict[str, np.ndarray] = {}
        for k, r in zip(keys, m):
            if k not in self._params and k not in missing:
                missing[k] = r
        if missing:
            self._train(missing, check=check)
        return np.stack([self._params[k] for k in keys])

    def _store(self, key: str, mask: np.ndarray, flat: np.ndarray,
               spec: list[tuple[str, tuple[int, ...]]]) -> None:
        if self.spec is None:
            self.spec = spec
            self._write_manifest()
        elif spec != self.spec:
            raise InputError(
                f"fit returned a model whose state has entries {spec[:4]}... but earlier subsets "
                f"had {self.spec[:4]}...; fit must return the same architecture for every subset."
            )
        self._params[key] = flat
        self._masks[key] = mask
        self.n_trained += 1
        self.n_fits += 1

    def _train(self, missing: dict[str, np.ndarray], check: bool = True) -> None:
        todo = list(missing.items())
        if check and self.check_determinism and not self._deterministic_checked:
            key, mask = todo.pop(0)
            a, spec = fit_subset(self.fit, self.X, self.y, mask, self.seed)
            self._compare(mask, a)
            self._store(key, mask, a, spec)
            self._write_shard([key])
            self._write_manifest()
        pending: list[str] = []

        def done(key: str, flat: np.ndarray, spec: list[tuple[str, tuple[int, ...]]]) -> None:
            self._store(key, missing[key], flat, spec)
            pending.append(key)
            if len(pending) >= self.shard_size:
                self._write_shard(pending)
                pending.clear()

        try:
            if self.backend == "ray":
                run_ray_tasks(_ray_fit, (self.fit, self.X, self.y, self.seed), todo,
                              lambda item, res: done(item[0], *res), workers=self.workers,
                              address=self.address)
            else:
                for key, flat, spec in self._run(todo):
                    done(key, flat, spec)
        finally:  # what finished is kept, also when a later subset fails
            self._write_shard(pending)

    def _compare(self, mask: np.ndarray, a: np.ndarray) -> None:
        """Fit ``mask`` once more and compare with ``a`` (the determinism check)."""
        b, _ = fit_subset(self.fit, self.X, self.y, mask, self.seed)
        self.n_fits += 1  # the second fit (the first is counted by _store)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-6, atol=1e-9):
            gap = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")
            raise InputError(
                f"fit is not deterministic for seed={self.seed}: two fits of the same subset "
                f"of {int((mask > 0).sum())} examples differ (max parameter difference "
                f"{gap:.3g}). Seed every random choice inside fit from its `seed` argument "
                "(torch.Generator().manual_seed(seed)), avoid global RNG state."
            )
        self._deterministic_checked = True

    def verify_determinism(self) -> bool:
        """Make the deferred determinism check on a stored subset (one fit) if it is still due.

        Returns whether a fit was made; :class:`~tribute.errors.InputError` if ``fit`` is not
        deterministic."""
        if not self.check_determinism or self._deterministic_checked or not self._params:
            return False
        key = next(iter(self._params))
        self._compare(self._masks[key], self._params[key])
        self._write_manifest()
        return True

    def _run(self, todo: list[tuple[str, np.ndarray]]) -> Iterator[
            tuple[str, np.ndarray, list[tuple[str, tuple[int, ...]]]]]:
        if not todo:
            return
        if self.backend == "local" or self.workers == 1 or len(todo) == 1:
            for key, mask in todo:
                flat, spec = fit_subset(self.fit, self.X, self.y, mask, self.seed)
                yield key, flat, spec
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(todo)), mp_context=ctx,
                                 initializer=_init_worker,
                                 initargs=(self.fit, self.X, self.y, self.seed)) as pool:
            futures = [pool.submit(_worker_job, key, mask) for key, mask in todo]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            finally:
                for f in futures:
                    f.cancel()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
