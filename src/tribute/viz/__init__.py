"""Plots for attributions and their evaluation (re-exported as ``tribute.plot``).

Every plotting function takes numpy arrays, torch tensors (converted without importing
torch) or attribution-like objects (anything with ``.values``; ``.player_names``,
``.method`` and ``.stderr`` are used when present) and returns a
:class:`matplotlib.figure.Figure` with an Agg canvas. Figures are created without
``matplotlib.pyplot``, so they work headless and are never kept alive by pyplot's figure
manager; :func:`to_png_bytes` and :func:`to_data_uri` turn them into self-contained images.
:func:`text` returns an HTML string.

Colours follow the sign convention: red = positive credit (the player raises the output),
blue = negative (ColorBrewer RdBu, colour-blind safe).
"""

from ._common import to_data_uri, to_png_bytes
from ._dataset import dependence, importance, interaction_heatmap
from ._eval import curves, leaderboard
from ._generation import generation_heatmap
from ._image import image, image_grid
from ._tabular import bar, beeswarm, waterfall
from ._text import HTML, text, text_highlight

__all__ = [
    "HTML",
    "bar",
    "beeswarm",
    "curves",
    "dependence",
    "generation_heatmap",
    "image",
    "image_grid",
    "importance",
    "interaction_heatmap",
    "leaderboard",
    "text",
    "text_highlight",
    "to_data_uri",
    "to_png_bytes",
    "waterfall",
]

# DhondtXAI parliament and CRAFT concepts (issue #16).
from ._craft import concept_overlay, craft_plot
from ._parliament import parliament

__all__ += ["parliament"]
__all__ += ["concept_overlay", "craft_plot"]

# Recourse (feature responsiveness) and certified attributions (issue #16).
from ._certified import certified_cosine, certified_map  # noqa: E402
from ._recourse import responsiveness_bars  # noqa: E402

__all__ += ["certified_cosine", "certified_map", "responsiveness_bars"]

# Rashomon feature interaction scores: swarm and halo plots (issue #16).
from ._rashomon import rashomon_halo, rashomon_swarm  # noqa: E402

__all__ += ["rashomon_halo", "rashomon_swarm"]

# TCAV: one concept next to its null, several concepts/layers with Bonferroni stars (issue #16).
from ._tcav import tcav_bars, tcav_plot  # noqa: E402

__all__ += ["tcav_bars", "tcav_plot"]
