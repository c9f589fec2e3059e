"""Audit aud47m (stop 47): metrics against hand references; regressions of what it found.

Truths are computed here without tribute's metric code: a float64 numpy forward of a tanh MLP
whose weights are numpy float64 draws (the same numbers on every CPU), and the deletion curve
written out (remove the top-k credits to the zero baseline, trapezoid over the fraction removed).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.build import build_game
from tribute.metrics import deletion, evaluate, shapley_error
from tribute.models import as_model
from tribute_testing import hand_deletion, tanh_net_numpy_forward, tanh_net_with_numpy

_f = tanh_net_numpy_forward


def _net() -> tuple[Any, dict[str, np.ndarray]]:
    return tanh_net_with_numpy(6, 5, 3, seed=11, dtype=torch.float64)


_OWN = np.array([0, 2, 1, 2])
_OTHER = np.array([1, 0, 0, 1])


def _per_sample_attr() -> tuple[Any, dict[str, np.ndarray], np.ndarray, Any]:
    net, w = _net()
    x = np.random.default_rng(2).normal(size=(4, 6))
    attr = tribute.explain(net, torch.from_numpy(x), method="exact_shapley", target=_OWN)
    return net, w, x, attr


# ------------------------------------------- one class per sample written (b, 1)
@pytest.mark.parametrize("form", ["numpy", "torch", "list", "one_class"])
def test_a_column_of_other_classes_is_refused(form: str) -> None:
    """evaluate compared target with attr.targets only where the shapes agreed: per-sample
    credits of classes 0, 2, 1, 2 given ``target`` as a (b, 1) column of classes 1, 0, 0, 1
    (or ``[1]``, one class listed) scored the other classes' deletion area, silently with
    ``output=`` given (0.42 / 0.89 / 0.85 / 0.48 for the credits' own 0.03 / 0.06 / 0.09 / 0.28,
    aud47m e4), else under an OutputMismatchWarning that blamed the inputs."""
    net, w, x, attr = _per_sample_attr()
    phi = attr.flat()[:, 0, :]
    own, other = hand_deletion(lambda r: _f(w, r), x, phi, _OWN), hand_deletion(lambda r: _f(w, r), x, phi, _OTHER)
    assert np.abs(own - other).min() > 0.05  # the truth tells the two apart
    col = _OTHER[:, None]
    target: Any = {"numpy": col, "torch": torch.from_numpy(col), "list": col.tolist(),
                   "one_class": [1]}[form]
    with pytest.raises(InputError, match="resolves to output column"):
        evaluate(net, torch.from_numpy(x), attr, "deletion", target=target, steps=6, output="raw")
    with pytest.raises(InputError, match="resolves to output column"):
        evaluate(net, torch.from_numpy(x), attr, "shapley_error", target=target)


@pytest.mark.parametrize("target", [_OTHER, _OTHER[:, None], [1], 1, "predicted"])
def test_a_game_of_other_classes_is_refused_on_a_direct_call(target: Any) -> None:
    """``metric(game, attr)`` checked the number of targets, not which: the exact Shapley values
    of classes 0, 2, 1, 2 scored a shapley_error of 0.27 / 1.69 / 1.23 / 1.47 on a game of
    classes 1, 0, 0, 1 (0 on their own game), silently."""
    net, _w, x, attr = _per_sample_attr()
    game = build_game(as_model(net, "torch"), torch.from_numpy(x), target=target, baseline=0.0,
                      labels=False)
    with pytest.raises(InputError, match="judge credits of one class on another"):
        shapley_error(game, attr)


# the same classes, written every way evaluate and build_game accept them: (explain target,
# evaluate / game target); each must score the hand deletion of the credits' own classes
_SAME_CLASSES: list[tuple[Any, Any]] = [
    (_OWN, None), (_OWN, _OWN), (_OWN, _OWN[:, None]), (_OWN, torch.from_numpy(_OWN)),
    (_OWN, torch.from_numpy(_OWN)[:, None]), (_OWN, _OWN[:, None].tolist()),
    (1, [1]), ([1], 1), ([1], None), (1, np.ones(4, dtype=np.int64)),
    (np.ones((4, 1), dtype=np.int64), 1), ("predicted", "predicted"), (None, None),
]


@pytest.mark.parametrize("pair", range(len(_SAME_CLASSES)))
def test_the_same_classes_in_any_form_score_the_hand_deletion(pair: int) -> None:
    explained, given = _SAME_CLASSES[pair]
    net, w = _net()
    x = np.random.default_rng(2).normal(size=(4, 6))
    xt = torch.from_numpy(x)
    attr = tribute.explain(net, xt, method="exact_shapley", target=explained)
    t = np.asarray(attr.targets).reshape(4)
    if isinstance(explained, str) or explained is None:  # the predicted class, by hand
        np.testing.assert_array_equal(t, _f(w, x).argmax(-1))
    want = hand_deletion(lambda r: _f(w, r), x, attr.flat()[:, 0, :], t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = evaluate(net, xt, attr, "deletion", target=given, steps=6).scores
        game = build_game(as_model(net, "torch"), xt, target=given if given is not None else explained,
                          baseline=0.0, labels=False)
        direct = deletion(game, attr, steps=6).scores
    np.testing.assert_allclose(np.asarray(got).reshape(4), want, atol=1e-12)
    np.testing.assert_allclose(np.asarray(direct).reshape(4), want, atol=1e-12)


# ------------------------------------ re-explanations of another class than asked for
def _grad_x_input(net: Any, x: torch.Tensor, t: np.ndarray) -> np.ndarray:
    """input x gradient of output column ``t[i]`` of row ``i``, by torch autograd."""
    xx = x.clone().requires_grad_(True)
    net(xx)[torch.arange(len(t)), torch.as_tensor(t)].sum().backward()
    assert xx.grad is not None
    return (xx.grad * x).detach().numpy()


def _hand_max_sensitivity(net: Any, x: torch.Tensor, t: np.ndarray, k: int = 10,
                          radius: float = 0.2) -> np.ndarray:
    """Yeh et al.'s max-sensitivity on the documented draws (draw ``k`` shared by every row)."""
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(k, 1, x.shape[1], generator=g, dtype=torch.float64) * 2 - 1) * radius
    phi = _grad_x_input(net, x, t)
    rel = [np.linalg.norm(_grad_x_input(net, x + noise[d], t) - phi, axis=-1)
           / np.linalg.norm(phi, axis=-1) for d in range(k)]
    return np.max(rel, axis=0)


