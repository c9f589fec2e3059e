"""rev48r (stop 48): review of aud48r's certified chunking and of rashomon's candidate seeds.

* certified_attribution's input chunks (aud48r) rebuilt the whole batch's flat inputs for every
  block of every chunk (``inputs_flat`` concatenates: a copy of ``batch x D``), quadratic in the
  batch: 1,000 96x96 images with patch groups took 127 s against 52 s before aud48r. The chunk's
  rows are now built once per chunk (32 s, the same numbers byte for byte).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tribute.games.features import FeatureGame
from tribute.methods import certified
from tribute.methods.certified import certified_attribution


class _Bowl(torch.nn.Module):
    """``f = 0.5 ||x||^2`` per row, elementwise (no BLAS reduction whose rounding depends on the
    batch): saliency is ``x`` itself, so the chunked and unchunked paths must agree exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * (x * x).sum(1))[:, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunks_copy_the_batch_once_and_match_one_view(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(dtype)
    kw: dict[str, Any] = {"k": 2, "n_samples": 6, "seed": 11, "target": 0, "noise": 0.3}
    one_view = certified_attribution(_Bowl(), x, "saliency", **kw)  # default blocks: one view of all
    copied: list[int] = []
    orig = FeatureGame.inputs_flat

    def counting(self: FeatureGame) -> torch.Tensor:
        copied.append(self.n_samples)
        return orig(self)

    monkeypatch.setattr(FeatureGame, "inputs_flat", counting)
    monkeypatch.setattr(certified, "_BLOCK_BYTES", 2 * (6 + 6) * 8 * 4)  # blocks of 2 draws, 1 input a chunk
    chunked = certified_attribution(_Bowl(), x, "saliency", **kw)
    # the batch's flat inputs are read once, not once per (chunk, block): 1 + 5 * 3 = 16 before
    assert sum(n == 5 for n in copied) <= 2, copied
    # smoothed saliency of the bowl is x + noise * mean(z): the same draws in both paths
    np.testing.assert_array_equal(chunked.smoothed, one_view.smoothed)
    np.testing.assert_array_equal(chunked.frequency, one_view.frequency)
    np.testing.assert_array_equal(chunked.radius, one_view.radius)
    assert chunked.n_evals == one_view.n_evals


def _regression_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, X[:, 0] * X[:, 1] + 0.1 * rng.normal(size=40)


def _forest_mse(X: np.ndarray, y: np.ndarray, random_state: int) -> float:
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=3, random_state=random_state).fit(X, y)
    return float(np.mean((model.predict(X) - y) ** 2))


def test_rashomon_forest_candidates_past_2_32_train() -> None:
    # candidate k is fit with seed + k; from 2**32 - 2 the third one passed scikit-learn's
    # random_state limit and the call failed ("fit failed on candidate 2") after two forests
    from tribute.methods.rashomon import rashomon_interactions

    X, y = _regression_data()
    top = 2**32 - 2
    res = rashomon_interactions(X, y, fit="forest", configs=[{"n_estimators": 3}], n_candidates=4,
                                epsilon=1e9, n_repeats=1, seed=top)
    # in-range seeds are unchanged: sklearn's own forests at random_state 2**32 - 2, 2**32 - 1
    np.testing.assert_array_equal(res.candidate_losses[:2], [_forest_mse(X, y, top), _forest_mse(X, y, top + 1)])
    # the two past the limit are forests of their own: not seed 0's or 1's (a modulo would give those)
    small = [_forest_mse(X, y, 0), _forest_mse(X, y, 1)]
    assert np.all(np.isfinite(res.candidate_losses)) and len(set(res.candidate_losses.tolist())) == 4
    assert not set(res.candidate_losses[2:].tolist()) & set(small)
    assert [c["seed"] for c in res.configs] == [top, top + 1, top + 2, top + 3]


def test_rashomon_mlp_candidates_past_2_64_train() -> None:
    import torch

    from tribute.methods.rashomon import fit_mlp, rashomon_interactions

    X, y = _regression_data()
    top = 2**64 - 1  # the largest seed check_seed accepts; candidate 1 overflowed torch's generator
    res = rashomon_interactions(X, y, fit="mlp", configs=[{"hidden": 4, "steps": 3}], n_candidates=2,
                                epsilon=1e9, n_repeats=1, seed=top)
    # candidate 0 is the MLP of seed 2**64 - 1 itself (in range: unchanged), fit directly here
    mse = [float(np.mean((fit_mlp(X, y, seed=s, hidden=4, steps=3)(torch.as_tensor(X)).detach().numpy()[:, 0]
                          - y) ** 2)) for s in (top, 0)]
    np.testing.assert_allclose(res.candidate_losses[0], mse[0], rtol=1e-12)
    assert np.isfinite(res.candidate_losses[1]) and res.candidate_losses[1] != mse[1]  # not seed 0's MLP
