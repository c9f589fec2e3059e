"""aud44c: component sites returning named tuples, module objects given as sites, and PyTorch's
process-wide attention fast-path flag under two explanations in two threads.

Truth outside tribute: forward hooks written here that zero one unit, and zero ablation of a
head of ``nn.MultiheadAttention`` as zeroed input columns of its ``out_proj`` (no hooks)."""

from __future__ import annotations

import threading
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from component_models import hook_count
from torch import nn

import tribute
from tribute.games.components import Ablation, ComponentSet
from tribute.games.sites import resolve_site


class _Pair(NamedTuple):
    h: torch.Tensor
    aux: torch.Tensor


class _Sub(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> _Pair:
        return _Pair(torch.tanh(self.lin(x)), x.sum(1))


class _ReadsFields(nn.Module):
    """Reads its submodule's named-tuple output by field name."""

    def __init__(self) -> None:
        super().__init__()
        self.sub = _Sub()
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.sub(x)
        return self.out(o.h) + o.aux[:, None]


def _value_without(net: _ReadsFields, x: torch.Tensor, unit: int | None, target: int) -> np.ndarray:
    def hook(module: nn.Module, args: Any, out: _Pair) -> _Pair:
        h = out.h.clone()
        if unit is not None:
            h[:, unit] = 0.0
        return _Pair(h, out.aux)

    handle = net.sub.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return net(x)[:, target].numpy()
    finally:
        handle.remove()


def test_a_site_returning_a_named_tuple_keeps_its_fields() -> None:
    # before: the hook handed back a plain tuple and the model's ``o.h`` raised AttributeError
    torch.manual_seed(0)
    net = _ReadsFields().double()
    x = torch.randn(5, 4, dtype=torch.float64)
    players = tribute.components(net, "sub")
    fa = tribute.explain(net, x, method="feature_ablation", players=players, target=0)
    full = _value_without(net, x, None, 0)
    truth = np.stack([full - _value_without(net, x, j, 0) for j in range(3)], 1)
    np.testing.assert_allclose(np.asarray(fa.values), truth, atol=1e-12)
    at = tribute.explain(net, x, method="atp", players=players, target=0)
    # zero ablation, linear read-out: AtP is exact here
    np.testing.assert_allclose(np.asarray(at.values), truth, atol=1e-12)
    assert hook_count(net) == 0


def test_a_module_object_as_a_site_is_refused_naming_its_path() -> None:
    # before: components(net, net.out) raised "TypeError: 'Linear' object is not iterable"
    net = _ReadsFields()
    for given in (net.out, [net.out], ["sub", net.out]):
        with pytest.raises(tribute.errors.InputError, match=r"module paths.*Linear \('out'\)"):
            tribute.components(net, given)  # type: ignore[arg-type]
    with pytest.raises(tribute.errors.InputError, match="not a submodule of the model"):
        tribute.components(net, nn.Linear(2, 2))  # type: ignore[arg-type]
    assert hook_count(net) == 0


def _encoder(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
    return nn.Sequential(enc, nn.Flatten(), nn.Linear(8 * 4, 2)).eval()


def _head_truth(model: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """v(N) - v(N without head h) of target 0: head h's input columns of out_proj zeroed."""
    attn = model.get_submodule("0.layers.0.self_attn")
    assert isinstance(attn, nn.MultiheadAttention)
    w = attn.out_proj.weight
    cols = []
    with torch.no_grad():
        full = model(x)[:, 0].double()
        for h in range(2):
            saved = w[:, 4 * h : 4 * h + 4].clone()
            w[:, 4 * h : 4 * h + 4] = 0.0
            cols.append((full - model(x)[:, 0].double()).numpy())
            w[:, 4 * h : 4 * h + 4] = saved
    return np.stack(cols, 1)


@pytest.mark.parametrize("flag", [True, False])
def test_two_threads_keep_the_attention_fast_path_off_until_both_end(flag: bool) -> None:
    # before: thread A's end turned the fast path back on under thread B, whose encoder layer
    # then ran torch's fused kernel around the patched attention (credits 0.0 instead of
    # up to 0.21), and B's end wrote back the False it had found
    model_a, model_b = _encoder(0), _encoder(1)
    x = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(2))
    truth_b = _head_truth(model_b, x)
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    calls = {"a": 0, "b": 0}

    def pre_a(module: nn.Module, args: Any) -> None:
        calls["a"] += 1
        if calls["a"] == 2:  # A's first coalition pass: wait until B is inside its own
            a_inside.set()
            b_inside.wait(20)

    def pre_b(module: nn.Module, args: Any) -> None:
        calls["b"] += 1
        if calls["b"] == 2:  # B's first coalition pass: wait until A has finished
            b_inside.set()
            a_done.wait(20)

    results: dict[str, Any] = {}

    def run(name: str, model: nn.Sequential) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                players = tribute.components(model, "0.layers.0.self_attn", unit="head")
                results[name] = tribute.explain(model, x, method="feature_ablation", players=players,
                                                target=0, batch_size=64).values
        except BaseException as e:  # reported by the main thread
            results[name] = e
        finally:
            if name == "a":
                a_done.set()

    def run_b() -> None:
        a_inside.wait(20)
        run("b", model_b)

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(flag)
    handles = [model_a.register_forward_pre_hook(pre_a), model_b.register_forward_pre_hook(pre_b)]
    try:
        threads = [threading.Thread(target=run, args=("a", model_a)), threading.Thread(target=run_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        after = torch.backends.mha.get_fastpath_enabled()
    finally:
        for h in handles:
            h.remove()
        torch.backends.mha.set_fastpath_enabled(before)
    assert calls["b"] >= 2 and calls["a"] >= 2  # the interleaving happened
    assert not isinstance(results["b"], BaseException), results["b"]
    np.testing.assert_allclose(np.asarray(results["b"], dtype=np.float64), truth_b, atol=1e-5)
    assert np.abs(truth_b).max() > 0.05
    assert after is flag
    assert hook_count(model_a) == 0 and hook_count(model_b) == 0


class _Siamese(nn.Module):
    """One encoder registered under two names, one per branch."""

    def __init__(self) -> None:
        super().__init__()
        enc = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
        self.enc_a = enc
        self.enc_b = enc
        self.out = nn.Linear(3, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.out(self.enc_a(a) + 2 * self.enc_b(b))


def test_one_module_under_two_names_is_refused_and_listed_once_is_every_call() -> None:
    # before: players 'enc_a.0 neuron j' and 'enc_b.0 neuron j' each got half the shared unit's
    # credit (-0.096 twice, where the branches' own are -0.240 and +0.048), without a word
    torch.manual_seed(0)
    net = _Siamese().double()
    a, b = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    with pytest.raises(tribute.errors.InputError, match=r"'enc_a\.0' and 'enc_b\.0' are one module"):
        tribute.components(net, ["enc_a.0", "enc_b.0"])
    # a player set built by hand (make_game checks too)
    built = ComponentSet(net, [resolve_site(net, n, "neuron", None) for n in ("enc_a.0", "enc_b.0")], Ablation())
    with pytest.raises(tribute.errors.InputError, match="are one module"):
        tribute.explain(net, (a, b), method="feature_ablation", players=built)
    players = tribute.components(net, "enc_a.0")
    fa = tribute.explain(net, (a, b), method="feature_ablation", players=players)
    lin = net.enc_a[0]

    def without(j: int | None) -> np.ndarray:
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            out = out.clone()
            if j is not None:
                out[:, j] = 0.0  # every call: both branches
            return out

        handle = lin.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return net(a, b)[:, 0].numpy()
        finally:
            handle.remove()

    truth = np.stack([without(None) - without(j) for j in range(3)], 1)
    np.testing.assert_allclose(np.asarray(fa.values), truth, atol=1e-12)
    assert hook_count(net) == 0


class _AliasedSite(nn.Module):
    """The site (an eval-mode Dropout: it returns its input itself) aliases ``h``, which the model
    then changes in place."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 5)
        self.tap = nn.Dropout(0.5)
        self.fc = nn.Linear(5, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        a = self.tap(h)
        h += torch.tanh(self.fc(a))
        return self.out(h)


def _act_and_grad(net: _AliasedSite, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The site's activation as it left the module (copied there) and d out[:, 0] / d it."""
    kept: list[torch.Tensor] = []

    def hook(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        leaf = out.detach().clone().requires_grad_(True)
        kept.append(leaf)
        return leaf

    handle = net.tap.register_forward_hook(hook)
    try:
        y = net(x)[:, 0].sum()
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(y, kept)
    return kept[0].detach(), g


def test_an_activation_changed_in_place_after_its_site_is_read_as_it_left_the_site() -> None:
    # before: the probe kept a view of the activation, read after the model's ``h += ...``:
    # layer_grad_cam was 0.047 off ``grad x act`` and conductance off its path sum, silently
    torch.manual_seed(0)
    net = _AliasedSite().double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    players = tribute.components(net, "tap")
    act, g = _act_and_grad(net, x)
    cam = tribute.explain(net, x, method="layer_grad_cam", players=players, target=0)
    np.testing.assert_allclose(np.asarray(cam.values), (g * act).numpy(), atol=1e-12)
    steps = 8
    base = torch.zeros_like(x)
    path = [_act_and_grad(net, base + k / steps * (x - base)) for k in range(steps + 1)]
    truth = sum(path[k][1] * (path[k + 1][0] - path[k][0]) for k in range(steps))
    assert isinstance(truth, torch.Tensor)
    cond = tribute.explain(net, x, method="conductance", players=players, target=0, n_steps=steps)
    np.testing.assert_allclose(np.asarray(cond.values), truth.numpy(), atol=1e-12)
    assert hook_count(net) == 0


def test_num_heads_without_unit_head_is_refused_not_dropped() -> None:
    # before: num_heads=2 with the default unit='neuron' gave 8 neuron players, without a word
    net = _encoder(0)
    with pytest.raises(tribute.errors.InputError, match=r"num_heads=2 is read only with unit='head'"):
        tribute.components(net, "0.layers.0.linear2", num_heads=2)
    with pytest.raises(tribute.errors.InputError, match="unit='channel'"):
        tribute.components(net, "0.layers.0.linear2", unit="channel", num_heads=2)
    assert len(tribute.components(net, "0.layers.0.linear2", unit="head", num_heads=2).sites) == 1


class _TorchAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.o = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.o(self.attn(x, x, x)[0].mean(1))
        return out


def test_the_out_proj_of_a_torch_attention_reads_its_heads_or_names_the_attention() -> None:
    # before: "module 'attn.out_proj' was not called during the forward pass" (torch's attention
    # uses its weights directly), for heads and neurons alike
    torch.manual_seed(0)
    net = _TorchAttention().double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    got = tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, "attn.out_proj", unit="head"))
    w = net.attn.out_proj.weight
    truth = []
    with torch.no_grad():
        full = net(x)[:, 0]
        for h in range(2):  # head h's input columns of out_proj zeroed
            saved = w[:, 4 * h : 4 * h + 4].clone()
            w[:, 4 * h : 4 * h + 4] = 0.0
            truth.append((full - net(x)[:, 0]).numpy())
            w[:, 4 * h : 4 * h + 4] = saved
    np.testing.assert_allclose(np.asarray(got.values), np.stack(truth, 1), atol=1e-12)
    assert got.player_names == ["attn.out_proj head 0", "attn.out_proj head 1"]
    with pytest.raises(tribute.errors.UnsupportedModelError, match=r"components\(model, 'attn', unit='neuron'\)"):
        tribute.components(net, "attn.out_proj")
    assert hook_count(net) == 0


@pytest.mark.parametrize("seed", ["x", 1.5, None, -3, 2**70])
def test_a_bad_resample_seed_is_refused_up_front(seed: Any) -> None:
    # before: "x" / None / 2**70 raised a bare ValueError / TypeError after the reference pass;
    # 1.5 was cut to 1 without a word
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    ref = torch.randn(9, 4)
    with pytest.raises(tribute.errors.InputError, match="seed="):
        tribute.components(net, "0", ablation="resample", reference=ref, seed=seed)
    with pytest.raises(tribute.errors.InputError, match="seed="):
        Ablation("resample", reference=ref, seed=seed)


def test_numpy_ints_are_taken_for_n_resample_and_seed() -> None:
    # before: n_resample=np.int64(4) was refused as "must be a positive int"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    x, ref = torch.randn(3, 4, dtype=torch.float64), torch.randn(9, 4, dtype=torch.float64)
    numpy_kw = tribute.components(net, "0", ablation="resample", reference=ref,
                                  n_resample=np.int64(4), seed=np.int64(3))  # type: ignore[arg-type]
    plain = tribute.components(net, "0", ablation="resample", reference=ref, n_resample=4, seed=3)
    a = tribute.explain(net, x, method="feature_ablation", players=numpy_kw, target=0)
    b = tribute.explain(net, x, method="feature_ablation", players=plain, target=0)
    assert type(numpy_kw.ablation.n_resample) is int and type(numpy_kw.ablation.seed) is int
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))
    # truth: the 4 drawn reference rows' activations averaged by hand (unit 1 left out)
    idx = torch.randperm(9, generator=torch.Generator().manual_seed(3))[:4]
    with torch.no_grad():
        acts = net[0](ref[idx])
        full = net(x)[:, 0]
        left_out = torch.stack([net[2](net[1](torch.cat([net[0](x)[:, :1], acts[r : r + 1, 1:2].expand(3, 1),
                                                         net[0](x)[:, 2:]], 1)))[:, 0] for r in range(4)]).mean(0)
    np.testing.assert_allclose(np.asarray(a.values)[:, 1], (full - left_out).numpy(), atol=1e-12)


def test_two_sites_giving_one_tensor_are_refused_and_an_in_place_relu_is_not() -> None:
    # before: a Sequential and its last child (or an eval-mode Dropout after it) were two sets
    # of players for one activation, each unit credited half (-0.077 twice for a unit of -0.154)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.1)),
                        nn.Linear(3, 1)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    for pair in (["2", "2.0"], ["2.0", "2.1"]):
        with pytest.raises(tribute.errors.InputError, match="give the same activation tensor"):
            tribute.explain(net, x, method="exact_shapley", players=tribute.components(net, pair))
        assert hook_count(net) == 0
    # a BatchNorm site and the in-place ReLU after it share one tensor object, not its values
    bn = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(inplace=True), nn.Linear(5, 1)).double().eval()
    got = tribute.explain(bn, x, method="feature_ablation", players=tribute.components(bn, ["1", "2"]))
    with torch.no_grad():
        h = bn[1](bn[0](x))
        full = bn[3](torch.relu(h))[:, 0]
        # zeroing unit j before or after the ReLU removes the same relu(h_j)
        one = torch.stack([full - bn[3](torch.relu(h * (torch.arange(5) != j)))[:, 0] for j in range(5)], 1)
    np.testing.assert_allclose(np.asarray(got.values), torch.cat([one, one], 1).numpy(), atol=1e-12)
