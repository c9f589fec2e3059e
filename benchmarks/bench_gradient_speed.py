"""Integrated gradients: tribute vs the bare model vs Captum, and completeness accuracy.

A small CNN (2 conv layers with 16/32 channels + a linear layer) trained for a few epochs on
scikit-learn's digits, upsampled to 32x32 (bilinear). IG with 50 steps on 128 images:

* (a) tribute's wall time over the bare model's forward+backward on the same 50 x 128 rows at
  its best batch size (several tried) — the goal is a ratio <= 1.15;
* (b) Captum's ``IntegratedGradients`` with ``internal_batch_size`` tuned the same way;
* the completeness error ``|sum(phi) - (f(x) - f(b))| / |f(x) - f(b)|`` of Captum's
  ``riemann_trapezoid`` (weights summing to (n-1)/n) and of tribute's rules at 50 steps.

Run: ``PYTHONPATH=src python benchmarks/bench_gradient_speed.py [--quick]``. Prints ratios of
both wall-clock and process CPU time (best of ``repeats``, runs interleaved): on a shared
machine the CPU-time ratio is the trustworthy one, wall time includes other processes.
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import tribute

STEPS = 50
N_IMAGES = 128
BATCHES = (128, 256, 512, 1024, 2048)


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return x, torch.tensor(digits.target)


def make_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class Timer:
    """Best-of wall and process-CPU seconds per named configuration (runs interleaved)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], object]) -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        self.wall[name] = min(self.wall.get(name, float("inf")), w)
        self.cpu[name] = min(self.cpu.get(name, float("inf")), c)

    def best(self, prefix: str, clock: str) -> str:
        d = self.cpu if clock == "cpu" else self.wall
        return min((k for k in d if k.startswith(prefix)), key=d.__getitem__)

    def line(self, name: str, ref: str) -> str:
        return (f"wall {self.wall[name]:7.3f}s (x{self.wall[name] / self.wall[ref]:.3f})   "
                f"cpu {self.cpu[name]:7.3f}s (x{self.cpu[name] / self.cpu[ref]:.3f})")


def bare_forward_backward(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                          alphas: torch.Tensor, batch: int) -> None:
    """The least work any IG implementation must do: F+B on every path point."""
    rows = (alphas[:, None, None, None, None] * x[None]).reshape(-1, *x.shape[1:])
    tgt = target.repeat(len(alphas))
    for s in range(0, len(rows), batch):
        r = rows[s : s + batch].clone().requires_grad_(True)
        out = model(r)
        torch.autograd.grad(out.gather(1, tgt[s : s + batch, None]).sum(), r)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats and batch sizes")
    args = ap.parse_args()
    repeats = 1 if args.quick else 3
    batches = (512, 2048) if args.quick else BATCHES
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")

    x_all, y_all = make_data()
    model = make_cnn()
    acc = train(model, x_all, y_all, epochs=3)
    for p in model.parameters():
        p.requires_grad_(False)
    x = x_all[:N_IMAGES].contiguous()
    with torch.no_grad():
        target = model(x).argmax(1)
    print(f"CNN train accuracy {acc:.3f}; {N_IMAGES} images 1x32x32; IG {STEPS} steps; "
          f"torch threads {torch.get_num_threads()}")

    # ------------------------------------------------------------------ speed
    from captum.attr import IntegratedGradients as CaptumIG

    cig = CaptumIG(model)
    alphas = torch.linspace(0.01, 1.0, STEPS)

    def run_tribute() -> tribute.Attribution:
        return tribute.explain(model, x, method="integrated_gradients", target=target,
                               steps=STEPS, rule="gauss_legendre", progress=False)

    def run_captum(ibs: int) -> torch.Tensor:
        return cig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=STEPS,
                             method="gausslegendre", internal_batch_size=ibs)

    timer = Timer()
    for _ in range(repeats):  # interleaved, so slow phases of a shared machine hit all alike
        for b in batches:
            timer.run(f"bare {b}", functools.partial(bare_forward_backward, model, x, target, alphas, b))
            timer.run(f"captum {b}", functools.partial(run_captum, b))
        timer.run("tribute", run_tribute)
    attr = run_tribute()
    print(f"tribute rows pushed: {attr.n_rows} ({STEPS * N_IMAGES} gradient rows + "
          f"{attr.n_rows - STEPS * N_IMAGES} forward-only rows: reference pass and v(baseline) "
          f"for the completeness gap); evals/input {attr.n_evals}")
    for clock in ("cpu", "wall"):
        ref = timer.best("bare", clock)
        cap = timer.best("captum", clock)
        print(f"\n[{clock} time] reference = bare F+B at its best batch ({ref.split()[1]})")
        print(f"  bare    {ref:<12} {timer.line(ref, ref)}")
        print(f"  captum  {cap:<12} {timer.line(cap, ref)}")
        print(f"  tribute {'auto batch':<12} {timer.line('tribute', ref)}   (goal x <= 1.15)")
        d = timer.cpu if clock == "cpu" else timer.wall
        print(f"  tribute / captum: {d['tribute'] / d[cap]:.3f}")
    print("  all configurations (cpu s): " + ", ".join(f"{k}: {v:.2f}" for k, v in timer.cpu.items()))
    c_best = int(timer.best("captum", "cpu").split()[1])

    # ------------------------------------------------------------- accuracy
    with torch.no_grad():
        delta = (model(x).gather(1, target[:, None]) - model(torch.zeros_like(x)).gather(1, target[:, None]))[:, 0]
    delta64 = delta.double()

    def rel_err(total: torch.Tensor) -> tuple[float, float]:
        e = ((total.double() - delta64).abs() / delta64.abs().clamp_min(1e-12)).numpy()
        return float(np.mean(e)), float(np.median(e))

    print()
    print(f"completeness error |sum(phi) - (f(x) - f(0))| / |f(x) - f(0)| at {STEPS} steps "
          "(mean, median over images):")
    for m in ("riemann_trapezoid", "gausslegendre", "riemann_middle"):
        a = cig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=STEPS,
                          method=m, internal_batch_size=c_best)
        mean, med = rel_err(a.reshape(len(x), -1).sum(1))
        print(f"  captum  {m:<18} mean {mean:7.3%}  median {med:7.3%}")
    for rule in ("riemann_trapezoid", "gauss_legendre", "riemann_middle"):
        a = tribute.explain(model, x, method="integrated_gradients", target=target, steps=STEPS,
                            rule=rule, progress=False)
        mean, med = rel_err(torch.as_tensor(a.values).reshape(len(x), -1).sum(1))
        assert a.gap is not None  # integrated gradients reports its completeness gap
        gap_rel = float(np.mean(np.abs(a.gap) / delta64.abs().clamp_min(1e-12).numpy()))
        print(f"  tribute {rule:<18} mean {mean:7.3%}  median {med:7.3%}  (reported gap: mean {gap_rel:7.3%})")


if __name__ == "__main__":
    main()
