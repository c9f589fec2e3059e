"""Where a job's model comes from, and its fingerprint.

A job's model is either built from a factory spec (``pkg.module:factory`` or
``path/file.py:factory``) plus an optional safetensors weights file — each worker process
rebuilds it from these — or a picklable model object handed to the Python API.

The fingerprint is the sha256 of the model's ``state_dict`` (name, dtype, shape and bytes of
every tensor, in name order) for torch modules, and of the pickled object otherwise. Workers
check that the model they rebuilt has the driver's fingerprint, so a factory that initialises
randomly (no weights) cannot silently give each worker a different model.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, WeightsFormatError

__all__ = ["ModelSource", "fingerprint_model", "import_factory"]


@dataclass(frozen=True)
class ModelSource:
    """How to (re)build the job's model.

    Attributes:
        factory: ``"pkg.module:factory"`` or ``"/abs/path/file.py:factory"``, or None.
        weights: path of a ``.safetensors`` file loaded into the factory's torch module.
        obj: the model itself (Python API); must be picklable for the processes/ray backends.
    """

    factory: str | None = None
    weights: str | None = None
    obj: Any = None

    @classmethod
    def of(cls, model: Any, weights: str | Path | None = None) -> ModelSource:
        if isinstance(model, ModelSource):
            return model
        if isinstance(model, str):
            spec = _absolute_spec(model)
            return cls(factory=spec, weights=None if weights is None else str(Path(weights).resolve()))
        if weights is not None:
            raise InputError(
                "weights: pass a factory spec 'pkg.module:factory' with weights=..., or load the "
                "weights into the model object yourself."
            )
        if model is None:
            raise InputError("model: got None; pass a model object or a factory spec 'pkg.module:factory'.")
        _refuse_factory_object(model)
        return cls(obj=model)

    def describe(self) -> dict[str, Any]:
        if self.factory is not None:
            return {"factory": self.factory, "weights": self.weights}
        return {"object": f"{type(self.obj).__module__}.{type(self.obj).__qualname__}"}

    def build(self) -> Any:
        """The model, with weights loaded (a torch module is put in eval mode only by explain)."""
        if self.factory is None:
            return self.obj
        factory = import_factory(self.factory)
        try:
            model = factory()
        except Exception as exc:
            raise InputError(f"model: the factory {self.factory!r} raised {type(exc).__name__}: {exc}") from exc
        if model is None:
            raise InputError(f"model: the factory {self.factory!r} returned None; it must return the "
                             "model (a torch module, an estimator or a callable): add `return model`.")
        if self.weights is not None:
            _load_checked(model, self.weights)
        return model


def _refuse_factory_object(model: Any) -> None:
    """Refuse a function (or ``functools.partial``) that cannot take the model's inputs: a
    factory handed over as the object, e.g. ``functools.partial(make, hidden=32)`` for a
    factory with keyword arguments. It was called on each shard's rows and failed there with
    "the model failed on the inputs (shapes (4, 6)): make() got multiple values for argument
    'hidden'" (audit aud46j). A function that takes a positional argument is left alone: it may
    be the model (``lambda x: ...``, ``def f(x, w=W)``, ``def f(*inputs)``, ``def f(x, mask)``
    with ``forward_args``)."""
    import functools
    import inspect

    if not (inspect.isfunction(model) or isinstance(model, functools.partial)):
        return
    try:
        sig = inspect.signature(model)
    except (TypeError, ValueError):  # pragma: no cover - functions have signatures
        return
    # a model of several inputs or with forward_args (def f(x, mask)) takes more than one:
    # only a function taking no positional argument at all is no model (rev46z: f(x, s) with
    # forward_args=(s,) ran before and was refused as "takes no inputs")
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL)
    if any(p.kind in positional for p in sig.parameters.values()):
        return
    name = getattr(getattr(model, "func", model), "__qualname__", repr(model))
    raise InputError(
        f"model: {name}{sig} takes no inputs, so it cannot be the model; if it builds the "
        "model (a factory), pass it by name as a string 'pkg.module:factory' (the workers "
        "rebuild the model from it), or call it and pass the model it returns. A factory "
        "spec takes no arguments: for keyword arguments define one in your module, e.g. "
        "`def make_wide(): return make(hidden=32)`, and pass 'pkg.module:make_wide'.")


def import_factory(spec: str) -> Any:
    """Import ``module:attr`` (or ``file.py:attr``) and return the callable, with errors that
    name the module or the attribute at fault."""
    if not isinstance(spec, str) or ":" not in spec:
        raise InputError(f"model {spec!r} must look like 'pkg.module:factory' or 'path/file.py:factory'.")
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr:
        raise InputError(f"model {spec!r} must look like 'pkg.module:factory' or 'path/file.py:factory'.")
    if "(" in attr:  # 'mod:make(hidden=32)': there is no call syntax
        base = attr.split("(", 1)[0].strip() or "make"
        raise InputError(
            f"model {spec!r}: a factory spec names a function and takes no arguments. For keyword "
            f"arguments define a factory in {mod_name!r}, e.g. `def {base}_wide(): return "
            f"{base}(hidden=32)`, and pass '{mod_name}:{base}_wide'.")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_file():
            raise InputError(f"model: file {mod_name!r} (from {spec!r}) does not exist.")
        name = f"_tribute_factory_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        module = sys.modules.get(name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise InputError(f"model: cannot import {mod_name!r}.")
            module = importlib.util.module_from_spec(module_spec)
            try:
                module_spec.loader.exec_module(module)
            except Exception as exc:
                raise InputError(f"model: importing {mod_name!r} failed: {type(exc).__name__}: {exc}") from exc
            sys.modules[name] = module
    else:
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or "?"
            if mod_name == missing or mod_name.startswith(missing + "."):
                raise InputError(
                    f"model: cannot import module {mod_name!r} (no module named {missing!r}); check "
                    "the spelling of 'pkg.module:factory' and that the package is on PYTHONPATH."
                ) from exc
            raise InputError(
                f"model: module {mod_name!r} was found but importing it failed: it needs {missing!r}, "
                "which is not installed."
            ) from exc
        except Exception as exc:
            raise InputError(f"model: importing {mod_name!r} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        public = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise InputError(
            f"model: module {mod_name!r} has no attribute {attr!r}; callables it defines: {public[:12]}."
        )
    if not callable(factory):
        raise InputError(f"model: {mod_name}:{attr} is a {type(factory).__name__}, not a callable factory.")
    return factory


def fingerprint_model(model: Any) -> str:
    """sha256 of a torch module's state_dict, or of the pickled object."""
    import torch

    h = hashlib.sha256()
    if isinstance(model, torch.nn.Module):
        h.update(f"{type(model).__module__}.{type(model).__qualname__}|".encode())
        for name, t in sorted(model.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()
    try:
        h.update(pickle.dumps(model, protocol=4))
    except Exception as exc:
        raise InputError(
            f"model: a {type(model).__name__} cannot be pickled ({exc}), so a job cannot fingerprint "
            "it for --resume or send it to workers; pass a torch module, a picklable model or a "
            "factory spec 'pkg.module:factory'."
        ) from exc
    return h.hexdigest()


#: Data rows whose model outputs the manifest keeps (:func:`model_probe`).
PROBE_ROWS = 4


def model_probe(model: Any, rows: tuple[Any, ...], extra: tuple[Any, ...] = (),
                kwargs: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The model's raw outputs on the first data rows, flattened (at most 64 numbers), with the
    relative tolerance its output dtype allows (``{"values": [...], "rtol": r}``), or None when
    the model cannot be called on them. ``extra`` / ``kwargs``: the job's ``forward_args`` /
    ``forward_kwargs`` for these rows (a model that needs them was not probed, so a change of
    its code resumed a job silently: 1.15 off, audit aud46j).

    The fingerprint hashes a module's class name and state_dict, or a pickled object, which
    for a plain function is its module and name only: a resumed job whose model *code* changed
    in between (a fixed bug, another activation, a global weight matrix) would mix shards of
    two models without a word. The probe sees what the code computes.
    """
    import torch

    from ..models import as_model

    framework = "torch" if isinstance(model, torch.nn.Module) else "numpy"
    try:
        if len(rows) == 1 and hasattr(rows[0], "iloc"):  # a table with text columns
            out = _table_probe(model, rows[0])
        else:
            tensors = tuple(r if isinstance(r, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(r))
                            for r in rows)
            adapter = as_model(model, framework)
            with adapter.session(), torch.no_grad():
                out = adapter(tensors, extra, kwargs)
    except Exception:  # e.g. a model that needs forward_args: the fingerprint alone decides
        return None
    eps = float(torch.finfo(out.dtype).eps) if out.dtype.is_floating_point else 0.0
    flat = out.detach().to(torch.float64).cpu().reshape(-1)[:64]
    # 1e-5 for float32/64 (another BLAS, another machine); 50 eps of float16/bfloat16 outputs
    return {"values": [float(v) for v in flat], "rtol": max(1e-5, 50.0 * eps)}


def _table_probe(model: Any, frame: Any) -> Any:
    """A model's outputs on a DataFrame with text columns, read as :func:`tribute.explain`
    reads them (its codec decodes the rows back into the table's values)."""
    import torch

    from ..games.features import UNREAD_BASELINE
    from ..models import as_model
    from ..models.tabular import prepare_categorical

    adapter, encoded, _ = prepare_categorical(as_model(model, "numpy"), frame, UNREAD_BASELINE, ())
    with adapter.session(), torch.no_grad():
        return adapter((torch.from_numpy(encoded.to_numpy(dtype=np.float64, copy=True)),))


def probe_values(probe: Any) -> list[float]:
    """A probe's values (a list in manifests written before the tolerance was stored)."""
    return list(probe.get("values", [])) if isinstance(probe, dict) else list(probe or [])


def probes_agree(old: Any, new: Any) -> bool:
    """Whether two :func:`model_probe` results describe the same model (within float noise of
    another machine or BLAS: each value within relative 1e-5). A missing probe (a job written
    before probes, a model that needs forward arguments or is random in eval mode) agrees."""
    if old is None or new is None:
        return True
    rtol = max(float(old.get("rtol", 1e-5)) if isinstance(old, dict) else 1e-5,
               float(new.get("rtol", 1e-5)) if isinstance(new, dict) else 1e-5)
    a = np.asarray(probe_values(old), dtype=np.float64)
    b = np.asarray(probe_values(new), dtype=np.float64)
    if a.shape != b.shape:
        return False
    finite = np.abs(a[np.isfinite(a)])
    scale = max(float(finite.max(initial=0.0)), 1e-12)
    # each value within rtol of itself (a large output does not hide a change in a small one),
    # near-zero values within 1e-2 rtol of the outputs' scale; inf and NaN must match exactly
    return bool(np.allclose(a, b, rtol=rtol, atol=1e-2 * rtol * scale, equal_nan=True))


def _load_checked(model: Any, weights: str) -> None:
    """Load safetensors ``weights`` into ``model``, naming every tensor that does not fit."""
    import torch

    from ..models import load_weights

    if not isinstance(model, torch.nn.Module):
        raise InputError(
            f"weights: {weights!r} applies to torch modules; the factory returned a {type(model).__name__}."
        )
    p = Path(weights)
    if not p.is_file():
        raise InputError(f"weights: file {weights!r} does not exist.")
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception:
        shapes = None  # not safetensors: load_weights below raises the format error
    if shapes is not None:
        own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        missing = sorted(set(own) - set(shapes))
        unexpected = sorted(set(shapes) - set(own))
        wrong = [f"{k}: file {list(shapes[k])} vs model {list(own[k])}"
                 for k in sorted(set(own) & set(shapes)) if shapes[k] != own[k]]
        if missing or unexpected or wrong:
            parts = []
            if wrong:
                parts.append(f"shape mismatch {wrong[:5]}")
            if missing:
                parts.append(f"missing from the file {missing[:5]}")
            if unexpected:
                parts.append(f"not in the model {unexpected[:5]}")
            raise WeightsFormatError(
                f"weights {weights!r} do not match the factory's model: {'; '.join(parts)}. Check "
                "that the factory builds the architecture the weights were saved from."
            )
    load_weights(model, p)


def _absolute_spec(spec: str) -> str:
    """Make ``file.py:factory`` specs absolute so worker processes find the file."""
    mod_name, sep, attr = spec.rpartition(":")
    if sep and mod_name.endswith(".py"):
        return f"{Path(mod_name).resolve()}:{attr}"
    return spec
