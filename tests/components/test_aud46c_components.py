"""aud46c: component sites in torch's transformer layers (train mode, cross-attention), atp_star's
GradDrop over one block looped through a ModuleList, and the refusals of a module run on stacked
batches and of a tuple output whose first element is a scalar.

Truths are computed here without tribute: zero ablation of attention heads as zeroed input
columns of ``out_proj.weight`` (no hooks), exact Shapley values by enumerating every coalition,
and GradDrop by hand autograd (one block call's backward replaced by the identity at a time).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

import tribute
from tribute.errors import InputError, UnsupportedModelError

E, H, T, S, C = 8, 4, 4, 6, 3


def _shapley(v: Callable[[frozenset[int]], torch.Tensor], n: int) -> torch.Tensor:
    """Exact Shapley values by enumeration: ``batch x n``."""
    cache: dict[frozenset[int], torch.Tensor] = {}

    def val(s: frozenset[int]) -> torch.Tensor:
        if s not in cache:
            cache[s] = v(s)
        return cache[s]

    cols = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        acc = torch.zeros_like(val(frozenset()))
        for k in range(n):
            w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for s in itertools.combinations(others, k):
                acc = acc + w * (val(frozenset(s) | {i}) - val(frozenset(s)))
        cols.append(acc)
    return torch.stack(cols, -1)


class _Decoder(nn.Module):
    """A torch decoder layer (dropout 0.2), read out by a mean over target positions."""

    def __init__(self, norm_first: bool, batch_first: bool) -> None:
        super().__init__()
        self.dec = nn.TransformerDecoderLayer(E, H, 16, dropout=0.2, batch_first=batch_first,
                                              norm_first=norm_first)
        self.out = nn.Linear(E, C)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor, mem: torch.Tensor, causal: bool = False) -> torch.Tensor:
        if not self.batch_first:
            x, mem = x.transpose(0, 1), mem.transpose(0, 1)
        mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=x.dtype) if causal else None
        h = self.dec(x, mem, tgt_mask=mask, tgt_is_causal=causal)
        if not self.batch_first:
            h = h.transpose(0, 1)
        out: torch.Tensor = self.out(h.mean(1))
        return out


def _zeroed_heads_value(model: _Decoder, x: torch.Tensor, mem: torch.Tensor, causal: bool, site: str,
                        keep: frozenset[int], tgt: torch.Tensor) -> torch.Tensor:
    """The target with the heads outside ``keep`` zeroed: their out_proj input columns set to 0
    (in eval mode; the weights and the mode are put back)."""
    att = model.get_submodule(site)
    assert isinstance(att, nn.MultiheadAttention)
    d, was = E // H, model.training
    saved = att.out_proj.weight.detach().clone()
    model.eval()
    try:
        with torch.no_grad():
            for h in range(H):
                if h not in keep:
                    att.out_proj.weight[:, h * d : (h + 1) * d] = 0.0
            return model(x, mem, causal)[torch.arange(x.shape[0]), tgt]
    finally:
        with torch.no_grad():
            att.out_proj.weight.copy_(saved)
        model.train(was)


@pytest.mark.parametrize(("norm_first", "batch_first", "causal", "site"), [
    (False, True, False, "dec.multihead_attn"),
    (True, False, True, "dec.self_attn"),
])
def test_decoder_heads_in_train_mode_are_the_zeroed_out_proj_columns(norm_first: bool, batch_first: bool,
                                                                       causal: bool, site: str) -> None:
    # self- and cross-attention heads (memory of 6 positions, target of 4) of a torch decoder
    # layer left in train mode with dropout: explained as in eval mode, the flag left as it was
    torch.manual_seed(3)
    model = _Decoder(norm_first, batch_first).double().train()
    x, mem = torch.randn(3, T, E, dtype=torch.float64), torch.randn(3, S, E, dtype=torch.float64)
    tgt = torch.tensor([0, 2, 1])
    truth = _shapley(lambda s: _zeroed_heads_value(model, x, mem, causal, site, s, tgt), H)
    attr = tribute.explain(model, (x, mem), method="exact_shapley", target=tgt,
                           players=tribute.components(model, site, unit="head"),
                           forward_kwargs={"causal": causal})
    assert torch.as_tensor(attr.values).shape == truth.shape
    assert torch.allclose(torch.as_tensor(attr.values), truth, atol=1e-12, rtol=0)
    assert float(truth.abs().max()) > 1e-3
    assert model.training and all(m.training for m in model.modules())


class _StackedPair(nn.Module):
    """A siamese encoder run once on both sides of a pair stacked along the batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(4, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        za, zb = self.enc(torch.cat([a, b])).chunk(2)
        out: torch.Tensor = self.out(za * zb)
        return out


@pytest.mark.parametrize("method", ["feature_ablation", "atp"])
def test_a_module_run_on_stacked_batches_is_refused_naming_the_stacking(method: str) -> None:
    # aud46c: the refusal named only a sequence-first layout and batch_first=True, which is
    # neither the cause nor the fix of a module called on torch.cat([a, b])
    torch.manual_seed(0)
    model = _StackedPair().double()
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(UnsupportedModelError, match=r"shape \(6, 5\) on a forward pass of 3 rows.*6 rows are 2 x "
                       r"the pass's 3.*stacked along the batch axis.*enc\(a\), enc\(b\)"):
        tribute.explain(model, (a, b), method=method, players=tribute.components(model, "enc"), target=0)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


class _FewerRows(nn.Module):
    """A sequence-first linear layer with fewer tokens than rows (no multiple of the rows)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x.transpose(0, 1))  # T x B x F with T = 2 < B = 3
        out: torch.Tensor = self.out(h.mean(0))
        return out


def test_a_sequence_first_refusal_does_not_speak_of_stacked_batches() -> None:
    model = _FewerRows().double()
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"shape \(2, 3, 5\).*A sequence-first module") as info:
        tribute.explain(model, x, method="feature_ablation", players=tribute.components(model, "fc"), target=0)
    assert "stacked" not in str(info.value)


class _AuxFirst(nn.Module):
    """A block returning ``(aux, h)``: a per-sample scalar first, the activation second."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(x)
        return h.sum(-1), h


class _ReadsSecond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk = _AuxFirst()
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(self.blk(x)[1])
        return out


def test_a_tuple_output_with_a_scalar_first_is_refused_saying_the_first_element_is_read() -> None:
    # aud46c: the refusal said only "returned a scalar per sample" of a module returning (aux, h)
    torch.manual_seed(0)
    model = _ReadsSecond().double()
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"'blk' returned a scalar per sample.*tuple output the "
                       r"first element is read.*return the activation first"):
        tribute.explain(model, x, method="feature_ablation", players=tribute.components(model, "blk"), target=0)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.fc(x))


