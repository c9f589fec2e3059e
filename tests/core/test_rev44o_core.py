"""rev44o: review of aud44o (targets, forward arguments) and three items it left alone.

* A 0-d tensor target that requires grad (``torch.tensor(1.0, requires_grad=True)``) was read
  by ``int(arr.item())`` before aud44o; aud44o's check read it with ``np.asarray`` and failed
  with "Can't call numpy() on Tensor that requires grad" (a 1-D one failed so before too).
* ``batch_size=np.int64(4)`` was refused ("must be a positive int") while ``seed`` and
  ``budget`` accept numpy integers.
* A ``max_memory`` refusal priced its "groups with at most m players" hint at the method's
  default budget, not the one given: IG with ``budget=100`` was told 1 player fits (est.
  3.52 KiB) and, following that, refused again (6.52 KiB against a 3.91 KiB cap).
* ``tribute.evaluate`` / ``default_explainer`` iterated ``forward_args`` / ``forward_kwargs``
  before the container check of ``build_game`` (texts of different word counts: ``forward_args=5``
  failed with "'int' object is not iterable", ``forward_kwargs=[pairs]`` with "no attribute
  'items'"; ``default_explainer`` split a bare tensor row by row into positional arguments).

Truths: a linear model's feature-ablation credits ``w_jk (x_j - b_j)`` in closed form; rows per
forward pass counted by the model itself.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError, InputError
from tribute.metrics import default_explainer

W = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0], [2.0, 0.0, 1.5], [-0.5, 1.0, 2.0]])  # 4 x 3
X = np.arange(8.0).reshape(2, 4) / 4.0


def _linear(x: Any) -> np.ndarray:
    out: np.ndarray = np.asarray(x, dtype=np.float64) @ W
    return out


@pytest.mark.parametrize("target, k", [(torch.tensor(1.0, requires_grad=True), 1),
                                       (torch.tensor([2.0, 0.0], requires_grad=True), None)],
                         ids=["0-d", "per-sample"])
def test_a_target_tensor_that_requires_grad_is_read(target: torch.Tensor, k: int | None) -> None:
    attr = tribute.explain(_linear, X, method="feature_ablation", target=target, baseline=0.0)
    cols = [k, k] if k is not None else [2, 0]
    np.testing.assert_allclose(attr.values, X * W[:, cols].T, rtol=0, atol=1e-12)


def test_a_numpy_integer_batch_size_sets_the_rows_per_pass() -> None:
    rows: list[int] = []

    def model(x: Any) -> np.ndarray:
        rows.append(int(np.asarray(x).shape[0]))
        return _linear(x)

    x = np.arange(24.0).reshape(6, 4) / 8.0
    four: Any = np.int64(4)
    attr = tribute.explain(model, x, method="exact_shapley", target=1, baseline=0.0, batch_size=four)
    np.testing.assert_allclose(attr.values, x * W[:, 1], rtol=0, atol=1e-12)
    assert max(rows) <= 4 and sum(rows) >= 6 * 2 ** 4  # every coalition of every row, 4 at a time
    bads: list[Any] = [np.int64(0), np.float64(4.0), np.bool_(True)]
    for bad in bads:
        with pytest.raises(InputError, match=r"batch_size=.* must be a positive int"):
            tribute.explain(_linear, x, method="exact_shapley", target=1, baseline=0.0, batch_size=bad)


def test_the_groups_hint_of_a_memory_refusal_fits_at_the_budget_given() -> None:
    """Following the "groups with at most m players" hint, with the same budget, fits."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    x = torch.randn(7, 8, dtype=torch.float64)
    bg = torch.randn(9, 8, dtype=torch.float64)
    hints = 0
    for method, budget, cap in [("integrated_gradients", 100, 4000), ("expected_gradients", 300, 8000),
                                ("smoothgrad", 100, 16000), ("sobol", 300, 40000)]:
        kw: dict[str, Any] = dict(method=method, baseline=bg, target=0, budget=budget,
                                  max_memory=cap, seed=0, progress=False)
        with pytest.raises(BudgetError, match="max_memory") as info:
            tribute.explain(net, x, **kw)
        m = re.search(r"groups with at most (\d+) players?\b", str(info.value))
        if m is None:  # no group count fits at this budget: then no such hint is given
            continue
        hints += 1
        k = int(m.group(1))
        attr = tribute.explain(net, x, groups=np.arange(8) * k // 8, **kw)  # was refused again
        assert attr.n_players == k
    assert hints >= 2


class _Scaled(torch.nn.Module):
    """``(x @ w) * scale``: feature ablation credits ``w_j x_j scale`` in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))

    def forward(self, x: torch.Tensor, *scale: torch.Tensor) -> torch.Tensor:
        return ((x @ self.w) * scale[0])[:, None]


def test_default_explainer_refuses_forward_arguments_of_the_wrong_container() -> None:
    net = _Scaled()
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=torch.float64)
    scale = torch.tensor([2.0, -3.0], dtype=torch.float64)
    attr = tribute.explain(net, x, method="feature_ablation", baseline=0.0, forward_args=(scale,))
    truth = (x * net.w.detach() * scale[:, None]).numpy()
    np.testing.assert_allclose(attr.values.numpy(), truth, rtol=0, atol=1e-12)
    ex, _ = default_explainer(net, attr, x, baseline=0.0, forward_args=(scale,))
    np.testing.assert_allclose(ex(x).values.numpy(), truth, rtol=0, atol=1e-12)
    bad: list[dict[str, Any]] = [{"forward_args": scale}, {"forward_args": 5},
                                 {"forward_kwargs": [("scale", scale)]}]
    for kw in bad:
        name = next(iter(kw))
        with pytest.raises(InputError, match=rf"{name} of type \w+ is not a"):
            default_explainer(net, attr, x, baseline=0.0, **kw)


def test_evaluate_refuses_forward_arguments_of_the_wrong_container_for_texts() -> None:
    """Texts of different word counts are evaluated group by group; the forward arguments
    were cut per group before any check."""
    from tribute.models.text import WordTokenizer

    vocab = "the cat sat on mat a quick fox dog ran far".split()
    tok = WordTokenizer(vocab, bos=True)

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(tok.vocab_size, 3).double()

        def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            out: torch.Tensor = self.emb(ids).mean(1)
            return out

    texts = ["the cat sat on the mat", "a quick fox", "a dog ran far"]
    model = Bag()
    attr = tribute.explain(model, texts, tokenizer=tok, method="occlusion", target=1,
                           removal="mask", progress=False)
    bad: list[dict[str, Any]] = [{"forward_args": 5}, {"forward_args": torch.ones(3)},
                                 {"forward_kwargs": [("scale", torch.ones(3))]}]
    for kw in bad:
        name = next(iter(kw))
        with pytest.raises(InputError, match=rf"{name} of type \w+ is not a"):
            tribute.evaluate(model, texts, attr, metric="deletion", tokenizer=tok, removal="mask", **kw)
