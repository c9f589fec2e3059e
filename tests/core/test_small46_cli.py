"""small46: CLI labels.

- ``render_views`` labelled every sample's column with the one class name it was given, also
  where the samples of that column explain different classes (a per-sample target): samples
  explaining classes 0, 2 and 1 were all headed "target cat". A name now labels a column only
  where every sample explains one class there; else the class numbers are shown.
- ``--feature-names km/h`` (one player whose name holds '/') was refused as a missing file. A
  text is read as a file path where it ends like a names file, starts like a path or names a
  file in a folder that exists; else it is a name.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

import tribute
from tribute.cli import parse_feature_names, render_views
from tribute.errors import InputError


def _page(target: object, names: list[str | None]) -> str:
    net = torch.nn.Linear(4, 3).double()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    attr = tribute.explain(net, x, method="saliency", target=target, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return render_views(attr, target_names=names)[1]


def test_a_name_does_not_label_samples_that_explain_different_classes() -> None:
    heads = re.findall(r"<th>(sample[^<]*)</th>", _page(torch.tensor([0, 2, 1]), ["cat"]))
    assert heads == ["sample 0 (target 0)", "sample 1 (target 2)", "sample 2 (target 1)"]


@pytest.mark.parametrize(("target", "names", "want"), [
    (2, ["cat"], ["sample 0 (target cat)", "sample 1 (target cat)", "sample 2 (target cat)"]),
    (torch.tensor([1, 1, 1]), ["dog"], ["sample 0 (target dog)", "sample 1 (target dog)", "sample 2 (target dog)"]),
    (1, [None], ["sample 0 (target 1)", "sample 1 (target 1)", "sample 2 (target 1)"]),
])
def test_a_name_still_labels_a_column_of_one_class(target: object, names: list[str | None],
                                                   want: list[str]) -> None:
    assert re.findall(r"<th>(sample[^<]*)</th>", _page(target, names)) == want


def test_several_targets_named_per_column() -> None:
    page = _page([0, 2], ["cat", "dog"])
    assert "target column 1 (dog)" in page and "sample 0 (target cat)" in page


@pytest.mark.parametrize("text", ["km/h", "m/s", "a/b/c", "speed km/h", "kg/m^2"])
def test_a_single_name_holding_a_slash_is_a_name(text: str) -> None:
    assert parse_feature_names(text) == [text]
    assert parse_feature_names(text, n_players=1) == [text]


def test_missing_files_are_still_refused(tmp_path: Path) -> None:
    for text in [str(tmp_path / "none"), str(tmp_path / "names.txt"), "names.txt", "./names",
                 "../names", "/nonexistent-dir/names"]:
        with pytest.raises(InputError, match="does not exist"):
            parse_feature_names(text)
    good = tmp_path / "names"
    good.write_text("km/h\nm/s\n", encoding="utf-8")
    assert parse_feature_names(str(good)) == ["km/h", "m/s"]
    assert parse_feature_names("x,y/z") == ["x", "y/z"]
