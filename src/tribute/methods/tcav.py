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
regression or an SVM), but not the same one: the TCAV score depends on the CAV's direction, not
only on which training examples it classifies correctly, and two separators that both classify
every example correctly can point far apart. (aud35t, a small CNN on sklearn's digits, class 3,
concept "5", flattened conv activations: the ridge CAV and scikit-learn's
``LogisticRegression(C=1)`` CAV both separate the sets perfectly, yet their cosine is 0.29 -
0.46 and the per-run TCAV scores 0.77 / 0.77 / 1.00 / 0.00 / 1.00 / 0.87 against 0.97 / 0.43 /
0.57 / 0.37 / 0.90 / 0.60.) Scores are comparable across tribute runs, not with scores
computed with another separator.

Statistical tests. The CAV is learned ``n_random`` times, against ``n_random`` different random
subsets of ``m = min(n_concept, n_pool // 2)`` examples; the statistic is the mean TCAV score
``T`` over these runs. Three tests of "the concept is no different from random examples" are
computed (``test=`` picks the one behind ``p_value`` / ``significant``):

- ``"permutation"`` (default): under H0 the concept examples are exchangeable with the random
  examples. ``n_permutations`` times, a random subset of ``n_concept`` examples of the pooled
  (concept + random) activations is relabelled "concept", the rest is the random pool, and ``T``
  is recomputed with the same procedure (``n_random`` fresh random subsets of size ``m``);
  ``p = (1 + #{|T_null - 1/2| >= |T - 1/2|}) / (B + 1)`` (Phipson & Smyth 2010). It is exact at
  any sample size (a Monte-Carlo permutation test, valid for any centring; 1/2 makes it two-sided
  around "no direction"), so its false-positive rate is at most ``alpha`` when the concept set is
  drawn from the random law. The smallest attainable p-value is ``1 / (B + 1)``: with ``k``
  tests Bonferroni needs ``B + 1 > k / alpha``. Cheap: the gradients of the class logit at the
  layer do not depend on the CAV, and the ridge CAV has a dual form, so with ``K = A A^T`` (Gram
  matrix of the pooled activations) and ``GA = G A^T`` (gradients times activations) computed
  once, a CAV on rows ``S`` with labels ``y`` gives the directional derivatives
  ``G w = GA[:, S] (alpha - mean(alpha))`` with ``alpha = (H K_SS H + l2 I)^{-1} y`` (``H`` the
  centring matrix): ``B x n_random`` CAVs are one batched ``2m x 2m`` solve each, whatever the
  layer's width.
- ``"welch"``: the paper's test (Kim et al., Sec. 3.2): random-vs-random CAVs (random subset
  ``i`` against a disjoint random subset) give ``n_random`` null scores, and a two-sided Welch
  t-test compares the concept's ``n_random`` scores with them (the paper asks for a two-sided
  t-test; its reference code calls scipy's ``ttest_ind`` with the default equal variances,
  Student's form: with equal run counts the statistic is the same and only the degrees of
  freedom differ, e.g. p = 0.172 (Welch) vs 0.169 (Student)). **Miscalibrated** for small
  concept sets: the concept set is fixed across runs while only the random negatives change, so
  the test reads the set's own sampling bias as an effect.
- ``"one_set"`` (:func:`one_set_p_value`): the concept's mean score as one new draw from the
  random-vs-random scores (a t prediction interval). Calibrated but conservative.

Measured (``benchmarks/bench_tcav_calibration.py``: the synthetic model of
``tests/concepts/test_tcav.py``, 200 draws per concept-set size n = 10 / 20 / 50, a fresh pool
of 200 random examples per draw, ``n_random=10``, ``B=200``, alpha=0.05; Clopper-Pearson 95%
intervals): random-law sets flagged by ``permutation`` 0.070 [0.039, 0.115] / 0.085
[0.050, 0.133] / 0.065 [0.035, 0.109], by ``welch`` 0.285 / 0.340 / 0.350, by ``one_set``
0.000 / 0.015 / 0.020. Planted concept (+3 along the class direction) found by
``permutation`` 0.955 / 0.995 / 1.000, ``welch`` 0.990 / 0.990 / 1.000, ``one_set``
0.150 / 0.200 / 0.250; at half the effect 0.785 / 0.945 / 0.990 (``welch`` 0.935 / 0.970 /
0.995, ``one_set`` 0.125 / 0.150 / 0.230). A separate 1,000-draw run of random-law sets
(n = 20, ``B=200``) gave 0.053 (n = 10, ``B=100``: 0.048). Hence the default
``test="permutation"``: calibrated within the binomial intervals, nearly Welch's power from
n = 20 on, far above ``one_set``. Its limit: when every class input has nearly the same
gradient at the layer (a linear model, or a layer feeding a global max pool and a linear
head), each TCAV score is 0 or 1, relabelled random sets reach 0 or 1 too, and no test can
call a concept significant (``tribute bench --suite concepts`` shows it).

**Multiple testing**: when testing several concepts (or layers, or classes), divide ``alpha``
by the number of tests (Bonferroni, :func:`bonferroni`), as the paper recommends; ``tcav``
tests one concept at one layer for one class. :func:`tcav_plot` (``TCAVResult.plot()``) draws a
result next to its null distribution, :func:`tcav_bars` several results with Bonferroni stars.

Activations are captured with a forward hook on the named module, installed for the call and
removed in ``finally``; the model is put in eval mode and restored (training flag, parameters,
hooks) also when something raises.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..errors import InputError, UnsupportedModelError
from ..games.sites import sequence_first_owner
from ._eval_mode import eval_mode
from .analyses import register_analysis
from .cam import find_layer

__all__ = ["TESTS", "TCAVResult", "bonferroni", "concept_activation_vector", "one_set_p_value", "permutation_p_value",
           "tcav", "tcav_scores", "welch_p_value"]

TESTS = ("permutation", "welch", "one_set")


