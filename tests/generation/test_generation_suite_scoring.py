"""The generation suite's scoring of the planted word: ties are broken at random, not in its favour."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from tribute.bench import generation_suite as gs


def test_planted_rank_counts_ties_at_random() -> None:
    assert gs.planted_rank(np.array([0.1, 0.9, 0.2]), 1) == (1.0, 1.0)
    assert gs.planted_rank(np.array([0.1, 0.9, 0.2]), 0) == (0.0, 3.0)
    assert gs.planted_rank(np.array([0.5, 0.5, 0.2]), 0) == (0.5, 1.5)
    assert gs.planted_rank(np.zeros(6), 0) == (1 / 6, 3.5)
    assert gs.planted_rank(np.array([np.nan, 1.0, 2.0]), 0) == (0.0, 3.0)
    assert gs.planted_rank(np.array([1.0, np.nan, 0.0]), 0) == (1.0, 1.0)


def test_an_all_zero_attribution_scores_chance_not_a_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``np.argsort(-row, kind="stable")`` gave ties to the lower position, so an all-zero
    attribution scored top1 = share of prompts with the planted word first (0.19 on the 16
    default prompts, 1.0 here) and rank 2.31 instead of chance (1/6, 3.5)."""
    prompts = ["apple the of and to in answer"] * 4  # planted word first
    task = gs.CopyTask(model=torch.nn.Identity(), tokenizer=None, prompts=prompts, planted=[0] * 4, accuracy=1.0)
    monkeypatch.setattr(gs, "copy_task", lambda n, seed: task)

    def zeros(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(matrix=np.zeros((2, gs.PROMPT_WORDS)), n_evals=7)

    monkeypatch.setattr(gs, "explain_generation", zeros)
    res = gs.run_generation_suite(n_prompts=4, methods=["feature_ablation"])["results"][0]
    assert res["top1"] == pytest.approx(1 / 6) and res["rank"] == pytest.approx(3.5)
