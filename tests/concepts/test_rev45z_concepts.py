"""rev45z: SAE credits saved before small45 sorted a dictionary's tensors by key.

small45 made the SAE weights digest read a dict's values in the order of its keys; an
attribution saved by the release before (values in insertion order, ``{"W_enc", "W_dec"}``)
was then refused by ``evaluate`` as another SAE's credits. The old record is rebuilt here by
hand (sha1 of each tensor's shape/dtype text and bytes, in insertion order, as that release
wrote it: '0e041c602cf3' for these weights, read from a file it saved).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute_testing import seeded_tanh_net

NET = seeded_tanh_net()
X = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
_G = torch.Generator().manual_seed(2)
A = torch.randn(4, 4, generator=_G, dtype=torch.float64)
B = torch.randn(4, 4, generator=_G, dtype=torch.float64)


def _sae(w: dict[str, torch.Tensor]) -> tribute.SAE:
    return tribute.SAE(lambda a: torch.relu(a @ w["W_enc"]), lambda z: z @ w["W_dec"], at="1")


def _old_digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()[:12]


def _as_saved_before(attr: Any, w: dict[str, torch.Tensor]) -> Any:
    """``attr`` with the component sites the release before small45 recorded."""
    old = _old_digest(list(w.values()))
    sites = [k.split("|") for k in attr.params["component_sites"]]
    for parts in sites:
        parts[2] = old
    attr.params["component_sites"] = ["|".join(p) for p in sites]
    return attr


def _score(attr: Any, w: dict[str, torch.Tensor]) -> float:
    got = tribute.evaluate(NET, X, attr, metric="shapley_error", players=tribute.components(NET, sae=_sae(w)))
    return float(np.max(np.abs(got.scores)))


def test_the_hand_digest_is_the_one_the_old_release_wrote() -> None:
    assert _old_digest([A, B]) == "0e041c602cf3"


def test_credits_saved_before_small45_are_scored_and_other_weights_refused(tmp_path: Any) -> None:
    w = {"W_enc": A, "W_dec": B}  # insertion order != key order
    attr = tribute.explain(NET, X, method="exact_shapley", target=0, players=tribute.components(NET, sae=_sae(w)))
    old = _as_saved_before(attr, w)
    old.save(tmp_path / "old")
    loaded = tribute.Attribution.load(next(tmp_path.iterdir()))
    assert _score(loaded, w) < 1e-12  # exact Shapley on its own game: efficiency, 0
    for other in ({"W_enc": A + 0.1, "W_dec": B}, {"W_enc": B, "W_dec": A}):
        with pytest.raises(InputError, match="component site 0 hooks"):
            _score(loaded, other)


def test_new_records_still_tell_swapped_roles_apart() -> None:
    w = {"W_enc": A, "W_dec": B}
    attr = tribute.explain(NET, X, method="exact_shapley", target=0, players=tribute.components(NET, sae=_sae(w)))
    assert _score(attr, {"W_dec": B, "W_enc": A}) < 1e-12  # the same dictionary, keys reordered
    for swapped in ({"W_enc": B, "W_dec": A}, {"W_dec": A, "W_enc": B}):
        with pytest.raises(InputError, match="component site 0 hooks"):
            _score(attr, swapped)
