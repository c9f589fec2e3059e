"""Region methods on the planted-pattern images and the DiFull grid: localisation, faithfulness, cost.

Cases come from ``tribute bench`` (:mod:`tribute.bench.suites`, preset ``quick``; the CNNs are
trained on first use and cached): ``planted_images`` (20x20 grey images, class 1 iff a 6x6
plus is planted; every image also holds a ring distractor of the same brightness; the plus is
the truth) and ``difull`` (2x2 grid of 8x8 digits, only the top-left cell can matter).

Methods: ``xrai``, ``submodular_regions``, ``extremal_perturbation`` against
``integrated_gradients``, ``grad_cam`` and ``kernel_shap`` with Felzenszwalb-Huttenlocher
superpixels as players (one superpixel map per image, the same segmentation the submodular
search uses; a superpixel's credit spread evenly over its pixels). Dense pixel players on
planted images; on DiFull the case's 2x2 patches are the players (and the regions) of every
method, Grad-CAM's map averaged per patch.

Metrics (per sample, then mean ± standard error):

* ``mass``: relevance mass accuracy (positive credit inside the truth / all positive credit).
* ``rank``: relevance rank accuracy (share of the ``|truth|`` highest-credit pixels in the truth).
* ``top-region mass``: take each method's regions in its order (XRAI and the submodular search:
  ``extra["region_rank"]``; extremal perturbations: its nested area masks; kernel_shap: the
  superpixels by credit density) and keep the first ``k`` regions, ``k`` the smallest number
  whose union covers at least the truth's area (in pixels); the score is the fraction of that
  union's pixels that lie inside the truth. 1 is perfect; regions chosen at random score about
  the truth's share of the image (printed per case). On DiFull the regions are the 2x2
  patches and a patch counts by the share of its pixels in the truth.
* ``deletion`` / ``insertion``: :func:`tribute.evaluate` with baseline 0, 20 steps,
  normalised curves (lower / higher is better).

Run: ``PYTHONPATH=src python benchmarks/bench_regions.py [--n 24] [--cases planted_images,difull]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import warnings
from typing import Any

import numpy as np
import torch

import tribute
from tribute.bench.suites import PRESETS, case_builders
from tribute.methods.regions._common import ImageInfo
from tribute.methods.regions.segmentation import felzenszwalb

REGION = ("xrai", "submodular_regions", "extremal_perturbation")


def superpixel_maps(x: torch.Tensor, scale: float = 150.0, min_size: float = 0.02) -> np.ndarray:
    """The submodular search's superpixels for each image (``batch x H x W`` ids)."""
    from tribute.methods.regions._common import normalise

    out = []
    for img in x.detach().double().numpy():
        ms = max(1, round(min_size * img.shape[-1] * img.shape[-2]))
        sigma = 0.8 * max(img.shape[-2:]) / 224  # as submodular_regions scales it
        out.append(felzenszwalb(normalise(img), scale / 255.0, sigma, ms))
    return np.stack(out)


def top_region_mass(order: np.ndarray, truth: np.ndarray) -> float:
    """``order``: H*W region positions (0 first); ``truth``: H*W bool."""
    need = truth.sum()
    covered = np.zeros_like(truth)
    for r in np.unique(order):
        covered |= order == r
        if covered.sum() >= need:
            break
    return float((covered & truth).sum() / max(covered.sum(), 1))