def _ixg_attr() -> tuple[Any, torch.Tensor, Any]:
    net, _w = _net()
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 6)))
    return net, x, tribute.explain(net, x, method="input_x_gradient", target=_OWN)


@pytest.mark.parametrize("how", ["drops_target", "fixed_class", "ignores_target"])
def test_a_callable_that_explains_another_class_is_refused(how: str) -> None:
    """An explain callable that drops ``target`` re-explained the predicted classes (2, 0, 1, 1)
    of credits for classes 0, 2, 1, 2: max_sensitivity 9.03 / 1.13 / 0.29 / 1.75 where the
    credits' own is 0.67 / 0.23 / 0.29 / 0.30 (hand: autograd on the same draws), silently."""
    net, x, attr = _ixg_attr()
    callables: dict[str, Any] = {
        "drops_target": lambda xx: tribute.explain(net, xx, method="input_x_gradient"),
        "fixed_class": lambda xx, **kw: tribute.explain(net, xx, method="input_x_gradient",
                                                        target=1),
        "ignores_target": lambda xx, target=None: tribute.explain(net, xx,
                                                                  method="input_x_gradient"),
    }
    with pytest.raises(InputError, match="asked for column"):
        evaluate(net, x, attr, "max_sensitivity", explain=callables[how])
    with pytest.raises(InputError, match="asked for column"):
        evaluate(net, x, attr, "avg_sensitivity", explain=callables[how], n_samples=3)


