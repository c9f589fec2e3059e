"""The explorer's computations, as clients of tribute's public API.

Each function takes a :class:`~.subjects.Subject` and the request's settings and returns
JSON-ready data; they call :func:`tribute.explain`, :func:`tribute.evaluate`,
:func:`tribute.components` and :class:`tribute.TrainingData` — nothing here evaluates a model
or estimates credits itself. Agreement between methods is Spearman's rank correlation of the
flattened credits (as in Adebayo et al. 2018's and Krishna et al. 2022's comparisons);
faithfulness is the deletion/insertion curve of Petsiuk et al. (2018), computed live by
``tribute.evaluate``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..api import explain, methods
from ..errors import InputError
from ..games.components import components
from ..games.data import TrainingData
from ..methods.base import get_method
from ..metrics.api import evaluate
from ..params import Interval, Options
from .jobs import Job
from .subjects import Subject, TrainingCase, numpy_outputs

__all__ = ["compare", "compare_steps", "component_effects", "explain_one", "method_catalogue",
           "method_form", "parse_params", "preview", "spearman_matrix", "training_points"]

#: Budget the explorer uses when the user leaves it empty (model rows per input).
DEFAULT_BUDGET = {"image": 512, "text": 128, "tabular": 512}
#: Most model rows per input a request may ask for (``budget``, or a method's count parameter).
MAX_ROWS = 100_000
#: Parameter defaults the page's form can show (others keep their default).
_SCALARS = (bool, int, float, str, type(None))


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(float(v)) else None


def _significant(values: Any, digits: int = 8) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (a shorter JSON reply).

    Not to a number of decimals: credits of a model whose outputs are ~1e-9 all read 0.0 at 8
    decimals. Non-finite values pass unchanged (JSON sends them as null).
    """
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a) & (a != 0)
    mag = np.floor(np.log10(np.abs(np.where(finite, a, 1.0))))
    factor = 10.0 ** np.clip(digits - 1 - mag, -290, 290)
    return np.where(finite, np.round(a * factor) / factor, a)


def _flat(values: Any) -> np.ndarray:
    v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    return np.asarray(v, dtype=np.float64)


# ----------------------------------------------------------------------------- methods
def method_form(name: str) -> list[dict[str, Any]]:
    """The parameter form of a method, generated from the registry's declared parameters.

    One field per hyperparameter whose default is a scalar: ``type`` is ``bool``, ``int``,
    ``float``, ``choice`` (an :class:`~tribute.params.Options` constraint) or ``text``; numeric
    fields carry the declared bounds; ``nullable`` when ``None`` is allowed.
    """
    cls = get_method(name)
    fields: list[dict[str, Any]] = []
    for pname, default in cls.defaults().items():
        if not isinstance(default, _SCALARS):
            continue
        cons = cls.constraints.get(pname)
        alts = cons if isinstance(cons, tuple) else (cons,) if cons is not None else ()
        f: dict[str, Any] = {"name": pname, "default": default, "nullable": default is None}
        # NONE (Options((None,))) makes a field nullable, not a choice
        options = [o for o in alts if isinstance(o, Options) and o.values != (None,)]
        intervals = [o for o in alts if isinstance(o, Interval)]
        f["nullable"] = f["nullable"] or any(isinstance(o, Options) and None in o.values
                                             for o in alts)
        if options and all(isinstance(v, _SCALARS) for o in options for v in o.values):
            vals = [v for o in options for v in o.values]
            f.update(type="choice", choices=[v for v in vals if v is not None])
        elif isinstance(default, bool):
            f["type"] = "bool"
        elif intervals:
            iv = intervals[0]
            f.update(type="int" if iv.kind is int else "float", min=iv.lo, max=iv.hi)
        elif isinstance(default, int):
            f["type"] = "int"
        elif isinstance(default, float):
            f["type"] = "float"
        else:
            f["type"] = "text"
        if cons is not None:
            from ..params import describe

            f["allowed"] = describe(cons)
        fields.append(f)
    return fields


