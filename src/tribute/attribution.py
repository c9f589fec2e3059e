"""The one result type: :class:`Attribution`.

Values come back in the layout the user thinks in (the input's shape for dense feature
attributions, ``batch x players`` otherwise, with a target axis after the batch axis when
several targets were asked for) and in the framework of the inputs (torch in, torch out;
numpy in, numpy out). Internally every estimator works on a flat ``batch x targets x players``
array; :class:`Layout` converts between the two.

Attributions save to a single ``.npz`` file with a JSON header and load back without pickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError

__all__ = ["Attribution", "Layout"]

Array = Any  # np.ndarray | torch.Tensor (kept loose so both frameworks type-check)

_FORMAT = "tribute.attribution/1"


@dataclass(frozen=True)
class Layout:
    """How flat ``(batch, targets, players)`` values map back to what the user passed.

    Attributes:
        input_shapes: per-sample shape of each attributed input tensor.
        dense: True when every input element is its own player (values take the input's shape).
        multi_target: keep the target axis (several targets were asked for).
        framework: ``"torch"`` or ``"numpy"`` — the framework of the user's inputs.
        device: torch device string of the inputs (torch only).
        dtype: dtype name of the returned values.
        multi_input: the user passed a tuple of inputs (values come back as a tuple).
    """

    input_shapes: tuple[tuple[int, ...], ...] = ()
    dense: bool = False
    multi_target: bool = False
    framework: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"
    multi_input: bool = False

    def to_user(self, flat: torch.Tensor | np.ndarray | None) -> Array:
        """Convert ``(B, T, n)`` flat values to the user's layout and framework."""
        if flat is None:
            return None
        t = torch.as_tensor(flat)
        if not self.multi_target:
            t = t[:, 0]
        if self.dense:
            lead = t.shape[:-1]
            parts: list[torch.Tensor] = []
            start = 0
            for shape in self.input_shapes:
                size = int(np.prod(shape, dtype=np.int64))
                parts.append(t[..., start : start + size].reshape(*lead, *shape))
                start += size
            out: Any = tuple(self._convert(p) for p in parts)
            return out if self.multi_input else out[0]
        return self._convert(t)

    def to_flat(self, values: Array) -> np.ndarray:
        """Inverse of :meth:`to_user`: ``(B, T, n)`` float64 numpy."""
        parts = values if isinstance(values, (tuple, list)) else (values,)
        arrs = [np.asarray(_to_numpy(p), dtype=np.float64) for p in parts]
        if self.dense:
            n_lead = 2 if self.multi_target else 1
            flat = np.concatenate([a.reshape(*a.shape[:n_lead], -1) for a in arrs], axis=-1)
        else:
            flat = arrs[0]
        if not self.multi_target:
            flat = flat[:, None]
        return flat

    def _convert(self, t: torch.Tensor) -> Array:
        dtype = getattr(torch, self.dtype, torch.float64)
        if self.framework == "torch":
            return t.to(device=self.device, dtype=dtype)
        return t.detach().cpu().to(dtype).numpy()

    def to_json(self) -> dict[str, Any]:
        return {
            "input_shapes": [list(s) for s in self.input_shapes],
            "dense": self.dense,
            "multi_target": self.multi_target,
            "framework": self.framework,
            "device": self.device,
            "dtype": self.dtype,
            "multi_input": self.multi_input,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Layout:
        return cls(
            input_shapes=tuple(tuple(int(v) for v in s) for s in d.get("input_shapes", [])),
            dense=bool(d.get("dense", False)),
            multi_target=bool(d.get("multi_target", False)),
            framework=str(d.get("framework", "numpy")),
            device=str(d.get("device", "cpu")),
            dtype=str(d.get("dtype", "float64")),
            multi_input=bool(d.get("multi_input", False)),
        )


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass
class Attribution:
    """Credits for each player, with everything needed to trust and reproduce them.

    Attributes:
        values: credits. Dense feature attributions have the input's shape
            (``batch x *input_shape``; a tuple for several inputs); otherwise ``batch x players``.
            With several targets a target axis follows the batch axis. A positive credit means
            including the player raises the explained output.
        stderr: standard errors of ``values`` (stochastic estimators), same layout, or None.
        method: registry name of the estimator.
        params: the estimator's hyperparameters and the call's settings (budget, seed...).
        n_evals: value-function evaluations spent per input (coalitions or gradient points).
        n_rows: model rows actually pushed through the model, all inputs together.
        seconds: wall-clock time of the call.
        player_names: one name per player (``"x[3]"``, ``"mean radius"``, ``"layer 3 head 7"``).
        player_kind: ``"feature"``, ``"component"`` or ``"example"``.
        targets: resolved targets, ``batch`` or ``batch x targets`` (class indices; -1 where a
            callable target has no index), or None.
        gap: completeness/efficiency gap ``sum(values) - (v(all) - v(none))`` per sample
            (and target) where the method has one, else None.
        groups: integer player id of every input element when players are groups, else None.
        layout: how flat values map to ``values`` (see :class:`Layout`).
        extra: method-specific arrays or scalars (e.g. interaction matrices).
    """

    values: Array
    method: str
    stderr: Array = None
    params: dict[str, Any] = field(default_factory=dict)
    n_evals: int = 0
    n_rows: int = 0
    seconds: float = 0.0
    player_names: list[str] = field(default_factory=list)
    player_kind: str = "feature"
    targets: np.ndarray | None = None
    gap: np.ndarray | None = None
    groups: np.ndarray | None = None
    layout: Layout = field(default_factory=Layout)
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    @property
    def n_players(self) -> int:
        return len(self.player_names)

    def flat(self) -> np.ndarray:
        """Credits as a float64 ``batch x targets x players`` array (target axis always kept)."""
        return self.layout.to_flat(self.values)

    def flat_stderr(self) -> np.ndarray | None:
        """Standard errors as ``batch x targets x players`` (None for exact methods)."""
        return None if self.stderr is None else self.layout.to_flat(self.stderr)

    def numpy(self) -> Attribution:
        """A copy whose values and standard errors are numpy arrays."""
        lay = replace(self.layout, framework="numpy")
        return replace(
            self,
            values=lay.to_user(self.flat()),
            stderr=None if self.stderr is None else lay.to_user(self.flat_stderr()),
            layout=lay,
        )

    def to_input_shape(self) -> Array:
        """Expand grouped credits to every input element (each element gets its group's credit).

        Returns a numpy array ``batch x [targets x] *input_shape`` (a tuple for several inputs).
        Dense attributions are returned as they are.
        """
        if self.layout.dense:
            return self.numpy().values
        if self.groups is None:
            raise InputError(
                "to_input_shape: this attribution has no element-to-player map (players are "
                f"{self.player_kind}s, not input groups)."
            )
        flat = self.flat()  # B, T, n
        g = np.asarray(self.groups)
        per_sample = g.ndim == 2  # (B, D) or (D,)
        gathered = (
            np.take_along_axis(flat, np.broadcast_to(g[:, None, :], (*flat.shape[:2], g.shape[1])), 2)
            if per_sample
            else flat[..., g]
        )
        lay = replace(self.layout, dense=True, framework="numpy")
        return lay.to_user(gathered)

    def top(self, index: int = 0, k: int = 5, target: int = 0) -> dict[str, list[tuple[int, str, float]]]:
        """The ``k`` players with the largest and the most negative credits for sample ``index``.

        Returns ``{"proponents": [...], "opponents": [...]}``, each a list of
        ``(player_index, player_name, credit)`` sorted by decreasing magnitude: proponents raise
        the explained output, opponents lower it (for training-data players: the training
        examples that help / hurt this test prediction).
        """
        flat = self.flat()
        if not 0 <= index < flat.shape[0]:
            raise InputError(f"top: index={index} is out of range for {flat.shape[0]} samples.")
        if not 0 <= target < flat.shape[1]:
            raise InputError(f"top: target={target} is out of range for {flat.shape[1]} targets.")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"top: k={k!r} must be a positive int.")
        v = flat[index, target]
        names = self.player_names or [str(i) for i in range(v.shape[0])]
        order = np.argsort(-v, kind="stable")
        pro = [(int(i), names[i], float(v[i])) for i in order[:k] if v[i] > 0]
        con = [(int(i), names[i], float(v[i])) for i in order[::-1][:k] if v[i] < 0]
        return {"proponents": pro, "opponents": con}

    # --------------------------------------------------------------- plotting
    def plot(self, index: int = 0, **kwargs: Any) -> Any:
        """Plot sample ``index``: a heat map for images, bars for tabular players.

        Extra keyword arguments go to :func:`tribute.plot.image` or :func:`tribute.plot.bar`.
        Returns a matplotlib figure.
        """
        from .viz import bar, image

        if self.layout.dense or self.groups is not None:
            vals = self.to_input_shape()
            vals = vals[0] if isinstance(vals, tuple) else vals
            v = np.asarray(vals)[index]
            if self.layout.multi_target:
                v = v[0]
            if v.ndim >= 2:
                return image(v, **kwargs)
            return bar(v, names=self.player_names or None, **kwargs)
        flat = self.flat()[index, 0]
        se = self.flat_stderr()
        return bar(
            flat,
            names=self.player_names or None,
            stderr=None if se is None else se[index, 0],
            **kwargs,
        )

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (``.npz`` appended if missing) atomically, without pickle."""
        p = Path(path)
        if p.suffix != ".npz":
            p = p.with_suffix(p.suffix + ".npz") if p.suffix else p.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {"values": self.flat()}
        if self.stderr is not None:
            arrays["stderr"] = self.layout.to_flat(self.stderr)
        for name in ("targets", "gap", "groups"):
            val = getattr(self, name)
            if val is not None:
                arrays[name] = np.asarray(_to_numpy(val))
        extra_json: dict[str, Any] = {}
        for k, v in self.extra.items():
            if isinstance(v, (np.ndarray, torch.Tensor)):
                arrays[f"extra__{k}"] = _to_numpy(v)
            else:
                extra_json[k] = v
        header = {
            "format": _FORMAT,
            "method": self.method,
            "params": _jsonable(self.params),
            "n_evals": int(self.n_evals),
            "n_rows": int(self.n_rows),
            "seconds": float(self.seconds),
            "player_names": list(self.player_names),
            "player_kind": self.player_kind,
            "layout": self.layout.to_json(),
            "extra": _jsonable(extra_json),
        }
        arrays["header"] = np.array(json.dumps(header))
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tribute-", suffix=".npz", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Attribution:
        """Load an attribution written by :meth:`save` (never unpickles)."""
        with np.load(Path(path), allow_pickle=False) as z:
            if "header" not in z.files:
                raise InputError(f"Attribution.load: {path} is not a tribute attribution file.")
            header = json.loads(str(z["header"]))
            if header.get("format") != _FORMAT:
                raise InputError(
                    f"Attribution.load: {path} has format {header.get('format')!r}, "
                    f"expected {_FORMAT!r}."
                )
            arrays = {k: z[k] for k in z.files if k != "header"}
        layout = Layout.from_json(header["layout"])
        if layout.framework == "torch" and layout.device != "cpu":
            layout = replace(layout, device="cpu")
        extra: dict[str, Any] = dict(header.get("extra", {}))
        for k in list(arrays):
            if k.startswith("extra__"):
                extra[k[len("extra__") :]] = arrays.pop(k)
        return cls(
            values=layout.to_user(arrays["values"]),
            stderr=layout.to_user(arrays["stderr"]) if "stderr" in arrays else None,
            method=header["method"],
            params=header.get("params", {}),
            n_evals=int(header.get("n_evals", 0)),
            n_rows=int(header.get("n_rows", 0)),
            seconds=float(header.get("seconds", 0.0)),
            player_names=list(header.get("player_names", [])),
            player_kind=header.get("player_kind", "feature"),
            targets=arrays.get("targets"),
            gap=arrays.get("gap"),
            groups=arrays.get("groups"),
            layout=layout,
            extra=extra,
        )

    def __repr__(self) -> str:
        shape = (
            tuple(tuple(v.shape) for v in self.values)
            if isinstance(self.values, tuple)
            else tuple(getattr(self.values, "shape", ()))
        )
        return (
            f"Attribution(method={self.method!r}, shape={shape}, players={self.n_players}, "
            f"n_evals={self.n_evals}, seconds={self.seconds:.3g}"
            + (", stderr" if self.stderr is not None else "")
            + ")"
        )


def _jsonable(obj: Any) -> Any:
    """Best-effort conversion of parameters to JSON (arrays become lists, objects their repr)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        arr = _to_numpy(obj)
        return arr.tolist() if arr.size <= 64 else f"<array shape={list(arr.shape)}>"
    return repr(obj)
