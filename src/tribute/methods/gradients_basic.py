"""Plain gradients: saliency and input x gradient."""

from __future__ import annotations

import warnings

import torch

from ..attribution import Attribution
from ..errors import UnsupportedModelError, user_stacklevel
from ..games.base import Game
from ..games.features import FeatureGame
from ..games.generation import GenerationGame
from ..params import InstanceOf, declare
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["InputXGradient", "Saliency", "StreamingMoments", "feature_game", "output_transform",
           "rows_to_players"]


def feature_game(game: Game, name: str) -> FeatureGame:
    """``game`` as a :class:`FeatureGame`, or a clear error for other games."""
    if not isinstance(game, FeatureGame):
        raise UnsupportedModelError(
            f"method {name!r} takes gradients w.r.t. input features; it needs a feature game, "
            f"got a {type(game).__name__} ({game.kind} players)."
        )
    return game


_feature_game = feature_game  # backwards-compatible private name


def output_transform(game: FeatureGame) -> str | None:
    """What the target applies to the model's output outside the model, or None for nothing.

    Propagation rules (DeepLIFT, LRP) only see the model's modules: an explained output that
    is a nonlinear function of the model's output is out of their reach. ``output="raw"`` is
    the output itself, ``output="logit"`` too when the model returns logits; from
    probabilities (``model_output="probability"``) ``"logit"`` is ``log(p / (1 - p))``,
    computed outside the model (aud43g: LRP explained it through a final ``nn.Sigmoid`` with
    credits 4x the logit's, silently).
    """
    t = game.target
    if t.output == "raw" or (t.output == "logit" and t.model_output == "logit"):
        return None
    if t.output == "logit":
        return f"output='logit' of model_output={t.model_output!r} is log(p / (1 - p)) of the model's output"
    return f"output={t.output!r} applies a softmax/sigmoid (or log) to the model's output"


