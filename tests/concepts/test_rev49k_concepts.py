"""Review rev49k (stop 49) of aud49k's concept fixes.

``top_k_selection`` refused every NaN credit (aud49k), which also refused the NaN padding that
``tribute.explain`` gives the shorter texts of a batch: the documented chain
``explain(texts, output="kl") -> top_k_selection(attr, k) -> label_leakage(game, selection)``
raised, where main kept each text's own ``k`` largest credits. CRAFT with one image and
``sampler="random"`` still crashed after the crops ran for seeds of ``2**64`` or more (accepted by
the check, and taken by ``sampler="sobol"`` and by several images)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.methods.craft import craft
from tribute.methods.shap_kl import top_k_selection
from tribute.methods.sobol import replicate_count, sobol_designs
from tribute.models.text import WordTokenizer

_VOCAB = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
_TEXTS = ["a quick fox", "the cat sat on the mat and ran far over dog", "the lazy dog jumps"]


class _Bag(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = nn.Embedding(vocab, 6)
        self.lin = nn.Linear(6, 3)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(vocab, 6, generator=g))
            self.lin.weight.copy_(torch.randn(3, 6, generator=g))
            self.lin.bias.copy_(torch.randn(3, generator=g))
        self.double().eval()

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        m = (torch.ones_like(ids) if attention_mask is None else attention_mask).unsqueeze(-1).double()
        return self.lin(torch.tanh((self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1.0)))


def _hand_top_k(rows: list[list[float]], width: int, k: int) -> np.ndarray:
    """The ``k`` largest of each row's own credits (ties: lower index first), padded with False."""
    out = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        for j, _ in sorted(enumerate(row), key=lambda p: (-p[1], p[0]))[:k]:
            out[i, j] = True
    return out


def test_top_k_selection_keeps_each_texts_own_credits_past_its_nan_padding() -> None:
    tok = WordTokenizer(_VOCAB, bos=True)
    net = _Bag(tok.vocab_size)
    kw: dict[str, Any] = {"tokenizer": tok, "method": "exact_shapley", "output": "kl", "removal": "mask",
                          "progress": False}
    attr = tribute.explain(net, _TEXTS, **kw)
    alone = [np.asarray(tribute.explain(net, [t], **kw).values)[0].tolist() for t in _TEXTS]
    width = max(len(a) for a in alone)
    for k in (1, 2, 3):
        sel = top_k_selection(attr, k)  # InputError ("values hold NaN") on aud49k
        assert np.array_equal(sel, _hand_top_k(alone, width, k))
    sel = top_k_selection(attr, 2)
    game = tribute.build_game(net, _TEXTS, tokenizer=tok, output="kl", removal="mask")
    rep = tribute.label_leakage(game, sel)
    # KL(p(.|x) || p(.|x_S)) by hand: the words left out replaced by the mask id, BOS kept
    for i, text in enumerate(_TEXTS):
        ids, _ = tok.encode_offsets(text)
        kept = [ids[0]] + [w if sel[i, j] else tok.mask_token_id for j, w in enumerate(ids[1:])]
        with torch.no_grad():
            p = torch.softmax(net(torch.tensor([ids])), -1)[0].numpy()
            q = torch.softmax(net(torch.tensor([kept])), -1)[0].numpy()
        assert rep.kl_per_input[i] == pytest.approx(float(np.sum(p * np.log(p / q))), rel=1e-9, abs=1e-12)


