"""Shared test models and data (import as `from tribute_testing import ...`)."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

import tribute
from tribute import Attribution


class LinearModel(torch.nn.Module):
    """f(x) = x @ W.T + c, float64: closed forms for every method."""

    def __init__(self, n_in: int = 5, n_out: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = torch.nn.Linear(n_in, n_out).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(n_out, n_in, generator=g, dtype=torch.float64))
            self.lin.bias.copy_(torch.randn(n_out, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class RowCounter(torch.nn.Module):
    """Wraps a model and counts the rows it is called on (``rows``): budgets checked where the model runs."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        out: torch.Tensor = self.inner(x)
        return out


def make_mlp(n_in: int = 6, n_out: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = torch.nn.Sequential(
            torch.nn.Linear(n_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
            torch.nn.Linear(16, n_out),
        )
    return m.to(dtype).eval()


def make_cnn(seed: int = 0, dtype: torch.dtype = torch.float64, n_out: int = 4) -> torch.nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, n_out),
        )
    return m.to(dtype).eval()




def gap_of(attr: Attribution) -> np.ndarray:
    """``attr.gap`` (completeness/efficiency gap), failing the test when the method reported none."""
    assert attr.gap is not None, f"{attr.method}: no completeness gap reported"
    return attr.gap


def shapley_from_table(v: dict[tuple[int, ...], np.ndarray], n: int) -> np.ndarray:
    """Exact Shapley values from every coalition's value, ``v[(b_1, ..., b_n)]`` (0/1 tuples;
    each value an array of any shape): ``... x n``, by the textbook weighted sum."""
    import math

    first = next(iter(v.values()))
    phi = np.zeros((*np.shape(first), n))
    for b, val in v.items():
        for i in range(n):
            if not b[i]:
                s = sum(b)
                w = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
                phi[..., i] += w * (np.asarray(v[(*b[:i], 1, *b[i + 1:])]) - np.asarray(val))
    return phi


def interventional_enumeration(f: Callable[[np.ndarray], Any], x: np.ndarray,
                               bg: np.ndarray) -> np.ndarray:
    """Interventional Shapley values ``n x d`` of ``f`` (rows -> one output each) by enumerating
    all ``2^d`` coalitions: ``v(S) = mean_b f(x_S, b_rest)`` over the background rows ``bg``
    (the model's own prediction as the truth for tree readers; shared by the tree tests)."""
    n, d = x.shape
    vals: dict[tuple[int, ...], np.ndarray] = {}
    for s in itertools.product((0, 1), repeat=d):
        keep = np.array(s, bool)
        rows = np.repeat(bg[None], n, 0)
        rows[:, :, keep] = x[:, None, keep]
        vals[s] = np.asarray(f(rows.reshape(-1, d)), np.float64).reshape(n, bg.shape[0]).mean(1)
    return shapley_from_table(vals, d)


def stderr_of(attr: Attribution) -> np.ndarray:
    """``attr.flat_stderr()`` (batch x targets x players), failing the test when there is none."""
    se = attr.flat_stderr()
    assert se is not None, f"{attr.method}: no standard errors reported"
    return se



#: Environment for a local Ray instance on the loopback address only (Ray reads it when it is
#: imported; RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps 127.0.0.1 instead of the machine's address).
RAY_LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@contextlib.contextmanager
def factory_module(folder: Path, name: str, source: str) -> Iterator[ModuleType]:
    """Write ``source`` as ``folder/name.py``, import it (``--model name:factory`` of the CLI
    finds it on ``sys.path``), and remove both the path entry and the module afterwards."""
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)


