"""Stop 41 (lead, after rev41a): the bench does not rank a method on infidelity where infidelity
cannot read its credits (gradients summed over grouped pixels, unsigned scores): that (case,
method) is ``n/a`` with the reason, as infidelity itself warns. Before, grouped saliency was
ranked on difull's infidelity against methods whose credits are output changes."""

from __future__ import annotations

import warnings

from tribute import bench


def test_grouped_gradient_credits_are_not_ranked_on_infidelity() -> None:
    suite = bench.build_suite("tiny", seed=0, cases=["difull"])
    assert suite.cases[0].groups is not None  # the case's players are pixel groups
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # infidelity's unit warning must not be reached
        res = bench.run(suite, methods=["saliency", "input_x_gradient", "vargrad"], metrics=["infidelity"],
                        references=False, log=None)
    got = {s.method: s for s in res.scores if s.metric == "infidelity"}
    assert got["saliency"].status == "n/a" and "grouped" in got["saliency"].message
    assert got["vargrad"].status == "n/a" and "unsigned" in got["vargrad"].message
    assert got["input_x_gradient"].status == "ok" and got["input_x_gradient"].mean >= 0
