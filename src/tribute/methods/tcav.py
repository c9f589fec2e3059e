"""TCAV: testing with concept activation vectors (Kim et al., ICML 2018).

A *concept activation vector* (CAV) at a layer is the normal of a linear separator between the
layer's activations on concept examples and on random examples. The *conceptual sensitivity*
of an input ``x`` is the directional derivative of the class logit ``h_k`` along the CAV,
``S(x) = grad_a h_k(a(x)) . v``; the TCAV score is the fraction of class inputs with
``S(x) > 0``.

Separator: a closed-form ridge least-squares classifier on centred activations, labels
``+1`` (concept) / ``-1`` (random), ``w = (A^T A + l2 I)^{-1} A^T y`` (computed in its dual
form ``A^T (A A^T + l2 I)^{-1} y`` when there are more activation dimensions than examples),
normalised to unit length. It is a linear classifier as in the paper (which used logistic
regression or an SVM); any separator with the same sign structure gives the same TCAV score
when the classes are separable.

Statistical test (Kim et al., Sec. 3.2): the CAV is learned ``n_random`` times, against
``n_random`` different random subsets; the same is done for random-vs-random CAVs (random
subset ``i`` against a disjoint random subset). A two-sided Welch t-test of the concept's
scores against the random scores gives the p-value. **Multiple testing**: when testing several
concepts (or layers, or classes), divide ``alpha`` by the number of tests (Bonferroni), as the
paper recommends; ``tcav`` tests one concept at one layer for one class.

**Calibration caveat** (``benchmarks/bench_tcav_calibration.py``: the synthetic model of ``tests/concepts/test_tcav.py``,
200 draws, 20 concept examples, ``n_random=10``, alpha=0.05): the concept set is fixed across
runs while only the random negatives change, so the Welch test reads the set's own sampling
bias as an effect. Sets drawn from the *random* law were called significant in 60/200 draws
(pool of 200 random examples); the planted concept in 200/200. ``p_value_one_set``
(:func:`one_set_p_value`) treats the concept's mean score as one draw from the random-set
score distribution: 0/200 false positives, but it found the planted concept in only 51/200
draws (conservative: a random-vs-random score varies more than a mean over runs). Read a
significant Welch result on a small concept set with this in mind.

Activations are captured with a forward hook on the named module, installed for the call and
removed in ``finally``; the model is put in eval mode and restored (training flag, parameters,
hooks) also when something raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..errors import InputError, UnsupportedModelError
from .analyses import register_analysis
from .cam import find_layer

__all__ = ["TCAVResult", "concept_activation_vector", "one_set_p_value", "tcav", "welch_p_value"]


@dataclass(frozen=True)
class TCAVResult:
    """TCAV score of one concept at one layer for one class.

    Attributes:
        concept: the concept's name.
        layer: module path of the layer.
        target: the class (output column) tested.
        score: mean TCAV score over the ``n_random`` concept CAVs, in [0, 1].
        scores: ``n_random`` TCAV scores (concept vs each random subset).
        random_scores: ``n_random`` TCAV scores of random-vs-random CAVs.
        p_value: two-sided Welch t-test of ``scores`` vs ``random_scores``.
        p_value_one_set: :func:`one_set_p_value` of ``score`` vs ``random_scores`` (calibrated
            for "this example set is unlike random sets"; less powerful with few runs).
        significant: ``p_value < alpha`` (not corrected for multiple tests: divide ``alpha``
            by the number of concepts x layers x classes tested).
        alpha: the level used.
        cav: the unit CAV averaged over runs (``activation dims``, flattened).
        sensitivities: ``inputs`` directional derivatives along ``cav``.
        cav_accuracy: ``n_random`` training accuracies of the concept CAVs.
    """

    concept: str
    layer: str
    target: int
    score: float
    scores: np.ndarray
    random_scores: np.ndarray
    p_value: float
    p_value_one_set: float
    significant: bool
    alpha: float
    cav: np.ndarray
    sensitivities: np.ndarray
    cav_accuracy: np.ndarray


def concept_activation_vector(positive: np.ndarray, negative: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Unit normal of a ridge least-squares separator (``+1`` positive, ``-1`` negative).

    Args:
        positive: ``n_pos x d`` activations of concept examples.
        negative: ``n_neg x d`` activations of random examples.
        l2: ridge penalty (> 0), default=1e-2.

    Returns:
        ``(cav, accuracy)``: the ``d`` unit vector pointing towards the concept and the
        separator's training accuracy.
    """
    a = np.concatenate([positive, negative]).astype(np.float64)
    y = np.concatenate([np.ones(len(positive)), -np.ones(len(negative))])
    mean = a.mean(axis=0)
    c = a - mean
    n, d = c.shape
    if d <= n:
        w = np.linalg.solve(c.T @ c + l2 * np.eye(d), c.T @ y)
    else:
        w = c.T @ np.linalg.solve(c @ c.T + l2 * np.eye(n), y)
    norm = float(np.linalg.norm(w))
    if norm == 0.0 or not np.isfinite(norm):
        raise InputError("tcav: the concept and random activations cannot be separated (the CAV is zero); "
                         "use more varied concept examples or another layer.")
    acc = float(np.mean(np.sign(c @ w + 0.0) == y))
    return w / norm, acc


