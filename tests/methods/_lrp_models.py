"""Small float64 VGG- and ResNet-style networks (with BatchNorm) for the LRP tests."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """A ResNet basic block laid out like torchvision's (``out += identity``, reused ``relu``)."""

    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """Stand-in for torchvision's Bottleneck (only its class is needed by zennit's canonizer)."""

    expansion = 4


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            assert m.running_mean is not None and m.running_var is not None  # track_running_stats
            m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def vgg(seed: int = 0, inplace: bool = False) -> nn.Sequential:
    """Conv-BN-ReLU x2, max pool, conv-ReLU, average pool, two Linear layers; input (3, 8, 8)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=inplace),
            nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=inplace),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(inplace=inplace), nn.Dropout(0.5),
            nn.Linear(16, 5),
        )
        with torch.no_grad():
            _randomize_bn(m, torch.Generator().manual_seed(seed + 100))
    return m.double().eval()


def resnet(seed: int = 0) -> nn.Sequential:
    """Stem conv-BN-ReLU, two basic blocks (the second with a strided downsample), avg pool, Linear."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
            BasicBlock(6, 6), BasicBlock(6, 8, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
        )
        with torch.no_grad():
            _randomize_bn(m, torch.Generator().manual_seed(seed + 100))
    return m.double().eval()


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
