"""Regression tests of review rev34b (stop 34): TRAK on a full-rank ill-conditioned kernel, attnlrp on
in-place gates and F.normalize, LRP's functional check inside containers, deeplift on lrp.Add."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.games.data_fits import RidgeFit


def test_trak_full_rank_ill_conditioned_kernel_is_not_truncated() -> None:
    """Raw tabular features of different scales: Phi^T Phi has full rank but eigenvalues 4e-13
    apart; TRAK must equal T (Phi^T Phi)^-1 Phi^T diag(y - f) (e62f028 did, to 1e-15)."""
    rng = np.random.default_rng(0)
    n, scales = 60, np.array([1e4, 1.0, 1e-2])
    X = rng.normal(size=(n, 3)) * scales + scales
    y = X @ (1 / scales) + rng.normal(size=n)
    Xt = rng.normal(size=(4, 3)) * scales + scales
    fit = RidgeFit(l2=1e-6)
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    data = tribute.TrainingData(torch.tensor(X), torch.tensor(y), fit=fit)
    a = tribute.explain(model, torch.tensor(Xt), method="trak", players=data, projector="none", progress=False)
    A, At = np.hstack([X, np.ones((n, 1))]), np.hstack([Xt, np.ones((4, 1))])
    w, bias = model.get_parameter("weight"), model.get_parameter("bias")
    th = np.concatenate([w.detach().numpy().ravel(), bias.detach().numpy()])
    tau = At @ np.linalg.solve(A.T @ A, A.T) * (y - A @ th)[None, :]
    assert a.extra["kernel_rank"] == 4
    np.testing.assert_allclose(a.values.numpy().reshape(tau.shape), tau, rtol=0, atol=1e-9 * np.abs(tau).max())


class _Gated(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.inp = nn.Linear(4, 8)
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.a, self.b, self.act, self.head = nn.Linear(8, 8), nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.reshape(x.shape[0], 5, 4))
        h = h + self.att(h, h, h, need_weights=False)[0]
        if self.inplace:
            g = self.act(self.a(h))
            g *= self.b(h)
        else:
            g = self.act(self.a(h)) * self.b(h)
        return self.head(g.mean(1))


@pytest.mark.parametrize("variant", ["attnlrp", "cp"])
def test_attnlrp_in_place_gated_product_equals_out_of_place(variant: str) -> None:
    """``g = act(a(h)); g *= b(h)`` crashed ('Output 0 of _Ratio is a view and is being modified
    inplace'); CP-LRP must also hold the in-place gate constant."""
    x = torch.randn(3, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = []
    for inplace in (False, True):
        torch.manual_seed(0)
        m = _Gated(inplace).double().eval()
        out.append(np.asarray(tribute.explain(m, x, method="attnlrp", variant=variant, target=1,
                                              progress=False).flat()))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-12, atol=1e-14)


class _Pooled(nn.Module):
    def __init__(self, normalize: bool) -> None:
        super().__init__()
        self.normalize = normalize
        self.inp = nn.Linear(4, 8, bias=False)
        self.act = nn.GELU()
        self.out = nn.Linear(8, 6, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.out(self.act(self.inp(x.reshape(x.shape[0], 5, 4)))).mean(1)
        return nn.functional.normalize(e, dim=-1) if self.normalize else e


def test_attnlrp_l2_normalize_holds_the_norm_constant() -> None:
    """``F.normalize`` (MeanPooling's default) is RMSNorm up to a constant: the norm is held
    constant (relevance = the unnormalised model's / ||e||), not a plain gradient, whose
    x * grad sums to 0 for this degree-0 map."""
    x = torch.randn(3, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.manual_seed(0)
    raw = _Pooled(False).double().eval()
    normed = _Pooled(True).double().eval()
    normed.load_state_dict(raw.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'functional_ops' warning either
        r = tribute.explain(normed, x, method="attnlrp", target=2, progress=False)
    u = tribute.explain(raw, x, method="attnlrp", target=2, progress=False)
    with torch.no_grad():
        norm = raw(x).norm(dim=-1)
    np.testing.assert_allclose(np.asarray(r.flat()).reshape(3, -1), np.asarray(u.flat()).reshape(3, -1) / norm.numpy()[:, None], rtol=1e-10)


class _Res(nn.Module):
    def __init__(self, use_add: bool) -> None:
        super().__init__()
        from tribute.methods.lrp import Add

        self.a, self.r, self.b, self.head = nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 2)
        self.add = Add() if use_add else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.b(self.r(self.a(x)))
        h = self.add(h, x) if self.add is not None else h + x
        return self.head(self.r(h))


def test_deeplift_accepts_lrp_add_module() -> None:
    """The module lrp's residual warning asks for (tribute.methods.lrp.Add) was refused by
    deeplift ('not supported by the rescale rule'): it is a sum, exact as a gradient."""
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = []
    for use_add in (False, True):
        torch.manual_seed(0)
        m = _Res(use_add).double().eval()
        out.append(np.asarray(tribute.explain(m, x, method="deeplift", baseline=0.0, target=1, progress=False).flat()))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-12, atol=1e-15)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c, self.r = nn.Linear(6, 6), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.r(self.c(x) + x)  # a residual written with '+'


def test_lrp_reports_a_residual_inside_a_sequential() -> None:
    """torchvision's layout (layer1 = nn.Sequential(BasicBlock, ...)): the container's depth hook
    hid every functional op of the blocks inside it; the same block as a direct child warned."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 6), nn.Sequential(_Block(), _Block()), nn.Linear(6, 2)).double().eval()
    with pytest.warns(UserWarning, match=r"add x2 per forward pass"):
        tribute.explain(m, torch.randn(3, 6, dtype=torch.float64), method="lrp", composite="epsilon_plus",
                        target=1, progress=False)
