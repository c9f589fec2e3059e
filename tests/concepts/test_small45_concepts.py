"""small45: the SAE weights digest (``games.sae._weights_digest``).

* It depended on the order of a dict's keys: an equal plain-tensor dictionary loaded with its
  keys in another order was refused by ``tribute.evaluate`` ("component site 0 hooks ...").
* ``tribute.evaluate`` hashed a plain-tensor dictionary three times (1.9 s per hash at 512 MB).

Truths: exact Shapley is efficient, so credits scored on their own game give
``shapley_error`` 0; the count of hashes is counted directly.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest
import torch

import tribute
import tribute.games.sae as sae_mod
from tribute_testing import seeded_tanh_net

NET = seeded_tanh_net()
X = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _weights(seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(4, 4, generator=g, dtype=torch.float64),
            "W_dec": torch.randn(4, 4, generator=g, dtype=torch.float64)}


def _closure(w: dict[str, torch.Tensor]) -> tribute.SAE:
    return tribute.SAE(lambda a: torch.relu(a @ w["W_enc"]), lambda z: z @ w["W_dec"], at="1")


def _holder(w: dict[str, torch.Tensor]) -> tribute.SAE:
    obj = types.SimpleNamespace(**w)  # attributes set in the dict's order
    return tribute.SAE(lambda a: torch.relu(a @ obj.W_enc), lambda z: z @ obj.W_dec, at="1")


def _explain(make: Any, w: dict[str, torch.Tensor]) -> Any:
    return tribute.explain(NET, X, method="exact_shapley", target=0, players=tribute.components(NET, sae=make(w)))


def _score(make: Any, attr: Any, w: dict[str, torch.Tensor]) -> float:
    got = tribute.evaluate(NET, X, attr, metric="shapley_error", players=tribute.components(NET, sae=make(w)))
    return float(np.max(np.abs(got.scores)))


@pytest.mark.parametrize("make", [_closure, _holder])
def test_an_equal_dictionary_with_keys_in_another_order_is_accepted(make: Any) -> None:
    w = _weights()
    attr = _explain(make, w)
    reordered = {"W_dec": w["W_dec"].clone(), "W_enc": w["W_enc"].clone()}
    assert _score(make, attr, reordered) < 1e-12  # before: refused, "component site 0 hooks"
    # the roles still count: the two tensors swapped (same shapes) is another dictionary
    swapped = {"W_enc": w["W_dec"].clone(), "W_dec": w["W_enc"].clone()}
    assert np.abs(np.asarray(_explain(make, swapped).values) - np.asarray(attr.values)).max() > 1e-3
    with pytest.raises(tribute.InputError, match="component site 0"):
        _score(make, attr, swapped)


def test_evaluate_hashes_a_plain_tensor_dictionary_once(monkeypatch: pytest.MonkeyPatch) -> None:
    w = _weights()
    attr = _explain(_closure, w)
    calls = []
    real = sae_mod._hash_tensors

    def counting(tensors: list[torch.Tensor]) -> str:
        calls.append(len(tensors))
        return real(tensors)

    monkeypatch.setattr(sae_mod, "_hash_tensors", counting)
    assert _score(_closure, attr, {k: v.clone() for k, v in w.items()}) < 1e-12
    assert calls == [2]  # before: [2, 2, 2]
    # the memo lives for one call: a dictionary retrained in place through .data (no version
    # bump) between two calls is still refused
    w2 = {k: v.clone() for k, v in w.items()}
    players = tribute.components(NET, sae=_closure(w2))
    assert float(np.max(np.abs(tribute.evaluate(NET, X, attr, metric="shapley_error", players=players).scores))) < 1e-12
    w2["W_enc"].data.copy_(_weights(9)["W_enc"])
    with pytest.raises(tribute.InputError, match="component site 0"):
        tribute.evaluate(NET, X, attr, metric="shapley_error", players=players)
