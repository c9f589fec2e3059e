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
import html
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
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
                       epilog="examples:\n  tribute methods\n  tribute methods --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("explain", help="explain a model on saved inputs",
                       description="Load a model from a factory (and safetensors weights), explain it on "
                       "inputs from a .npy/.npz file, and write attribution.npz, attribution.png and "
                       "attribution.html to --out.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    _add_explain_options(p, default_method="kernel_shap")
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
    p.set_defaults(func=_cmd_components)

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
    p.add_argument("--target", default=None, help="'predicted', a class index, or comma-separated indices (several targets)")
    p.add_argument("--output", default="raw", choices=["raw", "logit", "prob", "log_prob"], help="output transform (default: raw)")
    if with_groups:
        p.add_argument("--baseline", default="0", help="a number, 'mean' (mean of --data), or a .npy file (default: 0)")
        p.add_argument("--groups", default=None, help="'patch:N' for NxN superpixels, or a .npy integer mask")
    p.add_argument("--budget", type=int, default=None, help="model evaluations per input")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per forward pass (default: automatic)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter, e.g. --param steps=64 (JSON values)")
    p.add_argument("--limit", type=int, default=None, help="explain only the first N samples")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--weights``, ``--data``, ``--data-key`` (shared with plugin commands)."""
    p.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                   help="factory returning the model: 'pkg.module:make_model' or 'path/file.py:make_model'")
    p.add_argument("--weights", default=None, help="a .safetensors file loaded into the model (never pickle)")
    p.add_argument("--data", required=True, help="inputs: a .npy file, or a .npz file (see --data-key)")
    p.add_argument("--data-key", default=None, help="array name inside a .npz file (default: the first)")


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


def load_data(path: str, key: str | None = None) -> Any:
    """Load a ``.npy`` or ``.npz`` array without pickle."""
    import numpy as np

    from .errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--data: file {path!r} does not exist.")
    try:
        obj = np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"--data: {path!r} holds pickled objects, which tribute never loads ({exc}).") from exc
    if isinstance(obj, np.ndarray):
        return obj
    with obj:
        names = list(obj.files)
        if not names:
            raise InputError(f"--data: {path!r} holds no arrays.")
        if key is None:
            return obj[names[0]]
        if key not in names:
            raise InputError(f"--data-key {key!r} is not in {path!r}; it holds {names}.")
        return obj[key]


def prepare(args: argparse.Namespace) -> tuple[Any, Any]:
    """Model (with weights loaded) and inputs in the model's framework."""
    import numpy as np
    import torch

    from .models import load_weights

    model = load_factory(args.model)
    data = load_data(args.data, args.data_key)
    if getattr(args, "limit", None):
        data = data[: args.limit]
    if isinstance(model, torch.nn.Module):
        if args.weights:
            load_weights(model, args.weights)
        model.eval()
        dtype = next((p.dtype for p in model.parameters() if p.dtype.is_floating_point), torch.float32)
        inputs: Any = torch.from_numpy(np.ascontiguousarray(data))
        if inputs.dtype.is_floating_point:
            inputs = inputs.to(dtype)
    else:
        if args.weights:
            from .errors import InputError

            raise InputError("--weights applies to torch modules; this factory returned a non-torch model.")
        inputs = data
    return model, inputs


def _parse_target(text: str | None) -> Any:
    if text is None or text == "predicted":
        return text
    parts = [t for t in text.split(",") if t.strip()]
    if len(parts) > 1:
        return [int(t) for t in parts]
    return int(parts[0])


def _parse_baseline(text: str, data: Any) -> Any:
    import numpy as np

    if text == "mean":
        return data.float().mean(0) if hasattr(data, "numpy") else np.asarray(data).mean(0)
    if text.endswith(".npy"):
        return load_data(text)
    return float(text)


def _parse_groups(text: str | None) -> Any:
    from .games import patches

    if text is None:
        return None
    if text.startswith("patch:"):
        return patches(int(text.split(":", 1)[1]))
    return load_data(text)


