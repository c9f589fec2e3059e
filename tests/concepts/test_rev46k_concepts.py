"""Review rev46k (stop 46) of aud46k's concepts audit.

- The batch top-k refusal checked only the first pass with two different rows. A pass whose
  inputs' top latents happen to split evenly (each row's k largest are above every other row's
  (k+1)-th) passed, and later passes mixing other inputs ran silently: with ``batch_size=2`` the
  credits of 4 inputs explained together were 0.45 off the same inputs explained one at a time
  (13 of 40 seeds silently off, up to 0.77). Now every pass with different rows is checked.
- ``label_leakage`` refused pandas masks with nullable ``boolean`` / ``Int64`` columns, mixed bool
  and int columns and object arrays of booleans (dtype object), which main scored right.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError
from tribute_testing import batch_topk_encoder

DT = torch.float64




def test_batch_topk_is_refused_on_a_later_pass_when_the_first_mixed_pass_splits_evenly() -> None:
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(4, 6, dtype=DT), nn.Tanh(), nn.Linear(6, 2, dtype=DT)).eval()
    W, D = torch.randn(12, 6, dtype=DT), torch.randn(6, 12, dtype=DT)
    x = torch.randn(4, 4, dtype=DT)
    enc = batch_topk_encoder(W, 3)
    with torch.no_grad():
        h = net[1](net[0](x))
    # the encoder does couple these inputs: all four together differ from each alone ...
    assert not torch.equal(enc(h), torch.cat([enc(h[b : b + 1]) for b in range(4)]))
    # ... while the first two split evenly (the first pass mixing rows, with batch_size=2)
    assert torch.equal(enc(h[:2]), torch.cat([enc(h[b : b + 1]) for b in range(2)]))
    with pytest.raises(UnsupportedModelError, match=r"(?s)latents.*batch top-k"):
        tribute.explain(net, x, method="feature_ablation", target=0, batch_size=2,
                        players=tribute.components(net, sae=tribute.SAE(enc, lambda z: z @ D.T, at="1")))
    assert not net.training and all(not m._forward_hooks for m in net.modules())


def test_per_row_topk_runs_on_every_pass_with_unchanged_budget() -> None:
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(4, 6, dtype=DT), nn.Tanh(), nn.Linear(6, 2, dtype=DT)).eval()
    W, D = torch.randn(12, 6, dtype=DT), torch.randn(6, 12, dtype=DT)
    x = torch.randn(4, 4, dtype=DT)

    def enc(a: torch.Tensor) -> torch.Tensor:  # per-row top-3
        z = torch.relu(a @ W.T)
        v, i = z.topk(3, -1)
        return torch.zeros_like(z).scatter(-1, i, v)

    attr = tribute.explain(net, x, method="feature_ablation", target=0, batch_size=2,
                           players=tribute.components(net, sae=tribute.SAE(enc, lambda z: z @ D.T, at="1")))
    # leave-one-out by hand, each input alone
    def v(b: int, keep: torch.Tensor, err: float) -> float:
        with torch.no_grad():
            a = net[1](net[0](x[b : b + 1]))
            z = enc(a)
            return float(net[2](z * keep @ D.T + err * (a - z @ D.T))[0, 0])

    ones = torch.ones(12, dtype=DT)
    hand = np.array([[v(b, ones, 1.0) - v(b, ones.index_fill(0, torch.tensor(j), 0.0), 1.0) for j in range(12)]
                     + [v(b, ones, 1.0) - v(b, ones, 0.0)] for b in range(4)])
    np.testing.assert_allclose(np.asarray(attr.values), hand, atol=1e-12)
    assert attr.n_evals == 14  # per input: the full input and 13 leave-one-outs


@pytest.mark.parametrize("form", ["boolean", "Int64", "mixed", "object"])
def test_label_leakage_takes_pandas_nullable_and_object_masks(form: str) -> None:
    pd = pytest.importorskip("pandas")
    torch.manual_seed(0)
    net = nn.Linear(5, 3).double().eval()
    x = torch.randn(8, 5, dtype=DT)
    keep = np.zeros((8, 5), bool)
    keep[np.arange(8), np.arange(8) % 5] = True
    keep[np.arange(8), (np.arange(8) + 2) % 5] = True
    sel: Any = {"boolean": pd.DataFrame(keep).astype("boolean"),
                "Int64": pd.DataFrame(keep.astype(int)).astype("Int64"),
                "mixed": pd.DataFrame({i: keep[:, i] if i % 2 else keep[:, i].astype(int) for i in range(5)}),
                "object": keep.astype(object)}[form]
    # kl_retained by hand: mean of 1 - KL(p || p_kept) / KL(p || p_empty), the baseline 0
    with torch.no_grad():
        logp = torch.log_softmax(net(x), 1)
        kl_s = (logp.exp() * (logp - torch.log_softmax(net(x * torch.from_numpy(keep).double()), 1))).sum(1)
        kl_0 = (logp.exp() * (logp - torch.log_softmax(net(torch.zeros_like(x)), 1))).sum(1)
    rep = tribute.label_leakage(tribute.build_game(net, x, output="kl", baseline=0.0), sel)
    assert abs(rep.kl_retained - float((1 - kl_s / kl_0).mean())) < 1e-10


def test_label_leakage_still_refuses_object_masks_that_are_not_0_1() -> None:
    torch.manual_seed(0)
    net = nn.Linear(5, 3).double().eval()
    x = torch.randn(8, 5, dtype=DT)
    game = tribute.build_game(net, x, output="kl", baseline=0.0)
    for bad in (np.full((8, 5), 0.3, dtype=object), np.full((8, 5), "1", dtype=object), np.full((8, 5), None)):
        with pytest.raises(tribute.errors.InputError, match="selection must be booleans"):
            tribute.label_leakage(game, bad)


def test_tcav_takes_the_seeds_numpy_takes_as_main_did() -> None:
    # aud46k's seed check refused a BitGenerator and a list of ints (numpy's SeedSequence entropy)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(6, 5, dtype=DT, generator=g), torch.randn(3, 5, dtype=DT, generator=g) + 1
    r = torch.randn(10, 5, dtype=DT, generator=g)
    kw: dict[str, Any] = {"layer": "1", "target": 1, "n_random": 3, "n_permutations": 20}
    pairs: list[tuple[Any, Any]] = [(np.random.PCG64(5), np.random.Generator(np.random.PCG64(5))),
                                    ([5, 7], np.random.SeedSequence([5, 7]))]
    for seed, same in pairs:
        got, ref = tribute.tcav(net, x, c, r, seed=seed, **kw), tribute.tcav(net, x, c, r, seed=same, **kw)
        np.testing.assert_array_equal(got.null_scores, ref.null_scores)
        assert got.p_value == ref.p_value
    bads: list[Any] = ["5", True, [-1], 1.5]
    for bad in bads:
        with pytest.raises(tribute.errors.InputError, match="tcav: seed="):
            tribute.tcav(net, x, c, r, seed=bad, **kw)
