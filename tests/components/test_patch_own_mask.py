"""README, activation patching: counterfactual row i runs with input i's forward kwargs; a
counterfactual with its own attention mask passes it as an input. Truth: own forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute


class _Pool(torch.nn.Module):
    """Embedding, masked mean pooling, ``mix`` (the players: its 4 neurons), a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(10, 4)
        self.mix = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.emb(ids) * m).sum(1) / m.sum(1)
        out: torch.Tensor = self.head(torch.tanh(self.mix(pooled)))
        return out


def _patched_truth(model: _Pool, ids: torch.Tensor, mask: torch.Tensor, cf: torch.Tensor,
                   cf_mask: torch.Tensor) -> np.ndarray:
    """credit_j = f(x) - f(x with mix unit j set to its value on the counterfactual run with cf_mask)."""
    seen: dict[str, torch.Tensor] = {}
    h = model.mix.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o.detach()))
    with torch.no_grad():
        model(cf, cf_mask)
        a_cf = seen["a"]
        full = model(ids, mask)[:, 0]
    h.remove()
    truth = np.zeros((len(ids), 4))
    for j in range(4):
        def patch(m: torch.nn.Module, i: object, o: torch.Tensor, j: int = j) -> torch.Tensor:
            o = o.clone()
            o[:, j] = a_cf[:, j]
            return o

        h = model.mix.register_forward_hook(patch)
        with torch.no_grad():
            truth[:, j] = (full - model(ids, mask)[:, 0]).numpy()
        h.remove()
    return truth


def test_patch_uses_the_inputs_kwargs_and_own_masks_go_in_the_inputs() -> None:
    model = _Pool().eval()
    ids, mask = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 1, 1, 1]])
    cf, cf_mask = torch.tensor([[8, 9, 0, 0]]), torch.tensor([[1, 1, 0, 0]])  # padded differently
    own = _patched_truth(model, ids, mask, cf, cf_mask)
    shared = _patched_truth(model, ids, mask, cf, mask)  # the counterfactual run with the input's mask
    assert np.abs(own - shared).max() > 0.05  # the mismatch matters here
    with pytest.warns(UserWarning, match="counterfactual_kwargs"):
        via_kwargs = tribute.explain(
            model, ids, method="feature_ablation", target=0, forward_kwargs={"attention_mask": mask},
            players=tribute.components(model, ["mix"], unit="neuron", ablation="patch", counterfactual=cf))
    np.testing.assert_allclose(np.asarray(via_kwargs.values).reshape(1, 4), shared, atol=1e-6)
    via_inputs = tribute.explain(
        model, (ids, mask), method="feature_ablation", target=0,
        players=tribute.components(model, ["mix"], unit="neuron", ablation="patch", counterfactual=(cf, cf_mask)))
    np.testing.assert_allclose(np.asarray(via_inputs.values).reshape(1, 4), own, atol=1e-6)


def test_counterfactual_kwargs_give_the_counterfactual_its_own_mask() -> None:
    model = _Pool().eval()
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    cf = torch.tensor([[8, 9, 0, 0], [2, 2, 2, 2]])
    cf_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    own = _patched_truth(model, ids, mask, cf, cf_mask)
    assert np.abs(own - _patched_truth(model, ids, mask, cf, mask)).max() > 0.05
    attr = tribute.explain(
        model, ids, method="feature_ablation", target=0, forward_kwargs={"attention_mask": mask},
        players=tribute.components(model, ["mix"], unit="neuron", ablation="patch", counterfactual=cf,
                                   counterfactual_kwargs={"attention_mask": cf_mask}))
    np.testing.assert_allclose(np.asarray(attr.values).reshape(2, 4), own, atol=1e-6)


def test_patch_with_per_sample_kwargs_warns_unless_counterfactual_kwargs_say() -> None:
    import warnings

    model = _Pool().eval()
    ids, mask = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 1, 1, 1]])
    cf = torch.tensor([[8, 9, 0, 0]])

    def run(counterfactual_kwargs: dict[str, object] | None = None) -> None:
        tribute.explain(model, ids, method="feature_ablation", target=0, forward_kwargs={"attention_mask": mask},
                        players=tribute.components(model, ["mix"], unit="neuron", ablation="patch",
                                                   counterfactual=cf, counterfactual_kwargs=counterfactual_kwargs))

    with pytest.warns(UserWarning, match="counterfactual_kwargs"):
        run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(counterfactual_kwargs={})
    with pytest.raises(tribute.InputError, match=r"counterfactual_kwargs\['attention_mask'\] has 3 rows"):
        run(counterfactual_kwargs={"attention_mask": torch.ones(3, 4, dtype=torch.long)})
    two = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    with warnings.catch_warnings():  # one row for all counterfactuals broadcasts, as in forward_kwargs
        warnings.simplefilter("error")
        tribute.explain(model, two, method="feature_ablation", target=0,
                        forward_kwargs={"attention_mask": mask.expand(2, -1)},
                        players=tribute.components(model, ["mix"], unit="neuron", ablation="patch",
                                                   counterfactual=cf.expand(2, -1),
                                                   counterfactual_kwargs={"attention_mask": torch.ones(1, 4, dtype=torch.long)}))
    with pytest.warns(UserWarning, match=r"per-sample forward_args .*counterfactual=\(ids_cf, mask_cf\)"):
        tribute.explain(model, ids, method="feature_ablation", target=0, forward_args=(mask,),
                        players=tribute.components(model, ["mix"], unit="neuron", ablation="patch",
                                                   counterfactual=cf))
    with pytest.raises(tribute.InputError, match="read only by ablation='patch'"):
        tribute.components(model, ["mix"], ablation="mean", counterfactual_kwargs={"attention_mask": mask})
