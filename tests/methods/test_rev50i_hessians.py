"""rev50i: integrated_hessians' refusal of Functions without a second derivative, hidden ones too.

Regression (silent before the fix): ``@custom_bwd`` (or any ``functools.wraps`` decorator) above
``@once_differentiable`` — the order of deformable convolution, multi-scale deformable attention
and ROIAlign kernels — hid the marker from aud50i's graph walk, which compared ``backward``'s own
code only: integrated_hessians gave the dropped-Hessian credits again with no error (0.50 off on
``softplus(W x*x)``). The walk now follows ``__wrapped__``.

Regression (refused before the fix): aud50i's walk refused a once-differentiable Function
anywhere in the graph, also on a tensor the mask does not reach (a quantized scale attribute),
whose credits were exact; only nodes on a path to the mask count now.

Regression (raw, misleading error before the fix): a ``torch.compile``'d model raised torch's
"keep backward(create_graph=False)", a call the user never made; it is now refused by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.autograd.function import once_differentiable

import tribute
from tribute.errors import UnsupportedModelError

_custom_bwd = getattr(getattr(torch, "amp", None), "custom_bwd", None)
_custom_fwd = getattr(getattr(torch, "amp", None), "custom_fwd", None)


def _passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def _amp_bwd(fn: Callable[..., Any]) -> Callable[..., Any]:
    # torch.amp.custom_bwd (its forward then takes custom_fwd, applied in _square)
    if _custom_bwd is None or _custom_fwd is None:  # pragma: no cover - older torch
        pytest.skip("torch.amp.custom_bwd is missing")
    return _custom_bwd(fn, device_type="cpu")


def _square(outer: Callable[..., Any], once: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 2 * x * g

    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * x

    if outer is _amp_bwd:
        forward = _custom_fwd(forward, device_type="cpu")  # type: ignore[misc]
    fn: Any = type("WrappedSquare", (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(outer(once_differentiable(backward) if once else backward)),
    })
    apply: Callable[[torch.Tensor], torch.Tensor] = fn.apply
    return apply


class _Net(torch.nn.Module):
    def __init__(self, square: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.square = square
        with torch.random.fork_rng():
            torch.manual_seed(1)
            self.l1, self.l2 = torch.nn.Linear(4, 5).double(), torch.nn.Linear(5, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.nn.functional.softplus(self.l1(self.square(x))))


def _x() -> torch.Tensor:
    return torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("outer", [_amp_bwd, _passthrough], ids=["custom_bwd", "functools_wraps"])
def test_integrated_hessians_refuses_once_differentiable_under_another_decorator(
        outer: Callable[..., Any]) -> None:
    # before: the credits of the dropped second derivative, 0.50 off the true ones, no error
    model = _Net(_square(outer, once=True))
    model.train()
    with pytest.raises(UnsupportedModelError, match=r"'WrappedSquare'.*once_differentiable"):
        tribute.explain(model, _x(), method="integrated_hessians", steps=4, target=0)
    assert model.training and model.l1.weight.grad is None and not model._forward_pre_hooks


@pytest.mark.parametrize("outer", [_amp_bwd, _passthrough], ids=["custom_bwd", "functools_wraps"])
def test_integrated_hessians_runs_through_a_decorated_twice_differentiable_function(
        outer: Callable[..., Any]) -> None:
    # the negative case: the same decorators over a differentiable backward are not refused
    # and give the plain model's credits
    custom = tribute.explain(_Net(_square(outer, once=False)).eval(), _x(),
                             method="integrated_hessians", steps=4, target=0)
    plain = tribute.explain(_Net(lambda z: z * z).eval(), _x(), method="integrated_hessians",
                            steps=4, target=0)
    np.testing.assert_allclose(np.asarray(custom.values), np.asarray(plain.values), atol=1e-14)


@pytest.mark.slow
def test_integrated_hessians_refuses_a_compiled_model_by_name() -> None:
    # before: torch's RuntimeError "... requires create_graph=False and retain_graph=False.
    # Please keep backward(create_graph=False ...)", about a call the user does not make
    with torch.random.fork_rng():
        torch.manual_seed(0)
        plain = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Softplus(),
                                    torch.nn.Linear(5, 2)).double().eval()
    try:
        compiled = torch.compile(plain, backend="aot_eager")
        compiled(_x())
    except Exception as e:  # pragma: no cover - a platform without torch.compile
        pytest.skip(f"torch.compile unavailable: {e}")
    with pytest.raises(UnsupportedModelError, match=r"torch\.compile.*_orig_mod"):
        tribute.explain(compiled, _x(), method="integrated_hessians", steps=2, target=0)
    assert not plain.training and all(p.grad is None for p in plain.parameters())


class _OnceRound(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        return torch.round(w * 8) / 8

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return g


class _ScaledByAQuantizedTensor(torch.nn.Module):
    def __init__(self, quantize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(4, 2).double()
            # a plain attribute that requires grad (not a Parameter, so tribute leaves it be)
            self.scale = torch.rand(4, dtype=torch.float64).requires_grad_(True)
        self.quantize = quantize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.nn.functional.softplus(x * self.quantize(self.scale)))


def test_integrated_hessians_runs_with_a_once_differentiable_function_off_the_mask_path() -> None:
    # before (aud50i's walk over the whole graph): refused, although the derivatives w.r.t.
    # the mask never run that Function and the credits were exact (0.0 from the plain model)
    once = tribute.explain(_ScaledByAQuantizedTensor(_OnceRound.apply).eval(), _x(),
                           method="integrated_hessians", steps=4, target=0)
    plain = tribute.explain(_ScaledByAQuantizedTensor(lambda w: torch.round(w * 8) / 8).eval(),
                            _x(), method="integrated_hessians", steps=4, target=0)
    np.testing.assert_array_equal(np.asarray(once.values), np.asarray(plain.values))
