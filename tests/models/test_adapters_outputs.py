"""A model returning several tensors: the first is explained, and the user is told."""

from __future__ import annotations

import warnings

import pytest
import torch

import tribute


class _TwoOutputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 5)
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.hidden(x))
        return h, self.head(h)


def test_a_tuple_of_outputs_warns_which_one_is_explained():
    x = torch.randn(2, 4)
    with pytest.warns(UserWarning, match=r"returned a tuple of 2 outputs; tribute explains the "
                                         r"first \(shape \(2, 5\)\).*model\(x\)\[1\]"):
        a = tribute.explain(_TwoOutputs(), x, method="feature_ablation", target=2)
    assert a.values.shape == (2, 4)


def test_one_tensor_or_a_tuple_with_one_tensor_does_not_warn():
    lin = torch.nn.Linear(4, 3)

    class One(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            return lin(x), None

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tribute.explain(lin, torch.randn(2, 4), method="feature_ablation", target=0)
        tribute.explain(One(), torch.randn(2, 4), method="feature_ablation", target=0)


def test_a_plain_dict_with_logits_is_read_like_a_model_output():
    """{"logits": t} (a plain dict, not a Hugging Face ModelOutput) is explained through its
    "logits"; a dict without one is refused, naming how to wrap the model."""
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    a = tribute.explain(lambda t: {"hidden": t, "logits": lin(t)}, x, method="feature_ablation",
                        target=2)
    b = tribute.explain(lin, x, method="feature_ablation", target=2)
    torch.testing.assert_close(a.values, b.values)
    with pytest.raises(tribute.ModelOutputError, match=r"mapping with a 'logits' tensor.*"
                                                       r"model\(x\)\['scores'\]"):
        tribute.explain(lambda t: {"scores": lin(t)}, x, method="feature_ablation", target=2)


def test_a_buffer_the_forward_writes_is_reported():
    """The session restores flags, requires_grad and hooks, not buffers: a forward that writes
    one (here a call counter) left it changed without a word (audit aud32m). Now it warns,
    naming the buffer; a model that does not write its buffers (BatchNorm, put in eval mode)
    does not warn."""

    class Counter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls.add_(1)  # type: ignore[operator]
            return self.lin(x)

    outer = torch.nn.Sequential(Counter())
    with pytest.warns(UserWarning, match=r"changed its buffer\(s\) '0.calls'.*copy.deepcopy"):
        tribute.explain(outer, torch.randn(2, 4), method="feature_ablation", target=1)
    bn = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.Linear(5, 2))
    bn.train()
    stats = {k: v.clone() for k, v in bn.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tribute.explain(bn, torch.randn(3, 4), method="integrated_gradients", target=1)
    assert bn.training and all(torch.equal(v, bn.state_dict()[k]) for k, v in stats.items())


def test_a_model_on_the_meta_device_is_refused_naming_the_fix():
    """A module whose parameters have no values (device='meta') failed deep in the first
    forward pass ("Tensor.item() cannot be called on meta tensors"); it is refused up front."""
    meta = torch.nn.Linear(4, 3, device="meta")
    with pytest.raises(tribute.InputError, match=r"'meta' device.*to_empty\(device='cpu'\)"):
        tribute.explain(meta, torch.randn(2, 4), method="feature_ablation", target=1)