@dataclass(frozen=True)
class TCAVResult:
    """TCAV score of one concept at one layer for one class.

    Attributes:
        concept: the concept's name.
        layer: module path of the layer.
        target: the class (output column) tested.
        score: mean TCAV score over the ``n_random`` concept CAVs, in [0, 1] (the statistic).
        scores: ``n_random`` TCAV scores (concept vs each random subset).
        random_scores: ``n_random`` TCAV scores of random-vs-random CAVs (the Welch test's null).
        p_value: p-value of ``test``.
        p_value_one_set: :func:`one_set_p_value` of ``score`` vs ``random_scores``.
        significant: ``p_value < alpha`` (not corrected for multiple tests: use
            :func:`bonferroni` or divide ``alpha`` by the number of concepts x layers x classes).
        alpha: the level used.
        cav: the unit CAV averaged over runs (``activation dims``, flattened).
        sensitivities: ``inputs`` directional derivatives along ``cav``.
        cav_accuracy: ``n_random`` training accuracies of the concept CAVs.
        test: the test behind ``p_value``: ``"permutation"``, ``"welch"`` or ``"one_set"``.
        p_values: the p-value of every test computed (``"permutation"`` only when
            ``n_permutations > 0``).
        null_scores: ``n_permutations`` mean TCAV scores of relabelled concept sets (the
            permutation test's null distribution of ``score``).
        n_evals: rows through the model: one forward pass per concept and random example, and
            one forward-and-backward pass per input (the CAVs and every test reuse them).
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
    test: str = "permutation"
    p_values: dict[str, float] = field(default_factory=dict)
    null_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_evals: int = 0

    def plot(self, **kwargs: Any) -> Any:
        """Scores across runs next to the null distribution; see :func:`tribute.viz.tcav_plot`."""
        from ..viz import tcav_plot  # viz sits above methods: lazy (allowed in the layering test)

        return tcav_plot(self, **kwargs)


def bonferroni(p_values: Any, alpha: float = 0.05) -> np.ndarray:
    """Bonferroni decisions for ``k`` tests: ``p_i < alpha / k`` (family-wise error <= ``alpha``).

    Args:
        p_values: ``k`` p-values, or ``k`` :class:`TCAVResult` (their ``p_value`` is used).
        alpha: family-wise level, default=0.05.

    Returns:
        ``k`` booleans.

    >>> bonferroni([0.001, 0.02, 0.5]).tolist()
    [True, False, False]
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"bonferroni: alpha={alpha!r} must be in (0, 1), e.g. 0.05.")
    ps = np.array([float(getattr(p, "p_value", p)) for p in p_values], dtype=np.float64).reshape(-1)
    if ps.size and (not np.all(np.isfinite(ps)) or np.any(ps < 0) or np.any(ps > 1)):
        raise InputError(f"bonferroni: p-values must lie in [0, 1]; got {ps.tolist()}.")
    return np.asarray(ps < alpha / max(ps.size, 1))


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
    # torch float64 linear algebra: numpy's BLAS can oversubscribe threads on a busy machine
    a = torch.from_numpy(np.concatenate([positive, negative]).astype(np.float64))
    y = torch.cat([torch.ones(len(positive)), -torch.ones(len(negative))]).double()
    c = a - a.mean(dim=0)
    n, d = c.shape
    if d <= n:
        w_t = torch.linalg.solve(c.T @ c + l2 * torch.eye(d, dtype=torch.float64), c.T @ y)
    else:
        w_t = c.T @ torch.linalg.solve(c @ c.T + l2 * torch.eye(n, dtype=torch.float64), y)
    w = w_t.numpy()
    norm = float(np.linalg.norm(w))
    if norm == 0.0 or not np.isfinite(norm):
        raise InputError("tcav: the concept and random activations cannot be separated (the CAV is zero); "
                         "use more varied concept examples or another layer.")
    # the least-squares intercept on centred activations is mean(y) (non-zero when the two sets differ
    # in size); the separator's decision is sign(c w + mean(y)), not sign(c w)
    acc = float(np.mean(np.sign(c.numpy() @ w + float(y.mean())) == y.numpy()))
    return w / norm, acc


