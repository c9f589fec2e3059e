"""rev41e: permutation_shapley's exact path (budget >= 2^n, lead stop 41) on a generation game
equals exact_shapley (the coalition table) for the same 2^n evaluations: 6 prompt tokens at the
default budget."""

from __future__ import annotations

from typing import Any

import numpy as np
from gen_models import make_lm

import tribute

PROMPT, TARGET = "the cat sat on the mat", [21, 25, 75]


def test_permutation_shapley_is_exact_shapley_from_2_to_the_n(tok: Any) -> None:
    lm = make_lm("gpt2", len(tok))
    ex = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="exact_shapley", removal="pad")
    for budget in (None, 64):
        ps = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="permutation_shapley",
                                        removal="pad", budget=budget)
        assert ps.attribution.extra["exact"] is True
        assert ps.attribution.n_evals == ex.attribution.n_evals == 64
        np.testing.assert_allclose(ps.matrix, ex.matrix, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ps.total, ex.total, rtol=0, atol=1e-12)
    sampled = tribute.explain_generation(lm, tok, PROMPT, TARGET, method="permutation_shapley",
                                         removal="pad", budget=63)
    assert sampled.attribution.extra["exact"] is False and sampled.attribution.n_evals < 64
