"""Review rev42b (stop 42) of aud42s: TCAV's numpy dtype handling and label_leakage's refusal.

- TCAV kept integer arrays integer for any model holding an nn.Embedding, so uint8 pixel arrays
  for a model with a patch convolution and an Embedding position table (CLIP's vision tower) were
  refused as examples "the model cannot take" (before aud42s they were read as floats).
- label_leakage refused a model in training mode whose dropouts have p=0 (timm's defaults): it
  draws nothing, the KLs are exact.
Truths: the same examples given as float tensors; KL by hand with softmax.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

DT = torch.float64


class _ClipLike(nn.Module):
    """A patch convolution plus an nn.Embedding position table (as HF's CLIPVisionEmbeddings)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.patch, self.pos = nn.Conv2d(3, 4, 2, stride=2), nn.Embedding(4, 4)
        self.act, self.head = nn.ReLU(), nn.Linear(16, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.register_buffer("ids", torch.arange(4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2) + self.pos(self.ids)
        out: torch.Tensor = self.head(self.act(t).flatten(1))
        return out


def test_tcav_reads_uint8_pixels_as_floats_for_a_model_with_a_convolution_and_an_embedding() -> None:
    from tribute.methods.tcav import tcav

    rng = np.random.default_rng(0)
    x, c, r = (rng.integers(0, 256, (n, 3, 4, 4)).astype(np.uint8) for n in (6, 6, 12))
    kw = {"layer": "act", "target": 1, "n_random": 3, "n_permutations": 20, "seed": 1}
    net = _ClipLike().eval()
    truth = tcav(net, *(torch.as_tensor(a, dtype=torch.float32) for a in (x, c, r)), **kw)  # type: ignore[arg-type]
    got = tcav(net, x, c, r, **kw)  # type: ignore[arg-type]  # before: InputError (uint8 kept)
    np.testing.assert_array_equal(got.scores, truth.scores)
    np.testing.assert_array_equal(got.random_scores, truth.random_scores)
    assert got.p_value == truth.p_value


def test_label_leakage_takes_a_training_mode_model_whose_dropouts_have_p_0() -> None:
    import tribute
    from tribute.methods.shap_kl import label_leakage

    g = torch.Generator().manual_seed(7)
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.0), nn.Tanh(), nn.Linear(8, 3)).double().train()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    x = torch.randn(5, 4, generator=g, dtype=DT)
    sel = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    got = label_leakage(tribute.build_game(net, x, output="kl", baseline=0.0), sel)  # before: InputError
    with torch.no_grad():
        pr = torch.softmax(net(x), 1).numpy()
        q = torch.softmax(net(x * torch.as_tensor(sel, dtype=DT)), 1).numpy()
    np.testing.assert_allclose(got.kl_per_input, (pr * np.log(pr / q)).sum(1), rtol=1e-10, atol=1e-14)
    assert net.training


class _Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.emb, self.act, self.head = nn.Embedding(10, 4), nn.ReLU(), nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.act(self.emb(x)).mean(1))
        return out


def test_tcav_takes_uint16_and_int16_numpy_token_ids() -> None:
    # token files are often uint16 (nanoGPT's train.bin); an Embedding takes int64 / int32 indices
    # only, and the ids were kept uint16: refused as examples "the model cannot take"
    from tribute.methods.tcav import tcav

    rng = np.random.default_rng(0)
    x, c, r = rng.integers(0, 10, (6, 5)), rng.integers(0, 5, (6, 5)), rng.integers(0, 10, (12, 5))
    kw = {"layer": "act", "target": 1, "n_random": 3, "n_permutations": 20, "spatial": "mean",
          "channel_axis": -1, "seed": 2}
    net = _Tokens().eval()
    truth = tcav(net, *(torch.as_tensor(a) for a in (x, c, r)), **kw)  # type: ignore[arg-type]
    for dt in (np.uint16, np.int16, np.uint8):
        got = tcav(net, *(a.astype(dt) for a in (x, c, r)), **kw)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got.scores, truth.scores)
        np.testing.assert_array_equal(got.random_scores, truth.random_scores)
        assert got.p_value == truth.p_value


class _Tabular(nn.Module):
    """Feature 0 categorical (an Embedding table, cast inside), features 1..3 numeric."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(2)
        self.emb, self.lin, self.act, self.head = nn.Embedding(5, 2), nn.Linear(3, 2), nn.ReLU(), nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.act(torch.cat([self.emb(x[:, 0].long()), self.lin(x[:, 1:])], 1)))
        return out


def test_tcav_reads_integer_tables_as_numbers_for_a_model_that_casts_its_categorical_column() -> None:
    # integer arrays were kept integer for any model holding an Embedding: a tabular net fed
    # integer features was refused ("mat1 and mat2 must have the same dtype"); read as floats before aud42s
    from tribute.methods.tcav import tcav

    rng = np.random.default_rng(3)
    x, c, r = rng.integers(0, 5, (6, 4)), rng.integers(0, 5, (5, 4)), rng.integers(0, 5, (12, 4))
    kw = {"layer": "act", "target": 1, "n_random": 3, "n_permutations": 20, "seed": 1, "batch_size": 4}
    net = _Tabular().eval()
    truth = tcav(net, *(torch.as_tensor(a, dtype=torch.float32) for a in (x, c, r)), **kw)  # type: ignore[arg-type]
    got = tcav(net, x, c, r, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.scores, truth.scores)
    np.testing.assert_array_equal(got.random_scores, truth.random_scores)
    np.testing.assert_array_equal(got.cav, truth.cav)
    assert got.p_value == truth.p_value
    assert got.n_evals == truth.n_evals + 4  # the first pass (4 concept rows as ids) failed
    assert not net.training and all(not m._forward_hooks for m in net.modules())
