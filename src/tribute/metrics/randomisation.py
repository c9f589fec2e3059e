"""Randomisation sanity checks: do the credits depend on the model and on the explained class?

Adebayo et al. (2018) re-initialise the model's layers and check that the explanation
changes; Sixt et al. (2020) explain a random other class and check that the explanation
changes. Low similarity to the original explanation is what a model- and class-sensitive
method should show (lower is better).

Caveats (Binder et al. 2023, "Shortcomings of Top-Down Randomization-Based Sanity Checks for
Evaluations of Deep Neural Network Explanations"): after top-down randomisation the network's
output is noise, so a faithful explanation of *that* output need not look dissimilar from the
original (especially with absolute values, which hide sign flips, and with SSIM on smooth
maps); similarity is also driven by input structure that survives random layers (edges in
the input pass through random convolutions). Treat these scores as a check that catches
methods that ignore the model (e.g. edge detectors), not as a ranking of faithfulness.

The user's model is never modified: every randomisation happens on a ``copy.deepcopy``; the
re-explanation goes through the ``model_explain(model, inputs) -> Attribution`` callable.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, UnsupportedModelError
from ..games.base import Game
from ._similarity import attribution_similarity, check_similarity, constant_rows
from ._util import (
    accepts,
    call_explain,
    flat_of,
    shared_draw_unknown,
    targets_rows,
    torch_generator,
)
from .base import Scores, check_attribution, register_metric

__all__ = ["model_randomisation", "parameter_layers", "random_logit", "random_parameters"]

_BINDER = ("Binder et al. (2023), Shortcomings of Top-Down Randomization-Based Sanity Checks "
           "for Evaluations of Deep Neural Network Explanations")


def parameter_layers(module: torch.nn.Module) -> list[str]:
    """Names of submodules that own parameters directly, in registration order."""
    return [name for name, mod in module.named_modules()
            if any(p is not None for p in mod._parameters.values())]


def random_parameters(module: torch.nn.Module, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Fresh values for a layer's own parameters, drawn from a local generator.

    PyTorch's default scale: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases
    (``fan_in`` from the layer's first parameter with two or more dimensions), ``U(-1, 1)`` for
    layers with only 1-D parameters (normalisation scales and shifts). The global RNG is never
    used.
    """
    params = {k: p for k, p in module._parameters.items() if p is not None}
    fan_in = next((int(np.prod(p.shape[1:])) for p in params.values() if p.ndim >= 2), None)
    bound = 1.0 / np.sqrt(fan_in) if fan_in else 1.0
    out = {}
    for k, p in params.items():
        u = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1
        out[k] = (u * bound).to(dtype=p.dtype)
    return out


