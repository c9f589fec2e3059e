"""``tribute components`` options: argparse specs and the player set they describe.

CLI-side code (the game layer knows nothing about argparse); :mod:`tribute.cli` adds these
options to its ``components`` subcommand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .errors import InputError
from .games.components import ComponentSet, components
from .games.sites import ABLATIONS, UNITS
from .jobs.data import load_array

__all__ = ["components_cli_args", "components_from_cli_args"]


def components_cli_args() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """``argparse`` specs for a ``components`` CLI subcommand: ``(flags, add_argument kwargs)``.

    Example:
        >>> for flags, kw in components_cli_args():  # doctest: +SKIP
        ...     parser.add_argument(*flags, **kw)
        >>> players = components_from_cli_args(model, parser.parse_args())  # doctest: +SKIP
    """
    return [
        (("--module",), {"action": "append", "required": True, "metavar": "PATH",
                         "help": "module path whose units are players (repeat for several modules)"}),
        (("--unit",), {"choices": list(UNITS), "default": "neuron",
                       "help": "neuron (last axis), channel (axis 1) or head (attention heads)"}),
        (("--num-heads",), {"type": int, "default": None,
                            "help": "heads of a module without a num_heads attribute"}),
        (("--ablation",), {"choices": list(ABLATIONS), "default": "zero",
                           "help": "how removed units are replaced"}),
        (("--reference",), {"default": None, "metavar": "FILE",
                            "help": "reference inputs (.npy, or .npz holding one array; same layout as --data) for mean/resample"}),
        (("--counterfactual",), {"default": None, "metavar": "FILE",
                                 "help": "corrupted inputs, one per sample, for --ablation patch"}),
        (("--n-resample",), {"type": int, "default": None,
                             "help": "reference rows averaged over for resample (drawn with --seed; default: 16)"}),
    ]


def components_from_cli_args(model: torch.nn.Module, ns: Any,
                             load: Callable[[str, str], Any] | None = None) -> ComponentSet:
    """Build a :class:`ComponentSet` from parsed :func:`components_cli_args` options.

    ``--seed`` (the command's one seed) also draws the ``resample`` reference rows, so that
    the CLI gives what ``components(..., seed=s)`` with ``explain(..., seed=s)`` gives.

    Args:
        model: the torch module.
        ns: the ``argparse.Namespace``.
        load: reads ``--reference`` / ``--counterfactual`` files, called with the path and the
            option's name (the CLI's own input loader); default:
            :func:`tribute.jobs.data.load_array` (an ``.npz`` must hold one array).
    """
    def _load(path: str | None, arg: str) -> Any:
        if path is None:
            return None
        if load is not None:
            return load(path, arg)
        return torch.as_tensor(load_array(path, arg=arg))

    readers = {"--reference": (ns.reference, ("mean", "resample")),
               "--counterfactual": (ns.counterfactual, ("patch",)),
               "--n-resample": (ns.n_resample, ("resample",))}
    for flag, (given, kinds) in readers.items():
        if given is not None and ns.ablation not in kinds:
            raise InputError(
                f"{flag} {given} is read only by --ablation {' or '.join(kinds)} (got --ablation "
                f"{ns.ablation}); drop {flag}, or pass --ablation {kinds[0]}.")
    return components(model, list(ns.module), unit=ns.unit, num_heads=ns.num_heads,
                      ablation=ns.ablation, reference=_load(ns.reference, "--reference"),
                      counterfactual=_load(ns.counterfactual, "--counterfactual"),
                      n_resample=16 if ns.n_resample is None else ns.n_resample, seed=int(getattr(ns, "seed", 0) or 0))
