"""``tribute bench`` and ``tribute evaluate`` (registered into the core CLI by ``register``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Literal

__all__ = ["register"]

_BENCH_EPILOG = """examples:
  tribute bench --suite quick --out report-out
  tribute bench --suite full --methods kernel_shap,integrated_gradients --out bench-out
  tribute bench --suite quick --cases planted_images,difull --metrics auroc,deletion --out out
"""

_EVAL_EPILOG = """examples:
  tribute evaluate --model mypkg.models:make_cnn --weights cnn.safetensors \\
      --data images.npz --data-key X_test --limit 64 --out eval-out
  tribute evaluate --model ./model.py:build --data X.npy --methods kernel_shap,lime \\
      --metrics deletion,insertion,linear_score --baseline mean --out eval-out
"""

#: Methods and metrics `tribute evaluate` uses by default (faithfulness: no truth needed).
EVAL_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "kernel_shap",
                "feature_ablation", "occlusion", "lime")
EVAL_METRICS = ("deletion", "insertion", "faithfulness_correlation", "linear_score")


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _check_lists(args: argparse.Namespace, opts: tuple[str, ...]) -> None:
    """Refuse a name list that names nothing (``--cases ""``, ``--methods ,``).

    aud47b: such a list read as "not given": an unset shell variable (``--cases "$CASES"``) ran
    every case of the suite (minutes for quick) or every default method, with exit status 0.
    """
    from ..errors import InputError

    for opt in opts:
        text = getattr(args, opt, None)
        if text is not None and _csv(text) is None:
            raise InputError(f"--{opt} {text!r} names nothing; give comma-separated names, or drop "
                             f"--{opt} for the defaults.")


def register(subparsers: Any) -> None:
    """Add the ``bench`` and ``evaluate`` subcommands to the ``tribute`` parser."""
    p = subparsers.add_parser(
        "bench", help="benchmark methods x metrics on suites with ground truth",
        description="Run attribution methods x metrics on benchmark cases with known ground "
        "truth (and real data without it), print a leaderboard with standard errors, and write "
        "leaderboard.csv, results.json and a self-contained report.html to --out.",
        epilog=_BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="quick", help="tiny, quick, full, regions (XRAI, submodular regions, extremal perturbations), generation / generation-tiny (a copying LM), data / data-tiny for training-data "
                        "attribution, rashomon / rashomon-tiny for interactions over a Rashomon set, concepts / concepts-tiny "
                        "(CRAFT and TCAV on planted patterns), sae / sae-tiny (SAE latents as players vs planted features), or decision / decision-tiny (recourse, SHAP-KL, certified) (default: quick)")
    p.add_argument("--methods", default=None,
                   help="comma-separated registry names (default: the suite's; an unknown "
                        "name is an error)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (default: the suite's)")
    p.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    p.add_argument("--out", default=None, help="output folder (default: bench-out; the "
                                               "suites that only print refuse it)")
    p.add_argument("--seed", type=int, default=0, help="seed of samples, methods and metrics "
                                                       "(default: 0)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--quiet", action="store_true", help="one line per case, no per-method lines")
    p.add_argument("--no-progress", action="store_true", help="hide the engine's progress bars")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a sanity check of the benchmark fails")
    p.set_defaults(func=_cmd_bench)

    from ..cli import add_feature_names_arg, add_model_args
    from ..params import int_at_least

    e = subparsers.add_parser(
        "evaluate", help="compare methods on your model and data; recommend one",
        description="Run the same methods x metrics as the benchmark on your own model and "
        "inputs (faithfulness metrics: no ground truth needed), write leaderboard.csv, "
        "results.json and report.html to --out, and recommend the best method by the chosen "
        "metrics, saying why.",
        epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(e)
    e.add_argument("--methods", default=None,
                   help=f"comma-separated registry names (default: {','.join(EVAL_METHODS)}; "
                        "an unknown name is an error, unsupported ones are skipped with a note)")
    e.add_argument("--metrics", default=None,
                   help=f"comma-separated metric names (default: {','.join(EVAL_METRICS)})")
    e.add_argument("--target", default="predicted",
                   help="'predicted' (default) or a class index")
    e.add_argument("--baseline", default="0",
                   help="a number, 'mean' (mean of the rows evaluated: --data after --limit), or a "
                        ".npy file (default: 0)")
    e.add_argument("--groups", default=None, help="'patch:N' for NxN superpixels ('patch:N:hwc' "
                   "for (H, W, C) images the model does not say it reads so), or a .npy "
                                                  "integer mask")
    e.add_argument("--budget", type=int_at_least(1, "evaluations per input"), default=512,
                   help="evaluations per input for sampling methods (default: 512)")
    e.add_argument("--grad-budget", type=int_at_least(1, "gradient points per input"), default=32,
                   help="gradient points per input for budgeted gradient methods (default: 32)")
    add_feature_names_arg(e)
    e.add_argument("--ground-truth", default=None,
                   help="optional .npy/.npz relevance mask to add ground-truth metrics: one "
                        "mask of one sample's shape, or one per --data row (cut by --limit)")
    e.add_argument("--limit", type=int_at_least(1, "the first N rows of --data"), default=64,
                   help="evaluate on the first N samples (default: 64)")
    e.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    e.set_defaults(func=_cmd_evaluate)


#: Special suites that write files to ``--out``.
WRITES_OUT = ("data", "decision")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _safe_print(text: str) -> None:
    try:
        print(text)
    except UnicodeEncodeError:  # a terminal without UTF-8: keep going, replace the arrows
        enc = sys.stdout.encoding or "ascii"
        print(text.encode(enc, errors="replace").decode(enc))


def _write_outputs(result: Any, out: Path, report: bool, title: str | None = None) -> list[Path]:
    from . import atomic_write_text
    from .leaderboard import format_leaderboard, write_csv, write_json
    from .report import write_report

    out.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(result, out / "leaderboard.csv"), write_json(result, out / "results.json")]
    paths.append(atomic_write_text(out / "leaderboard.txt", format_leaderboard(result) + "\n"))
    if report:
        t0 = time.perf_counter()
        paths.append(write_report(result, out / "report.html", title=title))
        _log(f"report rendered in {time.perf_counter() - t0:.1f}s")
    return paths


def _check_special_options(args: argparse.Namespace) -> None:
    from ..errors import InputError
    from .suites import SPECIAL_SUITES

    base = args.suite.removesuffix("-tiny")
    used = SPECIAL_SUITES[base]
    for opt in ("methods", "cases", "metrics"):
        if getattr(args, opt, None) and opt not in used:
            reads = ", ".join(f"--{o}" for o in used) or "only --seed"
            raise InputError(f"--{opt} {getattr(args, opt)!r} is not used by the {args.suite!r} suite "
                             f"(it reads {reads}); drop --{opt}.")
    # options of the main suites that a special suite would otherwise ignore silently
    if getattr(args, "out", None) is not None and base not in WRITES_OUT:
        raise InputError(f"--out {args.out!r} is not used by the {args.suite!r} suite (it prints "
                         "its results and writes no files); drop --out.")
    for flag, attr, why in (("--strict", "strict", "it has no sanity checks"),
                            ("--no-report", "no_report", "it writes no report.html")):
        if getattr(args, attr, False) and (attr == "strict" or base not in WRITES_OUT):
            raise InputError(f"{flag} is not used by the {args.suite!r} suite ({why}); "
                             f"drop {flag}.")


def _cmd_bench(args: argparse.Namespace) -> int:
    from .suites import SPECIAL_SUITES, check_seed

    check_seed(args.seed)
    _check_lists(args, ("methods", "metrics", "cases"))
    if args.suite.removesuffix("-tiny") in SPECIAL_SUITES:
        _check_special_options(args)
    if args.suite.removesuffix("-tiny") not in SPECIAL_SUITES or args.suite.removesuffix("-tiny") in WRITES_OUT:
        from ..cli import check_out_dir

        # aud44b: before the run -- a file as --out ran the whole suite, then mkdir raised
        # FileExistsError with a traceback (results lost; the data suite's traceback came first)
        check_out_dir(args.out or "bench-out")
    if args.suite in ("data", "data-tiny"):  # training-data attribution (bench/data_suite.py)
        from .data_suite import cmd_data_suite

        return cmd_data_suite(args)
    if args.suite in ("generation", "generation-tiny"):  # copy-the-planted-word LM (bench/generation_suite.py)
        from .generation_suite import cmd_generation_suite

        return cmd_generation_suite(args)
    if args.suite in ("concepts", "concepts-tiny"):  # CRAFT on planted patterns (bench/concept_suite.py)
        from .concept_suite import cmd_concept_suite

        return cmd_concept_suite(args)
    if args.suite in ("sae", "sae-tiny"):  # SAE latents as players vs planted features (bench/sae_suite.py)
        from .sae_suite import cmd_sae_suite

        return cmd_sae_suite(args)
    if args.suite in ("decision", "decision-tiny"):  # recourse, SHAP-KL, certified (bench/decision_suite.py)
        from .decision_suite import cmd_decision_suite

        return cmd_decision_suite(args)
    if args.suite in ("rashomon", "rashomon-tiny"):  # planted interactions over a Rashomon set (bench/rashomon_suite.py)
        from .rashomon_suite import cmd_rashomon_suite

        return cmd_rashomon_suite(args)
    from .leaderboard import format_leaderboard, sanity_checks
    from .runner import resolve_methods, resolve_metrics, run
    from .suites import build_suite

    # names the user typed are checked before the suite is built: building trains the cases'
    # models on first use (minutes for quick/full), and a typo used to be refused only after it
    if _csv(args.methods):
        resolve_methods(_csv(args.methods), strict=True)
    if _csv(args.metrics):
        resolve_metrics(_csv(args.metrics) or [], strict=True)
    t0 = time.perf_counter()
    suite = build_suite(args.suite, seed=args.seed, cases=_csv(args.cases), progress=_log)
    _log(f"suite built in {time.perf_counter() - t0:.1f}s")
    result = run(suite, methods=_csv(args.methods), metrics=_csv(args.metrics),
                 progress=False if args.no_progress else None, log=_log,
                 verbose=not args.quiet)
    _safe_print(format_leaderboard(result))
    out = Path(args.out or "bench-out")
    paths = _write_outputs(result, out, not args.no_report)
    for p in paths:
        print(f"wrote {p}")
    if not args.no_report:
        print(f"report: {(out / 'report.html').resolve()}")
    print(f"total {time.perf_counter() - t0:.1f}s")
    failed = [c for c in sanity_checks(result) if not c.passed]
    return 1 if failed and args.strict else 0


def _user_case(args: argparse.Namespace) -> Any:
    import numpy as np
    import torch

    from ..cli import (
        _parse_baseline,
        _parse_groups,
        limit_rows,
        load_data,
        parse_feature_names,
        prepare,
    )
    from ..errors import InputError
    from ..games.build import build_game
    from ..models import as_model
    from .suites import Case

    model, inputs = prepare(args)
    # one baseline (or group map) per --data row: the --limit rows evaluated take theirs (the
    # full file met fewer inputs and was read as a background set, averaged over every row)
    baseline = limit_rows(_parse_baseline(args.baseline, inputs), args, inputs)
    groups = limit_rows(_parse_groups(args.groups), args, inputs)
    framework = "torch" if isinstance(inputs, torch.Tensor) else "numpy"
    adapter = as_model(model, framework)
    channels_last = False
    spec = groups if groups is not None and not isinstance(groups, np.ndarray) else None
    if groups is not None and not isinstance(groups, np.ndarray):
        # a Patches spec: expand to an explicit map so the report can draw it, over the spatial
        # axes the model reads (aud51c: an (H, W, C) image's last two axes, W x channels, were
        # tiled for a channels-last CNN)
        shape = tuple(int(v) for v in inputs.shape[1:])
        if len(shape) < 2:
            raise InputError(f"--groups {args.groups!r} needs image inputs; got per-sample "
                             f"shape {shape}.")
        from ..games.features import patch_map

        groups, channels_last = patch_map(groups, shape, adapter, f"--groups {args.groups!r}")
    method_params: dict[str, dict[str, Any]] = {}
    if groups is not None and args.groups.startswith("patch:"):
        # occlusion builds its own windows: align them with the patches (same players)
        shape = tuple(int(v) for v in inputs.shape[1:])
        ph = int(spec.size[0]) if spec is not None else int(args.groups.split(":")[1])
        win = (ph, ph, shape[-1]) if channels_last else (*shape[:-2], ph, ph)
        method_params["occlusion"] = {"groups": None, "window": win, "stride": win}
    target: Any = args.target
    if target not in (None, "predicted"):
        try:
            target = int(target)
        except ValueError:
            raise InputError(f"--target {args.target!r} must be 'predicted' or an int.") from None
    with adapter.session():  # --target 2 is label 2, as in tribute explain (build_game)
        game = build_game(adapter, inputs, target=target, baseline=baseline, groups=groups,
                          progress=False)
        ref = game.reference_output  # type: ignore[attr-defined]
        look = getattr(game, "image_channel_axis", None)
        seen = look() if look is not None and spec is not None and spec.channel_axis is None \
            and len(inputs.shape) == 4 else None
        if seen is not None and spec is not None and seen != (-1 if channels_last else 0):
            # aud52v: the first Conv2d that runs reads the other axis as channels (a CoordConv
            # stem, a channels-last multispectral image): the patches tiled the wrong axes
            raise InputError(
                f"--groups {args.groups!r} tiled the per-sample shape {tuple(inputs.shape[1:])} as "
                f"{'(H, W, C)' if channels_last else '(C, H, W)'}, but the model's first Conv2d "
                f"receives it as {'(H, W, C)' if seen == -1 else '(C, H, W)'}: give --groups "
                f"patch:{int(spec.size[0])}:{'hwc' if seen == -1 else 'chw'}.")
        resolved = game.target.to_numpy()
        n_players = game.n_players
    single = ref.ndim == 1 or int(ref.shape[1]) == 1
    n_classes = None if single else int(ref.shape[1])
    tgt = None if single else np.asarray(resolved, dtype=np.int64)
    x_np = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    is_int = np.issubdtype(x_np.dtype, np.integer)
    modality: Literal["tabular", "image", "text"]
    if is_int:
        modality = "text"
    elif x_np.ndim >= 3:
        modality = "image"
    else:
        modality = "tabular"
    truth = None
    if args.ground_truth:
        raw = np.asarray(load_data(args.ground_truth, arg="--ground-truth"))
        truth = _truth_rows(raw, x_np, getattr(args, "n_data_rows", len(x_np)), args.ground_truth)
    n = len(x_np)
    names = parse_feature_names(getattr(args, "feature_names", None), n_players)
    if names is None and modality == "tabular":
        names = [f"x{j}" for j in range(int(np.prod(x_np.shape[1:])))]
    tokens = ([[f"t{int(t)}" for t in row.ravel()] for row in x_np] if is_int
              and x_np.ndim == 2 else None)
    if modality == "text" and tokens is None:
        modality = "tabular"
    return Case(
        name="user", title=f"Your model ({args.model}) on {Path(args.data).name}",
        description=(f"{n} samples of shape {tuple(x_np.shape[1:])} from {args.data}; target "
                     f"{args.target}; baseline {args.baseline}"
                     + (f"; groups {args.groups}" if args.groups else "") + "."),
        modality=modality, model=model, inputs=inputs, target=tgt, baseline=baseline,
        groups=groups, ground_truth=truth, n_classes=n_classes, feature_names=names,
        tokens=tokens, budget=args.budget, grad_budget=args.grad_budget,
        method_params=method_params,
        # rev47b: relevance_mass on the positive part was NaN (the row dropped) wherever a method
        # credits nothing positively, so signed methods were averaged over other rows than the rest,
        # and an exact method whose relevant credits are all negative read 0.000 (below random) or
        # n/a; the share of |credit| in the mask is defined for every method and row (as the suites'
        # signed-truth cases score it; auroc and precision_at_k already rank |credit|)
        metric_params={"relevance_mass": {"absolute": True}},
        model_info=f"{type(model).__name__} from {args.model}"
        + (f" with weights {args.weights}" if args.weights else ""),
    )


def _groupable(names: list[str], case: Any) -> tuple[list[str], list[str]]:
    """Default methods that can credit the case's groups, and notes on the ones left out.

    A method tagged ``dense_output`` credits every input element: gradient maps are still
    comparable (the runner averages their element credits over each group), but a
    perturbation method with its own players (occlusion's windows) cannot use an arbitrary
    group map — unless the case aligns its windows with the groups (``patch:N``).
    """
    from ..methods.base import get_method

    keep, notes = [], []
    for name in names:
        tags = get_method(name).tags
        if (tags.dense_output and not tags.needs_gradients
                and "groups" not in case.method_params.get(name, {})):
            notes.append(f"method {name!r} defines its own players (dense output) and cannot "
                         "use a --groups map; left out of the defaults (name it in --methods "
                         "to try anyway, or use --groups patch:N)")
            continue
        keep.append(name)
    return keep, notes


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .leaderboard import format_leaderboard, recommend
    from .runner import make_result, resolve_methods, resolve_metrics, run_cases
    from .suites import check_seed

    check_seed(args.seed)
    _check_lists(args, ("methods", "metrics"))
    from ..cli import check_out_dir

    check_out_dir(args.out)  # before the run (a file as --out failed after it, with a traceback)
    t0 = time.perf_counter()
    case = _user_case(args)
    names, notes = resolve_methods(_csv(args.methods) or list(EVAL_METHODS),
                                   strict=bool(_csv(args.methods)))
    if case.groups is not None and not _csv(args.methods):
        names, dropped = _groupable(names, case)
        notes += dropped
    wanted = _csv(args.metrics) or list(EVAL_METRICS)
    if case.ground_truth is not None and not _csv(args.metrics):
        wanted += ["auroc", "precision_at_k", "relevance_mass"]
    mets, mnotes = resolve_metrics(wanted, strict=bool(_csv(args.metrics)))
    notes += mnotes
    for note in notes:
        _log(f"note: {note}")
    _log(f"evaluating {len(names)} methods x {len(mets)} metrics on {case.n_samples} samples "
         f"({case.n_players} players)")
    runs, scores = run_cases([case], methods=names, metrics=mets, seed=args.seed,
                             progress=False if args.no_progress else None, log=_log)
    result = make_result("evaluate", args.seed, [case], names, mets, runs, scores, notes,
                         time.perf_counter() - t0)
    _safe_print(format_leaderboard(result, user_data=True))
    best, why = recommend(result, case.name, [m for m in wanted if m in mets])
    _safe_print("\n".join(why))
    paths = _write_outputs(result, Path(args.out), True,
                           title=f"tribute evaluate — {args.model}")
    for p in paths:
        print(f"wrote {p}")
    print(f"report: {(Path(args.out) / 'report.html').resolve()}")
    return 0 if best is not None else 1


def _fits(shape: tuple[int, ...], sample: tuple[int, ...]) -> bool:
    """Whether a mask of ``shape`` broadcasts to one sample's ``sample`` shape (e.g. ``(H, W)``
    for ``(C, H, W)`` images), as the ground-truth metrics take it."""
    if len(shape) > len(sample):
        return False
    return all(a in (1, b) for a, b in zip(shape[::-1], sample[::-1]))


def _truth_rows(raw: Any, x_np: Any, n_full: int, path: str) -> Any:
    """``--ground-truth`` as one boolean mask per evaluated row (``x_np``'s shape): one mask
    shared by every row, or one per ``--data`` row (the first ``len(x_np)`` taken, as
    ``--limit`` does), each of a sample's shape or broadcastable to it (``(H, W)`` for
    ``(C, H, W)`` images, as the ground-truth metrics take it)."""
    import numpy as np

    from ..errors import InputError

    sample, n = tuple(x_np.shape[1:]), len(x_np)
    shared = _fits(raw.shape, sample)
    per_row = raw.ndim >= 1 and raw.shape[0] in (n_full, n) and _fits(raw.shape[1:], sample)
    if raw.ndim == x_np.ndim:
        shared = False  # the full rank: one mask per row
    if shared and per_row and raw.ndim == len(sample) and raw.shape != sample:
        raise InputError(
            f"--ground-truth {path!r} has shape {raw.shape}: one shared mask broadcast over a "
            f"sample's shape {sample}, or one mask per row? Give it as {sample} or {(n_full, *sample)}.")
    if shared:
        return np.broadcast_to(raw, x_np.shape) != 0
    if per_row:
        rows = raw[:n].reshape(n, *([1] * (x_np.ndim - raw.ndim)), *raw.shape[1:])
        return np.broadcast_to(rows, x_np.shape) != 0
    raise InputError(
        f"--ground-truth {path!r} has shape {raw.shape}; give one mask of one sample's shape "
        f"{sample} (or broadcastable to it, e.g. (H, W) for (C, H, W) images), or one per --data "
        f"row {(n_full, *sample)}.")
