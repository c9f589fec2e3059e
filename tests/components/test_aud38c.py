"""aud38c: AtP* on grouped-query key heads, reference rows of mean/resample counted, and
component methods checked against references computed outside tribute."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from component_models import hf_last
from torch import nn

import tribute
from tribute.games.components import components
from tribute_testing import RowCounter

T = pytest.importorskip("transformers")

H, KV, D, DH, V = 4, 2, 16, 4, 50


def _llama(layers: int = 2, scale: float = 1.0) -> nn.Module:
    model = hf_last(lambda: T.LlamaModel(T.LlamaConfig(
        hidden_size=D, num_attention_heads=H, num_key_value_heads=KV, intermediate_size=32,
        num_hidden_layers=layers, vocab_size=V, attn_implementation="eager")))
    with torch.no_grad():  # sharp attention (the saturation the QK fix is for)
        for lay in model.m.layers:
            lay.self_attn.q_proj.weight.mul_(scale)
            lay.self_attn.k_proj.weight.mul_(scale)
    return model


def _ids(seed: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (2, 6), generator=torch.Generator().manual_seed(seed))


def _key_head_qk_fix(model: nn.Module, x: torch.Tensor, layer: int, j: int) -> np.ndarray:
    """AtP*'s QK fix for key head ``j`` by hand, without any grouping convention:
    ``sum over all query heads <z - z'_j, dv/dz>`` with ``z`` the clean input of o_proj and
    ``z'_j`` that input with key head ``j`` (alone) zeroed."""
    att = model.get_submodule(f"m.layers.{layer}.self_attn")
    o_proj, k_proj = att.get_submodule("o_proj"), att.get_submodule("k_proj")
    seen: dict[str, torch.Tensor] = {}

    def probe(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        seen["z"] = args[0].detach().requires_grad_(True)
        return (seen["z"],)

    handle = o_proj.register_forward_pre_hook(probe)
    model(x)[:, 0].sum().backward()
    handle.remove()
    model.zero_grad()
    z, grad = seen["z"].detach(), seen["z"].grad
    assert grad is not None

    def zero_head(_m: nn.Module, _a: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[..., j * DH : (j + 1) * DH] = 0.0
        return out

    handles = [k_proj.register_forward_hook(zero_head),
               o_proj.register_forward_pre_hook(lambda _m, args: seen.__setitem__("zp", args[0].detach()))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return ((z - seen["zp"]) * grad).sum((1, 2)).numpy()


def _key_head_exact(model: nn.Module, x: torch.Tensor, layer: int, j: int) -> np.ndarray:
    """Exact patching: v(N) - v(N without key head j), by a hook on k_proj."""
    k = model.get_submodule(f"m.layers.{layer}.self_attn.k_proj")

    def zero_head(_m: nn.Module, _a: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[..., j * DH : (j + 1) * DH] = 0.0
        return out

    with torch.no_grad():
        full = model(x)[:, 0]
        handle = k.register_forward_hook(zero_head)
        try:
            cut = model(x)[:, 0]
        finally:
            handle.remove()
    return (full - cut).numpy()


def test_atp_star_fixes_grouped_query_key_heads_like_the_hand_qk_fix() -> None:
    # aud38c: a k_proj with 2 key heads serving 4 query heads got plain GradDrop (the QK fix
    # skipped it); the fix recomputes each query head's attention with its key head ablated
    model = _llama(scale=6.0)
    x = _ids()
    paths = ["m.layers.0.self_attn.k_proj", "m.layers.1.self_attn.k_proj"]
    players = components(model, paths, unit="head")
    assert players.sites[0].num_heads == KV
    star = tribute.explain(model, x, method="atp_star", players=players, target=0)
    assert star.extra["qk_fixed_players"] == [0, 1, 2, 3]
    got = np.asarray(star.extra["atp"])[:, 0]
    hand = np.stack([_key_head_qk_fix(model, x, lay, j) for lay in (0, 1) for j in range(KV)], 1)
    np.testing.assert_allclose(got, hand, rtol=1e-9, atol=1e-12)
    # and it is what the fix is for: nearer exact patching than plain AtP on sharp attention
    exact = np.stack([_key_head_exact(model, x, lay, j) for lay in (0, 1) for j in range(KV)], 1)
    plain = tribute.explain(model, x, method="atp", players=players, target=0).values.numpy()
    assert np.abs(got - exact).sum() < np.abs(plain - exact).sum()


def _counting() -> RowCounter:
    """tanh MLP (its layers ``inner.fc1``, ``inner.fc2``) that counts the rows it sees."""
    torch.manual_seed(0)
    return RowCounter(nn.Sequential(OrderedDict(
        fc1=nn.Linear(4, 6).double(), tanh=nn.Tanh(), fc2=nn.Linear(6, 2).double())))


@pytest.mark.parametrize("n_ref", [10, 3])
@pytest.mark.parametrize("method, budget", [("kernel_shap", 20), ("coar", 30), ("feature_ablation", None)])
def test_mean_ablation_reference_rows_are_counted_in_n_evals_and_budget(method: str, budget: int | None,
                                                                        n_ref: int) -> None:
    # aud38c: the reference pass of ablation='mean' ran 10 rows (2 inputs) that were in n_rows
    # but not in n_evals: kernel_shap budget=20 sent 50 rows (25 per input) to the model
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(n_ref, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _counting()
    players = components(model, "inner.fc1", ablation="mean", reference=ref)
    attr = tribute.explain(model, x, method=method, players=players, target=0, budget=budget)
    per_input = -(-n_ref // 2)
    assert model.rows == attr.n_rows
    # every row reached the model is counted: n_evals per input cover them (up to rounding of
    # the reference rows shared by the inputs), and the budget bounds them
    assert 2 * (attr.n_evals - per_input) + n_ref == model.rows
    if budget is not None:
        assert attr.n_evals <= budget
        assert model.rows <= 2 * budget


def test_resample_reference_rows_are_counted_in_n_evals() -> None:
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _counting()
    players = components(model, "inner.fc1", ablation="resample", reference=ref, n_resample=3)
    attr = tribute.explain(model, x, method="coar", players=players, target=0, budget=30)
    # aud50c: a coalition COAR draws twice runs once (24 draws, 7 distinct here): n_evals counts
    # the evaluations made, within the budget of 30
    assert attr.n_evals <= 30
    # v(N) once per input, every other evaluation on 3 reference rows, and the 10 reference rows
    assert model.rows == attr.n_rows == 2 * (1 + (attr.n_evals - 5 - 1) * 3) + 10


def test_a_budget_eaten_by_the_reference_pass_says_so() -> None:
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(40, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _counting()
    players = components(model, "inner.fc1", ablation="mean", reference=ref)
    with pytest.raises(tribute.errors.BudgetError, match=r"20 evaluation\(s\) per input went to the "
                       r"reference pass of ablation='mean' \(40 reference rows over 2 input"):
        tribute.explain(model, x, method="kernel_shap", players=players, target=0, budget=24)


class _SharedAttention(nn.Module):
    """Two-head attention whose one instance serves both blocks of :class:`_SharedNet`."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads = 2
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(8, 8) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, 2, 4).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        w = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)
        out: torch.Tensor = self.o_proj((w @ v).transpose(1, 2).reshape(b, t, 8))
        return out


class _SharedBlock(nn.Module):
    def __init__(self, attn: _SharedAttention) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        out: torch.Tensor = x + self.mlp(x)
        return out


class _SharedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        attn = _SharedAttention()
        self.layers = nn.ModuleList([_SharedBlock(attn), _SharedBlock(attn)])
        with torch.no_grad():
            attn.q_proj.weight.mul_(4.0)
            attn.k_proj.weight.mul_(4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lay in self.layers:
            x = lay(x)
        return x[:, -1, :2]


def test_atp_star_qk_fix_on_a_module_called_twice_ablates_one_call_at_a_time() -> None:
    # aud38c: the query module of an attention shared by two blocks was ablated at both calls in
    # one pass, so call 2's z' carried call 1's ablation, counted again through call 1's total
    # gradient (got -0.6235 / 0.2653 for the first sample, the hand QK fix -0.5870 / 0.3060)
    net = _SharedNet().double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    q_proj, o_proj = net.get_submodule("layers.0.attn.q_proj"), net.get_submodule("layers.0.attn.o_proj")
    star = tribute.explain(net, x, method="atp_star", players=components(net, "layers.0.attn.q_proj", unit="head"),
                           target=0)
    assert star.extra["qk_fixed_players"] == [0, 1]
    # by hand: clean contexts z_c (o_proj input at call c) and their total gradients dv/dz_c
    zs: list[torch.Tensor] = []

    def keep(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        args[0].retain_grad()
        zs.append(args[0])

    handle = o_proj.register_forward_pre_hook(keep)
    net(x)[:, 0].sum().backward()
    handle.remove()
    net.zero_grad()

    def local(c: int) -> torch.Tensor:
        """z'_c: every query head zeroed at call c only (the earlier calls clean)."""
        seen = {"q": 0, "o": 0}
        out: dict[str, torch.Tensor] = {}

        def zero_q(_m: nn.Module, _a: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor | None:
            seen["q"] += 1
            return torch.zeros_like(y) if seen["q"] - 1 == c else None

        def read(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen["o"] += 1
            if seen["o"] - 1 == c:
                out["z"] = args[0].detach()

        hs = [q_proj.register_forward_hook(zero_q), o_proj.register_forward_pre_hook(read)]
        with torch.no_grad():
            net(x)
        for h in hs:
            h.remove()
        return out["z"]

    hand = torch.zeros(2, 2, dtype=torch.float64)
    for c in range(2):
        grad = zs[c].grad
        assert grad is not None
        hand += ((zs[c].detach() - local(c)) * grad).reshape(2, 5, 2, 4).sum((1, 3))
    np.testing.assert_allclose(np.asarray(star.extra["atp"])[:, 0], hand.numpy(), rtol=1e-9, atol=1e-12)
    # v(N), 3 GradDrop gradient rows, 3 probe rows of the contexts, one recording pass per call
    assert star.n_evals == 1 + 3 + 3 + 2


def test_atp_star_on_shared_attention_leaves_the_model_as_it_was_after_an_exception() -> None:
    # the recording pass with one call ablated at a time fails: no hook, gradient or flag left
    from component_models import hook_count

    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _SharedNet().double().eval()
            self.calls, self.fail_at = 0, 10**9

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls >= self.fail_at:
                raise RuntimeError("boom at the recording pass")
            out: torch.Tensor = self.inner(x)
            return out

    model = Failing()
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    players = components(model, "inner.layers.0.attn.q_proj", unit="head")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.fail_at = 4  # v(N), GradDrop rows, context probe, then the recording pass
    with pytest.raises(RuntimeError, match="recording pass"):
        tribute.explain(model, x, method="atp_star", players=players, target=0)
    assert model.calls == 4
    assert hook_count(model) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.inner.modules())


def test_coar_is_the_least_squares_fit_on_its_own_masks_of_a_bert_mlp() -> None:
    from tribute.methods.component_methods import coar_masks

    model = hf_last(lambda: T.BertModel(T.BertConfig(hidden_size=16, num_attention_heads=4, intermediate_size=12,
                                                     num_hidden_layers=2, vocab_size=V)))
    x = _ids(4)
    path = "m.encoder.layer.0.intermediate"
    attr = tribute.explain(model, x, method="coar", players=components(model, path), target=0, budget=60, seed=3)
    masks = coar_masks(12, 59, 0.9, torch.Generator().manual_seed(3))  # v(N) is the budget's first
    vals = []
    for m in masks:
        h = model.get_submodule(path).register_forward_hook(lambda _m, _a, out, m=m: out * m)
        with torch.no_grad():
            vals.append(model(x)[:, 0].numpy())
        h.remove()
    design = np.concatenate([np.ones((59, 1)), masks.numpy()], 1)
    coef = np.linalg.lstsq(design, np.stack(vals), rcond=None)[0]
    scale = np.abs(coef[1:]).max()
    np.testing.assert_allclose(attr.values.numpy(), coef[1:].T, atol=1e-9 * scale)
    np.testing.assert_allclose(np.asarray(attr.extra["intercept"])[:, 0], coef[0], atol=1e-9 * np.abs(coef[0]).max())


def test_conductance_matches_captum_on_a_layer_norm_gelu_mlp() -> None:
    captum = pytest.importorskip("captum.attr")

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.ln, self.b, self.c = nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 6), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.c(torch.nn.functional.gelu(self.b(self.ln(torch.sigmoid(self.a(x))))))
            return out

    torch.manual_seed(5)
    net = Net().double().eval()
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    base = 0.3 * torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    for layer in ("ln", "b"):
        got = tribute.explain(net, x, method="conductance", players=components(net, layer), target=1,
                              baseline=base, n_steps=40).values.numpy()
        ref = captum.LayerConductance(net, net.get_submodule(layer)).attribute(
            x, baselines=base[None], target=1, n_steps=40, method="riemann_trapezoid").detach().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-12)


def test_conductance_takes_a_one_row_baseline_like_feature_games() -> None:
    # aud38c: baseline of shape (1, F) (one row, as integrated_gradients and Captum take it)
    # was refused by conductance ("expected a scalar, (5,) or (3, 5)")
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    base = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    players = components(net, "1")
    flat = tribute.explain(net, x, method="conductance", players=players, target=0, baseline=base, n_steps=8)
    row = tribute.explain(net, x, method="conductance", players=players, target=0, baseline=base[None], n_steps=8)
    # two calls: the engine's tuned chunk sizes may differ between them (last-bit differences)
    np.testing.assert_allclose(row.values.numpy(), flat.values.numpy(), rtol=1e-12, atol=1e-15)
