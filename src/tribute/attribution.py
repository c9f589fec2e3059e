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
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_write
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
        channel_axis: the channel axis (``0`` or ``-1``) of a one-input model's 3-D per-sample
            shape that reads two ways by itself, where the model says it (a torch model's first
            ``Conv2d``: :func:`tribute.models.layout.plot_channel_axis_by_model`), None
            elsewhere. :meth:`Attribution.plot` draws by it: a CNN's ``(3, 4, 4)`` map needed
            ``channel_axis=0`` from the user (aud51v). A shape that reads one way is drawn by
            it (rev51v: the model's first ``Conv2d`` can read a tensor made from the input).
    """

    input_shapes: tuple[tuple[int, ...], ...] = ()
    dense: bool = False
    multi_target: bool = False
    framework: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"
    multi_input: bool = False
    channel_axis: int | None = None

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
                size = math.prod(shape)
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
        return _to_numpy(t.detach().cpu().to(_numpy_dtype(dtype)))

    def to_json(self) -> dict[str, Any]:
        return {
            "input_shapes": [list(s) for s in self.input_shapes],
            "dense": self.dense,
            "multi_target": self.multi_target,
            "framework": self.framework,
            "device": self.device,
            "dtype": self.dtype,
            "multi_input": self.multi_input,
            # (only where known: files of other attributions stay as they were)
            **({} if self.channel_axis is None else {"channel_axis": self.channel_axis}),
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
            channel_axis=_stored_channel_axis(d.get("channel_axis")),
        )


def _stored_channel_axis(v: Any) -> int | None:
    """A saved layout's ``channel_axis``: None (absent: a file of an earlier release), 0 or -1."""
    if v is None:
        return None
    if isinstance(v, bool) or v not in (0, -1):
        raise InputError(f"layout.channel_axis={v!r} is not None, 0 or -1; the file is damaged.")
    return int(v)


#: Floating dtypes numpy has; values of the others (bfloat16, float8) become float32 in numpy
#: (exact for bfloat16, float8) instead of failing with "Got unsupported ScalarType BFloat16".
_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _numpy_dtype(dtype: torch.dtype) -> torch.dtype:
    """``dtype``, or float32 for a floating dtype numpy does not have."""
    return torch.float32 if dtype.is_floating_point and dtype not in _NUMPY_FLOATS else dtype


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(_numpy_dtype(x.dtype)).numpy()
    return np.asarray(x)


@dataclass(eq=False)
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
        n_evals: value-function evaluations spent per input (coalitions or gradient points),
            ``v(N)`` from the game's reference pass included; never more than ``budget``.
        n_rows: model rows actually pushed through the model, all inputs together (one per
            input for the reference pass, one per input and background row for every other
            evaluation).
        seconds: wall-clock time of the call.
        player_names: one name per player (``"x[3]"``, ``"mean radius"``, ``"layer 3 head 7"``).
        player_kind: ``"feature"``, ``"component"`` or ``"example"``.
        targets: resolved targets, ``batch`` or ``batch x targets`` (class indices; -1 where a
            callable target has no index), or None.
        gap: completeness/efficiency gap ``sum(values) - (v(all) - v(none))`` per sample
            (and target) where the method has one, else None.
        base_values: ``v(no player)`` per sample, ``batch`` (or ``batch x targets``): the
            explained output at the baseline (the mean over a background set: E[f(X)]). Set
            when the method evaluated the empty coalition, else None (never paid for extra).
        full_values: ``v(all players)`` per sample (the explained output f(x)), same layout.
            For efficient methods ``base_values + values.sum(players) == full_values``.
        index: sample labels (the index of a pandas DataFrame input), or None.
        groups: integer player id of every input element when players are groups, else None.
        layout: how flat values map to ``values`` (see :class:`Layout`).
        extra: method-specific arrays or scalars (e.g. interaction matrices). The key
            ``"class_labels"`` (a list, the classifier's ``classes_``), where present, names the
            class of each output column: :meth:`to_pandas` and :meth:`plot` then label a target
            by its class (``classes_[column]``) rather than by its column, which for a classifier
            fitted on labels other than ``0..K-1`` (``classes_ = [0, 2, 5]``) is another class.
            The key ``"per_sample_target"`` (True) says the target was one class per sample
            (``"predicted"``, a label array): :meth:`to_pandas` then gives every row its class.
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
    base_values: np.ndarray | None = None
    full_values: np.ndarray | None = None
    index: Any = None

    # ------------------------------------------------------------- comparison
    def __eq__(self, other: object) -> bool:
        """Exactly equal values, standard errors, method and player names.

        Bookkeeping (``seconds``, ``n_evals``, ``params``) is not compared; use
        :meth:`allclose` for a tolerance.
        """
        if not isinstance(other, Attribution):
            return NotImplemented
        return self._same(other, rtol=0.0, atol=0.0)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def allclose(self, other: Attribution, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Values and standard errors equal within ``numpy.allclose(rtol, atol)``, and the same
        method, player names and value layout (shapes)."""
        if not isinstance(other, Attribution):
            raise InputError(
                f"allclose: other is a {type(other).__name__}; compare with another Attribution."
            )
        return self._same(other, rtol=rtol, atol=atol)

    def _same(self, other: Attribution, rtol: float, atol: float) -> bool:
        if self.method != other.method or list(self.player_names) != list(other.player_names):
            return False
        if (self.stderr is None) != (other.stderr is None):
            return False
        pairs = [(self.values, other.values)]
        if self.stderr is not None:
            pairs.append((self.stderr, other.stderr))
        for a, b in pairs:
            pa = a if isinstance(a, tuple) else (a,)
            pb = b if isinstance(b, tuple) else (b,)
            if len(pa) != len(pb):
                return False
            for x, y in zip(pa, pb):
                xa, ya = _to_numpy(x), _to_numpy(y)
                if xa.shape != ya.shape or not np.allclose(xa, ya, rtol=rtol, atol=atol,
                                                           equal_nan=True):
                    return False
        return True

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

    def top(self, index: int = 0, k: int = 5, target: int = 0) -> dict[str, Any]:
        """The ``k`` players with the largest and the most negative credits for sample ``index``.

        Returns ``{"proponents": [...], "opponents": [...], "target": class}``: two lists of
        ``(player_index, player_name, credit)`` sorted by decreasing magnitude: proponents raise
        the explained output, opponents lower it (for training-data players: the training
        examples that help / hurt this test prediction); ``target`` is the class whose output
        sample ``index``'s target column ``target`` explains (its label where the columns are a
        classifier's ``classes_``): with one target per sample (``target=y``, ``"predicted"``)
        each sample's own class. None where :attr:`targets` does not say (a callable target).
        """
        flat = self.flat()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -flat.shape[0] <= index < flat.shape[0]:
            raise InputError(f"top: index={index!r} is out of range for {flat.shape[0]} samples "
                             "(an int; negative counts from the end).")
        if not 0 <= target < flat.shape[1]:
            raise InputError(f"top: target={target} is out of range for {flat.shape[1]} targets.")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"top: k={k!r} must be a positive int.")
        v = flat[index, target]
        names = self._row_names(index, v.shape[0])
        order = np.argsort(-v, kind="stable")
        pro = [(int(i), names[i], float(v[i])) for i in order[:k] if v[i] > 0]
        con = [(int(i), names[i], float(v[i])) for i in order[::-1][:k] if v[i] < 0]
        row = int(index) % flat.shape[0]
        return {"proponents": pro, "opponents": con,
                "target": self._class_of(row, target, flat.shape[0], flat.shape[1])}

    def to_pandas(self) -> Any:
        """Credits as a ``pandas.DataFrame``: one row per sample, one column per player.

        Rows carry the input DataFrame's index when the inputs were a DataFrame (else
        ``0..batch-1``); with several targets the rows are a ``(sample, target)`` MultiIndex whose
        ``target`` level is the class each row explains (``target=[0, 2]`` gives levels 0 and 2)
        when every sample's targets are distinct class indices, else the target's position.
        One target per sample (``target=y``, ``"predicted"``, a classifier's default) gives the
        same ``(sample, target)`` MultiIndex, one row per sample, so each row says the class it
        explains -- whether or not the rows' classes happen to differ (``extra
        ["per_sample_target"]``, recorded by :func:`tribute.explain`; for a result built without
        it, where the classes differ); a target shared by all samples (an int, the single output
        of a regressor) keeps the plain sample index. Class labels name the targets where the
        columns are a classifier's ``classes_``.
        Columns are the player names (``"3:the"``, position and name, when a name repeats, as a
        word said twice); for text players of several texts with different words they are
        positions (``"player 0"``...), each text's words being in ``extra["text_players"]``.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "Attribution.to_pandas needs pandas: pip install pandas"
            ) from exc
        flat = self.flat()
        b, t, n = flat.shape
        cols = list(self.player_names) if len(self.player_names) == n else [f"x{j}" for j in range(n)]
        texts = self.extra.get("text_players")
        if texts is not None and len({tuple(p) for p in texts}) > 1:
            # texts with different words: a column is a position, not a word
            cols = [f"player {j}" for j in range(n)]
        elif len(set(cols)) != len(cols):  # a word said twice: df["the"] would be two columns
            cols = [f"{j}:{c}" for j, c in enumerate(cols)]
        idx = pd.Index(self.index) if self.index is not None else pd.RangeIndex(b)
        if len(idx) != b:
            idx = pd.RangeIndex(b)
        tg = None if self.targets is None else np.asarray(self.targets)
        if tg is not None and not (tg.size == b * t and np.issubdtype(tg.dtype, np.integer)
                                   and (tg >= 0).all()):
            tg = None  # no class index (a callable target): the target's position, if any
        if not self.layout.multi_target:
            if not self._targets_per_sample(b):
                return pd.DataFrame(flat[:, 0], index=idx, columns=cols)
            # one target per sample (target=y, "predicted"): a row without its class would not
            # say what it explains, so a target level (as with several targets) holds each
            # row's class -- also when every row happens to explain the same class, so that the
            # frame's shape follows the call, not the data
        level: Any = np.tile(np.arange(t), b)
        if tg is not None:
            tg = tg.reshape(b, t)
            if all(len(set(r.tolist())) == t for r in tg):
                labels = self._class_labels()
                # the class each row explains (unique within a sample): its label where the
                # columns are a classifier's classes_ (column 1 of classes_ [0, 2, 5] is class 2)
                level = tg.reshape(-1) if labels is None or int(tg.max()) >= len(labels) \
                    else np.asarray(labels, dtype=object)[tg.reshape(-1)].tolist()
        rows = pd.MultiIndex.from_arrays([idx.repeat(t), level],
                                         names=[idx.name or "sample", "target"])
        return pd.DataFrame(flat.reshape(b * t, n), index=rows, columns=cols)

    def _row_names(self, index: int, n: int) -> list[str]:
        """Player names of sample ``index``: its own words for text players (padding players
        ``"<none j>"``), else :attr:`player_names`."""
        texts = self.extra.get("text_players")
        if texts is not None and -len(texts) <= index < len(texts):
            own = [str(w) for w in texts[index]][:n]
            return own + [f"<none {j}>" for j in range(len(own), n)]
        return list(self.player_names) if len(self.player_names) == n else [str(i) for i in range(n)]

    # --------------------------------------------------------------- plotting
    def plot(self, index: int = 0, kind: str = "auto", *, target: int = 0, **kwargs: Any) -> Any:
        """Plot sample ``index``.

        Args:
            index: which sample. default=0.
            kind: ``"auto"`` (a heat map for image-shaped inputs, bars otherwise), ``"bar"``,
                ``"waterfall"`` (from ``base_values`` to ``full_values``; needs a method that
                evaluated the empty coalition) or ``"image"``. default="auto".
            target: which target column when several were explained. default=0.
            **kwargs: passed to :func:`tribute.plot.bar`, :func:`~tribute.plot.waterfall` or
                :func:`~tribute.plot.image`. Bars carry the sample's standard errors as
                error bars when every one of them is finite (none when the method reported NaN).

        Returns:
            A matplotlib figure; for text players (``explain(..., tokenizer=...)``) with
            ``kind="auto"``, an HTML object highlighting the players on the text
            (:func:`tribute.viz.text_highlight`; notebooks display it).
        """
        from .viz import bar, image, waterfall

        if kind == "auto" and "text_spans" in self.extra:
            return self._text_html(index, target)

        kinds = ("auto", "bar", "waterfall", "image")
        if kind not in kinds:
            raise InputError(f"plot: kind={kind!r} is not one of {kinds}.")
        flat = self.flat()
        b, t, _ = flat.shape
        if not -b <= index < b:
            raise InputError(f"plot: index={index} is out of range for {b} samples.")
        if not 0 <= target < t:
            raise InputError(f"plot: target={target} is out of range for {t} target(s).")
        if t > 1:  # say which of several targets is drawn (the default draws the first)
            kwargs.setdefault("title", f"{self.method}, {self._target_label(index, target, b, t)}")
        elif self._targets_per_sample(b):  # one target per sample: say which class this sample's is
            kwargs.setdefault("title", f"{self.method}, class {self._class_of(index, 0, b, 1)}")
        names = self._row_names(index, flat.shape[2]) if self.player_names else None
        texts = self.extra.get("text_players")
        own = len(texts[index]) if texts is not None and -len(texts) <= index < len(texts) else flat.shape[2]
        # a shorter text's padding players (NaN credits) are not drawn
        values = flat[index, target, :own]
        names = None if names is None else names[:own]
        if kind == "waterfall":
            if self.base_values is None:
                raise InputError(
                    f"plot(kind='waterfall'): this attribution has no base value v(no player) "
                    f"(method {self.method!r} did not evaluate the empty coalition); use "
                    "kind='bar', or call tribute.plot.waterfall(values, base_value=...) yourself."
                )
            base = np.asarray(self.base_values, dtype=np.float64).reshape(b, -1)[index, target]
            full = None
            if self.full_values is not None:
                full = float(np.asarray(self.full_values, dtype=np.float64).reshape(b, -1)[index, target])
            kwargs.setdefault("title", self.method)
            return waterfall(values, names=names, base_value=float(base),
                             full_value=full, **kwargs)
        spatial = None
        if self.layout.dense or self.groups is not None:
            vals = self.to_input_shape()
            vals = vals[0] if isinstance(vals, tuple) else vals
            v = np.asarray(vals)[index]
            spatial = v[target] if self.layout.multi_target else v
        if kind == "image" or (kind == "auto" and spatial is not None and spatial.ndim >= 2):
            if self.layout.channel_axis is not None and kwargs.get("channel_axis") is None:
                # the layout the model reads (its first Conv2d), where the game knew it
                kwargs["channel_axis"] = self.layout.channel_axis
            if spatial is None or spatial.ndim < 2:
                raise InputError(
                    "plot(kind='image'): the players are not laid out on an image (inputs of "
                    "shape (batch, [C,] H, W)); use kind='bar' or kind='waterfall'."
                )
            if self.groups is not None and not self.layout.dense:
                # superpixels: viz spreads a group over its pixels counting it once per pixel
                # (summing the channels of to_input_shape drew 3x a 3-channel patch's credit)
                # (several inputs: the first one's map, as for dense credits)
                i = index % b
                g = np.asarray(self.groups)
                shapes = self.layout.input_shapes[:1]
                g = (g[i : i + 1] if g.ndim == 2 else g)[..., : math.prod(shapes[0]) if shapes else None]
                one = Attribution(values=flat[i : i + 1, target], method=self.method, groups=g,
                                  layout=replace(self.layout, input_shapes=shapes, multi_input=False,
                                                 multi_target=False, framework="numpy"))
                kwargs.setdefault("title", "")  # as the dense map: no title unless asked
                return image(one, **kwargs)
            return image(spatial, **kwargs)
        se = self.flat_stderr()
        row_se = None if se is None else se[index, target, :own]
        if row_se is not None and not np.isfinite(row_se).all():
            # a method that could not estimate this sample's standard errors reports NaN (with
            # a StderrWarning); draw the credits without error bars rather than refuse the plot
            row_se = None
        return bar(values, names=names, stderr=row_se, **kwargs)

    def _target_label(self, index: int, target: int, b: int, t: int) -> str:
        """``"target column t"``, with the class it explains where :attr:`targets` says."""
        label = f"target column {target}"
        name = self._class_of(index, target, b, t)
        return label if name is None else label + f" (class {name})"

    def _class_of(self, index: int, target: int, b: int, t: int) -> Any:
        """The class sample ``index``'s target column ``target`` explains (its label where
        ``extra["class_labels"]`` names the columns), or None where :attr:`targets` has none."""
        if self.targets is None:
            return None
        tg = np.asarray(self.targets)
        if tg.size != b * t or not np.issubdtype(tg.dtype, np.integer):
            return None
        c = int(tg.reshape(b, t)[index, target])
        if c < 0:
            return None
        labels = self._class_labels()
        return labels[c] if labels is not None and c < len(labels) else c

    def _targets_per_sample(self, b: int) -> bool:
        """One class index per sample (``target=y``, ``"predicted"``): recorded by
        :func:`tribute.explain` (``extra["per_sample_target"]``), else read from the classes
        (a result built by hand: they differ between samples)."""
        if self.targets is None or self.layout.multi_target:
            return False
        tg = np.asarray(self.targets)
        if not (tg.size == b and np.issubdtype(tg.dtype, np.integer) and bool((tg >= 0).all())):
            return False
        return bool(self.extra.get("per_sample_target")) or len(set(tg.reshape(-1).tolist())) > 1

    def _class_labels(self) -> list[Any] | None:
        """The class of each output column (``extra["class_labels"]``), or None."""
        labels = self.extra.get("class_labels")
        if labels is None:
            return None
        out = list(_to_numpy(labels).tolist()) if isinstance(labels, (np.ndarray, torch.Tensor)) \
            else list(labels)
        return out or None

    def _text_html(self, index: int, target: int) -> Any:
        """Text players highlighted on sample ``index``'s text (an HTML object)."""
        from .viz import text_highlight

        flat = self.flat()
        b, t, _ = flat.shape
        if not -b <= index < b or not 0 <= target < t:
            raise InputError(f"plot: index={index} / target={target} out of range ({b} samples, {t} targets).")
        text = self.extra["texts"][index]
        parts = [text] if isinstance(text, str) else list(text)
        spans = self.extra["text_spans"][index]
        players = self.extra.get("text_players")
        names = list(players[index])[: len(spans)] if players is not None else None
        return text_highlight(parts, spans, flat[index, target, : len(spans)], names=names,
                              title=self.method)

    def _repr_html_(self) -> str | None:
        """Notebook display: the first text highlighted (text players only)."""
        if "text_spans" not in self.extra:
            return None
        html: str = self._text_html(0, 0).data
        return html

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (``.npz`` appended if missing) atomically, without pickle."""
        p = Path(path)
        if p.suffix != ".npz":
            p = p.with_suffix(p.suffix + ".npz") if p.suffix else p.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {"values": self.flat()}
        if self.stderr is not None:
            arrays["stderr"] = self.layout.to_flat(self.stderr)
        for name in ("targets", "gap", "groups", "base_values", "full_values"):
            val = getattr(self, name)
            if val is not None:
                arrays[name] = np.asarray(_to_numpy(val))
        extra_json: dict[str, Any] = {}
        extra_coded: dict[str, Any] = {}
        for k, v in self.extra.items():
            if isinstance(v, (np.ndarray, torch.Tensor)):
                arrays[f"extra__{k}"] = _to_numpy(v)
            elif _needs_code(v):
                # aud44o: arrays inside a dict or list (joint_shapley's {(0, 1): array}) were
                # written as "<array shape=[100, 1]>" strings under "(0, 1)" keys: lost on load
                extra_coded[k] = _encode(v, arrays, f"extra {k!r}")
            else:
                extra_json[k] = v
        header = {
            "format": _FORMAT,
            "method": self.method,
            "params": _jsonable(self.params),
            # small45: tuples, sets and non-string keys came back as lists and strings
            **({"params_coded": _encode(self.params, None, "params")} if _needs_code(self.params) else {}),
            "n_evals": int(self.n_evals),
            "n_rows": int(self.n_rows),
            "seconds": float(self.seconds),
            "player_names": list(self.player_names),
            "player_kind": self.player_kind,
            "layout": self.layout.to_json(),
            "extra": _jsonable(extra_json),
            **({"extra_coded": extra_coded} if extra_coded else {}),
            "index": _index_json(self.index),
        }
        arrays["header"] = np.array(json.dumps(header))
        for name, arr in list(arrays.items()):
            if arr.dtype.hasobject:  # numpy would pickle it, and load (no pickle) refuse the file
                arrays[name] = _plain_array(arr, name.replace("extra__", "extra ", 1))
        # atomically, with the umask's permissions (not mkstemp's 0600)
        return atomic_write(p, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Attribution:
        """Load an attribution written by :meth:`save` (never unpickles).

        Raises:
            InputError: ``path`` is not an attribution file (not an ``.npz``, pickled or object
                arrays, no or a malformed header, values missing or not ``batch x targets x
                players`` with one column per player name, standard errors of another shape).
        """
        header, arrays = _read_attribution_file(Path(path))
        layout = Layout.from_json(header["layout"])
        if layout.framework == "torch" and layout.device != "cpu":
            layout = replace(layout, device="cpu")
        extra: dict[str, Any] = dict(header.get("extra", {}))
        for k in list(arrays):
            if k.startswith("extra__"):
                extra[k[len("extra__") :]] = arrays.pop(k)
        coded = header.get("extra_coded", {})
        for k, v in (coded.items() if isinstance(coded, dict) else ()):
            extra[k] = _decode(v, arrays, where=f"Attribution.load: {str(path)!r}")
        return cls(
            values=layout.to_user(arrays["values"]),
            stderr=layout.to_user(arrays["stderr"]) if "stderr" in arrays else None,
            method=header["method"],
            params=_decode(header["params_coded"], {}, f"Attribution.load: {str(path)!r}")
            if isinstance(header.get("params_coded"), dict) else header.get("params", {}),
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
            base_values=arrays.get("base_values"),
            full_values=arrays.get("full_values"),
            index=_index_from_json(header.get("index")),
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


def _read_attribution_file(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header and the arrays of an attribution file, checked (see :meth:`Attribution.load`)."""
    where = f"Attribution.load: {str(path)!r}"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(f"{where} is a single .npy array, not an attribution file (an "
                             ".npz written by Attribution.save).")
        with loaded as z:
            if "header" not in z.files:
                raise InputError(f"{where} is not a tribute attribution file (no header).")
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in z.files if k != "header"}
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, (InputError, FileNotFoundError)):
            raise
        raise InputError(f"{where} could not be read as an attribution file ({exc}); tribute "
                         "never unpickles: load files written by Attribution.save.") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise InputError(f"{where} has format {got!r}, expected {_FORMAT!r}.")
    if "layout" not in header or "method" not in header:
        raise InputError(f"{where}: the header lacks 'layout' or 'method'; the file is damaged.")
    values = arrays.get("values")
    names = header.get("player_names") or []
    if values is None or values.ndim != 3 or (names and values.shape[2] != len(names)):
        shape = None if values is None else list(values.shape)
        raise InputError(f"{where}: values of shape {shape} are not batch x targets x players "
                         f"(with {len(names)} player names); the file is damaged.")
    stderr = arrays.get("stderr")
    if stderr is not None and stderr.shape != values.shape:
        raise InputError(f"{where}: stderr of shape {list(stderr.shape)} does not match values "
                         f"of shape {list(values.shape)}; the file is damaged.")
    return header, arrays


