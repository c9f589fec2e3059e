"""Games: players plus a value function. See :mod:`tribute.games.base` for the contract."""

from __future__ import annotations

from .base import Game
from .features import Background, FeatureGame, Patches, PerSample, patches

__all__ = ["Background", "FeatureGame", "Game", "Patches", "PerSample", "patches"]
