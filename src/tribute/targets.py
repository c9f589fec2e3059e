"""Which scalar is explained: class indices, per-sample targets, several targets, callables.

A target turns the model's raw output for a batch of rows into a ``rows x targets`` matrix.
The output transform (``raw``, ``logit``, ``prob``, ``log_prob``) is applied first, and it
depends on what the model returns (its *output kind*, see :data:`MODEL_OUTPUTS`):

================  ===================  ==========================  ===========================
explained output  model returns logit  model returns probability   model returns raw values
================  ===================  ==========================  ===========================
``raw``           identity             identity                    identity
``logit``         identity             ``log(p / (1 - p))``        refused
``prob``          softmax / sigmoid    identity                    refused
``log_prob``      log-softmax / -sig.  ``log(p)``                  refused
================  ===================  ==========================  ===========================

Probabilities are clipped to ``[PROB_EPS, 1 - PROB_EPS]`` (``PROB_EPS = 1e-12``) before a log,
so a class a tree ensemble gives probability 0 has log-probability ``log(1e-12) = -27.6``
instead of ``-inf``. Where the clip moves an explained value (a saturated classifier, a pure
leaf), :func:`tribute.explain` issues one :class:`~tribute.errors.ProbabilityClipWarning` per
call with the count (:attr:`Target.clipped`, :func:`warn_clipped`). From probabilities,
``logit`` is the one-vs-rest log-odds ``log p_k - log(1 - p_k)`` of the explained class: for a
binary classifier (one column, or two columns that sum to one) this is the model's logit of
class ``k`` while ``p_k`` stays inside the clip (logit within +-27.6); for several classes
it is the log-odds of ``k`` against all others (the model's internal logits are not
recoverable from its probabilities, which fix them only up to a per-row constant).

Conventions (fixed here, documented in :func:`tribute.explain`):

* ``None`` — the single output of a regressor, or the predicted class of a classifier
  (refused for a model returning raw values with several outputs, e.g. a multi-output
  regressor: it has no predicted class, pass the output's index).
* ``"predicted"`` — the arg-max class of each sample on its unperturbed input; for a
  classifier whose ``predict`` can differ from the arg-max of its ``predict_proba`` or
  ``decision_function`` (``SVC(probability=True)``, a tuned decision threshold, a class
  tribute does not know: :func:`tribute.models.adapters.predict_may_differ`), the class its
  ``predict`` returns, read with one more pass of the samples (counted in ``n_rows``).
* ``int`` — that class for every sample.
* ``list``/``tuple`` of ints — several targets, each explained for every sample (adds a
  target axis to the result).
* 1-D ``ndarray``/``Tensor`` of length ``batch`` — one class per sample.
* 2-D ``ndarray``/``Tensor`` ``batch x targets`` — several classes per sample (a nested list
  of equal-length rows, one per sample, reads the same).
* callable — ``fn(output) -> rows`` or ``rows x targets``, applied after the transform.

A torch module or plain function is assumed to return logits unless ``model_output=`` says
otherwise; when ``output`` converts (``logit``/``prob``/``log_prob``/``kl``) and its outputs on
the explained inputs look like probabilities (two or more columns in [0, 1] summing to 1 per
row, or one column with every value in [0, 1]) a ``UserWarning`` says how to declare
``model_output``: a softmax/sigmoid on top of probabilities is silently wrong. The one-column
check has false positives: logits that all happen to lie in [0, 1] on the explained rows
(declare ``model_output="logit"`` to silence it).

Binary classifiers with one output column. A model tribute *knows* to be a binary classifier
(a scikit-learn style estimator with two ``classes_``, e.g. ``SVC``, ``LinearSVC``,
``RidgeClassifier`` whose ``decision_function`` is 1-D; an ``xgboost.Booster`` with a
``binary:*`` objective or a ``lightgbm.Booster`` with the ``binary`` objective, whose margin
is one column; see :mod:`tribute.models.adapters`) returns the score ``s`` (or probability
``p``) of class 1 only. Its targets are class indices, exactly as for a two-column
``predict_proba``: ``target=1`` is class 1 and ``target=0`` class 0, the complementary
quantity:

================  =====================  ===========================
explained output  class 1                class 0
================  =====================  ===========================
``raw``           ``s`` (``p``)          ``-s`` (``1 - p``)
``logit``         ``s``                  ``-s``
``prob``          ``sigmoid(s)``         ``sigmoid(-s) = 1 - sigmoid(s)``
``log_prob``      ``log sigmoid(s)``     ``log sigmoid(-s)``
================  =====================  ===========================

``None`` and ``"predicted"`` explain each row's predicted class (``s > 0``, or ``p > 0.5``),
as for every other classifier, and the same holds for every method (``tree_shap`` too: the
negated margin of class 0 is what its trees give). Torch modules and plain functions that
return one column keep the plain one-column reading (they may be regressors or one-logit
models tribute cannot tell apart): index 0 is that column, ``None`` explains it for every
row, and ``prob``/``log_prob`` apply a sigmoid/log-sigmoid to it. For class 0 of such a
one-logit model pass ``target=lambda out: -out`` (``raw``/``logit``) or
``target=lambda p: 1 - p`` (``prob``).

SHAP-KL (``output="kl"``): the explained scalar of a row is ``-KL(p(.|x) || q)``, minus the
Kullback-Leibler divergence (in nats) of the row's label distribution ``q`` from the model's
label distribution ``p(.|x)`` on the unperturbed input ``x`` of its sample (Jethani et al.,
"Don't be fooled: label leakage in explanation methods and the importance of their quantitative
evaluation", AISTATS 2023, Sec. 4; Watson et al. 2023, "Explaining predictive uncertainty with
information theoretic Shapley values"). The game's value is then
``v(S) = -KL(p(.|x) || p(.|x_S))``: 0 for the full coalition, negative otherwise, so a positive
credit means *including* the player brings the label distribution closer to the full-input one
(the library's sign convention), and Shapley credits sum to ``KL(p(.|x) || p(.|x_empty))``
(efficiency). The label distribution is the softmax of logits (sigmoid for one column: the two
classes ``(1 - s, s)``) or the model's probabilities (clipped to ``[PROB_EPS, 1]``). The
target must be ``None``: the KL compares whole distributions, not one class. With a background
set, the game averages the KL over background rows, ``-E_bg KL(p(.|x) || p(.|x_S, bg))``, which
by Jensen is at least as large as the KL to the background-averaged distribution (equal with
one baseline row).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import InputError, ModelOutputError, ProbabilityClipWarning, user_stacklevel
from .models import MODEL_OUTPUTS, is_binary

__all__ = [
    "MODEL_OUTPUTS",
    "OUTPUTS",
    "PROB_EPS",
    "Target",
    "check_model_output",
    "resolve_target",
    "transform_output",
    "warn_clipped",
    "warn_integer_string_labels",
]

#: Explained outputs a user can ask for (``tribute.explain(..., output=...)``); ``"kl"`` is
#: SHAP-KL (see the module docstring).
OUTPUTS = ("raw", "logit", "prob", "log_prob", "kl")

#: Probabilities are clipped to ``[PROB_EPS, 1 - PROB_EPS]`` before ``log`` (see module docs).
PROB_EPS = 1e-12

TargetLike = Any  # None | str | int | Sequence[int] | np.ndarray | torch.Tensor | Series | Callable


def check_model_output(model_output: str, output: str) -> None:
    """Refuse an impossible conversion from what the model returns to the explained output.

    Raises:
        InputError: ``model_output`` or ``output`` is unknown, or ``output`` needs class
            scores but the model returns raw (regression) values.
    """
    if model_output not in MODEL_OUTPUTS:
        raise InputError(
            f"model_output={model_output!r} is not one of {MODEL_OUTPUTS}; say what the model "
            "returns: 'logit' (scores/logits), 'probability' (e.g. predict_proba) or 'raw' "
            "(regression values)."
        )
    if output not in OUTPUTS:
        raise InputError(f"output={output!r} is not one of {OUTPUTS}; pick one of those.")
    if model_output == "raw" and output != "raw":
        raise InputError(
            f"output={output!r} needs class scores, but the model returns raw values (a "
            "regressor's predict, or a function not declared to return logits or "
            "probabilities), which no softmax or log turns into a probability. Use "
            "output='raw', or declare what the model returns with "
            "model_output='logit' or model_output='probability'."
        )


def transform_output(out: torch.Tensor, output: str, model_output: str = "logit") -> torch.Tensor:
    """Convert the model's output (of kind ``model_output``) to ``output`` along the class axis.

    Args:
        out: model output, ``rows`` or ``rows x classes``.
        output: explained output, one of :data:`OUTPUTS`.
        model_output: what the model returns, one of :data:`MODEL_OUTPUTS`. default="logit".

    See the module docstring for the conversion table and the clipping of probabilities.
    """
    check_model_output(model_output, output)
    if output == "raw":
        return out
    if output == "kl":
        return label_log_probs(out, model_output)
    single = out.ndim == 1 or out.shape[-1] == 1
    if model_output == "logit":
        if output == "logit":
            return out
        if output == "prob":
            return torch.sigmoid(out) if single else torch.softmax(out, dim=-1)
        return torch.nn.functional.logsigmoid(out) if single else torch.log_softmax(out, dim=-1)
    # model_output == "probability"
    if output == "prob":
        return out
    return _clipped_log(out, odds=output != "log_prob")


def _log_of(q: torch.Tensor, odds: bool) -> torch.Tensor:
    return torch.log(q) - torch.log1p(-q) if odds else torch.log(q)


def _clipped_log(p: torch.Tensor, *, odds: bool, top: float = 1.0 - PROB_EPS) -> torch.Tensor:
    """``log(p)``, or the log-odds (``odds``), of probabilities ``p`` clipped to
    ``[PROB_EPS, top]``, finite in every floating dtype.

    float32 rounds ``1 - PROB_EPS`` to 1, so a probability of exactly 1.0 gave
    ``log1p(-1) = -inf`` and the call was refused as "model output is Inf ... check the
    baseline" (small48b; rev48b: the binary one-column path too). Those entries (and any at 0)
    are computed in float64 and rounded back, the clip's value a float64 model gets (27.63);
    every other float32 entry is float32 arithmetic as before, byte for byte, at no extra cost
    (widening the whole output took 2.8x the time and 2x the memory on a 1e5 x 1000 output,
    rev48b). float16 / bfloat16, where ``PROB_EPS`` underflows to 0 and whose own ``log`` is
    coarse, are computed in float64 throughout and rounded once.
    """
    if not p.is_floating_point() or p.dtype == torch.float64:
        return _log_of(p.clamp(PROB_EPS, top), odds)
    if torch.finfo(p.dtype).bits < 32:
        return _log_of(p.double().clamp(PROB_EPS, top), odds).to(p.dtype)
    q = p.clamp(PROB_EPS, top)
    res = _log_of(q, odds)
    lost = (q <= 0.0) | (q >= 1.0) if odds else q <= 0.0
    if bool(lost.any()):
        wide = _log_of(p[lost].double().clamp(PROB_EPS, top), odds)
        res = res.masked_scatter(lost, wide.to(p.dtype))
    return res


def label_log_probs(out: torch.Tensor, model_output: str = "logit") -> torch.Tensor:
    """Log of the model's full label distribution, ``rows x classes`` (``classes >= 2``).

    Logits: log-softmax (one column ``z``: the two classes ``(logsigmoid(-z), logsigmoid(z))``).
    Probabilities: ``log`` of them clipped to ``[PROB_EPS, 1]`` (one column ``p``: the two
    classes ``(1 - p, p)``).
    """
    if model_output not in ("logit", "probability"):
        raise InputError(
            f"output='kl' compares label distributions, but model_output={model_output!r}; "
            "declare model_output='logit' or 'probability'."
        )
    col = out[:, None] if out.ndim == 1 else out
    if model_output == "logit":
        if col.shape[-1] == 1:
            return torch.cat([torch.nn.functional.logsigmoid(-col), torch.nn.functional.logsigmoid(col)], -1)
        return torch.log_softmax(col, dim=-1)
    if col.shape[-1] == 1:
        col = torch.cat([1.0 - col, col], -1)
    return _clipped_log(col, odds=False, top=1.0)  # float16 loses PROB_EPS: log(0) = -inf


def neg_kl(log_q: torch.Tensor, p_ref: torch.Tensor) -> torch.Tensor:
    """``-KL(p_ref || q)`` per row, from ``rows x classes`` ``log q`` and probabilities ``p_ref``.

    Terms with ``p_ref = 0`` contribute 0 (``0 log 0 = 0``).
    """
    p = p_ref.to(log_q.dtype)
    log_p = torch.where(p > 0, torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)), torch.zeros_like(p))
    return (p * (log_q - log_p)).sum(-1)


@dataclass
class Target:
    """A resolved target: selects ``rows x targets`` from model outputs.

    Attributes:
        index: ``batch x targets`` class indices (long), or None for callables/regression.
        fn: callable applied to the transformed output, or None.
        output: output transform name (:data:`OUTPUTS`).
        multi: several targets were asked for (the result keeps a target axis).
        names: a label per target column.
        model_output: what the model returns (:data:`MODEL_OUTPUTS`), which decides how
            ``output`` is computed from it. default="logit".
        kl_reference: for ``output="kl"`` (SHAP-KL), the ``batch x classes`` label
            distribution of each sample's unperturbed input; None otherwise.
        binary: the model is a known binary classifier returning one column (class 1's):
            ``index`` holds classes 0/1 and class 0 is the complementary quantity (see the
            module docstring). default=False.
    """

    index: torch.Tensor | None
    fn: Callable[[torch.Tensor], torch.Tensor] | None
    output: str
    multi: bool
    names: list[str]
    model_output: str = "logit"
    kl_reference: torch.Tensor | None = None
    binary: bool = False
    #: explained values whose probability the clip to ``[PROB_EPS, 1 - PROB_EPS]`` moved
    #: (``logit``/``log_prob`` of a model returning probabilities), counted over every row
    #: :meth:`select` saw; a one-item list, shared by the copies ``dataclasses.replace`` makes
    #: (a game's views), read once per call by :func:`warn_clipped`.
    clipped: list[int] = field(default_factory=lambda: [0], repr=False, compare=False)

    @property
    def n_targets(self) -> int:
        if self.index is not None:
            return int(self.index.shape[1])
        return len(self.names)

    def select(self, out: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """Explained scalars for rows of ``out`` that belong to samples ``sample`` (rows,)."""
        if self.binary and self.index is not None:
            classes = self.index.to(out.device)[sample]
            if self.model_output == "probability" and self.output in ("logit", "log_prob"):
                col = out.reshape(out.shape[0], 1)
                self._count_clipped(torch.where(classes == 1, col, 1.0 - col))
            return binary_class_output(out, self.output, self.model_output, classes)
        if self.kl_reference is not None and self.model_output == "probability":
            # -KL reads log q of every class the reference distribution gives weight
            col = out[:, None] if out.ndim == 1 else out
            if col.shape[-1] == 1:
                col = torch.cat([1.0 - col, col], -1)
            ref = self.kl_reference.to(out.device)[sample]
            if ref.shape == col.shape and col.is_floating_point():
                self.clipped[0] += int(((col < PROB_EPS) & (ref > 0)).sum())
        elif self.model_output == "probability" and self.output in ("logit", "log_prob"):
            # count on the probabilities the explained values are read from (the selected
            # columns; every column for a callable target, which may read any of them)
            self._count_clipped(out if self.fn is not None or self.index is None or out.ndim == 1
                                else self._pick(out, sample))
        out = transform_output(out, self.output, self.model_output)
        if self.kl_reference is not None:
            ref = self.kl_reference.to(out.device)[sample]
            if ref.shape != out.shape:
                raise ModelOutputError(
                    f"output='kl': the model returned {out.shape[-1]} classes for perturbed rows but "
                    f"{ref.shape[-1]} on the unperturbed inputs; the label distribution must keep its size."
                )
            return neg_kl(out, ref)[:, None]
        if self.fn is not None:
            if out.is_inference() and not torch.is_inference_mode_enabled():
                # the reference outputs ran under inference_mode; a target that calls a module
                # whose weights require grad (``lambda y: head(y)[:, 0]``) then asked autograd
                # to save an inference tensor, and every explain call with it raised
                # "Inference tensors cannot be saved for backward" (rev44j). No gradient flows
                # through these outputs, so the callable runs in inference mode as they did.
                with torch.inference_mode():
                    val = self.fn(out)
            elif not out.requires_grad and torch.is_grad_enabled():
                # likewise outputs no gradient flows through (deeplift's baseline rows): the
                # values kept a graph over the target's own weights, and deeplift's
                # ``delta.numpy()`` raised "Can't call numpy() on Tensor that requires grad"
                with torch.no_grad():
                    val = self.fn(out)
            else:
                val = self.fn(out)
            if not isinstance(val, torch.Tensor):
                val = torch.as_tensor(np.asarray(val), device=out.device)
            if val.ndim == 1:
                val = val[:, None]
            if val.ndim != 2 or val.shape[0] != out.shape[0]:
                raise ModelOutputError(
                    f"target callable returned shape {tuple(val.shape)} for {out.shape[0]} rows; "
                    "it must return one scalar per row (rows,) or (rows, targets)."
                )
            return val
        if out.ndim == 1:
            return out[:, None]
        return self._pick(out, sample)

    def _pick(self, out: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """The target columns of ``rows x classes`` ``out``."""
        assert self.index is not None
        cols = self.shared_columns()
        if cols is not None and out.ndim == 2:
            # every sample explains the same class(es): one column pick instead of a per-row
            # index gather (the same values)
            return out.index_select(1, cols.to(out.device))
        idx = self.index.to(out.device)[sample]
        return out.gather(1, idx)

    def _count_clipped(self, p: torch.Tensor) -> None:
        """Add to :attr:`clipped` the probabilities in ``p`` the clip before the log moves:
        below ``PROB_EPS`` (both outputs), above ``1 - PROB_EPS`` (``logit`` only: for
        ``log_prob`` that moves the value by less than 1e-12)."""
        if p.is_floating_point():
            hit = p < PROB_EPS
            if self.output == "logit":
                hit = hit | ((1.0 - p) < PROB_EPS)  # (not p > 1 - eps: float32 rounds it to 1)
            self.clipped[0] += int(hit.sum())

    def shared_columns(self) -> torch.Tensor | None:
        """The class indices (``targets`` long) when every sample has the same ones, else None
        (callables, regression). Read once per index tensor (and again if it is modified)."""
        idx = self.index
        if self.fn is not None or idx is None or self.binary:
            return None  # (binary: classes are not columns of the output)
        memo = self.__dict__.get("_columns")
        try:  # (inline: this runs once per chunk)
            version: int | None = idx._version
        except RuntimeError:  # an inference tensor keeps no version counter: not memoised
            version = None
        if memo is not None and memo[0] is idx and version is not None and memo[1] == version:
            return memo[2]  # type: ignore[no-any-return]
        cols = idx[0].clone() if idx.shape[0] > 0 and bool((idx == idx[:1]).all()) else None
        if version is not None:
            self.__dict__["_columns"] = (idx, version, cols)
        return cols

    def same_for_every_sample(self) -> Target:
        """Record that every sample has the index row 0 (an int or a list target, built so):
        :meth:`shared_columns` then skips its check (a comparison over the whole index, ~20 us
        of every call's fixed cost, issue #9) until the index is modified. Returns ``self``."""
        idx = self.index
        version = None if idx is None else _version_or_none(idx)
        if idx is not None and idx.shape[0] > 0 and version is not None:
            self.__dict__["_columns"] = (idx, version, idx[0].clone())
        return self

    def to_numpy(self) -> np.ndarray | None:
        if self.index is None:
            return None
        arr = self.index.cpu().numpy()
        return arr if self.multi else arr[:, 0]


def warn_clipped(target: Target | None, estimator: Any = None) -> None:
    """One :class:`~tribute.errors.ProbabilityClipWarning` when the clip before the log bound
    any explained value of ``target`` (counted by :meth:`Target.select` over every row the model
    evaluated in the call: explained rows, baselines, composed rows); nothing otherwise.

    Args:
        target: the call's target (None: nothing to say).
        estimator: the scikit-learn style estimator explained, for the advice (its
            ``decision_function`` / ``predict_log_proba``); None for torch modules and functions.
    """
    if target is None or target.clipped[0] == 0:
        return
    n = target.clipped[0]
    bound = ("log-odds bounded by +-27.6 (log(1e-12) = -27.6)" if target.output == "logit"
             else "log-probabilities bounded below by log(1e-12) = -27.6")
    kl = target.output == "kl"
    name = type(estimator).__name__.lower() if estimator is not None else None
    if name is not None and callable(getattr(estimator, "decision_function", None)):
        fix = (f"explain its scores with model={name}.decision_function (read as logits, "
               + ("model_output='logit', output='kl')" if kl else
                  "output='logit'; a binary classifier's one column is class 1's margin, pass "
                  "target=lambda s: -s for class 0)"))
        if target.output == "log_prob":
            fix += ", or output='prob'"
    elif name is not None and callable(getattr(estimator, "predict_log_proba", None)):
        fix = (f"explain model={name}.predict_log_proba, model_output='logit' (its own "
               "log-probabilities, unclipped: their log-softmax is themselves)" if kl else
               f"explain model={name}.predict_log_proba with output='raw' where it is finite "
               "(its own log-probabilities, unclipped), or output='prob'")
    elif kl and estimator is not None:
        fix = "explain output='prob' of each class instead"
    elif estimator is not None:
        fix = "explain output='prob' (no log, no clip)"
    else:
        fix = ("return the model's logits (drop its final softmax / sigmoid) and declare "
               "model_output='logit', or explain output='prob' (no log, no clip)")
    warnings.warn(
        f"output={target.output!r}: {n} probabilit{'y' if n == 1 else 'ies'} of the rows the "
        f"model evaluated {'was' if n == 1 else 'were'} 0 or 1 to within 1e-12 and clipped to "
        f"[1e-12, 1 - 1e-12] before the log{' of the label distribution' if kl else ''}: "
        f"those are {bound}, so the credits understate the "
        f"model (a saturated classifier's true values lie further out). To fix it, {fix}. "
        "(A tree ensemble's pure leaves, probability exactly 0 or 1, give this by design: "
        "filter tribute.ProbabilityClipWarning if -27.6 is the value you want.)",
        ProbabilityClipWarning, stacklevel=user_stacklevel())


def _version_or_none(t: torch.Tensor) -> int | None:
    """``t._version``, or None for an inference tensor (made under ``torch.inference_mode()``),
    which keeps no version counter: torch raises on reading it."""
    try:
        return int(t._version)
    except RuntimeError:
        return None


def binary_class_output(out: torch.Tensor, output: str, model_output: str,
                        classes: torch.Tensor) -> torch.Tensor:
    """``rows x targets`` explained output of classes ``classes`` (``rows x targets``, 0 or 1)
    of a known binary classifier whose output ``out`` (``rows`` or ``rows x 1``) is class 1's
    score (``model_output="logit"``) or probability (``"probability"``); class 0 gets the
    complementary quantity (see the module docstring)."""
    col = out.reshape(out.shape[0], 1)
    pos = classes == 1
    if model_output == "probability":
        p = torch.where(pos, col, 1.0 - col)
        if output in ("raw", "prob"):
            return p
        # widened as in transform_output: a float32 p = 1.0 of class 1 gave log1p(-1) -> +inf,
        # refused as "model output is Inf ... check the baseline" (rev48b)
        return _clipped_log(p, odds=output != "log_prob")
    z = torch.where(pos, col, -col)
    if output in ("raw", "logit"):
        return z
    if output == "prob":
        return torch.sigmoid(z)
    return torch.nn.functional.logsigmoid(z)


def _check_output_shape(ref: torch.Tensor, callable_target: bool) -> None:
    if callable_target:
        return
    if ref.ndim not in (1, 2):
        raise ModelOutputError(
            f"model output has shape {tuple(ref.shape)}; tribute explains one scalar per sample "
            "and needs (batch,) or (batch, classes). Pass target=callable mapping the output to "
            "one value per row (e.g. target=lambda out: out[:, 0, 3]) or wrap the model."
        )


def resolve_target(
    target: TargetLike, output: str, reference: torch.Tensor, batch: int,
    model_output: str = "logit", *, assumed: bool = False,
    predicted: torch.Tensor | None = None,
) -> Target:
    """Resolve a user ``target`` against the model's output on the unperturbed inputs.

    Args:
        target: see the module docstring.
        output: output transform (``raw``, ``logit``, ``prob``, ``log_prob``).
        reference: raw model output for the ``batch`` inputs.
        batch: number of inputs.
        model_output: what the model returns (:data:`MODEL_OUTPUTS`); a
            :class:`tribute.models.BinaryKind` marks a known binary classifier, whose single
            output column is read as two classes (see the module docstring). default="logit".
        assumed: ``model_output`` is a guess (a plain callable or torch module nobody declared);
            then a warning is issued when ``output`` converts and the reference output looks
            like probabilities: every row of two or more columns in [0, 1] summing to 1, or a
            single column whose every value lies in [0, 1]. The one-column check can fire
            on a logit model whose logits on the explained inputs all happen to lie in [0, 1]
            (more likely the fewer rows are explained, e.g. one row with logit 0.3); declaring
            ``model_output="logit"`` silences it.
        predicted: the class index per sample that the model itself predicts (a scikit-learn
            classifier's ``predict``), used for ``None``/``"predicted"`` instead of the
            arg-max of ``reference``. default=None (the arg-max).

    Raises:
        InputError: an impossible conversion (e.g. ``output="prob"`` on a regressor).
        ModelOutputError: a model declared (or detected) to return probabilities returned
            values outside [0, 1].
    """
    check_model_output(model_output, output)
    _check_reference_kind(reference, output, model_output, assumed)
    if output == "kl":
        return _resolve_kl(target, reference, model_output)
    callable_target = callable(target) and not isinstance(target, (torch.Tensor, np.ndarray))
    binary = (is_binary(model_output) and model_output in ("logit", "probability")
              and not callable_target
              and (reference.ndim == 1 or (reference.ndim == 2 and reference.shape[1] == 1)))
    threshold = (0.5 if model_output == "probability" else 0.0) if binary else None
    if (model_output == "raw" and (target is None or isinstance(target, str))
            and reference.ndim == 2 and reference.shape[1] > 1):
        # a regressor has no predicted class: the arg-max over its outputs (one output for
        # some rows, another for others) was explained, silently (audit aud28)
        raise InputError(
            f"target={target!r}: the model returns raw (regression) values with "
            f"{reference.shape[1]} outputs, which have no predicted class; pass target=j to "
            "explain output j, a list of ints for several outputs, or a callable. If the "
            "outputs are class scores, declare model_output='logit' (or 'probability')."
        )
    resolved = _resolve(target, output, reference, batch, threshold, predicted)
    resolved.model_output = model_output  # a fresh Target (dataclasses.replace costs ~10 us)
    resolved.binary = binary
    return resolved


def _resolve_kl(target: TargetLike, reference: torch.Tensor, model_output: str) -> Target:
    if target is not None:
        raise InputError(
            f"output='kl' (SHAP-KL) explains the divergence of the whole label distribution, so "
            f"target must be None; got target={target!r}. Use output='prob' or 'log_prob' to "
            "explain one class."
        )
    if reference.ndim not in (1, 2):
        raise ModelOutputError(
            f"output='kl' needs (batch,) or (batch, classes) model outputs; got shape {tuple(reference.shape)}."
        )
    p_ref = label_log_probs(reference.detach(), model_output).exp()
    return Target(None, None, "kl", False, ["-KL(p(x) || p(x_S))"], model_output, kl_reference=p_ref)


def _check_reference_kind(ref: torch.Tensor, output: str, model_output: str, assumed: bool) -> None:
    if ref.numel() == 0 or not ref.dtype.is_floating_point or output == "raw":
        return  # both checks below concern a conversion (output != "raw")
    lo, hi = float(ref.min()), float(ref.max())
    if model_output == "probability" and output != "raw" and (lo < 0.0 or hi > 1.0):
        raise ModelOutputError(
            f"the model is declared (or detected) to return probabilities, but its output on "
            f"the inputs ranges over [{lo:.4g}, {hi:.4g}], outside [0, 1]; output={output!r} "
            "would take logs of it. Declare model_output='logit' if these are scores, or "
            "model_output='raw' for regression values."
        )
    if (assumed and model_output == "logit" and output != "raw" and ref.ndim == 2
            and ref.shape[1] >= 2 and lo >= 0.0 and hi <= 1.0
            and bool(((ref.double().sum(1) - 1.0).abs() <= 1e-4).all())):
        warnings.warn(
            f"output={output!r}: the model's outputs look like probabilities (every row in "
            "[0, 1] and summing to 1), but the model was not declared to return them, so they "
            "are treated as logits and a softmax is applied on top. If the model returns "
            "probabilities, pass model_output='probability' (or model_output='logit' to "
            "silence this warning).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    if (assumed and model_output == "logit" and output != "raw"
            and (ref.ndim == 1 or (ref.ndim == 2 and ref.shape[1] == 1))
            and lo >= 0.0 and hi <= 1.0):
        what = ("they are explained as log-odds as they are" if output == "logit" else
                "a sigmoid is applied on top (sigmoid(p) of a probability p lies in [0.5, 0.73])")
        warnings.warn(
            f"output={output!r}: the model returns one column whose values on the inputs all lie "
            f"in [0, 1] ([{lo:.4g}, {hi:.4g}]), like a probability, but the model was not "
            f"declared to return probabilities, so they are treated as logits: {what}. If the "
            "model returns probabilities, pass model_output='probability'; if these are logits "
            "that happen to lie in [0, 1], pass model_output='logit' to silence this warning.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def plain_target(target: Any, inputs: Any = None) -> Any:
    """A pandas or polars Series (``target=y_test``) as a numpy array, one entry per sample.

    Other targets are returned unchanged. When ``inputs`` is a pandas DataFrame and ``target`` a
    pandas Series, their indexes must be the same: pandas would align the two by index, tribute
    reads the target by position, and a Series in another row order (``y.sort_values()``, a
    label column taken before a shuffle of ``X``) would explain each row for another row's
    label, silently. Such a Series is refused, naming ``target.reindex(inputs.index)``.
    """
    if isinstance(target, (list, tuple)) and target:
        return _plain_sequence(target)
    if isinstance(target, np.ndarray):
        return _integer_objects(target)
    if target is None or isinstance(target, (str, torch.Tensor, list, tuple, int, float)):
        return target
    to_numpy = getattr(target, "to_numpy", None)
    if to_numpy is None or getattr(target, "ndim", 1) != 1 or hasattr(target, "columns"):
        return target  # not a Series: the resolver says what it accepts
    index = getattr(target, "index", None)
    frame_index = getattr(inputs, "index", None) if hasattr(inputs, "columns") else None
    if index is not None and frame_index is not None and hasattr(index, "equals") \
            and not index.equals(frame_index):
        def show(ix: Any) -> str:
            return str(list(ix[:5]))[:-1] + (", ...]" if len(ix) > 5 else "]")

        raise InputError(
            f"target is a pandas Series whose index {show(index)} is not the inputs' index "
            f"{show(frame_index)}; tribute reads targets by position, so each row would be "
            "explained for another row's label. Pass target=target.reindex(inputs.index) (or "
            "target.to_numpy() if the positions already match).")
    try:
        return _integer_objects(np.array(to_numpy()))  # a copy: pandas hands out read-only views
    except (TypeError, ValueError) as exc:  # pyarrow refuses strings and nulls without a copy
        to_list = getattr(target, "to_pylist", None)
        if to_list is not None:
            return np.array(to_list())
        raise InputError(f"target of type {type(target).__name__} could not be read as one "
                         f"label per sample ({exc}); pass a numpy array or a list.") from exc


def warn_integer_string_labels(labels: Any, target: Any) -> None:
    """Warn when integer ``target`` values are read as column indices of a classifier whose
    ``classes_`` are all strings of integers and a column's class is not the integer asked for.

    With string ``classes_`` integers stay column indices (the documented rule, so a column can
    be named by its position), but ``classes_ = ['1', '10', '2']`` (labels sorted as strings)
    turns ``target=1`` into class ``'10'``, silently (aud47a). Only integer values that are a
    column (``0 <= j < K``) are read; the others are refused by the resolver. A bool, a string,
    a callable or an integer whose column holds that very integer (``classes_ = ['0', '1']``)
    warns nothing.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0 or lab.dtype.kind not in "OU" \
            or not all(isinstance(v, (str, np.str_)) for v in lab.tolist()):
        return
    texts = [str(v).strip() for v in lab.tolist()]
    if not all(t.lstrip("+-").isdecimal() and t.lstrip("+-").isascii() and t[:1] != "" for t in texts):
        return
    as_int = [int(t) for t in texts]
    plain = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else target
    if isinstance(plain, (bool, np.bool_)) or isinstance(plain, str):
        return
    if isinstance(plain, (list, tuple)):
        if not plain or not all(isinstance(v, (int, float, np.integer, np.floating))
                                and not isinstance(v, (bool, np.bool_)) for v in plain):
            return
        plain = np.asarray(plain)
    arr = np.asarray(plain) if isinstance(plain, (int, float, np.integer, np.floating, np.ndarray)) \
        else None
    if arr is None or arr.dtype.kind not in "iuf" or arr.size == 0:
        return
    seen = np.unique(arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr)
    bad = [int(j) for j in seen.tolist()
           if float(j).is_integer() and 0 <= j < lab.size and as_int[int(j)] != int(j)]
    if not bad:
        return
    shown = []
    for j in bad[:3]:
        hit = [k for k, v in enumerate(as_int) if v == j]
        label = (f"the label {texts[hit[0]]!r} is column {hit[0]}" if hit else
                 f"{str(j)!r} is not one of the classes")
        shown.append(f"{j} -> column {j}, class {texts[j]!r} ({label})")
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    one = bad[0]
    hit0 = [k for k, v in enumerate(as_int) if v == one]
    fix = (f"To explain the class labelled {str(one)!r}, pass target={texts[hit0[0]]!r} (its "
           f"column, {hit0[0]}); to" if hit0 else f"No class is labelled {str(one)!r}; to")
    warnings.warn(
        f"target holds integers read as output columns, and the classifier's classes_ "
        f"{texts[:10]}{'...' if len(texts) > 10 else ''} are strings of integers, so a column's "
        f"class is not the integer given: {'; '.join(shown)}{more}. With string classes_, "
        f"integers are column indices. {fix} explain column {one} (class {texts[one]!r}) "
        f"without this warning, pass its label as a string, target={texts[one]!r} (labels per "
        "sample: y.astype(str)).",
        UserWarning, stacklevel=user_stacklevel())


def _integer_objects(a: np.ndarray) -> np.ndarray:
    """An object array whose entries are all integers (``y.astype(object)``, a pandas object
    column of class numbers) as int64, all real numbers as float64, so it reads as the numeric
    array it holds; anything else unchanged (strings stay class names)."""
    if a.dtype != object or a.size == 0:
        return a
    values = list(a.flat)
    if any(isinstance(v, (bool, np.bool_)) for v in values):
        return a
    try:
        if all(isinstance(v, (int, np.integer)) for v in values):
            return a.astype(np.int64)
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
            return a.astype(np.float64)  # whole-number floats are read (and checked) as indices
    except OverflowError:  # beyond int64: no class index; the resolver says what it accepts
        return a
    return a


def _is_row(t: Any) -> bool:
    return isinstance(t, (list, tuple)) or (isinstance(t, (np.ndarray, torch.Tensor)) and t.ndim >= 1)


def _plain_sequence(target: Sequence[Any]) -> Any:
    """A list/tuple target: 0-d arrays and tensors become scalars (the list form: the same
    classes for every sample); a nested list of equal-length rows, one per sample, becomes the
    2-D array form (rows of class indices or labels); ragged rows are refused."""
    rows = [_is_row(t) for t in target]
    if not any(rows):
        if not any(isinstance(t, (np.ndarray, torch.Tensor)) for t in target):
            return target
        return [t.item() if isinstance(t, (np.ndarray, torch.Tensor)) else t for t in target]
    lengths = [len(t) if r else -1 for t, r in zip(target, rows)]
    if not all(rows) or len(set(lengths)) != 1:
        raise InputError(
            f"target is a nested list with rows of different lengths or kinds (lengths "
            f"{lengths[:8]}, -1 for a scalar); pass one row of classes per sample, all of the same "
            "length (shape (batch, n_targets)), or a flat list to explain the same classes for "
            "every sample.")
    return np.array([np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t)
                     for t in target])


def _resolve(target: TargetLike, output: str, reference: torch.Tensor, batch: int,
             binary_threshold: float | None = None,
             predicted: torch.Tensor | None = None) -> Target:
    """``binary_threshold``: the model is a known binary classifier with one output column
    (class 1's score or probability): two classes, class 1 predicted above the threshold."""
    target = plain_target(target)
    callable_target = callable(target) and not isinstance(target, (torch.Tensor, np.ndarray))
    _check_output_shape(reference, callable_target)
    if callable_target:
        probe = Target(None, target, output, False, ["custom"])
        val = probe.select(reference, torch.arange(batch, device=reference.device))
        n = int(val.shape[1])
        multi = n > 1
        names = [f"custom[{i}]" for i in range(n)] if multi else ["custom"]
        return Target(None, target, output, multi, names)

    n_classes = 1 if reference.ndim == 1 else int(reference.shape[1])
    if binary_threshold is not None:
        n_classes = 2
    single_output = n_classes == 1
    device = reference.device

    def _idx(arr: Any, what: str) -> torch.Tensor:
        # detached: a tensor that requires grad (a 0-d one was read by .item() before aud44o)
        a = np.asarray(arr.detach().cpu() if isinstance(arr, torch.Tensor) else arr)
        if a.dtype.kind in "OUS":
            raise InputError(
                f"target{what} holds {a.ravel()[:8].tolist()}, not integer class indices; class "
                "names are read for scikit-learn classifiers with string classes_ only. Pass "
                "class indices (or a callable).")
        t = torch.as_tensor(a)
        if t.dtype.is_floating_point:
            if not torch.all(t == t.round()):
                raise InputError(f"target{what} must hold integer class indices; got {t.tolist()[:8]}.")
        elif t.dtype == torch.bool or t.dtype not in _INT_DTYPES:
            raise InputError(f"target{what} must hold integer class indices; got dtype {t.dtype}.")
        # the range is checked before the cast: 1e20 cast to int64 read as class -2**63
        bad = (t < 0) | (t >= n_classes)
        if bool(bad.any()):
            first = t[bad].flatten()[0].item()
            first = int(first) if isinstance(first, float) and abs(first) < 2.0 ** 63 else first
            hint = (" (a model returning one column, not known to be a binary classifier: "
                    "index 0 is that column)" if n_classes == 1 else "")
            raise InputError(
                f"target{what} has class index {first}, out of range for a model with "
                f"{n_classes} {'classes' if binary_threshold is not None else 'output(s)'}; "
                f"valid indices are 0..{n_classes - 1}{hint}."
            )
        # never alias the caller's tensor (a later in-place edit)
        return t.to(device=device, dtype=torch.long, copy=True)

    if target is None or (single_output and isinstance(target, str) and target == "predicted"):
        if single_output:
            # one output (not a known binary classifier): its "predicted class" is that column,
            # the same target for every sample, not a class per sample (rev40c)
            return Target(torch.zeros(batch, 1, dtype=torch.long, device=device), None, output, False, ["output"])
        target = "predicted"
    if isinstance(target, str):
        if target != "predicted":
            raise InputError(
                f"target={target!r} is not understood; use 'predicted', an int, a list of ints "
                "(several classes, each for every sample), an array with one index per sample, "
                "or a callable."
            )
        if predicted is not None:
            pred = predicted.reshape(batch)
        elif binary_threshold is not None:
            pred = (reference.reshape(batch) > binary_threshold).long()
        else:
            pred = reference.argmax(dim=1) if reference.ndim == 2 else torch.zeros(batch, dtype=torch.long)
        return Target(pred.long().to(device)[:, None], None, output, False, ["predicted"])
    if isinstance(target, (bool, np.bool_)):
        raise InputError(f"target={target!r} is a boolean; pass a class index instead.")
    if isinstance(target, (float, np.floating)):
        target = np.asarray(target)  # read as a 0-d array is: a whole number, else refused
    if isinstance(target, (int, np.integer)):
        k = int(target)
        if 0 <= k < n_classes:  # the common case without building an index tensor to check
            return Target(torch.full((batch, 1), k, dtype=torch.long, device=device), None,
                          output, False, [f"class {k}"]).same_for_every_sample()
        idx = _idx([k], f"={k}")
        return Target(idx.expand(batch, 1).clone(), None, output, False, [f"class {int(target)}"])
    if isinstance(target, Sequence) and not isinstance(target, (torch.Tensor, np.ndarray)):
        if len(target) == 0:
            raise InputError("target is an empty list; give at least one class index.")
        idx = _idx(list(target), f" list {list(target)}")
        uniq, counts = torch.unique(idx, return_counts=True)
        if bool((counts > 1).any()):
            # a list names classes explained for EVERY sample: a repeated class is the same
            # explanation twice, i.e. a label vector meant per sample (target=[0, 1, 2, 1])
            rep = int(uniq[counts > 1][0])
            shown = list(target)[:8]
            raise InputError(
                f"target={shown}{'...' if len(target) > 8 else ''} (a list) repeats class {rep}: a "
                "list names several classes, each explained for every sample (a targets axis). "
                f"For one class per sample (a label vector of length {batch}) pass an array: "
                "target=np.asarray(labels); to explain one class for all samples pass an int.")
        return Target(idx[None, :].expand(batch, -1).clone(), None, output, True,
                      [f"class {int(i)}" for i in idx.tolist()]).same_for_every_sample()
    if isinstance(target, (np.ndarray, torch.Tensor)):
        arr = target
        if arr.ndim == 0:
            # aud44o: int(arr.item()) explained class 1 for target=np.array(1.5) (or a 0-d
            # True), silently; a 0-d array is checked as the one-element array it holds
            idx = _idx(arr.reshape(1), f"={arr.item()!r}")
            return _resolve(int(idx[0]), output, reference, batch, binary_threshold)
        if arr.ndim == 2 and arr.shape[1] == 0:  # was a result with an empty target axis
            raise InputError(
                f"target has shape {tuple(arr.shape)}: no class for any sample; pass at least one "
                f"index per sample (shape ({batch},) or ({batch}, n_targets)), or an int.")
        if arr.shape[0] != batch or arr.ndim > 2:
            raise InputError(
                f"target has shape {tuple(arr.shape)} but the batch has {batch} samples; pass one "
                f"index per sample (shape ({batch},)), ({batch}, n_targets), an int, or a list of "
                "ints to explain the same classes for every sample."
            )
        idx = _idx(arr, f" array of shape {tuple(arr.shape)}")
        if idx.ndim == 1:
            return Target(idx[:, None], None, output, False, ["per-sample"])
        return Target(idx, None, output, True, [f"target {j}" for j in range(idx.shape[1])])
    raise InputError(
        f"target of type {type(target).__name__} is not understood; use None, 'predicted', an "
        "int, a list of ints (several classes, each for every sample), an array or a Series "
        "with one index per sample (a table's column: target=df['label']), or a callable."
    )


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