def _label_json(v: Any) -> Any:
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        v = v.item()
    # bools are JSON too (aud49o: a boolean index came back from load as "True" / "False")
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def _index_json(index: Any) -> list[Any] | None:
    """Sample labels as a JSON list (labels that are not str/int/float are stored as text; the
    labels of a pandas MultiIndex as lists, one item per level)."""
    if index is None:
        return None
    return [[_label_json(x) for x in v] if isinstance(v, tuple) else _label_json(v) for v in list(index)]


def _index_from_json(labels: Any) -> Any:
    """:meth:`Attribution.save`'s index back, as :func:`tribute.explain` keeps it: a list, with a
    MultiIndex's labels as tuples."""
    if labels is None:
        return None
    return [tuple(v) if isinstance(v, list) else v for v in labels]


_NESTED = "nested__"  # file key prefix of the arrays inside an extra value (see _encode)
_CODE = "__tribute__"  # marks a coded node: {"__tribute__": "array" | "tuple" | "dict", ...}


def _plain_array(arr: np.ndarray, name: str) -> np.ndarray:
    """An object array of strings as a str array; any other object array is refused (saving
    it pickles it, which :meth:`Attribution.load` never reads back: aud44o)."""
    flat = arr.ravel().tolist()
    if all(isinstance(v, str) for v in flat):
        return arr.astype(str)
    bad = next(v for v in flat if not isinstance(v, str))
    raise InputError(
        f"Attribution.save: {name} is an object array (holding {type(bad).__name__} "
        f"{bad!r:.40}); attributions are saved without pickle, so store numbers, strings or "
        "booleans (e.g. arr.astype(float)), or a list.")