def _parse_params(items: list[str]) -> dict[str, Any]:
    from .errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--param {item!r} must be KEY=VALUE.")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _cmd_methods(args: argparse.Namespace) -> int:
    from .api import methods

    infos = methods()
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in infos.items()}, indent=2, default=repr))
        return 0
    rows = [("method", "family", "tags", "paper")]
    for name, info in infos.items():
        t = info.tags
        flags = [f for f, on in (("grad", t.needs_gradients), ("stochastic", t.stochastic),
                                 ("exact", t.exact), ("budget", t.budgeted), ("gap", t.has_gap),
                                 ("model-specific", t.model_specific)) if on]
        rows.append((name, t.family, ",".join(flags) or "-", info.paper[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    model, inputs = prepare(args)
    return _explain_and_write(args, model, inputs, baseline=_parse_baseline(args.baseline, inputs),
                              groups=_parse_groups(args.groups))


def _explain_and_write(args: argparse.Namespace, model: Any, inputs: Any, **settings: Any) -> int:
    """Run :func:`tribute.explain` with the shared CLI options and write the three outputs."""
    from .api import explain

    attr = explain(
        model, inputs, method=args.method, target=_parse_target(args.target),
        budget=args.budget, seed=args.seed, batch_size=args.batch_size,
        progress=False if args.no_progress else None, output=args.output,
        **settings, **_parse_params(args.param),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = attr.save(out / "attribution.npz")
    png, page = write_views(attr, out)
    print(f"{attr}\nwrote {saved}\nwrote {png}\nwrote {page}")
    return 0


def _cmd_components(args: argparse.Namespace) -> int:
    from .cli_components import components_from_cli_args

    model, inputs = prepare(args)
    import torch

    if not isinstance(model, torch.nn.Module):
        from .errors import InputError

        raise InputError("tribute components needs a torch.nn.Module factory (players are its units).")
    players = components_from_cli_args(model, args, load=lambda path: _as_model_input(load_data(path), inputs))
    return _explain_and_write(args, model, inputs, players=players)


def _as_model_input(data: Any, like: Any) -> Any:
    import torch

    t = torch.as_tensor(data)
    return t.to(like.dtype) if t.dtype.is_floating_point and like.dtype.is_floating_point else t


def write_views(attr: Any, out: Path, max_samples: int = 4) -> tuple[Path, Path]:
    """Write ``attribution.png`` (first samples) and a self-contained ``attribution.html``."""
    import numpy as np

    from . import viz

    figs = []
    n = min(max_samples, attr.flat().shape[0])
    for i in range(n):
        figs.append(attr.plot(i, title=f"sample {i} — {attr.method}"))
    png = out / "attribution.png"
    uris = []
    for i, fig in enumerate(figs):
        data = viz.to_png_bytes(fig)
        if i == 0:
            png.write_bytes(data)
        import base64

        uris.append("data:image/png;base64," + base64.b64encode(data).decode())
    flat = attr.flat()[:, 0]
    top = np.argsort(-np.abs(flat).mean(0))[:15]
    rows = "".join(
        f"<tr><td>{html.escape(attr.player_names[j])}</td>"
        + "".join(f"<td>{flat[i, j]:+.4g}</td>" for i in range(n))
        + "</tr>"
        for j in top
    )
    head = "".join(f"<th>sample {i}</th>" for i in range(n))
    imgs = "".join(f'<img alt="sample {i}" src="{u}" style="max-width:420px">' for i, u in enumerate(uris))
    params = html.escape(json.dumps(attr.params, default=repr))
    page = out / "attribution.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>tribute attribution</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>{html.escape(attr.method)}</h1><p>{attr.n_evals} evaluations per input, "
        f"{attr.n_rows} model rows, {attr.seconds:.3g} s. Parameters: <code>{params}</code></p>"
        f"<div>{imgs}</div><h2>Top players (mean |credit|)</h2>"
        f"<table><tr><th>player</th>{head}</tr>{rows}</table></body></html>",
        encoding="utf-8",
    )
    return png, page


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
