"""load_weights refuses weights of another shape with the tensor's name, and leaves the model."""

from __future__ import annotations

import pytest
import torch

from tribute.errors import WeightsFormatError
from tribute.models import load_weights


def test_shape_mismatch_names_the_tensor_and_leaves_the_model(tmp_path):
    from safetensors.torch import save_file

    src = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    path = tmp_path / "w.safetensors"
    save_file(src.state_dict(), str(path))
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 2))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(WeightsFormatError, match=r"'0\.weight' is \[3, 4\] in the file but \[5, 4\] in the model \(2 more"):
        load_weights(other, path)
    for k, v in other.state_dict().items():
        assert torch.equal(v, before[k])
    same = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    load_weights(same, path)
    assert torch.equal(same.state_dict()["0.weight"], src.state_dict()["0.weight"])
