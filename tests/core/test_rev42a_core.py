"""rev42a: ``FeatureGame.with_inputs`` on a subset of the samples (small42 opened the path for
submodular_regions: samples with different candidate counts go to the model as views of
their own). A view of samples ``parent`` must be the game of those samples (their own target,
baseline and forward arguments), in any order, and charge the parent its evaluations."""

from __future__ import annotations

import numpy as np
import torch

from tribute.games import FeatureGame
from tribute.models import as_model


class _Lin(torch.nn.Module):
    """``(x * scale) @ W + c``: linear, so ``v`` has a closed form."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64, generator=g))
        self.c = torch.nn.Parameter(torch.randn(3, dtype=torch.float64, generator=g))

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return (x * scale[:, None]) @ self.w + self.c


def test_a_view_of_a_subset_is_the_game_of_those_samples() -> None:
    model = _Lin()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, dtype=torch.float64, generator=g)
    base = torch.randn(4, 5, dtype=torch.float64, generator=g)
    scale = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 2])
    game = FeatureGame(as_model(model, "torch"), x, target=target, baseline=base,
                       forward_kwargs={"scale": scale})
    parent = torch.tensor([3, 1])  # samples 0 and 2 left out, out of order
    view = game.with_inputs([x[parent]], parent=parent)
    masks = (torch.rand(2, 6, 5, generator=g) < 0.5).double()  # per-sample masks
    got = view.value(masks).numpy()  # 2 x 6 x 1
    # closed form: f(base + m (x - base)) at each sample's own target, scale and baseline
    w, c = model.w.detach().numpy(), model.c.detach().numpy()
    for j, b in enumerate(parent.tolist()):
        rows = base[b].numpy() + masks[j].numpy() * (x[b] - base[b]).numpy()
        want = (rows * scale[b].item()) @ w[:, target[b]] + c[target[b]]
        np.testing.assert_allclose(got[j, :, 0], want, rtol=1e-12, atol=1e-12)
    before = game.n_evals
    view.value(masks)
    assert view.n_evals == 12 and game.n_evals == before + 6  # one view sample per parent sample
