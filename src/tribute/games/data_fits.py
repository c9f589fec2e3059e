"""Deterministic reference trainers for data games: ``fit(X, y, *, seed, weights=None)``.

Every trainer here minimises one stated objective, deterministically for a given seed, so a
retrain bank can reproduce any subset exactly and the influence estimators can form the same
objective's Hessian (pass the trainer's ``l2`` and ``reduction`` to
:class:`tribute.TrainingData`)::

    objective(theta) = reduce_i( w_i * loss(f(x_i; theta), y_i) ) + l2 / 2 * ||theta||^2

with ``reduce`` a sum (``reduction="sum"``) or a mean over the training set. All of them accept
an empty training set (they then return the model they would start from: zeros for the convex
ones, the seeded initialisation for the MLP), which is what ``v(empty coalition)`` means.

The trainers are frozen dataclasses of plain numbers, so they pickle to worker processes (and
to Ray tasks) and their ``repr`` is a stable fingerprint.

* :class:`RidgeFit` — ridge regression in closed form (Hoerl & Kennard 1970).
* :class:`LogisticFit` — multinomial logistic regression by Newton's method to a tight
  tolerance (convex: the optimum does not depend on the seed).
* :class:`MLPFit` — a one-hidden-layer tanh MLP trained by full-batch gradient descent with
  momentum for a fixed number of steps from a seeded initialisation; :meth:`MLPFit.unrolled`
  runs the same steps as a differentiable function of the example weights (what the
  ``metagradient`` estimator differentiates through, in the spirit of MAGIC, Ilyas & Engstrom
  2025).
* :class:`ConvFit` — a small CNN (one ``3 x 3`` convolution, tanh, ``2 x 2`` average pooling,
  a linear read-out) on flat or ``(1, H, W)`` images, trained the same way (full-batch gradient
  descent with momentum from a seeded initialisation); every parameter lives in an
  ``nn.Conv2d`` or ``nn.Linear``, so EK-FAC covers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError

__all__ = ["ConvFit", "LogisticFit", "MLPFit", "RidgeFit"]


def _flat(X: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(X, dtype=torch.float64)
    return t.flatten(1) if t.ndim > 1 else t.reshape(-1, 1)


def _check(trainer: object, loss: str) -> None:
    """Refuse a ``reduction``/``loss`` the trainer would not train with (they are read by
    :class:`tribute.TrainingData` as the objective the influence estimators differentiate)."""
    name = type(trainer).__name__
    red = trainer.reduction  # type: ignore[attr-defined]
    if red not in ("sum", "mean"):
        raise InputError(f"{name}(reduction={red!r}): reduction must be 'sum' or 'mean'.")
    got = trainer.loss  # type: ignore[attr-defined]
    if got != loss:
        raise InputError(f"{name}(loss={got!r}): {name} trains with loss={loss!r} only; leave "
                         "loss unset (or write a fit for another loss).")


def _denominator(w: torch.Tensor, reduction: str) -> torch.Tensor:
    """What the weighted loss sum is divided by: 1 for a sum, ``sum(w)`` for a mean (so that
    training on a subset and zero-weighting the other examples are the same objective)."""
    return torch.ones((), dtype=w.dtype) if reduction == "sum" else w.sum().clamp_min(1e-12)


def _normalised(w: torch.Tensor, reduction: str) -> torch.Tensor:
    """Example weights of the objective: ``w`` for a sum, ``w / sum(w)`` for a mean."""
    return w if reduction == "sum" else w / _denominator(w, reduction)


def _prep(X: torch.Tensor, weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    Xd = _flat(X)
    w = (torch.ones(len(Xd), dtype=torch.float64) if weights is None
         else torch.as_tensor(weights, dtype=torch.float64).reshape(-1))
    return Xd, w


@dataclass(frozen=True)
class RidgeFit:
    """Ridge regression ``nn.Linear(d, 1)`` in closed form (float64).

    Minimises ``sum_i w_i (f(x_i) - y_i)^2 / 2 + l2/2 ||(W, b)||^2`` (``reduction="sum"``,
    loss ``"mse"``), or with the sum divided by ``sum_i w_i`` (``reduction="mean"``).

    Args:
        l2: ridge penalty on weight and intercept. default=1.0.
        reduction: ``"sum"`` or ``"mean"`` of the weighted losses. default="sum".
    """

    l2: float = 1.0
    reduction: str = "sum"
    loss: str = "mse"

    def __post_init__(self) -> None:
        _check(self, "mse")

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor | None = None) -> nn.Module:
        Xd, w = _prep(X, weights)
        w = _normalised(w, self.reduction)
        d = int(Xd.shape[1])
        A = torch.cat([Xd, torch.ones(len(Xd), 1, dtype=torch.float64)], 1)
        yd = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
        H = A.T @ (w[:, None] * A) + self.l2 * torch.eye(d + 1, dtype=torch.float64)
        theta = torch.linalg.solve(H, A.T @ (w * yd))
        model = nn.Linear(d, 1).double()
        with torch.no_grad():
            model.weight.copy_(theta[:d][None])
            model.bias.copy_(theta[d:])
        return model


@dataclass(frozen=True)
class LogisticFit:
    """Multinomial logistic regression ``nn.Linear(d, C)`` by Newton's method (float64).

    Minimises ``sum_i w_i CE(f(x_i), y_i) + l2/2 ||(W, b)||^2`` (``reduction="sum"``; with
    ``"mean"`` the sum is divided by ``sum_i w_i``) — convex, so the result does not depend on
    the seed — with damped Newton steps (exact Hessian, backtracking line search) until the
    gradient norm is below ``tol``.

    Args:
        n_classes: number of classes ``C``.
        l2: L2 penalty on all parameters (> 0). default=1.0.
        max_iter: Newton iterations. default=50.
        tol: gradient-norm tolerance. default=1e-10.
        reduction: ``"sum"`` or ``"mean"`` of the weighted losses. default="sum".
    """

    n_classes: int
    l2: float = 1.0
    max_iter: int = 50
    tol: float = 1e-10
    reduction: str = "sum"
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        _check(self, "cross_entropy")

    def _objective(self, theta: torch.Tensor, A: torch.Tensor, y: torch.Tensor,
                   w: torch.Tensor) -> torch.Tensor:
        z = A @ theta.T
        ce = torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]
        return (w * ce).sum() + 0.5 * self.l2 * (theta * theta).sum()

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor | None = None) -> nn.Module:
        Xd, w = _prep(X, weights)
        w = _normalised(w, self.reduction)
        d = int(Xd.shape[1])
        C = self.n_classes
        yl = torch.as_tensor(y).reshape(-1).long()
        A = torch.cat([Xd, torch.ones(len(Xd), 1, dtype=torch.float64)], 1)
        D = d + 1
        theta = torch.zeros(C, D, dtype=torch.float64)
        onehot = torch.nn.functional.one_hot(yl, C).to(torch.float64)
        AA = (A[:, :, None] * A[:, None, :]).reshape(len(A), D * D)
        eye = torch.eye(C * D, dtype=torch.float64)
        for _ in range(self.max_iter if len(A) else 0):
            p = torch.softmax(A @ theta.T, 1)
            g = ((w[:, None] * (p - onehot)).T @ A) + self.l2 * theta  # C x D
            if float(g.norm()) < self.tol:
                break
            Wm = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # n x C x C
            H4 = ((w[:, None, None] * Wm).reshape(len(A), C * C).T @ AA).reshape(C, C, D, D)
            H = H4.permute(0, 2, 1, 3).reshape(C * D, C * D) + self.l2 * eye
            step = torch.linalg.solve(H, g.reshape(-1)).reshape(C, D)
            f0 = self._objective(theta, A, yl, w)
            t = 1.0
            while t > 1e-8 and self._objective(theta - t * step, A, yl, w) > f0 - 1e-4 * t * float((g * step).sum()):
                t *= 0.5
            theta = theta - t * step
        model = nn.Linear(d, C).double()
        with torch.no_grad():
            model.weight.copy_(theta[:, :d])
            model.bias.copy_(theta[:, d])
        return model


@dataclass(frozen=True)
class MLPFit:
    """A ``d -> hidden -> C`` tanh MLP trained by full-batch gradient descent with momentum.

    Minimises ``sum_i w_i CE(f(x_i), y_i) / sum_i w_i + l2/2 ||theta||^2``
    (``reduction="mean"``; ``"sum"`` drops the division)
    for ``steps`` steps from an initialisation drawn from ``seed``. Deterministic on CPU.

    Args:
        n_classes: number of classes ``C``.
        hidden: hidden units. default=32.
        steps: gradient steps. default=300.
        lr: learning rate. default=0.5.
        momentum: heavy-ball momentum. default=0.9.
        l2: weight decay on all parameters. default=1e-3.
        reduction: ``"mean"`` or ``"sum"`` of the weighted losses. default="mean".
    """

    n_classes: int
    hidden: int = 32
    steps: int = 300
    lr: float = 0.5
    momentum: float = 0.9
    l2: float = 1e-3
    reduction: str = "mean"
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        _check(self, "cross_entropy")

    def init(self, d: int, seed: int) -> nn.Module:
        """The seeded initial model (float64)."""
        g = torch.Generator().manual_seed(int(seed))
        model = nn.Sequential(nn.Linear(d, self.hidden), nn.Tanh(), nn.Linear(self.hidden, self.n_classes))
        with torch.no_grad():
            for p in model.parameters():
                bound = 1.0 / (p.shape[-1] ** 0.5) if p.ndim == 2 else 0.0
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
        return model.double()

    def unrolled(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trained parameters as a differentiable function of ``weights`` (float64).

        ``weights`` may require grad; the whole run is recorded by autograd. The mean is
        normalised by ``sum(weights)`` (the subset size for 0/1 weights), so training on a
        subset and zero-weighting the other examples are the same run (``reduction="sum"``:
        not normalised).
        """
        Xd = _flat(X)
        yl = torch.as_tensor(y).reshape(-1).long()
        model = self.init(Xd.shape[1], seed)
        names = [n for n, _ in model.named_parameters()]
        params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
        vel = [torch.zeros_like(p) for p in params]
        n = _denominator(weights, self.reduction)
        create = weights.requires_grad
        for _ in range(self.steps):
            out = torch.func.functional_call(model, dict(zip(names, params)), (Xd,))
            ce = nn.functional.cross_entropy(out, yl, reduction="none")
            loss = (weights * ce).sum() / n + 0.5 * self.l2 * sum((p * p).sum() for p in params)
            grads = torch.autograd.grad(loss, params, create_graph=create)
            vel = [self.momentum * v + g for v, g in zip(vel, grads)]
            params = [p - self.lr * v for p, v in zip(params, vel)]
            if not create:
                params = [p.detach().requires_grad_(True) for p in params]
                vel = [v.detach() for v in vel]
        return dict(zip(names, params))

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor | None = None) -> nn.Module:
        Xd, w = _prep(X, weights)
        d = int(Xd.shape[1])
        model = self.init(d, seed)
        if len(Xd) == 0:
            return model
        with torch.enable_grad():
            trained = self.unrolled(Xd, y, seed=seed, weights=w)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(trained[name].detach())
        return model


