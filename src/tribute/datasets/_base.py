"""The :class:`Dataset` container and the name registry behind :func:`make`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ..registry import Registry

Task = Literal["classification", "regression"]

#: Key in :attr:`Dataset.meta` listing other meta keys whose values are per-sample
#: arrays (first axis = samples); :meth:`Dataset.subset` slices those along with ``X``.
PER_SAMPLE_KEYS = "per_sample_keys"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A benchmark dataset, optionally with known ground truth.

    Fields cannot be reassigned (the dataclass is frozen); the arrays themselves are not
    copied or locked, so treat them as read-only (``torch.as_tensor`` warns on locked arrays).

    Attributes:
        name: Registry name, e.g. ``"tabular_symbolic"``. Generation parameters are in
            ``meta["params"]``.
        X: Inputs, batch first (``n × ...``). ``float32`` for tabular and image data
            (``n × d``, ``n × C × H × W``); ``int64`` token ids (``n × seq_len``) for text.
        y: Targets, shape ``(n,)``: ``int64`` class labels or ``float32`` regression targets.
        task: ``"classification"`` or ``"regression"``.
        feature_names: One name per column for tabular data (``X.ndim == 2``), else ``None``.
        ground_truth: Mask with the same shape as ``X`` marking what truly causes the output
            (``bool``, or ``float`` for graded truth); ``None`` when unknown (real data).
        groups: Optional integer map of feature groups (superpixels, patches, cells), either
            per sample (shape of ``X``) or shared by all samples (shape ``X.shape[1:]``).
        meta: Everything else: ``"params"`` (the generator's arguments), ``"n_classes"``,
            generating models, analytic truth helpers and notes. Keys listed in
            ``meta["per_sample_keys"]`` hold per-sample arrays.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: list[str] | None = None
    ground_truth: np.ndarray | None = None
    groups: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"Dataset {self.name!r}"
        if not isinstance(self.X, np.ndarray) or self.X.ndim < 2:
            raise ValueError(f"{where}: X must be a numpy array with a batch axis, got "
                             f"{type(self.X).__name__} of shape {getattr(self.X, 'shape', None)}")
        if self.X.dtype not in (np.float32, np.int64):
            raise TypeError(f"{where}: X must be float32 (features) or int64 (token ids), got "
                            f"{self.X.dtype}; convert with X.astype(np.float32)")
        n = self.X.shape[0]
        if self.task not in ("classification", "regression"):
            raise ValueError(f"{where}: task must be 'classification' or 'regression', "
                             f"got {self.task!r}")
        if not isinstance(self.y, np.ndarray) or self.y.shape != (n,):
            raise ValueError(f"{where}: y must have shape ({n},) to match X {self.X.shape}, "
                             f"got {getattr(self.y, 'shape', None)}")
        want_y = np.int64 if self.task == "classification" else np.float32
        if self.y.dtype != want_y:
            raise TypeError(f"{where}: y must be {np.dtype(want_y)} for {self.task}, "
                            f"got {self.y.dtype}")
        if self.feature_names is not None and (
            self.X.ndim != 2 or len(self.feature_names) != self.X.shape[1]
        ):
            raise ValueError(f"{where}: feature_names needs X of shape (n, d) with "
                             f"d == {len(self.feature_names)} names, got X {self.X.shape}")
        if self.ground_truth is not None:
            gt = self.ground_truth
            if gt.shape != self.X.shape:
                raise ValueError(f"{where}: ground_truth shape {gt.shape} must equal "
                                 f"X shape {self.X.shape}")
            if gt.dtype != np.bool_ and not np.issubdtype(gt.dtype, np.floating):
                raise TypeError(f"{where}: ground_truth must be bool or float, got {gt.dtype}")
        if self.groups is not None:
            g = self.groups
            if g.shape not in (self.X.shape, self.X.shape[1:]):
                raise ValueError(f"{where}: groups shape {g.shape} must be X.shape "
                                 f"{self.X.shape} or X.shape[1:] {self.X.shape[1:]}")
            if not np.issubdtype(g.dtype, np.integer):
                raise TypeError(f"{where}: groups must be an integer array, got {g.dtype}")
        for key in self.meta.get(PER_SAMPLE_KEYS, ()):
            value = self.meta.get(key)
            if not isinstance(value, np.ndarray) or value.shape[:1] != (n,):
                raise ValueError(f"{where}: meta[{key!r}] is listed as per-sample but is not "
                                 f"an array with {n} rows")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of samples (``X.shape[0]``)."""
        return int(self.X.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (``X.shape[1:]``)."""
        return tuple(int(s) for s in self.X.shape[1:])

    @property
    def n_classes(self) -> int | None:
        """Number of classes for classification (from ``meta["n_classes"]``), else ``None``."""
        if self.task != "classification":
            return None
        return int(self.meta.get("n_classes", int(self.y.max()) + 1))

    def subset(self, index: np.ndarray | slice | list[int]) -> Dataset:
        """Return the samples selected by ``index`` (per-sample meta arrays are sliced too)."""
        idx = index if isinstance(index, slice) else np.asarray(index)
        meta = dict(self.meta)
        for key in self.meta.get(PER_SAMPLE_KEYS, ()):
            meta[key] = self.meta[key][idx]
        groups = self.groups
        if groups is not None and groups.shape == self.X.shape:
            groups = groups[idx]
        return replace(
            self,
            X=self.X[idx],
            y=self.y[idx],
            ground_truth=None if self.ground_truth is None else self.ground_truth[idx],
            groups=groups,
            meta=meta,
        )

    def split(self, test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Random train/test split.

        Args:
            test_fraction: Fraction of samples in the test part, in ``(0, 1)``; default=0.25.
            seed: Seed of the shuffling (a local generator); default=0.

        Returns:
            ``(train, test)``, each with at least one sample: the test size
            ``round(test_fraction * n)`` is kept within ``1 .. n - 1``.
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"Dataset.split: test_fraction must be in (0, 1), "
                             f"got {test_fraction}")
        if len(self) < 2:
            raise ValueError(f"Dataset.split: dataset {self.name!r} has {len(self)} sample(s); "
                             "a train/test split needs at least 2")
        perm = np.random.default_rng(seed).permutation(len(self))
        # an empty train part (0.9 of 4 samples rounds to 4) would train a model on nothing
        n_test = min(max(1, round(test_fraction * len(self))), len(self) - 1)
        return self.subset(np.sort(perm[n_test:])), self.subset(np.sort(perm[:n_test]))

    def fingerprint(self) -> str:
        """SHA-256 of the name, task, ``X`` and ``y``: identifies the training data exactly."""
        h = hashlib.sha256()
        h.update(f"{self.name}|{self.task}|{self.X.dtype}|{self.X.shape}".encode())
        h.update(np.ascontiguousarray(self.X).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        gt = "none" if self.ground_truth is None else str(self.ground_truth.dtype)
        return (f"Dataset(name={self.name!r}, X={self.X.dtype}{list(self.X.shape)}, "
                f"task={self.task!r}, ground_truth={gt})")


# ---------------------------------------------------------------------------------------
# registry

Builder = Callable[..., Dataset]


def _unknown(name: str, close: list[str]) -> Exception:
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return KeyError(f"make: unknown dataset {name!r}.{hint} Available: {', '.join(available())}")


#: The dataset registry (same class as the method and metric registries).
DATASETS: Registry[Builder] = Registry("dataset", duplicate_error=ValueError,
                                       unknown_error=_unknown)


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a dataset builder under ``name``; it must accept ``n`` and ``seed``."""

    def deco(builder: Builder) -> Builder:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        return DATASETS.add(name, builder)

    return deco


def available() -> list[str]:
    """Names accepted by :func:`make`, sorted."""
    return DATASETS.names()


def make(name: str, n: int | None = None, seed: int = 0, **kwargs: Any) -> Dataset:
    """Build a registered dataset by name.

    Args:
        name: One of :func:`available`.
        n: Number of samples; ``None`` uses the dataset's default (all samples for real data).
        seed: Seed of every random choice (local generators only); default=0.
        **kwargs: Passed on to the builder (see the builder's docstring).

    Returns:
        The :class:`Dataset`.
    """
    builder = DATASETS.get(name)
    if n is not None:
        kwargs["n"] = n
    return builder(seed=seed, **kwargs)
