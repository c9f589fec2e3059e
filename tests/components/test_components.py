"""Reference tests for component games (players = units of named modules)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from component_models import (
    MLP,
    SmallCNN,
    TinyTransformer,
    TwoLinear,
    hook_count,
    overridden_forwards,
    planted_transformer,
    trigger_data,
)
from scipy.stats import spearmanr
from torch import nn

import tribute
from tribute.errors import BudgetError, InputError, UnsupportedModelError
from tribute.games._hooks import RowState, Site, installed
from tribute.games.base import Game
from tribute.games.components import Ablation, components


def _margin(out: torch.Tensor) -> torch.Tensor:
    return out[:, 1] - out[:, 0]


# ----------------------------------------------------------------------------- naive reference
def naive_loo(model: nn.Module, path: str, unit: str, x: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor],
              abl: torch.Tensor | None = None) -> torch.Tensor:
    """Ablate one unit per forward pass with a hand-written hook: ``B x units``."""
    module = model.get_submodule(path)
    with torch.no_grad():
        full = target(model(x))
        acts: list[torch.Tensor] = []
        h = module.register_forward_hook(lambda m, a, o: acts.append(o))
        model(x)
        h.remove()
    n = acts[0].shape[-1] if unit == "neuron" else acts[0].shape[1]
    out = torch.zeros(x.shape[0], n, dtype=torch.float64)
    for j in range(n):
        def hook(m: nn.Module, a: object, o: torch.Tensor, j: int = j) -> torch.Tensor:
            o = o.clone()
            fill = torch.zeros_like(o) if abl is None else abl.expand_as(o)
            if unit == "neuron":
                o[..., j] = fill[..., j]
            else:
                o[:, j] = fill[:, j]
            return o

        handle = module.register_forward_hook(hook)
        try:
            with torch.no_grad():
                out[:, j] = (full - target(model(x))).double()
        finally:
            handle.remove()
    return out


# ----------------------------------------------------------------------------- closed forms
def test_linear_model_closed_form_all_estimators() -> None:
    torch.manual_seed(0)
    net = TwoLinear().double()
    x = torch.randn(4, 5, dtype=torch.float64)
    players = components(net, "fc1", unit="neuron")
    h = net.fc1(x).detach()
    expected = (net.fc2.weight[1] * h).detach()  # output 1, zero ablation: w2_j h_j
    for method in ["exact_shapley", "feature_ablation", "atp", "input_x_gradient", "coar"]:
        attr = tribute.explain(net, x, method=method, players=players, target=1)
        np.testing.assert_allclose(attr.values.numpy(), expected.numpy(), atol=1e-9, err_msg=method)
        assert attr.player_names == [f"fc1 neuron {j}" for j in range(4)]
        assert attr.player_kind == "component"
    # mean ablation: w2_j (h_j - mean_j)
    attr = tribute.explain(net, x, method="feature_ablation", players=players, target=1, ablation="mean")
    np.testing.assert_allclose(attr.values.numpy(), (net.fc2.weight[1] * (h - h.mean(0))).detach().numpy(), atol=1e-9)


def test_efficiency_and_multi_target() -> None:
    torch.manual_seed(1)
    net = MLP().double()
    x = torch.randn(3, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", players=components(net, "fc1"), target=[0, 2])
    assert attr.values.shape == (3, 2, 5)
    assert attr.gap is not None and np.abs(attr.gap).max() < 1e-9


# ----------------------------------------------------------------------------- exact patching
@pytest.mark.parametrize("ablation", ["zero", "mean", "patch"])
def test_exact_patching_equals_naive_loop_neurons(ablation: str) -> None:
    torch.manual_seed(2)
    net = MLP().double()
    x = torch.randn(5, 6, dtype=torch.float64)
    x_cf = torch.randn(5, 6, dtype=torch.float64)
    abl = None
    if ablation == "mean":
        abl = net.act(net.fc1(x)).mean(0, keepdim=True).detach()
    elif ablation == "patch":
        abl = net.act(net.fc1(x_cf)).detach()
    players = components(net, "act", unit="neuron", counterfactual=x_cf if ablation == "patch" else None,
                         ablation=ablation)
    attr = tribute.explain(net, x, method="feature_ablation", players=players, target=2)
    ref = naive_loo(net, "act", "neuron", x, lambda o: o[:, 2], abl)
    np.testing.assert_allclose(attr.values.numpy(), ref.numpy(), atol=1e-10)
    # full() is cached from the reference pass + n coalitions (+ the counterfactual's capture
    # pass for patch: one more row per input reaches the model)
    assert attr.n_evals == 6 + (ablation == "patch")


def test_exact_patching_equals_naive_loop_channels() -> None:
    torch.manual_seed(3)
    net = SmallCNN().double()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    attr = tribute.explain(net, x, method="feature_ablation", players=components(net, "conv1", unit="channel"),
                           target=0)
    ref = naive_loo(net, "conv1", "channel", x, lambda o: o[:, 0])
    np.testing.assert_allclose(attr.values.numpy(), ref.numpy(), atol=1e-10)
    assert attr.player_names[1] == "conv1 channel 1"


def test_mha_heads_zero_ablation_equals_out_proj_column_zeroing() -> None:
    model = planted_transformer().double()
    try:
        ids, _, _ = trigger_data(6, seed=3)
        heads = components(model, ["layers.0.attn", "layers.1.attn"], unit="head")
        attr = tribute.explain(model, ids, method="feature_ablation", players=heads, target=_margin)
        assert attr.player_names[6] == "layers.1.attn head 2"
        # naive: zeroing head h's context == zeroing its columns of out_proj.weight
        ref = torch.zeros(6, 8, dtype=torch.float64)
        with torch.no_grad():
            full = _margin(model(ids))
            for li in range(2):
                w = model.block(li).attn.out_proj.weight
                for h in range(4):
                    saved = w[:, h * 4:(h + 1) * 4].clone()
                    w[:, h * 4:(h + 1) * 4] = 0.0
                    ref[:, li * 4 + h] = full - _margin(model(ids))
                    w[:, h * 4:(h + 1) * 4] = saved
        np.testing.assert_allclose(attr.values.numpy(), ref.numpy(), atol=1e-9)
    finally:
        model.float()


def test_planted_head_found_by_construction() -> None:
    model = planted_transformer()
    ids, labels, cf = trigger_data(64, seed=7)
    x, x_cf = ids[labels == 1][:8], cf[labels == 1][:8]
    heads = components(model, ["layers.0.attn", "layers.1.attn"], unit="head", ablation="patch",
                       counterfactual=x_cf)
    exact = tribute.explain(model, x, method="feature_ablation", players=heads, target=_margin).values.numpy()
    # only layers.1 head 2 can see the trigger: every other head's patch is a no-op, exactly
    others = np.delete(exact, 6, axis=1)
    assert np.abs(others).max() < 1e-5
    assert (exact[:, 6] > 1.0).all()
    for method in ["atp", "coar", "exact_shapley"]:
        vals = tribute.explain(model, x, method=method, players=heads, target=_margin).values.numpy()
        assert (np.abs(vals).argmax(1) == 6).all(), method
    # zero ablation: the planted head still dominates on trigger inputs
    zero = tribute.explain(model, x, method="feature_ablation", players=heads, target=_margin,
                           ablation="zero").values.numpy()
    assert (np.abs(zero).argmax(1) == 6).all()


# ----------------------------------------------------------------------------- MHA re-implementation
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("variant", ["plain", "masks", "kvdim", "bias_kv"])
def test_mha_forward_equivalence(batch_first: bool, variant: str) -> None:
    torch.manual_seed(4)
    kw: dict[str, Any] = {"batch_first": batch_first}
    if variant == "kvdim":
        kw.update(kdim=5, vdim=7)
    if variant == "bias_kv":
        kw.update(add_bias_kv=True)
    mha = nn.MultiheadAttention(8, 2, **kw).double().eval()
    b, lq, lk = 3, 4, 6
    q = torch.randn(b, lq, 8, dtype=torch.float64)
    k = torch.randn(b, lk, 5 if variant == "kvdim" else 8, dtype=torch.float64)
    v = torch.randn(b, lk, 7 if variant == "kvdim" else 8, dtype=torch.float64)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    call: dict[str, object] = {}
    if variant == "masks":
        kpm = torch.zeros(b, lk, dtype=torch.bool)
        kpm[0, -2:] = True
        call.update(key_padding_mask=kpm, attn_mask=torch.triu(torch.ones(lq, lk, dtype=torch.bool), 3))
    for need_weights in (True, False):
        want = mha(q, k, v, need_weights=need_weights, **call)
        site = Site("m", "", "head", "mha", num_heads=2)
        state = RowState()
        holder = nn.ModuleDict({"m": mha})
        site.path = "m"
        with installed(holder, [site], state):
            got = mha(q, k, v, need_weights=need_weights, **call)
        torch.testing.assert_close(got[0], want[0], atol=1e-12, rtol=0)
        if need_weights:
            torch.testing.assert_close(got[1], want[1], atol=1e-12, rtol=0)
        assert "forward" not in mha.__dict__


def test_encoder_layer_fast_path_is_disabled() -> None:
    torch.manual_seed(5)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                enable_nested_tensor=False).eval()
    x = torch.randn(3, 5, 8)
    heads = components(enc, ["layers.0.self_attn", "layers.1.self_attn"], unit="head")
    attr = tribute.explain(enc, x, method="feature_ablation", players=heads,
                           target=lambda o: o[:, 0, 0])
    assert attr.values.shape == (3, 4)
    assert np.abs(attr.values.numpy()).max() > 0
    assert torch.backends.mha.get_fastpath_enabled()


# ----------------------------------------------------------------------------- HF-style heads
class HFSelfAttention(nn.Module):
    """Mimics Hugging Face BertSelfAttention: returns (context (B, L, H*d), weights)."""

    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.num_attention_heads = heads
        self.attention_head_size = d // heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, length, d = x.shape
        sh = (b, length, self.num_attention_heads, self.attention_head_size)
        q, k, v = (f(x).view(sh).transpose(1, 2) for f in (self.query, self.key, self.value))
        w = torch.softmax(q @ k.transpose(-1, -2) / self.attention_head_size**0.5, -1)
        return (w @ v).transpose(1, 2).reshape(b, length, d), w


class HFAttention(nn.Module):
    """Holds ``self`` (the attention proper), as HF BERT's ``BertAttention`` does; no forward."""

    def __init__(self) -> None:
        super().__init__()
        self.self = HFSelfAttention()


class HFLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = HFAttention()
        self.dense = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dense(self.attention.self(x)[0])


class HFModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList([HFLayer(), HFLayer()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lay in self.layer:
            x = lay(x)
        return x[:, 0, :2]


def test_hf_style_heads_and_path_resolution() -> None:
    torch.manual_seed(6)
    model = HFModel().double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    heads = components(model, ["layer.0", "layer.1.attention.self"], unit="head")
    assert heads.sites[0].path == "layer.0.attention.self"
    attr = tribute.explain(model, x, method="feature_ablation", players=heads, target=1)
    assert attr.player_names == ["layer.0 head 0", "layer.0 head 1", "layer.1.attention.self head 0",
                                 "layer.1.attention.self head 1"]
    # naive: zero head h's context slice through the dense layer's input columns
    ref = torch.zeros(3, 4, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)[:, 1]
        for li in range(2):
            lay = model.layer[li]
            assert isinstance(lay, HFLayer)
            w = lay.dense.weight
            for h in range(2):
                saved = w[:, h * 4:(h + 1) * 4].clone()
                w[:, h * 4:(h + 1) * 4] = 0.0
                ref[:, li * 2 + h] = full - model(x)[:, 1]
                w[:, h * 4:(h + 1) * 4] = saved
    np.testing.assert_allclose(attr.values.numpy(), ref.numpy(), atol=1e-10)


# ----------------------------------------------------------------------------- hygiene
def test_hooks_removed_and_outputs_unchanged(planted: TinyTransformer) -> None:
    ids, _, cf = trigger_data(4, seed=9)
    with torch.no_grad():
        before = planted(ids).clone()
    heads = components(planted, ["layers.0.attn", "layers.1.attn"], unit="head")
    for method, abl in [("feature_ablation", "zero"), ("atp", "mean"), ("atp_star", "zero"),
                        ("coar", Ablation("patch", counterfactual=cf)), ("atp", Ablation("resample", n_resample=3))]:
        tribute.explain(planted, ids, method=method, players=heads, target=_margin, ablation=abl, budget=None)
        assert hook_count(planted) == 0 and overridden_forwards(planted) == 0, method
        with torch.no_grad():
            torch.testing.assert_close(planted(ids), before, atol=0, rtol=0)
    assert all(p.requires_grad for p in planted.parameters())


class Exploding(nn.Module):
    """Raises on batches larger than the inputs (i.e. during the masked, repeated-row passes)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 1)
        self.limit = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if x.shape[0] > self.limit:
            raise RuntimeError("boom")
        return self.fc2(h)


def test_hooks_removed_after_exception() -> None:
    net = Exploding()
    x = torch.randn(2, 4)
    with pytest.raises(RuntimeError, match="boom"):
        tribute.explain(net, x, method="feature_ablation", players=components(net, "fc1"), batch_size=64)
    assert hook_count(net) == 0
    with pytest.raises(RuntimeError, match="boom"):
        tribute.explain(net, x, method="atp", players=components(net, "fc1"),
                        ablation=Ablation("resample", n_resample=3), batch_size=64)
    assert hook_count(net) == 0
    net.limit = 100
    with pytest.raises(UnsupportedModelError, match="GradDrop"):  # raised by a hook mid-forward
        tribute.explain(net, x, method="atp_star", players=components(net, "fc1"), layers=["fc1", "fc2"])
    out = tribute.explain(net, x, method="feature_ablation", players=components(net, "fc1"))
    assert out.values.shape == (2, 3)
    assert torch.backends.mha.get_fastpath_enabled()


def test_batch_equals_per_sample(planted: TinyTransformer) -> None:
    ids, _, cf = trigger_data(5, seed=11)
    for method, abl in [("feature_ablation", Ablation("patch", counterfactual=cf)), ("coar", "zero"),
                        ("atp", Ablation("patch", counterfactual=cf)), ("feature_ablation", Ablation("resample", n_resample=4, reference=cf))]:
        heads = components(planted, ["layers.0.attn", "layers.1.attn"], unit="head")
        whole = tribute.explain(planted, ids, method=method, players=heads, target=_margin, ablation=abl,
                                budget=64 if method == "coar" else None).values
        for i in range(5):
            a = abl
            if isinstance(abl, Ablation) and abl.kind == "patch":
                a = Ablation("patch", counterfactual=cf[i:i + 1])
            one = tribute.explain(planted, ids[i:i + 1], method=method, players=heads, target=_margin,
                                  ablation=a, budget=64 if method == "coar" else None).values
            torch.testing.assert_close(one[0], whole[i], atol=1e-5, rtol=1e-5)


def test_batched_masks_use_few_forward_passes(planted: TinyTransformer) -> None:
    ids, _, _ = trigger_data(8, seed=12)
    heads = components(planted, ["layers.0.attn", "layers.1.attn"], unit="head")
    attr = tribute.explain(planted, ids, method="feature_ablation", players=heads, target=_margin,
                           batch_size=256)
    # 8 reference rows + 8 x 8 coalition rows, in 2 passes (not one pass per unit)
    assert attr.n_rows == 8 + 64


# ----------------------------------------------------------------------------- gradients
def test_value_and_grad_matches_finite_differences() -> None:
    torch.manual_seed(8)
    net = MLP().double()
    x = torch.randn(2, 6, dtype=torch.float64)
    game = tribute.build_game(net, x, players=components(net, "fc2", ablation="mean"), target=1)
    m = torch.rand(3, 5, dtype=torch.float64)
    vals, grads = game.value_and_grad(m)
    eps = 1e-6
    for j in range(5):
        dm = m.clone()
        dm[:, j] += eps
        fd = (game.value(dm) - vals) / eps
        np.testing.assert_allclose(grads[..., j].numpy(), fd.numpy(), atol=1e-5)
    np.testing.assert_allclose(game.value(m).numpy(), vals.numpy(), atol=1e-12)


def test_mask_integrated_gradients_completeness_and_layer_ig_parity() -> None:
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(9)
    net = MLP().double()
    x = torch.randn(3, 6, dtype=torch.float64)
    x_base = torch.randn(3, 6, dtype=torch.float64)
    players = components(net, "fc2", ablation="patch", counterfactual=x_base)
    game = tribute.build_game(net, x, players=players, target=2)
    n_steps = 200
    alphas = (torch.arange(n_steps, dtype=torch.float64) + 0.5) / n_steps
    masks = alphas[:, None].expand(n_steps, 5)
    _, ig = game.value_and_grad(masks, torch.full((n_steps,), 1.0 / n_steps, dtype=torch.float64))
    gap = ig[:, 0].sum(-1) - (game.full() - game.empty())[:, 0]
    assert gap.abs().max() < 2e-2 * (game.full() - game.empty()).abs().max()
    # Captum: layer IG on fc2's output, path between fc2(x_base) and fc2(x) (riemann_middle)
    lig = captum.LayerIntegratedGradients(net, net.fc2)
    ref = lig.attribute(x, baselines=x_base, target=2, n_steps=n_steps, method="riemann_middle")
    np.testing.assert_allclose(ig[:, 0].numpy(), ref.detach().numpy(), atol=1e-8)


def test_gradient_x_activation_parity_with_captum() -> None:
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(10)
    net = SmallCNN().double()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    attr = tribute.explain(net, x, method="atp", players=components(net, "conv2", unit="channel"), target=1)
    ref = captum.LayerGradientXActivation(net, net.conv2).attribute(x, target=1)
    np.testing.assert_allclose(attr.values.numpy(), ref.sum((2, 3)).detach().numpy(), atol=1e-10)


def test_conductance_parity_with_captum() -> None:
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(11)
    net = MLP().double()
    x = torch.randn(3, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="conductance", players=components(net, "fc2"), target=0,
                           n_steps=40)
    ref = captum.LayerConductance(net, net.fc2).attribute(x, baselines=torch.zeros_like(x), target=0,
                                                          n_steps=40, method="riemann_trapezoid")
    np.testing.assert_allclose(attr.values.numpy(), ref.detach().numpy(), atol=1e-8)


# ----------------------------------------------------------------------------- COAR and AtP*
def _linear_score(game: Game, phi: np.ndarray, alpha: float, k: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(k, game.n_players, generator=g, dtype=torch.float64) < alpha).double()
    v = game.value(masks)[:, :, 0].numpy()  # B x K
    pred = masks.numpy() @ phi.T  # K x B
    return float(np.mean([spearmanr(pred[:, b], v[b])[0] for b in range(v.shape[0])]))


def test_coar_linear_score_and_game_agnostic() -> None:
    model = planted_transformer()
    ids, _, _ = trigger_data(6, seed=13)
    heads = components(model, ["layers.0.attn", "layers.1.attn"], unit="head")
    attr = tribute.explain(model, ids, method="coar", players=heads, target=_margin, budget=200)
    assert attr.stderr is not None and attr.stderr.shape == attr.values.shape
    game = tribute.build_game(model, ids, players=heads, target=_margin)
    with torch.no_grad():
        score = _linear_score(game, attr.values.numpy(), 0.9, 100, seed=99)
    assert score > 0.8
    # COAR is generic: it runs on a feature game too (linear model: exact)
    lin = nn.Linear(4, 1).double()
    xf = torch.randn(3, 4, dtype=torch.float64)
    fa = tribute.explain(lin, xf, method="coar", budget=64)
    np.testing.assert_allclose(fa.values.numpy(), (lin.weight[0] * xf).detach().numpy(), atol=1e-9)


def test_atp_star_graddrop_terms_and_residual_layers(planted: TinyTransformer) -> None:
    ids, _, _ = trigger_data(4, seed=14)
    heads = components(planted, ["layers.0.attn", "layers.1.attn"], unit="head")
    atp = tribute.explain(planted, ids, method="atp", players=heads, target=_margin).values.numpy()
    star = tribute.explain(planted, ids, method="atp_star", players=heads, target=_margin)
    assert star.params["layers"] == ["layers.0", "layers.1"]
    gd = star.extra["graddrop"]  # B x L x T x n
    np.testing.assert_allclose(star.extra["atp"][:, 0], atp, atol=1e-5)
    # dropping a node's own layer zeroes its gradient; dropping an earlier layer changes nothing
    assert np.abs(gd[:, 0, 0, :4]).max() == 0.0 and np.abs(gd[:, 1, 0, 4:]).max() == 0.0
    np.testing.assert_allclose(gd[:, 0, 0, 4:], atp[:, 4:], atol=1e-5)
    # last-layer heads: |AtP| exactly (one non-zero term over L - 1 = 1)
    np.testing.assert_allclose(np.abs(star.values.numpy()[:, 4:]), np.abs(atp[:, 4:]), atol=1e-5)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_fix() -> None:
    net = MLP()
    with pytest.raises(InputError, match="fc3"):
        components(net, "fc3")
    with pytest.raises(InputError, match="counterfactual"):
        components(net, "fc1", ablation="patch")
    with pytest.raises(InputError, match="not one of"):
        components(net, "fc1", ablation="swap")
    with pytest.raises(UnsupportedModelError, match="heads"):
        components(net, "fc1", unit="head")
    with pytest.raises(InputError, match="per-sample shape"):
        tribute.explain(net, torch.randn(2, 6), method="atp",
                        players=components(net, "fc1", ablation="patch", counterfactual=torch.randn(2, 5)))

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)

    u = Unused()
    with pytest.raises(UnsupportedModelError, match="not called"):
        tribute.explain(u, torch.randn(2, 3), method="atp", players=components(u, "b"))
    assert hook_count(u) == 0


def test_layer_grad_cam_parity_with_captum() -> None:
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(12)
    net = SmallCNN().double()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    attr = tribute.explain(net, x, method="layer_grad_cam", players=components(net, "conv2", unit="channel"),
                           target=2)
    ref = captum.LayerGradCam(net, net.conv2).attribute(x, target=2, relu_attributions=False,
                                                        attr_dim_summation=False)
    np.testing.assert_allclose(attr.values.numpy(), ref.sum((2, 3)).detach().numpy(), atol=1e-10)


class OneAttention(nn.Module):
    """A single attention layer read out linearly at position 0 (v is linear in head outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.readout = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.attn(x, x, x)[0][:, 0])[:, 0]


def test_atp_on_head_outputs_is_exact_through_saturated_softmax() -> None:
    # AtP* fixes AtP's linearisation through a saturated attention softmax when queries/keys are
    # patched. Head-*output* players are patched after their own softmax, so on a model that is
    # linear in the head outputs AtP equals exact patching even when patching flips a saturated
    # attention pattern.
    torch.manual_seed(13)
    model = OneAttention().double()
    with torch.no_grad():
        model.attn.in_proj_weight[:16] *= 8.0  # large q/k: saturated softmax
    x = torch.randn(4, 5, 8, dtype=torch.float64)
    x_cf = torch.randn(4, 5, 8, dtype=torch.float64)
    heads = components(model, "attn", unit="head", ablation="patch", counterfactual=x_cf)
    exact = tribute.explain(model, x, method="feature_ablation", players=heads).values
    atp = tribute.explain(model, x, method="atp", players=heads).values
    torch.testing.assert_close(atp, exact, atol=1e-10, rtol=0)
    assert exact.abs().max() > 0.05


def test_zero_ablation_mask_ig_equals_layer_ig_from_a_zero_activation() -> None:
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(14)
    net = nn.Sequential(nn.Linear(6, 5, bias=False), nn.Tanh(), nn.Linear(5, 2)).double()
    x = torch.randn(3, 6, dtype=torch.float64)  # net[0](0) = 0: the zero input baseline gives a zero activation
    game = tribute.build_game(net, x, players=components(net, "0"), target=1)
    n_steps = 32
    masks = ((torch.arange(n_steps, dtype=torch.float64) + 0.5) / n_steps)[:, None].expand(n_steps, 5)
    _, ig = game.value_and_grad(masks, torch.full((n_steps,), 1.0 / n_steps, dtype=torch.float64))
    ref = captum.LayerIntegratedGradients(net, net[0]).attribute(
        x, baselines=torch.zeros_like(x), target=1, n_steps=n_steps, method="riemann_middle")
    np.testing.assert_allclose(ig[:, 0].numpy(), ref.detach().numpy(), atol=1e-10)


class GPT2LikeAttention(nn.Module):
    """Projects the heads' context inside (like GPT-2's c_proj): its output mixes heads."""

    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.n_head = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, length, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=-1)
        sh = (b, length, self.n_head, d // self.n_head)
        q, k, v = (t.view(sh).transpose(1, 2) for t in (q, k, v))
        ctx = (torch.softmax(q @ k.transpose(-1, -2), -1) @ v).transpose(1, 2).reshape(b, length, d)
        return self.c_proj(ctx), None


def test_heads_read_from_the_output_projection_input() -> None:
    torch.manual_seed(15)
    attn = GPT2LikeAttention()
    model = nn.Sequential(OrderedDict(attn=attn))
    model.double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    heads = components(model, "attn", unit="head")
    assert heads.sites[0].path == "attn.c_proj" and heads.sites[0].kind == "input"
    attr = tribute.explain(model, x, method="feature_ablation", players=heads,
                           target=lambda out: out[:, 0, 0])  # the adapter keeps a tuple's first element

    def target(out: tuple[torch.Tensor, None]) -> torch.Tensor:
        return out[0][:, 0, 0]

    with torch.no_grad():
        full = target(model(x))
        w = attn.c_proj.weight
        for h in range(2):
            saved = w[:, h * 4:(h + 1) * 4].clone()
            w[:, h * 4:(h + 1) * 4] = 0.0
            np.testing.assert_allclose(attr.values[:, h].numpy(), (full - target(model(x))).numpy(), atol=1e-12)
            w[:, h * 4:(h + 1) * 4] = saved
    assert hook_count(model) == 0


class QKModel(nn.Module):
    """Two HF-style attention layers with saturated softmax; linear readout at position 0."""

    def __init__(self, layers: int = 1) -> None:
        super().__init__()
        self.layer = nn.ModuleList([HFLayer() for _ in range(layers)])
        with torch.no_grad():
            for lay in self.layer:
                assert isinstance(lay, HFLayer)
                lay.attention.self.query.weight *= 6.0
                lay.attention.self.key.weight *= 6.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lay in self.layer:
            x = lay(x)
        return x[:, 0, 0]


def test_atp_star_qk_fix_is_exact_through_the_softmax() -> None:
    torch.manual_seed(16)
    model = QKModel(layers=2).double()
    x = torch.randn(4, 5, 8, dtype=torch.float64)
    x_cf = torch.randn(4, 5, 8, dtype=torch.float64)
    paths = ["layer.1.attention.self.query", "layer.1.attention.self.key"]
    players = components(model, paths, unit="head", ablation="patch", counterfactual=x_cf)
    assert players.sites[0].num_heads == 2  # inferred from the attention module
    exact = tribute.explain(model, x, method="feature_ablation", players=players).values
    atp = tribute.explain(model, x, method="atp", players=players).values
    star = tribute.explain(model, x, method="atp_star", players=players)
    fixed = torch.as_tensor(star.extra["atp"][:, 0])
    assert star.extra["qk_fixed_players"] == [0, 1, 2, 3]
    # the last layer is linear in its heads' context (dense + residual + readout): exact
    torch.testing.assert_close(fixed, exact, atol=1e-10, rtol=0)
    assert (atp - exact).abs().max() > 1e-3  # plain AtP is not (saturated softmax)
    # |AtP*| for last-layer players: one GradDrop term (dropping layer 0 changes nothing)
    torch.testing.assert_close(star.values.abs(), exact.abs(), atol=1e-10, rtol=0)
    assert hook_count(model) == 0


def test_atp_star_qk_fix_mean_ablation_matches_exact_on_last_layer() -> None:
    torch.manual_seed(17)
    model = QKModel(layers=2).double()
    x = torch.randn(5, 5, 8, dtype=torch.float64)
    players = components(model, ["layer.0.attention.self.query", "layer.1.attention.self.key"], unit="head",
                         ablation=Ablation("resample", n_resample=3))
    exact = tribute.explain(model, x, method="feature_ablation", players=players).values
    star = tribute.explain(model, x, method="atp_star", players=players)
    fixed = torch.as_tensor(star.extra["atp"][:, 0])
    torch.testing.assert_close(fixed[:, 2:], exact[:, 2:], atol=1e-10, rtol=0)
    assert np.isfinite(star.values.numpy()).all()


class _BartLikeAttention(nn.Module):
    """Heads computed inside; ``num_heads`` attribute; a Linear ``out_proj`` mixes them."""

    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.num_heads, self.head_dim = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        att = torch.softmax(split(self.q_proj(x)) @ split(self.k_proj(x)).transpose(-1, -2), -1)
        ctx = (att @ split(self.v_proj(x))).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(ctx)


def test_heads_of_an_output_projection_are_its_input_slices() -> None:
    # unit="head" on the output projection itself (e.g. Bart's "self_attn.out_proj"): head h
    # is the h-th slice of the heads' context entering it, never a slice of its mixed output;
    # truth: zero the projection's weight columns that read head h
    torch.manual_seed(16)
    attn = _BartLikeAttention()
    model = nn.Sequential(OrderedDict(self_attn=attn)).double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    heads = components(model, "self_attn.out_proj", unit="head")
    assert heads.sites[0].kind == "input"
    attr = tribute.explain(model, x, method="feature_ablation", players=heads,
                           target=lambda out: out[:, 0, 0])
    with torch.no_grad():
        full = model(x)[:, 0, 0]
        w = attn.out_proj.weight
        for h in range(2):
            saved = w[:, h * 4:(h + 1) * 4].clone()
            w[:, h * 4:(h + 1) * 4] = 0.0
            ablated = model(x)[:, 0, 0]
            np.testing.assert_allclose(attr.values[:, h].numpy(), (full - ablated).numpy(), atol=1e-12)
            w[:, h * 4:(h + 1) * 4] = saved
    assert hook_count(model) == 0


def test_token_id_inputs_of_a_float64_model_give_float64_credits() -> None:
    # integer inputs carry no float dtype: the credits must keep the model's precision
    # (they came back float32, 2.5e-8 off the float64 truth on a BERT's heads)
    torch.manual_seed(17)
    emb = nn.Embedding(20, 6)
    with torch.no_grad():
        emb.weight.mul_(3.0)
    model = nn.Sequential(OrderedDict(emb=emb, act=nn.Tanh(), flat=nn.Flatten(),
                                      out=nn.Linear(24, 2))).double()
    x = torch.randint(0, 20, (3, 4), generator=torch.Generator().manual_seed(0))
    attr = tribute.explain(model, x, method="feature_ablation", players=components(model, "act"),
                           target=1)
    assert attr.values.dtype == torch.float64
    truth = naive_loo(model, "act", "neuron", x, lambda out: out[:, 1])
    np.testing.assert_allclose(attr.values.numpy(), truth.numpy(), rtol=1e-13, atol=1e-14)


class _MaskedPool(nn.Module):
    """``x`` (batch x tokens x 3) and a 0/1 token mask -> tanh of masked features, summed -> 2 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(3, 5)
        self.act = nn.Tanh()
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.inner(x) * mask[..., None]).sum(1))


def test_reference_never_borrows_the_inputs_per_sample_arguments() -> None:
    # forward_kwargs belong to the explained inputs; a reference set with as many rows was run
    # with input i's mask on reference row i (silently: other mean activations, other credits)
    torch.manual_seed(18)
    model = _MaskedPool().double()
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    mx = torch.ones(3, 4, dtype=torch.float64)
    r = torch.randn(3, 4, 3, dtype=torch.float64)
    mr = torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.float64)
    with pytest.raises(InputError, match="do not belong"):
        tribute.explain(model, x, method="feature_ablation", target=1,
                        players=components(model, "act", ablation="mean", reference=r),
                        forward_kwargs={"mask": mx})
    # the supported way: the masks travel with the inputs and with the reference
    attr = tribute.explain(model, (x, mx), method="feature_ablation", target=1,
                           players=components(model, "act", ablation="mean", reference=(r, mr)))
    with torch.no_grad():
        mean = model.act(model.inner(r) * mr[..., None]).mean(0)  # under the reference's masks
        full = model(x, mx)[:, 1]
        for j in range(5):
            def hook(m: nn.Module, a: object, o: torch.Tensor, j: int = j) -> torch.Tensor:
                o = o.clone()
                o[..., j] = mean[..., j]
                return o

            h = model.act.register_forward_hook(hook)
            np.testing.assert_allclose(attr.values[:, j].numpy(), (full - model(x, mx)[:, 1]).numpy(),
                                       atol=1e-12)
            h.remove()


@pytest.mark.parametrize("method, paths", [
    ("atp", ["layer.1.attention.self"]),
    ("layer_grad_cam", ["layer.1.attention.self"]),
    ("atp_star", ["layer.1.attention.self"]),
    ("atp_star", ["layer.1.attention.self.query", "layer.1.attention.self.key"]),
])
def test_gradient_component_methods_stay_within_budget(method: str, paths: list[str]) -> None:
    # rows counted at the model (a pre-hook, not tribute's counter) never exceed budget: the
    # smallest budget accepted pays for everything (v(N), GradDrop and QK-fix passes included)
    # and one less is refused; they overran it before (atp_star with the QK fix: 8 rows at 3)
    torch.manual_seed(19)
    model = QKModel(layers=2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    players = components(model, paths, unit="head")
    rows = [0]
    h = model.register_forward_pre_hook(lambda m, a: rows.__setitem__(0, rows[0] + a[0].shape[0]))
    try:
        free = tribute.explain(model, x, method=method, players=players)
        need = rows[0] // 2
        assert free.n_evals == need
        with pytest.raises(BudgetError):
            tribute.explain(model, x, method=method, players=players, budget=need - 1)
        rows[0] = 0
        tight = tribute.explain(model, x, method=method, players=players, budget=need)
        assert rows[0] // 2 == tight.n_evals <= need
        np.testing.assert_array_equal(tight.values.numpy(), free.values.numpy())
    finally:
        h.remove()


def test_conductance_budget_counts_the_reference_pass() -> None:
    # budget B: B - 2 steps (B - 1 path points) plus v(N); it ran B - 1 steps (B + 1 rows)
    model = MLP().double()
    x = torch.randn(3, 6, dtype=torch.float64)
    rows = [0]
    h = model.register_forward_pre_hook(lambda m, a: rows.__setitem__(0, rows[0] + a[0].shape[0]))
    try:
        attr = tribute.explain(model, x, method="conductance", players=components(model, "act"),
                               budget=6, baseline=0.0, target=0)
    finally:
        h.remove()
    assert rows[0] // 3 == attr.n_evals <= 6 and attr.params["n_steps"] == 4
