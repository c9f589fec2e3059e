"""Real data that ships with scikit-learn (no network): digits, wine, breast cancer, diabetes.

No ground truth is known for these; they serve accuracy-free checks (faithfulness, sanity
randomisation, speed) on real distributions.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ._base import Dataset, Task, register


def patch_groups(height: int, width: int, patch: int, channels: int = 1) -> np.ndarray:
    """Integer map of non-overlapping ``patch × patch`` squares, row-major; ``C × H × W``.

    Edge patches are smaller when ``patch`` does not divide the size. All channels of a pixel
    share its group.
    """
    if patch < 1:
        raise ValueError(f"patch_groups: patch must be >= 1, got {patch}")
    cols = -(-width // patch)
    ids = (np.arange(height)[:, None] // patch) * cols + np.arange(width)[None, :] // patch
    return np.broadcast_to(ids.astype(np.int64), (channels, height, width)).copy()


def _subsample(n: int | None, total: int, seed: int, where: str) -> np.ndarray:
    if n is None or n == total:
        return np.arange(total)
    if not 1 <= n <= total:
        raise ValueError(f"{where}: n must be in 1..{total} (the dataset size), got {n}")
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch: Any = load_digits()
    return np.asarray(bunch.images, dtype=np.float32) / 16.0, np.asarray(bunch.target)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``n × C × h × w`` float images to ``n × C × size × size`` (float32)."""
    if images.shape[-2:] == (size, size):
        return np.ascontiguousarray(images, dtype=np.float32)
    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
                            size=(size, size), mode="bilinear", align_corners=False)
    return out.numpy()


def digits(n: int | None = None, size: int = 8, patch: int | None = None,
           seed: int = 0) -> Dataset:
    """Handwritten digits (scikit-learn ``load_digits``: 1797 images, 10 classes).

    Args:
        n: Random subset size; default all 1797.
        size: Side length; 8 is the original, larger sizes (e.g. 32) are bilinear upsamplings
            (``align_corners=False``). Values are in ``[0, 1]``. default=8.
        patch: Side of the square patches in ``groups``; default ``max(1, size // 8)``
            (an 8 × 8 grid of patches).
        seed: Seed of the subsample; default=0.

    Returns:
        Classification :class:`Dataset`, ``X`` float32 ``n × 1 × size × size``, ``y`` int64,
        no ground truth, ``groups`` the patch map (``1 × size × size``).
    """
    if size < 8:
        raise ValueError(f"digits: size must be >= 8 (the original resolution), got {size}")
    images, target = _digits_raw()
    idx = _subsample(n, len(images), seed, "digits")
    X = resize_images(images[idx, None], size)
    return Dataset(
        name="digits" if size == 8 else f"digits{size}",
        X=X,
        y=target[idx].astype(np.int64),
        task="classification",
        groups=patch_groups(size, size, patch or max(1, size // 8)),
        meta={"params": {"n": n, "size": size, "seed": seed},
              "n_classes": 10, "source": "sklearn.datasets.load_digits"},
    )


def _tabular(loader_name: str, name: str, task: Task, n: int | None, seed: int) -> Dataset:
    import sklearn.datasets

    bunch: Any = getattr(sklearn.datasets, loader_name)()
    X = np.asarray(bunch.data, dtype=np.float64)
    idx = _subsample(n, len(X), seed, name)
    mean, std = X.mean(0), X.std(0)
    X = ((X - mean) / std)[idx].astype(np.float32)
    target = np.asarray(bunch.target)
    meta: dict[str, Any] = {"params": {"n": n, "seed": seed},
                            "source": f"sklearn.datasets.{loader_name}",
                            "feature_mean": mean, "feature_std": std}
    if task == "classification":
        y = target[idx].astype(np.int64)
        meta["n_classes"] = int(target.max()) + 1
        meta["class_names"] = [str(c) for c in bunch.target_names]
    else:
        t_mean, t_std = float(target.mean()), float(target.std())
        y = ((target[idx] - t_mean) / t_std).astype(np.float32)
        meta.update(target_mean=t_mean, target_std=t_std)
    return Dataset(name=name, X=X, y=y, task=task,
                   feature_names=[str(f) for f in bunch.feature_names], meta=meta)


@register("wine")
def wine(n: int | None = None, seed: int = 0) -> Dataset:
    """Wine recognition (178 samples, 13 features, 3 classes), features standardised.

    ``meta["feature_mean"]``/``["feature_std"]`` undo the standardisation.
    """
    return _tabular("load_wine", "wine", "classification", n, seed)


@register("breast_cancer")
def breast_cancer(n: int | None = None, seed: int = 0) -> Dataset:
    """Breast cancer Wisconsin (569 samples, 30 features, 2 classes), features standardised."""
    return _tabular("load_breast_cancer", "breast_cancer", "classification", n, seed)


@register("diabetes")
def diabetes(n: int | None = None, seed: int = 0) -> Dataset:
    """Diabetes progression (442 samples, 10 features, regression).

    Features and target are standardised; ``meta["target_mean"]``/``["target_std"]`` undo it.
    """
    return _tabular("load_diabetes", "diabetes", "regression", n, seed)


register("digits")(functools.partial(digits, size=8))
register("digits32")(functools.partial(digits, size=32))