def record_plan(monkeypatch: Any, call: Callable[[], Any]) -> tuple[list[int], list[tuple[int, int]], Any]:
    """Run ``call()`` and return the planned model rows of every progress ``replan``, what
    :func:`tribute.engine.observe_progress` listeners saw, and ``call``'s result (warnings
    ignored)."""
    import warnings

    from tribute.engine import Progress, observe_progress

    planned: list[int] = []
    seen: list[tuple[int, int]] = []
    replan = Progress.replan

    def spy(self: Progress, *a: Any, **k: Any) -> None:
        replan(self, *a, **k)
        planned.append(self.planned_rows)

    monkeypatch.setattr(Progress, "replan", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with observe_progress(lambda d, t: seen.append((d, t))):
            out = call()
    return planned, seen, out


def windows_long_way(shape: tuple[int, ...], win: tuple[int, ...], st: tuple[int, ...],
                     lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Occlusion windows ``lo..hi`` as element indicators built one by one (row-major over the
    window grid): the reference for the methods' vectorised window masks."""
    from tribute.methods.occlusion import window_positions

    counts = [window_positions(s, w, t) for s, w, t in zip(shape, win, st)]
    rows = []
    for k in range(lo, int(np.prod(counts)) if hi is None else hi):
        pos, rem = [], k
        for c in reversed(counts):
            pos.append(rem % c)
            rem //= c
        pos.reverse()
        m = torch.zeros(shape, dtype=torch.float64)
        m[tuple(slice(p * t, p * t + w) for p, w, t in zip(pos, win, st))] = 1.0
        rows.append(m.reshape(-1))
    return torch.stack(rows)


def seed_batchnorm(model: torch.nn.Module, g: torch.Generator) -> None:
    """Batch-norm statistics and affine parameters that matter (float64 draws from ``g``, the
    same on every CPU) for every ``BatchNorm2d`` of a float64 ``model``."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.rand(c, generator=g, dtype=torch.float64) - 0.5)
            m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g, dtype=torch.float64))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g, dtype=torch.float64))
            m.bias.data.copy_(0.6 * torch.rand(c, generator=g, dtype=torch.float64) - 0.3)


def quick_kw(method: str, *, seed: int, window: int | None = None) -> dict[str, Any]:
    """Keyword arguments of a quick :func:`tribute.explain` call on a small model: target 1,
    no progress bar, budget 40 for kernel_shap / lime, 8 steps for integrated gradients and
    (``window``) an occlusion window."""
    kw: dict[str, Any] = {"method": method, "target": 1, "seed": seed, "progress": False}
    if method in ("kernel_shap", "lime"):
        kw["budget"] = 40
    if method == "integrated_gradients":
        kw["steps"] = 8
    if method == "occlusion" and window is not None:
        kw["window"] = window
    return kw


@dataclass
class CappedNumpyLinear:
    """A numpy linear model ``x @ w`` that cannot be weakly referenced as a dict key (a
    dataclass with eq is unhashable); passes of more than ``cap`` rows raise, like a model with
    a fixed buffer. The engine's by-id caches are tested with it (test_small42, test_rev42a)."""

    w: np.ndarray
    cap: int = 10**9

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[0] > self.cap:
            raise RuntimeError(f"fixed buffer of {self.cap} rows exceeded ({x.shape[0]} rows)")
        out: np.ndarray = x @ self.w
        return out


def feed_tuner(t: Any, rate_of: Callable[[int], float], rounds: int = 20) -> list[int]:
    """Drive a ``BatchTuner`` with a synthetic throughput curve (rows per second of each size,
    every pass timed exactly); returns the sizes it proposed."""
    sizes = []
    for _ in range(rounds):
        s = t.propose()
        sizes.append(s)
        t.record(s, s, s / rate_of(s))
    return sizes


def object_at_freed_id(old_id: int, make: Callable[[], Any], tries: int = 50_000) -> Any:
    """A new object from ``make()`` that sits at ``old_id``, the id of a freed model.

    CPython usually hands a freed object's memory (so its id) to a new object of the same size
    within a few hundred allocations, but not always (another test's heap state, xdist): when
    no new object takes the id within ``tries``, a fresh object gets the engine's id-keyed
    entries of ``old_id`` moved to its own id, which is what the engine sees when an object does
    take the id. Tests of the engine's by-id caches (test_small42, test_rev42a) use it."""
    held = []
    for _ in range(tries):
        new = make()
        if id(new) == old_id:
            return new
        held.append(new)
    new = make()
    _move_engine_ids(old_id, id(new))
    return new


def _move_engine_ids(old: int, new: int) -> None:
    from tribute.engine import core, tuning

    for k in [k for k in tuning._TUNERS_BY_ID if k[0] == old]:
        tuning._TUNERS_BY_ID[(new, *k[1:])] = tuning._TUNERS_BY_ID.pop(k)
    for w in [w for w in tuning._WARM_BY_ID if w[0] == old]:
        tuning._WARM_BY_ID.discard(w)
        tuning._WARM_BY_ID.add((new, w[1]))
    owners: dict[int, Any] = getattr(tuning, "_OWNER_BY_ID", {})  # (absent before rev42a)
    if old in owners:
        owners[new] = owners.pop(old)
    if old in core._OK_ROWS_BY_ID:
        core._OK_ROWS_BY_ID[new] = core._OK_ROWS_BY_ID.pop(old)


class DropoutSAE(torch.nn.Module):
    """A 4 -> 5 -> 4 float64 SAE with a dropout in its encoder (``encode`` / ``decode`` methods, as in
    SAELens), seeded weights: in training mode its credits are random, in eval mode exact."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.e = torch.nn.Linear(4, 5, dtype=torch.float64)
        self.d = torch.nn.Linear(5, 4, dtype=torch.float64)
        with torch.no_grad():
            for p in (*self.e.parameters(), *self.d.parameters()):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        self.drop = torch.nn.Dropout(0.5)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.drop(self.e(h)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.d(z)
        return out


class ChannelsLast(torch.nn.Module):
    """A channels-first image model on channels-last ``(batch, H, W, C)`` inputs."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.permute(0, 3, 1, 2))
        return out


def sae_splice_loo(net: torch.nn.Sequential, encode: Any, decode: Any, x: torch.Tensor, n_latents: int) -> np.ndarray:
    """Leave-one-out credits, zero ablation, of an SAE spliced after ``net[1]`` of a 3-layer
    ``Sequential`` (by hand, eval-mode modules assumed): one column per latent, then the
    reconstruction error's column, for the output's first column."""
    with torch.no_grad():
        h = net[1](net[0](x))
        z = encode(h)
        rec = decode(z)
        e = h - rec

        def v(keep: torch.Tensor, err: float) -> torch.Tensor:
            out: torch.Tensor = net[2](h + (decode(z * keep) - rec) + (e * err - e))[:, 0]
            return out

        ones = torch.ones(n_latents, dtype=x.dtype)
        full = v(ones, 1.0)
        truth = [full - v((torch.arange(n_latents) != j).to(x.dtype), 1.0) for j in range(n_latents)]
        truth.append(full - v(ones, 0.0))
    return torch.stack(truth, 1).numpy()


def assert_sae_digest_tells_apart(net: torch.nn.Module, x: torch.Tensor, make_sae: Callable[[Any], Any],
                                  first: dict[str, torch.Tensor], other: dict[str, torch.Tensor],
                                  apart: float) -> None:
    """Credits of the SAE built from ``first`` are refused on the game of the one built from
    ``other`` (their credits differ by more than ``apart``, so scoring one on the other's game is
    no check), and accepted with error 0 on an SAE over equal tensors in new objects (exact
    Shapley is efficient)."""
    import pytest

    import tribute

    def explain(weights: dict[str, torch.Tensor]) -> Attribution:
        return tribute.explain(net, x, method="exact_shapley", target=0,
                               players=tribute.components(net, sae=make_sae(weights)))

    attr, theirs = explain(first), explain(other)
    assert float(np.abs(np.asarray(attr.values) - np.asarray(theirs.values)).max()) > apart
    with pytest.raises(tribute.InputError, match="component site 0"):
        tribute.evaluate(net, x, attr, metric="shapley_error", players=tribute.components(net, sae=make_sae(other)))
    same = {k: v.clone() for k, v in first.items()}
    ok = tribute.evaluate(net, x, attr, metric="shapley_error", players=tribute.components(net, sae=make_sae(same)))
    assert float(np.max(np.abs(ok.scores))) < 1e-9


def seeded_tanh_net(seed: int = 6) -> torch.nn.Sequential:
    """``Linear(3, 4) -> Tanh -> Linear(4, 2)`` in float64, eval mode, every parameter drawn from
    ``randn`` of one seeded generator (the SAE splice tests' host network, spliced at ``"1"``)."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net.eval()


def tanh_net_with_numpy(n_in: int = 6, hidden: int = 5, n_out: int = 3, seed: int = 11,
                        dtype: torch.dtype = torch.float64) -> tuple[Any, dict[str, np.ndarray]]:
    """``Linear -> Tanh -> Linear`` with standard-normal weights from ``seed``, and the same
    weights as numpy arrays (``w1`` is ``n_in x hidden``) for a forward written by hand
    (:func:`tanh_net_numpy_forward`)."""
    rng = np.random.default_rng(seed)
    w = {"w1": rng.normal(size=(n_in, hidden)), "b1": rng.normal(size=hidden),
         "w2": rng.normal(size=(hidden, n_out)), "b2": rng.normal(size=n_out)}
    net: Any = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
                                   torch.nn.Linear(hidden, n_out)).to(dtype)
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(w["w1"].T))
        net[0].bias.copy_(torch.from_numpy(w["b1"]))
        net[2].weight.copy_(torch.from_numpy(w["w2"].T))
        net[2].bias.copy_(torch.from_numpy(w["b2"]))
    return net, w


def tanh_net_numpy_forward(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The forward of :func:`tanh_net_with_numpy`'s network in numpy (no torch, no tribute)."""
    return np.asarray(np.tanh(x @ w["w1"] + w["b1"]) @ w["w2"] + w["b2"])


def output_and_activation(model: torch.nn.Module, layer: str, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """``model(x)`` and the output of its submodule ``layer`` (a dotted path) in that call, read
    by a forward hook that is removed afterwards (for hand-written Grad-CAM references)."""
    seen: dict[str, torch.Tensor] = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
    try:
        out = model(x)
    finally:
        h.remove()
    return out, seen["a"]


def grad_cam_weights(a: torch.Tensor, g: torch.Tensor, pp: bool = False) -> torch.Tensor:
    """Grad-CAM's channel weights of a layer output ``a`` and its gradient ``g`` (channels on
    axis 1, ``(n, C, h, w)``): the spatial mean of ``g`` (Selvaraju et al., 2017), or with ``pp``
    Grad-CAM++'s ``sum alpha * relu(g)``, ``alpha = g^2 / (2 g^2 + sum(a) g^3)`` (0 where the
    denominator is; Chattopadhay et al., 2018). Shape ``(n, C, 1, 1)``."""
    if not pp:
        return g.mean((2, 3), keepdim=True)
    denom = 2 * g**2 + a.sum((2, 3), keepdim=True) * g**3
    alpha = torch.where(denom != 0, g**2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(denom))
    return (alpha * g.clamp_min(0)).sum((2, 3), keepdim=True)


def batch_topk_encoder(W: torch.Tensor, k: int = 2) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch top-k SAE encoder (``relu(a W')`` keeping the ``k x rows`` largest codes of the
    whole batch): a row's latents depend on the other rows it is encoded with."""
    def encode(a: torch.Tensor) -> torch.Tensor:
        z = torch.relu(a @ W.T)
        flat = z.reshape(-1)
        keep = torch.zeros_like(flat)
        keep[flat.topk(k * int(np.prod(a.shape[:-1]))).indices] = 1.0
        return (flat * keep).reshape(z.shape)

    return encode


def randn_init(m: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """``m`` in float64 eval mode with every parameter drawn ``N(0, scale^2)`` from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
    return m.double().eval()


def logistic_net(n: int, seed: int) -> torch.nn.Sequential:
    """A float64 logistic model ``sigmoid(w.x + 0.3)`` on ``n`` inputs, ``w ~ N(0, 1.5^2)`` from
    ``seed``: a plain input ``Linear`` (what gp_shapley's first-layer prior reads)."""
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(n, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1, n, generator=g, dtype=torch.float64) * 1.5)
        lin.bias.fill_(0.3)
    return torch.nn.Sequential(lin, torch.nn.Sigmoid()).eval()


def tanh_linear_ablation(lin: torch.nn.Linear, x: np.ndarray, target: int = 0) -> np.ndarray:
    """feature_ablation of ``tanh(lin(x))[:, target]`` at baseline 0, by hand in numpy:
    ``f(x) - f(x with feature i = 0)`` per feature."""
    w = lin.weight.detach().numpy()
    b = lin.bias.detach().numpy()
    full = np.tanh(x @ w.T + b)[:, target]
    out = np.empty_like(x)
    for i in range(x.shape[1]):
        xi = x.copy()
        xi[:, i] = 0.0
        out[:, i] = full - np.tanh(xi @ w.T + b)[:, target]
    return out


class BatchMean(torch.nn.Module):
    """Centres every feature over the batch: a row's output depends on the other rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True)


class Cumsum(torch.nn.Module):
    """Row ``i`` sees rows ``0..i`` (row 0 sees none of the others)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(0)


def batch_mixer(kind: str, n_in: int, hidden: int) -> torch.nn.Sequential:
    """``Linear -> (a layer mixing the batch's rows) -> Tanh -> Linear(2)``, seeded; ``kind``:
    ``"mean"`` (:class:`BatchMean`), ``"cumsum"`` (:class:`Cumsum`) or ``"bn_batch_stats"``
    (BatchNorm without running statistics)."""
    torch.manual_seed(0)
    mid: torch.nn.Module = {"mean": BatchMean(), "cumsum": Cumsum(),
                            "bn_batch_stats": torch.nn.BatchNorm1d(hidden, track_running_stats=False)}[kind]
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), mid, torch.nn.Tanh(),
                               torch.nn.Linear(hidden, 2))


def enumerated_shapley(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Exact Shapley values of output 0 against a zero baseline, from all ``2^n`` coalitions."""
    import itertools

    n = x.shape[1]
    masks = list(itertools.product((0, 1), repeat=n))
    with torch.no_grad():
        v = model(x[:, None, :] * torch.tensor(masks, dtype=torch.float64)[None])[..., 0].numpy()
    return shapley_from_table({m: v[:, i] for i, m in enumerate(masks)}, n)


def hand_deletion(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, phi: np.ndarray,
                  t: np.ndarray) -> np.ndarray:
    """Deletion area per sample by hand: one player per step in order of decreasing credit,
    zero baseline, ``f(row)[t[i]]`` on each step, trapezoid over ``k / n`` (no ties in ``phi``)."""
    b, n = phi.shape
    out = np.empty(b)
    for i in range(b):
        order = np.argsort(-phi[i], kind="stable")
        ys = []
        for k in range(n + 1):
            keep = np.ones(n)
            keep[order[:k]] = 0.0
            ys.append(f(x[i] * keep)[t[i]])
        out[i] = np.trapezoid(ys, np.arange(n + 1) / n)
    return out


def all_coalitions(n: int) -> np.ndarray:
    """Every 0/1 coalition of ``n`` players, one per row (``2**n x n``)."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def banzhaf_by_enumeration(f: Callable[[np.ndarray], np.ndarray], n: int) -> np.ndarray:
    """Banzhaf values of the game ``f`` (a numpy function of 0/1 rows) from all ``2**n``
    coalitions: each player's mean value with it minus without it."""
    c = all_coalitions(n)
    v = f(c)
    return np.array([v[c[:, i] == 1].mean() - v[c[:, i] == 0].mean() for i in range(n)])


class PairBag(torch.nn.Module):
    """Masked mean of word embeddings -> tanh: one vector per text (a tiny dual encoder for
    sentence-pair explorer subjects)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 6)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(vocab, 6, generator=g))
        self.double()

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        m = (torch.ones_like(ids) if attention_mask is None else attention_mask)[..., None].double()
        return torch.tanh((self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1.0))


def pair_subject() -> Any:
    """An explorer text subject of two sentence pairs on :class:`PairBag` (cosine of the two
    texts' vectors), with every removal."""
    from tribute.explorer.subjects import Subject
    from tribute.models.text import WordTokenizer

    tok = WordTokenizer(["a", "cat", "sleeps", "the", "kitten", "naps", "dog"], bos=True)
    texts = [("a cat sleeps", "the kitten naps"), ("a dog", "the cat")]
    ids = torch.zeros(len(texts), 4, dtype=torch.long)  # fingerprints only
    ids[:, 0] = torch.arange(len(texts))
    return Subject(name="pairs", title="pairs", kind="text", model=None, inputs=ids, target=None,
                   labels=["p0", "p1"], texts=texts, text_model=PairBag(tok.vocab_size),
                   tokenizer=tok, pair="cosine", removals=("mask", "pad", "delete"))


def lrp_with_report(make: Callable[[], torch.nn.Module]
                    ) -> tuple[torch.Tensor, dict[str, int], list[str]]:
    """``lrp`` on ``make()`` (built after ``torch.manual_seed(1)``, in float64) over 4 fixed rows
    of 5 features: the credits, ``extra["functional_ops"]`` and the "functional operations"
    warnings raised."""
    torch.manual_seed(1)
    model = make().double().eval()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attr = tribute.explain(model, x, "lrp", target=0)
    said = [str(w.message) for w in caught if "functional operations" in str(w.message)]
    return attr.values, dict(attr.extra["functional_ops"]), said


class FrameEstimator:
    """A user's scikit-learn-style estimator fitted on a DataFrame (subclasses read its columns
    in ``predict``): tribute hands such a model DataFrames typed as the user's."""

    def fit(self, frame: Any, y: Any = None) -> Any:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self


class TextReader(FrameEstimator):
    """Reads the integer column ``a`` as text (``"1"``/``"2"``/``"3"`` score 3/5/7, any other
    text -10, ``"3.0"`` included), plus ``2 b``, plus ``c`` and text ``t`` where present."""

    def predict(self, frame: Any) -> Any:
        a = frame["a"].astype(str).map({"1": 3.0, "2": 5.0, "3": 7.0}).fillna(-10.0).to_numpy()
        out = a + 2.0 * frame["b"].to_numpy(dtype=np.float64)
        if "c" in frame.columns:
            out = out + frame["c"].astype(float).to_numpy()
        if "t" in frame.columns:
            out = out + frame["t"].map({"u": 1.0, "v": 4.0, "w": 2.0}).to_numpy()
        return out


class IdentityConvSum(torch.nn.Module):
    """``(C, H, W)`` (or ``(H, W, C)`` with ``last``) -> an identity 1x1 ``Conv2d`` ->
    ``sum(w * x)``: its input x gradient is ``w * x``, read on the channel axis the model reads
    (aud51v's viz and bench gallery tests)."""

    def __init__(self, c: int, h: int, w: int, last: bool) -> None:
        super().__init__()
        self.last = last
        self.conv = torch.nn.Conv2d(c, c, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(c)[:, :, None, None])
        self.w = torch.nn.Parameter(torch.randn(c, h, w, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = x.permute(0, 3, 1, 2)
        return (self.conv(x) * self.w).sum((1, 2, 3))[:, None]


def gallery_maps(model: Any, x: Any, monkeypatch: Any) -> tuple[dict[str, Any], Any]:
    """The bench report gallery of one user image case (input x gradient of ``model`` on
    ``x``): the maps it hands ``viz.image_grid`` (filled when the gallery is drawn) and
    ``(gallery, attribution)`` (aud51v, rev51v)."""
    from tribute import viz
    from tribute.bench import report
    from tribute.bench.runner import BenchResult, MethodRun
    from tribute.bench.suites import Case

    attr = tribute.explain(model, x, "input_x_gradient", target=0, progress=False)
    case = Case(name="user", title="u", description="", modality="image", model=model, inputs=x,
                target=None)
    run = MethodRun("user", "input_x_gradient", False, "ok", n_evals=1)
    run.flat = attr.flat()
    result = BenchResult("t", 0, ["input_x_gradient"], [], [case], [run], [], {}, {})
    seen: dict[str, Any] = {}
    draw = viz.image_grid

    def grab(maps: dict[str, Any], **kwargs: Any) -> Any:
        seen.update(maps)
        return draw(maps, **kwargs)

    monkeypatch.setattr(viz, "image_grid", grab)  # (the report draws through tribute.viz)
    return seen, (report._gallery(result, case), attr)
