"""The explorer: a local web app to explain, compare and judge attributions interactively.

``tribute serve`` (or :func:`serve`) starts it; it is a client of tribute's public API
(:func:`tribute.explain`, :func:`tribute.evaluate`, the method registry, components, training
data, bench results) with views to **explain** one input, **compare** methods (Spearman
agreement, live deletion/insertion curves), inspect **components** (layers x units), read a
**leaderboard** of ``tribute bench`` results and find the **training data** behind a
prediction. Long computations are background jobs with live progress (server-sent events),
cancellable between engine chunks and cached by (subject, input, method, parameters, seed).

Needs the ``explorer`` extra (``pip install "tribute[explorer]"``: Starlette and uvicorn),
imported only when the app is built.
"""

from __future__ import annotations

from ._deps import INSTALL_HINT, require
from .app import ExplorerConfig, create_app
from .jobs import Cancelled, Job, JobManager, LRUCache
from .server import build_config, serve
from .subjects import Subject, SubjectSpec, default_specs, file_spec

__all__ = ["INSTALL_HINT", "Cancelled", "ExplorerConfig", "Job", "JobManager", "LRUCache", "Subject",
           "SubjectSpec", "build_config", "create_app", "default_specs", "file_spec", "require", "serve"]