def _game_limits(subject: Subject, removal: str | None) -> tuple[str, str]:
    """Why the game a job on ``subject`` builds with ``removal`` takes no gradients, and why it
    takes no fractional masks ("" where it does), as the games declare them.

    A text game blends a word's presence into its input embeddings: without an input embedding
    module, or with ``removal='delete'`` (a word is kept or dropped), there is neither a
    gradient nor a fraction of a word (:mod:`tribute.games.text`). A feature game refuses
    fractional masks on integer inputs (token ids, an integer table).
    """
    if subject.texts is not None:
        from ..games.text import input_embedding

        if removal == "delete":
            others = [r for r in subject.removals if r != "delete"]
            why = ("removal='delete' drops whole words: a word is kept or removed, never a "
                   "fraction of it, and has no gradient" +
                   (f"; choose removal {' or '.join(map(repr, others))}" if others else ""))
            return why, why
        if input_embedding(subject.text_model) is None:
            why = ("the text model has no input embedding module to blend a fraction of a word "
                   "into, or to differentiate")
            return why, why
        return ("" if subject.gradients else
                "needs gradients (this model's inputs are not differentiable)"), ""
    grads = "" if subject.gradients else \
        "needs gradients (this model's inputs are not differentiable)"
    dtype = subject.inputs.dtype
    integer = not (dtype.is_floating_point if isinstance(dtype, torch.dtype)
                   else np.issubdtype(dtype, np.floating))
    if integer and subject.kind != "text":
        # a numpy model's integer table with a fractional baseline (column means) is composed
        # in float64; with a whole-number baseline it stays integer (games.features)
        base = np.asarray(subject.baseline.detach().cpu() if isinstance(subject.baseline, torch.Tensor)
                          else subject.baseline, dtype=np.float64)
        integer = bool(np.all(base == np.round(base)))
    fractions = "" if not integer else (
        "draws fractional masks, but this subject's inputs are integers "
        f"({'token ids' if subject.kind == 'text' else 'and so is its baseline'}): a fraction "
        "of a value is undefined")
    return grads, fractions


def _internals(subject: Subject, name: str, tags: Any) -> str:
    """Why the model-specific method ``name`` cannot read the internals of ``subject``'s model
    ("" where it can, and for methods that are not model-specific).

    A model-specific method that takes gradients installs rules or hooks on a torch module's
    layers (DeepLIFT, LRP, guided backprop, Grad-CAM; ``needs_gradients`` refuses other
    models); AttnLRP's rules cover transformer layers only (``check_transformer``). One that
    takes none reads a tree model's splits (TreeSHAP: :func:`tribute.models.trees.parse_trees`),
    and the page shows its credits beside the other methods' only where the trees add up to
    the output those explain: a regressor's prediction or a forest's averaged probabilities,
    not a boosted classifier's margin (log-odds) beside its probabilities. The rule was
    "image subjects only" (aud50v): tree_shap was refused on every tree model and offered on
    CNNs (where it raised), DeepLIFT and LRP were refused on a torch MLP's table.
    """
    if not tags.model_specific:
        return ""
    # read once per subject, model and output (0.35 s: 300 trees); an estimator's parameters
    # too: one refit in place with another objective kept the first answer (rev50v: tree_shap
    # offered on an XGBRegressor refit as count:poisson, 0.015 off exact_shapley)
    key = f"{id(subject.model)}:{_params_key(subject.model)}:{subject.output}:{name}"
    if key not in subject.internals:
        subject.internals[key] = _read_internals(subject, name, tags)
    return subject.internals[key]


