"""DhondtXAI: hand-computed D'Hondt allocations (threshold, alliances, ties, negative credits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.methods.dhondt import dhondt_allocate, dhondt_seats

TEXTBOOK = {"A": 100_000.0, "B": 80_000.0, "C": 30_000.0, "D": 20_000.0}


def test_textbook_example() -> None:
    # Quotients (thousands): A 100 50 33.3 25; B 80 40 26.7; C 30 15; D 20.
    # The 8 largest: 100A 80B 50A 40B 33.3A 30C 26.7B 25A -> A 4, B 3, C 1, D 0.
    r = dhondt_seats(TEXTBOOK, seats=8)
    assert r.seats == {"A": 4, "B": 3, "C": 1, "D": 0}
    assert r.total_seats == 8 and r.excluded == []


def test_allocation_matches_brute_force_quotient_ranking() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        v = rng.integers(1, 1000, size=6).astype(float)  # distinct quotients almost surely
        s = int(rng.integers(0, 40))
        q = sorted(((v[i] / d, i) for i in range(6) for d in range(1, s + 1)), reverse=True)[:s]
        expect = np.bincount([i for _, i in q], minlength=6)
        assert dhondt_allocate(v, s).tolist() == expect.tolist()


def test_threshold_and_tie() -> None:
    # Total 230k: C has 13.0%, D 8.7% -> both below 15%. Between A and B the 8th seat ties
    # at 20k (A 100k/5 = B 80k/4): the list with more votes (A) wins it.
    r = dhondt_seats(TEXTBOOK, seats=8, threshold=0.15)
    assert r.excluded == ["C", "D"]
    assert r.seats == {"A": 5, "B": 3, "C": 0, "D": 0}
    # A threshold below every share changes nothing.
    assert dhondt_seats(TEXTBOOK, seats=8, threshold=0.05).seats == {"A": 4, "B": 3, "C": 1, "D": 0}


def test_exact_tie_goes_to_the_first_list() -> None:
    assert dhondt_seats([1.0, 1.0, 1.0], seats=2, names=["x", "y", "z"]).seats == {"x": 1, "y": 1, "z": 0}
    assert dhondt_seats([1.0, 1.0, 1.0], seats=2, names=["z", "y", "x"]).seats == {"z": 1, "y": 1, "x": 0}


def test_alliance_pools_then_splits() -> None:
    # C+D pool 50k: 100A 80B 50A|50CD (tie, A has more votes: A first) 40B 33.3A 26.7B 25A|25CD
    # -> 8 seats: A 4, B 3, CD 1; inside CD the single seat goes to C (30k > 20k).
    r = dhondt_seats(TEXTBOOK, seats=8, alliances={"CD": ["C", "D"]})
    assert r.list_seats == {"CD": 1, "A": 4, "B": 3}
    assert r.seats == {"A": 4, "B": 3, "C": 1, "D": 0}
    # With 10 seats: ...25A|25CD, 20A|20B -> the 9th is CD's second seat? Quotients in order:
    # 100A 80B 50A 50CD 40B 33.3A 26.7B 25A 25CD 20A  -> A 5, B 3, CD 2, split C 1 D 1.
    r10 = dhondt_seats(TEXTBOOK, seats=10, alliances={"CD": ["C", "D"]})
    assert r10.list_seats == {"CD": 2, "A": 5, "B": 3}
    assert r10.seats == {"A": 5, "B": 3, "C": 1, "D": 1}


def test_alliance_clears_a_threshold_its_members_miss() -> None:
    r = dhondt_seats(TEXTBOOK, seats=8, threshold=0.15, alliances={"CD": ["C", "D"]})  # CD has 21.7%
    assert r.excluded == []
    assert r.list_seats["CD"] == 1


def test_negative_credits_abs_vs_positive() -> None:
    credits = np.array([3.0, -2.0, 1.0])
    assert dhondt_seats(credits, seats=6, credit="abs").seats == {"0": 3, "1": 2, "2": 1}
    assert dhondt_seats(credits, seats=6, credit="positive").seats == {"0": 5, "1": 0, "2": 1}
    # Several samples: votes are the mean per-sample |credit| (not |mean credit|).
    two = np.array([[1.0, 2.0], [1.0, -2.0]])
    r = dhondt_seats(two, seats=3, names=["p", "q"])
    assert r.votes == {"p": 1.0, "q": 2.0} and r.seats == {"p": 1, "q": 2}


def test_attribution_input_uses_player_names() -> None:
    attr = tribute.Attribution(values=np.array([[0.5, -1.5]]), player_names=["age", "income"], method="manual")
    r = tribute.dhondt_seats(attr, seats=4)
    assert r.seats == {"age": 1, "income": 3}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"seats": -1}, "seats=-1"),
        ({"threshold": 1.5}, "threshold=1.5"),
        ({"credit": "signed"}, "credit='signed'"),
        ({"alliances": {"X": ["A", "Q"]}}, "unknown features ['Q']"),
        ({"alliances": {"X": ["A"], "Y": ["A", "B"]}}, "repeats"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        dhondt_seats(TEXTBOOK, **kwargs)


def test_parliament_plot_draws_every_seat() -> None:
    from tribute.viz import parliament
    from tribute.viz._parliament import hemicycle_positions

    for n in (1, 7, 50, 101):
        pos = hemicycle_positions(n)
        assert pos.shape == (n, 2) and np.all(pos[:, 1] >= -1e-12)
        assert len({(round(x, 9), round(y, 9)) for x, y in pos}) == n  # no two seats overlap
    r = dhondt_seats(TEXTBOOK, seats=20, alliances={"CD": ["C", "D"]})
    fig = parliament(r)
    counts = [np.asarray(c.get_offsets()).shape[0] for c in fig.axes[0].collections]
    assert sum(counts) == 20
    assert counts == sorted((v for v in r.seats.values() if v), reverse=True)
    fig2 = r.plot(by="alliance")
    assert len(fig2.axes[0].collections) == sum(1 for v in r.list_seats.values() if v)


def test_decision_suite_dhondt_part_matches_its_closed_form() -> None:
    """The bench's known parliament: true votes of the linear model are ``|w_i| mean|x_i - mean_i|``
    (exact Shapley with the mean baseline), and exact Shapley reproduces them seat for seat."""
    import torch

    from tribute.bench.decision_suite import _DHONDT_W, _dhondt_part

    res = _dhondt_part(16, seed=3)
    x = torch.randn(16, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    votes = np.abs(_DHONDT_W) * np.abs(x - x.mean(0)).mean(0)
    eligible = np.where(votes / votes.sum() < 0.05, 0.0, votes)
    want = dict(zip([f"x{j}" for j in range(10)], dhondt_allocate(eligible, 100).tolist(), strict=True))
    assert res["linear"]["true_seats"] == want
    for part in ("linear", "tanh_mlp"):
        rows = {r["estimator"]: r for r in res[part]["rows"]}
        assert rows["exact_shapley"]["seat_agreement"] == 1.0 and rows["exact_shapley"]["excluded_match"]
        assert all(r["zero_weight_seats"] == 0 for r in rows.values())  # unused inputs never win seats
        assert all(0.0 <= r["seat_agreement"] <= 1.0 for r in rows.values())


def test_attribution_of_two_inputs_votes_per_player() -> None:
    # a model on two inputs: the Attribution's values are a tuple; the votes are the mean |credit|
    # of its flat batch x targets x players credits (this crashed on the tuple before)
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(5, 1)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.lin(torch.cat([a, b], 1))

    torch.manual_seed(0)
    attr = tribute.explain(Two(), (torch.randn(3, 2), torch.randn(3, 3)), method="exact_shapley")
    r = dhondt_seats(attr, seats=10)
    np.testing.assert_allclose(list(r.votes.values()), np.abs(attr.flat()).mean(axis=(0, 1)))
    assert list(r.seats) == attr.player_names and r.total_seats == 10


def test_names_that_do_not_match_the_last_axis_are_refused() -> None:
    # a features x samples array (4 names, 3 columns) was silently reshaped to 3 x 4 before
    with pytest.raises(InputError, match="4 names"):
        dhondt_seats(np.arange(12.0).reshape(4, 3), seats=3, names=list("abcd"))
