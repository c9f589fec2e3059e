"""LRP speed: tribute's ``lrp`` vs one bare forward+backward pass (and vs Zennit, if installed).

Random-weight float32 networks on 32x32 RGB images (speed does not depend on training):
a VGG-style net (4 conv layers 32-64 channels with BatchNorm, max pools, 2 Linear) and a
ResNet-style net (stem + 4 basic blocks with BatchNorm, average pool, Linear). For each
composite and network: the wall time of ``tribute.explain(method="lrp")`` on ``N`` images over
the best time of the bare model's forward + input-gradient backward on the same images (best
batch size of several), and the same for Zennit's rules (``composite.context`` + autograd).

The issue's goal is a ratio <= 1.15. LRP cannot reach it for rules that need modified forward
passes (z+ needs one extra convolution per layer, gamma/alpha-beta two, their transposes as
many): the printed ratios are what it costs.

Run: ``PYTHONPATH=src python benchmarks/bench_lrp_speed.py [--quick]``. Prints process CPU
time ratios (best of ``repeats``, runs interleaved; on a shared machine the CPU-time ratio is
the trustworthy one).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import tribute

BATCHES = (32, 64, 128)


class Block(nn.Module):
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
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity
        return self.relu(out)


def vgg() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64),
        nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    ).eval()


def resnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        Block(32, 32), Block(32, 32), Block(32, 64, 2), Block(64, 64),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()


def cpu_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def bare(model: nn.Module, x: torch.Tensor, target: int, bs: int) -> None:
    for i in range(0, x.shape[0], bs):
        xi = x[i : i + bs].clone().requires_grad_(True)
        out = model(xi)[:, target].sum()
        torch.autograd.grad(out, xi)


def zennit_runner(net: str, composite: str) -> Callable[[nn.Module, torch.Tensor, int, int], None] | None:
    try:
        try:
            import torchvision.models.resnet  # noqa: F401
        except Exception:  # zennit only needs the two class names from torchvision
            for name in ("torchvision", "torchvision.models", "torchvision.models.resnet"):
                sys.modules.setdefault(name, types.ModuleType(name))
            res = sys.modules["torchvision.models.resnet"]
            res.BasicBlock = Block  # type: ignore[attr-defined]
            res.Bottleneck = type("Bottleneck", (nn.Module,), {})  # type: ignore[attr-defined]
        from zennit import composites as zc
        from zennit import torchvision as ztv
    except ImportError:
        return None
    canon = ztv.VGGCanonizer if net == "vgg" else ztv.ResNetCanonizer
    comp = (zc.EpsilonPlusFlat(canonizers=[canon()]) if composite == "epsilon_plus_flat"
            else zc.EpsilonGammaBox(low=0.0, high=1.0, canonizers=[canon()]))

    def run(model: nn.Module, x: torch.Tensor, target: int, bs: int) -> None:
        with comp.context(model) as m:
            for i in range(0, x.shape[0], bs):
                xi = x[i : i + bs].clone().requires_grad_(True)
                y = m(xi)
                seed = torch.zeros_like(y)
                seed[:, target] = y[:, target]
                torch.autograd.grad(y, xi, seed)

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 64 if args.quick else 256
    repeats = 2 if args.quick else 3
    torch.set_num_threads(2)
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = 3
    print(f"LRP speed, {n} images 3x32x32, float32, CPU time (best of {repeats}); torch {torch.__version__}")
    for net, build in (("vgg", vgg), ("resnet", resnet)):
        model = build()
        t_bare, bs_bare = min((cpu_time(functools.partial(bare, model, x, target, b), repeats), b) for b in BATCHES)
        print(f"\n{net}: bare forward+backward {t_bare:.3f}s (batch {bs_bare})")
        for comp in ("epsilon_plus_flat", "epsilon_gamma_box"):
            kw: dict[str, Any] = {"low": 0.0, "high": 1.0} if comp == "epsilon_gamma_box" else {}
            t_ours, bs_ours = min(
                (cpu_time(functools.partial(tribute.explain, model, x, method="lrp", composite=comp, target=target,
                                            batch_size=b, progress=False, **kw), repeats), b)
                for b in BATCHES
            )
            line = f"  {comp:18s} tribute {t_ours:.3f}s (batch {bs_ours}) ratio {t_ours / t_bare:.2f}"
            z = zennit_runner(net, comp)
            if z is not None:
                t_z = min(cpu_time(functools.partial(z, model, x, target, b), repeats) for b in BATCHES)
                line += f" | zennit {t_z:.3f}s ratio {t_z / t_bare:.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