def _params_key(model: Any) -> str:
    """A digest of an estimator's parameters (``get_params``) and fitted classes (``classes_``),
    "" for other models. The classes too: a ``GradientBoostingClassifier`` refit in place on
    three classes with the same parameters kept its binary answer under ``output='logit'``
    (offered, then tree_shap raised on click; rev51v)."""
    if isinstance(model, torch.nn.Module) or not callable(getattr(model, "get_params", None)):
        return ""
    try:
        text = repr(sorted(model.get_params(deep=True).items(), key=lambda kv: str(kv[0])))
        classes = getattr(model, "classes_", None)
        if classes is not None:
            text += repr(np.asarray(classes).tolist())
    except Exception:
        return ""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_internals(subject: Subject, name: str, tags: Any) -> str:
    if subject.kind == "text":
        return "needs model internals this subject does not declare"
    from ..errors import UnsupportedModelError

    model = subject.model
    if tags.needs_gradients:
        if subject.kind != "image" and "interpolate_mode" in get_method(name).defaults():
            # Grad-CAM's family upsamples a layer's map to the input's (H, W)
            return "upsamples a layer's map over an image; this subject's inputs are not images"
        if name == "attnlrp" and isinstance(model, torch.nn.Module):
            from ..methods.lrp.transformer import check_transformer

            try:
                check_transformer(model)
            except UnsupportedModelError as exc:
                return str(exc).rstrip(".")
        return ""
    if isinstance(model, torch.nn.Module):
        return ("reads the splits of a tree model (scikit-learn, XGBoost, LightGBM, CatBoost); "
                "this subject's model is a torch module")
    from ..models.pipelines import split_pipeline
    from ..models.trees import parse_trees

    split = split_pipeline(model)  # tree_shap reads a pipeline's final trees (its columns traced)
    try:
        ens = parse_trees(model if split is None else split[1])
    except UnsupportedModelError as exc:
        return str(exc).rstrip(".")
    except Exception as exc:  # a model tree_shap cannot read: refused, never a 500
        return f"cannot read the model's trees ({type(exc).__name__}: {exc})"
    if ens.hard_classes:
        # binary:hinge: the page shows (and the other methods explain) the 0/1 class, a step
        # of the margin tree_shap explains (rev50v: offered, 0.296 off exact_shapley)
        return (f"explains the {ens.kind}'s {ens.raw_output}, but the model gives hard 0/1 classes "
                "(binary:hinge), which the other methods explain here; use exact_shapley or "
                "kernel_shap")
    return _tree_output_rule(subject, ens)


def _tree_output_rule(subject: Subject, ens: Any) -> str:
    """Why tree_shap's credits (the trees' raw output, or the log-odds under ``output='logit'``)
    are not those of the quantity the other methods explain under ``subject.output`` ("" where
    they are). The rule read the model alone (stop 50): an XGBoost ``binary:logitraw``
    classifier, whose own output is the margin, and a boosted classifier under
    ``output='logit'`` were refused although tree_shap equals exact_shapley there (9.7e-8,
    7.5e-7); a forest under ``output='logit'`` / ``'log_prob'`` was offered and raised on
    click (aud51v). The refusals below are tree_shap's own (:mod:`tribute.methods.tree_shap`)."""
    from ..models import NumpyModel

    output = subject.output
    additive = ens.link in ("logistic", "softmax")
    if output in ("prob", "log_prob") and additive:
        return (f"explains the {ens.kind}'s {ens.raw_output}; output={output!r} is not additive "
                "over its trees; use exact_shapley or kernel_shap")
    if ens.raw_output == "probability" and output in ("logit", "log_prob"):
        return (f"the {ens.kind} averages class probabilities; output={output!r} is not additive "
                "over its trees; use exact_shapley or kernel_shap")
    try:  # what the model returns (no call): "logit" for its margins (binary:logitraw)
        kind = str(NumpyModel(subject.model).output_kind)
    except Exception:
        kind = ""
    if output == "logit":
        if ens.link == "logistic":
            return ""  # the log-odds: logit_scale x the margin (tree_shap scales it)
        if ens.link == "softmax" and kind == "probability":
            return (f"explains the {ens.kind}'s margin, which is not the log-odds output='logit' "
                    "takes of its class probabilities; use exact_shapley or kernel_shap")
    if ens.link == "identity" or ens.raw_output == "probability":
        return ""
    if output in ("raw", "logit") and additive and kind == "logit" and ens.logit_scale == 1.0:
        return ""  # the model's own scores are the trees' margin
    shown = "probabilities" if additive else "predictions"
    return (f"explains the {ens.kind}'s {ens.raw_output} (its trees add up to it), not the "
            f"{shown} the other methods explain here; use exact_shapley or kernel_shap")


def _why_not(subject: Subject, info: Any, limits: tuple[str, str], internals: str = "") -> str:
    """Why method ``info`` cannot run on ``subject`` with the game ``limits`` ("" if it can),
    from the method's declared requirements (its tags) and, for a model-specific method, what
    :func:`_internals` found in the model."""
    tags = info.tags
    if tags.needs_gradients and limits[0]:
        return limits[0]
    if tags.fractional_masks and limits[1]:
        return limits[1]
    if tags.images_only and subject.kind != "image":
        return "explains images only (regions of pixels)"
    if internals:
        return internals
    if tags.max_players is not None and subject.kind == "image" and \
            int(np.prod(subject.sample_shape)) > tags.max_players:
        return f"enumerates 2^n coalitions; limited to {tags.max_players} players"
    return ""


