"""Small float64 models and data for the gradient-method tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def _seeded(seed: int, build: Callable[[], M]) -> M:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = build()
    return m.double().eval()


def linear(n_in: int = 6, n_out: int = 3, seed: int = 0) -> nn.Linear:
    m = _seeded(seed, lambda: nn.Linear(n_in, n_out))
    assert isinstance(m, nn.Linear)
    return m


def mlp(seed: int = 0, act: type[nn.Module] = nn.Tanh, n_in: int = 6, n_out: int = 3) -> nn.Sequential:
    """Linear-act-Linear-ReLU-Linear (no two hooked nonlinearities adjacent: Captum-safe)."""
    return _seeded(seed, lambda: nn.Sequential(
        nn.Linear(n_in, 12), act(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, n_out)))


def smooth_mlp(seed: int = 0) -> nn.Sequential:
    return _seeded(seed, lambda: nn.Sequential(
        nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 10), nn.Softplus(), nn.Linear(10, 3)))


def cnn(seed: int = 0) -> nn.Sequential:
    """A small CNN on (1, 8, 8) with a max pool not adjacent to another nonlinearity."""
    return _seeded(seed, lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 10), nn.Tanh(), nn.Linear(10, 4)))


def smooth_cnn(seed: int = 0) -> nn.Sequential:
    return _seeded(seed, lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(4, 6, 3), nn.Softplus(),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 4)))


def relu_pool_cnn(seed: int = 0, inplace: bool = False) -> nn.Sequential:
    """ReLU directly followed by MaxPool (the case Captum's DeepLift gets wrong)."""
    return _seeded(seed, lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 4)))


def tab(n: int = 4, d: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def img(n: int = 3, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def hooks_of(model: nn.Module) -> list[tuple[int, int, int]]:
    return [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()]