def run_case(name: str, n: int, seed: int, grad_steps: int, budget: int) -> None:
    preset = dataclasses.replace(PRESETS["quick"], n_image=n)
    case = case_builders()[name](preset, seed)
    model, x = case.model, case.inputs
    target = torch.as_tensor(case.target)
    truth_px = np.asarray(case.ground_truth).reshape(len(x), -1)[:, : x.shape[-1] * x.shape[-2]]
    groups = case.groups
    print(f"\n== {name}: {len(x)} images {tuple(x.shape[1:])}, players: "
          f"{'pixels' if groups is None else f'{int(groups.max()) + 1} patches'}; "
          f"{case.model_info}; truth covers {truth_px.mean():.3f} of the pixels")
    common: dict[str, Any] = {"target": target, "baseline": case.baseline, "progress": False}
    if groups is not None:
        common["groups"] = groups
    runs: dict[str, tuple[tribute.Attribution, np.ndarray | None]] = {}
    plan: list[tuple[str, dict[str, Any]]] = [
        ("integrated_gradients", {"budget": grad_steps + 2}),
        ("grad_cam", {}),
        ("xrai", {"budget": grad_steps + 1}),
        ("submodular_regions", {"budget": budget}),
        ("extremal_perturbation", {"budget": budget}),
    ]
    for method, kw in plan:
        try:
            attr = tribute.explain(model, x, method=method, seed=seed, **common, **kw)
        except tribute.errors.TributeError as exc:  # e.g. Grad-CAM on a model that tiles its batch
            print(f"{method:26s} n/a: {str(exc).splitlines()[0][:110]}")
            continue
        order = None
        if method in REGION:
            rr = np.asarray(attr.extra["region_rank"])[:, 0]
            order = rr.reshape(len(x), -1)
        runs[method] = (attr, order)
    # kernel_shap on superpixels (dense cases) or on the case's patches
    if groups is None:
        sp = superpixel_maps(x)
        kw_common = {k: v for k, v in common.items() if k not in ("groups", "target")}
        dens = np.zeros(sp.shape, dtype=np.float64)
        order = np.zeros(sp.shape, dtype=np.int64)
        secs, evals = 0.0, 0
        for b in range(len(x)):  # superpixel counts differ per image: one game per image
            ks = tribute.explain(model, x[b : b + 1], method="kernel_shap",
                                 groups=torch.from_numpy(sp[b][None]), budget=budget, seed=seed,
                                 target=target[b : b + 1], **kw_common)
            vals = ks.flat()[0, 0] if ks.flat().ndim == 3 else ks.flat()[0]
            secs += ks.seconds
            evals = ks.n_evals
            sizes = np.bincount(sp[b].ravel(), minlength=vals.shape[0]).astype(float)
            d = vals / np.maximum(sizes, 1)
            dens[b] = d[sp[b]]
            pos = np.empty(len(d), dtype=np.int64)
            pos[np.argsort(-d, kind="stable")] = np.arange(len(d))
            order[b] = pos[sp[b]]
        ig = runs["integrated_gradients"][0]  # a pixel-shaped attribution to carry the map
        lifted = dataclasses.replace(ig, values=torch.from_numpy(dens[:, None]).to(ig.values.dtype),
                                     method="kernel_shap", n_evals=evals, seconds=secs)
        runs["kernel_shap (superpixels)"] = (lifted, order.reshape(len(x), -1))
    else:
        ks = tribute.explain(model, x, method="kernel_shap", budget=budget, seed=seed, **common)
        runs["kernel_shap (patches)"] = (ks, None)

    print(f"{'method':26s} {'evals':>6s} {'sec':>6s} {'mass':>12s} {'rank':>12s} "
          f"{'top-region':>12s} {'deletion':>12s} {'insertion':>12s}")
    for label, (attr, order) in runs.items():
        ev: dict[str, tribute.metrics.MetricResult] = {}  # type: ignore[name-defined]
        for metric in ("relevance_mass", "relevance_rank"):
            ev[metric] = tribute.evaluate(model, x, attr, metric=metric, target=target,
                                          baseline=case.baseline, ground_truth=case.ground_truth,
                                          progress=False)
        for metric in ("deletion", "insertion"):
            ev[metric] = tribute.evaluate(model, x, attr, metric=metric, target=target,
                                          baseline=case.baseline, steps=20, normalise=True,
                                          progress=False)
        top = "-"
        if order is not None and groups is None:
            tm = np.array([top_region_mass(order[b], truth_px[b]) for b in range(len(x))])
            top = f"{tm.mean():.3f}±{tm.std(ddof=1) / np.sqrt(len(tm)):.3f}"
        elif order is not None:  # regions are patches: truth per patch = any truth pixel
            gflat = np.asarray(groups).reshape(-1)[: truth_px.shape[1]]
            tm_list: list[float] = []
            for b in range(len(x)):
                area = np.bincount(gflat, minlength=order.shape[1]).astype(float)
                tp = np.bincount(gflat, weights=truth_px[b].astype(float),
                                 minlength=order.shape[1]) / np.maximum(area, 1)
                need = truth_px[b].sum()
                got, inside = 0.0, 0.0
                for r in np.unique(order[b]):
                    sel = order[b] == r
                    got += area[sel].sum()
                    inside += (area[sel] * tp[sel]).sum()
                    if got >= need:
                        break
                tm_list.append(inside / max(got, 1.0))
            tm_a = np.array(tm_list)
            top = f"{tm_a.mean():.3f}±{tm_a.std(ddof=1) / np.sqrt(len(tm_a)):.3f}"

        def fmt(r: Any) -> str:
            s = np.asarray(r.scores, dtype=float).reshape(-1)
            s = s[np.isfinite(s)]
            return f"{s.mean():.3f}±{s.std(ddof=1) / np.sqrt(max(len(s), 1)):.3f}"

        print(f"{label:26s} {attr.n_evals:6d} {attr.seconds:6.1f} {fmt(ev['relevance_mass']):>12s} "
              f"{fmt(ev['relevance_rank']):>12s} {top:>12s} {fmt(ev['deletion']):>12s} "
              f"{fmt(ev['insertion']):>12s}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="images per case")
    ap.add_argument("--cases", default="planted_images,difull")
    ap.add_argument("--grad-steps", type=int, default=32)
    ap.add_argument("--budget", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print(f"region methods benchmark; torch {torch.__version__}, 1 thread, load average "
          f"{os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    for name in args.cases.split(","):
        run_case(name, args.n, args.seed, args.grad_steps, args.budget)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")


_ = ImageInfo  # the region helpers this script mirrors

if __name__ == "__main__":
    main()
