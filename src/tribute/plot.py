"""Plots for attributions and their evaluation: ``import tribute.plot``.

A stable public name for :mod:`tribute.viz` (the README's ``tribute.plot``): every function
here is the one of :mod:`tribute.viz`, re-exported so that both ``import tribute.plot`` and
``from tribute.plot import waterfall`` work. Figures are matplotlib
:class:`~matplotlib.figure.Figure` objects created without ``pyplot`` (headless, never kept
alive by pyplot's figure manager).

>>> import numpy as np
>>> from tribute.plot import bar
>>> fig = bar(np.array([[0.5, -0.2, 0.1]]), ["a", "b", "c"])
>>> type(fig).__name__
'Figure'
"""

from __future__ import annotations

from . import viz as _viz
from .viz import *  # noqa: F403  (the same functions, whatever viz adds)

__all__ = list(_viz.__all__)
