"""ReAGent: the batched estimator against the paper's step-by-step recursion, and its axioms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import tribute
from tribute.games.generation import GenerationGame
from tribute.methods.generation import prepare_generation
from tribute.methods.reagent import ReAGent


def paper_recursion(game: Any, budget: int, seed: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Zhao & Shan (2024), Algorithm 1 without early stop, one step at a time: replace a random
    subset R, d = p(y|x) - p(y|x_R), s_R += logit((1 + d) / 2), s_rest -= logit((1 + d) / 2).
    Returns the summed scores (targets x players) and the number of steps."""
    n = game.n_players
    full = game.full()[0].exp()  # targets
    k = budget - game.n_evals
    gen = torch.Generator().manual_seed(seed)
    removed = torch.rand(k, n, generator=gen, dtype=torch.float64) < ratio
    s = torch.zeros(game.n_targets, n, dtype=torch.float64)
    for step in range(k):
        v = game.value((~removed[step]).double()[None])[0, 0].exp()  # targets
        d = (full - v).clamp(-1 + 1e-6, 1 - 1e-6)
        upd = torch.logit((1 + d) / 2)
        for i in range(n):
            s[:, i] += upd if removed[step, i] else -upd
    return s.numpy(), np.array(k)


def _game(lm: Any, tok: Any) -> GenerationGame:
    prep = prepare_generation(lm, tok, "the cat sat on the mat", max_new_tokens=2)
    return GenerationGame(lm, torch.tensor(prep.prompt_ids), torch.tensor(prep.continuation),
                          prep.groups, prep.names, ["y1", "y2"], torch.zeros(len(prep.prompt_ids)).long())


def test_reagent_equals_stepwise_recursion(gpt2: Any, tok: Any) -> None:
    budget, seed = 40, 3
    attr = ReAGent(replace_ratio=0.3).attribute(_game(gpt2, tok), budget=budget, seed=seed)
    s, k = paper_recursion(_game(gpt2, tok), budget, seed, 0.3)
    np.testing.assert_allclose(attr.flat()[0] * k, s, atol=1e-10)
    np.testing.assert_allclose(attr.extra["importance"][0], torch.softmax(torch.tensor(s), -1).numpy(),
                               atol=1e-10)
    assert attr.n_evals == budget and attr.extra["steps"] == k
    se = attr.flat_stderr()
    assert se is not None and np.isfinite(se).all()


def test_reagent_seeded_and_closed_form_on_one_relevant_player() -> None:
    """A model whose output depends on feature j only (raw scale: d = tanh(v(N) - v(S)) is
    ``tanh(3)`` when j is replaced, else 0, so the step is ``L = logit((1 + tanh 3) / 2)`` or 0).
    Then E[phi_j] = r L, and every null player i gets E[phi_i] = r L (r - (1 - r)): the
    relevant player ranks first and the nulls sit at (2r - 1) times its credit."""
    r = 0.3
    model = torch.nn.Linear(6, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 2] = 3.0
    x = torch.ones(1, 6, dtype=torch.float64)
    a = tribute.explain(model, x, method="reagent", budget=400, seed=1, replace_ratio=r)
    b = tribute.explain(model, x, method="reagent", budget=400, seed=1, replace_ratio=r)
    torch.testing.assert_close(a.values, b.values)
    vals, se = a.values[0].numpy(), a.stderr[0].numpy()
    big_l = float(torch.logit(torch.tensor((1 + np.tanh(3.0)) / 2)))
    assert int(np.argmax(vals)) == 2
    assert abs(vals[2] - r * big_l) < 4 * se[2]
    others = np.delete(np.arange(6), 2)
    assert (np.abs(vals[others] - r * big_l * (2 * r - 1)) < 4 * se[others]).all()


def test_auto_scale_reads_probabilities_and_log_probabilities_of_a_feature_game() -> None:
    """The paper's drop is p(y|x) - p(y|x_R) on probabilities: a feature game explained with
    output="log_prob" or "prob" must be read on that scale under scale="auto" (it was read as a
    raw output, d = tanh(v(N) - v(S)): the tanh of a log-ratio, not the drop)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3).double()
    x = torch.randn(2, 5, dtype=torch.float64)
    kw: dict[str, Any] = {"method": "reagent", "target": 1, "budget": 30, "seed": 2, "baseline": 0.0}
    for output, scale in (("log_prob", "log_prob"), ("prob", "prob"), ("logit", "raw")):
        auto = tribute.explain(net, x, output=output, **kw)
        named = tribute.explain(net, x, output=output, scale=scale, **kw)
        torch.testing.assert_close(auto.values, named.values)
    # own loop, output="log_prob": d = p(y|x) - p(y|x_S) with the method's draws
    a = tribute.explain(net, x, output="log_prob", **kw)
    k = 29
    removed = torch.rand(k, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) < 0.3
    with torch.no_grad():
        p_full = net(x).softmax(-1)[:, 1]
        p_s = torch.stack([net(torch.where(removed[t], 0.0, x)).softmax(-1)[:, 1] for t in range(k)], 1)
    d = (p_full[:, None] - p_s).clamp(-1 + 1e-6, 1 - 1e-6)
    step = torch.logit((1 + d) / 2)  # B x K
    phi = (step[..., None] * (removed.double() * 2 - 1)[None]).mean(1)
    torch.testing.assert_close(a.values, phi)
