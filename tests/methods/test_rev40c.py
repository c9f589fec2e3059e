"""Review rev40c of aud40g: the affine-map check on Linear subclasses with their own forward
must not refuse a subclass that computes the affine map in another summation order, where the
outputs are small beside their terms (float32 inputs far from zero, a bias cancelling them):
the rounding of 4096 products of size ~10^4 * 0.016 is far above 1e-3 times outputs of ~1.
Truth: LRP of the same weights in a plain nn.Linear (float32 rounding only)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError

D = 4096


class _ProductSum(nn.Linear):
    """The affine map, summed as products along the features (another order than F.linear)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) * self.weight).sum(-1) + self.bias


class _LoRA(nn.Linear):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__(n_in, n_out)
        g = torch.Generator().manual_seed(3)
        self.a = nn.Parameter(torch.randn(2, n_in, generator=g, dtype=torch.float64).float() * 1e-2)
        self.b = nn.Parameter(torch.randn(n_out, 2, generator=g, dtype=torch.float64).float() * 1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + x @ self.a.t() @ self.b.t()


def _case(layer: nn.Linear) -> tuple[nn.Sequential, nn.Sequential, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(2, D, generator=g, dtype=torch.float64) + 1e4).float()  # unscaled features
    w = (torch.rand(4, D, generator=g, dtype=torch.float64) * 2 - 1).float() / D ** 0.5
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(-(x.double() @ w.double().t()).mean(0).float())  # outputs of ~1
    plain = nn.Linear(D, 4)
    plain.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    head = nn.Linear(4, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -0.5, 0.25, 2.0]]))
        head.bias.zero_()
    return nn.Sequential(layer, nn.ReLU(), head), nn.Sequential(plain, nn.ReLU(), head), x


def test_lrp_accepts_a_subclass_summing_in_another_order_on_unscaled_inputs() -> None:
    model, plain, x = _case(_ProductSum(D, 4))
    with torch.no_grad():
        z = model[0](x)
        assert float(z.abs().max()) < 10 and float((z - plain[0](x)).abs().max()) > 1e-3 * float(z.abs().max())
    got = tribute.explain(model, x, method="lrp", target=0, progress=False, composite="epsilon_plus")
    want = tribute.explain(plain, x, method="lrp", target=0, progress=False, composite="epsilon_plus")
    scale = float(want.values.abs().sum())
    # the subclass's outputs differ from F.linear's by rounding (0.5% of the smallest): no more
    assert float((got.values - want.values).abs().sum()) <= 1e-2 * scale


def test_lrp_still_refuses_a_lora_update_on_unscaled_inputs() -> None:
    model, _, x = _case(_LoRA(D, 4))
    with pytest.raises(UnsupportedModelError, match=r"_LoRA\) subclasses nn.Linear"):
        tribute.explain(model, x, method="lrp", target=0, progress=False, composite="epsilon_plus")
