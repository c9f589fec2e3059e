"""aud42c: settings given beside a component player set that were dropped without a word, and
sequence-first activations read as batch-first.

Truth outside tribute: mean ablation by a forward hook written here (the reference's mean
activation), and attribution patching's ``sum over positions of act * dv/dact`` read from a
seq-first layer by hand."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute import Ablation, components
from tribute.errors import InputError, UnsupportedModelError


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()


def _mean_ablated_loo(net: nn.Sequential, x: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """``v(N) - v(N without unit j)``, unit j of ``net[0]`` set to its mean over ``ref`` (target 0)."""
    with torch.no_grad():
        mean = net[0](ref).mean(0)
        full = net(x)[:, 0]
        out = []
        for j in range(3):
            def hook(_m: nn.Module, _a: Any, o: torch.Tensor, j: int = j) -> torch.Tensor:
                o = o.clone()
                o[:, j] = mean[j]
                return o
            h = net[0].register_forward_hook(hook)
            try:
                out.append((full - net(x)[:, 0]).numpy())
            finally:
                h.remove()
    return np.stack(out, 1)


def test_an_ablation_object_with_its_reference_inside_is_the_hand_mean_ablation() -> None:
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 2.0
    truth = _mean_ablated_loo(net, x, ref)
    for players in (components(net, "0", ablation=Ablation("mean", reference=ref)),
                    components(net, "0", ablation="mean", reference=ref)):
        got = tribute.explain(net, x, method="feature_ablation", players=players, target=0).values.numpy()
        np.testing.assert_allclose(got, truth, atol=1e-12)


@pytest.mark.parametrize(("ablation", "beside"), [
    (Ablation("mean"), {"reference": "ref"}),
    ({"kind": "mean"}, {"reference": "ref"}),
    (Ablation("resample"), {"reference": "ref", "n_resample": 3}),
    (Ablation("resample", reference=None), {"seed": 5}),
    (Ablation("patch", counterfactual="x"), {"counterfactual_kwargs": {}}),
])
def test_settings_beside_an_ablation_object_are_refused_not_dropped(ablation: Any, beside: dict[str, Any]) -> None:
    # aud42c: components(net, "0", ablation=Ablation("mean"), reference=ref) dropped ref and
    # ablated to the explained inputs' mean: credits 1.0e-2 off the hand mean ablation, no warning
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 2.0
    if isinstance(ablation, Ablation) and ablation.counterfactual is not None:
        ablation = Ablation("patch", counterfactual=x)
    kw: dict[str, Any] = {k: (ref if v == "ref" else v) for k, v in beside.items()}
    with pytest.raises(InputError, match="carries its own settings") as exc:
        components(net, "0", ablation=ablation, **kw)
    given = str(exc.value).split("carries its own settings, so ")[1].split(" given beside it")[0]
    assert given == ", ".join(f"{k}=" for k in beside)


def test_feature_names_with_component_players_are_refused_not_dropped() -> None:
    # aud42c: feature_names=[...] (any length) next to players= was dropped without a word
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(InputError, match="feature_names names input features; with players="):
        tribute.explain(net, x, method="feature_ablation", players=components(net, "0"), target=0,
                        feature_names=["a", "b", "c"])


class _SeqFirst(nn.Module):
    """Embedding, a linear layer applied to the (tokens, batch, features) sequence-first layout, a
    head on token 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 6)
        self.fc = nn.Linear(6, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(self.emb(ids).transpose(0, 1)))  # T x B x F
        out: torch.Tensor = self.head(h.mean(0))
        return out