class _Looped(nn.Module):
    """A front layer, then residual blocks from a ModuleList (one block looped three times when tied)."""

    def __init__(self, tied: bool) -> None:
        super().__init__()
        blocks = [_Residual()] * 3 if tied else [_Residual() for _ in range(3)]
        self.pre = nn.Linear(4, 4)
        self.layers = nn.ModuleList(blocks)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.out(x)
        return out


def _graddrop_by_hand(model: _Looped, x: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """atp_star's signed GradDrop of ``pre``'s units (zero ablation) by hand: the backward pass of
    the ``l``-th block *call* replaced by the identity, one call at a time."""

    def atp(drop: int) -> torch.Tensor:
        calls = [0]
        seen: dict[str, torch.Tensor] = {}

        def skip(_m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor | None:
            c = calls[0]
            calls[0] += 1
            return out.detach() + args[0] - args[0].detach() if c == drop else None

        def probe(_m: nn.Module, _a: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
            seen["p"] = torch.zeros_like(out, requires_grad=True)
            seen["a"] = out.detach()
            return out + seen["p"]

        handles = [b.register_forward_hook(skip) for b in {id(b): b for b in model.layers}.values()]
        handles.append(model.pre.register_forward_hook(probe))
        try:
            g, = torch.autograd.grad(model(x)[:, 0].sum(), seen["p"])
        finally:
            for h in handles:
                h.remove()
        return seen["a"] * g

    plain = atp(-1)
    return torch.sign(plain) * sum((atp(c).abs() for c in layers), torch.zeros_like(plain)) / (len(layers) - 1)


def test_graddrop_of_distinct_blocks_is_the_hand_value_and_listed_twice_is_refused() -> None:
    torch.manual_seed(0)
    model = _Looped(tied=False).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    players = tribute.components(model, "pre")
    for layers in (["layers.0", "layers.1", "layers.2"], ["layers.0", "layers.2"]):
        attr = tribute.explain(model, x, method="atp_star", players=players, target=0, layers=layers)
        calls = [0, 2] if layers == ["layers.0", "layers.2"] else [0, 1, 2]
        truth = _graddrop_by_hand(model, x, calls)
        assert torch.allclose(torch.as_tensor(attr.values), truth, atol=1e-12, rtol=0)
    # aud46c: a path listed twice counted its drop twice (|AtP_-0| twice over L - 1 = 1), silently
    with pytest.raises(InputError, match=r"layers= lists 'layers.0' twice.*distinct module once"):
        tribute.explain(model, x, method="atp_star", players=players, target=0, layers=["layers.0", "layers.0"])
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


@pytest.mark.parametrize("layers", [["layers.0", "layers.1", "layers.2"], None])
def test_graddrop_over_one_block_looped_is_refused_not_counted_per_path(layers: list[str] | None) -> None:
    # aud46c: a ModuleList holding one block three times: each path's drop hook dropped the block's
    # backward pass at all three calls, three times over: 0.152 where GradDrop per call gives 0.283
    torch.manual_seed(0)
    model = _Looped(tied=True).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    truth = _graddrop_by_hand(model, x, [0, 1, 2])
    site = "pre" if layers is not None else "layers.0.fc"
    with pytest.raises(InputError, match=r"layers 'layers.0' and 'layers.1' are one module \(_Residual.*method='atp'"):
        tribute.explain(model, x, method="atp_star", players=tribute.components(model, site), target=0,
                        layers=layers)
    assert float(truth.abs().max()) > 0.1
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