def test_random_logit_and_stability_refuse_a_callable_of_another_class() -> None:
    net, x, attr = _ixg_attr()
    ignores = lambda xx, target=None, seed=0: tribute.explain(  # noqa: E731
        net, xx, method="input_x_gradient")
    for metric in ("random_logit", "stability"):
        with pytest.raises(InputError, match="asked for column"):
            evaluate(net, x, attr, metric, explain=ignores)


def test_model_randomisation_refuses_the_randomised_models_own_class() -> None:
    """``lambda m, x: tribute.explain(m, x, ...)`` explained the randomised copy's predicted
    class, not the attribution's: 0.71 / 0.60 / 0.09 / 0.26 where the credits' own classes
    give 0.77 / 0.06 / 0.57 / 0.31."""
    net, x, attr = _ixg_attr()
    with pytest.raises(InputError, match="asked for column"):
        evaluate(net, x, attr, "model_randomisation",
                 explain=lambda m, xx: tribute.explain(m, xx, method="input_x_gradient"))


@pytest.mark.parametrize("how", ["default", "forwards", "forwards_with_sample", "named_target",
                                 "one_class_everywhere"])
def test_callables_that_explain_the_asked_class_score_the_hand_max_sensitivity(how: str) -> None:
    net, x, attr = _ixg_attr()
    t = _OWN
    if how == "one_class_everywhere":  # a fixed class is right when it is the asked one
        t = np.ones(4, dtype=np.int64)
        attr = tribute.explain(net, x, method="input_x_gradient", target=1)
    callables: dict[str, Any] = {
        "default": None,
        "forwards": lambda xx, **kw: tribute.explain(net, xx, method="input_x_gradient", **kw),
        "forwards_with_sample": lambda xx, sample=None, **kw: tribute.explain(
            net, xx, method="input_x_gradient", **kw),
        "named_target": lambda xx, target=None: tribute.explain(
            net, xx, method="input_x_gradient", target=target),
        "one_class_everywhere": lambda xx: tribute.explain(net, xx, method="input_x_gradient",
                                                           target=1),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shared draws' StderrWarning
        got = evaluate(net, x, attr, "max_sensitivity", explain=callables[how]).scores
    np.testing.assert_allclose(got, _hand_max_sensitivity(net, x, t), rtol=1e-10)


def test_a_forwarding_callable_on_classes_one_to_three_is_refused_and_the_label_map_scores() -> None:
    """A classifier with ``classes_ = [1, 2, 3]`` reads the integer ``target=`` the callable gets
    (output columns) as labels: forwarding it explained the neighbouring class, max_sensitivity
    1.52 / 1.84 / 1.96 / 1.84 / 1.75 where the credits' own classes give 0.25 / 0.11 / 0.20 /
    0.14 / 0.29 (the default callable), silently. Mapping columns to labels scores the default's
    numbers."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    xs = rng.normal(size=(90, 4))
    y = np.array([1, 2, 3])[np.argmax(xs[:, :3], 1)]
    clf = LogisticRegression().fit(xs, y)
    kw: dict[str, Any] = {"method": "kernel_shap", "baseline": 0.0, "budget": 64}
    attr = tribute.explain(clf, xs[:5], target=y[:5], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="classes_"):
            evaluate(clf, xs[:5], attr, "max_sensitivity",
                     explain=lambda x, **o: tribute.explain(clf, x, **kw, **o))
        want = evaluate(clf, xs[:5], attr, "max_sensitivity").scores
        got = evaluate(clf, xs[:5], attr, "max_sensitivity",
                       explain=lambda x, target=None: tribute.explain(
                           clf, x, target=clf.classes_[np.asarray(target)], **kw)).scores
    np.testing.assert_allclose(got, want, rtol=1e-12)
