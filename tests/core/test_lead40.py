"""Stop 40 (lead): the frame of a per-sample target does not depend on the classes the rows got.

small40 gave ``to_pandas()`` a ``target`` level when one target per sample explains different
classes; its shape then followed the data (all rows predicting one class gave a plain index, a
batch of one too). ``explain`` now records ``extra["per_sample_target"]`` so the shape follows
the call.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import tribute

pd = pytest.importorskip("pandas")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]], dtype=torch.float64))
        m.bias.zero_()
    return m


def test_predicted_class_level_even_when_every_row_predicts_the_same_class(tmp_path: os.PathLike) -> None:
    m = _model()
    x = torch.tensor([[0.1, 3.0, 0.2, 1.0], [0.3, 2.0, -1.0, 0.5]], dtype=torch.float64)  # both class 1
    for target in (None, "predicted", np.array([1, 1])):
        attr = tribute.explain(m, x, method="feature_ablation", target=target)
        assert attr.extra["per_sample_target"] is True
        df = attr.to_pandas()
        assert df.index.names == ["sample", "target"]
        assert list(df.index) == [(0, 1), (1, 1)]
        np.testing.assert_array_equal(df.to_numpy(), np.asarray(attr.values))
        path = os.path.join(str(tmp_path), "a.npz")
        attr.save(path)
        assert tribute.Attribution.load(path).to_pandas().equals(df)
    one = tribute.explain(m, x[:1], method="feature_ablation")  # a batch of one
    assert list(one.to_pandas().index) == [(0, 1)]


def test_shared_targets_keep_the_plain_index() -> None:
    m = _model()
    x = torch.tensor([[0.1, 3.0, 0.2, 1.0], [3.0, 0.0, -1.0, 0.5]], dtype=torch.float64)
    attr = tribute.explain(m, x, method="feature_ablation", target=2)
    assert "per_sample_target" not in attr.extra
    assert list(attr.to_pandas().index) == [0, 1]
    reg = torch.nn.Linear(4, 1).double()
    attr = tribute.explain(reg, x, method="feature_ablation")
    assert "per_sample_target" not in attr.extra
    assert list(attr.to_pandas().index) == [0, 1]


def test_predicted_on_a_single_output_model_is_its_output_not_a_class_per_sample() -> None:
    reg = torch.nn.Linear(4, 1).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    plain = tribute.explain(reg, x, method="feature_ablation")
    attr = tribute.explain(reg, x, method="feature_ablation", target="predicted")
    assert "per_sample_target" not in attr.extra
    assert list(attr.to_pandas().index) == [0, 1, 2]
    np.testing.assert_array_equal(np.asarray(attr.values), np.asarray(plain.values))
