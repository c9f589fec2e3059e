"""The public entry points of the metrics: :func:`evaluate`, :func:`metrics`, :class:`Blur`."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..attribution import Attribution
from ..engine.progress import check_progress
from ..errors import InputError, user_stacklevel
from ..games.build import (
    PlayerSet,
    build_game,
    check_forward_arguments,
    check_text_baseline,
    labels_to_columns,
)
from ..games.features import DEFAULT_BASELINE, UNREAD_BASELINE, Background, PerSample
from ..games.sae import digest_memo
from ..methods.base import get_method
from ..methods.explain import explain as _explain
from ..models import ModelAdapter, as_model
from ..models.tabular import from_polars
from ..params import check_seed
from ..targets import TargetLike, plain_target
from ._text_groups import (
    evaluate_by_word_count,
    group_players,
    recorded_spans,
    recorded_specials,
    text_players_mismatch,
    word_counts,
)
from ._util import channels_last, warn_if_channels_last
from .base import (
    MetricInfo,
    MetricResult,
    differing_targets,
    get_metric,
    metric_registry,
    player_kind_mismatch,
    recorded_sites_match,
)
from .ground_truth import check_max_players

__all__ = ["BaselineMismatchWarning", "Blur", "OutputMismatchWarning", "blur", "columns_to_labels",
           "credit_units_problem", "default_explainer", "evaluate", "metrics"]


@dataclass(frozen=True)
class Blur:
    """Removal by a Gaussian-blurred copy of each input (Petsiuk et al. 2018's deletion).

    Pass ``baseline=tribute.metrics.Blur(sigma=...)`` (or ``baseline="blur"`` for the default)
    to :func:`evaluate`: each sample's baseline becomes its own blurred copy, so removed pixels
    lose detail but keep their local colour.

    Attributes:
        sigma: standard deviation of the Gaussian in pixels. default=None (``max(H, W) / 8``,
            at least 1).
        truncate: the kernel extends ``ceil(truncate * sigma)`` pixels each side. default=3.0.
        channel_axis: the batched images' channel axis, as CRAFT's: ``1`` (or None) for
            ``(batch, C, H, W)`` / ``(batch, H, W)``, ``-1`` for channels-last
            ``(batch, H, W, C)``, blurred per channel over ``(H, W)``. None warns where a shape
            looks channels-last. default=None.
    """

    sigma: float | None = None
    truncate: float = 3.0
    channel_axis: int | None = None


def _gauss(sigma: float, truncate: float, dtype: torch.dtype) -> torch.Tensor:
    r = max(1, math.ceil(truncate * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


#: Largest kernel radius (pixels) :func:`blur` builds; a wider Gaussian is flat on any image.
_MAX_BLUR_RADIUS = 10**7


def _finite_positive(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)) and math.isfinite(float(v)) and float(v) > 0


def _replicate_blur_matrix(n: int, k: torch.Tensor) -> torch.Tensor:
    """``n x n`` matrix of the 1-D convolution with kernel ``k`` (length ``2r + 1``) under
    replicate padding: ``A[i, j] = k[j - i + r]``, plus the kernel's mass beyond the left edge
    on ``j = 0`` and beyond the right edge on ``j = n - 1``."""
    r = (k.numel() - 1) // 2
    cdf = torch.cat([torch.zeros(1, dtype=k.dtype), torch.cumsum(k, 0)])  # cdf[m] = sum k[:m]
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    off = j - i
    a = torch.where(off.abs() <= r, k[(off + r).clamp(0, 2 * r)], torch.zeros((), dtype=k.dtype))
    rows = torch.arange(n)
    a[:, 0] += cdf[(r - rows).clamp(min=0)]  # offsets -r .. -i-1 land on pixel 0
    a[:, n - 1] += cdf[-1] - cdf[(n + r - rows).clamp(max=2 * r + 1)]  # offsets n-i .. r on n-1
    return a


def blur(inputs: Any, spec: Blur | None = None) -> Any:
    """Gaussian-blur image inputs over their last two axes (batch first; same framework back).

    A separable convolution with replicate padding, per channel. Inputs need per-sample shape
    ``(H, W)`` or ``(C, H, W)``, or ``(H, W, C)`` with ``Blur(channel_axis=-1)``.
    """
    spec = spec or Blur()
    multi = isinstance(inputs, (tuple, list))
    parts = list(inputs) if multi else [inputs]
    out: list[Any] = []
    for i, p in enumerate(parts):
        is_t = isinstance(p, torch.Tensor)
        t = p.detach() if is_t else torch.from_numpy(np.ascontiguousarray(np.asarray(p)))
        if t.ndim < 3 or not t.dtype.is_floating_point:
            raise InputError(
                f"baseline='blur' needs real-valued image inputs (batch, H, W) or (batch, C, H, "
                f"W); input {i} has shape {tuple(t.shape)} and dtype {t.dtype}."
            )
        per_sample = tuple(int(d) for d in t.shape[1:])
        if channels_last(spec.channel_axis, "Blur", [per_sample]):
            t = t.movedim(-1, 1)  # (batch, C, H, W) views; moved back below (rev43m)
            back = True
        else:
            back = False
            if spec.channel_axis is None:
                warn_if_channels_last(per_sample, "baseline='blur'",
                                      fix="Blur(channel_axis=-1)")
        h, w = int(t.shape[-2]), int(t.shape[-1])
        sigma = spec.sigma if spec.sigma is not None else max(1.0, max(h, w) / 8)
        if not _finite_positive(sigma):
            raise InputError(f"Blur(sigma={spec.sigma!r}) must be a finite positive number (pixels).")
        if not _finite_positive(spec.truncate):
            raise InputError(f"Blur(truncate={spec.truncate!r}) must be a finite positive number.")
        if math.ceil(float(spec.truncate) * float(sigma)) > _MAX_BLUR_RADIUS:
            raise InputError(
                f"Blur(sigma={sigma!r}, truncate={spec.truncate!r}) has a kernel radius above "
                f"{_MAX_BLUR_RADIUS} pixels, far wider than the {h}x{w} image (replicate padding "
                "then gives almost all weight to the edge pixels); pass a smaller sigma, or a "
                "constant baseline such as the image's mean.")
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
        k = _gauss(float(sigma), float(spec.truncate), dtype)
        r = (k.numel() - 1) // 2
        x = t.to(dtype).reshape(-1, 1, h, w)
        if r < max(h, w):
            k = k.to(t.device)
            x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.reshape(1, 1, 1, -1))
            x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.reshape(1, 1, -1, 1))
        else:
            # a kernel wider than the image: replicate padding puts each tail's weight on the
            # edge pixel, so the blur is an h x h and a w x w matrix (aud43m: sigma=1e6 padded
            # every row by 3e6 pixels, a 28 GB allocation for 2 small images)
            k = _gauss(float(sigma), float(spec.truncate), torch.float64)
            a_h = _replicate_blur_matrix(h, k).to(device=t.device, dtype=dtype)
            a_w = _replicate_blur_matrix(w, k).to(device=t.device, dtype=dtype)
            x = a_h @ x @ a_w.T
        x = x.reshape(t.shape).to(t.dtype)
        if back:
            x = x.movedim(1, -1).contiguous()
        out.append(x if is_t else x.numpy())
    return tuple(out) if multi else out[0]


def metrics() -> dict[str, MetricInfo]:
    """The metric registry: name -> :class:`MetricInfo` (category, direction, needs, paper)."""
    return {name: m.info for name, m in metric_registry().items()}


class BaselineMismatchWarning(UserWarning):
    """:func:`evaluate` scores an attribution under its default zero baseline while the
    attribution records other baselines, and its ``base_values`` cannot tell whether they are
    the same in another form (methods that report none: ``feature_ablation``, ``saliency``...)."""


class OutputMismatchWarning(UserWarning):
    """:func:`evaluate` got inputs (or a model) whose explained output differs from the one the
    attribution recorded (``attr.full_values``): the credits were computed for other inputs,
    e.g. another batch of a shuffled loader, so the score is not about them."""


# ------------------------------------------------------------- default explain
def columns_to_labels(adapter: Any, target: Any) -> Any:
    """Output columns -> the class labels ``tribute.explain`` reads them as (the inverse of
    :func:`tribute.games.build.labels_to_columns`).

    For a classifier whose numeric ``classes_`` are not ``0..K-1`` (``classes_ = [1, 2, 3]``),
    ``tribute.explain`` reads an integer target as a class *label*; an attribution's ``targets``
    are output *columns*. A caller that re-explains for the attribution's targets must hand
    over ``classes_[column]``, or it explains another class (column 1 read as label 1 is
    column 0). Whether integers are labels is asked of ``labels_to_columns`` itself (it maps
    ``classes_`` to ``0..K-1`` exactly when it reads integers as labels), so the two stay
    inverse. Other models and non-integer targets (None, ``"predicted"``, callables) come
    back unchanged.
    """
    if target is None or isinstance(target, (str, bool, np.bool_)) or (
            callable(target) and not isinstance(target, (np.ndarray, torch.Tensor))):
        return target
    classes = getattr(getattr(adapter, "estimator", None), "classes_", None)
    if classes is None:
        return target
    labels = np.asarray(classes)
    if labels.ndim == 1 and labels.size and all(
            isinstance(v, str) and v.strip().lstrip("+-").isdecimal() for v in labels.tolist()):
        # string classes_ of integers (['1', '10', '2']): explain reads an int as a column but
        # warns that it is not that class (warn_integer_string_labels); the columns' own label
        # strings name the same columns without the warning (3-5 warnings per stability call)
        labels = labels.astype(str)
    elif labels.ndim != 1 or labels.dtype.kind not in "iuf":
        return target
    else:
        as_cols = labels_to_columns(adapter, labels)
        k = labels.shape[0]
        if not (isinstance(as_cols, np.ndarray) and np.array_equal(as_cols, np.arange(k))) or \
                np.array_equal(labels, np.arange(k)):
            return target  # integers are output columns for this model
    if isinstance(target, (int, np.integer)):
        return labels[int(target)].item()
    if isinstance(target, (list, tuple)) and all(
            isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in target):
        return [labels[int(t)].item() for t in target]
    if isinstance(target, torch.Tensor) and not target.dtype.is_floating_point \
            and target.dtype != torch.bool:
        return labels[target.detach().cpu().numpy()]
    if isinstance(target, np.ndarray) and target.dtype.kind in "iu":
        return labels[target]
    return target


def _is_table(value: Any) -> bool:
    """A pandas DataFrame or Series (read by position, like an array)."""
    return type(value).__module__.startswith("pandas") and hasattr(value, "iloc")


def _index_rows(value: Any, sample: np.ndarray | None, batch: int) -> Any:
    """``value[sample]`` for per-sample arrays/tensors/tables (leading axis == batch), else as is."""
    if sample is None:
        return value
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value[torch.as_tensor(sample, device=value.device)]
    if isinstance(value, np.ndarray) and value.ndim > 0 and value.shape[0] == batch:
        return value[sample]
    if _is_table(value) and len(value) == batch:
        return value.iloc[sample].reset_index(drop=True)
    if isinstance(value, tuple):
        return tuple(_index_rows(v, sample, batch) for v in value)
    return value


def _rows_shape(value: Any) -> tuple[int, ...] | None:
    """Shape of an array, tensor or table, else None."""
    if isinstance(value, (np.ndarray, torch.Tensor)) or _is_table(value):
        return tuple(int(s) for s in value.shape)
    return None


def _part_reading(b: Any, x: Any) -> str:
    """How the feature game reads one input's baseline ``b`` next to that input ``x``:
    ``"per_sample"``, ``"background"`` (a plain array of ``M`` rows, ``M`` not the batch) or
    ``"other"`` (a scalar, one row, a :class:`Background`)."""
    if isinstance(b, PerSample):
        return "per_sample"
    bs, xs = _rows_shape(b), _rows_shape(x)
    if bs is None or xs is None or len(bs) != len(xs) or bs[1:] != xs[1:]:
        return "other"
    if bs[0] == xs[0]:
        return "per_sample"
    return "background" if bs[0] > 1 else "other"


def _baseline_for_rows(baseline: Any, inputs: Any, batch: int) -> Callable[[np.ndarray | None], Any]:
    """``base(sample)``: the baseline for re-explained rows, read part by part as the original
    game read it: per-sample parts indexed by ``sample`` and marked :class:`PerSample`,
    background sets (plain arrays of ``M`` rows) wrapped in :class:`Background` (``M`` rows
    next to ``M`` re-explained rows stay a set; the game would read them one per row), anything
    else (scalars, one row, a :class:`Background`) as given."""
    baseline = from_polars(baseline)
    if isinstance(baseline, Background):
        return lambda sample: baseline
    multi = isinstance(inputs, (tuple, list))
    parts = [from_polars(p) for p in (list(inputs) if multi else [inputs])]
    marked = isinstance(baseline, PerSample)
    whole = from_polars(baseline.data) if marked else baseline
    split = isinstance(whole, tuple) or (multi and isinstance(whole, list))  # one per input
    bases = [from_polars(b) for b in whole] if split else [whole] * len(parts)
    readings = ["per_sample" if marked else _part_reading(b, x) for b, x in zip(bases, parts)]
    bases = [b.data if isinstance(b, PerSample) else b for b in bases]
    if all(r == "other" for r in readings):
        return lambda sample: baseline

    def pick(sample: np.ndarray | None) -> Any:
        out = [PerSample(_index_rows(b, sample, batch)) if r == "per_sample" else
               Background(b) if r == "background" else b
               for b, r in zip(bases, readings)]
        return tuple(out) if multi else out[0]

    return pick


def default_explainer(
    model: Any,
    attr: Attribution,
    inputs: Any,
    *,
    target: TargetLike = None,
    baseline: Any = 0.0,
    groups: Any = None,
    output: str = "raw",
    batch_size: int | None = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    players: PlayerSet | None = None,
    ablation: Any = None,
    text: dict[str, Any] | None = None,
) -> tuple[Callable[..., Attribution], Callable[..., Attribution]]:
    """Explain callables that re-run ``attr``'s method with ``attr``'s parameters.

    ``players`` and ``ablation`` are the player set (components, training data) and the
    component ablation the attribution was explained with: without them the re-explanation
    credited the *input features*, and with as many features as components
    ``model_randomisation`` and ``stability`` compared feature credits with component credits.
    ``text`` holds the text settings given to :func:`evaluate` (``tokenizer``, ``removal``,
    ``pair``): texts are re-explained with them (without them a batch of texts crashed on
    ``inputs.shape``, and the word game was never rebuilt).

    Returns ``(explain(inputs, *, target=None, sample=None, **overrides),
    model_explain(model, inputs, *, target=None, sample=None))``. ``sample`` (original sample
    of each row) indexes per-sample baselines, groups and forward arguments; ``target`` (per
    row) replaces the evaluated target; ``overrides`` replace method parameters or the seed.
    """
    # rev44o: checked before the rows are indexed (a bare tensor was split row by row)
    check_forward_arguments(forward_args, forward_kwargs)
    cls = get_method(attr.method)
    hp_names = set(cls.defaults())
    params = dict(attr.params)
    budget = params.pop("budget", None)
    seed = params.pop("seed", 0)
    params.pop("output", None)
    hparams = {k: v for k, v in params.items() if k in hp_names}
    text = dict(text or {})
    if "tokenizer" in text:  # texts: a str, or a list of texts (or of sentence pairs)
        batch = 1 if isinstance(inputs, str) else len(inputs)
        # texts remove words by removal=, never by a baseline: evaluate's plain 0.0 (no baseline
        # given) goes on as explain's default, which a text call takes (a given 0 is refused)
        text_base = DEFAULT_BASELINE if isinstance(baseline, (int, float)) and float(baseline) == 0.0 \
            else baseline
        base_for: Callable[[np.ndarray | None], Any] = lambda sample: text_base  # noqa: E731
    else:
        batch = int((inputs[0] if isinstance(inputs, (tuple, list)) else inputs).shape[0])
        base_for = _baseline_for_rows(baseline, inputs, batch)
    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    framework = "torch" if isinstance(first, torch.Tensor) else "numpy"

    def run(m: Any, x: Any, target_rows: Any, sample: np.ndarray | None,
            overrides: dict[str, Any]) -> Attribution:
        if isinstance(baseline, Blur):
            base: Any = blur(x, baseline)
        else:
            base = base_for(sample)
        tg = target_rows if target_rows is not None else _index_rows(target, sample, batch)
        # tg holds output columns (the attribution's targets, or evaluate's target after
        # labels_to_columns); explain reads integer targets of a classifier with classes_
        # other than 0..K-1 as labels, so hand it the labels of those columns
        tg = columns_to_labels(as_model(m, framework), tg)
        grp = groups
        if isinstance(groups, (np.ndarray, torch.Tensor, tuple)) and sample is not None:
            grp = _index_rows(groups, sample, batch) if _per_sample_groups(groups, inputs) else groups
        fa = None if forward_args is None else tuple(_index_rows(a, sample, batch) for a in forward_args)
        fk = None if forward_kwargs is None else {k: _index_rows(v, sample, batch)
                                                  for k, v in forward_kwargs.items()}
        kw = {**hparams, **{k: v for k, v in overrides.items() if k not in ("seed", "budget")}}
        use_budget = overrides.get("budget", budget)
        count = cls(**kw).budget_count()  # a count the budget sets (IG's steps)
        if count is not None and "budget" in overrides and count not in overrides:
            kw.pop(count, None)  # the recorded count came from the old budget: the new one sets it
        elif count is not None and count in overrides and "budget" not in overrides:
            use_budget = None  # the recorded budget only set the recorded count: the new count rules
        return _explain(m, x, method=attr.method, target=tg, baseline=base, groups=grp,
                        budget=use_budget, seed=overrides.get("seed", seed),
                        batch_size=batch_size, progress=False, output=output,
                        forward_args=fa, forward_kwargs=fk, players=players, ablation=ablation,
                        model_output=attr.params.get("model_output"), **text, **kw)

    def explain(x: Any, *, target: Any = None, sample: np.ndarray | None = None,
                **overrides: Any) -> Attribution:
        return run(model, x, target, sample, overrides)

    def model_explain(m: Any, x: Any, *, target: Any = None,
                      sample: np.ndarray | None = None) -> Attribution:
        return run(m, x, target, sample, {})

    return explain, model_explain


def _per_sample_groups(groups: Any, inputs: Any) -> bool:
    parts = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    gs = list(groups) if isinstance(groups, tuple) else [groups]
    return any(isinstance(g, (np.ndarray, torch.Tensor)) and g.ndim == x.ndim
               and g.shape[0] == x.shape[0] for g, x in zip(gs, parts))


# ------------------------------------------------------------------ evaluate
def _compare_base_values(attr: Attribution, game: Any) -> tuple[int, list[float], list[float]] | bool | None:
    """The attribution's ``base_values`` against this game's ``v(empty)`` (one evaluation per
    input): ``True`` when they agree, the first sample that differs as ``(i, theirs, ours)``,
    or ``None`` when they cannot tell (no ``base_values``, another size)."""
    if attr.base_values is None:
        return None
    mine = np.asarray(
        attr.base_values.detach().cpu().numpy() if isinstance(attr.base_values, torch.Tensor)
        else attr.base_values, dtype=np.float64)
    here = game.empty().numpy()
    if mine.size != here.size:
        return None
    mine = mine.reshape(here.shape)
    scale = np.maximum(np.maximum(np.abs(mine), np.abs(here)), 1e-12)
    bad = np.abs(mine - here) > 1e-5 * scale + 1e-9
    if not bad.any():
        return True
    i = int(np.flatnonzero(bad.any(axis=1))[0])
    return i, mine[i].tolist(), here[i].tolist()


def _digests(attr: Attribution, game: Any) -> tuple[str, str] | None:
    """``(recorded, this game's)`` baseline fingerprints when both exist and differ."""
    recorded = attr.params.get("baseline_digest")
    digest = getattr(game, "baseline_digest", None)
    here = digest() if callable(digest) else None
    if isinstance(recorded, str) and here is not None and recorded != here:
        return recorded, here
    return None


def _method_reads_baseline(attr: Attribution) -> bool:
    """Whether ``attr``'s method, with the parameters it ran with, read the baseline (True for
    a method not in the registry: an attribution built by hand is checked as before)."""
    try:
        cls = get_method(attr.method)
    except InputError:
        return True
    return cls.reads_baseline(dict(attr.params))


def _check_same_baseline(attr: Attribution, game: Any, metric: str) -> None:
    """Refuse to re-explain with a baseline other than the attribution's.

    The default explain callable re-runs the method with *this call's* baseline (0.0 unless
    given): an attribution computed with ``baseline=b`` would be compared with explanations
    for baseline 0, and a sensitivity of a deterministic method came out 8.3 instead of 0.
    Attributions that report ``base_values`` (v with every player removed, under their
    baseline) decide for one evaluation per input: this game's ``v(empty)`` must match them
    (the same baseline in another form, a per-sample table of zeros or float32 rows, is
    accepted). Without them, the fingerprint every attribution ``explain`` made on a feature
    game records, ``params["baseline_digest"]``, must equal this game's (methods without
    ``base_values``: feature_ablation, occlusion, saliency, ...).
    """
    if game.kind != "feature":
        return
    found = _compare_base_values(attr, game)
    if isinstance(found, tuple):
        i, mine, here = found
        raise InputError(
            f"metric {metric!r} re-explains the inputs with attr's method and this "
            "call's baseline, but the attribution was computed with another one: its "
            f"base_values (the output with every player removed) is {mine} for sample {i}, "
            f"while with baseline=... as given here it is {here}. Pass the baseline (or "
            "Background) the attribution was computed with, or an explain= callable."
        )
    differ = _digests(attr, game) if found is None else None
    if differ is not None:
        raise InputError(
            f"metric {metric!r} re-explains the inputs with attr's method and this call's "
            "baseline, but the attribution was computed with other baselines (its "
            f"params['baseline_digest'] is {differ[0]}, this call's is {differ[1]}). Pass the "
            "baseline (or Background) the attribution was computed with, or an explain= callable."
        )


def _check_default_baseline(attr: Attribution, game: Any, metric: str) -> None:
    """Refuse the default zero baseline for an attribution made with another baseline.

    ``evaluate``'s baseline defaults to 0.0 whatever ``explain`` was given: exact Shapley
    values for ``baseline=1`` scored a ``shapley_error`` of 1.28 (0 against their own game)
    and deletion removed features to zeros instead of the baseline they were credited
    against, silently. The fingerprint ``explain`` records (``params["baseline_digest"]``)
    tells that the baselines *may* differ: it also hashes their form (a per-sample table of
    zeros, float32 rows), so where the attribution reports ``base_values`` they decide, for
    one evaluation per input (this game's ``v(empty)`` must match them: refused otherwise,
    accepted if it does); without them a differing fingerprint only warns
    (:class:`BaselineMismatchWarning`). Attributions without a fingerprint (built by hand)
    are not checked.
    """
    if game.kind != "feature":
        return
    differ = _digests(attr, game)
    if differ is None:
        return
    fix = ("Pass the baseline (or Background) given to tribute.explain, or baseline=0.0 to score "
           "removal to zeros on purpose.")
    found = _compare_base_values(attr, game)
    if found is True:
        return  # the same baseline in another form (zeros_like(x), float32 rows)
    if isinstance(found, tuple):
        i, mine, zero = found
        raise InputError(
            f"metric {metric!r} removes players to this call's baseline, which defaults to "
            "0.0, but the attribution was computed with another one: its base_values (the "
            f"output with every player removed) is {mine} for sample {i}, with baseline 0.0 "
            f"it is {zero}, so the score would not be about the game the credits describe. "
            f"{fix}"
        )
    warnings.warn(
        f"metric {metric!r} removes players to this call's baseline, which defaults to 0.0, but "
        f"the attribution records other baselines (its params['baseline_digest'] is {differ[0]}, "
        f"0.0 gives {differ[1]}; the fingerprint also tells forms apart, e.g. a per-sample table "
        f"of zeros), so the score may not be about the game the credits describe. {fix}",
        BaselineMismatchWarning, stacklevel=user_stacklevel())


def _check_same_components(attr: Attribution, game: Any, metric: str) -> None:
    """Refuse component credits scored on other components of the same number (another
    layer's neurons, an SAE of the same name and width at another module): the metric would
    ablate units the credits are not about, silently. Compares what each site hooks
    (``params["component_sites"]``, recorded by ``explain``; the same module named by another
    path is the same), else, for attributions saved before that was recorded, player names."""
    recorded = attr.params.get("component_sites")
    keys = getattr(game, "site_keys", None)
    names_differ = bool(attr.player_names) and list(attr.player_names) != list(game.player_names)
    if recorded is not None and callable(keys):
        mine, here = [str(k) for k in recorded], keys()
        if mine == here or recorded_sites_match(mine, game):
            return  # the same units, perhaps named through another module path
        if not names_differ:
            j = next((i for i, (a, b) in enumerate(zip(mine, here)) if a != b), min(len(mine), len(here)))
            raise InputError(
                f"the attribution's component site {j} hooks {mine[j] if j < len(mine) else 'nothing'!r}, "
                f"but the players= given (of the same names) hook {here[j] if j < len(here) else 'nothing'!r}; "
                f"pass the component set the attribution was explained with to evaluate metric {metric!r}.")
    if names_differ:
        diff = next(j for j, (a, b) in enumerate(zip(attr.player_names, game.player_names)) if a != b)
        raise InputError(
            f"the attribution's player {diff} is component {attr.player_names[diff]!r}, but in the "
            f"players= given it is {game.player_names[diff]!r}; pass the component set the "
            f"attribution was explained with to evaluate metric {metric!r}.")


def _check_component_ablation(attr: Attribution, game: Any, metric: str) -> None:
    """Refuse component credits made under another ablation than this call's game.

    ``evaluate`` without ``ablation=`` builds the kind ``explain`` recorded on the component
    set's own settings (before that was recorded, the set's own kind, ``"zero"`` by default:
    exact Shapley values under mean ablation scored ``shapley_error`` 0.28-0.78 and deletion
    removed neurons to zero, silently); an ``Ablation`` with its own reference given to
    ``explain`` is still another game. Where the attribution reports ``base_values`` (the
    output with every component ablated), this game's ``v(empty)`` must match them (one
    evaluation per input); attributions without them are not checked.
    """
    found = _compare_base_values(attr, game)
    if isinstance(found, tuple):
        i, mine, here = found
        raise InputError(
            f"metric {metric!r} ablates components as the player set's own ablation "
            f"({getattr(getattr(game, 'ablation', None), 'kind', 'default')!r}), but the "
            f"attribution was computed under another: its base_values (the output with every "
            f"component ablated) is {mine} for sample {i}, here it is {here}. Pass the "
            "ablation= given to tribute.explain (e.g. ablation='mean')."
        )


def _check_same_groups(attr: Attribution, game: Any, metric: str) -> None:
    """Refuse ``groups`` that map the elements to players otherwise than the attribution did.

    With as many players, credits computed for one grouping were scored on another, silently
    (player ``j``'s credit judged by removing another set of elements): deletion moved from
    0.23 to 0.37 on a 6-feature MLP. ``groups=None`` uses the attribution's own groups.
    """
    mine = attr.groups
    fn = getattr(game, "groups_array", None)
    here = fn() if callable(fn) and mine is not None else None
    if mine is None or here is None:
        return
    a = np.asarray(mine)
    b = np.asarray(here.numpy() if isinstance(here, torch.Tensor) else here)
    if a.ndim == 1 and b.ndim == 2 and b.shape[1] == a.shape[0]:
        a = np.broadcast_to(a, b.shape)
    elif b.ndim == 1 and a.ndim == 2 and a.shape[1] == b.shape[0]:
        b = np.broadcast_to(b, a.shape)
    if a.shape == b.shape and not np.array_equal(a, b):
        raise InputError(
            f"metric {metric!r}: groups=... maps the input elements to players otherwise than "
            "the attribution's groups (attr.groups), so each credit would be judged by "
            "removing another player's elements. Omit groups= (the attribution's are used) "
            "or explain with the groups you want to evaluate."
        )


def _check_same_targets(attr: Attribution, game: Any, target: Any, metric: str) -> None:
    """Refuse an explicit ``target`` that resolves to other classes than the attribution's.

    Scoring class-2 credits on class 0 (say ``target="predicted"`` for an attribution of
    ``target=2``) gives a number for the wrong question, silently; the attribution's own
    ``targets`` are what it explains. One class per sample reads ``(b,)`` or ``(b, 1)``
    (``target=[1]``, a column of labels): both are compared (aud47m: they were not, and
    per-sample credits of classes 0, 2, 1, 2 scored a deletion area of 0.42 / 0.89 / 0.85 /
    0.48 on classes 1, 0, 0, 1 where their own is 0.03 / 0.06 / 0.09 / 0.28, silently).
    """
    if target is None or attr.targets is None:
        return
    resolved = game.target.to_numpy()
    if resolved is None:
        return
    diff = differing_targets(attr.targets, resolved)
    if diff is not None:
        mine, resolved, bad = diff
        i = int(bad[0])
        raise InputError(
            f"metric {metric!r}: target={target!r} resolves to output column(s) "
            f"{resolved[i].tolist()} for sample {i}, but the attribution explains column(s) "
            f"{mine[i].tolist()} there ({bad.size} of {mine.shape[0]} samples differ); the "
            "score would judge credits of one class on another. Omit target= (the "
            "attribution's targets are used) or explain the target you want to evaluate."
        )


#: Relative difference (to the larger magnitude, or to a tenth of the batch's largest output of
#: that target where that is larger) above which :func:`_check_same_outputs` tells two explained
#: outputs apart; raised to 16 rounding units of a lower-precision model (float16, bfloat16, TF32
#: on a GPU). Other rows differ by about the outputs' spread, far above it.
OUTPUT_MISMATCH_RTOL = 1e-4

#: Floor of the scale, as a fraction of the batch's largest output of the target: float32 rounding
#: of another batching (explain_dataset shards of 1 row against one 500-row pass) moved an output
#: of 2.7e-5 by 4.5e-8 (4.8e-7 of the column's largest), past the former floor of 1e-3 (rev45m).
_OUTPUT_SCALE_FLOOR = 0.1


def _output_rtol(game: Any) -> float:
    """:data:`OUTPUT_MISMATCH_RTOL`, or 16 rounding units of the model's output precision where
    that is coarser (float16 / bfloat16 outputs; float32 on a GPU that may use TF32)."""
    ref = getattr(game, "reference_output", None)
    eps = 0.0
    if isinstance(ref, torch.Tensor) and ref.is_floating_point():
        eps = float(torch.finfo(ref.dtype).eps)
        if ref.dtype == torch.float32 and ref.device.type == "cuda" and (
                torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
            eps = 2.0 ** -10  # TF32 keeps 10 mantissa bits
    return max(OUTPUT_MISMATCH_RTOL, 16.0 * eps)


def _full_values_in_other_units(attr: Attribution, output: str) -> bool:
    """``attr.full_values`` hold another quantity than the game's ``v(N)`` by design:
    ``tree_shap`` records the trees' margin (a boosted classifier's log-odds) while the game
    of ``output="raw"`` reads ``predict_proba`` (rev45m: GradientBoostingClassifier warned
    0.0966 against the margin -2.235 on every call)."""
    explained = attr.params.get("explained") if attr.method == "tree_shap" else None
    return isinstance(explained, str) and ("margin" in explained or "log-odds" in explained) \
        and output != "logit"


#: Metrics whose score compares the credits' magnitudes with differences of the game's values
#: (``||phi - phi*||`` and ``(u . phi - (v(N) - v(N - u)))^2``): credits in other units than
#: the game's values give a number about the units, not about the credits.
_READS_CREDIT_UNITS = frozenset({"shapley_error", "infidelity"})


def _ends_in_softmax(model: Any) -> bool:
    """Whether ``model`` (a torch module, or an adapter of one) holds a Softmax / LogSoftmax
    module, the final layer ``deeplift`` skips (plain callables: False). Any such module
    counts, not only the last registered one: a ``self.sm = nn.Softmax(-1)`` registered before
    the layers it is applied after was scored silently (rev52m: ``shapley_error`` 3.41 on the
    softmax output where the same credits score 0.197 on the logits). deeplift refuses a
    Softmax that is not the model's last operation, so one the credits skipped is final."""
    module = model.module if isinstance(model, ModelAdapter) else model
    if not isinstance(module, torch.nn.Module):
        return False
    return any(isinstance(m, (torch.nn.Softmax, torch.nn.LogSoftmax)) for m in module.modules())


def _game_reads_the_margin(attr: Attribution, model: Any) -> bool:
    """Whether the game of ``output="raw"`` reads the trees' margin itself, the quantity
    ``tree_shap`` explains: the model (or its adapter) is called for its margins
    (``output_kind == "logit"``: an ``xgboost.Booster`` / ``lightgbm.Booster`` of a
    classification objective, an ``XGBClassifier`` with ``binary:logitraw``), or the trees have
    an identity link (``params["explained"]`` "margin of the ...": XGBoost / LightGBM /
    CatBoost regressors, whose prediction is the margin) and the model does not return
    probabilities (an identity-link ``binary:hinge`` classifier's 0/1 classes). rev52m: plain
    ``XGBRegressor`` / ``LGBMRegressor`` / Boosters were refused although their credits equal
    the exact Shapley values of that game (shapley_error 1e-16 to 5e-8)."""
    kind = None
    if model is not None:
        adapter = model if isinstance(model, ModelAdapter) else as_model(
            model, "torch" if isinstance(model, torch.nn.Module) else "numpy")
        kind = str(adapter.output_kind)
    if kind == "logit":
        return True
    identity = str(attr.params.get("explained", "")).startswith("margin of ")
    return identity and kind != "probability"


def _logits_before_softmax(attr: Attribution, model: Any) -> bool:
    """``deeplift`` skipped ``model``'s final Softmax / LogSoftmax: its credits explain the
    logits before it (``extra["explained"] == "logits"``), not the output the game reads."""
    extra = attr.extra if isinstance(attr.extra, dict) else {}
    return attr.method == "deeplift" and extra.get("explained") == "logits" and _ends_in_softmax(model)


def credit_units_problem(attr: Attribution, metric: str, output: str,
                         model: Any = None) -> str | None:
    """Why ``metric`` cannot score ``attr``'s credits on ``model``'s game of ``output``: they
    are in other units than its values (None where they are not, or the metric reads only
    their order). :func:`evaluate` refuses such a call (``output`` not given); the bench marks
    the (method, metric) pair n/a. ``model`` is the evaluated model or its adapter (what it
    returns decides: a Booster called for its margins, or an identity-link regressor, is
    scored).

    ``tree_shap`` of a boosted classifier explains the trees' margin (log-odds), while the
    game of the attribution's ``output="raw"`` reads ``predict_proba``: exact interventional
    TreeSHAP values scored a ``shapley_error`` of 3.3-5.2 on binary LightGBM, XGBoost and
    scikit-learn classifiers where their own game (``output="logit"``) gives 1e-15, and
    ``infidelity`` compared log-odds credits with probability drops, silently; ``tribute
    evaluate`` ranked them below the wrong class's credits. ``deeplift`` skips a final
    Softmax module and explains the logits: ``shapley_error`` 1.98 on the softmax output where
    the same credits score 0.085 on the logits (aud52m).
    """
    if metric not in _READS_CREDIT_UNITS:
        return None
    if _full_values_in_other_units(attr, output) and not _game_reads_the_margin(attr, model):
        reads = "probabilities" if attr.params.get("model_output") == "probability" else "predictions"
        return (f"the credits explain the {attr.params.get('explained')} (tree_shap's raw output), "
                f"while the game of output={output!r} reads the model's {reads}: metric {metric!r} "
                "would compare unlike units")
    if _logits_before_softmax(attr, model):
        return ("the credits explain the logits before the model's final Softmax/LogSoftmax "
                f"(deeplift skips it), while the game of output={output!r} reads the model's output "
                f"after it: metric {metric!r} would compare unlike units")
    return None


def _check_credit_units(attr: Attribution, metric: str, output: str, model: Any) -> None:
    """Refuse a metric of :data:`_READS_CREDIT_UNITS` on a game (``output`` not given) whose
    values are in other units than the credits (see :func:`credit_units_problem`). An
    ``output=`` given explicitly is the caller's choice and is not refused."""
    problem = credit_units_problem(attr, metric, output, model)
    if problem is None:
        return
    if _logits_before_softmax(attr, model):
        fix = ("To score the logits, explain and evaluate the model without its final Softmax "
               "(e.g. model[:-1])")
    elif str(attr.params.get("explained")).startswith("margin (log-odds)") and \
            attr.params.get("model_output") == "probability":
        fix = ("Pass output='logit' to score them on the log-odds game (this binary classifier's "
               "margin)")
    else:
        fix = ("No output= reads that quantity: score a method that explains the model's own "
               "output (method='exact_shapley' or 'kernel_shap')")
    raise InputError(
        f"metric {metric!r} compares the credits' sizes with changes of the game's values, but "
        f"{problem}. {fix}, or pass output={output!r} explicitly to score them against the "
        "game's values anyway.")


def _check_same_outputs(attr: Attribution, game: Any, metric: str, output: str = "raw") -> None:
    """Warn where this game's ``v(N)`` (the explained output on these inputs; the reference
    pass, no extra evaluation) differs from the one the attribution recorded.

    ``evaluate`` had no check that ``inputs`` are the rows the credits explain: kernel_shap
    credits of one batch scored on another batch of the same shape (a shuffled loader drawn
    twice) gave a deletion area, a shapley_error or a faithfulness correlation of the credits
    on rows they say nothing about, silently (aud45m). Only feature and component games are
    checked (their ``v(N)`` is the free reference pass); a warning, not a refusal, since a
    stochastic model or one wrapped on purpose (a softmax appended) differ legitimately.
    """
    if game.kind not in ("feature", "component") or attr.full_values is None:
        return
    if _full_values_in_other_units(attr, output):
        return
    mine = np.asarray(attr.full_values, dtype=np.float64)
    here = game.full().detach().cpu().double().numpy()
    if mine.size != here.size:
        return
    mine = mine.reshape(here.shape)
    both = np.isfinite(mine) & np.isfinite(here)
    col = np.where(both, np.maximum(np.abs(mine), np.abs(here)), 0.0).max(axis=0, keepdims=True)
    scale = np.maximum(np.maximum(np.abs(mine), np.abs(here)), _OUTPUT_SCALE_FLOOR * col)
    bad = both & (np.abs(mine - here) > _output_rtol(game) * scale + 1e-12)
    bad |= np.isfinite(mine) != np.isfinite(here)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    i = int(rows[0])
    warnings.warn(
        f"metric {metric!r}: the model's explained output on these inputs is {here[i].tolist()} for "
        f"sample {i}, but the attribution recorded {mine[i].tolist()} there (attr.full_values; "
        f"{rows.size} of {here.shape[0]} samples differ), so the credits were computed for other "
        "inputs or another model (or the model is not deterministic) and the score would not be "
        "about them. Pass the inputs (in the same order) and the model given to tribute.explain.",
        OutputMismatchWarning, stacklevel=user_stacklevel())


def _recorded_text_settings(attr: Attribution, removal: Any, pair: str | None,
                            players: Any) -> tuple[Any, str | None, Any]:
    """``removal``, ``pair`` and ``players`` for a text attribution: the ones it records
    (``extra["removal"]``, ``extra["pair"]``, its ``player_kind``) where not given.

    Without them ``evaluate`` built the default text game: exact Shapley values computed
    with ``removal="unk"`` scored a ``shapley_error`` of 1.29 (0 on their own game), and
    every deletion curve replaced words by another token than the credits were about.
    """
    extra = attr.extra if isinstance(attr.extra, dict) else {}
    if attr.player_kind not in ("word", "token", "sentence", "span"):
        return removal, pair, players  # e.g. component players of texts: no text removal
    if removal is None and extra.get("removal") is not None:
        removal = extra["removal"]
    if pair is None and isinstance(extra.get("pair"), str):
        pair = extra["pair"]
    if players is None:
        players = {"token": "tokens", "sentence": "sentences"}.get(attr.player_kind, players)
    if players is None:
        players = recorded_spans(attr)  # aud45t: spans were scored as words
    return removal, pair, players


def _attr_groups(attr: Attribution) -> Any:
    """The attribution's element-to-player map in the shape ``groups=`` takes (or None)."""
    if attr.groups is None or attr.layout.dense:
        return None
    g = np.asarray(attr.groups)
    shapes = attr.layout.input_shapes
    out = []
    start = 0
    for s in shapes:
        size = int(np.prod(s, dtype=np.int64))
        seg = g[..., start : start + size]
        out.append(seg.reshape(*g.shape[:-1], *s))
        start += size
    return tuple(out) if attr.layout.multi_input else out[0]


def _is_generation(attr: Any) -> bool:
    """Whether ``attr`` is a :class:`~tribute.GenerationAttribution` or the ``Attribution`` inside
    one (``explain_generation`` records ``kv_reuse`` in its parameters)."""
    from ..methods.generation import GenerationAttribution

    if isinstance(attr, GenerationAttribution):
        return True
    return isinstance(attr, Attribution) and "kv_reuse" in attr.params


def evaluate(
    model: Any,
    inputs: Any,
    attr: Attribution,
    metric: str = "deletion",
    *,
    target: TargetLike = None,
    baseline: Any = DEFAULT_BASELINE,
    groups: Any = None,
    explain: Callable[..., Attribution] | None = None,
    ground_truth: Any = None,
    seed: int = 0,
    batch_size: int | None = None,
    output: str | None = None,
    players: PlayerSet | None = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
    tokenizer: Any = None,
    removal: Any = None,
    pair: str | None = None,
    ablation: Any = None,
    **params: Any,
) -> MetricResult:
    """Score an attribution with a registered metric.

    Builds the same game :func:`tribute.explain` would (inside the model adapter's session, so
    the model is left exactly as it was) and runs the metric on it. A metric that runs the
    model warns (:class:`OutputMismatchWarning`) where the explained output on ``inputs``
    differs from the one the attribution recorded (``attr.full_values``): the credits were
    computed for other rows (or another model), so the score would not be about them.

    Args:
        model: the explained model (torch module or numpy callable).
        inputs: the explained inputs (same as given to :func:`tribute.explain`).
        attr: the attribution to score.
        metric: registry name (see :func:`metrics`). default="deletion".
        target: which output; default None = the attribution's resolved targets
            (``attr.targets``). Pass it again when the attribution used a callable target.
            Read as :func:`tribute.explain` reads it (class labels, a pandas Series by
            position).
        baseline: removal value of the game (as in :func:`tribute.explain`), or ``"blur"`` /
            :class:`Blur` for a Gaussian-blurred copy of each image. Also the baseline the
            default explain callable uses. default=0.0; when it is not given, a metric that
            reads the game's values refuses an attribution whose ``base_values`` show another
            baseline (exact Shapley values for ``baseline=1`` had a ``shapley_error`` of 1.28
            against the zero-baseline game), and warns (``tribute.metrics.api.BaselineMismatchWarning``)
            where only its fingerprint (``params["baseline_digest"]``) differs. Pass the
            attribution's baseline, or ``baseline=0.0`` to remove to zeros on purpose.
        groups: player groups; default None = the attribution's groups (``attr.groups``).
        explain: for metrics that re-explain: ``explain(inputs) -> Attribution``
            (robustness, ``random_logit``) or ``explain(model, inputs) -> Attribution``
            (``model_randomisation``). default=None: re-run ``attr.method`` with the
            attribution's hyperparameters, budget, seed and output, and this call's baseline
            and groups.
        ground_truth: truth mask per sample for ground-truth metrics (``batch x players`` or
            the inputs' shape).
        seed: seed of the metric's random draws (when it has any). default=0.
        batch_size: rows per forward pass. default=None (automatic).
        output: output transform; default None = the attribution's (``attr.params["output"]``).
            ``shapley_error`` and ``infidelity`` refuse the default where the credits are in
            other units than that game's values (``tree_shap``'s margins of a boosted
            classifier beside ``predict_proba``, ``deeplift``'s logits beside a final Softmax
            module): pass ``output=`` (``"logit"`` for a binary classifier's margin).
        players: a non-feature player set (components, training data), as in ``explain``.
        forward_args, forward_kwargs: extra model arguments, as in ``explain``.
        progress: show a progress bar (None: automatic).
        tokenizer, removal, pair: for texts, as in ``explain`` (the same text game is built;
            ``baseline`` is then unused). default=None: ``removal``, ``pair`` and token or
            sentence players are the ones the attribution records. Texts of different word
            counts are scored group by group, each over its own words (see
            :mod:`tribute.metrics._text_groups`); an ``explain`` callable then receives one
            group's texts at a time.
        ablation: how removed components are replaced, as in ``explain`` (component players
            only). default=None: the kind ``explain`` recorded in ``attr.params["ablation"]``
            (``"mean"``, ``"patch"``...) on the component set's own settings; pass the
            ``Ablation`` given to ``explain`` when it carried its own reference or counterfactual.
        **params: the metric's hyperparameters (see ``tribute.metrics()[name].defaults``).

    Returns:
        A :class:`MetricResult` (per-sample ``scores``, ``mean``, ``stderr``, curves in
        ``extra``).

    Example:
        >>> attr = tribute.explain(net, x, method="saliency")  # doctest: +SKIP
        >>> tribute.evaluate(net, x, attr, metric="deletion", baseline="blur").mean  # doctest: +SKIP
    """
    m = get_metric(metric)
    info = m.info
    check_progress(progress)
    # rev44o: before texts of different word counts cut them per group (forward_args=5 failed
    # with "'int' object is not iterable", forward_kwargs=[pairs] with "no attribute 'items'")
    check_forward_arguments(forward_args, forward_kwargs)
    baseline_given = baseline is not DEFAULT_BASELINE
    check_text_baseline(baseline, inputs, tokenizer, players)  # baseline=0 on texts was ignored (rev49x)
    if _is_generation(attr):
        raise InputError(
            f"metric {info.name!r}: attr comes from tribute.explain_generation, whose game (the "
            "continuation's log-probabilities as prompt tokens are removed, one target per "
            "generated token) tribute.evaluate does not rebuild (it would read the prompt as a "
            "classifier's input). Read the credits from .matrix / .total; evaluate scores "
            "Attributions of tribute.explain.")
    if not isinstance(attr, Attribution):
        raise InputError(
            f"attr is a {type(attr).__name__}; pass the Attribution returned by tribute.explain."
        )
    unknown = set(params) - set(info.defaults)
    if unknown:
        raise InputError(
            f"metric {info.name!r} got unknown parameter(s) {sorted(unknown)}; its parameters "
            f"are {sorted(info.defaults) or 'none'}."
        )
    if tokenizer is not None:  # the text game the credits were computed on, unless given
        removal, pair, players = _recorded_text_settings(attr, removal, pair, players)
    counts = word_counts(attr) if tokenizer is not None else None
    if counts is not None and len(set(counts)) > 1 and isinstance(inputs, (list, tuple)) \
            and len(inputs) == len(counts):
        # texts of different word counts: each group on its own game (see _text_groups)
        b = len(counts)

        def group(texts: Any, sub: Attribution, rows: np.ndarray, n: int) -> MetricResult:
            def cut(v: Any) -> Any:
                return None if v is None else _index_rows(v, rows, b)

            truth = ground_truth
            if truth is not None and _rows_shape(truth) is not None and len(_rows_shape(truth) or ()) == 2:
                truth = np.asarray(truth.detach().cpu() if isinstance(truth, torch.Tensor) else truth)[rows][:, :n]
            return evaluate(
                model, texts, sub, metric, target=cut(target),
                baseline=baseline if baseline_given else DEFAULT_BASELINE, groups=groups,
                explain=explain, ground_truth=truth, seed=seed, batch_size=batch_size,
                output=output, players=group_players(list(inputs), players, rows),
                forward_args=None if forward_args is None else [cut(a) for a in forward_args],
                forward_kwargs=None if forward_kwargs is None else {
                    k: cut(v) for k, v in forward_kwargs.items()},
                progress=progress, tokenizer=tokenizer, removal=removal, pair=pair,
                ablation=ablation, **params)

        if info.name == "shapley_error":
            # the longest texts' group is refused before the shorter groups spend their 2^n rows
            # (texts of 3, 5 and 11 words with max_players=5: 43 model rows, then refused; aud50x)
            longest = max(counts)
            check_max_players(longest, params.get("max_players", info.defaults["max_players"]),
                              f" for text {counts.index(longest)} of the batch ({longest} players)", text=True)
        return evaluate_by_word_count(info, attr, inputs, counts, group)
    if not baseline_given:
        baseline = 0.0  # a plain 0.0: the game's out-of-distribution warning is explain's
    seed = check_seed(seed)
    if "seed" in info.defaults:
        params.setdefault("seed", seed)
    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    framework = "torch" if isinstance(first, torch.Tensor) else "numpy"
    adapter = as_model(model, framework)
    declared = attr.params.get("model_output")
    if adapter.output_assumed and isinstance(declared, str):  # as explained (model_output=)
        adapter = adapter.with_output_kind(declared)
    no_targets = InputError(
        "the attribution has no class-index targets (it was explained for a callable "
        "target, or built by hand); pass the same target=... to evaluate (e.g. the "
        "callable, or 'predicted')."
    )
    # a regression data game has no class-index targets either: it is rebuilt without one
    # below, and refused there if that game does have class targets
    if target is None and attr.targets is None and players is None:
        raise no_targets
    target = plain_target(target, inputs)  # a pandas / polars Series of labels -> numpy
    given_target = target
    if target is not None and players is None:
        target = labels_to_columns(adapter, target)  # a classifier's labels -> its columns
    use_target = target if target is not None else attr.targets
    use_output = output if output is not None else str(attr.params.get("output", "raw"))
    if output is None:
        _check_credit_units(attr, info.name, use_output, adapter)  # before any model evaluation
    use_groups = groups if groups is not None or players is not None else _attr_groups(attr)
    spec = Blur() if isinstance(baseline, str) and baseline == "blur" else baseline
    if isinstance(spec, str):
        raise InputError(f"baseline={baseline!r} is not understood; use a number, an array or 'blur'.")
    game_base = blur(inputs, spec) if isinstance(spec, Blur) else spec
    if not baseline_given and not info.reads_values:
        game_base = UNREAD_BASELINE  # the metric removes no feature: no removal value is read
    rebuilds = info.reads_values or any(n in info.needs for n in ("explain", "model_explain"))
    credit_game = {"component": "component", "example": "data"}.get(str(attr.player_kind))
    if credit_game is not None and credit_game not in info.games:
        raise InputError(f"metric {info.name!r} works on {info.games} games; the attribution credits "
                         f"{attr.player_kind} players.")
    if players is None and rebuilds and credit_game is not None:
        raise InputError(
            f"the attribution credits {attr.player_kind} players; pass players=... (the component set "
            f"or training data given to tribute.explain) to evaluate metric {info.name!r}: without it "
            "the input features would be scored.")
    ablation_given = ablation is not None
    recorded = attr.params.get("ablation")
    if ablation is None and players is not None and isinstance(recorded, str):
        own = getattr(getattr(players, "ablation", None), "kind", None)
        if own != recorded:
            if attr.params.get("ablation_own_data"):
                raise InputError(
                    f"the attribution was explained with ablation {recorded!r} carrying its own reference, "
                    f"counterfactual or resample draw, and the player set given here ablates by {own!r}; "
                    "pass the same ablation=tribute.Ablation(...) given to tribute.explain (or the component "
                    "set it was explained with).")
            ablation = recorded  # the kind explain ran with (its default is the set's own)
    text_settings: dict[str, Any] = {k: v for k, v in (("tokenizer", tokenizer), ("removal", removal),
                                                        ("pair", pair), ("ablation", ablation))
                                     if v is not None}
    if tokenizer is not None and recorded_specials(attr):  # aud45t: was refused (4 vs 2 players)
        text_settings["include_special"] = True
    t0 = time.perf_counter()
    with adapter.session(), digest_memo():  # small45: one SAE weights digest per call, not 3
        game = build_game(adapter, inputs, target=use_target, baseline=game_base, labels=False,
                          groups=use_groups, output=use_output, players=players,
                          forward_args=forward_args, forward_kwargs=forward_kwargs,
                          batch_size=batch_size, progress=progress,
                          **text_settings)
        mismatch = player_kind_mismatch(attr, game)
        if mismatch is not None:
            raise InputError(f"metric {info.name!r}: {mismatch}")
        if attr.n_players and attr.n_players != game.n_players:
            raise InputError(
                f"the attribution credits {attr.n_players} players but the game built for "
                f"metric {info.name!r} has {game.n_players}; pass the groups/players the "
                "attribution was computed with (groups=..., players=...)."
            )
        mismatch = text_players_mismatch(attr, game) if tokenizer is not None else None
        if mismatch is not None:
            raise InputError(f"metric {info.name!r}: {mismatch}")
        if credit_game == "component" and players is not None:
            _check_same_components(attr, game, info.name)
        if given_target is None and attr.targets is None and game.target.to_numpy() is not None:
            raise no_targets
        _check_same_targets(attr, game, given_target, info.name)
        if groups is not None and players is None:
            _check_same_groups(attr, game, info.name)
        spent = 0  # evaluations of checks made before the metric runs (counted in its n_evals)
        if rebuilds and (output is None or output == str(attr.params.get("output", "raw"))):
            checked = game.n_evals
            _check_same_outputs(attr, game, info.name, use_output)  # aud45m: other inputs
            spent += game.n_evals - checked
        if not baseline_given and info.reads_values:
            checked = game.n_evals
            _check_default_baseline(attr, game, info.name)
            spent += game.n_evals - checked
        if not ablation_given and info.reads_values and game.kind == "component":
            checked = game.n_evals
            _check_component_ablation(attr, game, info.name)
            spent += game.n_evals - checked
        ctx: dict[str, Any] = {}
        if "inputs" in info.needs:
            ctx["inputs"] = inputs
        if "model" in info.needs:
            ctx["model"] = model
        if "ground_truth" in info.needs:
            if ground_truth is None:
                raise InputError(f"metric {info.name!r} needs ground_truth=... (a truth mask).")
            ctx["ground_truth"] = ground_truth
        if "explain" in info.needs or "model_explain" in info.needs:
            if explain is None:
                # a method that read no baseline (saliency, tree_shap's path-dependent game) is
                # re-run without one: 0.0 made tree_shap "auto" interventional (refused as
                # another baseline) and a table's text columns refuse a number
                unread = not baseline_given and not _method_reads_baseline(attr)
                if not unread:
                    checked = game.n_evals
                    _check_same_baseline(attr, game, info.name)
                    spent += game.n_evals - checked
                ex, mex = default_explainer(
                    model, attr, inputs, target=target, baseline=DEFAULT_BASELINE if unread else spec,
                    groups=use_groups,
                    output=use_output, batch_size=batch_size, forward_args=forward_args,
                    forward_kwargs=forward_kwargs, players=players, ablation=ablation,
                    text={k: v for k, v in text_settings.items() if k != "ablation"})
            else:
                ex = mex = explain
            if "explain" in info.needs:
                ctx["explain"] = ex
            if "model_explain" in info.needs:
                ctx["model_explain"] = mex
        result = m(game, attr, **ctx, **params)
    result.n_evals += spent
    result.seconds = time.perf_counter() - t0
    return result
