"""small39: the page of ``tribute explain`` names the classes as ``--target`` named them, and the
command lines share one positive-int argparse type from a low module."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest

from tribute import cli, params
from tribute.jobs import cli as jobs_cli
from tribute_testing import factory_module

FACTORY = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


def make():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = np.array(["<b>cat</b>", "dog", "eel"])[rng.integers(0, 3, 60)]
    return LogisticRegression().fit(x, y)
'''


def test_html_page_shows_the_target_labels_escaped(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(3, 3)))
    with factory_module(tmp_path, "small39_labels", FACTORY):
        assert cli.main(["explain", "--model", "small39_labels:make", "--data", str(tmp_path / "x.npy"),
                         "--method", "exact_shapley", "--target", "<b>cat</b>,eel", "--out",
                         str(tmp_path / "out"), "--no-progress"]) == 0
    page = (tmp_path / "out" / "attribution.html").read_text(encoding="utf-8")
    heads = re.findall(r"<th>(sample [^<]*)</th>", page)
    # before: "sample 0 (target 0)" / "(target 2)", the output columns of the labels
    assert heads[:3] == [f"sample {i} (target &lt;b&gt;cat&lt;/b&gt;)" for i in range(3)]
    assert heads[3:6] == [f"sample {i} (target eel)" for i in range(3)]
    assert "target column 1 (eel)" in page
    assert "<b>cat</b>" not in page  # escaped


def test_one_positive_int_type_shared_by_the_command_lines() -> None:
    # jobs/cli._positive and cli._int_at_least were two copies of one check; the alias is gone
    # (stop 40): bench/cli uses params.int_at_least itself
    assert not hasattr(cli, "_int_at_least")
    assert not hasattr(jobs_cli, "_positive")
    parse = params.int_at_least(1, "leave it out")
    assert parse("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"0 must be at least 1 \(leave it out\)"):
        parse("0")
    with pytest.raises(argparse.ArgumentTypeError, match="'x' is not an int"):
        parse("x")
