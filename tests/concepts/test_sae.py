"""SAE / transcoder latents as component players (tribute.games.sae).

A small sparse autoencoder is trained on the fly (L1 penalty, 150 Adam steps, seeded) on the
hidden activations of a small MLP; the reference properties: the spliced model's output is
unchanged with every player present (exactly, thanks to the error player), ablating every
latent and the error equals ablating the module's output, and attribution patching equals
exact patching when everything after the SAE's decoder is linear.
"""

from __future__ import annotations

import pytest
import torch

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.component_methods import AtPStar

D, D_SAE = 8, 16


def _mlp(seed: int = 0, depth: int = 2) -> torch.nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = [torch.nn.Linear(5, D), torch.nn.ReLU()]
        if depth == 2:
            layers += [torch.nn.Linear(D, D), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(D, 3))
        return torch.nn.Sequential(*layers)


def _inputs(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(seed))


def train_sae(read: torch.Tensor, target: torch.Tensor, *, bias: bool = True, l1: float = 3e-3,
              steps: int = 150, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A ReLU SAE ``target ≈ dec(relu(enc(read)))`` with an L1 penalty on the latents (seeded)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        enc = torch.nn.Sequential(torch.nn.Linear(read.shape[1], D_SAE), torch.nn.ReLU())
        dec = torch.nn.Linear(D_SAE, target.shape[1], bias=bias)
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-2)
        for _ in range(steps):
            z = enc(read)
            loss = ((dec(z) - target) ** 2).sum(-1).mean() + l1 * z.abs().sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return enc.eval(), dec.eval()


def _hidden(model: torch.nn.Sequential, x: torch.Tensor, upto: int) -> torch.Tensor:
    with torch.no_grad():
        return model[: upto + 1](x)


@pytest.fixture(scope="module")
def setup() -> dict[str, object]:
    model = _mlp()
    x_train = _inputs(256, 1)
    h = _hidden(model, x_train, 3)
    enc, dec = train_sae(h, h)
    dec_nb = train_sae(h, h, bias=False)
    # a transcoder for the Linear "2" (input 8, output 8) and an SAE on a one-hidden-layer MLP
    read, out = _hidden(model, x_train, 1), _hidden(model, x_train, 2)
    shallow = _mlp(depth=1)
    h1 = _hidden(shallow, x_train, 1)
    return {"model": model, "enc": enc, "dec": dec, "nobias": dec_nb, "x": _inputs(6, 2), "ref": _inputs(64, 3),
            "h": h, "transcoder": train_sae(read, out), "shallow": shallow, "shallow_sae": train_sae(h1, h1)}


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_trained_sae_is_a_sparse_faithful_reconstruction(setup: dict) -> None:
    h, enc, dec = setup["h"], setup["enc"], setup["dec"]
    with torch.no_grad():
        z = enc(h)
        fve = 1 - ((dec(z) - h) ** 2).sum() / ((h - h.mean(0)) ** 2).sum()
    assert fve > 0.9, float(fve)
    assert float((z > 0).float().sum(-1).mean()) < D_SAE / 2  # sparse: most latents off


def test_every_player_present_leaves_the_output_exactly_unchanged(setup: dict) -> None:
    model, x = setup["model"], setup["x"]
    sae = tribute.SAE(setup["enc"], setup["dec"], at="3")
    game = tribute.build_game(model, x, players=tribute.components(model, sae=sae), target=0)
    assert game.n_players == D_SAE + 1
    assert game.player_names[:2] == ["sae latent 0", "sae latent 1"] and game.player_names[-1] == "sae_error"
    with torch.no_grad():
        expected = model(x)[:, 0].double()
    full = game.value(torch.ones(1, game.n_players, dtype=torch.float64))[:, 0, 0]
    assert torch.equal(full, expected)
    # without the error player the SAE's reconstruction alone does not give the same output
    no_err = torch.ones(1, game.n_players, dtype=torch.float64)
    no_err[0, -1] = 0
    assert not torch.allclose(game.value(no_err)[:, 0, 0], expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["mean", "zero"])
def test_ablating_all_latents_and_error_equals_ablating_the_module(setup: dict, kind: str) -> None:
    model, x, ref = setup["model"], setup["x"], setup["ref"]
    # zero: decode(0) must be 0, so the bias-free decoder; mean: any affine decoder
    enc, dec = (setup["enc"], setup["dec"]) if kind == "mean" else setup["nobias"]
    sae = tribute.SAE(enc, dec, at="3")
    feats = tribute.components(model, sae=sae, ablation=kind, reference=ref)
    units = tribute.components(model, "3", ablation=kind, reference=ref)
    g_sae = tribute.build_game(model, x, players=feats, target=1)
    g_mod = tribute.build_game(model, x, players=units, target=1)
    empty = g_sae.value(torch.zeros(1, g_sae.n_players, dtype=torch.float64))
    ref_v = g_mod.value(torch.zeros(1, g_mod.n_players, dtype=torch.float64))
    torch.testing.assert_close(empty, ref_v, atol=1e-5, rtol=1e-5)
    # and something changed: the ablation is not a no-op
    assert (empty - g_sae.value(torch.ones(1, g_sae.n_players, dtype=torch.float64))).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_atp_equals_exact_patching_when_the_rest_is_linear(setup: dict, kind: str) -> None:
    # after the SAE (at the ReLU "1") the model is one Linear: v is linear in every latent
    model = setup["shallow"]
    enc, dec = setup["shallow_sae"]
    x, ref = _inputs(5, 4), _inputs(32, 5)
    players = tribute.components(model, sae=tribute.SAE(enc, dec, at="1"), ablation=kind, reference=ref)
    atp = tribute.explain(model, x, method="atp", players=players, target=2)
    exact = tribute.explain(model, x, method="feature_ablation", players=players, target=2)
    assert atp.player_names == exact.player_names
    torch.testing.assert_close(torch.as_tensor(atp.values), torch.as_tensor(exact.values), atol=1e-5, rtol=1e-4)
    assert float(abs(torch.as_tensor(exact.values)).max()) > 1e-3


