"""small44 (stop 44): input containers that are not arrays get an error naming the fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import tribute
from tribute.errors import InputError


class _GRU(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(3, 4, batch_first=True)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: Any) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.head(h[-1])


def test_packed_sequence_input_is_refused_by_name() -> None:
    """A PackedSequence (a named tuple) was read as 4 inputs: "inputs[1] has 4 samples but
    inputs[0] has 6" (two sequences), "inputs[2] has non-numeric dtype object" (one)."""
    g = torch.Generator().manual_seed(0)
    model = _GRU()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for seqs in ([torch.randn(4, 3, generator=g), torch.randn(2, 3, generator=g)],
                 [torch.randn(1, 3, generator=g)]):
        packed = torch.nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)
        with pytest.raises(InputError, match=r"inputs is a torch PackedSequence.*"
                                             r"pad_packed_sequence\(x, batch_first=True\)"):
            tribute.explain(model, packed, method="saliency", target=0)
        with pytest.raises(InputError, match="PackedSequence"):
            tribute.explain(model, packed, players=tribute.components(model, "rnn"),
                            method="feature_ablation", target=0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # the padded batch the message names is explained as usual
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=True)
    attr = tribute.explain(model, padded, method="saliency", target=0)
    assert attr.flat().shape == (1, 1, 3)


@pytest.mark.parametrize("make", [sp.csr_matrix, sp.csr_array, sp.coo_matrix, sp.csc_matrix])
def test_scipy_sparse_input_is_refused_naming_toarray(make: Any) -> None:
    """A scipy sparse matrix was refused as "non-numeric dtype object (e.g. strings ...):
    encode categorical columns"; it now names the container and .toarray()."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.random((20, 5))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int))
    with pytest.raises(InputError, match=r"inputs is a scipy sparse \w+ of shape \(3, 5\).*"
                                         r"inputs\.toarray\(\)") as err:
        tribute.explain(clf, make(X[:3]), method="kernel_shap", baseline=0.0)
    assert "categorical" not in str(err.value)
    # the dense spelling it names works and equals the dense input's credits
    a = tribute.explain(clf, make(X[:3]).toarray(), method="exact_shapley", baseline=0.0)
    b = tribute.explain(clf, X[:3], method="exact_shapley", baseline=0.0)
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))


def test_torch_sparse_tensor_is_refused_naming_to_dense() -> None:
    """A torch sparse tensor passed the dtype check and failed deep inside with "reshape is not
    implemented for sparse tensors"."""
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    with pytest.raises(InputError, match=r"layout torch\.sparse_coo.*inputs\.to_dense\(\)"):
        tribute.explain(torch.nn.Linear(5, 2), x.to_sparse(), method="saliency", target=0)
