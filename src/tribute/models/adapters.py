"""Adapters for ``torch.nn.Module`` and for any callable on numpy arrays."""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, ModelOutputError, WeightsFormatError

__all__ = ["ModelAdapter", "NumpyModel", "TorchModel", "as_model", "load_weights"]

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
)


class ModelAdapter(ABC):
    """Common interface of all adapters.

    Attributes:
        framework: ``"torch"`` or ``"numpy"`` — how the model wants its inputs.
        differentiable: gradients of the output w.r.t. the inputs are available.
        device: where rows must live when they are passed to the model.
        module: the wrapped ``torch.nn.Module`` (None for numpy callables).
    """

    framework: str = "torch"
    differentiable: bool = False
    device: torch.device = torch.device("cpu")
    module: torch.nn.Module | None = None

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


class TorchModel(ModelAdapter):
    """A ``torch.nn.Module`` or a callable on tensors.

    The output may be a tensor, a tuple/list whose first element is a tensor, or an object with
    a ``logits`` attribute (Hugging Face ``ModelOutput``).
    """

    framework = "torch"

    def __init__(self, model: Callable[..., Any], differentiable: bool = True) -> None:
        self.fn = model
        self.module = model if isinstance(model, torch.nn.Module) else None
        self.differentiable = differentiable
        self.device = _module_device(self.module) if self.module is not None else torch.device("cpu")
        self._param_dtype = _module_dtype(self.module) if self.module is not None else None
        self._device_known = self.module is not None and any(
            True for _ in _tensors_of(self.module)
        )

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
        return _as_output_tensor(out)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        m = self.module
        if m is None:
            yield
            return
        modules = list(m.modules())
        training = [mod.training for mod in modules]
        params = list(m.parameters())
        req = [p.requires_grad for p in params]
        hooks = [
            {name: set(getattr(mod, name).keys()) for name in _HOOK_DICTS if hasattr(mod, name)}
            for mod in modules
        ]
        try:
            m.eval()
            for p in params:
                p.requires_grad_(False)
            yield
        finally:
            for mod, flag in zip(modules, training):
                mod.training = flag
            for p, r in zip(params, req):
                p.requires_grad_(r)
            for mod, before in zip(modules, hooks):
                for name, keys in before.items():
                    d = getattr(mod, name)
                    for k in [k for k in d.keys() if k not in keys]:
                        del d[k]


class NumpyModel(ModelAdapter):
    """Any callable on numpy arrays: scikit-learn, XGBoost, a plain function.

    For estimator objects the first of ``predict_proba``, ``decision_function``, ``predict``
    that exists is called.
    """

    framework = "numpy"
    differentiable = False

    def __init__(self, model: Any, np_dtypes: tuple[np.dtype[Any], ...] | None = None) -> None:
        self.fn, self.kind = _numpy_callable(model)
        self.np_dtypes = np_dtypes

    def __call__(self, inputs: tuple[torch.Tensor, ...], extra: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> torch.Tensor:
        arrays = []
        for i, t in enumerate(inputs):
            a = t.detach().cpu().numpy()
            if self.np_dtypes is not None and a.dtype != self.np_dtypes[i]:
                a = a.astype(self.np_dtypes[i])
            arrays.append(a)
        extra_np = tuple(e.detach().cpu().numpy() if isinstance(e, torch.Tensor) else e for e in extra)
        out = self.fn(*arrays, *extra_np, **(kwargs or {}))
        arr = np.asarray(out)
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
            raise ModelOutputError(
                f"model returned a non-numeric array (dtype {arr.dtype}); tribute needs numbers: "
                "pass predict_proba / decision_function instead of a label-returning predict."
            )
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))


def _numpy_callable(model: Any) -> tuple[Callable[..., Any], str]:
    for name in ("predict_proba", "decision_function", "predict"):
        fn = getattr(model, name, None)
        if callable(fn):
            return fn, name
    if callable(model):
        return model, "callable"
    raise InputError(
        f"model of type {type(model).__name__} is neither a torch.nn.Module nor callable; pass a "
        "module, an estimator with predict_proba/decision_function/predict, or a function."
    )


def as_model(model: Any, framework: str) -> ModelAdapter:
    """Wrap ``model`` for inputs of ``framework`` (``"torch"`` or ``"numpy"``)."""
    if isinstance(model, ModelAdapter):
        return model
    if isinstance(model, torch.nn.Module):
        return TorchModel(model)
    if framework == "torch" and callable(model) and not any(
        hasattr(model, n) for n in ("predict_proba", "decision_function", "predict")
    ):
        return TorchModel(model)
    return NumpyModel(model)


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


def _as_output_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, np.ndarray):
        return torch.from_numpy(out)
    raise ModelOutputError(
        f"model returned {type(out).__name__}; tribute needs a tensor (or a tuple whose first "
        "element is one, or an object with .logits). Wrap the model to return the output to explain."
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
