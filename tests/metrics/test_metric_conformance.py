"""Conformance suite over the metric registry: every registered metric, one contract.

Each metric runs through the public :func:`tribute.evaluate` on one small feature game: a
float64 CNN-shaped model on ``1 x 6 x 6`` images whose output is linear in three of the nine
2x2 patches (players = ``tribute.patches(2)``). There the ground truth is known by
construction: the relevant patches, and leave-one-out credits (``feature_ablation``) equal
the exact Shapley values ``w . (x - b)`` of a linear model — an oracle attribution that the
re-explaining metrics can re-run. For every metric:

* scores are finite, one per sample, and the summary equals their mean;
* the same seed gives the same scores;
* the model is unchanged afterwards (parameters, ``training`` flags, ``requires_grad``, hooks),
  also when the model raises in the middle of the metric;
* where the metric has a ground truth (faithfulness and ground-truth categories), the oracle
  scores better than seeded random credits in the direction ``higher_is_better`` says.

A new metric joins automatically; a metric that cannot run on this game must say why in
``NOT_APPLICABLE`` (none today).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.metrics import metrics as metric_infos

N_SAMPLES = 6
#: (row, col) of the 2x2 patches the model reads, and their weights' scale.
RELEVANT = {(0, 0): 3.0, (1, 2): 2.0, (2, 1): 1.0}
#: Metrics exempt from parts of the contract, with the reason (keep empty if possible).
NOT_APPLICABLE: dict[str, str] = {}
#: Categories whose scores have a ground truth on this game (oracle vs random ordering).
ORDERED = ("faithfulness", "ground_truth")


class PatchLinear(nn.Module):
    """``y = sum_{relevant patches} w * x`` read through a 1x1 conv and dropout (training flag
    matters); ``fail_after`` makes the forward raise after that many calls."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        w = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
        for (r, c), scale in RELEVANT.items():
            w[..., 2 * r:2 * r + 2, 2 * c:2 * c + 2] = scale * (
                1.0 + 0.5 * torch.rand(2, 2, generator=g, dtype=torch.float64))
        self.conv = nn.Conv2d(1, 1, 1, bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("w", w)
        self.head = nn.Linear(1, 2, dtype=torch.float64)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]], dtype=torch.float64))
            self.head.bias.zero_()
        self.calls = 0
        self.fail_after: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("planted failure in the middle of a metric")
        s = (self.drop(self.conv(x)) * self.w).sum(dim=(1, 2, 3))
        return self.head(s[:, None])


def _truth() -> np.ndarray:
    mask = np.zeros((3, 3), dtype=bool)
    for r, c in RELEVANT:
        mask[r, c] = True
    return np.broadcast_to(mask.reshape(-1), (N_SAMPLES, 9)).copy()


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    model = PatchLinear().eval()
    g = torch.Generator().manual_seed(1)
    x = 0.5 + torch.rand(N_SAMPLES, 1, 6, 6, generator=g, dtype=torch.float64)
    groups = tribute.patches(2)
    oracle = tribute.explain(model, x, method="feature_ablation", target=0, groups=groups,
                             progress=False)
    flat = oracle.flat()
    assert flat.shape == (N_SAMPLES, 1, 9)
    # the oracle is the exact linear credit: zero outside the relevant patches
    assert np.all(np.abs(flat[:, 0, ~_truth()[0]]) < 1e-9)
    assert np.all(flat[:, 0, _truth()[0]] > 0)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(np.shape(np.asarray(oracle.values)))
    random = dataclasses.replace(oracle, values=torch.as_tensor(noise), method="random")
    return {"model": model, "x": x, "oracle": oracle, "random": random}


def _evaluate(s: dict[str, Any], name: str, attr: Any, seed: int = 0) -> Any:
    kw: dict[str, Any] = {}
    if "ground_truth" in metric_infos()[name].needs:
        kw["ground_truth"] = _truth()
    return tribute.evaluate(s["model"], s["x"], attr, metric=name, target=0, seed=seed,
                            progress=False, **kw)


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(getattr(m, "_full_backward_hooks", None) or {}))
                  for m in model.modules()],
    }


def _assert_same_state(before: dict[str, Any], model: nn.Module) -> None:
    after = _state(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    assert before["params"].keys() == after["params"].keys()
    for k, v in before["params"].items():
        assert torch.equal(v, after["params"][k]), k


METRICS = sorted(metric_infos())


def test_registry_is_not_empty() -> None:
    assert len(METRICS) >= 10
    for name, info in metric_infos().items():
        assert info.summary and info.paper, name
        assert isinstance(info.higher_is_better, bool), name


@pytest.mark.parametrize("name", METRICS)
def test_metric_conformance(setup: dict[str, Any], name: str) -> None:
    if name in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[name])
    model = setup["model"]
    model.train()  # the metric must evaluate in eval mode and restore this flag
    model.head.weight.requires_grad_(False)  # ... and this one
    before = _state(model)
    try:
        res = _evaluate(setup, name, setup["oracle"])
        _assert_same_state(before, model)
        # finite per-sample scores of the right shape; the summary is their mean
        scores = np.asarray(res.scores, dtype=np.float64)
        assert scores.shape == (N_SAMPLES,), scores.shape
        assert np.all(np.isfinite(scores)), scores
        assert res.n == N_SAMPLES
        assert res.mean == pytest.approx(float(scores.mean()))
        assert res.higher_is_better == metric_infos()[name].higher_is_better
        # deterministic for a seed
        again = _evaluate(setup, name, setup["oracle"])
        np.testing.assert_array_equal(np.asarray(again.scores), scores)
        _assert_same_state(before, model)
    finally:
        model.head.weight.requires_grad_(True)
        model.eval()


@pytest.mark.parametrize("name", METRICS)
def test_metric_leaves_model_unchanged_after_an_exception(setup: dict[str, Any],
                                                          name: str) -> None:
    if name in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[name])
    model = setup["model"]
    model.train()
    before = _state(model)
    model.calls = 0
    _evaluate(setup, name, setup["oracle"])
    n_calls = model.calls
    assert n_calls >= 1
    # fail half-way through the metric's own forward passes (metrics that only read the
    # attribution call the model once, for the game's reference output: fail there)
    model.calls, model.fail_after = 0, n_calls // 2
    try:
        with pytest.raises(Exception, match="planted failure"):
            _evaluate(setup, name, setup["oracle"])
        _assert_same_state(before, model)
    finally:
        model.fail_after = None
        model.eval()


@pytest.mark.parametrize(
    "name", [m for m in METRICS if metric_infos()[m].category in ORDERED])
def test_oracle_beats_random_in_the_stated_direction(setup: dict[str, Any], name: str) -> None:
    if name in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[name])
    higher = metric_infos()[name].higher_is_better
    oracle = _evaluate(setup, name, setup["oracle"]).mean
    random = _evaluate(setup, name, setup["random"]).mean
    if higher:
        assert oracle > random, (name, oracle, random)
    else:
        assert oracle < random, (name, oracle, random)