@pytest.mark.parametrize("method", ["atp", "feature_ablation"])
def test_sequence_first_activations_are_refused_with_their_layout_named(method: str) -> None:
    # aud42c: (5 tokens, 3 inputs) was refused as "called a varying number of times per forward
    # pass (call 0 saw 5 of 3 rows)"; the batch axis is second there, and the message says so
    model = _SeqFirst().double().eval()
    ids = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    players = components(model, "fc")
    with pytest.raises(UnsupportedModelError, match=r"'fc' returned an activation of shape \(5, 3, 5\) on a "
                       r"forward pass of 3 rows.*batch axis first.*sequence-first"):
        tribute.explain(model, ids, method=method, players=players, target=0, batch_size=3)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_batch_first_layers_of_the_same_model_keep_their_credits() -> None:
    # the check does not refuse a (batch, tokens, features) layer: AtP by hand on emb
    model = _SeqFirst().double().eval()
    ids = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _a: Any, o: torch.Tensor) -> None:
        o.retain_grad()
        seen["a"] = o

    h = model.emb.register_forward_hook(keep)
    try:
        model(ids)[:, 1].sum().backward()
    finally:
        h.remove()
    a = seen["a"]
    assert a.grad is not None
    truth = (a * a.grad).sum(1).detach().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tribute.explain(model, ids, method="atp", players=components(model, "emb"), target=1).values.numpy()
    np.testing.assert_allclose(got, truth, atol=1e-12)


@pytest.mark.parametrize("method", ["feature_ablation", "atp", "kernel_shap"])
def test_a_baseline_the_ablating_methods_do_not_read_is_warned_about(method: str) -> None:
    # aud42c: baseline=5.0 next to component players changed nothing and said nothing (the
    # credits are those without it: checked here against the hand mean ablation)
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 2.0
    players = components(net, "0", ablation="mean", reference=ref)
    with pytest.warns(UserWarning, match=rf"method '{method}' does not read baseline= on component players: "
                      r"it removes units by ablation='mean'"):
        got = tribute.explain(net, x, method=method, players=players, target=0, baseline=5.0).values.numpy()
    if method == "feature_ablation":
        np.testing.assert_allclose(got, _mean_ablated_loo(net, x, ref), atol=1e-12)


def test_conductance_reads_the_baseline_without_a_warning() -> None:
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        at = tribute.explain(net, x, method="conductance", players=components(net, "0"), target=0,
                             baseline=0.5, n_steps=64).values.numpy()
        plain = tribute.explain(net, x, method="feature_ablation", players=components(net, "0"), target=0)
    # completeness of conductance over a layer every path crosses: sum = v(x) - v(baseline)
    with torch.no_grad():
        gap = (net(x)[:, 0] - net(torch.full_like(x, 0.5))[:, 0]).numpy()
    np.testing.assert_allclose(at.sum(1), gap, atol=1e-3)
    assert plain.values.shape == (3, 3)


def test_cli_components_without_baseline_does_not_warn(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # the CLI passed --baseline's default "0" to every method: each run would warn
    from tribute.cli import main

    mod = tmp_path / "aud42c_mod.py"
    mod.write_text("import torch\n\ndef make():\n    torch.manual_seed(0)\n"
                   "    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(3, 4)))
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert main(["components", "--model", "aud42c_mod:make", "--data", str(tmp_path / "x.npy"),
                         "--module", "0", "--target", "0", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("aud42c_mod", None)
    attr = tribute.Attribution.load(tmp_path / "out" / "attribution.npz")
    net = _net()
    x = torch.from_numpy(np.load(tmp_path / "x.npy"))
    with torch.no_grad():
        h = net[0](x)
        truth = np.stack([(net(x)[:, 0] - net[2](torch.tanh(h * (torch.arange(3) != j)))[:, 0]).numpy()
                          for j in range(3)], 1)
    np.testing.assert_allclose(np.asarray(attr.values).reshape(3, 3), truth, atol=1e-12)


def test_an_ablation_dict_with_an_unknown_key_is_refused_naming_the_keys() -> None:
    # aud42c: {"kind": "mean", "ref": ...} raised a bare TypeError from the dataclass
    net = _net()
    with pytest.raises(InputError, match=r"key\(s\) \['ref'\] that tribute.Ablation does not take"):
        components(net, "0", ablation={"kind": "mean", "ref": torch.zeros(2, 4)})  # type: ignore[arg-type]
    seeds: list[Any] = [np.int64(0), 0]
    for s in seeds:  # numpy integers equal to the defaults are no settings of their own
        n16: Any = np.int32(16)
        assert components(net, "0", ablation=Ablation("mean"), seed=s, n_resample=n16).ablation.kind == "mean"
