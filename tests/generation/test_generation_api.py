"""explain_generation: results, ground truth, plots, bad input, models left untouched."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.generation import TokenizationWarning

PROMPT = "the cat sat on the mat"


def _snapshot(model: torch.nn.Module) -> Any:
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()])


def _same(a: Any, b: Any) -> bool:
    return (all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:])


@pytest.mark.parametrize("method", ["feature_ablation", "permutation_shapley", "kernel_shap", "lime",
                                    "reagent", "integrated_gradients", "saliency",
                                    "input_x_gradient"])
def test_every_method_runs_and_counts(gpt2: Any, tok: Any, method: str) -> None:
    gpt2.train()
    before = _snapshot(gpt2)
    budget = 40 if tribute.methods()[method].tags.budgeted else None
    res = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=3, method=method, budget=budget)
    assert _same(before, _snapshot(gpt2))  # training flag, parameters, hooks restored
    gpt2.eval()
    n = len(res.prompt_tokens)
    assert res.matrix.shape == (len(res.generated_tokens), n) == (3, n)
    assert res.total.shape == (n,) and np.isfinite(res.values).all()
    assert res.attribution.n_rows == res.n_evals  # one model row per evaluation
    if budget is not None:
        assert res.n_evals <= budget
    # greedy: the generated tokens are the arg-max continuation, scored under the full prompt
    assert res.log_probs.shape == (3,) and (res.log_probs <= 0).all()


def test_efficiency_on_every_generated_token(gpt2: Any, tok: Any) -> None:
    res = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=2, method="exact_shapley")
    assert res.attribution.full_values is not None and res.attribution.base_values is not None
    full = res.attribution.full_values[0]
    base = res.attribution.base_values[0]
    np.testing.assert_allclose(res.values.sum(-1), full - base, atol=1e-9)
    np.testing.assert_allclose(res.total, res.matrix.sum(0), atol=1e-9)  # the total is additive


def test_forced_target_and_plot_escaped(gpt2: Any, tok: Any) -> None:
    res = tribute.explain_generation(gpt2, tok, "the <cat> sat", target=[33, 63])
    assert res.generated_ids == [33, 63]
    html = res.plot()
    assert "<cat>" not in html and "&lt;" in html and html.count("<tr>") == 4  # header, 2 tokens, total
    assert res._repr_html_() == html


@pytest.mark.slow  # trains the copy model (240 Adam steps, ~15 s on one idle core)
def test_ground_truth_copy_task() -> None:
    from tribute.bench.generation_suite import run_generation_suite

    res = run_generation_suite(n_prompts=4, methods=["feature_ablation", "permutation_shapley", "reagent"])
    assert res["accuracy"] > 0.95
    by = {r["method"]: r for r in res["results"]}
    assert by["permutation_shapley"]["top1"] == 1.0
    assert by["reagent"]["rank"] <= 1.5 and by["feature_ablation"]["rank"] <= 1.5


def test_bad_inputs(gpt2: Any, tok: Any) -> None:
    with pytest.raises(InputError, match="empty"):
        tribute.explain_generation(gpt2, tok, "   ")
    with pytest.raises(InputError, match="max_new_tokens"):
        tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=0)
    with pytest.raises(InputError, match="maximum length 48"):
        tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=60)
    with pytest.raises(InputError, match="players="):
        tribute.explain_generation(gpt2, tok, PROMPT, players="letters")
    with pytest.raises(InputError, match="removal="):
        tribute.explain_generation(gpt2, tok, PROMPT, removal="blank")
    with pytest.raises(UnsupportedModelError, match="torch causal language model"):
        tribute.explain_generation(lambda x: x, tok, PROMPT)
    with pytest.raises(UnsupportedModelError, match="delete"):
        tribute.explain_generation(gpt2, tok, PROMPT, method="integrated_gradients", removal="delete")
    with pytest.raises(InputError, match="seed=-1 must be a non-negative int"):
        tribute.explain_generation(gpt2, tok, PROMPT, seed=-1)
    with pytest.raises(UnsupportedModelError, match="Use 'feature_ablation'"):
        tribute.explain_generation(gpt2, tok, PROMPT, method="occlusion", max_new_tokens=1)


def test_vocab_mismatch(tok: Any) -> None:
    from gen_models import make_lm

    small = make_lm("gpt2", 40)
    before = _snapshot(small)
    with pytest.raises(InputError, match="tokenizer does not match the model"):
        tribute.explain_generation(small, tok, PROMPT)
    assert _same(before, _snapshot(small))


def test_target_tokenizing_differently_warns(gpt2: Any, tok: Any) -> None:
    # "walking" alone is [w, alking]; the model's own greedy tokens for the same text differ
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        tribute.explain_generation(gpt2, tok, PROMPT, target=" cat")
    assert not [w for w in rec if issubclass(w.category, TokenizationWarning)]
    own = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=2)
    text = tok.decode(own.generated_ids)
    alt = tok(text, add_special_tokens=False).input_ids
    if alt != own.generated_ids:
        with pytest.warns(TokenizationWarning, match="generates the same text"):
            tribute.explain_generation(gpt2, tok, PROMPT, target=text)


def test_default_removal_is_recorded_as_the_token_used(gpt2: Any, tok: Any) -> None:
    # removal=None picks the tokenizer's pad token; the result must say so, like removal="pad"
    default = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=2)
    pad = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=2, removal="pad")
    np.testing.assert_array_equal(default.values, pad.values)
    assert default.params["removal"] == pad.params["removal"] == "pad"
    assert default.attribution.params["removal"] == "pad"


@pytest.mark.parametrize(("target", "match"), [
    ([-1], "negative"),
    ([1.5, 4], "whole numbers"),
    (np.array([True, False]), "whole numbers"),
    (torch.tensor([[5, 6]]), r"flat sequence of token ids; got shape \(1, 2\)"),
])
def test_bad_target_ids_are_refused(gpt2: Any, tok: Any, target: Any, match: str) -> None:
    # a float id was truncated (1.5 -> token 1) and explained silently; -1 and a 1 x T batch crashed
    with pytest.raises(InputError, match=match):
        tribute.explain_generation(gpt2, tok, PROMPT, target=target)


def test_whole_float_and_tensor_target_ids_are_read_as_ids(gpt2: Any, tok: Any) -> None:
    a = tribute.explain_generation(gpt2, tok, PROMPT, target=[5, 9])
    for same in (np.array([5.0, 9.0]), torch.tensor([5, 9]), (5, 9)):
        assert tribute.explain_generation(gpt2, tok, PROMPT, target=same).generated_ids == [5, 9]
    np.testing.assert_array_equal(a.values, tribute.explain_generation(gpt2, tok, PROMPT, target=(5, 9)).values)


def test_to_pandas_labels_match_the_arrays(gpt2: Any, tok: Any) -> None:
    res = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=3, method="exact_shapley")
    df = res.to_pandas()
    np.testing.assert_array_equal(df.to_numpy(), res.values)
    assert df.index.get_level_values("token").tolist() == [*res.generated_tokens, "total"]
    assert df.columns.get_level_values("player").tolist() == res.prompt_tokens
    assert df.columns.get_level_values("position").tolist() == list(range(len(res.prompt_tokens)))
    np.testing.assert_array_equal(df.xs("total", level="token").to_numpy()[0], res.total)


def test_a_method_drawing_fractional_masks_gets_a_clear_error(gpt2: Any, tok: Any) -> None:
    with pytest.raises(InputError, match=r"fractional masks \(e\.g\. 0\.\d+\).*binary-mask method"):
        tribute.explain_generation(gpt2, tok, PROMPT, method="sobol", budget=40)


def test_random_removal_draws_tokenizer_tokens_not_padding_rows(tok: Any) -> None:
    # an embedding padded past the tokenizer (GPT-2: 50257 tokens, 50304 rows): random
    # replacements were drawn from every row, most of them here ids no text produces
    from gen_models import make_lm

    from tribute.methods.generation import _replacements

    assert len(tok) == 90
    lm = make_lm("gpt2", 400)
    res = tribute.explain_generation(lm, tok, PROMPT, max_new_tokens=2, removal="random", seed=1)
    assert res.params["removal"] == "random"
    draws = _replacements(tok, "random", 400, 2000, seed=1)
    assert draws is not None and int(draws.max()) < len(tok) and int(draws.max()) > len(tok) - 5


@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap"])
def test_save_and_load_round_trip(gpt2: Any, tok: Any, tmp_path: Any, method: str) -> None:
    res = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=3, method=method,
                                     budget=40 if method == "kernel_shap" else None)
    path = res.save(tmp_path / "gen")
    assert path.name == "gen.npz"
    back = type(res).load(path)
    for name in ("matrix", "total", "log_probs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    if res.stderr is None:
        assert back.stderr is None
    else:
        np.testing.assert_array_equal(back.stderr, res.stderr)
    for name in ("prompt_tokens", "generated_tokens", "prompt_ids", "generated_ids", "method",
                 "n_evals", "seconds", "positions_run", "positions_full"):
        assert getattr(back, name) == getattr(res, name), name
    assert back.params == tribute.Attribution.load(path).params
    np.testing.assert_array_equal(back.attribution.flat(), res.attribution.flat())
    assert "generation" not in back.attribution.extra
    # the same file is a plain attribution too; a plain attribution is not a generation's
    plain = tribute.Attribution.load(path)
    np.testing.assert_array_equal(plain.flat(), res.attribution.flat())
    other = tmp_path / "plain.npz"
    res.attribution.save(other)
    with pytest.raises(InputError, match="not a generation's"):
        type(res).load(other)


def test_viz_bar_refuses_the_stacked_total_row(gpt2: Any, tok: Any) -> None:
    # stop 35: viz.bar(gen) averaged the total row in with the token rows as "samples"
    res = tribute.explain_generation(gpt2, tok, PROMPT, max_new_tokens=2, method="feature_ablation")
    with pytest.raises(ValueError, match=r"total row last.*\.total"):
        tribute.viz.bar(res)
    fig = tribute.viz.bar(res.total, names=res.prompt_tokens)  # the continuation's credits draw
    assert len(fig.axes[0].patches) == len(res.prompt_tokens)
