"""Do credits add up to the true change of the explained output? (issue #15)

For scikit-learn / XGBoost classifiers fitted on a DataFrame (breast cancer, 30 features),
explain 10 test rows with KernelSHAP (its efficiency constraint makes ``sum(credits)`` equal
``v(N) - v(empty)`` of whatever output tribute computes) against a background set, for every
``output=``, and compare that sum with the true change computed independently from
``predict_proba``: ``g(p(x)) - mean_b g(p(b))`` with ``g`` = identity / log / log-odds.
Also counts scikit-learn's "X does not have valid feature names" warnings per call.

Run on this branch and on another checkout to compare, e.g.
    .venv/bin/python benchmarks/check_model_outputs.py
    PYTHONPATH=/work/main/src .venv/bin/python benchmarks/check_model_outputs.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np


def main() -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import tribute

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_te, y_tr, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    models = {
        "LogisticRegression (pipeline)": make_pipeline(StandardScaler(),
                                                       LogisticRegression(max_iter=2000)),
        "RandomForest": RandomForestClassifier(n_estimators=50, max_depth=5, random_state=0),
    }
    try:
        import xgboost

        models["XGBClassifier"] = xgboost.XGBClassifier(n_estimators=50, max_depth=3, n_jobs=1)
    except ImportError:
        pass
    eps = 1e-12
    transforms = {
        "raw": lambda p: p,
        "prob": lambda p: p,
        "log_prob": lambda p: np.log(np.clip(p, eps, 1 - eps)),
        "logit": lambda p: np.log(np.clip(p, eps, 1 - eps)) - np.log1p(-np.clip(p, eps, 1 - eps)),
    }
    x_df, bg_df = X_te.iloc[:10], X_tr.iloc[:50]
    print(f"tribute from {tribute.__file__}")
    print(f"{'model':32s} {'output':9s} {'max |sum - true change|':>24s} {'sum[0]':>9s} "
          f"{'true[0]':>9s} {'name warnings':>14s} {'s':>6s}")
    for name, model in models.items():
        model.fit(X_tr, y_tr)
        target = 1
        p_x = model.predict_proba(x_df)[:, target]
        p_b = model.predict_proba(bg_df)[:, target]
        for output, g in transforms.items():
            true = g(p_x) - g(p_b).mean()
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                attr = tribute.explain(model, x_df.to_numpy(), method="kernel_shap",
                                       baseline=tribute.Background(bg_df.to_numpy()),
                                       budget=256, output=output, target=target)
            sec = time.perf_counter() - t0
            n_warn = sum("feature names" in str(w.message) for w in rec)
            s = np.asarray(attr.values).sum(1)
            print(f"{name:32s} {output:9s} {np.abs(s - true).max():24.3g} {s[0]:9.4f} "
                  f"{true[0]:9.4f} {n_warn:14d} {sec:6.2f}")


if __name__ == "__main__":
    main()
