"""Engine overhead: ``game.value`` versus the bare model at its best batch size.

The acceptance figure of the core: evaluating ``N`` coalitions per image through a feature game
(masks -> composed rows -> chunked forward -> target selection -> float64 values) should cost
at most ~10% more than pushing the same number of *pre-built* rows through the bare model under
``torch.inference_mode`` at the batch size that suits the model best (64 ... 8192 rows tried).

Setup: a small CNN (two conv layers with 16/32 channels + a linear head, built here), 128
scikit-learn digit images upsampled to 32x32, 4x4 superpixels (64 players), ``N = 256`` random
coalitions per image shared by all images (``K x 64`` masks): 32,768 rows.

Run::

    python benchmarks/bench_engine_overhead.py            # default sizes
    python benchmarks/bench_engine_overhead.py --images 32 --coalitions 128 --repeats 2

Prints both timings and the ratio engine / bare (lower is better; goal <= 1.10).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import tribute

BATCH_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192)


def build_cnn(seed: int = 0) -> nn.Module:
    """Two conv layers (16 and 32 channels) and a linear head over 32x32 grey images."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    ).eval()


def digit_images(n: int) -> torch.Tensor:
    """``n x 1 x 32 x 32`` float32: scikit-learn digits scaled to [0, 1], bilinear upsampled."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images[:n].astype(np.float32) / 16.0)[:, None]
    return torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` runs (after one warm-up) in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bare_forward(model: nn.Module, rows: torch.Tensor, batch_size: int) -> None:
    with torch.inference_mode():
        for s in range(0, rows.shape[0], batch_size):
            model(rows[s : s + batch_size])


def bare_best(model: nn.Module, rows: torch.Tensor, repeats: int,
              sizes: tuple[int, ...] = BATCH_SIZES) -> tuple[int, dict[int, float]]:
    """The bare model's best batch size, timed on up to 8192 of the rows (rows/s per size)."""
    sub = rows[: min(rows.shape[0], 8192)]
    bare_forward(model, sub[:1024], 256)  # warm-up
    per = {}
    for bs in sizes:
        if bs <= max(64, sub.shape[0]):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                bare_forward(model, sub, bs)
                times.append(time.perf_counter() - t0)
            per[bs] = sub.shape[0] / min(times)
    return max(per, key=lambda k: per[k]), per


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best time of each function, measured in alternation (robust to a shared, loaded CPU)."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def composed_rows(x: torch.Tensor, masks: torch.Tensor, patch: int) -> torch.Tensor:
    """The rows a grouped feature game builds (baseline 0): ``B*K x 1 x H x W``."""
    b, _, h, w = x.shape
    grid = (torch.arange(h)[:, None] // patch) * (w // patch) + torch.arange(w)[None] // patch
    elem = masks[:, grid.flatten()].to(x.dtype)  # K x HW
    return (x.reshape(b, 1, h * w) * elem[None]).reshape(-1, 1, h, w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--coalitions", type=int, default=256)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the interleaved timing")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = build_cnn()
    x = digit_images(args.images)
    n_players = (32 // args.patch) ** 2
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(args.coalitions, n_players, generator=g) < 0.5).double()
    rows = composed_rows(x, masks, args.patch)
    n_rows = rows.shape[0]

    bs, per = bare_best(model, rows, 1)

    adapter = tribute.models.as_model(model, "torch")
    with adapter.session():
        game = tribute.build_game(adapter, x, target=0, groups=tribute.patches(args.patch))
        game_bs = tribute.build_game(adapter, x, target=0, groups=tribute.patches(args.patch),
                                     batch_size=bs)
        vals = game.value(masks)  # correctness check against the bare model
        with torch.inference_mode():
            ref = torch.cat([model(rows[s : s + 4096]) for s in range(0, n_rows, 4096)])[:, 0]
        err = float((vals.reshape(-1) - ref.double()).abs().max())
        chunk = game.engine.chunk_rows(game.row_bytes, False)
        t = interleaved({
            "bare": lambda: bare_forward(model, rows, bs),
            "engine": lambda: game.value(masks),
            "engine_bs": lambda: game_bs.value(masks),
        }, args.repeats)

    print(f"engine overhead: {args.images} images x {args.coalitions} coalitions = {n_rows} rows, "
          f"{n_players} players, torch threads {torch.get_num_threads()}")
    print("bare model rows/s per batch size (8192-row probe): "
          + ", ".join(f"{k}: {v:.0f}" for k, v in per.items()))
    print(f"{'path':<40}{'seconds':>9}{'rows/s':>10}{'ratio':>8}")
    rowsfmt = [
        (f"bare model, inference_mode, bs={bs}", t["bare"]),
        (f"game.value, automatic chunk={chunk}", t["engine"]),
        (f"game.value, batch_size={bs}", t["engine_bs"]),
    ]
    for name, sec in rowsfmt:
        print(f"{name:<40}{sec:>9.3f}{n_rows / sec:>10.0f}{sec / t['bare']:>8.3f}")
    print(f"max |game.value - bare output| = {err:.2e}")
    print(f"RATIO engine/bare = {t['engine'] / t['bare']:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
