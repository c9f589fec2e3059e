"""Review rev33c: head sites next to feed-forward linears, component credits without players=
in re-explaining metrics, per-input Background baselines in conductance, clearer errors.
Each test failed on 36c1c26."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.games.components import components
from tribute.games.sites import resolve_site


def _bert(intermediate: int) -> nn.Module:
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=intermediate,
                        vocab_size=50, attn_implementation="eager")
    return tf.BertModel(cfg).double().eval()


@pytest.mark.parametrize("intermediate", [64, 32])
def test_num_heads_on_a_bert_feed_forward_linear_splits_its_output(intermediate: int) -> None:
    # 913d725: intermediate.dense (and output.dense when intermediate_size == hidden_size) were
    # read as attention.self's heads on their input (the residual stream): 5.7e-3 off
    bert = _bert(intermediate)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=ids).last_hidden_state[:, 0, :2]

    net, x = Net(), torch.randint(1, 50, (3, 6))
    for site in ("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense"):
        lin = net.get_submodule(site)
        assert isinstance(lin, nn.Linear)
        attr = tribute.explain(net, x, method="feature_ablation", target=0,
                               players=components(net, site, unit="head", num_heads=4))
        want = []
        with torch.no_grad():
            full = net(x)[:, 0]
            for h in range(4):
                w, b = lin.weight.data.clone(), lin.bias.data.clone()
                rows = slice(h * lin.out_features // 4, (h + 1) * lin.out_features // 4)
                lin.weight.data[rows] = 0.0
                lin.bias.data[rows] = 0.0
                want.append((full - net(x)[:, 0]).numpy())
                lin.weight.data.copy_(w)
                lin.bias.data.copy_(b)
        np.testing.assert_allclose(np.asarray(attr.values), np.stack(want, 1), atol=1e-12)
    assert resolve_site(bert, "encoder.layer.0.attention.output.dense", "head", 4).kind == "input"


def _component_attr() -> tuple[nn.Module, torch.Tensor, object, tribute.Attribution]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2)).double()  # 6 neurons = 6 features
    x = torch.randn(4, 6, dtype=torch.float64)
    players = components(net, "1", unit="neuron")
    return net, x, players, tribute.explain(net, x, method="feature_ablation", players=players, target=1)


@pytest.mark.parametrize("metric", ["model_randomisation", "random_logit", "stability", "max_sensitivity"])
def test_re_explaining_metrics_refuse_component_credits_without_players(metric: str) -> None:
    # 36c1c26 refused metrics that read values only; these re-explain on the input features
    # (random_logit 0.086 for 0.771) when the counts happen to agree
    net, x, _, attr = _component_attr()
    with pytest.raises(InputError, match="component"):
        tribute.evaluate(net, x, attr, metric, target=1)


def test_evaluate_names_a_bad_progress_argument() -> None:
    # it was raised from inside the reference pass: "the model failed on the inputs (shapes
    # (4, 6)): progress='no' must be ... Check that the inputs have the shape and dtype ..."
    net, x, _, _ = _component_attr()
    attr = tribute.explain(net, x, method="feature_ablation", target=1, baseline=0.0)
    with pytest.raises(InputError, match=r"^progress='no' must be"):
        tribute.evaluate(net, x, attr, "deletion", target=1, baseline=0.0, progress="no")  # type: ignore[arg-type]


def test_conductance_refuses_a_per_input_background_and_reads_a_per_input_per_sample() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.act, self.out = nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.out(self.act(self.a(x) + self.a(y)))

    torch.manual_seed(0)
    net = Two().double()
    x, y = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    players = components(net, "act", unit="neuron")
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(InputError, match="Background"):
        tribute.explain(net, (x, y), method="conductance", players=players, target=0,
                        baseline=(tribute.Background(torch.randn(5, 3, dtype=torch.float64)), 0.0))
    got = tribute.explain(net, (x, y), method="conductance", players=players, target=0,
                          baseline=(tribute.PerSample(zeros), 0.0))
    want = tribute.explain(net, (x, y), method="conductance", players=players, target=0, baseline=(zeros, 0.0))
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(want.values), atol=1e-12)