def _assign(module: torch.nn.Module, values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for k, v in values.items():
            p = module._parameters[k]
            assert p is not None
            p.copy_(v.to(p.device))


def _check_model_explain(fn: Callable[..., Any]) -> None:
    """Refuse a callable that cannot take ``(model, inputs)`` before any work is done.

    ``evaluate(..., explain=lambda x, **kw: ...)`` hands that one-input callable to this metric
    as ``model_explain``; it failed inside the first re-explanation with "<lambda>() takes 1
    positional argument but 2 were given".
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return  # no signature to read: let the call tell
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        names = [p.name for p in positional]
        raise InputError(
            "metric 'model_randomisation' calls model_explain(model, inputs) with the randomised "
            f"copy of the model first; the callable given takes the positional argument(s) "
            f"{names} only. Pass e.g. explain=lambda model, x, **kw: tribute.explain(model, x, "
            "method=..., **kw)."
        )


def _user_module(game: Game) -> Any:
    """The user's torch module the game runs (None when there is none).

    An SAE game runs a wrapper that splices the SAE into the user's model (``wrapper.model``,
    ``wrapper.sae``): randomising and re-explaining the wrapper crashed (``module '1' is not a
    submodule of _Spliced``, the SAE player set wrapped the wrapper) and would have randomised
    the SAE's own encoder and decoder as if they were the model's layers. The model is what
    Adebayo et al. randomise; the SAE, a fixed lens on it, stays.
    """
    module = getattr(getattr(game, "model", None), "module", None)
    inner = getattr(module, "model", None)
    if isinstance(inner, torch.nn.Module) and hasattr(module, "sae") and hasattr(game, "site_keys"):
        return inner
    return module


@register_metric(
    name="model_randomisation", higher_is_better=False, category="randomisation",
    needs=("model_explain", "inputs", "torch_module"), games=("feature", "component"),
    reads_values=False,
    paper="Adebayo et al. (2018), Sanity Checks for Saliency Maps; caveats: " + _BINDER,
)
def model_randomisation(game: Game, attr: Attribution, *, model_explain: Callable[..., Any],
                        inputs: Any, mode: str = "cascading",
                        layers: Sequence[str] | None = None, similarity: str = "spearman",
                        absolute: bool = True, seed: int = 0,
                        channel_axis: int | None = None) -> Scores:
    """Model parameter randomisation: similarity of the credits before/after re-initialising layers.

    Layers (modules owning parameters; all of them, or ``layers``) are randomised top-down —
    from the last registered module to the first — on a deep copy of the model:
    ``"cascading"`` accumulates (layer L, then L and L-1, ...), ``"independent"`` randomises one
    layer at a time on a fresh copy. After each step the copy is re-explained with
    ``model_explain(model_copy, inputs)`` and compared with the original attribution
    (Spearman of ``|phi|`` by default; ``similarity="ssim"`` for image maps). The score per
    sample is the mean similarity over layers; lower is better. The random weights come from
    a local generator (``seed``), so both modes use the same weights for a layer.

    The original model is never modified (parameters, training flags, hooks), also when the
    explain callable raises.

    Args:
        model_explain: ``model_explain(model, inputs) -> Attribution`` (receives ``target=``
            when it accepts it, ``**kwargs`` included, and ``sample=`` when it has a parameter
            of that name).
        inputs: the inputs the attribution explains.
        mode: ``"cascading"`` or ``"independent"``. default="cascading".
        layers: module names to randomise (see :func:`parameter_layers`; one name may be
            given as a string). default=None (all).
        similarity: ``"spearman"`` or ``"ssim"``. default="spearman".
        absolute: compare ``|phi|``. default=True.
        channel_axis: for ``similarity="ssim"``: ``1`` (or None) for ``(batch, C, H, W)`` /
            ``(batch, H, W)`` images, ``-1`` for channels-last ``(batch, H, W, C)`` ones, whose
            maps sum the last axis. None warns where a shape looks channels-last. default=None.
        seed: seed of the random weights. default=0.

    A constant re-explanation (or original) is scored 0 against a non-constant one and 1
    against another constant one (see :func:`~tribute.metrics._similarity.attribution_similarity`):
    a layer whose randomisation leaves the explanation flat has changed it completely, which is
    what Adebayo et al. check (with ``similarity="ssim"`` only a constant original takes this
    rule: SSIM against a constant re-explanation is defined and kept).
    ``extra["n_constant"]`` counts the (layer, sample) similarities scored so; a NaN similarity (credits that are not finite) makes the sample's score NaN
    (``extra["n_nan_similarity"]``), as in Quantus, rather than being left out of its mean.

    ``extra``: ``layers`` (top-down order), ``per_layer`` (``layers x batch``), ``similarity``.
    The standard error is NaN with a warning: the one draw of random weights is shared by every
    sample, and its noise (the spread over samples alone covered the expectation in 0.18-0.87
    of runs) cannot be estimated from it; ``extra["stderr_samples"]`` is for this ``seed`` only.

    Against Quantus' ``MPRT`` (Spearman of ``|phi|`` too, top-down): Quantus re-initialises
    the modules that have ``reset_parameters`` with PyTorch's own initialisers from the global
    RNG and returns one score per layer (``return_average_correlation=True`` for the mean);
    the random weights, so the numbers, differ.

    Reference: Adebayo et al. (2018), "Sanity Checks for Saliency Maps" (NeurIPS). See the
    module docstring for the caveats of Binder et al. (2023).
    """
    flat = check_attribution(game, attr, "model_randomisation")
    module = _user_module(game)
    if not isinstance(module, torch.nn.Module):
        raise UnsupportedModelError(
            "metric 'model_randomisation' re-initialises layers of a torch.nn.Module; this "
            "game's model is not one."
        )
    if mode not in ("cascading", "independent"):
        raise InputError(f"mode={mode!r} must be 'cascading' or 'independent'.")
    absolute = check_similarity(similarity, absolute, channel_axis, attr)
    if model_explain is None or inputs is None:
        raise InputError("metric 'model_randomisation' needs model_explain=callable and inputs=....")
    _check_model_explain(model_explain)
    names = parameter_layers(module)
    if isinstance(layers, str):  # one name: iterating it gave its characters ("10" -> 1, 0)
        layers = [layers]
    if layers is not None:
        layers = list(layers)
        if not layers:  # it said "the model has no layers with parameters" (aud43m)
            raise InputError(
                f"metric 'model_randomisation': layers={layers!r} selects no layer; give module "
                f"names from {names}, or layers=None for all of them.")
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise InputError(
                f"layers {unknown} are not modules with parameters; choose from {names}."
            )
        names = [n for n in names if n in set(layers)]
    if not names:
        raise InputError("metric 'model_randomisation': the model has no layers with parameters.")
    top_down = names[::-1]
    g = torch_generator(seed)
    mods = dict(module.named_modules())
    fresh = {name: random_parameters(mods[name], g) for name in top_down}
    b, t, n = flat.shape
    sample = np.arange(b)
    tg = targets_rows(attr, sample)
    sims, flats = [], []
    work = copy.deepcopy(module) if mode == "cascading" else None
    for name in top_down:
        if mode == "independent":
            work = copy.deepcopy(module)
        assert work is not None
        _assign(dict(work.named_modules())[name], fresh[name])
        new = call_explain(model_explain, work, inputs, metric="model_randomisation",
                           target=tg, sample=sample)
        pf = flat_of(new, b, t, n, "model_randomisation", f"model_explain after {name!r}",
                     targets=tg)
        sims.append(attribution_similarity(attr, flat, pf, similarity, absolute, channel_axis))
        flats.append(constant_rows(attr, flat, pf, similarity, absolute, channel_axis))
    per_layer = np.stack(sims)  # L x B x T
    # every layer counts: a NaN similarity (credits that are not finite) makes the sample's
    # score NaN instead of being skipped, which averaged the other layers only (small39)
    score = per_layer.mean(axis=0)
    return Scores(score, {"layers": top_down,
                          "per_layer": per_layer if attr.layout.multi_target else per_layer[..., 0],
                          "similarity": similarity, "mode": mode,
                          "explain_calls": len(top_down),
                          "n_constant": int(np.stack(flats).sum()),
                          "n_nan_similarity": int(np.isnan(per_layer).sum()),
                          **shared_draw_unknown("one draw of random weights "
                                                "shared by every sample")})


@register_metric(
    name="random_logit", higher_is_better=False, category="randomisation",
    needs=("explain", "inputs"), games=("feature", "component"), reads_values=False,
    paper="Sixt, Granz & Landgraf (2020), When Explanations Lie: Why Many Modified BP "
          "Attributions Fail",
)
def random_logit(game: Game, attr: Attribution, *, explain: Callable[..., Any], inputs: Any,
                 similarity: str = "spearman", absolute: bool = True, seed: int = 0,
                 channel_axis: int | None = None) -> Scores:
    """Random logit test: similarity between the explanation of the target and of another class.

    Every sample's target class ``c`` is replaced by ``(c + r) mod C`` with one offset ``r``
    drawn uniformly from ``1..C-1`` (shared by all samples, so results do not depend on the
    batch), the inputs are re-explained with ``explain(inputs, target=...)`` and compared with
    the original credits (Spearman of ``|phi|`` by default; ``"ssim"`` for image maps). A method
    that explains the class, not just the input, gives low similarity. Lower is better.
    Needs a classifier (two or more outputs) and class-index targets.

    Args:
        explain: ``explain(inputs, target=...) -> Attribution``; must accept ``target``.
        inputs: the inputs the attribution explains.
        similarity: ``"spearman"`` or ``"ssim"``. default="spearman".
        absolute: compare ``|phi|``. default=True.
        channel_axis: for ``similarity="ssim"``: ``1`` (or None) for ``(batch, C, H, W)`` /
            ``(batch, H, W)`` images, ``-1`` for channels-last ``(batch, H, W, C)`` ones, whose
            maps sum the last axis. None warns where a shape looks channels-last. default=None.
        seed: seed of the class offset. default=0.

    ``extra``: ``other_class`` (``batch``), ``n_constant`` (samples where one of the two
    explanations is constant: similarity 0, or 1 if both are; see :func:`model_randomisation`).
    With three or more classes the standard error is
    NaN with a warning (the one offset is a draw shared by every sample; the spread over
    samples alone covered 0.88-0.92 at 200 samples); with two the offset is always 1.

    Against Quantus' ``RandomLogit``: Quantus compares with SSIM by default (pass
    ``similarity="ssim"``) and draws the other class independently for every sample.

    Reference: Sixt, Granz & Landgraf (2020), "When Explanations Lie: Why Many Modified BP
    Attributions Fail" (ICML). See :mod:`tribute.metrics.randomisation` for caveats.
    """
    flat = check_attribution(game, attr, "random_logit")
    if explain is None or inputs is None:
        raise InputError("metric 'random_logit' needs explain=callable and inputs=....")
    if not accepts(explain, "target"):
        raise InputError("metric 'random_logit': the explain callable must accept target=....")
    absolute = check_similarity(similarity, absolute, channel_axis, attr)
    if attr.targets is None or attr.layout.multi_target:
        raise InputError(
            "metric 'random_logit' needs one class-index target per sample (not a callable or "
            "several targets)."
        )
    # feature and component games both keep the model's output on the explained inputs
    ref = getattr(game, "reference_output", None)
    n_classes = int(ref.shape[1]) if ref is not None and ref.ndim == 2 else 0
    if n_classes < 2:
        raise InputError(
            "metric 'random_logit' needs a classifier with two or more outputs; this model has "
            f"{max(n_classes, 1)}."
        )
    g = torch_generator(seed)
    r = int(torch.randint(1, n_classes, (1,), generator=g))
    tg = np.asarray(attr.targets, dtype=np.int64)
    other = (tg + r) % n_classes
    b, t, n = flat.shape
    new = call_explain(explain, inputs, metric="random_logit", target=other, sample=np.arange(b))
    pf = flat_of(new, b, t, n, "random_logit", "the explain callable", targets=other)
    # with three or more classes the one offset is a random draw shared by every sample
    shared = shared_draw_unknown(f"one class offset ({r} of 1..{n_classes - 1}) "
                                 "shared by every sample") if n_classes > 2 else {}
    return Scores(attribution_similarity(attr, flat, pf, similarity, absolute, channel_axis),
                  {"other_class": other, "similarity": similarity, "explain_calls": 1,
                   "n_constant": int(constant_rows(attr, flat, pf, similarity, absolute, channel_axis).sum()),
                   **shared})