def test_top_k_selection_nan_padding_neighbours_and_refusals() -> None:
    rng = np.random.default_rng(4)
    n = 0
    for lengths in ([3, 6, 4], [6, 6, 2], [5], [2, 2]):
        rows = [rng.normal(size=m).round(1).tolist() for m in lengths]  # rounded: ties too
        pad = np.full((len(rows), 6), np.nan)
        for i, r in enumerate(rows):
            pad[i, : len(r)] = r
        spellings: list[Any] = [pad, pad.astype(np.float32), torch.from_numpy(pad), pad.tolist()]
        for given in spellings:
            for k in range(1, min(lengths) + 1):
                truth_rows = [np.asarray(r, dtype=np.asarray(given).dtype if isinstance(given, np.ndarray)
                                         else np.float64).tolist() for r in rows]
                assert np.array_equal(top_k_selection(given, k), _hand_top_k(truth_rows, 6, k))
                n += 1
            if min(lengths) < 6:
                with pytest.raises(InputError, match=rf"k={min(lengths) + 1} .*fewer credits.*use k <= "
                                                     rf"{min(lengths)}"):
                    top_k_selection(given, min(lengths) + 1)
    assert n == 48
    # a NaN before a row's end has no rank; an all-NaN row has no credits
    with pytest.raises(InputError, match=r"NaN before the end of 1 of 2 rows \(first: row 0\)"):
        top_k_selection(np.array([[0.1, np.nan, 0.5, 0.2], [0.3, 0.1, 0.2, np.nan]]), 2)
    with pytest.raises(InputError, match=r"row 1, 0 players.*all NaN"):
        top_k_selection(np.array([[0.1, 0.4, 0.5], [np.nan] * 3]), 1)
    with pytest.raises(InputError, match=r"row 1, 1 players\); use k <= 1 .* and drop the 1 rows .*\(first: row 2\)"):
        top_k_selection(np.array([[0.1, 0.4, np.nan], [0.5, np.nan, np.nan], [np.nan] * 3]), 2)


def _hand_sobol(net: nn.Sequential, img: torch.Tensor, W: np.ndarray, target: int, n: int, seed: int) -> np.ndarray:
    """Jansen total indices of the concepts ``W`` on designs drawn from ``seed`` (jackknifed over replicates)."""
    got: list[torch.Tensor] = []
    h = net[3].register_forward_hook(lambda _m, _i, o: got.append(o.detach()))
    with torch.no_grad():
        net(img[None])
    h.remove()
    c, hh, ww = got[0].shape[1:]
    u = np.stack([nnls(W.T, a)[0] for a in got[0][0].reshape(c, -1).T.numpy()])
    reps = replicate_count(n, "random")
    a, b = (t.numpy() for t in sobol_designs(W.shape[0], n, seed, "random", replicates=reps))

    def f(m: np.ndarray) -> float:
        out = torch.from_numpy(((u * m[None]) @ W).T.reshape(1, c, hh, ww))
        hk = net[3].register_forward_hook(lambda *_: out)
        with torch.no_grad():
            y = float(net(img[None])[0, target])
        hk.remove()
        return y

    fa, fb = np.array([f(m) for m in a]), np.array([f(m) for m in b])
    fc = np.array([[f(np.where(np.arange(W.shape[0]) == j, b[q], a[q])) for q in range(n)] for j in range(W.shape[0])])

    def ratio(keep: np.ndarray) -> np.ndarray:
        return np.asarray(((fa[keep][None] - fc[:, keep]) ** 2).mean(1) / (2 * np.var(np.r_[fa[keep], fb[keep]])))

    rep = np.arange(n) % reps
    full = ratio(np.ones(n, dtype=bool))
    return np.asarray(reps * full - (reps - 1) * np.mean([ratio(rep != q) for q in range(reps)], axis=0))


def test_craft_one_image_random_sampler_takes_seeds_of_2_to_the_64_and_more() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).double().eval()
    img = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rows = [0]
    h = net.register_forward_pre_hook(lambda _m, a: rows.__setitem__(0, rows[0] + int(a[0].shape[0])))
    kw: dict[str, Any] = {"layer": "3", "target": 1, "n_concepts": 2, "n_crops": 5, "n_designs": 8,
                          "sampler": "random"}
    try:
        big = craft(net, img, seed=2**64 + 3, **kw)  # ValueError 'Overflow when unpacking long long' on aud49k
        assert big.n_evals == rows[0] == 5 + 1 + 8 * (2 + 2)
        again = craft(net, img, seed=2**64 + 3, **kw)
        huge = craft(net, img, seed=2**127 + 11, **kw)  # e.g. SeedSequence().entropy
    finally:
        h.remove()
    # the seed the designs are drawn from: spawned from the given seed, as for several images
    drawn = int(np.random.SeedSequence(2**64 + 3).spawn(1)[0].generate_state(1)[0])
    truth = _hand_sobol(net, img[0], big.concepts, 1, 8, drawn)
    np.testing.assert_allclose(big.image_importances[0], truth, rtol=0, atol=1e-12)
    assert np.array_equal(big.importances, again.importances) and np.array_equal(big.crop_boxes, again.crop_boxes)
    assert not np.array_equal(big.importances, huge.importances)
    assert np.isfinite(big.importances).all() and np.isfinite(huge.importances).all()
    assert not net.training and all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
