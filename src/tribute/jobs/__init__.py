"""Dataset jobs: explain a data set of any length in shards that survive ``kill -9``.

>>> tribute.explain_dataset("mypkg.models:make_mlp", "X.npy", out="run/",  # doctest: +SKIP
...                         weights="w.safetensors", method="kernel_shap", budget=256,
...                         backend="processes", workers=4)

A job is a list of shards whose results depend only on (settings, seed, shard index); each
finished shard is written atomically next to a manifest, so a killed job resumes to a result
byte-identical to an uninterrupted run. Backends (``local``, ``processes``, ``ray``) only
decide where shards run.
"""

from __future__ import annotations

from .api import DEFAULT_SHARD_SIZE, explain_dataset
from .data import Dataset, load_dataset
from .shards import shard_seed

__all__ = ["DEFAULT_SHARD_SIZE", "Dataset", "explain_dataset", "load_dataset", "shard_seed"]
