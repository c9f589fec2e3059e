"""small48a: viz.leaderboard on bench's leaderboard.csv read with the csv module.

The CSV now has a row (empty mean, its status and message) for a method whose explanation
failed; read with ``csv.DictReader`` every field is text: the empty mean raised "could not
convert string to float: ''" and the ``higher_is_better`` column ("True") was refused as a
direction before the fix. pandas (NaN for the empty field, bools) drew them already.
"""

from __future__ import annotations

import csv
import io

import numpy as np
from matplotlib.patches import Rectangle

from tribute import viz

_CSV = """suite,seed,case,method,reference,metric,higher_is_better,mean,stderr,n,rank,tied_with_best,status,message
tiny,0,symbolic,saliency,False,deletion,False,0.25,0.01,8,1,True,ok,
tiny,0,symbolic,random,True,deletion,False,0.75,,8,2,False,ok,
tiny,0,symbolic,lime,False,deletion,False,,,,,,failed,RuntimeError: boom
"""


def test_leaderboard_reads_csv_module_rows_of_a_failed_method() -> None:
    rows = list(csv.DictReader(io.StringIO(_CSV)))
    fig = viz.leaderboard(rows)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    widths = sorted(float(p.get_width()) for p in bars)
    assert widths == [0.25, 0.75]  # the two scored methods, drawn at their means
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("n/a") == 1 and any(t.startswith("0.25") for t in labels)
    assert "lower is better" in ax.get_title()
    # the best (lowest) mean is highlighted: saliency's bar is the best colour
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["saliency", "random", "lime"]
    colors = {float(p.get_width()): tuple(np.round(np.asarray(p.get_facecolor(), dtype=float), 3)) for p in bars}
    assert colors[0.25] != colors[0.75]
