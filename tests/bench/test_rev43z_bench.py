"""rev43z: the bench's --seed check has the 2**64 bound of tribute.params.check_seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tribute.bench.suites import check_seed
from tribute.cli import main
from tribute.errors import InputError


def test_bench_cli_refuses_a_seed_torch_cannot_take(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # --seed 2**64 built the case, every method came back "n/a" (the seed refused inside it)
    # and the run exited 0 with an empty leaderboard; torch.Generator().manual_seed takes
    # seeds below 2**64 only
    rc = main(["bench", "--suite", "tiny", "--cases", "wine", "--methods", "saliency",
               "--metrics", "deletion", "--no-report", "--out", str(tmp_path / "o"),
               "--seed", str(2**64)])
    assert rc == 2
    assert "--seed 18446744073709551616" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bench_seed_bounds() -> None:
    with pytest.raises(InputError, match="below 2\\*\\*64"):
        check_seed(2**64)
    assert check_seed(2**64 - 1) == 2**64 - 1  # the largest seed torch takes
    import torch
    torch.Generator().manual_seed(2**64 - 1)  # independent truth: torch accepts it
    with pytest.raises((RuntimeError, ValueError)):
        torch.Generator().manual_seed(2**64)