def welch_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch t-test p-value of ``mean(a) == mean(b)`` (equals scipy's ``ttest_ind(a, b, equal_var=False)``).

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


def tcav_scores(acts: np.ndarray, grads: np.ndarray, positive: np.ndarray, negative: np.ndarray,
                l2: float = 1e-2, chunk_elems: int = 4_000_000) -> np.ndarray:
    """TCAV scores of many ridge CAVs at once (one batched solve per chunk of runs).

    Run ``r`` separates rows ``positive[r]`` (label ``+1``) from rows ``negative[r]`` (``-1``)
    of ``acts`` with the ridge CAV of :func:`concept_activation_vector` (same centring and
    penalty; its length does not matter, only the sign of ``G w``). With ``d <= n`` (activation
    dims <= rows per run) the primal form ``w = (C^T C + l2 I)^{-1} C^T y`` is solved; otherwise
    the dual form: with ``K = A A^T`` and ``GA = G A^T`` computed once, ``G w = GA[:, S] H alpha``,
    ``alpha = (H K_SS H + l2 I)^{-1} y`` (``H`` the centring matrix, ``S`` the run's rows), so a
    run costs one ``n x n`` solve whatever the layer's width.

    Args:
        acts: ``N x d`` pooled activations.
        grads: ``inputs x d`` gradients of the class logit at the layer.
        positive: ``runs x n_pos`` row indices into ``acts``.
        negative: ``runs x n_neg`` row indices.
        l2: ridge penalty, default=1e-2.
        chunk_elems: bound on the largest block held at once, default=4e6.

    Returns:
        ``runs`` TCAV scores (the fraction of inputs with ``G w > 0``).
    """
    pos, neg = np.atleast_2d(positive), np.atleast_2d(negative)
    idx = torch.from_numpy(np.concatenate([pos, neg], axis=1).astype(np.int64))
    runs, n = idx.shape
    # torch's batched solve (numpy's can oversubscribe BLAS threads on a busy machine)
    a = torch.as_tensor(acts, dtype=torch.float64)
    g = torch.as_tensor(grads, dtype=torch.float64)
    d = a.shape[1]
    y = torch.cat([torch.ones(pos.shape[1]), -torch.ones(neg.shape[1])]).double()
    primal = d <= n
    if primal:
        ridge = l2 * torch.eye(d, dtype=torch.float64)
        per_run = n * d + d * d + g.shape[0]
    else:
        k_all, ga = a @ a.T, g @ a.T
        h = torch.eye(n, dtype=torch.float64) - 1.0 / n
        ridge = l2 * torch.eye(n, dtype=torch.float64)
        per_run = g.shape[0] * n + n * n
    out = np.empty(runs)
    step = max(1, chunk_elems // per_run)
    for s in range(0, runs, step):
        ix = idx[s : s + step]
        if primal:
            c = a[ix]
            c = c - c.mean(dim=1, keepdim=True)
            w = torch.linalg.solve(c.transpose(1, 2) @ c + ridge, (c.transpose(1, 2) @ y).unsqueeze(-1)).squeeze(-1)
            deriv = w @ g.T
        else:
            k = k_all[ix[:, :, None], ix[:, None, :]]
            alpha = torch.linalg.solve(h @ k @ h + ridge, y.expand(ix.shape[0], n).unsqueeze(-1)).squeeze(-1)
            deriv = torch.einsum("irn,rn->ri", ga[:, ix], alpha - alpha.mean(dim=1, keepdim=True))
        out[s : s + step] = (deriv > 0).double().mean(dim=1).numpy()
    return out


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """Two-sided Monte-Carlo permutation p-value around 1/2: ``(1 + #{|null - 1/2| >= |observed - 1/2|}) / (B + 1)``.

    Counting the observed statistic among the null draws keeps the test exact (Phipson & Smyth
    2010, "Permutation p-values should never be zero").

    >>> permutation_p_value(0.9, np.array([0.5, 0.6, 0.3, 0.95]))
    0.4
    """
    null = np.asarray(null, dtype=np.float64)
    extreme = np.abs(null - 0.5) >= abs(observed - 0.5) - 1e-12
    return float((1 + int(extreme.sum())) / (null.size + 1))


def _whole(value: Any) -> Any:
    """``value`` as a Python int when it is an integer (int, numpy or 0-d torch integer; not a
    bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return int(operator.index(value))
    except TypeError:
        return None


def _model_dtype(model: torch.nn.Module) -> tuple[torch.dtype | None, torch.device]:
    """The floating dtype of the model's parameters, else of its buffers (None when it holds no
    floating tensor), and the device of its first parameter or buffer (CPU when it holds none).
    Shared with CRAFT: a model holding its weights as buffers has no parameter to read them from."""
    tensors = [*model.parameters(), *model.buffers()]
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), None)
    return dtype, tensors[0].device if tensors else torch.device("cpu")


def _layer_name(module: torch.nn.Module, layer_module: torch.nn.Module) -> str:
    return next((n for n, m in module.named_modules() if m is layer_module), type(layer_module).__name__)


def _refuse_sequence_first(model: torch.nn.Module, path: str, who: str) -> None:
    """Refuse a layer whose output is sequence-first because it sits in (or is) a torch module built
    with ``batch_first=False`` (small42b: a layer inside a seq-first ``nn.TransformerEncoder`` with as
    many tokens as examples was read token-by-token as examples; TCAV scores 0.333 where the
    batch-first twin of the same weights gives 0.667, without a word)."""
    owner = sequence_first_owner(model, path)
    if owner is None:
        return
    mod = model.get_submodule(owner)
    where = "is" if owner == path else f"sits in {('module ' + repr(owner)) if owner else 'the model'}, which is"
    raise UnsupportedModelError(
        f"{who}: layer {path!r} {where} a {type(mod).__name__} built with batch_first=False, so its output is "
        "tokens x batch x channels; " + who + " needs the examples on the first axis. Build the module with "
        "batch_first=True (and feed it (batch, tokens, features) inputs), or name a layer outside it.")


def _pop_act(store: dict[str, torch.Tensor], module: torch.nn.Module, layer_module: torch.nn.Module,
             rows: int | None = None) -> torch.Tensor:
    if "act" not in store:
        raise UnsupportedModelError(f"tcav: layer {_layer_name(module, layer_module)!r} did not run in the model's "
                                    "forward pass; name a module the forward pass calls.")
    act = store.pop("act")
    # nn.TransformerEncoderLayer / DecoderLayer keep the flag on their attention
    batch_first = getattr(layer_module, "batch_first", getattr(getattr(layer_module, "self_attn", None),
                                                               "batch_first", True))
    # the CAV and the sensitivities read one row per example: a layer whose output is not
    # batch-first (nn.TransformerEncoderLayer's default batch_first=False gives tokens x batch x
    # channels) gave one row per TOKEN, each a mean over the examples, and a score, silently
    if rows is not None and (batch_first is False or act.ndim == 0 or act.shape[0] != rows):
        raise UnsupportedModelError(
            f"tcav: layer {_layer_name(module, layer_module)!r} outputs shape {tuple(act.shape)} for a batch "
            f"of {rows} examples; TCAV needs the examples on the first axis"
            + (" (the layer has batch_first=False: its output is tokens x batch x channels)"
               if batch_first is False else "")
            + ". Build the layer with batch_first=True, or name a batch-first module.")
    return act


def _channel_count(m: torch.nn.Module) -> int | None:
    """The channels of a module that sets them (a convolution's ``out_channels``, a norm's
    features, a Linear's ``out_features``...); None for one that does not (activations, pools)."""
    if isinstance(m, torch.nn.modules.conv._ConvNd):
        return int(m.out_channels)
    if isinstance(m, torch.nn.modules.batchnorm._NormBase):
        return int(m.num_features)
    if isinstance(m, torch.nn.GroupNorm):
        return int(m.num_channels)
    if isinstance(m, torch.nn.Linear):
        return int(m.out_features)
    if isinstance(m, torch.nn.LayerNorm):
        return int(m.normalized_shape[-1]) if len(m.normalized_shape) else None
    if isinstance(m, torch.nn.Embedding):
        return int(m.embedding_dim)
    return None


@contextmanager
def _channel_watch(module: torch.nn.Module, layer_module: torch.nn.Module, channels: dict[str, int]) -> Iterator[None]:
    """Hooks that set ``channels["c"]`` to the channel count of ``layer_module``'s output as the
    model set it: the layer's own (a convolution, Linear, norm) or that of the last module setting
    channels that finished before it (a block's last convolution, the Linear before an
    activation), for :func:`_channel_axis` to tell the channel axis by its size (also used by
    CRAFT). Removed on exit."""
    last: dict[str, Any] = {}

    def start(_m: torch.nn.Module, _inp: Any) -> None:  # a forward pass: nothing set channels yet
        last.clear()

    def producer(m: torch.nn.Module, _inp: Any, out: Any) -> None:
        c = _channel_count(m)
        if isinstance(m, _SHUFFLES) and isinstance(out, torch.Tensor) and out.ndim >= 2:
            # a PixelShuffle sets batch x C / r^2 x h r x w r: its output's axis 1 (rev52c: the
            # convolution's count before it no longer tells, and may sit on the width by chance)
            c = int(out.shape[1])
        if c is not None:
            last.update(c=c, last=int(isinstance(m, _CHANNELS_LAST)),
                        shape=tuple(out.shape) if isinstance(out, torch.Tensor) else None)

    def hook(_m: torch.nn.Module, _inp: Any, out: Any) -> None:
        own = _channel_count(layer_module)
        if isinstance(layer_module, _SHUFFLES) and isinstance(out, torch.Tensor) and out.ndim >= 2:
            own = int(out.shape[1])  # a PixelShuffle's own output: its channels on axis 1
        channels.clear()
        if own is not None:
            channels["c"], channels["last"] = own, int(isinstance(layer_module, _CHANNELS_LAST))
        elif "c" in last and isinstance(out, torch.Tensor) and last["shape"] == tuple(out.shape):
            # only an output of the producer's own shape (an activation, a residual sum, a
            # scaling of it): a concatenation (DenseNet, Inception), a functional convolution,
            # a PixelShuffle or a pooled squeeze-excitation vector change the channels after it
            channels["c"], channels["last"] = last["c"], last["last"]
            # the axis laid out contiguously (a channels-last producer's vectors permuted back to
            # batch x channels x h x w, as in ConvNeXt, keep stride 1 on axis 1)
            channels["unit"] = next((i for i in range(1, out.ndim) if out.stride(i) == 1 and out.shape[i] > 1),
                                    -1)
        elif "c" in last and isinstance(out, torch.Tensor) and last["shape"] is not None \
                and _channels_carried(last["shape"], last["c"], bool(last["last"]), tuple(out.shape)):
            # the producer's positions reshaped (aud52c): a timm Swin block reshapes its Linear's
            # batch x tokens x C to batch x h x w x C; untold, axis 1 (the height) was read as the
            # channels, silently (TCAV score 1.000 for 0.000, CRAFT concepts of length h)
            channels["c"], channels["last"] = last["c"], last["last"]
        elif "c" in last and isinstance(out, torch.Tensor) and last["shape"] is not None \
                and _channels_undecided(last["shape"], last["c"], bool(last["last"]), tuple(out.shape)):
            # rev52c: the producer's output reshaped or permuted so that its count sits on both end
            # axes (a Swin block with C == h, a Linear's tokens reshaped to batch x C x h x w with
            # w == C) or, after a convolution, on the last axis only (a permute to channels-last, or
            # a PixelShuffle's width by chance): the shape cannot tell, and PyTorch's image layout
            # read a Swin block's rows as its channels, silently (TCAV score 0.9 for 1.0)
            channels["undecided"] = last["c"]

    handles = [layer_module.register_forward_hook(hook)]
    handles += [m.register_forward_hook(producer) for m in module.modules()
                if m is not layer_module and (_channel_count(m) is not None or isinstance(m, _SHUFFLES))]
    # a count from the previous batch's head must not tell this batch's layer
    handles.append(module.register_forward_pre_hook(start))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _channels_carried(produced: tuple[int, ...], c: int, producer_last: bool, shape: tuple[int, ...]) -> bool:
    """Whether an output of ``shape`` holds the ``c`` channels of a producer's output of shape
    ``produced`` with only its positions reshaped, so that their count tells its channel axis:
    the same examples and values (same batch, same size) and ``c`` still at the producer's own end
    (its last axis for a Linear / LayerNorm, axis 1 for a convolution / norm) and not at the other
    end: a Swin block's ``batch x tokens x C`` reshaped to ``batch x h x w x C``, a convolution's
    map flattened to ``batch x C x positions``. Not a concatenation (its size differs), nor a
    permute (a PixelShuffle's output can have a permuted shape of its input's, so a permuted
    shape does not tell where the channels went: such a layer is read as before)."""
    if len(shape) < 3 or len(produced) < 2 or produced[0] != shape[0] or produced[-1 if producer_last else 1] != c:
        return False
    if int(np.prod(produced)) != int(np.prod(shape)):
        return False
    first, last = shape[1] == c, shape[-1] == c
    return first != last and (last if producer_last else first)


def _channels_undecided(produced: tuple[int, ...], c: int, producer_last: bool, shape: tuple[int, ...]) -> bool:
    """Whether a 4-D or wider output of ``shape``, holding a producer's output of shape ``produced``
    reshaped or permuted (same batch, same size, another shape), has the producer's count ``c``
    where its shape cannot tell the channel axis: on both axis 1 and the last axis (``batch x h x
    w x C`` with h == C from a Swin block, or ``batch x C x h x w`` with w == C from tokens
    reshaped to a map), or, after a channels-first producer, on the last axis only (a permute to
    ``batch x h x w x C``, or a functional pixel shuffle whose width equals the convolution's
    count). Not a channels-last producer's map permuted (ConvNeXt's block: read on axis 1)."""
    if len(shape) < 4 or len(produced) < 2 or produced[0] != shape[0] or tuple(produced) == tuple(shape) \
            or produced[-1 if producer_last else 1] != c or int(np.prod(produced)) != int(np.prod(shape)):
        return False
    if producer_last and sorted(produced) == sorted(shape):
        # a channels-last map permuted back to batch x C x h x w (ConvNeXt's block, w == C: read on
        # axis 1, rev41c), not refused; a permute after a convolution can be a PixelShuffle's by chance
        return False
    first, last = shape[1] == c, shape[-1] == c
    return last and (first or not producer_last)


@contextmanager
def _captured(module: torch.nn.Module, layer_module: torch.nn.Module, store: dict[str, torch.Tensor],
              grad: bool, channels: dict[str, int] | None = None) -> Iterator[None]:
    """Hook ``layer_module`` so its output lands in ``store["act"]`` (a grad leaf if ``grad``).

    With ``channels``, ``channels["c"]`` is the channel count of the layer's output as the model
    set it (:func:`_channel_watch`)."""

    def hook(_m: torch.nn.Module, _inp: Any, out: Any) -> Any:
        if not isinstance(out, torch.Tensor):
            raise UnsupportedModelError(
                f"tcav: layer {_layer_name(module, layer_module)!r} outputs a {type(out).__name__}, not a tensor "
                "(an LSTM's (output, (h, c)), a block's (h, attn)); name a module whose output is one tensor, "
                "or wrap the layer in a module that returns the element the concept lives in."
            )
        if "act" in store:  # a reused module (torchvision's BasicBlock.relu): the CAV would read one call only
            raise UnsupportedModelError(
                f"tcav: layer {_layer_name(module, layer_module)!r} runs 2 times (or more) per forward pass; "
                "TCAV needs one activation per example. Name a module that runs once (for a reused "
                "activation such as a ResNet block's relu, the block itself).")
        # copies: a ReLU(inplace=True) after the layer (torchvision's stems) would rewrite an alias of
        # the output (captured activations min 0.0 for -2.9) and refuses to edit a leaf in place
        if grad:
            leaf = out.detach().clone().requires_grad_(True)
            store["act"] = leaf
            return leaf.clone()
        store["act"] = out.detach().clone()
        return None

    with contextlib.ExitStack() as stack:
        if channels is not None:  # registered first: its hook on the layer sees the output before ours
            stack.enter_context(_channel_watch(module, layer_module, channels))
        handle = layer_module.register_forward_hook(hook)
        stack.callback(handle.remove)
        stack.enter_context(eval_mode(module))
        yield


#: Modules whose output has its channels on axis 1 (``batch x channels x ...``: convolutions and
#: what follows them channel by channel) or on the last axis (``batch x ... x channels``: a
#: Linear, LayerNorm or attention layer acting on each token's vector).
_CHANNELS_FIRST = (torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._NormBase,
                   torch.nn.GroupNorm, torch.nn.modules.pooling._MaxPoolNd, torch.nn.modules.pooling._AvgPoolNd,
                   torch.nn.modules.pooling._AdaptiveAvgPoolNd, torch.nn.modules.pooling._AdaptiveMaxPoolNd)
#: modules that move channels to positions (their output's channels: axis 1)
_SHUFFLES = (torch.nn.PixelShuffle, torch.nn.PixelUnshuffle)
_CHANNELS_LAST = (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Embedding, torch.nn.MultiheadAttention,
                  torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)


def _channel_axis(t: torch.Tensor, layer_module: torch.nn.Module, path: str, channel_axis: int | None,
                  seen: dict[str, int] | None = None, who: str = "tcav") -> int:
    """The axis of ``t`` (``batch x ...``) that holds the channels for ``spatial="mean"``.

    ``channel_axis`` when given. Else told by the channel count the model set for this output
    (``seen``: the layer's own, or that of the last convolution / Linear / norm that ran before
    it where its output has the layer's output shape, or its size with the positions reshaped and
    the channels kept at the producer's end, see :func:`_channels_carried`: not across a
    concatenation, a functional convolution, a PixelShuffle or a permute that changes the
    shape) where exactly one of axis 1 and the last axis has that size: a Swin
    stage's ``batch x height x width x channels`` and timm's ``LayerNorm2d`` on ``batch x
    channels x h x w`` are read the way they are laid out. Where both axes have it, by the
    layer's type (a convolution-like module: axis 1; a Linear/LayerNorm/attention module: the
    last axis), else by the type of the module that set the channels (for a channels-last one,
    the axis laid out with stride 1: axis 1 after a ConvNeXt block's permute back, else the
    last). Where neither has it (or
    no module set it), by the layer's type, and a 4-D or wider output of any other module is
    taken as PyTorch's image layout (axis 1); a 3-D output of another module that nothing
    tells (``batch x channels x length`` or ``batch x tokens x channels``) is refused."""
    if t.ndim < 3:
        raise InputError(f"{who}: spatial='mean' needs a layer output with spatial axes (batch x channels x ...); "
                         f"got shape {tuple(t.shape)}. Use spatial='flatten'.")
    if channel_axis is not None:
        if not -t.ndim < channel_axis < t.ndim or channel_axis % t.ndim == 0:
            raise InputError(f"{who}: channel_axis={channel_axis} is not an axis after the batch axis of layer "
                             f"{path!r}'s output of shape {tuple(t.shape)}; pass 1..{t.ndim - 1} or -1.")
        return channel_axis % t.ndim
    channels = None if seen is None else seen.get("c")
    first, last = int(t.shape[1]) == channels, int(t.shape[-1]) == channels
    if first != last:
        return 1 if first else t.ndim - 1
    if isinstance(layer_module, _CHANNELS_LAST):
        return t.ndim - 1
    if isinstance(layer_module, _CHANNELS_FIRST):
        return 1
    if first and seen is not None:  # both axes have the size: the module that set it tells
        # (a channels-last producer's output permuted back keeps its channels contiguous on axis 1)
        return t.ndim - 1 if seen.get("last") and seen.get("unit") != 1 else 1
    undecided = None if seen is None else seen.get("undecided")
    if undecided is not None and t.ndim >= 4:
        raise InputError(
            f"{who}: cannot tell which axis of layer {path!r}'s output (shape {tuple(t.shape)}, a "
            f"{type(layer_module).__name__}) holds the channels: the model set {undecided} channels before it on "
            f"a tensor this output reshapes or permutes, and {undecided} is the size of "
            f"{'both axis 1 and the last axis' if int(t.shape[1]) == undecided else 'the last axis only'} "
            "(batch x h x w x channels after a Swin block's reshape or a permute, or batch x channels x h x w "
            "after tokens reshaped to a map or a PixelShuffle). Pass channel_axis=-1 for the first, "
            "channel_axis=1 for the second.")
    if t.ndim >= 4:
        return 1
    said = ("" if channels is None else f" (the model set {channels} channels before it, the size of "
            "neither axis 1 nor the last axis)")
    raise InputError(
        f"{who}: spatial='mean' cannot tell which axis of layer {path!r}'s output (shape {tuple(t.shape)}, a "
        f"{type(layer_module).__name__}) holds the channels{said}: batch x channels x ... (after a convolution) or "
        "batch x ... x channels (a transformer block, a channels-last stage). Pass channel_axis=1 for the first, "
        "channel_axis=-1 for the second.")


def _flat(t: torch.Tensor, spatial: str, reduce: str, axis: int = 1) -> np.ndarray:
    """``batch x features``: flattened, or (``spatial="mean"``) the channels (``axis``) with the
    other (spatial / token) axes reduced."""
    if spatial == "mean":
        r = t.movedim(axis, 1).reshape(t.shape[0], t.shape[axis], -1)
        t = r.mean(dim=2) if reduce == "mean" else r.sum(dim=2)
    return t.reshape(t.shape[0], -1).double().cpu().numpy()


def _check_target(logits: Any, target: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not 0 <= target < logits.shape[1]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"tcav: target={target} must index a column of the model's batch x classes output; got output {shape}.")


def _activations(module: torch.nn.Module, layer_module: torch.nn.Module, x: torch.Tensor, batch_size: int,
                 spatial: str = "flatten", channel_axis: int | None = None, path: str = "",
                 target: int | None = None) -> np.ndarray:
    store: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}
    out = []
    with _captured(module, layer_module, store, grad=False, channels=seen), torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            store.clear()
            logits = module(x[i : i + batch_size])
            if target is not None and i == 0:
                # aud50x: a bad target was refused by the gradient pass, after every concept and
                # random example's activations (160 model rows for 50 + 100 + a batch of 10)
                _check_target(logits, target)
            act = _pop_act(store, module, layer_module, int(x[i : i + batch_size].shape[0]))
            axis = _channel_axis(act, layer_module, path, channel_axis, seen) if spatial == "mean" else 1
            out.append(_flat(act, spatial, "mean", axis))
    return np.concatenate(out)


def _gradients(module: torch.nn.Module, layer_module: torch.nn.Module, x: torch.Tensor, target: int,
               batch_size: int, spatial: str = "flatten", channel_axis: int | None = None,
               path: str = "") -> np.ndarray:
    store: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}
    out = []
    with _captured(module, layer_module, store, grad=True, channels=seen), torch.enable_grad():
        for i in range(0, x.shape[0], batch_size):
            # calls are counted per forward pass: activation checkpointing re-runs the layer while the
            # previous chunk's gradient is computed (a call outside any forward pass, not a reuse)
            store.clear()
            logits = module(x[i : i + batch_size])
            _check_target(logits, target)
            act = _pop_act(store, module, layer_module, int(logits.shape[0]))
            (g,) = torch.autograd.grad(logits[:, target].sum(), act)
            # spatial="mean": derivative along the CAV added at every position (sum over positions)
            axis = _channel_axis(g, layer_module, path, channel_axis, seen) if spatial == "mean" else 1
            out.append(_flat(g, spatial, "sum", axis))
    return np.concatenate(out)