def method_catalogue(subject: Subject) -> list[dict[str, Any]]:
    """The registry's feature methods, each marked usable or not on ``subject`` (and why).

    ``usable``/``why`` hold for the subject's default removal; a text subject's entries add
    ``why_by_removal`` (removal -> why, "" where the method runs): ``removal='delete'`` takes
    neither gradients nor fractional masks, so ``sobol`` and the gradient methods were listed
    as usable and then raised (rev47t).
    """
    removals: tuple[Any, ...] = subject.removals or (None,)
    limits = {r: _game_limits(subject, r) for r in removals}
    out = []
    for name, info in methods().items():
        if info.alias_of is not None or "feature" not in info.tags.games:
            continue
        internals = _internals(subject, name, info.tags)
        whys = {r: _why_not(subject, info, limits[r], internals) for r in removals}
        why = whys[removals[0]]
        entry = {"name": name, "summary": info.summary, "paper": info.paper,
                 "family": info.tags.family, "budgeted": info.tags.budgeted,
                 "stochastic": info.tags.stochastic, "budget_rule": info.budget_rule,
                 "usable": not why, "why": why, "params": method_form(name)}
        if subject.removals:
            entry["why_by_removal"] = {str(r): w for r, w in whys.items()}
        out.append(entry)
    return out


