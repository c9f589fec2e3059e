"""Games of the Shapley accuracy benchmark (shared by the torch side and the shapiq side).

Every game is a small fully connected network explained at a few test points, with absent
features at a baseline (``x(S) = b + 1_S * (x - b)``) and one scalar output per point. The
network is also exported as plain numpy layers (``.npz``) so that a second interpreter without
torch (the Python 3.12 venv that shapiq 1.8 needs) evaluates exactly the same value function.

Games (``GAMES``):

* ``wine_prob``: MLP (64, 64) on wine (13 features), softmax probability of the predicted class.
* ``diabetes_raw``: MLP (64, 64) regression on diabetes (10 features), raw output.
* ``tanh16_raw``: random tanh network 16 -> 32 -> 32 -> 1 (weights N(0, 1.5^2 / fan_in)),
  Gaussian inputs, zero baseline, raw output — strong high-order interactions, never tuned on.
* ``cancer_logit``: MLP (64, 64) on breast cancer (30 features), logit of the predicted class.
* ``relu14_prob``: random ReLU network 14 -> 48 -> 48 -> 4, softmax probability of the predicted
  class — added after gp_shapley's development and never tuned on (:func:`build_extra`).
* ``digits16_prob`` and ``mlp20_logit``: a logistic regression on 4 x 4 digits and a random ReLU
  network with 20 inputs, added with the small-budget work and never tuned on
  (:func:`build_new`).
* ``cancer_logreg_prob``: a logistic regression on breast cancer (:func:`build_new2`).
* ``n_relu18_logit``, ``n_tanh20_logit``, ``n_digits16mlp_logit``, ``n_tanh32_logit``: fresh
  logit games of stop 26 (:func:`build_fresh26`).

Truth: exact Shapley values by enumeration for ``n <= 20``; for ``cancer_logit`` a very-high
budget reference (tribute's paired KernelSHAP at ``REF_BUDGET`` evaluations; its own relative
standard error is reported next to the table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Evaluations per point of the reference for games too large to enumerate.
REF_BUDGET = 2**20


@dataclass
class GameSpec:
    name: str
    X: np.ndarray  # P x n
    base: np.ndarray  # n
    target: np.ndarray  # P (output index)
    output: str  # "prob" | "logit" | "raw"
    layers: list[tuple[np.ndarray, np.ndarray, str]]  # (W out x in, b, activation)
    truth: np.ndarray | None = None  # P x n
    truth_kind: str = ""
    truth_rel_se: float = 0.0  # relative standard error of the reference (0 if exact)
    model: Any = field(default=None, repr=False)  # torch module (torch side only)

    @property
    def n(self) -> int:
        return int(self.X.shape[1])


def forward_np(layers: list[tuple[np.ndarray, np.ndarray, str]], x: np.ndarray) -> np.ndarray:
    h = x
    for w, b, act in layers:
        h = h @ w.T + b
        if act == "relu":
            h = np.maximum(h, 0.0)
        elif act == "tanh":
            h = np.tanh(h)
    return h


def value_np(spec: GameSpec, i: int, masks: np.ndarray) -> np.ndarray:
    """``v(S)`` for point ``i`` and boolean/0-1 masks ``K x n`` (numpy only)."""
    m = np.asarray(masks, dtype=np.float64)
    x = spec.base[None] + m * (spec.X[i] - spec.base)[None]
    out = forward_np(spec.layers, x)
    t = int(spec.target[i])
    if spec.output == "prob":
        z = out - out.max(1, keepdims=True)
        p = np.exp(z)
        return p[:, t] / p.sum(1)
    return out[:, t]


def save(specs: list[GameSpec], path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for s in specs:
        arrays[f"{s.name}/X"] = s.X
        arrays[f"{s.name}/base"] = s.base
        arrays[f"{s.name}/target"] = s.target
        arrays[f"{s.name}/output"] = np.array(s.output)
        arrays[f"{s.name}/truth"] = s.truth if s.truth is not None else np.zeros(0)
        arrays[f"{s.name}/truth_kind"] = np.array(s.truth_kind)
        arrays[f"{s.name}/truth_rel_se"] = np.array(s.truth_rel_se)
        arrays[f"{s.name}/n_layers"] = np.array(len(s.layers))
        for j, (w, b, act) in enumerate(s.layers):
            arrays[f"{s.name}/W{j}"] = w
            arrays[f"{s.name}/b{j}"] = b
            arrays[f"{s.name}/act{j}"] = np.array(act)
    arrays["names"] = np.array([s.name for s in specs])
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool


def load(path: Path) -> list[GameSpec]:
    f = np.load(path)
    out = []
    for name in f["names"]:
        name = str(name)
        layers = [(f[f"{name}/W{j}"], f[f"{name}/b{j}"], str(f[f"{name}/act{j}"]))
                  for j in range(int(f[f"{name}/n_layers"]))]
        out.append(GameSpec(name, f[f"{name}/X"], f[f"{name}/base"], f[f"{name}/target"],
                            str(f[f"{name}/output"]), layers, truth=f[f"{name}/truth"],
                            truth_kind=str(f[f"{name}/truth_kind"]),
                            truth_rel_se=float(f[f"{name}/truth_rel_se"])))
    return out


def torch_model(spec: GameSpec):
    """The network as a float64 ``torch.nn.Sequential`` (same weights as ``spec.layers``)."""
    import torch

    mods: list = []
    for w, b, act in spec.layers:
        lin = torch.nn.Linear(w.shape[1], w.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if act == "relu":
            mods.append(torch.nn.ReLU())
        elif act == "tanh":
            mods.append(torch.nn.Tanh())
    return torch.nn.Sequential(*mods).eval()


def build_cached(points: int, cache: Path) -> list[GameSpec]:
    """:func:`build` and :func:`build_extra` once per ``points``, then the saved copies (models
    rebuilt from weights)."""
    specs = []
    for stem, make in (("shapley_games", build), ("shapley_games_extra", build_extra),
                       ("shapley_games_new", build_new), ("shapley_games_new2", build_new2),
                       ("shapley_games_fresh26", build_fresh26)):
        path = cache / f"{stem}_p{points}.npz"
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            save(make(points), path)
        specs += load(path)
    for s in specs:
        s.model = torch_model(s)
    return specs


# ------------------------------------------------------------------ torch side only
def _layers_of(model) -> list[tuple[np.ndarray, np.ndarray, str]]:
    import torch

    mods = list(model.modules())
    layers: list[tuple[np.ndarray, np.ndarray, str]] = []
    for j, mod in enumerate(mods):
        if isinstance(mod, torch.nn.Linear):
            nxt = next((m for m in mods[j + 1:] if not isinstance(m, torch.nn.Sequential)), None)
            act = ("relu" if isinstance(nxt, torch.nn.ReLU) else
                   "tanh" if isinstance(nxt, torch.nn.Tanh) else "none")
            layers.append((mod.weight.detach().double().numpy().copy(),
                           mod.bias.detach().double().numpy().copy(), act))
    return layers


def build(points: int) -> list[GameSpec]:
    """The four games with their truth (torch + tribute; run in the main venv)."""
    import torch

    from tribute.datasets import breast_cancer, diabetes, train_mlp, wine

    specs: list[GameSpec] = []
    for name, loader, output in (("wine_prob", wine, "prob"), ("diabetes_raw", diabetes, "raw"),
                                 ("cancer_logit", breast_cancer, "logit")):
        ds = loader()
        train, test = ds.split(0.3, seed=0)
        model = train_mlp(train, hidden=(64, 64), epochs=60, seed=0).double().eval()
        X = torch.from_numpy(test.X[:points]).double()
        base = torch.from_numpy(train.X.mean(0)).double()
        with torch.no_grad():
            out = model(X)
        target = out.argmax(1) if out.shape[1] > 1 else torch.zeros(len(X), dtype=torch.long)
        specs.append(GameSpec(name, X.numpy(), base.numpy(), target.numpy(), output,
                              _layers_of(model), model=model))
    gen = torch.Generator().manual_seed(7)
    n = 16
    net = torch.nn.Sequential(torch.nn.Linear(n, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                              torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()
    with torch.no_grad():
        for mod in net:
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen, dtype=torch.float64)
                                 * 1.5 / mod.in_features**0.5)
                mod.bias.copy_(0.3 * torch.randn(mod.bias.shape, generator=gen, dtype=torch.float64))
    net.eval()
    X = torch.randn(points, n, generator=gen, dtype=torch.float64)
    specs.insert(2, GameSpec("tanh16_raw", X.numpy(), np.zeros(n), np.zeros(points, dtype=np.int64),
                             "raw", _layers_of(net), model=net))
    return _with_truth(specs)


def build_extra(points: int) -> list[GameSpec]:
    """Games added after the estimator's development, never tuned on (kept in their own cache
    file so that the first four games and their expensive reference are not rebuilt):

    * ``relu14_prob``: random ReLU network 14 -> 48 -> 48 -> 4 (weights N(0, 2 / fan_in), biases
      N(0, 0.1^2)), Gaussian inputs, zero baseline, softmax probability of the predicted class.
    """
    import torch

    gen = torch.Generator().manual_seed(2026)
    n = 14
    net = torch.nn.Sequential(torch.nn.Linear(n, 48), torch.nn.ReLU(), torch.nn.Linear(48, 48),
                              torch.nn.ReLU(), torch.nn.Linear(48, 4)).double()
    with torch.no_grad():
        for mod in net:
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen, dtype=torch.float64)
                                 * (2.0 / mod.in_features) ** 0.5)
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen, dtype=torch.float64))
    net.eval()
    X = torch.randn(points, n, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        target = net(X).argmax(1)
    return _with_truth([GameSpec("relu14_prob", X.numpy(), np.zeros(n), target.numpy(), "prob",
                                 _layers_of(net), model=net)])


def build_new(points: int) -> list[GameSpec]:
    """Games added for the small-budget accuracy work (issue #14), never tuned on: only their
    final numbers were looked at, after the estimator was chosen on the other games.

    * ``digits16_prob``: multinomial logistic regression on scikit-learn's digits averaged over
      2 x 2 blocks (16 features, 4 x 4 images), softmax probability of the predicted class,
      absent blocks at the training mean.
    * ``mlp20_logit``: random ReLU network 20 -> 64 -> 64 -> 3 (weights N(0, 2 / fan_in), biases
      N(0, 0.1^2)), Gaussian inputs, zero baseline, raw output (logit) of the predicted class.
    """
    import torch

    from tribute.datasets import digits

    ds = digits()
    X16 = ds.X[:, 0].reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16).astype(np.float64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X16))
    tr, te = order[: len(X16) * 7 // 10], order[len(X16) * 7 // 10 :]
    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(16, 10).double()
    with torch.no_grad():
        lin.weight.copy_(0.01 * torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64))
        lin.bias.zero_()
    xt, yt = torch.from_numpy(X16[tr]), torch.from_numpy(ds.y[tr])
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + 1e-3 * (lin.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    logreg = torch.nn.Sequential(lin).eval()
    X = torch.from_numpy(X16[te[:points]])
    with torch.no_grad():
        target = logreg(X).argmax(1)
    specs = [GameSpec("digits16_prob", X.numpy(), X16[tr].mean(0), target.numpy(), "prob",
                      _layers_of(logreg), model=logreg)]
    gen = torch.Generator().manual_seed(2027)
    n = 20
    net = torch.nn.Sequential(torch.nn.Linear(n, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 3)).double()
    with torch.no_grad():
        for mod in net:
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen, dtype=torch.float64)
                                 * (2.0 / mod.in_features) ** 0.5)
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen, dtype=torch.float64))
    net.eval()
    X = torch.randn(points, n, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        target = net(X).argmax(1)
    specs.append(GameSpec("mlp20_logit", X.numpy(), np.zeros(n), target.numpy(), "logit",
                          _layers_of(net), model=net))
    return _with_truth(specs)


def build_new2(points: int) -> list[GameSpec]:
    """Game added for the second round of issue #14 (design cost, adaptive design), never tuned
    on: only its final numbers were looked at.

    * ``cancer_logreg_prob``: L2-regularised logistic regression (two-class softmax, penalty
      1e-2) on the standardised breast-cancer features (30 players), probability of the
      predicted class, absent features at the training mean; truth from the high-budget
      reference as for ``cancer_logit``.
    """
    import torch

    from tribute.datasets import breast_cancer

    train, test = breast_cancer().split(0.3, seed=0)
    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(30, 2).double()
    with torch.no_grad():
        lin.weight.copy_(0.01 * torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64))
        lin.bias.zero_()
    xt = torch.from_numpy(np.asarray(train.X, dtype=np.float64))
    yt = torch.from_numpy(np.asarray(train.y, dtype=np.int64))
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + 1e-2 * (lin.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    model = torch.nn.Sequential(lin).eval()
    X = torch.from_numpy(np.asarray(test.X[:points], dtype=np.float64))
    with torch.no_grad():
        target = model(X).argmax(1)
    return _with_truth([GameSpec("cancer_logreg_prob", X.numpy(), xt.mean(0).numpy(),
                                 target.numpy(), "prob", _layers_of(model), model=model)])


def _random_net(n: int, widths: tuple[int, ...], act: str, seed: int, scale: float,
                points: int) -> tuple[Any, Any, Any]:
    """A random network ``n -> widths`` (weights N(0, scale^2 / fan_in), biases N(0, 0.1^2)),
    ``points`` Gaussian inputs drawn after the weights from the same generator, and the
    predicted class of each."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    mods: list[torch.nn.Module] = []
    prev = n
    for j, w in enumerate(widths):
        mods.append(torch.nn.Linear(prev, w).double())
        if j < len(widths) - 1:
            mods.append(torch.nn.ReLU() if act == "relu" else torch.nn.Tanh())
        prev = w
    net = torch.nn.Sequential(*mods)
    with torch.no_grad():
        for mod in net:
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen, dtype=torch.float64)
                                 * scale / mod.in_features**0.5)
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen, dtype=torch.float64))
    net.eval()
    X = torch.randn(points, n, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        target = net(X).argmax(1)
    return net, X, target


def _check_numpy_copy(s: GameSpec, X: Any) -> None:
    """The numpy copy of a game (``value_np``) gives the torch model's output on the full
    coalition of every point."""
    import torch

    full = np.array([value_np(s, i, np.ones((1, s.n)))[0] for i in range(len(s.X))])
    with torch.no_grad():
        o = s.model(X)
        if s.output == "prob":
            o = torch.softmax(o, 1)
        want = o[torch.arange(len(X)), torch.from_numpy(s.target)].numpy()
    np.testing.assert_allclose(full, want, rtol=1e-9, atol=1e-12)


def _digits_mlp(features: np.ndarray, labels: np.ndarray, seed: int, points: int
                ) -> tuple[Any, Any, Any, np.ndarray, float]:
    """A float64 ReLU MLP (d -> 64 -> 64 -> 10) trained on 1,300 scikit-learn digits (Adam, 300
    full-batch steps): the model, the first ``points`` test rows, their predicted classes, the
    training indices and the test accuracy. The fresh games of stops 26 and 27 call it (seeds 5
    and 6); the same operations in the same order as when they were built, so bit for bit."""
    import torch

    order = np.random.default_rng(seed).permutation(len(features))
    tr, te = order[:1300], order[1300:]
    torch.manual_seed(seed)
    d = features.shape[1]
    mlp = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 10)).double()
    opt = torch.optim.Adam(mlp.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(features[tr]), torch.from_numpy(labels[tr])
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(mlp(xt), yt).backward()
        opt.step()
    mlp.eval()
    X = torch.from_numpy(features[te[:points]])
    with torch.no_grad():
        target = mlp(X).argmax(1)
        acc = float((mlp(torch.from_numpy(features[te])).argmax(1).numpy() == labels[te]).mean())
    return mlp, X, target, tr, acc


def build_fresh26(points: int) -> list[GameSpec]:
    """Four logit games built for the sixth round of issue #14 (stop 26), after every rule of
    ``shapley`` was chosen; they decided against a change tuned on ``cancer_logit`` (tau = 100)
    and show that the eight older games overstate how often the goal holds (8 of their 16 cells
    at <= 0.5x the best anchor, against 25 of 32 there).

    * ``n_relu18_logit``: random ReLU network 18 -> 64 -> 64 -> 3 (weights N(0, 2 / fan_in)).
    * ``n_tanh20_logit``: random tanh network 20 -> 48 -> 48 -> 3 (weights N(0, 1.5^2 / fan_in)).
    * ``n_digits16mlp_logit``: MLP (64, 64) trained (Adam, 300 full-batch steps) on scikit-learn's
      digits averaged to 4 x 4 (16 features), absent blocks at the training mean.
    * ``n_tanh32_logit``: random tanh network 32 -> 64 -> 64 -> 2, truth from the high-budget
      reference as for ``cancer_logit``.

    Random networks: Gaussian inputs, zero baseline; every game explains the logit of the
    predicted class.
    """
    from sklearn.datasets import load_digits

    specs = []
    for name, n, widths, act, seed, scale in (
            ("n_relu18_logit", 18, (64, 64, 3), "relu", 3031, 2**0.5),
            ("n_tanh20_logit", 20, (48, 48, 3), "tanh", 3032, 1.5)):
        net, X, target = _random_net(n, widths, act, seed, scale, points)
        specs.append(GameSpec(name, X.numpy(), np.zeros(n), target.numpy(), "logit",
                              _layers_of(net), model=net))
    dg = load_digits()
    X16 = (dg.images / 16.0).reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    mlp, X, target, tr, _ = _digits_mlp(X16, dg.target, 5, points)
    specs.append(GameSpec("n_digits16mlp_logit", X.numpy(), X16[tr].mean(0), target.numpy(),
                          "logit", _layers_of(mlp), model=mlp))
    net, X, target = _random_net(32, (64, 64, 2), "tanh", 3034, 1.5, points)
    specs.append(GameSpec("n_tanh32_logit", X.numpy(), np.zeros(32), target.numpy(), "logit",
                          _layers_of(net), model=net))
    return _with_truth(specs)


def _with_truth(specs: list[GameSpec]) -> list[GameSpec]:
    """Fill in each game's truth (exact up to 16 players, else a high-budget reference)."""
    import torch

    import tribute

    for s in specs:
        kw: dict[str, Any] = {"target": torch.from_numpy(s.target),
                              "baseline": torch.from_numpy(s.base), "output": s.output}
        X = torch.from_numpy(s.X)
        if s.n <= 20:
            s.truth = tribute.explain(s.model, X, method="exact_shapley", **kw).values.numpy()
            s.truth_kind = "exact (enumeration)"
        else:
            ref = tribute.explain(s.model, X, method="kernel_shap", budget=REF_BUDGET, seed=12345, **kw)
            s.truth = ref.values.numpy()
            assert ref.stderr is not None
            se = ref.stderr.numpy()
            s.truth_rel_se = float(np.mean(np.linalg.norm(se, axis=1) / np.linalg.norm(s.truth, axis=1)))
            s.truth_kind = f"reference: kernel_shap at {REF_BUDGET} evaluations"
        _check_numpy_copy(s, X)  # the numpy copy must be the same game
    return specs


def build_fresh27(points: int) -> list[GameSpec]:
    """Three games built for the eighth round of issue #14 (stop 27), after its rule (the NNGP
    member priced by what runs) was chosen and committed; they check it where it acts, at 40-100
    players and 256-512 evaluations (below 32 players no benchmark cell changed).

    * ``g27_tanh40_prob``: random tanh network 40 -> 64 -> 64 -> 4 (weights N(0, 1.5^2 / fan_in)),
      probability of the predicted class.
    * ``g27_digits64mlp_logit``: MLP (64, 64) trained (Adam, 300 full-batch steps) on
      scikit-learn's 8 x 8 digits (64 features), absent pixels at the training mean, logit.
    * ``g27_relu100_logit``: random ReLU network 100 -> 64 -> 64 -> 3 (weights N(0, 2 / fan_in)),
      logit.

    Random networks: Gaussian inputs, zero baseline. Truth: the high-budget reference.
    """
    from sklearn.datasets import load_digits

    specs = []
    net, X, target = _random_net(40, (64, 64, 4), "tanh", 4041, 1.5, points)
    specs.append(GameSpec("g27_tanh40_prob", X.numpy(), np.zeros(40), target.numpy(), "prob",
                          _layers_of(net), model=net))
    dg = load_digits()
    X64 = dg.data / 16.0
    mlp, X, target, tr, acc = _digits_mlp(X64, dg.target, 6, points)
    print(f"g27_digits64mlp_logit: test accuracy {acc:.3f}")
    specs.append(GameSpec("g27_digits64mlp_logit", X.numpy(), X64[tr].mean(0), target.numpy(),
                          "logit", _layers_of(mlp), model=mlp))
    net, X, target = _random_net(100, (64, 64, 3), "relu", 4043, 2**0.5, points)
    specs.append(GameSpec("g27_relu100_logit", X.numpy(), np.zeros(100), target.numpy(), "logit",
                          _layers_of(net), model=net))
    return _with_truth_by_point(specs)


def _with_truth_by_point(specs: list[GameSpec]) -> list[GameSpec]:
    """:func:`_with_truth`'s high-budget reference one point at a time (its design for ten points
    of 64 players needs ~11 GiB at once), the same check of the numpy copy."""
    import torch

    import tribute

    for s in specs:
        X = torch.from_numpy(s.X)
        vals, ses = [], []
        for i in range(len(X)):
            ref = tribute.explain(s.model, X[i : i + 1], method="kernel_shap", budget=REF_BUDGET,
                                  seed=12345, target=torch.from_numpy(s.target[i : i + 1]),
                                  baseline=torch.from_numpy(s.base), output=s.output)
            assert ref.stderr is not None
            vals.append(ref.values.numpy()[0])
            ses.append(ref.stderr.numpy()[0])
        s.truth = np.array(vals)
        s.truth_rel_se = float(np.mean(np.linalg.norm(np.array(ses), axis=1)
                                       / np.linalg.norm(s.truth, axis=1)))
        s.truth_kind = f"reference: kernel_shap at {REF_BUDGET} evaluations"
        _check_numpy_copy(s, X)
    return specs
