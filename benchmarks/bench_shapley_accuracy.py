"""Accuracy per evaluation of Shapley estimators, side by side with Captum and SHAP.

Setup (the feature-attribution issue's acceptance test): an MLP trained on scikit-learn's
wine data (13 standardised features); the explained output is the softmax probability of the
predicted class; absent features take the training mean; exact Shapley values by enumeration
of all 8192 coalitions are the truth. For each budget (model evaluations per point) we report
the relative L2 error ``||phi - phi*|| / ||phi*||`` averaged over test points and seeds, for
tribute's default ``shapley`` estimator, its KernelSHAP and permutation sampling, Captum's
``KernelShap`` and ``ShapleyValueSampling`` and SHAP's ``KernelExplainer`` (no l1) and
``PermutationExplainer``. Evaluations of the other libraries are counted by wrapping the model,
and their sample counts are chosen so that they spend at most the budget.

Run: ``python benchmarks/bench_shapley_accuracy.py [--points 24] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

import tribute
from tribute.datasets import train_mlp, wine

BUDGETS = (128, 256, 512, 1024, 2048)


class Counter:
    """Counts rows through a numpy/torch model."""

    def __init__(self, fn):
        self.fn = fn
        self.rows = 0

    def __call__(self, x):
        self.rows += len(x)
        return self.fn(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=str, default=",".join(map(str, BUDGETS)))
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    warnings.filterwarnings("ignore")

    ds = wine()
    train, test = ds.split(0.3, seed=0)
    model = train_mlp(train, hidden=(64, 64), epochs=60, seed=0).double().eval()
    X = torch.from_numpy(test.X[: args.points]).double()
    base = torch.from_numpy(train.X.mean(0)).double()
    with torch.no_grad():
        pred = model(X).argmax(1)
    n = X.shape[1]

    exact = tribute.explain(model, X, method="exact_shapley", target=pred, baseline=base, output="prob")
    truth = exact.values.numpy()

    def rel(phi: np.ndarray) -> float:
        return float(np.mean(np.linalg.norm(phi - truth, axis=1) / np.linalg.norm(truth, axis=1)))

    def prob_np(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(np.asarray(a, dtype=np.float64))), 1).numpy()

    results: dict[str, dict[int, float]] = {}
    spent: dict[str, dict[int, float]] = {}

    def record(name: str, b: int, err: float, evals: float) -> None:
        results.setdefault(name, {})[b] = err
        spent.setdefault(name, {})[b] = evals

    ours = {"tribute shapley (default)": "shapley", "tribute kernel_shap": "kernel_shap",
            "tribute kernel_shap uniform": ("kernel_shap", {"allocation": "uniform"}),
            "tribute permutation_shapley": "permutation_shapley"}
    for label, spec in ours.items():
        name, params = (spec, {}) if isinstance(spec, str) else spec
        for b in budgets:
            errs, ev = [], []
            for seed in range(args.seeds):
                a = tribute.explain(model, X, method=name, target=pred, baseline=base, output="prob",
                                    budget=b, seed=seed, **params)
                errs.append(rel(a.values.numpy()))
                ev.append(a.n_evals)
            record(label, b, float(np.mean(errs)), float(np.mean(ev)))

    try:
        from captum.attr import KernelShap, ShapleyValueSampling

        class ProbModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = model
                self.rows = 0

            def forward(self, x):
                self.rows += x.shape[0]
                return torch.softmax(self.m(x), 1)

        pm = ProbModel()
        for b in budgets:
            for label, make, ns in (
                ("captum KernelShap", KernelShap, b - 2),
                ("captum ShapleyValueSampling", ShapleyValueSampling, max(1, (b - 1) // n)),
            ):
                errs, ev = [], []
                for seed in range(args.seeds):
                    torch.manual_seed(seed)  # Captum samples from the global RNG
                    phis = []
                    pm.rows = 0
                    for i in range(len(X)):
                        phi = make(pm).attribute(X[i : i + 1], baselines=base[None], target=int(pred[i]),
                                                 n_samples=ns)
                        phis.append(phi.detach().numpy()[0])
                    errs.append(rel(np.array(phis)))
                    ev.append(pm.rows / len(X))
                record(label, b, float(np.mean(errs)), float(np.mean(ev)))
    except ImportError:
        print("captum not installed: skipping its columns")

    try:
        import shap

        bg = base.numpy()[None]
        for b in budgets:
            errs_k, errs_p, ev_k, ev_p = [], [], [], []
            for seed in range(args.seeds):
                np.random.seed(seed)  # noqa: NPY002 - shap samples from numpy's global RNG
                ck = Counter(prob_np)
                ke = shap.KernelExplainer(ck, bg)
                phis = []
                for i in range(len(X)):
                    ck_before = ck.rows
                    sv = ke.shap_values(X[i : i + 1].numpy(), nsamples=b - 2, l1_reg=False, silent=True)
                    sv = np.asarray(sv)
                    phis.append(sv[0, :, int(pred[i])] if sv.ndim == 3 else sv[int(pred[i])][0])
                    _ = ck.rows - ck_before
                errs_k.append(rel(np.array(phis)))
                ev_k.append(ck.rows / len(X))
                cp = Counter(prob_np)
                masker = shap.maskers.Independent(bg, max_samples=1)
                pe = shap.PermutationExplainer(cp, masker, seed=seed)
                phis = []
                for i in range(len(X)):
                    out = pe(X[i : i + 1].numpy(), max_evals=b, silent=True)
                    phis.append(out.values[0, :, int(pred[i])])
                errs_p.append(rel(np.array(phis)))
                ev_p.append(cp.rows / len(X))
            record("shap KernelExplainer", b, float(np.mean(errs_k)), float(np.mean(ev_k)))
            record("shap PermutationExplainer", b, float(np.mean(errs_p)), float(np.mean(ev_p)))
    except ImportError:
        print("shap not installed: skipping its columns")

    print(f"wine MLP, {len(X)} points x {args.seeds} seeds; relative L2 error vs exact Shapley "
          "(evaluations per point actually spent in brackets)\n")
    head = f"{'estimator':32s}" + "".join(f"{b:>16d}" for b in budgets)
    print(head)
    print("-" * len(head))
    for name, row in results.items():
        print(f"{name:32s}" + "".join(f"{row[b]:>9.4f} ({spent[name][b]:>4.0f})" for b in budgets))
    others = [k for k in results if not k.startswith("tribute")]
    if others:
        best = {b: min(results[k][b] for k in others) for b in budgets}
        ours_default = results["tribute shapley (default)"]
        print("\nratio default / best of Captum+SHAP (goal <= 0.5):")
        print(f"{'':32s}" + "".join(f"{ours_default[b] / best[b]:>16.3f}" for b in budgets))


if __name__ == "__main__":
    main()
