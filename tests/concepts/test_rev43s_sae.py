"""rev43s: the modules an SAE function reaches (small43) were looked up by every name in its code,
attribute names included: the decoder ``lambda z: sm.head(z)`` reached an unrelated global
module named ``head``. It ran in eval mode during each pass (the user left it training) and its
weights entered the SAE's digest, so changing it refused a metric on the SAE's own credits.
Truth: the unrelated module is never called by the SAE; the credits of the eval-mode splice are
computed by hand (zero ablation of each latent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute_testing import seeded_tanh_net

DT = torch.float64
#: an unrelated module that shares a name with an attribute of the SAE (``sm.head``)
head = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).double().train()
FLAGS: list[bool] = []


class _SAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(2)
        self.enc = nn.Linear(4, 5, dtype=DT)
        self.head = nn.Linear(5, 4, dtype=DT)  # the decoder
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=DT))


def _net() -> nn.Sequential:
    return seeded_tanh_net(6)


def _encode(sm: _SAE, a: torch.Tensor) -> torch.Tensor:
    FLAGS.append(bool(globals()["head"].training))  # what the unrelated module's flag is mid-pass
    return torch.relu(sm.enc(a))


def test_an_unrelated_global_named_like_an_sae_attribute_is_left_alone() -> None:
    net, sm = _net(), _SAE()
    sae = tribute.SAE(lambda a: _encode(sm, a), lambda z: sm.head(z), at="1")
    x = torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    players = tribute.components(net, sae=sae)
    FLAGS.clear()
    got = tribute.explain(net, x, method="feature_ablation", players=players, target=0)
    # by hand: v(all) - v(all without latent j), error term kept
    with torch.no_grad():
        h = net[1](net[0](x))
        z = torch.relu(sm.enc(h))
        rec = sm.head(z)
        want = np.stack([(net[2](h)[:, 0] - net[2](h + sm.head(z * (torch.arange(5) != j)) - rec)[:, 0]).numpy()
                         for j in range(5)], 1)
    np.testing.assert_allclose(np.asarray(got.values)[:, :5], want, atol=1e-12)
    assert FLAGS and all(FLAGS)  # it stayed in training mode during every pass
    assert head.training and head[1].training and all(p.requires_grad for p in head.parameters())
    # its weights are not the SAE's: changing them keeps the credits' sites (a metric still runs)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(1.0)
    score = tribute.evaluate(net, x, got, metric="deletion", players=players, target=0)
    assert np.isfinite(np.asarray(score.scores, dtype=np.float64)).all()


class _Recurrent(nn.Module):
    def __init__(self, kind: str, bidirectional: bool) -> None:
        super().__init__()
        torch.manual_seed(1)
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cls(4, 5, batch_first=True, bidirectional=bidirectional, num_layers=2, dtype=DT)
        self.dirs = 2 if bidirectional else 1
        self.fc = nn.Linear(5 * self.dirs, 2, dtype=DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _seq, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.fc(torch.cat(list(h[-self.dirs:]), -1))  # reads h_n only


@pytest.mark.parametrize("kind,bidirectional", [("gru", False), ("lstm", True)])
def test_an_sae_spliced_at_an_rnn_reaches_the_h_n_the_model_reads(kind: str, bidirectional: bool) -> None:
    """The latents of an SAE at an LSTM / GRU got all-zero credits when the model reads h_n
    (as component players did before small43). Truth by hand: the spliced output sequence, whose
    last step (first step backwards) is the state the model reads."""
    m = _Recurrent(kind, bidirectional).eval()
    width = 5 * m.dirs
    g = torch.Generator().manual_seed(3)
    enc, dec = nn.Linear(width, 6, dtype=DT), nn.Linear(6, width, dtype=DT)
    with torch.no_grad():
        for p in (*enc.parameters(), *dec.parameters()):
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    sae = tribute.SAE(lambda a: torch.relu(enc(a)), dec, at="rnn")
    x = torch.randn(3, 6, 4, dtype=DT, generator=g)
    got = tribute.explain(m, x, method="feature_ablation", players=tribute.components(m, sae=sae), target=0)
    with torch.no_grad():
        seq, _ = m.rnn(x)
        z = torch.relu(enc(seq))
        rec = dec(z)

        def v(keep: torch.Tensor) -> torch.Tensor:
            new = seq + (dec(z * keep) - rec)
            last = new[:, -1, :5] if m.dirs == 1 else torch.cat([new[:, -1, :5], new[:, 0, 5:]], -1)
            return m.fc(last)[:, 0]

        full = v(torch.ones(6, dtype=DT))
        want = np.stack([(full - v((torch.arange(6) != j).to(DT))).numpy() for j in range(6)], 1)
    assert np.abs(want).max() > 1e-2
    np.testing.assert_allclose(np.asarray(got.values)[:, :6], want, atol=1e-12)
    assert not m.rnn._forward_hooks