def test_shapley_on_features_is_efficient_and_coar_runs(setup: dict) -> None:
    model, x = setup["model"], setup["x"][:2]
    players = tribute.components(model, sae=tribute.SAE(setup["enc"], setup["dec"], at="3"))
    game = tribute.build_game(model, x, players=players, target=0)
    full = game.value(torch.ones(1, game.n_players, dtype=torch.float64))[:, 0, 0]
    empty = game.value(torch.zeros(1, game.n_players, dtype=torch.float64))[:, 0, 0]
    attr = tribute.explain(model, x, method="permutation_shapley", players=players, target=0, budget=400)
    torch.testing.assert_close(torch.as_tensor(attr.values).sum(-1).double(), full - empty, atol=1e-4, rtol=1e-4)
    coar = tribute.explain(model, x, method="coar", players=players, target=0, budget=200)
    assert coar.values.shape == (2, D_SAE + 1)


def test_transcoder_reads_the_input_and_predicts_the_output(setup: dict) -> None:
    model, x = setup["model"], setup["x"]
    enc, dec = setup["transcoder"]
    tc = tribute.SAE(enc, dec, at="2", kind="transcoder", name="tc")
    game = tribute.build_game(model, x, players=tribute.components(model, sae=tc), target=2)
    assert game.player_names[-1] == "tc_error"
    with torch.no_grad():
        expected = model(x)[:, 2].double()
        # error player removed (zero): the module's output is the transcoder's prediction
        replaced = model[3:](dec(enc(model[:2](x))))[:, 2].double()
    full = game.value(torch.ones(1, game.n_players, dtype=torch.float64))[:, 0, 0]
    assert torch.equal(full, expected)
    no_err = torch.ones(1, game.n_players, dtype=torch.float64)
    no_err[0, -1] = 0
    torch.testing.assert_close(game.value(no_err)[:, 0, 0], replaced, atol=1e-5, rtol=1e-5)


def test_model_and_sae_unchanged_also_after_an_error(setup: dict) -> None:
    model, x = setup["model"], setup["x"]
    enc = setup["enc"]
    model.train()
    enc.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = _hooks(model) + _hooks(enc)
    good = tribute.SAE(enc, setup["dec"], at="3")
    tribute.explain(model, x, method="atp", players=tribute.components(model, sae=good), target=0)
    bad = tribute.SAE(enc, torch.nn.Linear(D_SAE, D + 1), at="3")  # decoder of the wrong width
    with pytest.raises(UnsupportedModelError, match=r"decoder returns \(6, 9\) but the module outputs \(6, 8\)"):
        tribute.explain(model, x, method="feature_ablation", players=tribute.components(model, sae=bad), target=0)
    assert model.training and enc.training
    assert _hooks(model) + _hooks(enc) == hooks
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in [*model.parameters(), *enc.parameters()])
    model.eval()
    enc.eval()


def test_bad_arguments_name_what_to_fix(setup: dict) -> None:
    model = setup["model"]
    with pytest.raises(InputError, match=r"module '4x' is not a submodule.*Did you mean"):
        tribute.components(model, sae=tribute.SAE(setup["enc"], setup["dec"], at="4x"))
    with pytest.raises(InputError, match="kind='crosscoder'"):
        tribute.SAE(setup["enc"], setup["dec"], at="3", kind="crosscoder")
    with pytest.raises(InputError, match="either modules or sae"):
        tribute.components(model, "3", sae=tribute.SAE(setup["enc"], setup["dec"], at="3"))
    with pytest.raises(InputError, match="give a module path"):
        tribute.components(model)


class _Residual(torch.nn.Module):
    """Two residual MLP blocks in a ModuleList (AtP*'s GradDrop layers), then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(1)
            self.inp = torch.nn.Linear(5, D)
            self.blocks = torch.nn.ModuleList(
                [torch.nn.Sequential(torch.nn.Linear(D, D), torch.nn.ReLU()) for _ in range(2)])
            self.head = torch.nn.Linear(D, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.head(h)


def test_atp_star_runs_on_features_with_the_user_models_layer_paths() -> None:
    model = _Residual()
    xs = _inputs(256, 1)
    with torch.no_grad():
        h = model.blocks[0](model.inp(xs))
    enc, dec = train_sae(h, h, steps=60)
    players = tribute.components(model, sae=tribute.SAE(enc, dec, at="blocks.0"))
    x = _inputs(4, 6)
    auto = tribute.explain(model, x, method="atp_star", players=players, target=0)
    game = tribute.build_game(model, x, players=players, target=0)
    given = AtPStar(layers=["blocks.0", "blocks.1"]).attribute(game)
    torch.testing.assert_close(torch.as_tensor(auto.values), torch.as_tensor(given.values))
    assert auto.values.shape == (4, D_SAE + 1) and torch.isfinite(torch.as_tensor(auto.values)).all()
    with pytest.raises(InputError, match=r"'blocks\.7' is not a submodule"):
        AtPStar(layers=["blocks.0", "blocks.7"]).attribute(game)