def welch_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch t-test p-value of ``mean(a) == mean(b)`` (equals scipy's ``ttest_ind``).

    One side may have zero variance (all concept CAVs scoring 1.0 is the common case); when both
    have zero variance the statistic is undefined and the p-value is 1.0 if the means agree,
    0.0 if they differ.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(a.mean() - b.mean())
    if va + vb == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    t = diff / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(min(1.0, 2.0 * stats.t.sf(abs(t), df)))


def one_set_p_value(score: float, random_scores: np.ndarray) -> float:
    """Two-sided p-value of one concept set's mean ``score`` against the random sets' scores.

    The concept examples are one fixed set: its runs vary only the random negatives, so the
    Welch test treats the set's own sampling bias as signal and rejects too often for a set that
    is no concept at all. This test treats the concept's mean score as one new draw from the
    random-set distribution (a t prediction interval): ``t = (score - mean) / (sd sqrt(1 + 1/n))``
    with ``n - 1`` degrees of freedom.
    """
    r = np.asarray(random_scores, dtype=np.float64)
    sd = float(r.std(ddof=1))
    diff = float(score - r.mean())
    if sd == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    t = diff / (sd * np.sqrt(1.0 + 1.0 / r.size))
    return float(min(1.0, 2.0 * stats.t.sf(abs(t), r.size - 1)))


@contextmanager
def _captured(module: torch.nn.Module, layer_module: torch.nn.Module, store: dict[str, torch.Tensor],
              grad: bool) -> Iterator[None]:
    """Hook ``layer_module`` so its output lands in ``store["act"]`` (a grad leaf if ``grad``)."""

    def hook(_m: torch.nn.Module, _inp: Any, out: Any) -> Any:
        if not isinstance(out, torch.Tensor):
            raise UnsupportedModelError(
                f"tcav: the layer outputs {type(out).__name__}, not a tensor; pick a layer whose output is one tensor."
            )
        if grad:
            leaf = out.detach().requires_grad_(True)
            store["act"] = leaf
            return leaf
        store["act"] = out.detach()
        return None

    was_training = module.training
    handle = layer_module.register_forward_hook(hook)
    try:
        module.eval()
        yield
    finally:
        handle.remove()
        module.train(was_training)


def _activations(module: torch.nn.Module, layer_module: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    store: dict[str, torch.Tensor] = {}
    out = []
    with _captured(module, layer_module, store, grad=False), torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            module(x[i : i + batch_size])
            out.append(store.pop("act").reshape(min(batch_size, x.shape[0] - i), -1).double().cpu().numpy())
    return np.concatenate(out)


def _gradients(module: torch.nn.Module, layer_module: torch.nn.Module, x: torch.Tensor, target: int,
               batch_size: int) -> np.ndarray:
    store: dict[str, torch.Tensor] = {}
    out = []
    with _captured(module, layer_module, store, grad=True), torch.enable_grad():
        for i in range(0, x.shape[0], batch_size):
            logits = module(x[i : i + batch_size])
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not 0 <= target < logits.shape[1]:
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise InputError(f"tcav: target={target} must index a column of the model's batch x classes output; got output {shape}.")
            act = store.pop("act")
            (g,) = torch.autograd.grad(logits[:, target].sum(), act)
            out.append(g.reshape(g.shape[0], -1).double().cpu().numpy())
    return np.concatenate(out)


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())
    if t.ndim < 2 or t.shape[0] < 2:
        raise InputError(f"tcav: {name} must be a batch of at least 2 examples (examples x ...); got shape {tuple(t.shape)}.")
    return t


@register_analysis("tcav", kind="concept", paper="Kim et al. (2018), Interpretability Beyond Feature Attribution: "
                   "Quantitative Testing with Concept Activation Vectors (TCAV), ICML")
def tcav(
    model: torch.nn.Module,
    inputs: Any,
    concept: Any,
    random: Any,
    *,
    layer: str,
    target: int,
    n_random: int = 10,
    alpha: float = 0.05,
    l2: float = 1e-2,
    seed: int = 0,
    batch_size: int = 64,
    concept_name: str = "concept",
) -> TCAVResult:
    """TCAV score of a concept for class ``target`` at ``layer`` (Kim et al. 2018).

    Args:
        model: a ``torch.nn.Module`` mapping a batch to ``batch x classes`` logits.
        inputs: ``inputs x ...`` examples of the class whose sensitivity is measured.
        concept: ``n_concept x ...`` examples of the concept.
        random: ``n_pool x ...`` random examples; ``n_random`` subsets of
            ``min(n_concept, n_pool // 2)`` examples are drawn from it (needs ``n_pool >= 4``).
        layer: module path (``"features.3"``) whose output the CAV lives in.
        target: output column (class) tested.
        n_random: number of random subsets (concept CAVs and random CAVs), default=10 (>= 2).
        alpha: significance level of the t-test, default=0.05.
        l2: ridge penalty of the separator, default=1e-2.
        seed: seed of the subset draws, default=0 (a local generator; global RNGs untouched).
        batch_size: examples per forward pass, default=64.
        concept_name: name stored in the result, default="concept".
    """
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(f"tcav needs a torch.nn.Module (it hooks a layer); got {type(model).__name__}.")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 2:
        raise InputError(f"tcav: n_random={n_random!r} must be an integer >= 2 (the t-test needs several runs).")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"tcav: alpha={alpha!r} must be in (0, 1), e.g. 0.05.")
    if not l2 > 0:
        raise InputError(f"tcav: l2={l2!r} must be > 0.")
    x, xc, xr = _as_tensor(inputs, "inputs"), _as_tensor(concept, "concept"), _as_tensor(random, "random")
    if xr.shape[0] < 4:
        raise InputError(f"tcav: random must hold at least 4 examples (two disjoint subsets of 2); got {xr.shape[0]}.")
    path, layer_module = find_layer(model, layer, "tcav")
    a_c = _activations(model, layer_module, xc, batch_size)
    a_r = _activations(model, layer_module, xr, batch_size)
    grads = _gradients(model, layer_module, x, int(target), batch_size)
    rng = np.random.default_rng(seed)
    m = min(len(a_c), len(a_r) // 2)
    scores, rscores, accs, cavs = [], [], [], []
    for _ in range(n_random):
        perm = rng.permutation(len(a_r))
        s1, s2 = perm[:m], perm[m : 2 * m]
        cav, acc = concept_activation_vector(a_c, a_r[s1], l2)
        rcav, _ = concept_activation_vector(a_r[s1], a_r[s2], l2)
        scores.append(float(np.mean(grads @ cav > 0)))
        rscores.append(float(np.mean(grads @ rcav > 0)))
        accs.append(acc)
        cavs.append(cav)
    sc, rs = np.array(scores), np.array(rscores)
    p = welch_p_value(sc, rs)
    mean_cav = np.mean(cavs, axis=0)
    mean_cav = mean_cav / max(float(np.linalg.norm(mean_cav)), 1e-300)
    return TCAVResult(
        concept=concept_name,
        layer=path,
        target=int(target),
        score=float(sc.mean()),
        scores=sc,
        random_scores=rs,
        p_value=p,
        p_value_one_set=one_set_p_value(float(sc.mean()), rs),
        significant=bool(p < alpha),
        alpha=float(alpha),
        cav=mean_cav,
        sensitivities=grads @ mean_cav,
        cav_accuracy=np.array(accs),
    )