def parse_params(name: str, raw: Any) -> dict[str, Any]:
    """The request's parameter values checked against the form (types only; the method checks
    its declared constraints itself)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"params must be an object of parameter -> value; got {type(raw).__name__}.")
    form = {f["name"]: f for f in method_form(name)}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        f = form.get(k)
        if f is None:
            raise InputError(f"params: method {name!r} has no parameter {k!r} the explorer can "
                             f"set; its parameters are {sorted(form) or 'none'}.")
        if v is None or v == "":
            if f["nullable"]:
                out[k] = None
            continue
        kind = f["type"]
        try:
            if kind == "bool":
                if not isinstance(v, bool):
                    raise ValueError
                out[k] = v
            elif kind == "int":
                if isinstance(v, bool) or float(v) != int(float(v)):
                    raise ValueError
                out[k] = int(float(v))
            elif kind == "float":
                if isinstance(v, bool):
                    raise ValueError
                out[k] = float(v)
            elif kind == "choice":
                match = [c for c in f["choices"] if c == v or str(c) == str(v)]
                if not match:
                    raise ValueError
                out[k] = match[0]
            else:
                if not isinstance(v, (str, int, float)) or isinstance(v, bool) or len(str(v)) > 200:
                    raise ValueError
                out[k] = _number_or_text(v) if f["nullable"] else v
        except (ValueError, TypeError, OverflowError):
            allowed = f.get("allowed") or kind
            raise InputError(f"params: {name}.{k}={v!r} is not valid; allowed: {allowed}.") from None
        count = out.get(k) if k == get_method(name).budget_param else None
        if isinstance(count, (int, float)) and count > MAX_ROWS:
            # the count sizes the run like a budget: the same limit (steps=1e9 asked the
            # server for 7.45 GiB of path points, and tens of GiB of model rows after it)
            raise InputError(f"params: {name}.{k}={v!r} asks for more than {MAX_ROWS} model rows "
                             f"per input; give {k} <= {MAX_ROWS}, or leave it empty and set the "
                             "budget.")
    return out


def _number_or_text(v: Any) -> Any:
    """A free-form field whose default is None (no declared type): numbers stay numbers."""
    if not isinstance(v, str):
        return v
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def check_method(subject: Subject, name: Any, removal: str | None = None) -> str:
    """``name`` when it is a feature method that runs on ``subject`` with ``removal`` (a text
    subject's checked removal; None: its default); an InputError naming why otherwise."""
    if not isinstance(name, str):
        raise InputError(f"method must be a registry name; got {name!r}.")
    cat = {m["name"]: m for m in method_catalogue(subject)}
    if name not in cat:
        raise InputError(f"method {name!r} is not a feature method of the registry; choose one of "
                         f"{sorted(cat)[:40]}.")
    whys = cat[name].get("why_by_removal")
    if whys is not None and removal is not None and removal in whys:
        if whys[removal]:
            raise InputError(f"method {name!r} cannot explain subject {subject.name!r} with "
                             f"removal={removal!r}: {whys[removal]}.")
        return name
    if not cat[name]["usable"]:
        raise InputError(f"method {name!r} cannot explain subject {subject.name!r}: "
                         f"{cat[name]['why']}.")
    return name


def check_budget(budget: Any) -> int | None:
    if budget is None or budget == "":
        return None
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_ROWS:
        raise InputError(f"budget={budget!r} must be an int in [1, {MAX_ROWS}] (model rows per "
                         "input) or empty for the method's default.")
    return budget


# ----------------------------------------------------------------------------- inputs
def predict(subject: Subject, index: int) -> dict[str, Any]:
    """The model's output on input ``index`` (shown next to the input; not an attribution)."""
    x = subject.model_row(index)  # a typed one-row table for a model reading dtypes (aud51v)
    model = subject.predictor
    adapter = None
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            out = _flat(model(x))[0]
    else:
        scores, adapter = numpy_outputs(model, x)
        out = _flat(scores)[0]
    out = np.atleast_1d(out)
    binary = adapter is not None and out.size == 1 and len(subject.class_names or ()) == 2
    if subject.class_names and (out.size == len(subject.class_names) or binary):
        # one score column of a binary classifier: class 1 above its threshold, as explain reads it
        top = int(np.argmax(out)) if not binary else \
            int(float(out[0]) > (0.5 if str(getattr(adapter, "output_kind", "")) == "probability" else 0.0))
        if adapter is not None:
            # the class predict returns, as explain's 'predicted' target (a decision threshold
            # or SVC's Platt scaling can make it differ from the arg-max)
            own = adapter.predicted_classes((torch.as_tensor(np.asarray(x)),))
            top = top if own is None else int(own[0])
        return {"top": top, "name": subject.class_names[top],
                "scores": [_num(v) for v in out]}
    return {"top": None, "name": f"{float(out[0]):.4f}", "scores": [_num(v) for v in out]}


def preview(subject: Subject, index: int) -> dict[str, Any]:
    """What the page draws for input ``index``: pixels, tokens or feature values."""
    x = subject.row(index)
    arr = _flat(x)[0]
    out: dict[str, Any] = {"index": index, "label": subject.labels[index]
                           if index < len(subject.labels) else f"input {index}"}
    if subject.kind == "image":
        axis = subject.channel_axis  # channels averaged (last axis for H x W x C inputs)
        img = arr if arr.ndim == 2 or axis is None else arr.mean(axis)
        lo, hi = float(img.min()), float(img.max())
        out["image"] = ((img - lo) / (hi - lo) if hi > lo else img * 0).round(4).tolist()
    elif subject.texts is not None:  # word players of a text game
        first, second = text_words(subject, index)
        out["tokens"] = first + second
        out["pad"] = [False] * len(out["tokens"])
        out["split"] = len(first) if second else None
    elif subject.kind == "text":
        toks = subject.tokens[index] if subject.tokens else [str(int(t)) for t in arr]
        out["tokens"] = toks
        out["pad"] = [bool(int(t) == subject.pad_id) for t in arr]
        out["split"] = len(toks) // 2 if subject.name == "minilm" else None
    else:
        names = subject.feature_names or [f"x{i}" for i in range(arr.shape[-1])]
        out["features"] = [{"name": n, "value": _num(v)} for n, v in zip(names, arr)]
    return out


def text_words(subject: Subject, index: int) -> tuple[list[str], list[str]]:
    """The word players of a text subject's input ``index``: the first text's and the
    second's (empty for single texts), as ``tribute.explain`` names them."""
    from ..models.text import segment

    subject.row(index)
    assert subject.texts is not None
    text = subject.texts[index]
    parts = list(text) if isinstance(text, tuple) else [text]
    names = [segment(t, subject.tokenizer, "words").player_names[0] for t in parts]
    return names[0], (names[1] if len(names) > 1 else [])


def check_removal(subject: Subject, removal: Any) -> str | None:
    """The request's text removal option (None: the subject's default)."""
    if removal is None or removal == "":
        return subject.removals[0] if subject.removals else None
    if not subject.removals:
        raise InputError(f"removal applies to text subjects; subject {subject.name!r} removes "
                         "players by its baseline.")
    if removal not in subject.removals:
        raise InputError(f"removal={removal!r} is not offered for subject {subject.name!r}; "
                         f"choose one of {list(subject.removals)}.")
    return str(removal)


def _display(subject: Subject, values: np.ndarray) -> dict[str, Any]:
    """Credits of one input shaped for the page (image grid, token list, feature list)."""
    v = values[0]
    axis = subject.channel_axis
    if subject.kind == "image" and v.ndim == 3 and axis is not None:
        # channels summed: one signed map per image; H x W x C inputs sum their last axis (the
        # first gave a W x C map of the credits summed over each column's rows: audit aud43x)
        grid = v.sum(axis)
    elif subject.kind == "image":
        grid = v.reshape(v.shape[-2:])
    else:
        grid = v.reshape(-1)
    scale = float(np.abs(grid).max()) if grid.size else 0.0
    # the page's "sum of positive credits" is over the players' credits, not over the map's
    # cells: on a multi-channel image a pixel's channels of opposite sign cancel in the map
    # (RGB CNN: 14.71 shown for 25.98; audit aud46x)
    return {"values": _significant(grid).tolist(), "scale": scale,
            "positive": float(v[v > 0].sum()), "negative": float(v[v < 0].sum())}


def _signed(method: str, params: dict[str, Any]) -> bool:
    """Whether ``method``'s credits carry a direction (its declared ``signed`` tag; saliency's
    ``absolute=True`` gives magnitudes): the page coloured sobol's, smoothgrad_sq's and
    vargrad's unsigned importances red/blue under "+x raises the output" (rev48x)."""
    return bool(get_method(method).tags.signed and not params.get("absolute"))


def _explain(subject: Subject, index: int, method: str, params: dict[str, Any],
             budget: int | None, seed: int, target: Any = None, removal: str | None = None) -> Any:
    x = subject.model_row(index)
    n_players = int(np.prod(subject.sample_shape))
    if subject.texts is not None:
        n_players = sum(len(w) for w in text_words(subject, index))
    count = get_method(method).budget_param
    own_count = count is not None and params.get(count, None) is not None and \
        params[count] != get_method(method).defaults().get(count)
    if budget is None and get_method(method).tags.budgeted and not own_count:
        # the method's own default, capped so that a click answers in seconds (a count the
        # user set in the form sizes the run itself: a cap would contradict it)
        cap = DEFAULT_BUDGET.get(subject.kind, 512)
        own = methods()[method].default_budget(n_players)
        budget = cap if own is not None and own > cap else None
    if budget is not None and count is not None and \
            params.get(count) == get_method(method).defaults().get(count):
        # the page sends every field at its default: an untouched count is left to the budget
        params = {k: v for k, v in params.items() if k != count}
    if subject.channels_last and "channel_axis" in get_method(method).defaults() \
            and params.get("channel_axis") is None:
        # the subject's layout, which the page knows (rev44z: xrai, which reads channels-last
        # images with channel_axis=-1 since small44, refused every click on such a subject
        # while the form sent its default None)
        params = {**params, "channel_axis": -1}
    if subject.texts is not None:  # words as players: the text game of the public API
        return explain(subject.text_model, [subject.texts[index]], method,
                       tokenizer=subject.tokenizer, pair=subject.pair,
                       removal=check_removal(subject, removal), budget=budget, seed=seed,
                       output=subject.output, progress=False, **params)
    return explain(subject.model, x, method, target=subject.target if target is None else target,
                   baseline=subject.baseline, budget=budget, seed=seed, output=subject.output,
                   progress=False, feature_names=subject.feature_names, **params)


def explain_one(job: Job, subject: Subject, index: int, method: str, params: dict[str, Any],
                budget: int | None, seed: int, removal: str | None = None) -> dict[str, Any]:
    """One explanation, shaped for the page (plus prediction and waterfall ends); on sentence
    pairs with an interaction method, the word x word interaction map too."""
    job.begin_step(f"{method} on input {index}")
    attr = _explain(subject, index, method, params, budget, seed, removal=removal)
    job.end_step()
    vals = _flat(attr.values)
    out = {"method": method, "index": index, "n_evals": attr.n_evals, "seconds": attr.seconds,
           "params": {k: v for k, v in attr.params.items() if isinstance(v, _SCALARS)},
           "target": _target_name(subject, attr), "gap": _gap(attr),
           "signed": _signed(method, params), **_display(subject, vals)}
    if subject.kind == "tabular":
        names = subject.feature_names or [f"x{i}" for i in range(vals.shape[-1])]
        out["features"] = names
    if subject.texts is not None:
        out["removal"] = check_removal(subject, removal)
        cross = (attr.extra or {}).get("pair_interactions")
        if cross is not None:
            first, second = text_words(subject, index)
            m = np.asarray(cross, dtype=np.float64)[0, 0, :len(first), :len(second)]
            out["pair"] = {"rows": first, "cols": second,
                           "values": [[_num(v) for v in row] for row in _significant(m)],
                           "scale": float(np.nanmax(np.abs(m))) if m.size else 0.0}
    return out


def _gap(attr: Any) -> float | None:
    gap = getattr(attr, "gap", None)
    if gap is None:
        return None
    g = _flat(gap).reshape(-1)
    return _num(g[0]) if g.size else None


def _target_name(subject: Subject, attr: Any) -> str:
    t = getattr(attr, "targets", None)
    if t is None or subject.class_names is None:
        if subject.kind == "text":
            return "cosine similarity"
        # a multi-output regressor's explained output by its number: the page said "output"
        # beside a model with several (rev43x)
        k = subject.target
        return f"output {k}" if isinstance(k, int) and not isinstance(k, bool) else "output"
    idx = int(_flat(t).reshape(-1)[0])
    return f"class {subject.class_names[idx]}" if 0 <= idx < len(subject.class_names) else str(idx)


def spearman_matrix(values: list[np.ndarray]) -> list[list[float | None]]:
    """Spearman rank correlation between every pair of flattened credit vectors."""
    from scipy.stats import rankdata

    ranks = [rankdata(v.reshape(-1)) for v in values]
    k = len(ranks)
    out: list[list[float | None]] = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(k):
            a, b = ranks[i] - ranks[i].mean(), ranks[j] - ranks[j].mean()
            den = math.sqrt(float((a * a).sum() * (b * b).sum()))
            out[i][j] = float((a * b).sum() / den) if den > 0 else None
    return out


def compare_steps(n_methods: int) -> int:
    """The steps of a :func:`compare` job: per method, its explanation and its two curves."""
    return 3 * n_methods


def compare(job: Job, subject: Subject, index: int, names: list[str], budget: int | None,
            seed: int, steps: int = 16, removal: str | None = None) -> dict[str, Any]:
    """Several methods on one input: maps, Spearman agreement, deletion/insertion curves."""
    x = subject.model_row(index)
    panels, flats = [], []
    where: dict[str, Any] = {"model": subject.model, "inputs": x, "baseline": subject.baseline}
    if subject.texts is not None:
        where = {"model": subject.text_model, "inputs": [subject.texts[index]],
                 "tokenizer": subject.tokenizer, "pair": subject.pair,
                 "removal": check_removal(subject, removal)}
    for name in names:
        job.begin_step(f"explaining with {name}")
        attr = _explain(subject, index, name, {}, budget, seed, removal=removal)
        job.end_step()
        curves = {}
        for metric in ("deletion", "insertion"):
            # one step per curve: each evaluate call counts its rows from 0 (in one step the
            # insertion curve's first rows moved the bar back from 48% to 37.5%)
            job.begin_step(f"{metric} curve of {name}")
            res = evaluate(attr=attr, metric=metric, steps=steps, progress=False, **where)
            job.end_step()
            curve = _flat(res.extra["curve"]).reshape(-1)
            curves[metric] = {"auc": _num(res.mean), "curve": [_num(c) for c in curve],
                              "fraction": [float(f) for f in np.asarray(res.extra["fraction"])],
                              "higher_is_better": res.higher_is_better}
        vals = _flat(attr.values)
        flats.append(vals)
        panels.append({"method": name, "n_evals": attr.n_evals, "seconds": attr.seconds,
                       "signed": _signed(name, {}), **_display(subject, vals), **curves})
    return {"index": index, "methods": names, "panels": panels,
            "spearman": spearman_matrix(flats), "target": _target_name(subject, attr)}


# ----------------------------------------------------------------------------- components
def check_components(subject: Subject, method: Any) -> None:
    """Refuse a components request the subject or the method cannot run (before its job starts:
    a bad request was accepted, 202, and its job failed)."""
    if not subject.component_layers:
        raise InputError(f"subject {subject.name!r} declares no component layers.")
    if method not in ("feature_ablation", "atp"):
        raise InputError(f"component method={method!r}: choose 'feature_ablation' (exact "
                         "patching) or 'atp' (attribution patching, one backward pass).")


def component_effects(job: Job, subject: Subject, index: int, method: str) -> dict[str, Any]:
    """Every unit's effect: layers x units heat map; per output (class) effects for a click.

    ``feature_ablation`` on a component game is exact leave-one-out patching: a unit's credit
    is ``v(all) - v(all without the unit)``; ``atp`` is its first-order estimate (Nanda 2023).
    """
    check_components(subject, method)
    x = subject.row(index)
    players = components(subject.model, subject.component_layers, unit=subject.component_unit)
    n_out = len(subject.class_names) if subject.class_names else 1
    target: Any = list(range(n_out)) if n_out > 1 else None
    output = "prob" if n_out > 1 else subject.output
    job.begin_step(f"{method} over {subject.component_unit}s")
    attr = explain(subject.model, x, method, target=target, output=output, players=players,
                   progress=False)
    job.end_step()
    vals = _flat(attr.values)[0]  # targets x units (or units)
    vals = vals.reshape(n_out, -1)
    names = list(attr.player_names or [])
    pred = predict(subject, index)["top"] if n_out > 1 else None
    rows: dict[str, list[int]] = {}
    for j, nm in enumerate(names):
        layer = nm.rsplit(" ", 2)[0]
        rows.setdefault(layer, []).append(j)
    shown = pred if pred is not None else 0
    grid = [[_num(vals[shown, j]) for j in cols] for cols in rows.values()]
    per_unit = {names[j]: [_num(vals[t, j]) for t in range(n_out)] for j in range(len(names))}
    return {"index": index, "method": method, "layers": list(rows), "grid": grid,
            "unit": subject.component_unit, "shown_target": subject.class_names[shown]
            if subject.class_names else "output",
            "outputs": subject.class_names or ["output"], "per_unit": per_unit,
            "output_kind": output, "n_evals": attr.n_evals,
            "scale": float(np.nanmax(np.abs(vals[shown]))) if vals.size else 0.0}


# ----------------------------------------------------------------------------- training data
def check_training(subject: Subject, index: Any, method: Any) -> TrainingCase:
    """The subject's training-data case, when ``index`` and ``method`` are a request it can run
    (checked before the job starts); an InputError naming the field otherwise."""
    if method not in ("influence", "grad_dot", "grad_cos", "representer", "tracin"):
        raise InputError(f"training-data method={method!r}: choose one of influence, grad_dot, "
                         "grad_cos, representer, tracin.")
    case = subject.training
    if case is None:
        raise InputError(f"subject {subject.name!r} has no training-data case.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(case.X_test):
        raise InputError(f"index={index!r} is out of range: the training-data case has "
                         f"{len(case.X_test)} test points (0..{len(case.X_test) - 1}).")
    return case


def training_points(job: Job, subject: Subject, index: int, method: str, k: int = 6,
                    ) -> dict[str, Any]:
    """Top proponents/opponents of a test point of the subject's training-data case."""
    case = check_training(subject, index, method)
    data = TrainingData(case.X_train, case.y_train, fit=case.fit)
    x = case.X_test[index:index + 1]
    y = case.y_test[index:index + 1]
    job.begin_step(f"{method} over {len(case.X_train)} training examples")
    attr = explain(case.model, x, method, target=y, players=data, progress=False)
    job.end_step()
    top = attr.top(0, k=k)
    h, w = case.image_shape

    def item(i: int, name: str, credit: float) -> dict[str, Any]:
        img = case.X_train[i].reshape(h, w).double()
        return {"index": i, "name": name, "credit": credit, "label": int(case.y_train[i]),
                "image": (img / max(float(img.max()), 1e-12)).round(decimals=4).tolist()}

    timg = x.reshape(h, w).double()
    with torch.no_grad():
        pred = int(case.model(x.to(next(case.model.parameters()).dtype)).argmax(-1))
    return {"index": index, "method": method, "label": int(y[0]), "predicted": pred,
            "image": (timg / max(float(timg.max()), 1e-12)).round(decimals=4).tolist(),
            "proponents": [item(*p) for p in top["proponents"]],
            "opponents": [item(*p) for p in top["opponents"]],
            "n_train": len(case.X_train), "seconds": attr.seconds}
