"""aud48c: component games' passes were never checked for batch mixing.

rev47o left it: a model whose rows depend on the rest of their batch (a batch-mean layer,
BatchNorm without running statistics, a cumulative sum over the batch) got component credits
that moved with the batch size, silently: feature_ablation, neuron 0 of sample 0 on a
batch-mean MLP, -0.0580 at the tuned size / batch_size=16, -0.0346 at 64, where the input
alone gives 0.0. Worse, the game's capture pass (whose values are zeros) marked the model
"checked", so a later feature game on the same model was silent too. Now the first hooked pass
is checked as the feature engine checks its first pass (its own rows, no extra ones), with the
floating-point inputs and the coalition masks as leaves.

Also: a model that cannot run with autograd (numpy inside forward) had its checking capture
pass fail half-way, which doubled its sites' call list (``[(5,), (5,)]`` for one call) and
refused ``ablation='patch'`` / ``reference=`` with "produced activations of shapes [(5,)] but
[(5,), (5,)]"; and the rows of a failed checking pass were missing from ``n_rows`` (30 counted
where the model saw 36, feature games too).

Truths here are hand forward hooks (zeroing / replacing exactly one unit) and hand autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import ModelOutputError
from tribute_testing import BatchMean, batch_mixer

MIXERS = ["mean", "cumsum", "bn_batch_stats"]


def _x(n: int = 6, d: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _state(model: nn.Module) -> tuple[Any, ...]:
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return params, flags, hooks


def _same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[1] == b[1] and a[2] == b[2] and a[0].keys() == b[0].keys() \
        and all(torch.equal(a[0][k], b[0][k]) for k in a[0])


@pytest.mark.parametrize("kind", MIXERS)
@pytest.mark.parametrize("method", ["feature_ablation", "exact_shapley", "kernel_shap", "atp",
                                    "integrated_gradients", "conductance"])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_a_batch_mixing_model_is_refused_by_a_component_game(kind: str, method: str,
                                                              batch_size: int | None) -> None:
    net = batch_mixer(kind, 4, 5).double()
    before = _state(net)
    kw: dict[str, Any] = {"budget": 40} if method == "kernel_shap" else {}
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(net, _x(), method=method, players=tribute.components(net, "0"), target=0,
                        batch_size=batch_size, progress=False, **kw)
    assert _same_state(before, _state(net))  # hooks gone, flags and parameters as they were


def test_a_batch_mixing_model_refused_by_a_component_game_stays_unchecked_for_feature_games() -> None:
    # BASE: the component game's capture pass (values of zeros) marked the model checked: both
    # calls returned credits without an error
    net = batch_mixer("mean", 4, 5).double()
    with pytest.raises(ModelOutputError, match="other rows of its batch"):
        tribute.explain(net, _x(), method="feature_ablation", players=tribute.components(net, "2"),
                        target=0, progress=False)
    with pytest.raises(ModelOutputError, match="other rows of its batch"):
        tribute.explain(net, _x(), method="feature_ablation", target=0, progress=False)


class _Tokens(nn.Module):
    """Token ids -> embedding mean -> Linear ``a`` -> Tanh -> Linear ``b`` -> [mix] -> Linear ``c``."""

    def __init__(self, mix_after: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 4)
        self.a, self.b, self.c = nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 2)
        self.mix = BatchMean() if mix_after else nn.Identity()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.b(torch.tanh(self.a(self.emb(ids).mean(1)))))
        return self.c(self.mix(h))


@pytest.mark.parametrize("method", ["feature_ablation", "atp", "layer_grad_cam"])
def test_a_batch_mix_after_the_site_is_refused_with_token_id_inputs(method: str) -> None:
    # no floating-point input to take gradients with respect to: the coalition masks are the leaves
    ids = torch.randint(0, 10, (5, 3), generator=torch.Generator().manual_seed(2))
    net = _Tokens(mix_after=True).double()
    with pytest.raises(ModelOutputError, match="other rows of its batch"):
        tribute.explain(net, ids, method=method, players=tribute.components(net, "b"), target=0,
                        batch_size=64, progress=False)


class _MixFirst(nn.Module):
    """Linear ``a`` -> Tanh -> batch mean -> Linear ``b`` (the site) -> Tanh -> Linear ``c``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.a(x))
        return self.c(torch.tanh(self.b(h - h.mean(0, keepdim=True))))


@pytest.mark.parametrize("method", ["atp", "integrated_gradients", "layer_grad_cam", "conductance"])
def test_a_batch_mix_before_the_site_is_refused_in_gradient_runs(method: str) -> None:
    # the masks at the site do not reach a mix before it; the floating-point inputs do
    net = _MixFirst().double()
    with pytest.raises(ModelOutputError, match="other rows of its batch"):
        tribute.explain(net, _x(), method=method, players=tribute.components(net, "b"), target=0,
                        batch_size=64, progress=False)


