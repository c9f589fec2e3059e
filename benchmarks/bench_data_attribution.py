"""Training-data attribution: tribute vs dattri side by side, scored against real retraining.

Same models (trained once by the case's ``fit``), same retrained subsets (one retrain bank per
case, shared by every method of both libraries), same seeds. Per method: LDS (Spearman between
``sum_{i in S} phi_i`` and the retrained model's output on 100 held-out random halves of the
training set; mean over test points with a 95% interval), seconds and peak RSS above the start
(MiB), and a speed run of ``grad_dot`` and ``trak`` on all training points x 500 test points.

Run (benchmark-only dependencies, never runtime ones; ``--no-deps`` keeps the CPU torch)::

    pip install --no-deps dattri==0.3.0
    pip install --no-deps kronfluence==1.0.1 accelerate einconv opt-einsum einops psutil
    pip install --no-deps traker==0.3.2
    python benchmarks/bench_data_attribution.py --cases digits_logistic,digits_mlp

``--methods`` restricts tribute's methods (labels of the suite's case, e.g.
``influence,influence_abs,influence_ekfac,trak,grad_dot,freeshap``; the ensembles
``influence_abs_ens2,influence_abs_ens3,trak_ens5,trak_ens10`` run only when named, their
seconds include training the extra models; ``--cases digits_cnn`` is the small-CNN case),
``--dattri`` dattri's
(``influence_explicit,influence_cg,trak,grad_dot``), ``--anchors`` the further anchors
(``kronfluence,traker``; see ``benchmarks/_data_anchors.py``). ``--no-small-drop`` skips the
LDS with 1/3/5% of the training set dropped on ``digits_mlp`` (300 of its 400 retrained subsets:
a new seed's bank then takes a quarter of the time).

Sign convention: tribute credits are "including example i raises the explained output" (the
target-class margin ``log p / (1 - p)``). dattri's influence-function and TracIn scores are
``grad target . H^-1 grad loss`` (the effect of *up-weighting the loss* of ``i``, opposite
sign), so they are negated before scoring; dattri's TRAK already follows the TRAK convention
(positive = helpful). The correlation of each dattri score with tribute's is printed so the
sign choice can be checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # dattri's progress bars (read when tqdm is imported)

import numpy as np
import torch

import tribute
from tribute.bench.data_suite import (
    SMALL_DROPS,
    PeakRSS,
    build_data_case,
    format_data_results,
    run_data_case,
)
from tribute.metrics import linear_score


def _dattri_runs(case: Any, X_test: torch.Tensor, y_test: torch.Tensor, which: list[str],
                 proj_dim: int) -> dict[str, tuple[torch.Tensor, float, float]]:
    """dattri scores ``n_test x n_train`` (tribute's sign), seconds and peak MiB per method."""
    from dattri.algorithm.influence_function import IFAttributorCG, IFAttributorExplicit
    from dattri.algorithm.tracin import TracInAttributor
    from dattri.algorithm.trak import TRAKAttributor
    from dattri.task import AttributionTask
    from torch.utils.data import DataLoader, TensorDataset

    model = case.model
    data = case.data()
    l2, n = data.l2, data.n_train
    # the Hessian of dattri's (mean) loss + regularization * I is proportional to the case's
    # objective's Hessian when regularization matches: l2 / n for summed objectives, l2 for means
    reg = l2 / n if data.reduction == "sum" else l2

    def loss_ce(params: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        out = torch.func.functional_call(model, params, (x,))
        return torch.nn.functional.cross_entropy(out, y.long())

    def margin(params: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        out = torch.func.functional_call(model, params, (x.reshape(-1, x.shape[-1]),))
        yy = y.reshape(-1).long()
        zy = out.gather(1, yy[:, None])[:, 0]
        other = out.scatter(1, yy[:, None], float("-inf"))
        return (zy - torch.logsumexp(other, 1)).sum()

    def prob(params: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        out = torch.func.functional_call(model, params, (x.reshape(1, -1),))
        return torch.softmax(out, 1)[0, y.long()]

    train = DataLoader(TensorDataset(case.X, case.y), batch_size=64, shuffle=False)
    full = DataLoader(TensorDataset(case.X, case.y), batch_size=n, shuffle=False)
    test = DataLoader(TensorDataset(X_test, y_test), batch_size=64, shuffle=False)
    ckpt = {k: v.detach().clone() for k, v in model.named_parameters()}
    out: dict[str, tuple[torch.Tensor, float, float]] = {}
    for name in which:
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            if name == "trak":
                task = AttributionTask(loss_func=margin, model=model, checkpoints=ckpt,
                                       target_func=margin)
                att: Any = TRAKAttributor(task=task, correct_probability_func=prob,
                                          projector_kwargs={"proj_dim": proj_dim,
                                                            "device": "cpu"}, device="cpu")
                att.cache(full)
                with torch.no_grad():
                    s = att.attribute(test)
                sign = 1.0
            else:
                task = AttributionTask(loss_func=loss_ce, model=model, checkpoints=ckpt,
                                       target_func=margin)
                if name == "influence_explicit":
                    att = IFAttributorExplicit(task=task, regularization=reg)
                elif name == "influence_cg":
                    att = IFAttributorCG(task=task, regularization=reg, max_iter=10)
                else:  # grad_dot
                    att = TracInAttributor(task=task, weight_list=torch.ones(1),
                                           normalized_grad=False)
                if name != "grad_dot":
                    att.cache(full)
                with torch.no_grad():
                    s = att.attribute(train, test)
                sign = -1.0
        secs = time.perf_counter() - t0
        out[name] = (sign * torch.as_tensor(s).T.double(), secs, mem.peak_mib)
    return out


def _other_anchors(case: Any, which: list[str], l2: float) -> dict[str, tuple[torch.Tensor, float, float]]:
    """kronfluence / traker scores where installed (``benchmarks/_data_anchors.py``)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _data_anchors as anchors

    out: dict[str, tuple[torch.Tensor, float, float]] = {}
    for name in which:
        try:
            if name == "kronfluence":
                # the case's objective (mean loss + l2/2 |theta|^2): damping = l2; and
                # kronfluence's own heuristic (0.1 x mean eigenvalue)
                out["kronfluence_ekfac_l2"] = anchors.kronfluence_scores(
                    case.model, case.X, case.y, case.X_test, case.y_test, l2)
                out["kronfluence_ekfac_heuristic"] = anchors.kronfluence_scores(
                    case.model, case.X, case.y, case.X_test, case.y_test, None)
            elif name == "traker":
                out["traker"] = anchors.traker_scores(case.model, case.X, case.y, case.X_test,
                                                      case.y_test, 256)
            else:
                print(f"  unknown anchor {name!r}")
        except Exception as exc:  # an anchor that does not install/run here: said, not fatal
            print(f"  {name} failed: {type(exc).__name__}: {exc}")
    return out


def _lds(game: Any, values: torch.Tensor, n_subsets: int, seed: int, alpha: float = 0.5,
         offset: int = 12345) -> tuple[float, float, float]:
    attr = game.attribution(values[:, None, :].double(), "external")
    res = linear_score(game, attr, n_subsets=n_subsets, alpha=alpha, seed=seed + offset)
    s = np.asarray(res.scores, dtype=np.float64).reshape(-1)
    s = s[np.isfinite(s)]
    m, se = float(s.mean()), float(s.std(ddof=1) / np.sqrt(len(s)))
    return m, m - 1.96 * se, m + 1.96 * se


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="digits_logistic,digits_mlp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bank-dir", default="bench-out/data-banks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed-test-points", type=int, default=500)
    ap.add_argument("--out", default="bench-out/data_attribution.json")
    ap.add_argument("--methods", default="", help="tribute method labels (default: the case's)")
    ap.add_argument("--dattri", default="influence_explicit,influence_cg,trak,grad_dot")
    ap.add_argument("--anchors", default="kronfluence,traker")
    ap.add_argument("--no-speed", action="store_true", help="skip the all-train x 500 speed run")
    ap.add_argument("--no-small-drop", action="store_true",
                    help="skip the LDS with 1/3/5%% dropped (digits_mlp): its bank then holds the "
                         "100 halves only, not 400 subsets")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    try:
        import dattri

        have_dattri = True
        print(f"dattri {getattr(dattri, '__version__', '?')}")
    except ImportError:
        have_dattri = False
        print("dattri is not installed (pip install dattri torch==2.13.0): tribute only")
    results = []
    for name in args.cases.split(","):
        case = build_data_case(name, args.seed, "quick")
        if args.no_small_drop:
            case.small_drop = False
        res = run_data_case(case, seed=args.seed, bank=f"{args.bank_dir}/{name}-{args.seed}-quick",
                            methods=[m for m in args.methods.split(",") if m] or None,
                            log=lambda s: print(s, flush=True))
        if have_dattri:
            data = case.data(bank=f"{args.bank_dir}/{name}-{args.seed}-quick")
            game = tribute.build_game(case.model, case.X_test, target=case.y_test, players=data)
            # the sign check of every anchor: correlation with tribute's EK-FAC influence
            ours = tribute.explain(case.model, case.X_test, method="influence", target=case.y_test,
                                   players=data, solver="ekfac").values
            which = [m for m in args.dattri.split(",") if m]
            try:
                runs = _dattri_runs(case, case.X_test, case.y_test, which, 256)
            except Exception as exc:
                print(f"  dattri failed: {type(exc).__name__}: {exc}")
                runs = {}
            runs.update(_other_anchors(case, [a for a in args.anchors.split(",") if a], data.l2))
            res["dattri"] = {}
            for meth, (vals, secs, peak) in runs.items():
                m, lo, hi = _lds(game, vals, case.n_subsets, args.seed)
                c = float(np.corrcoef(vals.flatten().numpy(), ours.flatten().numpy())[0, 1])
                row = {"lds": m, "lds_ci95": [lo, hi], "seconds": secs,
                       "peak_mib": peak, "corr_with_tribute_ekfac": c}
                if case.small_drop:
                    for frac, key, off in SMALL_DROPS:
                        row[key] = _lds(game, vals, case.n_subsets, args.seed, 1 - frac, off)[0]
                res["dattri"][meth] = row
                print(f"  anchor {meth}: LDS {m:.3f} [{lo:.3f}, {hi:.3f}] in {secs:.2f}s, peak "
                      f"{peak:.0f} MiB (corr with tribute ekfac {c:+.3f})", flush=True)
            # speed: all training points x N test points
            from tribute.bench.data_suite import _digits

            if name.startswith("digits") and not args.no_speed:
                _, _, Xs, ys = _digits(int(case.X.shape[0]), args.speed_test_points, args.seed + 99)
                Xs, ys = Xs[: args.speed_test_points], ys[: args.speed_test_points]
                speed: dict[str, Any] = {"n_test": int(Xs.shape[0])}
                speed_runs: tuple[tuple[str, dict[str, Any]], ...] = (("grad_dot", {}), ("trak", {"proj_dim": 256}))
                for meth, kw in speed_runs:
                    t0 = time.perf_counter()
                    with PeakRSS() as mem:
                        tribute.explain(case.model, Xs, method=meth, target=ys, players=data, **kw)
                    speed[f"tribute_{meth}"] = {"seconds": time.perf_counter() - t0,
                                                "peak_mib": mem.peak_mib}
                try:
                    d = _dattri_runs(case, Xs, ys, ["grad_dot", "trak"], 256)
                    for meth, (_, secs, peak) in d.items():
                        speed[f"dattri_{meth}"] = {"seconds": secs, "peak_mib": peak}
                except Exception as exc:
                    speed["dattri_error"] = f"{type(exc).__name__}: {exc}"
                res["speed"] = speed
                print(f"  speed (all train x {speed['n_test']} test): " + ", ".join(
                    f"{k} {v['seconds']:.2f}s/{v['peak_mib']:.0f}MiB" for k, v in speed.items()
                    if isinstance(v, dict)), flush=True)
        results.append(res)
    print(format_data_results(results))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
