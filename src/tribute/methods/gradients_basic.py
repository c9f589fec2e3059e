"""Plain gradients: saliency and input x gradient."""

from __future__ import annotations

import torch

from ..attribution import Attribution
from ..errors import UnsupportedModelError
from ..games.base import Game
from ..games.features import FeatureGame
from .base import Method, Tags, register

__all__ = ["InputXGradient", "Saliency"]


def _feature_game(game: Game, name: str) -> FeatureGame:
    if not isinstance(game, FeatureGame):
        raise UnsupportedModelError(f"method {name!r} takes gradients w.r.t. inputs; it needs a feature game.")
    return game


@register
class Saliency(Method):
    """Gradient of the explained output w.r.t. each input element.

    Args:
        absolute: return ``|grad|`` (the original saliency map) instead of the signed
            gradient. default=False.

    With groups, a player's credit is the sum over its elements.

    Reference: Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks:
    Visualising Image Classification Models and Saliency Maps".
    """

    name = "saliency"
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, games=("feature",),
                dense_output=True)
    paper = "Simonyan et al. (2014), Deep Inside Convolutional Networks"

    def __init__(self, absolute: bool = False) -> None:
        self.absolute = absolute

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = _feature_game(game, self.name)
        _, acc = fg.input_gradients(1, lambda xs, b, k: xs)
        g = acc[1]
        if self.absolute:
            g = g.abs()
        return fg.attribution(fg.elements_to_players(g), self.name, self.get_params())


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

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        _, grads = game.value_and_grad(torch.ones(1, game.n_players))
        return game.attribution(grads[:, 0], self.name, self.get_params())
