"""tree_shap vs shap.TreeExplainer, side by side in one run (ratios; threads equal).

Models: a 500-tree XGBoost classifier (depth 6) and a 100-tree scikit-learn random forest,
explained on 1,000 rows; path-dependent and interventional (100 background rows). Reports
wall time of each library and the max abs difference of their values. Both libraries first
explain one row (warm-up: tribute's compiled kernels are compiled by numba on their first use
in an installation and loaded from numba's cache afterwards); that first call is reported
separately ("1st call s"). Both sides are timed from the model object: tribute reads the trees
on every call and shap builds its TreeExplainer inside the timing too.

    OMP_NUM_THREADS=1 python benchmarks/bench_tree_shap.py [--rows 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _time(fn, repeat: int = 1):
    """Best wall and CPU seconds over ``repeat`` runs (CPU time is robust on a loaded machine)."""
    best, cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return best, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bg", type=int, default=100)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import shap
    import torch
    import xgboost
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import tribute

    torch.set_num_threads(args.threads)
    X, y = make_classification(n_samples=4000, n_features=20, n_informative=10, random_state=0)
    Xe = X[: args.rows]
    bg = X[-args.bg:]
    cases = [
        ("xgboost 500 trees depth 6", xgboost.XGBClassifier(
            n_estimators=500, max_depth=6, n_jobs=args.threads, random_state=0).fit(X, y)),
        ("sklearn random forest 100 trees", RandomForestClassifier(
            100, min_samples_leaf=5, n_jobs=args.threads, random_state=0).fit(X, y)),
    ]
    print(f"{args.rows} rows, threads={args.threads}")
    print(f"{'model':32s} {'perturbation':30s} {'tribute s':>9s} {'shap s':>9s} {'wall x':>7s} "
          f"{'cpu x':>7s} {'max|diff|':>9s} {'1st call s':>10s} kernel")
    for name, model in cases:
        for mode in ("tree_path_dependent", "interventional"):
            kw = {} if mode == "tree_path_dependent" else {"baseline": tribute.Background(bg)}
            rows = Xe if mode == "tree_path_dependent" else Xe[: max(1, args.rows // 10)]
            first, _, _ = _time(lambda m=model, r=rows, md=mode, k=kw: tribute.explain(
                m, r[:1], method="tree_shap", target=1, feature_perturbation=md, **k))
            t_tr, c_tr, a = _time(lambda m=model, r=rows, md=mode, k=kw: tribute.explain(
                m, r, method="tree_shap", target=1, feature_perturbation=md, **k))
            def shap_run(r, m=model, md=mode, k=kw):
                # the explainer is built inside the timing: tribute reads the model per call too
                ex = (shap.TreeExplainer(m, feature_perturbation=md) if not k else
                      shap.TreeExplainer(m, data=bg, feature_perturbation=md, model_output="raw"))
                return ex.shap_values(r, check_additivity=False)

            shap_run(rows[:1])
            t_sh, c_sh, sv = _time(lambda r=rows: shap_run(r))
            sv = np.asarray(sv)
            if sv.ndim == 3:
                sv = sv[..., 1] if sv.shape[0] == rows.shape[0] else sv[1]
            diff = float(np.abs(np.asarray(a.values) - sv).max())
            label = mode + (f" ({rows.shape[0]} rows)" if kw else "")
            print(f"{name:32s} {label:30s} {t_tr:9.2f} {t_sh:9.2f} {t_tr / t_sh:7.2f} "
                  f"{c_tr / c_sh:7.2f} {diff:9.2e} {first:10.2f} {a.params['kernel']}", flush=True)


if __name__ == "__main__":
    main()
