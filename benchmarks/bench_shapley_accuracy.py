"""Accuracy per evaluation of Shapley estimators, side by side with Captum, SHAP and shapiq.

Games (``_shapley_games.py``): a wine MLP (13 features, probability of the predicted class),
a diabetes regression MLP (10 features, raw output), a random tanh network (16 features, raw
output; never tuned on), a breast-cancer MLP (30 features, logit of the predicted class) and a
random ReLU network (14 features, probability of the predicted class; added after the
estimator's development, never tuned on), and two games added with the Bayesian optimal design
and never tuned on: a logistic regression on 4 x 4 digits (16 features, probability) and a
random ReLU network with 20 inputs (logit); and one added with the blocked design, never tuned
on: a logistic regression on the breast-cancer features (30 features, probability); and four
fresh logit games of stop 26, built after every rule was chosen (random ReLU 18 and tanh 20
networks, an MLP on 4 x 4 digits, a random tanh network with 32 inputs). Absent features take
the training mean (zero for the random networks). The truth is exact Shapley by enumeration up
to 20 features, and a very-high-budget KernelSHAP reference for 30-32 (its own relative
standard error is printed).

For each budget (model evaluations per point) we report the relative L2 error
``||phi - phi*|| / ||phi*||`` averaged over test points and seeds, for tribute's ``shapley``
(= ``gp_shapley``; also with its earlier design, ``allocation="singletons"``, as "before"),
``kernel_shap`` and ``permutation_shapley``; Captum's ``KernelShap`` and
``ShapleyValueSampling``; SHAP's ``KernelExplainer`` (no l1) and ``PermutationExplainer``; and
shapiq 1.8's ``RegressionMSR``, ``ProxySHAP``, ``OddSHAP``, ``KernelSHAP`` and ``SVARM``. The
other libraries' evaluations are counted by wrapping the model and their sample counts chosen
so that they spend at most the budget (the bracket shows what was spent).

shapiq 1.8 needs Python >= 3.12 while the CPU torch wheel is for 3.11, so shapiq runs in a
second interpreter (``--shapiq-python``, default ``.venv312/bin/python`` at the root of this
checkout; a git worktree passes the main checkout's, e.g. ``--shapiq-python
/work/main/.venv312/bin/python``). On the project machine Python 3.12.1 is installed by pyenv:
``/root/.pyenv/versions/3.12.1/bin/python -m venv .venv312 && .venv312/bin/pip install
shapiq==1.8.0`` (from PyPI; it pulls numpy, scipy, scikit-learn, pandas and matplotlib, not torch;
``.venv312/`` is git-ignored). Elsewhere ``python3.12 -m venv .venv312`` does, as does any
Python >= 3.12; on a machine without one, CPython 3.13 builds from Debian's source tarball
``deb.debian.org/debian/pool/main/p/python3.13/python3.13_3.13.5.orig.tar.xz`` with
``./configure --prefix=/opt/py313 && make -j2 && make install``, then ``/opt/py313/bin/python3.13 -m venv
.venv312``) on a numpy copy of
the same networks (``_shapiq_side.py``), at the same time as the torch side.

Rows ``(s per call: ...)`` are the wall seconds of one ``tribute.explain`` call on all the points
(estimator and model together; one torch thread) for ``shapley`` and ``kernel_shap``.

Under the ratio to the best anchor, ``90% bootstrap (points, seeds)`` is the 5%-95% range of that
ratio over 2,000 resamples of the test points and seeds (the same indices for every estimator,
the best anchor chosen again in each), and ``share of resamples above 0.5`` how often it misses
the goal: with 4 points x 2 seeds a cell's ratio is known only to about +-0.3 (diabetes at 64:
0.541, interval 0.317-0.904). Every point's error is kept in ``--json`` (third element of a cell).

Run: ``python benchmarks/bench_shapley_accuracy.py [--points 10] [--seeds 2] [--games ...]``;
on a shared machine, split the games over a few processes, each with its shapiq side started by
hand on the games ``--save-games GAMES.npz`` writes (``.venv312/bin/python
benchmarks/_shapiq_side.py GAMES.npz SIDE.json --only GAMES``) and read back with ``--shapiq-json
SIDE.json``, and ``--skip before,baselines``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tribute

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shapley_games import GameSpec, build_cached, forward_np, save, value_np

BUDGETS = (64, 128, 256, 512, 1024, 2048)
OURS = "tribute shapley (default)"
#: The default before the Bayesian optimal design (issue #14): singleton pairs first, then the
#: Shapley-kernel allocation, sampled.
BEFORE = "tribute shapley (singletons)"


class Counter:
    """Counts rows through a numpy model."""

    def __init__(self, fn):
        self.fn = fn
        self.rows = 0

    def __call__(self, x):
        self.rows += len(x)
        return self.fn(x)


def _rel(phi: np.ndarray, truth: np.ndarray | None) -> list[float]:
    """The relative L2 error of each test point (the tables show their mean)."""
    assert truth is not None, "the game's truth is filled in before any estimator runs"
    return (np.linalg.norm(phi - truth, axis=1) / np.linalg.norm(truth, axis=1)).tolist()


def _boot_ratio(res: dict[str, Any], label: str, others: list[str], b: int,
                reps: int = 2000) -> tuple[float, float, float] | None:
    """5% and 95% quantiles of ``err(label) / min err(others)`` at budget ``b`` and the share of
    resamples above 0.5, over a bootstrap of the test points and the seeds (the same indices for
    every estimator: they ran on the same points); an estimator without per-point errors (an
    older ``--reuse-json``) counts with its mean."""
    cells = {k: res[k][b] for k in [label, *others] if b in res[k]}
    per = {k: np.asarray(c[2]) for k, c in cells.items() if len(c) > 2 and np.size(c[2])}
    if label not in per:
        return None
    s_n, p_n = per[label].shape
    rng = np.random.default_rng(0)
    out = []
    for _ in range(reps):
        pi, si = rng.integers(0, p_n, p_n), rng.integers(0, s_n, s_n)
        means = {k: float(a[np.ix_(si % a.shape[0], pi)].mean()) if a.shape[1] == p_n else cells[k][0]
                 for k, a in per.items()}
        best = min([means[k] if k in means else cells[k][0] for k in cells if k != label])
        out.append(means[label] / best if best > 0 else np.nan)
    r = np.asarray(out)
    return float(np.nanquantile(r, 0.05)), float(np.nanquantile(r, 0.95)), float(np.nanmean(r > 0.5))


def run_tribute(spec: GameSpec, budgets, seeds, record, skip: frozenset[str] = frozenset()) -> None:
    kw: dict[str, Any] = {"target": torch.from_numpy(spec.target),
                          "baseline": torch.from_numpy(spec.base), "output": spec.output}
    X = torch.from_numpy(spec.X)
    ours: dict[str, tuple[str, dict[str, Any]]] = {
        OURS: ("shapley", {}), BEFORE: ("shapley", {"allocation": "singletons"}),
        "tribute kernel_shap": ("kernel_shap", {}),
        "tribute permutation_shapley": ("permutation_shapley", {})}
    if "before" in skip:
        del ours[BEFORE]
    if "baselines" in skip:
        del ours["tribute kernel_shap"], ours["tribute permutation_shapley"]
    for label, (name, params) in ours.items():
        for b in budgets:
            errs, ev, cover, secs = [], [], [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                a = tribute.explain(spec.model, X, method=name, budget=b, seed=seed, **kw, **params)
                secs.append(time.perf_counter() - t0)
                errs.append(_rel(a.values.numpy(), spec.truth))
                ev.append(a.n_evals)
                if label == OURS and a.stderr is not None and float(a.stderr.abs().max()) > 0:
                    cover.append(float(((a.values - torch.from_numpy(spec.truth)).abs()
                                        <= 2 * a.stderr).double().mean()))
            record(label, b, float(np.mean(errs)), float(np.mean(ev)), errs)
            if cover:
                record("  (coverage within 2 sd)", b, float(np.mean(cover)), float("nan"))
            if label in (OURS, "tribute kernel_shap"):
                record(f"  (s per call: {name})", b, float(np.mean(secs)), float("nan"))


def run_captum(spec: GameSpec, budgets, seeds, record) -> None:
    try:
        from captum.attr import KernelShap, ShapleyValueSampling
    except ImportError:
        print("captum not installed: skipping its columns")
        return

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = spec.model
            self.rows = 0

        def forward(self, x):
            self.rows += x.shape[0]
            out = self.m(x)
            return torch.softmax(out, 1) if spec.output == "prob" else out

    pm = Wrapped()
    X, base, n = torch.from_numpy(spec.X), torch.from_numpy(spec.base), spec.n
    for b in budgets:
        for label, make, ns in (("captum KernelShap", KernelShap, b - 2),
                                ("captum ShapleyValueSampling", ShapleyValueSampling,
                                 max(1, (b - 1) // n))):
            errs, ev = [], []
            for seed in range(seeds):
                torch.manual_seed(seed)  # Captum samples from the global RNG
                pm.rows = 0
                phis = [make(pm).attribute(X[i : i + 1], baselines=base[None], target=int(spec.target[i]),
                                           n_samples=ns).detach().numpy()[0] for i in range(len(X))]
                errs.append(_rel(np.array(phis), spec.truth))
                ev.append(pm.rows / len(X))
            record(label, b, float(np.mean(errs)), float(np.mean(ev)), errs)


def run_shap(spec: GameSpec, budgets, seeds, record) -> None:
    try:
        import shap
    except ImportError:
        print("shap not installed: skipping its columns")
        return
    bg = spec.base[None]
    for b in budgets:
        # shap 0.51's PermutationExplainer refuses fewer than 2 n + 1 evaluations (an error that
        # once ended the whole run at 64 evaluations of 32 players): no cell there
        perm_ok = b >= 2 * spec.n + 1
        errs_k, errs_p, ev_k, ev_p = [], [], [], []
        for seed in range(seeds):
            np.random.seed(seed)  # noqa: NPY002 - shap samples from numpy's global RNG
            phis_k, phis_p, rows_k, rows_p = [], [], 0, 0
            for i in range(len(spec.X)):
                def f(a, i=i):  # shap passes already-masked rows x(S)
                    return _eval_rows(spec, i, np.asarray(a, dtype=np.float64))

                ck = Counter(f)
                sv = shap.KernelExplainer(ck, bg).shap_values(spec.X[i : i + 1], nsamples=b - 2,
                                                              l1_reg=False, silent=True)
                phis_k.append(np.asarray(sv).reshape(-1)[: spec.n])
                rows_k += ck.rows
                if not perm_ok:
                    continue
                cp = Counter(f)
                pe = shap.PermutationExplainer(cp, shap.maskers.Independent(bg, max_samples=1), seed=seed)
                phis_p.append(np.asarray(pe(spec.X[i : i + 1], max_evals=b, silent=True).values).reshape(-1))
                rows_p += cp.rows
            errs_k.append(_rel(np.array(phis_k), spec.truth))
            ev_k.append(rows_k / len(spec.X))
            if perm_ok:
                errs_p.append(_rel(np.array(phis_p), spec.truth))
                ev_p.append(rows_p / len(spec.X))
        record("shap KernelExplainer", b, float(np.mean(errs_k)), float(np.mean(ev_k)), errs_k)
        if perm_ok:
            record("shap PermutationExplainer", b, float(np.mean(errs_p)), float(np.mean(ev_p)), errs_p)
        else:
            print(f"{spec.name}: shap PermutationExplainer needs >= {2 * spec.n + 1} evaluations, "
                  f"not {b}: skipped")


def _eval_rows(spec: GameSpec, i: int, rows: np.ndarray) -> np.ndarray:
    """The explained scalar of point ``i`` on already-masked input rows."""
    out = forward_np(spec.layers, rows)
    t = int(spec.target[i])
    if spec.output == "prob":
        z = out - out.max(1, keepdims=True)
        p = np.exp(z)
        return p[:, t] / p.sum(1)
    return out[:, t]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budgets", type=str, default=",".join(map(str, BUDGETS)))
    ap.add_argument("--games", type=str, default="wine_prob,diabetes_raw,tanh16_raw,cancer_logit,relu14_prob,digits16_prob,mlp20_logit,cancer_logreg_prob,"
                    "n_relu18_logit,n_tanh20_logit,n_digits16mlp_logit,n_tanh32_logit")
    ap.add_argument("--skip", type=str, default="", help="comma list of: tribute,captum,shap,shapiq; also before (tribute's "
                         "singletons row) and baselines (tribute's kernel_shap and permutation_shapley), "
                         "which are no anchors: leaving them out halves the torch side's time")
    ap.add_argument("--shapiq-python", type=str,
                    default=str(Path(__file__).resolve().parent.parent / ".venv312/bin/python"))
    ap.add_argument("--cache", type=str, default=str(Path(tempfile.gettempdir()) / "tribute_bench_shapley"),
                    help="games and their truth are built once per --points and kept here")
    ap.add_argument("--shapiq-json", type=str, default="",
                    help="reuse the output of an earlier _shapiq_side.py run on the same games")
    ap.add_argument("--reuse-json", type=str, default="",
                    help="comma list of earlier --json outputs (same --points) whose rows fill in what "
                         "this run skipped")
    ap.add_argument("--json", type=str, default="", help="write all numbers here")
    ap.add_argument("--save-games", type=str, default="",
                    help="write the chosen games (with their truth) here for _shapiq_side.py, and stop")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    t0 = time.time()
    wanted = args.games.split(",")
    specs = [s for s in build_cached(args.points, Path(args.cache)) if s.name in wanted]
    # sanity: the numpy copy is the same value function
    for s in specs:
        z = np.random.default_rng(0).integers(0, 2, size=(5, s.n))
        xs = s.base[None] + z * (s.X[0] - s.base)[None]
        np.testing.assert_allclose(value_np(s, 0, z), _eval_rows(s, 0, xs))

    if args.save_games:
        save(specs, Path(args.save_games))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_shapley_"))
    save(specs, tmp / "games.npz")
    proc = None
    side_json = Path(args.shapiq_json) if args.shapiq_json else tmp / "shapiq.json"
    if "shapiq" not in skip and not args.shapiq_json:
        if Path(args.shapiq_python).exists():
            proc = subprocess.Popen([args.shapiq_python, str(Path(__file__).resolve().parent / "_shapiq_side.py"),
                                     str(tmp / "games.npz"), str(tmp / "shapiq.json"),
                                     "--budgets", args.budgets, "--seeds", str(args.seeds)],
                                    stderr=open(tmp / "shapiq.log", "w"))
        else:
            print(f"no Python 3.12 interpreter with shapiq at {args.shapiq_python}: skipping shapiq")

    # (mean error, evaluations spent[, per seed the error of each point])
    results: dict[str, dict[str, dict[int, tuple[Any, ...]]]] = {}
    for spec in specs:
        res = results.setdefault(spec.name, {})

        def record(name: str, b: int, err: float, evals: float, per: Any = None, res=res) -> None:
            res.setdefault(name, {})[b] = (err, evals) if per is None else (err, evals, per)

        if "tribute" not in skip:
            run_tribute(spec, budgets, args.seeds, record, frozenset(skip))
        if "captum" not in skip:
            run_captum(spec, budgets, args.seeds, record)
        if "shap" not in skip:
            run_shap(spec, budgets, args.seeds, record)
        print(f"[{time.time() - t0:.0f}s] {spec.name} done (torch side)", file=sys.stderr, flush=True)
    for reuse in filter(None, args.reuse_json.split(",")):
        for game, rows in json.loads(Path(reuse).read_text()).items():
            for label, row in rows.items():
                if game in results and label not in results[game]:
                    results[game][label] = {int(b): tuple(v) for b, v in row.items() if int(b) in budgets}
    if proc is not None:
        proc.wait()
    if args.shapiq_json:
        while not side_json.exists():  # an earlier side run still going
            time.sleep(10)
    if "shapiq" not in skip:
        try:
            side = json.loads(side_json.read_text())
            print(f"shapiq {side['shapiq_version']} (Python >= 3.12 side)")
            for game, per in side["results"].items():
                for label, row in per.items():
                    for b, cell in row.items():
                        if game not in results or int(b) not in budgets:
                            continue
                        if "err" in cell:
                            results[game].setdefault(label, {})[int(b)] = (
                                cell["err"], cell["evals"], cell.get("errs", []))
                        else:
                            print(f"  {game} {label} at {b}: {cell['error']}")
        except FileNotFoundError:
            print("shapiq side failed; see", tmp / "shapiq.log")

    if args.json:
        Path(args.json).write_text(json.dumps(
            {g: {k: {str(b): v for b, v in row.items()} for k, row in res.items()}
             for g, res in results.items()}, indent=1))
    for spec in specs:
        res = results[spec.name]
        ref = spec.truth_kind + (f", its relative standard error {spec.truth_rel_se:.4f}"
                                 if spec.truth_rel_se else "")
        print(f"\n== {spec.name}: {spec.n} features, {len(spec.X)} points x {args.seeds} seeds; "
              f"truth {ref}\nrelative L2 error (evaluations per point actually spent in brackets)\n")
        head = f"{'estimator':32s}" + "".join(f"{b:>16d}" for b in budgets)
        print(head)
        print("-" * len(head))
        for name, row in res.items():
            cells = []
            for b in budgets:
                if b not in row:
                    cells.append(f"{'-':>16s}")
                elif np.isnan(row[b][1]):
                    cells.append(f"{row[b][0]:>16.3f}")
                else:
                    cells.append(f"{row[b][0]:>9.4f} ({row[b][1]:>4.0f})")
            print(f"{name:32s}" + "".join(cells))
        others = [k for k in res if not k.startswith(("tribute", " "))]
        if others and OURS in res:
            best = {b: min((res[k][b][0], k) for k in others if b in res[k]) for b in budgets}
            print("\nratio to the best of Captum+SHAP+shapiq (goal <= 0.5), and the best:")
            # both exact (error 0, e.g. a budget of 2^n): no ratio
            for label in (OURS, BEFORE):
                if label in res:
                    print(f"{label:32s}" + "".join(
                        f"{res[label][b][0] / best[b][0]:>16.3f}" if best[b][0] > 0 else f"{'-':>16s}"
                        for b in budgets))
            print(f"{'':32s}" + "".join(f"{best[b][1].split()[-1][:15]:>16s}" for b in budgets))
            boots = {b: _boot_ratio(res, OURS, others, b) for b in budgets}
            if any(v is not None for v in boots.values()):
                print(f"{'  90% bootstrap (points, seeds)':32s}" + "".join(
                    f"{f'{v[0]:.3f}-{v[1]:.3f}':>16s}" if v is not None else f"{'-':>16s}"
                    for v in boots.values()))
                print(f"{'  share of resamples above 0.5':32s}" + "".join(
                    f"{v[2]:>16.2f}" if v is not None else f"{'-':>16s}" for v in boots.values()))
    print(f"\ntotal {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