def _as_tensor(x: Any, name: str, dtype: torch.dtype | None = None, ids: bool = False) -> torch.Tensor:
    """``x`` as a tensor: a floating tensor or array in ``dtype`` (the model's floating dtype), an
    integer tensor as it is, an integer array kept integer when ``ids`` (a model with an
    embedding: token ids). Arrays were cast to the default float32, so token ids, and float64
    arrays for a float64 model, were refused as examples "the model cannot take"; float32 tensors
    for a float64 model were refused (aud52c) where ``tribute.explain`` and CRAFT cast them."""
    if isinstance(x, torch.Tensor):
        t = x
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            t = t.to(dtype)
            if bool(torch.isfinite(x).all()) and not bool(torch.isfinite(t).all()):
                raise InputError(f"tcav: {name} holds values outside the range of the model's {dtype} (largest "
                                 f"|value| {float(x.abs().max()):.3g} in {x.dtype}); rescale them.")
    else:
        arr = np.asarray(x)
        keep = ids and arr.dtype.kind in "iu"
        # ids as int64: an Embedding takes only int64 / int32 indices (nanoGPT-style uint16 token
        # files were refused as examples "the model cannot take")
        t = (torch.as_tensor(arr.astype(np.int64)) if keep
             else torch.as_tensor(arr, dtype=dtype or torch.get_default_dtype()))
        # rev52c: a finite array past the model's dtype (1e5 for float16, 1e300 for float32) was
        # refused as one that "holds NaN or inf values", as tensors were before aud52c
        if t.is_floating_point() and arr.dtype.kind in "fiu" and bool(np.isfinite(arr).all()) \
                and not bool(torch.isfinite(t).all()):
            raise InputError(f"tcav: {name} holds values outside the range of the model's {t.dtype} (largest "
                             f"|value| {float(np.abs(arr).max()):.3g} in {arr.dtype}); rescale them.")
    if t.ndim < 2 or t.shape[0] < 2:
        raise InputError(f"tcav: {name} must be a batch of at least 2 examples (examples x ...); got shape {tuple(t.shape)}.")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).flatten(1).any(dim=1).sum())
        raise InputError(f"tcav: {name} holds NaN or inf values ({bad} of {t.shape[0]} examples); remove or "
                         "impute them.")
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
    test: str = "permutation",
    n_permutations: int = 200,
    l2: float = 1e-2,
    spatial: str = "flatten",
    channel_axis: int | None = None,
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
        layer: module path (``"features.3"``) whose output the CAV lives in; the module must run
            once per forward pass (a reused module, such as torchvision's ``BasicBlock.relu``, is
            refused).
        target: output column (class) tested.
        n_random: number of random subsets (concept CAVs and random CAVs), default=10 (>= 2).
        alpha: significance level, default=0.05.
        test: ``"permutation"`` (calibrated, see the module notes), ``"welch"`` (the paper's
            t-test) or ``"one_set"``, default="permutation".
        n_permutations: relabellings ``B`` of the permutation test, default=200 (smallest
            p-value ``1 / (B + 1)``; 0 skips it, allowed unless ``test="permutation"``).
        l2: ridge penalty of the separator, default=1e-2.
        spatial: ``"flatten"`` (the paper: the CAV lives in the flattened layer output) or
            ``"mean"`` (for ``batch x channels x ...`` layers: the CAV lives in the channel means
            over positions, and the sensitivity is the derivative along the CAV added at every
            position, i.e. the gradient summed over positions; insensitive to where a concept
            appears), default="flatten".
        channel_axis: with ``spatial="mean"``, the axis of the layer's output that holds the
            channels (``1`` for ``batch x channels x ...``, ``-1`` for a transformer's ``batch x
            tokens x channels``). default=None: told by the channel count the model set for
            that output (the layer's own, or the last convolution / Linear / norm that ran
            before it with an output of the layer's shape: a ReLU after a Linear, a Swin
            stage's ``batch x h x w x channels``; or of its size with its positions reshaped and
            the channels kept at its end: timm's Swin block, whose Linear ran on ``batch x tokens x
            channels``; not a DenseNet or Inception block's concatenation, whose count changed
            after it, nor a permute) where
            only one of axis 1 and the last axis has that size; else by the layer (convolution
            and pooling layers: 1; Linear, LayerNorm and attention layers: -1) or by the module
            that set the channels; else a 4-D or wider output is read in PyTorch's image layout
            (1), and a 3-D output nothing tells is refused until it is given.
        seed: seed of the subset draws, default=0 (a local generator; global RNGs untouched).
        batch_size: examples per forward pass, default=64.
        concept_name: name stored in the result, default="concept".
    """
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(f"tcav needs a torch.nn.Module (it hooks a layer); got {type(model).__name__}.")
    # numpy integers too (a count read from a config array was refused); a seed or batch size
    # out of range reached numpy / range() ("expected non-negative integer", "arg 3 must not be zero")
    if _whole(batch_size) is None or int(batch_size) < 1:
        raise InputError(f"tcav: batch_size={batch_size!r} must be an integer >= 1 (examples per forward pass).")
    batch_size = int(batch_size)
    if seed is not None and not isinstance(seed, (np.random.Generator, np.random.SeedSequence,
                                                  np.random.BitGenerator)):
        whole = _whole(seed)
        if whole is None:  # what numpy's generator takes besides integers (a list of them, as main did; rev46k)
            try:
                fits = not isinstance(seed, (bool, np.bool_, str, bytes)) and bool(np.random.SeedSequence(seed))
            except (TypeError, ValueError):
                fits = False
        else:
            fits, seed = whole >= 0, whole  # numpy takes no torch integer
        if not fits:
            raise InputError(f"tcav: seed={seed!r} must be an integer >= 0 (or None for fresh draws).")
    if (_whole(n_random) or 0) < 2:
        raise InputError(f"tcav: n_random={n_random!r} must be an integer >= 2 (the t-test needs several runs).")
    n_random = int(n_random)
    if not 0.0 < alpha < 1.0:
        raise InputError(f"tcav: alpha={alpha!r} must be in (0, 1), e.g. 0.05.")
    try:  # int, numpy or 0-d torch integers; not 1.5 (was silently read as 1) nor True
        if isinstance(target, bool):
            raise TypeError
        target = int(operator.index(target))
    except TypeError:
        raise InputError(f"tcav: target={target!r} must be an integer output column (class index), "
                         "e.g. target=3.") from None
    if test not in TESTS:
        raise InputError(f"tcav: test={test!r} must be one of {TESTS} ('welch' is the paper's t-test).")
    perms = _whole(n_permutations)
    if perms is None or perms < 0 or (test == "permutation" and perms < 1):
        raise InputError(f"tcav: n_permutations={n_permutations!r} must be an integer >= 1 with test='permutation' "
                         "(>= 0 otherwise); e.g. 200 (smallest p-value 1/(B+1)).")
    n_permutations = perms
    if not l2 > 0:
        raise InputError(f"tcav: l2={l2!r} must be > 0.")
    if spatial not in ("flatten", "mean"):
        raise InputError(f"tcav: spatial={spatial!r} must be 'flatten' (the paper's) or 'mean' (channel means).")
    if channel_axis is not None and (isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer))
                                     or spatial != "mean"):
        raise InputError(f"tcav: channel_axis={channel_axis!r} must be an int axis (1 or -1) and applies to "
                         f"spatial='mean' only (spatial={spatial!r}).")
    channel_axis = None if channel_axis is None else int(channel_axis)
    # the parameters' floating dtype, else the buffers' (aud52c: numpy examples for a model holding
    # float64 weights as buffers were cast to float32 and refused as examples "the model cannot take")
    dtype, _ = _model_dtype(model)
    ids = any(isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag)) for m in model.modules())
    # image-shaped integer arrays (uint8 pixels) for a model with an image convolution are pixels,
    # not token ids, also where the model holds an Embedding (CLIP's vision tower: a patch
    # convolution and an nn.Embedding position table): they were kept uint8 and refused
    images = any(isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)) for m in model.modules())

    def _ids(a: Any) -> bool:
        return ids and not (images and np.ndim(a) >= 4)

    def _read(as_ids: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (_as_tensor(inputs, "inputs", dtype, as_ids and _ids(inputs)),
                _as_tensor(concept, "concept", dtype, as_ids and _ids(concept)),
                _as_tensor(random, "random", dtype, as_ids and _ids(random)))

    x, xc, xr = _read(True)
    # integer arrays kept as token ids for a model with an Embedding
    kept = any(not isinstance(a, torch.Tensor) and not t.is_floating_point()
               for a, t in ((inputs, x), (concept, xc), (random, xr)))
    if xr.shape[0] < 4:
        raise InputError(f"tcav: random must hold at least 4 examples (two disjoint subsets of 2); got {xr.shape[0]}.")
    path, layer_module = find_layer(model, layer, "tcav")
    _refuse_sequence_first(model, path, "tcav")
    spent = [0]  # rows of a pass that failed on integer arrays read as ids

    def _acts() -> list[np.ndarray]:
        out = []
        for name, t in (("concept", xc), ("random", xr)):
            try:
                out.append(_activations(model, layer_module, t, batch_size, spatial, channel_axis, path,
                                        int(target) if name == "concept" else None))
            except RuntimeError as exc:  # the model cannot take them (a shape mismatch, most often)
                spent[0] += sum(len(a) for a in out) + min(int(batch_size), int(t.shape[0]))
                raise InputError(f"tcav: the model fails on the {name} examples (shape {tuple(t.shape)}; inputs "
                                 f"{tuple(x.shape)}): {exc}. Give {name} examples the model accepts.") from exc
        return out

    try:
        acts = _acts()
    except InputError as err:
        # integer arrays are numbers, not ids, for a model whose Embedding reads a column it casts
        # itself (a tabular net's categorical table): kept integer they were refused ("mat1 and
        # mat2 must have the same dtype"), as floats (before aud42s) they were read
        if not kept or not isinstance(err.__cause__, RuntimeError):
            raise
        x, xc, xr = _read(False)
        try:
            acts = _acts()
        except InputError:
            raise err from err.__cause__
    a_c, a_r = acts
    try:
        grads = _gradients(model, layer_module, x, int(target), batch_size, spatial, channel_axis, path)
    except RuntimeError as exc:  # as for the concept and random examples: torch's bare shape error before
        raise InputError(f"tcav: the forward or backward pass fails on the inputs (shape {tuple(x.shape)}; concept examples "
                         f"{tuple(xc.shape)}): {exc}. Give inputs the model accepts.") from exc
    if not a_c.shape[1] == a_r.shape[1] == grads.shape[1]:
        raise InputError(f"tcav: layer {path!r} gives {a_c.shape[1]} values per concept example, {a_r.shape[1]} "
                         f"per random example and {grads.shape[1]} per input; with spatial='flatten' the "
                         "examples must match the inputs' size (or use spatial='mean' for channel means).")
    rng = np.random.default_rng(seed)
    n_c, n_pool = len(a_c), len(a_r)
    m = min(n_c, n_pool // 2)
    # Pool rows: concept 0..n_c-1, random n_c..n_c+n_pool-1; every CAV's scores in kernel form.
    pool = np.concatenate([a_c, a_r])
    draws = np.argsort(rng.random((n_random, n_pool)), axis=1)
    s1, s2 = n_c + draws[:, :m], n_c + draws[:, m : 2 * m]
    concept_rows = np.broadcast_to(np.arange(n_c), (n_random, n_c))
    sc = tcav_scores(pool, grads, concept_rows, s1, l2)
    rs = tcav_scores(pool, grads, s1, s2, l2)
    score = float(sc.mean())
    p_values = {"welch": welch_p_value(sc, rs), "one_set": one_set_p_value(score, rs)}
    null = np.zeros(0)
    if n_permutations > 0:
        relabel = np.argsort(rng.random((n_permutations, n_c + n_pool)), axis=1)
        fake, rest = relabel[:, :n_c], relabel[:, n_c:]
        inner = np.argsort(rng.random((n_permutations, n_random, n_pool)), axis=2)[:, :, :m]
        negatives = np.take_along_axis(rest[:, None, :], inner, axis=2).reshape(-1, m)
        positives = np.repeat(fake, n_random, axis=0)
        null = tcav_scores(pool, grads, positives, negatives, l2).reshape(n_permutations, n_random).mean(axis=1)
        p_values["permutation"] = permutation_p_value(score, null)
    accs, cavs = [], []
    for i in range(n_random):
        cav, acc = concept_activation_vector(a_c, a_r[s1[i] - n_c], l2)
        accs.append(acc)
        cavs.append(cav)
    mean_cav = np.mean(cavs, axis=0)
    mean_cav = mean_cav / max(float(np.linalg.norm(mean_cav)), 1e-300)
    p = p_values[test]
    return TCAVResult(
        concept=concept_name,
        layer=path,
        target=int(target),
        score=score,
        scores=sc,
        random_scores=rs,
        p_value=p,
        p_value_one_set=p_values["one_set"],
        significant=bool(p < alpha),
        alpha=float(alpha),
        cav=mean_cav,
        sensitivities=grads @ mean_cav,
        cav_accuracy=np.array(accs),
        test=test,
        p_values=p_values,
        null_scores=null,
        n_evals=int(x.shape[0] + xc.shape[0] + xr.shape[0]) + (spent[0] if kept else 0),
    )
