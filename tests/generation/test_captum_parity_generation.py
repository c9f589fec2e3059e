"""Parity with Captum's LLMAttribution / LLMGradientAttribution (float64 models).

Definitions agree when both replace a removed prompt token by the same token id (here the
pad token), skip the same special token (BOS) and score the same forced continuation: then
feature ablation is identical, Shapley value sampling is identical for the same permutation
set (Captum's permutations are replaced by tribute's antithetic set), and layer integrated
gradients on the embedding layer with the pad token as baseline (summed over the embedding
dimension) equals integrated gradients on the game's embedding relaxation with the same
Gauss-Legendre nodes. Captum accumulates its results in float32 (``LLMAttribution`` returns
float32), hence atol=1e-6.

Captum runs with ``use_cached_outputs=False``: its default cached token-by-token path gives
other log-probabilities for every continuation token after the first with transformers 5.x
(checked in :func:`test_captum_cached_path_differs`), while its uncached and one-pass paths
agree with a plain forward pass, and so do we.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from gen_models import make_lm

import tribute

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module", params=["gpt2", pytest.param("llama", marks=pytest.mark.slow)])
def lm(request: pytest.FixtureRequest, tok: Any) -> Any:
    return make_lm(request.param, len(tok))

PROMPT = "the cat sat on the mat"
TARGET = [21, 25, 75]  # token ids, forced


def _inp(tok: Any) -> Any:
    return captum_attr.TextTokenInput(PROMPT, tok, baselines=tok.pad_token_id,
                                      skip_tokens=[tok.bos_token_id])


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().double() if isinstance(x, torch.Tensor) else x, dtype=np.float64)


def test_feature_ablation_parity(lm: Any, tok: Any) -> None:
    ours = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="feature_ablation", removal="pad")
    llm = captum_attr.LLMAttribution(captum_attr.FeatureAblation(lm), tok)
    theirs = llm.attribute(_inp(tok), target=torch.tensor(TARGET), use_cached_outputs=False,
                           forward_in_tokens=False)
    np.testing.assert_allclose(ours.total, _np(theirs.seq_attr), atol=1e-6)
    np.testing.assert_allclose(ours.matrix, _np(theirs.token_attr), atol=1e-6)
    assert ours.n_evals == len(ours.prompt_tokens) + 1


def _tribute_perms(n: int, n_pairs: int, seed: int) -> list[list[int]]:
    """The permutations permutation_shapley draws (forward ones, then their reverses)."""
    gen = torch.Generator().manual_seed(seed)
    fwd = torch.stack([torch.randperm(n, generator=gen) for _ in range(n_pairs)])
    return torch.cat([fwd, fwd.flip(1)]).tolist()


def test_shapley_sampling_parity_fixed_permutations(lm: Any, tok: Any) -> None:
    n_pairs, seed = 3, 5
    ours = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="permutation_shapley",
                                      removal="pad", seed=seed, budget=2 + 2 * n_pairs * 5)
    n = len(ours.prompt_tokens)
    assert n == 6 and ours.attribution.extra["n_permutations"] == 2 * n_pairs
    perms = _tribute_perms(n, n_pairs, seed)
    svs = captum_attr.ShapleyValueSampling(lm)
    svs.permutation_generator = lambda num_features, num_samples: iter(perms)
    llm = captum_attr.LLMAttribution(svs, tok)
    theirs = llm.attribute(_inp(tok), target=torch.tensor(TARGET), n_samples=len(perms),
                           use_cached_outputs=False,
                           forward_in_tokens=False)
    np.testing.assert_allclose(ours.total, _np(theirs.seq_attr), atol=1e-6)
    np.testing.assert_allclose(ours.matrix, _np(theirs.token_attr), atol=1e-6)


def test_layer_integrated_gradients_parity(lm: Any, tok: Any) -> None:
    ours = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="integrated_gradients",
                                      removal="pad", steps=24, rule="gauss_legendre")
    lig = captum_attr.LayerIntegratedGradients(lm, lm.get_input_embeddings())
    llm = captum_attr.LLMGradientAttribution(lig, tok)
    theirs = llm.attribute(_inp(tok), target=torch.tensor(TARGET), n_steps=24,
                           method="gausslegendre")
    np.testing.assert_allclose(ours.matrix, _np(theirs.token_attr), atol=1e-6)
    np.testing.assert_allclose(ours.total, _np(theirs.seq_attr), atol=1e-6)


def test_captum_cached_path_differs(gpt2: Any, tok: Any) -> None:
    """Documents why the parity tests pass ``use_cached_outputs=False`` (see module docstring):
    the uncached path equals our log-probabilities, the cached one does not."""
    ours = tribute.explain_generation(gpt2, tok, PROMPT, TARGET, method="feature_ablation")
    llm = captum_attr.LLMAttribution(captum_attr.FeatureAblation(gpt2), tok)
    plain = _np(llm._forward_func(None, _inp(tok), torch.tensor(TARGET), False))[0, 1:]
    cached = _np(llm._forward_func(None, _inp(tok), torch.tensor(TARGET), True))[0, 1:]
    np.testing.assert_allclose(plain, ours.log_probs, atol=1e-10)
    assert abs(cached[0] - ours.log_probs[0]) < 1e-10
    assert np.abs(cached[1:] - ours.log_probs[1:]).max() > 1e-3


def test_saliency_parity_layer_gradient(lm: Any, tok: Any) -> None:
    """saliency on a generation = the prompt embeddings' gradient summed over the embedding
    dimension: Captum's LayerGradientXActivation without the multiplication by inputs."""
    layer_norm_first = lm.config.model_type == "gpt2"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ours = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="saliency", removal="pad")
    # GPT-2's LayerNorms make f invariant to e + c 1: the signed sum over dimensions is ~0
    assert any("sum to ~0" in str(w.message) for w in seen) == layer_norm_first
    lga = captum_attr.LayerGradientXActivation(lm, lm.get_input_embeddings(), multiply_by_inputs=False)
    theirs = captum_attr.LLMGradientAttribution(lga, tok).attribute(_inp(tok), target=torch.tensor(TARGET))
    np.testing.assert_allclose(ours.matrix, _np(theirs.token_attr), atol=1e-6)
    np.testing.assert_allclose(ours.total, _np(theirs.seq_attr), atol=1e-6)
    assert ours.n_evals == 2 and (np.abs(ours.matrix).max() < 1e-12) == layer_norm_first
    absolute = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="saliency", absolute=True)
    assert (absolute.matrix >= np.abs(ours.matrix) - 1e-12).all() and absolute.matrix.max() > 1e-4


def test_input_x_gradient_parity_with_zero_pad_embedding(lm: Any, tok: Any) -> None:
    """input_x_gradient is ``(e - e_pad) . df/de``; Captum's LayerGradientXActivation is
    ``e . df/de``: they agree when the pad token's embedding row is zero."""
    import copy

    model = copy.deepcopy(lm)
    with torch.no_grad():
        model.get_input_embeddings().weight[tok.pad_token_id] = 0.0
    ours = tribute.explain_generation(model, tok, PROMPT, TARGET, method="input_x_gradient", removal="pad")
    lga = captum_attr.LayerGradientXActivation(model, model.get_input_embeddings())
    theirs = captum_attr.LLMGradientAttribution(lga, tok).attribute(_inp(tok), target=torch.tensor(TARGET))
    np.testing.assert_allclose(ours.matrix, _np(theirs.token_attr), atol=1e-6)
    np.testing.assert_allclose(ours.total, _np(theirs.seq_attr), atol=1e-6)
    assert np.abs(ours.matrix).max() > 1e-4
