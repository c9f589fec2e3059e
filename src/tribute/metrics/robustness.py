"""Robustness: do the credits stay put under small input changes, seeds and hyperparameters?

These metrics must re-explain, so they take an ``explain`` callable instead of importing the
public API (the layers keep pointing down). The callable is ``explain(inputs, ...) ->
Attribution``; when it accepts them, it also receives ``target=`` (per-row targets equal to
the original attribution's, so a perturbed input is explained for the same class; also through
``**kwargs``) and ``sample=`` (which original sample each row comes from, for per-sample
baselines or groups; only to a parameter named ``sample``, never through ``**kwargs``, so that
``lambda x, **kw: tribute.explain(model, x, method=..., **kw)`` works). The sensitivity
metrics stack every perturbation draw of every sample into one call of a callable that takes
``sample``; one that does not is called once per draw with the batch in its original order,
so a per-sample baseline or groups it holds line up with the rows. The model sees the same
rows either way, but each call's fixed cost is paid ``n_samples`` times: with the default 20
draws of 64 rows, avg_sensitivity took 4-7x the wall time of one call for saliency and
kernel_shap (rev39b). A callable with a ``sample`` parameter (index per-sample things with it)
gets the single call.
:func:`tribute.evaluate` builds such a callable from the attribution's method and parameters
when none is given.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, user_stacklevel
from ..games.base import Game
from ..models.tabular import from_polars
from ._similarity import attribution_similarity, check_similarity, constant_rows
from ._util import (
    HEAVY_TAILED_MIN_SAMPLES,
    accepts,
    call_explain,
    check_int,
    draw_stderr,
    flat_of,
    shared_draw_unknown,
    targets_rows,
    torch_generator,
)
from .base import Scores, check_attribution, register_metric

__all__ = ["avg_sensitivity", "max_sensitivity", "perturb_inputs", "stability"]

_YEH = "Yeh et al. (2019), On the (In)fidelity and Sensitivity of Explanations"


def _parts(inputs: Any) -> tuple[list[Any], bool]:
    multi = isinstance(inputs, (tuple, list))
    return (list(inputs) if multi else [inputs]), multi


def _is_frame(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, "dtypes") and hasattr(x, "columns")


def _float_columns(df: Any) -> list[int]:
    """Positions of the float columns (names may repeat)."""
    import pandas as pd

    return [j for j, dt in enumerate(df.dtypes) if pd.api.types.is_float_dtype(dt)]


def _is_float(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype.is_floating_point
    if _is_frame(x):
        return bool(_float_columns(x))
    return bool(np.issubdtype(np.asarray(x).dtype, np.floating))


def _noise(g: torch.Generator, n_draws: int, batch: int, shape: tuple[int, ...], radius: float) -> torch.Tensor:
    """``n_draws * batch x *shape`` float64 noise, draw ``k`` shared by every sample."""
    noise = (torch.rand(n_draws, 1, *shape, generator=g, dtype=torch.float64) * 2 - 1) * float(radius)
    return noise.expand(n_draws, batch, *shape).reshape(n_draws * batch, *shape)


def perturb_inputs(inputs: Any, radius: float, n_draws: int, seed: int) -> tuple[Any, np.ndarray]:
    """Stack ``n_draws`` uniform L-infinity perturbations of every sample along the batch axis.

    Draw ``k`` adds the same noise ``U(-radius, radius)^shape`` to every sample (common random
    numbers, so a sample's result does not depend on the batch). Row ``k * B + b`` is sample
    ``b`` under draw ``k``. Integer inputs (token ids) are repeated unperturbed. A pandas
    DataFrame stays a DataFrame (columns, dtypes and their order kept, index renumbered): its
    float columns are perturbed, the others (categories, strings, integer codes) repeated as
    they are; with only float columns it gets the noise a float array of its shape would.

    Returns:
        ``(stacked inputs in the user's framework, sample index of each row)``.
    """
    parts, multi = _parts(inputs)
    parts = [from_polars(p) for p in parts]  # a polars table is perturbed as the pandas one
    if not any(_is_float(p) for p in parts):
        raise InputError(
            "sensitivity needs real-valued inputs to perturb; these have none (integer token ids, "
            "or a table without a float column). Explain float features, or use another metric.")
    g = torch_generator(seed)
    out: list[Any] = []
    batch = int(parts[0].shape[0])
    for p in parts:
        if _is_frame(p):
            import pandas as pd

            rep_df = pd.concat([p] * n_draws, ignore_index=True)
            cols = _float_columns(p)
            if cols:
                noise = _noise(g, n_draws, batch, (len(cols),), radius).numpy()
                for j, pos in enumerate(cols):
                    col = rep_df.iloc[:, pos]
                    if isinstance(col.dtype, np.dtype):  # noise rounded as a float array's is
                        vals = col.to_numpy() + noise[:, j].astype(col.dtype)
                    else:  # nullable Float64, pyarrow, sparse: through float64, NA kept
                        vals = col.to_numpy(dtype=np.float64, na_value=np.nan) + noise[:, j]
                    rep_df.isetitem(pos, pd.Series(vals, index=rep_df.index).astype(col.dtype))
            out.append(rep_df)
            continue
        is_t = isinstance(p, torch.Tensor)
        t = p.detach() if is_t else torch.from_numpy(np.array(p))  # a copy: never read-only
        rep = t.repeat(n_draws, *([1] * (t.ndim - 1)))
        if _is_float(p):
            rep = rep + _noise(g, n_draws, batch, tuple(t.shape[1:]), radius).to(
                device=rep.device, dtype=rep.dtype)
        out.append(rep if is_t else rep.numpy())
    sample = np.tile(np.arange(batch), n_draws)
    return (tuple(out) if multi else out[0]), sample


def _sensitivity(game: Game, attr: Attribution, explain: Callable[..., Any], inputs: Any,
                 radius: float, n_samples: int, seed: int, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    flat = check_attribution(game, attr, name)
    if explain is None:
        raise InputError(f"metric {name!r} needs explain=callable (inputs -> Attribution).")
    if inputs is None:
        raise InputError(f"metric {name!r} needs inputs=... (the explained inputs).")
    k = check_int(n_samples, "n_samples")
    number = isinstance(radius, (int, float, np.integer, np.floating)) and not isinstance(
        radius, (bool, np.bool_))
    if not (number and np.isfinite(radius) and radius > 0):  # np.float32(0.1) was refused
        raise InputError(f"radius={radius!r} must be a positive number (L-infinity radius).")
    b, t, n = flat.shape
    stacked, sample = perturb_inputs(inputs, radius, k, seed)
    held = _held_columns(inputs)
    numeric = [c for c, numeric in held if numeric]
    if numeric:
        warnings.warn(
            f"metric {name!r}: the integer columns {numeric[:8]}{' ...' if len(numeric) > 8 else ''} "
            "are not perturbed (only float columns are; integers may be codes or counts). Cast "
            "them to float to perturb them too; extra['not_perturbed'] lists every column held "
            "fixed.", UserWarning, stacklevel=user_stacklevel())
    if accepts(explain, "sample", var_keyword=False):
        rows_tg = targets_rows(attr, sample)
        new = call_explain(explain, stacked, metric=name, target=rows_tg, sample=sample)
        pf = flat_of(new, k * b, t, n, name, "the explain callable",
                     targets=rows_tg).reshape(k, b, t, n)
        calls = 1
    else:
        # a callable that cannot be told which sample a row comes from explains each draw as
        # the original batch, row for row: one call on all k * b rows handed a per-sample
        # baseline it holds (``lambda x, **kw: tribute.explain(model, x, baseline=B, **kw)``)
        # b rows for k * b inputs, which explain read as a background set: avg_sensitivity
        # 0.82 where the method's own callable gave 0.077 (small39)
        one = targets_rows(attr, np.arange(b))
        pf = np.stack([flat_of(call_explain(explain, _rows(stacked, d * b, (d + 1) * b), metric=name,
                                            target=one), b, t, n, name, "the explain callable",
                               targets=one)
                       for d in range(k)])
        calls = k
    num = np.linalg.norm(pf - flat[None], axis=-1)  # K x B x T
    den = np.linalg.norm(flat, axis=-1)[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(den > 0, num / den, np.nan)
    sens = np.moveaxis(sens, 0, -1)  # B x T x K
    extra = {"per_draw": sens if attr.layout.multi_target else sens[:, 0],
             "explain_calls": calls, "explain_rows": k * b}
    if held:
        extra["not_perturbed"] = [c for c, _ in held]
    return sens, extra


def _rows(stacked: Any, lo: int, hi: int) -> Any:
    """Rows ``[lo, hi)`` of what :func:`perturb_inputs` stacked (every part; tables renumbered)."""
    parts, multi = _parts(stacked)
    out = [p.iloc[lo:hi].reset_index(drop=True) if _is_frame(p) else p[lo:hi] for p in parts]
    return tuple(out) if multi else out[0]


def _held_columns(inputs: Any) -> list[tuple[Any, bool]]:
    """``(name, is_numeric)`` of the DataFrame columns :func:`perturb_inputs` holds fixed (every
    column that is not float: integers, booleans, categories, text)."""
    out: list[tuple[Any, bool]] = []
    for p in _parts(inputs)[0]:
        p = from_polars(p)
        if _is_frame(p):
            import pandas as pd

            floats = set(_float_columns(p))
            out += [(c, bool(pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)))
                    for j, (c, dt) in enumerate(p.dtypes.items()) if j not in floats]
    return out


@register_metric(name="max_sensitivity", higher_is_better=False, category="robustness",
                 needs=("explain", "inputs"), games=("feature",), paper=_YEH,
                 reads_values=False)
def max_sensitivity(game: Game, attr: Attribution, *, explain: Callable[..., Any],
                    inputs: Any, radius: float = 0.2, n_samples: int = 10,
                    seed: int = 0) -> Scores:
    """Max-sensitivity: the largest relative change of the credits under small input noise.

    ``max_k ||phi(x + e_k) - phi(x)|| / ||phi(x)||`` with ``e_k ~ U(-radius, radius)`` per
    element (L-infinity ball), norms over players (Frobenius). All ``n_samples`` draws of all
    samples are stacked along the batch axis and re-explained in ONE call of ``explain`` (one
    call per draw for a callable without a ``sample`` parameter; see the module docstring).
    Lower is better. NaN for an all-zero original attribution. The standard error is NaN with
    a warning: the draws are shared by every sample, and the noise of a maximum over one set
    of them cannot be estimated (the spread over samples alone covered the expectation in
    0.60-0.82 of runs at 200 samples); ``extra["stderr_samples"]`` is that spread, for this
    ``seed`` only.

    Args:
        explain: ``explain(inputs) -> Attribution`` (see the module docstring).
        inputs: the inputs the attribution explains.
        radius: L-infinity radius of the uniform noise, in input units. default=0.2.
        n_samples: perturbation draws per sample. default=10.
        seed: seed of the noise. default=0.

    ``extra``: ``per_draw`` (``batch x n_samples`` relative changes).

    Against Quantus' ``MaxSensitivity``: the same number as Quantus with its defaults
    (``normalise=False``, ``abs=False``, Frobenius norms, ``return_nan_when_prediction_changes
    =False``) when it is given the same noise draws; Quantus draws independent noise for every
    sample (global RNG) and calls the explainer once per draw.

    Reference: Yeh et al. (2019), "On the (In)fidelity and Sensitivity of Explanations" (the
    normalisation by ``||phi(x)||`` follows Quantus' default).
    """
    sens, extra = _sensitivity(game, attr, explain, inputs, radius, n_samples, seed,
                               "max_sensitivity")
    extra.update(shared_draw_unknown(
        f"the maximum over one set of {sens.shape[-1]} perturbations shared by "
        "every sample"))
    with np.errstate(invalid="ignore"):
        return Scores(np.max(sens, axis=-1), extra)


@register_metric(name="avg_sensitivity", higher_is_better=False, category="robustness",
                 needs=("explain", "inputs"), games=("feature",), paper=_YEH,
                 reads_values=False)
def avg_sensitivity(game: Game, attr: Attribution, *, explain: Callable[..., Any],
                    inputs: Any, radius: float = 0.2, n_samples: int = 20,
                    seed: int = 0) -> Scores:
    """Avg-sensitivity: the mean relative change of the credits under small input noise.

    As :func:`max_sensitivity` with the mean over draws instead of the maximum. Lower is
    better. Every sample shares the draws (common random numbers), so their noise is a part of
    the standard error: a delete-a-group jackknife over the draws
    (:func:`~tribute.metrics._util.draw_stderr`; NaN with a warning below 20 draws). Without
    it the 95% interval covered the expectation in 0.59-0.79 of runs at 50-200 samples on a
    tanh MLP; with it 0.90-0.95. The per-sample ratios divide by the credits' norm, which is
    near 0 where a tanh saturates, so they are heavy-tailed: on such a network ``ci95``
    covered 0.85 at 50 samples and 0.89 at 200 (300 runs each; the standard error itself was
    right on average, RMS 0.39 against a spread of 0.37). ``ci95`` therefore asks for 200
    samples, as ``infidelity`` does (NaN with a warning below), and stays a little
    over-confident on such networks even there.

    Args:
        explain: ``explain(inputs) -> Attribution``.
        inputs: the inputs the attribution explains.
        radius: L-infinity radius of the uniform noise, in input units. default=0.2.
        n_samples: perturbation draws per sample (20 or more for a standard error).
            default=20.
        seed: seed of the noise. default=0.

    Against Quantus' ``AvgSensitivity``: as for :func:`max_sensitivity` (equal on the same
    draws; Quantus draws them per sample).

    Reference: Yeh et al. (2019), "On the (In)fidelity and Sensitivity of Explanations".
    """
    sens, extra = _sensitivity(game, attr, explain, inputs, radius, n_samples, seed,
                               "avg_sensitivity")
    # every sample shares the draws: their noise is a part of the standard error of its own
    extra.update(draw_stderr(lambda i: np.mean(sens[..., i], axis=-1), sens.shape[-1], "n_samples"))
    extra["min_samples_ci95"] = HEAVY_TAILED_MIN_SAMPLES  # heavy-tailed ratios (see above)
    return Scores(np.mean(sens, axis=-1), extra)


def _as_list(value: Any, name: str, example: str) -> list[Any]:
    """``value`` as a list, read once (an iterator or generator is consumed by reading it).

    A random generator (``np.random.default_rng()``, ``torch.Generator``) is refused: it says
    neither how many seeds nor which; draw them first.
    """
    if isinstance(value, (np.random.Generator, np.random.RandomState, torch.Generator)):
        raise InputError(
            f"{name}={type(value).__name__}(...) is a random generator, not a list of {name}: it says neither how "
            f"many nor which. Draw them first, e.g. seeds=[int(s) for s in rng.integers(0, 2**31, "
            f"5)], or pass a list such as {example}.")
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        return value  # type: ignore[no-any-return]  # refused by the caller's own check
    return list(value)


def _same_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two keyword dicts hold the same settings (arrays compared by value)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        try:
            if isinstance(x, (np.ndarray, torch.Tensor)) or isinstance(y, (np.ndarray, torch.Tensor)):
                if not np.array_equal(np.asarray(x), np.asarray(y)):
                    return False
            elif not bool(x == y):
                return False
        except Exception:  # values that cannot be compared: not known to be the same
            return False
    return True


def _refuse_repeated_configs(grid: Sequence[dict[str, Any]]) -> None:
    """Refuse a ``param_grid`` that lists one configuration twice: the pair compares an
    attribution with itself, a similarity of 1 that inflates the mean (small39: two identical
    dicts scored 1.0 for a stochastic method, as repeated seeds did before stop 38)."""
    for j in range(len(grid)):
        for i in range(j):
            if _same_config(grid[i], grid[j]):
                raise InputError(
                    f"param_grid lists the configuration {grid[j]!r} twice (entries {i} and {j}); "
                    "the pair would compare an attribution with itself (a similarity of 1). Give "
                    "distinct configurations, e.g. vary the seed too: "
                    "[{'n_samples': 10, 'seed': 0}, {'n_samples': 10, 'seed': 1}].")


@register_metric(
    name="stability", higher_is_better=True, category="robustness",
    needs=("explain", "inputs"), games=("feature", "component", "data"), reads_values=False,
    paper="Bansal, Agarwal & Nguyen (2020), SAM: The Sensitivity of Attribution Methods to "
          "Hyperparameters",
)
def stability(game: Game, attr: Attribution, *, explain: Callable[..., Any], inputs: Any,
              seeds: Sequence[int] = (0, 1, 2, 3, 4),
              param_grid: Sequence[dict[str, Any]] | None = None,
              similarity: str = "spearman", absolute: bool = False,
              channel_axis: int | None = None) -> Scores:
    """Stability across seeds or hyperparameters: mean pairwise similarity of re-explanations.

    Re-explains the inputs once per configuration — ``explain(inputs, seed=s)`` for each of
    ``seeds``, or ``explain(inputs, **params)`` for each dict of ``param_grid`` — and averages,
    per sample, the similarity of every pair of attributions. Spearman rank correlation of the
    credits by default (``similarity="ssim"`` for image maps). 1 means the method gives the
    same ranking whatever the seed/hyperparameter; deterministic methods score 1 across seeds.
    Higher is better. The explain callable must accept the keywords used.

    Args:
        explain: ``explain(inputs, **overrides) -> Attribution``.
        inputs: the inputs the attribution explains.
        seeds: seeds to compare (ignored when ``param_grid`` is given). default=(0, 1, 2, 3, 4).
        param_grid: list of keyword dicts to compare instead of seeds. default=None.
        similarity: ``"spearman"`` or ``"ssim"``. default="spearman".
        absolute: compare ``|phi|``. default=False.
        channel_axis: for ``similarity="ssim"``: ``1`` (or None) for ``(batch, C, H, W)`` /
            ``(batch, H, W)`` images, ``-1`` for channels-last ``(batch, H, W, C)`` ones, whose
            maps sum the last axis. None warns where a shape looks channels-last. default=None.

    A constant re-explanation is scored 0 against a non-constant one and 1 against another
    constant one (it was NaN and left out of the mean, which then averaged the other pairs
    only); ``extra["n_constant"]`` counts the (pair, sample) similarities scored so. A NaN
    similarity (credits that are not finite) makes the sample's score NaN
    (``extra["n_nan_similarity"]``).

    ``extra``: ``pairwise`` (``batch x pairs``), ``configs``, ``n_constant``,
    ``n_nan_similarity``.

    Reference: Bansal, Agarwal & Nguyen (2020), "SAM: The Sensitivity of Attribution Methods to
    Hyperparameters" (CVPR).
    """
    flat = check_attribution(game, attr, "stability")
    if explain is None or inputs is None:
        raise InputError("metric 'stability' needs explain=callable and inputs=....")
    absolute = check_similarity(similarity, absolute, channel_axis, attr)
    if param_grid is not None and not isinstance(param_grid, dict):
        param_grid = _as_list(param_grid, "param_grid", "[{'n_samples': 10}, {'n_samples': 50}]")
    if param_grid is not None and (isinstance(param_grid, dict) or not all(
            isinstance(p, dict) for p in param_grid)):
        raise InputError(
            f"param_grid={param_grid!r} must be a list of keyword dicts, one per configuration, "
            "e.g. [{'n_samples': 10}, {'n_samples': 50}].")
    if param_grid is not None:
        _refuse_repeated_configs(param_grid)
    if param_grid is None:
        # a generator or iterator of seeds was consumed by the first check and then read as
        # empty ("needs at least two seeds", small39): read it once, here
        seeds = _as_list(seeds, "seeds", "(0, 1, 2, 3, 4)")
        if not isinstance(seeds, list) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
            raise InputError(f"seeds={seeds!r} must be a list of int seeds, e.g. (0, 1, 2, 3, 4).")
        if len({int(s) for s in seeds}) < len(seeds):
            # a repeated seed compares an attribution with itself: a similarity of 1 that
            # inflates the mean (seeds=[0, 0] scored 1.0 for a stochastic method)
            raise InputError(f"seeds={seeds!r} repeats a seed; give distinct seeds.")
    configs: list[dict[str, Any]] = (
        [dict(p) for p in param_grid] if param_grid is not None
        else [{"seed": int(s)} for s in seeds]
    )
    if len(configs) < 2:
        raise InputError("metric 'stability' needs at least two seeds or parameter dicts.")
    for key in {k for c in configs for k in c}:
        if not accepts(explain, key):
            raise InputError(
                f"metric 'stability': the explain callable does not accept {key}=...; use e.g. "
                "explain=lambda x, **kw: tribute.explain(model, x, method=..., **kw)."
            )
    b, t, n = flat.shape
    sample = np.arange(b)
    outs = []
    for cfg in configs:
        rows_tg = targets_rows(attr, sample)
        new = call_explain(explain, inputs, metric="stability", target=rows_tg, sample=sample, **cfg)
        outs.append(flat_of(new, b, t, n, "stability", f"explain(**{cfg})", targets=rows_tg))
    pairs = [(i, j) for i in range(len(outs)) for j in range(i + 1, len(outs))]
    sims = np.stack([attribution_similarity(attr, outs[i], outs[j], similarity, absolute, channel_axis)
                     for i, j in pairs], axis=-1)  # B x T x P
    n_constant = sum(int(constant_rows(attr, outs[i], outs[j], similarity, absolute, channel_axis).sum())
                     for i, j in pairs)
    # every pair counts: a NaN similarity makes the sample's score NaN instead of being skipped
    score = sims.mean(-1)
    return Scores(score, {"pairwise": sims if attr.layout.multi_target else sims[:, 0],
                          "configs": configs, "explain_calls": len(configs),
                          "n_constant": n_constant, "n_nan_similarity": int(np.isnan(sims).sum())})
