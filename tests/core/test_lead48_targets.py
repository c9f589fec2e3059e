"""lead48: small48b computed every float32 log-odds in float64 to fix p = 1.0 (log1p(-1) = inf);
rev48b measured 2.8x the time and 2x the memory on a 1e5 x 1000 output for it. Only the entries
float32 cannot clip (p = 1.0) need float64: the others are float32 arithmetic as before the fix,
byte for byte (truth: the pre-fix float32 expression), and the saturated ones the float64 clip's
value rounded once (truth: numpy float64)."""

from __future__ import annotations

import numpy as np
import torch

from tribute.targets import PROB_EPS, binary_class_output, label_log_probs, transform_output


def _probs() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(4000, 3, generator=g)
    p[::7, 0] = 1.0
    p[::11, 1] = 0.0
    p[::13, 2] = 1.0 - 2.0 ** -24
    return p


def test_float32_log_odds_are_float32_arithmetic_except_where_the_clip_is_lost() -> None:
    p = _probs()
    got = transform_output(p, "logit", "probability")
    assert got.dtype == torch.float32 and bool(torch.isfinite(got).all())
    q = p.clamp(PROB_EPS, 1.0 - PROB_EPS)  # float32: the upper bound rounds to 1.0
    before = torch.log(q) - torch.log1p(-q)
    kept = p < 1.0
    assert torch.equal(got[kept], before[kept])
    top = np.log(1 - PROB_EPS) - np.log1p(-(1 - PROB_EPS))  # 27.631...
    np.testing.assert_array_equal(got[~kept].numpy(), np.full(int((~kept).sum()), np.float32(top)))
    assert int((~kept).sum()) == len(range(0, 4000, 7))


def test_float32_log_probs_and_binary_column_unchanged_bytes_where_finite() -> None:
    p = _probs()
    assert torch.equal(transform_output(p, "log_prob", "probability"),
                       torch.log(p.clamp(PROB_EPS, 1.0 - PROB_EPS)))
    col = p[:, :1]
    two = torch.cat([1.0 - col, col], -1)
    assert torch.equal(label_log_probs(col, "probability"), torch.log(two.clamp(PROB_EPS, 1.0)))
    got = binary_class_output(p[:, 0], "logit", "probability", torch.ones(4000, 1, dtype=torch.long))
    q = p[:, :1].clamp(PROB_EPS, 1.0 - PROB_EPS)
    kept = (p[:, :1] < 1.0)
    assert torch.equal(got.reshape(-1, 1)[kept], (torch.log(q) - torch.log1p(-q))[kept])
    assert bool(torch.isfinite(got).all())
