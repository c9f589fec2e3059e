"""shapiq 1.8's Shapley approximators on the games of ``_shapley_games`` (numpy only).

Run by ``bench_shapley_accuracy.py`` in a separate interpreter (shapiq 1.8 needs Python >= 3.12,
the CPU torch wheel on disk is for 3.11): ``.venv312/bin/python benchmarks/_shapiq_side.py
GAMES.npz OUT.json --budgets 64,128 --seeds 3``. Evaluations are counted by wrapping the value
function; an approximator that spends more than the budget is reported with what it spent.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shapley_games import load, value_np

#: ProxySHAP with ``adjustment=True`` gave the same numbers as without for first-order SV.
APPROXIMATORS = ("RegressionMSR", "ProxySHAP", "OddSHAP", "KernelSHAP", "LeverageSHAP", "SVARM")


def _make(name: str, n: int, seed: int):
    """Each approximator set up for first-order Shapley values (index ``SV``)."""
    import shapiq.approximator as ap

    if name == "RegressionMSR":
        return ap.RegressionMSR(n, "SV", random_state=seed)
    if name == "ProxySHAP":
        return ap.ProxySHAP(n, max_order=1, index="SV", random_state=seed)
    if name == "OddSHAP":
        return ap.OddSHAP(n, random_state=seed)
    return getattr(ap, name)(n=n, random_state=seed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("games")
    ap.add_argument("out")
    ap.add_argument("--budgets", default="64,128,256,512,1024,2048")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--approximators", default=",".join(APPROXIMATORS))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import shapiq

    budgets = [int(b) for b in args.budgets.split(",")]
    specs = load(Path(args.games))
    if args.only:
        specs = [s for s in specs if s.name in args.only.split(",")]
    out: dict = {"shapiq_version": shapiq.__version__, "results": {}}
    for spec in specs:
        n = spec.n
        truth = spec.truth
        assert truth is not None, f"{spec.name}: the games file carries no truth"
        for name in args.approximators.split(","):
            label = f"shapiq {name}"
            for b in budgets:
                errs, spent = [], []
                try:
                    for seed in range(args.seeds):
                        phis = np.zeros((len(spec.X), n))
                        rows = 0
                        for i in range(len(spec.X)):
                            count = [0]

                            def game(coalitions: np.ndarray, i: int = i, count: list = count,
                                     spec=spec) -> np.ndarray:
                                count[0] += len(coalitions)
                                return value_np(spec, i, coalitions)

                            approx = _make(name, n, seed)
                            iv = approx.approximate(budget=b, game=game)
                            phis[i] = [iv[(j,)] for j in range(n)]
                            rows += count[0]
                        errs.append((np.linalg.norm(phis - truth, axis=1)
                                     / np.linalg.norm(truth, axis=1)).tolist())
                        spent.append(rows / len(spec.X))
                except Exception as exc:  # an approximator that cannot run here: say why
                    out["results"].setdefault(spec.name, {}).setdefault(label, {})[str(b)] = {
                        "error": f"{type(exc).__name__}: {exc}"[:200]}
                    print(f"{spec.name} {label} {b}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                out["results"].setdefault(spec.name, {}).setdefault(label, {})[str(b)] = {
                    "err": float(np.mean(errs)), "evals": float(np.mean(spent)), "errs": errs}
                print(f"{spec.name:14s} {label:24s} {b:5d} {np.mean(errs):.4f} ({np.mean(spent):.0f})",
                      file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
