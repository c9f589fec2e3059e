"""Engine overhead on a GPU: every method family versus the bare model at its own best batch.

The CUDA twin of ``bench_engine_overhead.py`` (same models, inputs and method settings, its
builders reused): models and inputs on the device, every timing synchronised with the device
and taken by wall clock (CPU time does not see the GPU's work).

1. the bare model's best rows per pass on pre-built rows at 16 ... 65,536 rows (a GPU
   keeps gaining well past the CPU's sizes), forward under ``inference_mode`` and
   forward + backward;
2. each method family through ``tribute.explain`` with everything automatic, cold (tuned sizes
   and cached designs forgotten), warm (the next call) and, with ``--settled N``, call N;
3. the ratio ``explain seconds / bare seconds on the same rows`` (goal <= 1.10, issue #9), and
   the batch size the engine settled on.

Run (on a machine with a CUDA device)::

    python benchmarks/bench_engine_gpu.py                      # cnn8, cnn32, widecnn, mlp13
    python benchmarks/bench_engine_gpu.py --models cnn32 --settled 6 --scale 4
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tribute
from bench_engine_overhead import (
    Case,
    _tuned_size,
    build_cnn,
    build_cnn8,
    build_wide_cnn,
    digit_images,
    forget,
    image_case,
    mlp_case,
)

SIZES = (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536)
_MIN_MEASURE_S = 0.15


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _on(rows_of: Callable[[int], tuple[Any, ...]], device: torch.device,
        n: int) -> tuple[Any, ...]:
    return tuple(r.to(device) for r in rows_of(n))


def _bare(model: Any, rows: torch.Tensor, n: int, bs: int, grad: bool) -> None:
    ctx = torch.enable_grad if grad else torch.inference_mode
    with ctx():
        for s in range(0, n, bs):
            chunk = rows[s:min(s + bs, n)]
            if grad:
                x = chunk.clone().requires_grad_(True)
                torch.autograd.grad(model(x)[:, 0].sum(), x)
            else:
                model(chunk)


def bare_rates(case: Case, device: torch.device, grad: bool, n_rows: int) -> dict[int, float]:
    """Rows/s of the bare model per batch size (sizes that run out of memory are left out)."""
    rows = case.bare_rows(n_rows)[0].to(device)
    _bare(case.model, rows, min(256, n_rows), min(256, n_rows), grad)
    per: dict[int, float] = {}
    for bs in SIZES:
        if bs > n_rows:
            break
        try:
            best = float("inf")
            for _ in range(2):
                done, spent = 0, 0.0
                while spent < _MIN_MEASURE_S:
                    spent += _timed(functools.partial(_bare, case.model, rows, n_rows, bs,
                                                      grad), device)[0]
                    done += n_rows
                best = min(best, spent / done)
            per[bs] = 1.0 / best
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
    return per


def run_case(case: Case, device: torch.device, repeats: int, settled: int,
             n_probe: int) -> list[str]:
    per_f = bare_rates(case, device, False, n_probe)
    bs_f = max(per_f, key=lambda k: per_f[k])
    lines = [f"== {case.name} on {device}: bare forward best {bs_f} "
             f"({per_f[bs_f]:,.0f} rows/s); per size: "
             + ", ".join(f"{k}: {v:,.0f}" for k, v in per_f.items())]
    per_g = bare_rates(case, device, True, max(n_probe // 2, 16))
    bs_g = max(per_g, key=lambda k: per_g[k])
    lines.append(f"   bare forward+backward best {bs_g} ({per_g[bs_g]:,.0f} rows/s); per size: "
                 + ", ".join(f"{k}: {v:,.0f}" for k, v in per_g.items()))
    print("\n".join(lines), flush=True)
    for label, settings in case.methods.items():
        kw = {**case.common, **settings}
        grad = kw["method"] == "integrated_gradients"

        def call(kw: dict[str, Any] = kw) -> Any:
            return tribute.explain(case.model, case.inputs, progress=False, **kw)

        cold = warm = later = float("inf")
        attr: Any = None
        for _ in range(repeats):
            forget()
            t, attr = _timed(call, device)
            cold = min(cold, t)
            warm = min(warm, _timed(call, device)[0])
            if settled > 1:
                for _ in range(settled - 2):
                    call()
                later = min(later, _timed(call, device)[0])
        n_grad = int(attr.extra["steps"]) * int(attr.values.shape[0]) if grad else 0
        n_fwd = attr.n_rows - n_grad
        bare = n_fwd / per_f[bs_f] + (n_grad / per_g[bs_g] if n_grad else 0.0)
        assert attr.values.device.type == device.type, attr.values.device
        line = (f"   {label:<34} rows {attr.n_rows:>8,}  {cold * 1e3:8.1f} ms (warm "
                f"{warm * 1e3:8.1f})  bare {bare * 1e3:8.1f} ms  ratio {cold / bare:6.2f} "
                f"(warm {warm / bare:6.2f}"
                + ("" if settled < 2 else f"; call {settled} {later / bare:6.2f}")
                + f")  tuned batch {_tuned_size(case.model, grad)}")
        print(line, flush=True)
        lines.append(line)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="cnn8,cnn32,widecnn,mlp13")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--settled", type=int, default=4)
    ap.add_argument("--scale", type=int, default=8,
                    help="inputs per call = the CPU benchmark's default count x this")
    ap.add_argument("--probe", type=int, default=65536,
                    help="rows of the bare model's batch-size probe (its largest size)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA device here")
    torch.manual_seed(0)
    k = args.scale
    makers: dict[str, Callable[[], Case]] = {
        "cnn8": lambda: image_case("cnn8", build_cnn8(), digit_images(64 * k, 8), 2, False),
        "cnn32": lambda: image_case("cnn32", build_cnn(), digit_images(16 * k, 32), 4, False),
        "widecnn": lambda: image_case("widecnn", build_wide_cnn(), digit_images(2 * k, 32), 8,
                                      False, budget=64),
        "mlp13": lambda: mlp_case(False, 178 * k),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    print(f"engine overhead on {name}; torch {torch.__version__}; {os.cpu_count()} CPUs; "
          f"inputs x{k} of the CPU benchmark's; {args.repeats} repeats; wall clock, synchronised")
    t_all = time.perf_counter()
    for m in args.models.split(","):
        case = makers[m]()
        case.model.to(device)
        case.inputs = case.inputs.to(device)
        case.bare_rows = functools.partial(_on, case.bare_rows, device)
        run_case(case, device, args.repeats, args.settled,
                 args.probe if m != "widecnn" else min(args.probe, 4096))
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
