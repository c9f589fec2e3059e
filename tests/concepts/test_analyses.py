"""The analysis registry: listing, running by name, the contract every analysis meets."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import tribute
from tribute.errors import InputError
from tribute.methods.analyses import ANALYSES, register_analysis


def test_every_analysis_has_paper_docstring_result_type_and_is_public() -> None:
    infos = tribute.analyses()
    assert {"tcav", "dhondt"} <= set(infos)
    for name, info in infos.items():
        assert info.name == name and info.paper.strip() and info.summary.strip()
        assert info.kind in ("concept", "decision", "robustness", "model_set", "data")
        ret = inspect.signature(info.function).return_annotation
        assert info.returns == (ret if isinstance(ret, str) else ret.__name__)
        # The function and its result type are exported at the top level.
        assert getattr(tribute, info.function.__name__) is info.function, name
        assert hasattr(tribute, info.returns), (name, info.returns)


def test_run_analysis_by_name_and_unknown_names() -> None:
    r = tribute.run_analysis("dhondt", [100_000, 80_000, 30_000, 20_000], seats=8,
                             names=["A", "B", "C", "D"])
    assert r.seats == {"A": 4, "B": 3, "C": 1, "D": 0}
    with pytest.raises(InputError, match=r"analysis='dhont' is not a registered analysis.*'dhondt'"):
        tribute.run_analysis("dhont", [1.0])


def test_registration_refuses_incomplete_entries() -> None:
    with pytest.raises(TypeError, match="kind="):
        register_analysis("x", kind="feelings", paper="p")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="paper"):
        register_analysis("x", kind="concept", paper=" ")

    def undocumented() -> int:
        return 1

    with pytest.raises(TypeError, match="no docstring"):
        register_analysis("undocumented_for_test", kind="concept", paper="p")(undocumented)

    def unannotated():
        """Doc."""

    with pytest.raises(TypeError, match="no return annotation"):
        register_analysis("unannotated_for_test", kind="concept", paper="p")(unannotated)
    assert "undocumented_for_test" not in ANALYSES and "unannotated_for_test" not in ANALYSES


def test_cli_lists_analyses() -> None:
    out = subprocess.run([sys.executable, "-m", "tribute.cli", "analyses", "--json"],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["tcav"]["kind"] == "concept" and data["tcav"]["returns"] == "TCAVResult"
    assert data["dhondt"]["function"] == "tribute.methods.dhondt.dhondt_seats"
