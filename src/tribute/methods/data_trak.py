"""TRAK: attributing with random projections of per-example gradients (Park et al. 2023).

For each model ``m`` of an ensemble — the checkpoints of ``TrainingData(checkpoints=...)``; or,
with ``n_models=k``, the explained model and ``k - 1`` models trained by ``fit`` on all of
``X_train`` with seeds derived from ``seed`` (:meth:`tribute.games.data.DataGame.ensemble`,
TRAK's ensemble of independently trained models); or the explained model alone — with a random projection ``R`` (``n_params x k``, i.i.d. ``N(0, 1/k)`` entries,
so inner products are preserved in expectation — Johnson–Lindenstrauss):

* ``Phi = [R^T grad f_i]`` — projected gradients of the training *outputs* (the margin
  ``log p / (1 - p)`` of the example's label for classifiers, the raw output for regression);
* ``Psi = [R^T (-grad loss_i)]`` — the out-to-loss term: for cross-entropy
  ``-grad loss_i = (1 - p_i) grad f_i``, TRAK's ``Q`` matrix; for squared error the residual;
* ``phi_t = R^T grad v_t`` for each test point;

and the score is ``tau(t, i) = phi_t^T (Phi^T Phi + lambda I)^-1 Psi_i``, averaged over the
ensemble (the same projection ``R`` for every model). This is the influence function of the model linearised around ``m`` with the
Gauss–Newton Hessian ``Phi^T Phi`` (unit output curvature), hence the same sign convention:
positive = including ``i`` raises ``v_t``.

**Singular kernels.** ``Phi^T Phi`` has rank at most ``min(n_train, n_params, k)``: when ``k``
and ``n_params`` are both ``>= n_train`` it is singular and the unregularised system returns
noise. ``trak`` refuses that case unless ``regularization > 0`` is given. With fewer parameters
than training examples every gradient lies in the ``n_params``-dim range of the projection, where
the kernel is inverted exactly, so any ``k`` gives ``projector="none"``'s scores. Below ``n_train`` columns the kernel can still be singular
(a softmax model's margins ignore a shift shared by every class: rank ``(C - 1)(d + 1)`` of
``C (d + 1)`` on a linear model); it is inverted on its range (:func:`kernel_solve`, the rank in
``attr.extra["kernel_rank"]``), where the test gradients lie too.

The projection is generated in blocks of parameter rows from the seed (never the whole
``n_params x k`` matrix when that exceeds the gradient memory budget), in plain PyTorch on CPU.

Reference: Park, Georgiev, Ilyas, Leclerc & Madry (2023), "TRAK: Attributing Model Behavior at
Scale" (ICML).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ..games.data import GRAD_BUDGET_BYTES, DataGame
from ..params import BOOL, MAX_SEED, NONE, Interval, Options, declare
from .base import Cost, Method, Tags, register
from .data_common import (
    as_data_game,
    data_sizes,
    ensemble_scores,
    fewer_test_points,
    require_finite_losses,
    score_cost,
)

__all__ = ["DEFAULT_PROJ_DIM", "Trak", "default_proj_dim", "kernel_solve", "make_projector", "out_to_loss"]

#: the projection dimension ``proj_dim=None`` takes on large training sets
DEFAULT_PROJ_DIM = 512


def default_proj_dim(n_train: int) -> int:
    """``proj_dim=None``: ``min(512, n_train // 4)`` (at least 1).

    The unregularised kernel ``Phi^T Phi`` of ``k`` projected gradients from ``n_train``
    examples is singular for ``k >= n_train`` and ill-conditioned as ``k`` nears it, so a fixed
    512 was refused on every training set of up to 512 examples and gave noise just above
    (breast cancer, 560 examples, a 530-parameter MLP: LDS 0.002). A quarter of ``n_train``
    stays clear of that region; it is tribute's own rule, measured here, not the TRAK paper's
    (its library, MadryLab/trak, defaults to a fixed 2,048). LDS over 40 held-out halves, 8
    test points (differences under ~0.1 are within noise), at ``n/16, n/8, n/4, n/2`` (aud51d,
    rev51d): the best ``k`` was this default on 5 of 9 models (wine MLP, 150
    examples: 0.49 at 37 vs -0.03 at 149; digits logistic, 400: 0.46 at 100 vs 0.01 at 399;
    digits logistic, 1,789: 0.62 at 449 vs 0.54 at 512; iris MLP, 60: 0.34 at 15; diabetes
    tertiles MLP, 300: 0.17 at 75) and smaller on 4 (breast cancer MLP, 560: 0.37 at 35 vs
    0.16 at 140; digits CNN, 500: 0.57 at 62 vs 0.48 at 125; iris logistic, 60: 0.72 at 7 vs
    0.64 at 15; a 2,400-example MLP: 0.21 at 150 vs 0.15 at 512, the default there). Tune ``proj_dim`` with
    ``linear_score`` where it matters. From 2,048 examples on it is 512, as
    before."""
    return min(DEFAULT_PROJ_DIM, max(1, int(n_train) // 4))


def make_projector(n_params: int, k: int, seed: int,
                   budget_bytes: int = GRAD_BUDGET_BYTES) -> Callable[[torch.Tensor], torch.Tensor]:
    """``G (rows x n_params) -> G R (rows x k)`` with ``R ~ N(0, 1/k)``, regenerated per row block.

    ``R`` is cached whole when it fits ``budget_bytes``; otherwise blocks of its rows are drawn
    again (deterministically, from ``(seed, block)``) at each call.
    """
    rows_per_block = max(1, budget_bytes // (8 * k))
    blocks = [(s, min(s + rows_per_block, n_params)) for s in range(0, n_params, rows_per_block)]

    def block(j: int) -> torch.Tensor:
        s, e = blocks[j]
        # modulo 2**64: seeds above ~2.3e15 overflowed torch's 64-bit seed (a bare 'Overflow when
        # unpacking long long'); smaller seeds give the same projection as before
        g = torch.Generator().manual_seed((int(seed) * 7919 + j) % MAX_SEED)
        R: torch.Tensor = torch.randn(e - s, k, generator=g, dtype=torch.float64) / k**0.5
        return R

    cache = [block(j) for j in range(len(blocks))] if len(blocks) == 1 else None

    def project(G: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(G.shape[0], k, dtype=torch.float64)
        for j, (s, e) in enumerate(blocks):
            R = cache[j] if cache is not None else block(j)
            out += G[:, s:e] @ R
        return out

    return project


def kernel_solve(Phi: torch.Tensor, lam: float, V: torch.Tensor,
                 dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """``(Phi^T Phi + lam I)^+ V`` and the rank of the kernel.

    ``lam > 0``: the kernel is positive definite, an ordinary solve. ``lam == 0``: the
    pseudo-inverse from the SVD of ``Phi``, whose singular values below
    ``max(n, dim) * eps(dtype) * s_max`` (numpy's ``matrix_rank`` tolerance, in the dtype the
    gradients were computed in) are the null space -- exact null directions (a softmax margin's
    shared shift) are rounding there, while a full-rank but ill-conditioned kernel (raw
    features of different scales) keeps every direction."""
    if lam > 0:
        K = Phi.T @ Phi + lam * torch.eye(Phi.shape[1], dtype=Phi.dtype)
        return torch.linalg.solve(K, V), int(Phi.shape[1])
    _, s, Vh = torch.linalg.svd(Phi, full_matrices=False)
    keep = s > max(Phi.shape) * torch.finfo(dtype).eps * float(s.max().clamp_min(1e-300))
    W = Vh[keep]
    return W.T @ ((1.0 / s[keep] ** 2)[:, None] * (W @ V)), int(keep.sum())


def out_to_loss(game: DataGame, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """TRAK's ``Q``: ``-d loss_i / d f_i`` per training example (``n_train``), ``f_i`` the output
    ``Phi`` differentiates (the label's margin: ``1 - p_i``; squared error: ``y_i - f_i``), so
    that ``-grad loss_i = Q_i grad f_i``."""
    out = game.train_outputs(params).reshape(game.data.n_train, -1)
    y = game.y_train
    if game.data.loss == "mse":
        return y.reshape(-1).to(out.dtype) - out[:, 0]
    if game.data.loss == "binary_cross_entropy":
        return 1 - torch.sigmoid((2 * y.reshape(-1).to(out.dtype) - 1) * out[:, 0])
    return 1 - torch.softmax(out, 1).gather(1, y.reshape(-1, 1).long())[:, 0]


@register
class Trak(Method):
    """TRAK: projected-gradient influence with the out-to-loss term, ensembled over models.

    Args:
        proj_dim: projection dimension ``k``; None: ``min(512, n_train // 4)``
            (:func:`default_proj_dim`, ``attr.extra["dim"]``). default=None.
        regularization: ``lambda`` added to ``Phi^T Phi`` (needed when ``k`` and the model's
            parameter count are both ``>= n_train``).
            default=0.0.
        projector: ``"gaussian"`` or ``"none"`` (exact gradients, ``k = n_params``; for small
            models and reference tests). default="gaussian".
        n_models: ensemble the explained model and ``n_models - 1`` models trained by ``fit``
            on all of ``X_train`` (seeds from ``seed``). default=1 (``TrainingData``'s
            checkpoints if given, else the explained model alone).
        average_q: ``False``: the mean of every model's scores ``phi_t K_m^+ Phi_m^T Q_m``;
            ``True``: TRAK's Algorithm 1 (Park et al. 2023), the mean of the kernel terms
            ``phi_t K_m^+ Phi_m^T`` times the mean out-to-loss weights ``Q = mean_m Q_m``
            (``Q_m`` the ``1 - p`` of model ``m``, the residual for squared error). Both are
            the same for a single model. default=False.

    With ``projector="gaussian"`` the scores depend on ``seed`` (it draws the projection, and
    the ensemble's retrained models), although the method reports no standard error (its tags
    say ``stochastic=False``: nothing here is a sampling estimate with a known spread). The
    spread shrinks as ``proj_dim`` grows (max difference 0.10 between seeds 0 and 1 at
    ``proj_dim=3`` on a 30-example ridge regression); to see it on your model, explain with two
    seeds, and use ``projector="none"`` for a seed-free reference on small models.

    Reference: Park et al. (2023), "TRAK: Attributing Model Behavior at Scale".
    """

    name = "trak"
    tags = Tags(family="data_gradient", needs_baseline=False, stochastic=False, games=("data",))
    paper = "Park et al. (2023), TRAK: Attributing Model Behavior at Scale"
    constraints = declare({"proj_dim": (NONE, Interval(int, 1)),
                           "regularization": Interval(float, 0.0, math.inf, closed="left"),
                           "projector": Options(("gaussian", "none")),
                           "n_models": Interval(int, 1), "average_q": BOOL})

    def __init__(self, proj_dim: int | None = None, regularization: float = 0.0,
                 projector: str = "gaussian", n_models: int = 1, average_q: bool = False) -> None:
        self.proj_dim = proj_dim
        self.regularization = regularization
        self.projector = projector
        self.n_models = n_models
        self.average_q = average_q

    def _k(self, n_train: int) -> int:
        """The projection dimension on ``n_train`` training examples."""
        return default_proj_dim(n_train) if self.proj_dim is None else int(self.proj_dim)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Per model (``n_models``, or the checkpoints): two passes of training gradients
        (outputs and losses, ``2 n_train`` rows) and the test gradients; memory: the projection
        ``R`` (``n_params x k``, or one block of its rows when that exceeds the gradient
        budget), ``Phi`` and ``Psi`` (``n_train x k`` each), the kernel ``k x k`` and its solve,
        the ``batch x n_train`` scores; ``n_models - 1`` ensemble fits (training)."""
        n, B, P, _ = data_sizes(game)
        k = P if self.projector == "none" else self._k(n)
        cks = getattr(getattr(game, "data", None), "checkpoints", None)
        models = int(self.n_models) if int(self.n_models) > 1 or not cks else len(cks)
        rows_per_block = max(1, GRAD_BUDGET_BYTES // (8 * k))
        proj = 0 if self.projector == "none" else min(P, rows_per_block) * k * 8
        mats = (2 * n * k + 3 * B * k + 2 * k * k) * 8
        flops = models * (2.0 * (2 * n + B) * P * k * (self.projector != "none")
                          + 2.0 * n * k * k + k**3 / 3 + 2.0 * B * k * n)
        return score_cost(game, self.name, models=models, width=k, design=proj, solve=mats,
                          rows=models * n, flops=flops,
                          fits=int(self.n_models) - 1 if int(self.n_models) > 1 else 0,
                          note=f"trak: projection {P:,} x {k:,} and Phi, Psi ({n:,} x {k:,})")

    def settings_that_fit(self, game: Game, budget: int | None, cap: int) -> list[str]:
        from ..engine.memory import format_bytes

        parts: list[str] = []
        k0 = self._k(data_sizes(game)[0])
        if self.projector != "none" and k0 > 1:
            def at(k: int) -> int:
                return Trak(proj_dim=k, regularization=self.regularization,
                            n_models=self.n_models).estimate_cost(game, budget).bytes

            lo, hi = 1, k0
            if at(lo) <= cap:
                while lo < hi - 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if at(mid) <= cap else (lo, mid)
                parts.append(f"proj_dim={lo:,} (est. {format_bytes(at(lo))});")
        return parts + fewer_test_points(lambda g: self.estimate_cost(g, budget), game, cap)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        g = as_data_game(game, self.name)
        n = g.data.n_train
        k = self._k(n)
        lam = self.regularization
        dim = g.n_params if self.projector == "none" else k
        # Phi = G R (n x dim) has rank <= min(n, n_params, dim): with fewer parameters than
        # examples every vector (Phi's rows, Psi's rows, the test gradients) lies in the
        # n_params-dim range of R^T, where the kernel is inverted exactly (kernel_solve), so any
        # proj_dim >= n gives projector='none''s answer (aud51k: proj_dim=64 on a 12-parameter
        # logistic model with 40 examples was refused as "singular ... noise")
        if min(dim, g.n_params) >= n and lam == 0:  # depends on the training set: not a declared constraint
            given = (f"projector='none' (the model's {dim} parameters)" if self.projector == "none"
                     else f"proj_dim={k}" if self.proj_dim is not None
                     else f"the default proj_dim=None (min(512, n_train // 4), at least 1: {k})")
            raise InputError(
                f"method 'trak': {given} is >= the number of training examples ({n}) with "
                f"regularization={lam!r}, so Phi^T Phi is singular and the scores would be noise"
                + ("" if self.projector == "none" else
                   f" (the model's {g.n_params} parameters are >= {n} too; with fewer, any proj_dim is exact)")
                + ". "
                + (f"Use proj_dim < {n}, or pass" if n > 1 else "Pass")
                + " regularization > 0 (e.g. 1e-3 x the mean squared gradient norm)."
            )
        require_finite_losses(g, self.name)
        project: Callable[[torch.Tensor], torch.Tensor] = (
            (lambda G: G) if self.projector == "none" else make_projector(g.n_params, k, seed))

        def one(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, object]]:
            Phi = torch.empty(n, dim, dtype=torch.float64)
            Psi = torch.empty(n, dim, dtype=torch.float64)
            for s, G in g.train_grads(params, what="output"):
                Phi[s : s + G.shape[0]] = project(G)
            for s, G in g.train_grads(params, what="loss"):
                Psi[s : s + G.shape[0]] = -project(G)
            T = project(g.test_grads(params))  # B x dim
            dt = next(iter(params.values())).dtype
            sol, rank = kernel_solve(Phi, lam, T.T, dt if dt.is_floating_point else torch.float64)
            if self.average_q:  # the kernel term and Q, averaged apart below
                kernels.append(sol.T @ Phi.T)
                qs.append(out_to_loss(g, params))
            return sol.T @ Psi.T, {"kernel_rank": rank}

        kernels: list[torch.Tensor] = []
        qs: list[torch.Tensor] = []
        phi, extra = ensemble_scores(g, self.n_models, seed, self.name, one, checkpoints=True)
        if len(kernels) > 1:
            phi = torch.stack(kernels).mean(0) * torch.stack(qs).mean(0)[None, :]
        extra = {"n_models": 1, **extra}
        vals = g.to_players(phi)[:, None, :]
        return g.attribution(vals, self.name, self.get_params(),
                             extra={"n_grad_evals": g.n_grad_evals, "dim": dim, **extra})
