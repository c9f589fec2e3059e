"""ReAGent: recursive token importance from random replacements (Zhao & Shan 2024).

ReAGent ("ReAGent: A Model-agnostic Feature Attribution Method for Generative Language
Models", Zhao & Shan, AAAI-ReLM 2024) keeps a score ``s_i`` per input token (in logit space)
and repeats: replace a random subset ``R`` of tokens (each token with probability ``r``),
measure how much the target's probability drops, ``d = p(y | x) - p(y | x_R)`` in
``[-1, 1]``, and update

    ``s_i += logit((1 + d) / 2)``  for ``i in R``,    ``s_i -= logit((1 + d) / 2)``  otherwise,

so tokens whose replacement hurts the prediction gain importance and the ones kept while it
dropped lose it. The paper reports ``softmax(s)`` after the updates (stopping early once the
top-scored tokens alone keep the target among the top-k predictions).

Here the method runs on any game (generation games, where it belongs, and any feature game):

* "replacing a token" is removing a player as the game defines it: pass
  ``removal="random"`` to :func:`tribute.explain_generation` for the paper's uniform
  vocabulary replacer (drawn once per position and game, so that ``v(S)`` stays a function of
  ``S``; the paper draws new tokens every step), or any other removal option;
* ``d`` is measured on the probability scale: ``exp(v)`` for games whose values are
  log-probabilities (generation games, feature games with ``output="log_prob"``), the value
  itself for probabilities (``output="prob"``, or a model declared or detected to return
  probabilities, e.g. a scikit-learn classifier, explained raw), and ``tanh(v(N) - v(S))`` for other raw outputs (``scale="raw"``);
* the update does not depend on the current scores, so all steps are independent draws and
  are evaluated in batches; the budget (evaluations, ``v(N)`` included) fixes the number of
  steps ``K`` and there is no early stop (the top-k stopping rule needs the full next-token
  distribution, which a game's value does not expose);
* the returned credit is the mean update ``s_i / K`` (signed: positive means keeping the
  player raises ``v``; same ranking as the paper's ``softmax(s)``, which is kept in
  ``attr.extra["importance"]``), with the standard error of that mean over the ``K`` steps.

The masks are shared by all samples, so a batch gives the per-sample results concatenated.
Texts of different word counts are explained by :func:`tribute.explain` one group per word
count (:meth:`ReAGent.reads_player_count`): in one padded game a shorter text's softmax
importance would spread over the longer texts' dummy players (a one-word text: 0.0 instead
of 1.0 on its word), and its replacement draws would depend on the other texts.
"""

from __future__ import annotations

import torch

from ..attribution import Attribution
from ..games.base import Game
from ..params import Interval, Options, declare
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["ReAGent", "auto_scale"]

_EPS = 1e-6


def auto_scale(game: Game) -> str:
    """The scale ``scale="auto"`` reads a game's values on: ``"log_prob"`` for log-probabilities
    (generation games, ``output="log_prob"``), ``"prob"`` for probabilities (``output="prob"``,
    or a model declared or detected to return probabilities explained ``output="raw"``), else
    ``"raw"``."""
    if getattr(game, "value_scale", None) == "log_prob":
        return "log_prob"
    target = getattr(game, "target", None)
    output, model_output = getattr(target, "output", None), getattr(target, "model_output", None)
    if output == "log_prob":
        return "log_prob"
    if output == "prob" or (output == "raw" and model_output == "probability"):
        return "prob"
    return "raw"


@register
class ReAGent(Method):
    """ReAGent (Zhao & Shan 2024): importance from repeated random replacement of tokens.

    Each step removes every player with probability ``replace_ratio`` and moves the scores of
    the removed players up, and of the kept ones down, by ``logit((1 + d) / 2)`` where ``d``
    is the drop of the target's probability. Credits are the mean update per step (signed),
    with standard errors over the steps; ``attr.extra["importance"]`` holds the paper's
    ``softmax`` of the summed scores. See the module docstring for how it maps onto games.

    Args:
        replace_ratio: probability that a player is replaced in a step. default=0.3 (the
            paper's setting).
        scale: how the drop ``d`` is measured: ``"auto"`` (``"log_prob"`` for games whose
            values are log-probabilities, ``"prob"`` for probabilities, else ``"raw"``: see
            :func:`auto_scale`), ``"log_prob"`` (``exp`` of the values), ``"prob"`` (values are
            probabilities) or ``"raw"`` (``tanh`` of the value difference). default="auto".
    """

    name = "reagent"
    tags = Tags(family="perturbation", stochastic=True, budgeted=True, games=("feature",))
    paper = ("Zhao & Shan (2024), ReAGent: A Model-agnostic Feature Attribution Method for "
             "Generative Language Models")
    constraints = declare({
        "replace_ratio": Interval(float, 0.0, 1.0, closed="neither"),
        "scale": Options(("auto", "log_prob", "prob", "raw")),
    })

    def __init__(self, replace_ratio: float = 0.3, scale: str = "auto") -> None:
        self.replace_ratio = replace_ratio
        self.scale = scale

    budget_rule = "min(2048, 64 + 16n)"

    def min_budget(self, game: Game) -> int:
        return 3

    def default_budget(self, game: Game) -> int:
        return int(min(2048, 64 + 16 * int(game.n_players)))

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``budget - 1`` coalitions and the per-step updates ``batch x K x targets``."""
        k = int(budget if budget is not None else self.default_budget(game))
        b, t, n = int(game.n_samples), int(game.n_targets), int(game.n_players)
        return coalition_cost(game, k, design=2 * b * t * n * 8, flops=float(k) * b * t * n * 4,
                              note=f"{k:,} random replacement steps x {n:,} players")

    def reads_player_count(self) -> str | None:
        return ("its importance (the paper's softmax of the summed scores) normalises over every "
                "player, and its replacements are drawn over every player")

    def _drop(self, game: Game, full: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """``d`` in ``[-1, 1]`` per sample, step and target (``full``: ``B x T``, ``vals``: ``B x K x T``)."""
        scale = self.scale if self.scale != "auto" else auto_scale(game)
        if scale == "log_prob":
            d = full.exp()[:, None, :] - vals.exp()
        elif scale == "prob":
            d = full[:, None, :] - vals
        else:
            d = torch.tanh(full[:, None, :] - vals)
        return d.clamp(-1 + _EPS, 1 - _EPS)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        budget = budget if budget is not None else self.default_budget(game)
        full = game.full()  # B x T, v(N) is spent already
        k = max(1, game.budget_left(budget))
        gen = torch.Generator().manual_seed(seed)
        removed = torch.rand(k, n, generator=gen, dtype=torch.float64) < float(self.replace_ratio)
        masks = (~removed).to(torch.float64)
        vals = game.value(masks)  # B x K x T
        d = self._drop(game, full, vals)
        step = torch.logit((1 + d) / 2)  # B x K x T
        sign = removed.to(torch.float64) * 2 - 1  # K x n: +1 replaced, -1 kept
        upd = step[..., None] * sign[None, :, None, :]  # B x K x T x n
        phi = upd.mean(1)  # B x T x n
        stderr = upd.std(1, unbiased=True) / k ** 0.5 if k > 1 else torch.full_like(phi, float("nan"))
        importance = torch.softmax(upd.sum(1), -1)
        return game.attribution(phi, self.name, self.get_params(), stderr=stderr,
                                extra={"steps": int(k), "importance": importance.numpy()})
