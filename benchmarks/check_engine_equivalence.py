"""Values of every engine-heavy method family, for before/after comparisons of engine changes.

Dumps the attributions of integrated gradients, saliency, input x gradient, feature ablation,
occlusion, kernel_shap, permutation_shapley, lime and component patching / atp on an MLP and a
small CNN, for seeds 0 and 1 and several batch sizes (None = self-tuned, 7, 64), to one
``.npz``; ``--compare OLD.npz`` checks that every array is bit-for-bit equal to the old
dump and that the values do not depend on the batch size.

Run::

    python benchmarks/check_engine_equivalence.py --out before.npz
    # ... change the engine ...
    python benchmarks/check_engine_equivalence.py --out after.npz --compare before.npz
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import torch
from torch import nn

import tribute
from tribute.engine import clear_tuners
from tribute.methods import lime as _lime
from tribute.methods import shapley_sampling as _kshap


def models() -> dict[str, tuple[nn.Module, torch.Tensor, dict]]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    x = torch.randn(9, 13)
    torch.manual_seed(1)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4)).eval()
    xi = torch.rand(5, 1, 8, 8)
    return {
        "mlp": (mlp, x, {"comp": tribute.components(mlp, "1", unit="neuron"), "groups": None,
                         "window": (1,), "stride": (1,), "budget": 200}),
        "cnn": (cnn, xi, {"comp": tribute.components(cnn, "2", unit="channel"),
                          "groups": tribute.patches(2), "window": (1, 2, 2),
                          "stride": (1, 2, 2), "budget": 96}),
    }


def runs(name: str, model: nn.Module, x: torch.Tensor, cfg: dict) -> dict[str, dict[str, Any]]:
    g = {"groups": cfg["groups"]} if cfg["groups"] is not None else {}
    out: dict[str, dict[str, Any]] = {
        "ig": {"method": "integrated_gradients", "steps": 20},
        "saliency": {"method": "saliency"},
        "ixg": {"method": "input_x_gradient"},
        "ablation": {"method": "feature_ablation", **g},
        "occlusion": {"method": "occlusion", "window": cfg["window"], "stride": cfg["stride"]},
        "kernel_shap": {"method": "kernel_shap", "budget": cfg["budget"], **g},
        "permutation": {"method": "permutation_shapley", "budget": cfg["budget"], **g},
        "lime": {"method": "lime", "budget": cfg["budget"], **g},
        "patching": {"method": "feature_ablation", "players": cfg["comp"]},
        "atp": {"method": "atp", "players": cfg["comp"]},
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--compare")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res: dict[str, np.ndarray] = {}
    for name, (model, x, cfg) in models().items():
        for label, kw in runs(name, model, x, cfg).items():
            for seed in (0, 1):
                for bs in (None, 7, 64):
                    clear_tuners()
                    if bs is None:  # fresh designs once per seed, cached ones after
                        _kshap.clear_design_cache()
                        _lime.clear_design_cache()
                    a = tribute.explain(model, x, target=0, seed=seed, batch_size=bs,
                                        progress=False, **kw)
                    key = f"{name}/{label}/seed{seed}/bs{bs}"
                    res[key] = np.asarray(a.values)
                    res[key + "/n_rows"] = np.asarray(a.n_rows)
                    if a.stderr is not None:
                        res[key + "/stderr"] = np.asarray(a.stderr)
    arrays: dict[str, Any] = res
    np.savez(args.out, **arrays)
    bad = 0
    for key in res:
        if "/bs" in key and "/bsNone" not in key and not key.endswith(("n_rows",)):
            ref = key.replace("/bs7", "/bsNone").replace("/bs64", "/bsNone")
            if not np.array_equal(res[key], res[ref]):
                print(f"batch-size dependence: {key} vs {ref}: max diff "
                      f"{np.max(np.abs(res[key] - res[ref])):.3g}")
                bad += 1
    if args.compare:
        old = np.load(args.compare)
        for key in res:
            if key not in old.files:
                print(f"missing in old: {key}")
                bad += 1
            elif not np.array_equal(old[key], res[key]):
                print(f"differs from old: {key}: max diff "
                      f"{np.max(np.abs(old[key].astype(float) - res[key].astype(float))):.3g}")
                bad += 1
        print(f"compared {len(res)} arrays with {args.compare}")
    print(f"{len(res)} arrays; {bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