@dataclass(frozen=True)
class ConvFit:
    """A small CNN ``Conv2d(1, channels, 3, padding=1) -> tanh -> AvgPool2d(2) -> Linear``.

    Takes images flat (``n x H*W``, unflattened by the model's first layer) or as
    ``n x 1 x H x W``. Minimises ``sum_i w_i CE(f(x_i), y_i) / sum_i w_i + l2/2 ||theta||^2``
    (``reduction="mean"``; ``"sum"`` drops the division) by ``steps`` full-batch gradient-descent steps with heavy-ball
    momentum from an initialisation drawn from ``seed`` (uniform in ``+-1/sqrt(fan_in)``,
    biases 0). Deterministic on CPU.

    Args:
        n_classes: number of classes ``C``.
        height, width: image size (even). default=8, 8 (scikit-learn digits).
        channels: convolution channels. default=8.
        steps: gradient steps. default=300.
        lr: learning rate. default=0.5.
        momentum: heavy-ball momentum. default=0.9.
        l2: weight decay on all parameters. default=1e-3.
        reduction: ``"mean"`` or ``"sum"`` of the weighted losses. default="mean".
    """

    n_classes: int
    height: int = 8
    width: int = 8
    channels: int = 8
    steps: int = 300
    lr: float = 0.5
    momentum: float = 0.9
    l2: float = 1e-3
    reduction: str = "mean"
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        _check(self, "cross_entropy")

    def init(self, seed: int) -> nn.Module:
        """The seeded initial model (float64)."""
        h, w = self.height, self.width
        g = torch.Generator().manual_seed(int(seed))
        # Flatten first: the model runs on the flat or n x 1 x H x W images it trains on (before,
        # images failed with "unflatten: Provided sizes [1, 8, 8] don't multiply up to the size
        # of dim 1 (1)"); one parameter-free block at index 0 keeps the state_dict's names
        model = nn.Sequential(nn.Sequential(nn.Flatten(), nn.Unflatten(1, (1, h, w))), nn.Conv2d(1, self.channels, 3, padding=1),
                              nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                              nn.Linear(self.channels * (h // 2) * (w // 2), self.n_classes))
        with torch.no_grad():
            for p in model.parameters():
                fan_in = int(p[0].numel()) if p.ndim > 1 else 0
                bound = 1.0 / fan_in**0.5 if fan_in else 0.0
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
        return model.double()

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor | None = None) -> nn.Module:
        Xd, w = _prep(X, weights)
        if Xd.shape[1] != self.height * self.width:
            raise InputError(f"ConvFit({self.height}x{self.width}) got images with {Xd.shape[1]} "
                             "pixels each; set height= and width= to the image size.")
        model = self.init(seed)
        if len(Xd) == 0:
            return model
        yl = torch.as_tensor(y).reshape(-1).long()
        params = list(model.parameters())
        vel = [torch.zeros_like(p) for p in params]
        n = _denominator(w, self.reduction)
        with torch.enable_grad():
            for _ in range(self.steps):
                ce = nn.functional.cross_entropy(model(Xd), yl, reduction="none")
                loss = (w * ce).sum() / n + 0.5 * self.l2 * sum((p * p).sum() for p in params)
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, v, gr in zip(params, vel, grads):
                        v.mul_(self.momentum).add_(gr)
                        p.sub_(self.lr * v)
        return model