def _hand_loo(net: nn.Module, site: nn.Linear, x: torch.Tensor, target: np.ndarray,
              replace: torch.Tensor | None) -> np.ndarray:
    """Leave-one-out by hand: a forward hook sets unit ``j`` of ``site``'s output to 0 (or to
    ``replace[:, j]``), one input at a time."""
    out = np.zeros((int(x.shape[0]), int(site.out_features)))
    with torch.no_grad():
        for i in range(x.shape[0]):
            full = float(net(x[i:i + 1])[0, target[i]])
            for j in range(out.shape[1]):
                def hook(m: nn.Module, a: Any, o: torch.Tensor, j: int = j, i: int = i) -> torch.Tensor:
                    o = o.clone()
                    o[:, j] = 0.0 if replace is None else replace[i, j]
                    return o
                h = site.register_forward_hook(hook)
                try:
                    out[i, j] = full - float(net(x[i:i + 1])[0, target[i]])
                finally:
                    h.remove()
    return out


class _NumpyInside(nn.Module):
    """A numpy call between two layers: cannot run with autograd (``Tensor.numpy()`` of a tensor
    that requires grad raises)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        h = torch.tanh(self.a(x))
        return self.b(torch.from_numpy(np.tanh(h.numpy())))


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("ablation", ["zero", "patch", "mean", "resample"])
def test_a_model_that_cannot_run_with_autograd_keeps_one_call_per_site(ablation: str,
                                                                      batch_size: int | None) -> None:
    # BASE: the checking capture pass failed after the site's hook, the plain pass ran as call 1:
    # patch / reference= were refused ("[(5,)] but [(5,), (5,)]"), and at batch_size=3 every
    # ablation was ("called a varying number of times per forward pass (call 1 saw 3 of 6 rows)")
    net = _NumpyInside().double()
    x = _x(6, 4, seed=3)
    ref = _x(3, 4, seed=4)
    options: dict[str, dict[str, Any]] = {"zero": {}, "patch": {"counterfactual": x.flip(0)},
                                          "mean": {"reference": ref},
                                          "resample": {"reference": ref, "n_resample": 3, "seed": 1}}
    kw = options[ablation]
    target = np.array([0, 1, 2, 0, 1, 2])
    attr = tribute.explain(net, x, method="feature_ablation", target=target, progress=False,
                           batch_size=batch_size, players=tribute.components(net, "a", ablation=ablation, **kw))
    assert attr.n_rows == net.seen
    with torch.no_grad():
        if ablation == "patch":
            truth = _hand_loo(net, net.a, x, target, net.a(x.flip(0)))
        elif ablation == "mean":
            truth = _hand_loo(net, net.a, x, target, net.a(ref).mean(0).expand(6, 5))
        elif ablation == "zero":
            truth = _hand_loo(net, net.a, x, target, None)
        else:  # resample: n_resample=3 of 3 reference rows draws each once; the mean of their LOO
            truth = np.mean([_hand_loo(net, net.a, x, target, r.expand(6, 5)) for r in net.a(ref)], 0)
    assert np.allclose(attr.values.numpy(), truth, atol=1e-12)


def test_a_failed_checking_pass_is_counted_in_n_rows() -> None:
    x = _x(6, 4, seed=3)
    for players in (None, "a"):
        net = _NumpyInside().double()
        kw: dict[str, Any] = {} if players is None else {"players": tribute.components(net, players)}
        attr = tribute.explain(net, x, method="feature_ablation", target=0, progress=False, **kw)
        assert attr.n_rows == net.seen


class _RowWise(nn.Module):
    """A custom forward (checked on a pass) that evaluates each row on its own."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.a, self.b, self.c = nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.drop = nn.Dropout(0.3)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        h = torch.tanh(self.a(x))
        return self.c(self.drop(torch.relu(self.b(h) - h.mean(1, keepdim=True))))


@pytest.mark.parametrize("batch_size", [None, 1, 5, 64])
@pytest.mark.parametrize("site", ["a", "b"])
def test_a_rowwise_model_is_not_refused_and_gives_the_hand_values(batch_size: int | None, site: str) -> None:
    # guard: a mean over the feature axis, dropout in train mode (the session evaluates in eval
    # mode), per-sample targets: hand leave-one-out and hand AtP; the model sees n_rows rows
    net = _RowWise().double().train()
    x = _x(6, 4, seed=8)
    target = np.array([2, 0, 1, 1, 0, 2])
    mod = net.a if site == "a" else net.b
    la = tribute.explain(net, x, method="feature_ablation", target=target, batch_size=batch_size,
                         players=tribute.components(net, site), progress=False)
    assert net.training and la.n_rows == net.seen
    net.eval()
    assert np.allclose(la.values.numpy(), _hand_loo(net, mod, x, target, None), atol=1e-12)
    net.train()
    net.seen = 0
    at = tribute.explain(net, x, method="atp", target=target, batch_size=batch_size,
                         players=tribute.components(net, site), progress=False)
    assert net.training and at.n_rows == net.seen
    net.eval()
    acts: list[torch.Tensor] = []

    def keep(m: nn.Module, a: Any, o: torch.Tensor) -> None:
        acts.append(o)

    h = mod.register_forward_hook(keep)
    try:
        y = net(x)
    finally:
        h.remove()
    g = torch.autograd.grad(y[torch.arange(6), torch.as_tensor(target)].sum(), acts[0])[0]
    assert np.allclose(at.values.numpy(), (g * acts[0]).detach().numpy(), atol=1e-12)