def rows_to_players(game: FeatureGame, per_element: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """Sum per-row element credits into players.

    Like :meth:`FeatureGame.elements_to_players`, but the leading axis holds *rows* that
    belong to samples ``sample`` (so per-sample group masks are looked up row by row).

    Args:
        game: the feature game.
        per_element: ``rows x ... x D`` credits (all inputs concatenated), CPU.
        sample: ``rows`` sample ids.

    Returns:
        ``rows x ... x players`` (the same tensor for dense games).
    """
    return game.elements_to_players(per_element, sample)


class StreamingMoments:
    """Per-sample mean and central moments of a stream of per-row values.

    Rows arrive in chunks (each row tagged with its sample); chunk statistics are computed
    two-pass and merged with the pairwise formulas of Chan et al. (1979) and Pébay (2008), so
    the variance of nearly constant values is not lost to cancellation (``E[c^2] - E[c]^2``).

    Args:
        shape: per-sample shape of the values, e.g. ``(batch, targets, players)``; the first
            axis is the sample axis.
        order: highest central moment kept (2, 3 or 4).
    """

    def __init__(self, shape: tuple[int, ...], order: int = 2) -> None:
        if order not in (2, 3, 4):
            raise ValueError(f"order={order} must be 2, 3 or 4")
        self.order = order
        self.count = torch.zeros(shape[0], dtype=torch.float64)
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.m = {p: torch.zeros(shape, dtype=torch.float64) for p in range(2, order + 1)}

    def update(self, values: torch.Tensor, sample: torch.Tensor) -> None:
        """Add rows ``values`` (``rows x ...``, float64 CPU) that belong to samples ``sample``."""
        sample = sample.cpu()
        nb = torch.bincount(sample, minlength=self.count.shape[0]).to(torch.float64)
        hit = nb > 0
        if not bool(hit.any()):
            return
        view = (-1, *([1] * (values.ndim - 1)))
        safe = nb.clamp_min(1.0).reshape(view)
        mean_b = torch.zeros_like(self.mean).index_add_(0, sample, values) / safe
        dev = values - mean_b[sample]
        mb = {p: torch.zeros_like(self.mean).index_add_(0, sample, dev**p) for p in range(2, self.order + 1)}
        na = self.count.reshape(view)
        nbv = nb.reshape(view)
        n = (na + nbv).clamp_min(1.0)
        delta = torch.where(hit.reshape(view), mean_b - self.mean, torch.zeros_like(self.mean))
        m2a, m2b = self.m[2], mb[2]
        new: dict[int, torch.Tensor] = {}
        if self.order >= 4:
            m3a, m3b = self.m[3], mb[3]
            new[4] = (self.m[4] + mb[4] + delta**4 * na * nbv * (na**2 - na * nbv + nbv**2) / n**3
                      + 6 * delta**2 * (na**2 * m2b + nbv**2 * m2a) / n**2
                      + 4 * delta * (na * m3b - nbv * m3a) / n)
        if self.order >= 3:
            new[3] = (self.m[3] + mb[3] + delta**3 * na * nbv * (na - nbv) / n**2
                      + 3 * delta * (na * m2b - nbv * m2a) / n)
        new[2] = m2a + m2b + delta**2 * na * nbv / n
        self.m = new
        self.mean = self.mean + delta * nbv / n
        self.count = self.count + nb

    def central(self, p: int) -> torch.Tensor:
        """The ``p``-th central moment (population, divided by the count)."""
        view = (-1, *([1] * (self.mean.ndim - 1)))
        return self.m[p] / self.count.clamp_min(1.0).reshape(view)

    def variance(self) -> torch.Tensor:
        """Unbiased sample variance (``/(K - 1)``)."""
        view = (-1, *([1] * (self.mean.ndim - 1)))
        return self.m[2] / (self.count - 1).clamp_min(1.0).reshape(view)

    def stderr_of_mean(self) -> torch.Tensor:
        """Standard error of the per-sample mean: ``std / sqrt(K)``."""
        view = (-1, *([1] * (self.mean.ndim - 1)))
        return (self.variance() / self.count.clamp_min(1.0).reshape(view)).sqrt()


@register
class Saliency(Method):
    """Gradient of the explained output w.r.t. each input element.

    Args:
        absolute: return ``|grad|`` (the original saliency map) instead of the signed
            gradient. default=False.

    With groups, a player's credit is the sum over its elements. On a generation game
    (:func:`tribute.explain_generation`) the elements are the prompt's input embeddings: a
    player's credit is ``sum_t sum_d df/de_td`` over its tokens ``t`` and embedding dimensions
    ``d`` (``sum |df/de_td|`` with ``absolute=True``), the reduction of Captum's
    ``LLMGradientAttribution``. That signed sum vanishes identically when a LayerNorm reads the
    embeddings (GPT-2: ``f`` is invariant to ``e + c 1``), which is warned about; use
    ``absolute=True`` there.

    Reference: Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks:
    Visualising Image Classification Models and Saliency Maps".
    """

    name = "saliency"
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, games=("feature",),
                dense_output=True)
    paper = "Simonyan et al. (2014), Deep Inside Convolutional Networks"

    constraints = declare({"absolute": InstanceOf((bool,), "True or False")})

    def __init__(self, absolute: bool = False) -> None:
        self.absolute = absolute

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        if isinstance(game, GenerationGame):  # gradients w.r.t. the prompt's input embeddings
            _, signed, absolute = game.embedding_gradients()
            if not self.absolute and bool((signed.abs() <= 1e-6 * absolute.clamp_min(1e-300)).all()):
                warnings.warn(
                    "saliency: the prompt embeddings' gradients sum to ~0 over the embedding "
                    "dimension (a LayerNorm reads the embeddings, as in GPT-2, so f is invariant "
                    "to adding a constant to every dimension); the signed saliency says nothing "
                    "here. Use saliency with absolute=True, input_x_gradient or "
                    "integrated_gradients.", UserWarning, stacklevel=user_stacklevel())
            return game.attribution(absolute if self.absolute else signed, self.name,
                                    self.get_params())
        fg = feature_game(game, self.name)
        _, acc = fg.input_gradients(1, lambda xs, b, k: xs)
        g = acc[1]
        if self.absolute:
            g = g.abs()
        return fg.attribution(fg.elements_to_players(g), self.name, self.get_params())

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One input-gradient pass per input."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one gradient pass per input", background=False)


@register
class InputXGradient(Method):
    """Input x gradient: ``(x - baseline) * grad f(x)`` (the mask gradient at ``m = 1``).

    With the default baseline 0 this is Shrikumar et al.'s input x gradient; with groups, each
    player gets the sum over its elements. Exact on linear models: ``w * (x - baseline)``.

    Reference: Shrikumar et al. (2016), "Not Just a Black Box: Learning Important Features
    Through Propagating Activation Differences".
    """

    name = "input_x_gradient"
    tags = Tags(family="gradient", needs_gradients=True)
    paper = "Shrikumar et al. (2016), Not Just a Black Box"

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        _, grads = game.value_and_grad(torch.ones(1, game.n_players))
        return game.attribution(grads[:, 0], self.name, self.get_params())

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One input-gradient pass per input."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one gradient pass per input")
