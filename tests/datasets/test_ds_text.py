"""Planted-trigger text and the tiny transformer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tribute.datasets as td


def test_planted_text_rule_and_ground_truth() -> None:
    ds = td.planted_text(n=500, seq_len=16, vocab=50, triggers=(7, 3), max_triggers=3, seed=1)
    X, gt = ds.X, ds.ground_truth
    assert X.dtype == np.int64 and X.shape == (500, 16)
    assert gt is not None and gt.dtype == bool and gt.shape == X.shape
    is_trigger = np.isin(X, [3, 7])
    np.testing.assert_array_equal(gt, is_trigger)
    np.testing.assert_array_equal(ds.y, is_trigger.any(1).astype(np.int64))
    assert ds.y.sum() == 250
    counts = gt.sum(1)
    assert counts[ds.y == 1].min() == 1 and counts.max() == 3
    assert X.min() >= 1 and X.max() < 50  # the pad token 0 never occurs
    assert ds.meta["pad_token"] == 0 and ds.meta["triggers"] == (3, 7)
    with pytest.raises(ValueError, match="triggers"):
        td.planted_text(triggers=(0,))
    with pytest.raises(ValueError, match="max_triggers"):
        td.planted_text(seq_len=4, max_triggers=5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tiny_transformer_structure(pooling: str) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = td.TinyTransformer(50, 16, n_layers=2, pooling=pooling).eval()  # type: ignore[arg-type]
    names = dict(model.named_modules())
    for name in ["embed", "pos_embed", "layers.0.attn", "layers.1.mlp", "layers.0.ln1",
                 "norm", "head"]:
        assert name in names, name
    attn = names["layers.0.attn"]
    assert isinstance(attn, torch.nn.MultiheadAttention) and attn.batch_first
    tokens = torch.from_numpy(td.planted_text(n=5).X)
    out = model(tokens)
    assert out.shape == (5, 2)
    torch.testing.assert_close(model.forward_embeddings(model.embed(tokens)), out)
    emb = model.embed(tokens).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.forward_embeddings(emb)[:, 1].sum(), emb)
    assert grad.shape == emb.shape and grad.abs().sum() > 0
    with pytest.raises(TypeError, match="forward_embeddings"):
        model(tokens.float())


def test_train_transformer_accuracy(tmp_path: Path) -> None:
    train, test = td.planted_text(n=2000, seed=0).split(0.25, seed=0)
    model = td.train_transformer(train, seed=0, cache_dir=tmp_path)
    assert isinstance(model, td.TinyTransformer) and not model.training
    with torch.no_grad():
        acc = (model(torch.from_numpy(test.X)).argmax(1).numpy() == test.y).mean()
    assert acc > 0.97
    with pytest.raises(ValueError, match="int64"):
        td.train_transformer(td.wine(), cache=False)
