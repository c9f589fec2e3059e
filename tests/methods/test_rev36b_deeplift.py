"""Review rev36b of aud36n: DeepLIFT's in-place write-back on slices and chains."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import tribute


class _InputSlice(nn.Module):
    """An in-place ReLU on a slice of the model's input, which is then read whole."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=True)
        self.o = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.act(x[:, :2])
        return self.o(x)


def test_deeplift_explains_an_inplace_activation_on_a_slice_of_the_input() -> None:
    """The write-back raised PyTorch's bare "a view of a leaf Variable that requires grad is
    being used in an in-place operation" (before it, the slice was left unchanged and another
    function was explained with a zero gap); rev36b refused it with UnsupportedModelError.
    Since small37 (stop 37) the model gets a copy of the input rows in the graph, so the
    write-back works: the rescale rule by hand, relu(x) - relu(x0) on the slice."""
    model = _InputSlice().double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x_in = x.clone()
    a = tribute.explain(model, x_in, method="deeplift", target=1,
                        baseline=torch.zeros(4, dtype=torch.float64), progress=False)
    w = model.o.weight.detach()[1]
    want = torch.cat([x[:, :2].clamp_min(0), x[:, 2:]], dim=1) * w
    torch.testing.assert_close(a.values, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(x_in, x)
    assert model.act.inplace and not model.act._forward_hooks and not model.act._forward_pre_hooks
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class _Chain(nn.Module):
    """Two in-place activations in a row on a slice of a hidden tensor read again later."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.l0 = nn.Linear(4, 6)
        self.a = nn.LeakyReLU(0.1, inplace=inplace)
        self.b = nn.Hardtanh(-0.3, 0.4, inplace=inplace)
        self.o = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l0(x)
        if self.inplace:
            self.b(self.a(h[:, :3]))
        else:  # the same function written out of place
            h = torch.cat([self.b(self.a(h[:, :3])), h[:, 3:]], dim=1)
        return self.o(h) + self.o(0.5 * h)


def test_deeplift_inplace_chain_on_a_slice_equals_the_out_of_place_model() -> None:
    torch.manual_seed(0)
    inplace = _Chain(True).double()
    plain = _Chain(False).double()
    plain.load_state_dict(inplace.state_dict())
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = torch.full((4,), 0.2, dtype=torch.float64)
    got = tribute.explain(inplace, x.clone(), method="deeplift", target=1, baseline=x0,
                          progress=False)
    want = tribute.explain(plain, x.clone(), method="deeplift", target=1, baseline=x0,
                           progress=False)
    np.testing.assert_allclose(got.values, want.values, rtol=1e-12, atol=1e-14)
    with torch.no_grad():
        delta = (plain(x)[:, 1] - plain(x0[None])[:, 1]).numpy()
    np.testing.assert_allclose(got.flat().reshape(3, 4).sum(1), delta, rtol=1e-9, atol=1e-12)