def _needs_code(obj: Any) -> bool:
    """An extra value plain JSON would change: arrays inside a container, tuples, sets, dict keys
    that are not strings (sets of players as tuples or frozensets)."""
    # with a stack, not recursion: called on every ``params`` since small45, a list nested 350
    # deep (which plain JSON writes) raised RecursionError here (rev45s)
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, (np.ndarray, torch.Tensor, tuple, set, frozenset)):
            return True
        if isinstance(o, dict):
            if any(not isinstance(k, str) for k in o):
                return True
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return False


def _encode(obj: Any, arrays: dict[str, np.ndarray] | None, where: str, hashable: bool = False) -> Any:
    """``obj`` as JSON, its arrays moved to ``arrays`` (``nested__<i>``) and referenced by name,
    tuples, sets, frozensets and dicts (with their keys) marked so that :func:`_decode` rebuilds
    them exactly. With ``arrays=None`` (``params``) arrays are written as :func:`_jsonable`
    writes them: a list up to 64 items, else a ``<array shape=...>`` note. ``hashable``: ``obj``
    is a dict key or a set item (or inside one): a tensor there (hashable by identity) is written
    as its repr, as before, since an array or list read back cannot be a key or a set item."""
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        if hashable:  # rev45s: {tensor} / {tensor: v} saved, then load refused it as "damaged"
            return repr(obj)
        if arrays is None:
            return _jsonable(obj)
        # a new name per array: len() grows with every one (small45: counting the names
        # already given made saving n arrays O(n^2), 1.8 s at 3,000)
        key = f"{_NESTED}{len(arrays)}"
        arr = _to_numpy(obj)
        arrays[key] = _plain_array(arr, where) if arr.dtype.hasobject else arr
        return {_CODE: "array", "key": key}
    if isinstance(obj, tuple):
        return {_CODE: "tuple", "items": [_encode(v, arrays, f"{where}[{i}]", hashable)
                                          for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):  # small45: saved as their repr string
        return {_CODE: type(obj).__name__, "items": [_encode(v, arrays, where, True) for v in obj]}
    if isinstance(obj, dict):
        return {_CODE: "dict", "items": [[_encode(k, arrays, where, True), _encode(v, arrays, f"{where}[{k!r}]")]
                                          for k, v in obj.items()]}
    return _jsonable(obj)


def _decode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """The inverse of :func:`_encode` (the arrays it names are taken from ``arrays``)."""
    if isinstance(obj, list):
        return [_decode(v, arrays, where) for v in obj]
    if not isinstance(obj, dict) or _CODE not in obj:
        return obj
    kind = obj[_CODE]
    if kind == "array" and obj.get("key") in arrays:
        return arrays[obj["key"]]
    if kind == "tuple" and isinstance(obj.get("items"), list):
        return tuple(_decode(v, arrays, where) for v in obj["items"])
    if kind in ("set", "frozenset") and isinstance(obj.get("items"), list):
        items = [_decode(v, arrays, where) for v in obj["items"]]
        if any(isinstance(v, (list, dict, set, np.ndarray)) for v in items):
            raise InputError(f"{where}: a saved {kind} holds an unhashable item; the file is damaged.")
        return set(items) if kind == "set" else frozenset(items)
    if kind == "dict" and isinstance(obj.get("items"), list) and \
            all(isinstance(p, list) and len(p) == 2 for p in obj["items"]):
        out = {}
        for k, v in obj["items"]:
            key = _decode(k, arrays, where)
            if isinstance(key, (list, dict, set, np.ndarray)):
                raise InputError(f"{where}: an extra value has a dict key of type "
                                 f"{type(key).__name__}; the file is damaged.")
            out[key] = _decode(v, arrays, where)
        return out
    raise InputError(f"{where}: an extra value holds a malformed {kind!r} entry; the file is damaged.")


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
