"""Scoped installation of LRP rules as modified gradients.

Inside :func:`lrp_rules` every module with a rule has a forward hook that replaces its output
by a tensor of the same value whose backward is the rule (a :class:`torch.autograd.Function`
holding this call's input and output). So ordinary backpropagation of the explained output
(gradient 1) yields, at the input, the relevance the rules assign for an output relevance of
1; as every rule is linear in the output relevance, scaling by ``f(x)`` gives LRP proper.

Each call of a module builds its own node, so a module used several times in one forward
pass gets its rule applied at every call; only the first-layer rules (flat, w^2, z^B) are
refused on a module called twice, since they assume they read the model's input. The
composite's first-layer rule goes to the first module matching its ``first_map`` that the
forward pass calls (a model may declare its head before its convolutions; ``named_modules()``
order alone put the flat rule on the head, silently).

No backward hooks on modules are used. Canonizers are applied first and undone last; hooks
are removed and canonizers undone in ``finally`` blocks, so the model is left as it was, also
after an exception.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ...errors import UnsupportedModelError
from .canonizers import MERGED, Add, canonized
from .composites import GRADIENT_MODULES, Composite
from .rules import Rule, ZBox, check_affine_call, replaces_forward

__all__ = ["check_rules", "lrp_rules"]

_CONTAINERS: tuple[type[nn.Module], ...] = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _RuleFn(torch.autograd.Function):
    """Value: the module's output ``z``; backward: the rule applied to the incoming relevance."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, z: torch.Tensor, x_values: torch.Tensor, module: nn.Module,
                rule: Rule, low: torch.Tensor | None, high: torch.Tensor | None) -> torch.Tensor:
        # x_values: x's values as the rule reads them (x itself, or the previous rule's saved
        # output when x is that rule's unmodified copy: one stored activation, not two)
        ctx.save_for_backward(x_values, z)
        ctx.module, ctx.rule = module, rule
        ctx.bounds = None if low is None or high is None else (low, high)
        return z.clone()  # not a view: the model may modify the output in place (h.mul_(2))

    @staticmethod
    def backward(ctx: Any, r: torch.Tensor) -> Any:
        x, z = ctx.saved_tensors
        with torch.no_grad():
            rin = ctx.rule.relevance(ctx.module, x, z, r, ctx.bounds)
        if rin.shape != x.shape:  # e.g. Pass() on a Flatten: torch's bare "invalid gradient"
            raise UnsupportedModelError(
                f"lrp: rule {ctx.rule!r} on {type(ctx.module).__name__} returned relevance of shape "
                f"{tuple(rin.shape)} for an input of shape {tuple(x.shape)}; it suits modules that "
                "keep their input's shape (Pass: elementwise activations). Give this module no "
                "rule (its ordinary gradient) or a rule for its kind of layer.")
        return rin, None, None, None, None, None, None


class _SumFn(torch.autograd.Function):
    """``a + b`` whose backward splits the relevance proportionally (the Norm rule of a sum)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, stabilizer: float) -> torch.Tensor:
        out = a + b
        ctx.save_for_backward(a, b, out)
        ctx.stabilizer = stabilizer
        return out

    @staticmethod
    def backward(ctx: Any, r: torch.Tensor) -> Any:
        from .rules import stabilize

        a, b, out = ctx.saved_tensors
        s = r / stabilize(out, ctx.stabilizer)
        ra, rb = a * s, b * s
        return _unbroadcast(ra, a.shape), _unbroadcast(rb, b.shape), None


def _unbroadcast(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    while t.ndim > len(shape):
        t = t.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and t.shape[i] != 1:
            t = t.sum(i, keepdim=True)
    return t


def _no_rule_message(method: str, where: str, mod: nn.Module) -> str:
    """Why ``mod`` has no rule and what to do: drop a probability layer, or which rule fits."""
    name = type(mod).__name__
    if isinstance(mod, (nn.Softmax, nn.LogSoftmax, nn.Softmin)):
        # LRP redistributes a score that is a sum of contributions (a logit); a softmax makes
        # every class's probability depend on every logit, and no rule here conserves it (the
        # weight rules refuse it; Pass would hand p_c to logit c alone, ignoring the others)
        return (
            f"{method}: module {where} of type {name} has no LRP rule: LRP explains a logit "
            f"(the score before the {name}), and a probability depends on every class's "
            "logit, which no relevance rule redistributes. If it is the model's last layer, "
            "explain the logits instead: drop it (model[:-1] for an nn.Sequential, or on a "
            f"copy: m = copy.deepcopy(model); m{_attribute_path(where)} = torch.nn.Identity()) "
            "and explain m's logit (output='raw', the default, or 'logit'). To explain the "
            "probability itself, use a gradient or perturbation method (e.g. "
            "'integrated_gradients', 'kernel_shap') on m with output='prob'. A softmax inside "
            "the model (attention): use method='attnlrp'."
        )
    hint = ""
    if isinstance(mod, _BN):
        hint = (" A BatchNorm is folded into the Linear/Conv right before it when both sit in "
                "an nn.Sequential or are convN/bnN of a ResNet block; put them in sequence.")
    affine = isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    add = "composite=tribute.methods.lrp.get_composite('epsilon_plus_flat').with_rules("
    rule = (f"{add}{{{name}: Epsilon()}}) (any Rule)" if affine else
            f"{add}{{{name}: Pass()}}) for an elementwise activation, or Norm() for a "
            "parameter-free linear map (Epsilon and the other weight rules apply to Linear and "
            "Conv layers only)")
    return (f"{method}: module {where} of type {name} has no LRP rule.{hint} Add one with "
            f"{rule}, or use a gradient method such as 'integrated_gradients'.")


def _attribute_path(where: str) -> str:
    """Python access to a module from its quoted ``named_modules`` path: ``'head.3'`` ->
    ``.head[3]`` (digits index an nn.Sequential / ModuleList)."""
    path = where.strip("'")
    if path == "the model itself" or not path:
        return ""
    return "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path.split("."))


def check_rules(model: nn.Module, rules: dict[nn.Module, tuple[str, Rule]], method: str = "lrp") -> None:
    """Refuse leaf modules that have no rule and are not gradient-safe; check each rule fits.

    Raises:
        UnsupportedModelError: naming the module path, its type and how to add a rule.
    """
    for path, mod in model.named_modules():
        where = repr(path) if path else "the model itself"
        if mod in rules:
            rules[mod][1].check(mod)
            continue
        if isinstance(mod, GRADIENT_MODULES) or isinstance(mod, _CONTAINERS):
            continue
        if isinstance(mod, _BN) and mod in MERGED:
            continue  # folded into the preceding layer by MergeBatchNorm (identity for now)
        has_children = any(True for _ in mod.children())
        if has_children and not type(mod).__module__.startswith("torch."):
            continue  # a user-defined block: its children are checked one by one
        raise UnsupportedModelError(_no_rule_message(method, where, mod))


class _Installer:
    """Forward hooks that apply each module's rule; ``rules`` is kept up to date with the rule
    each module got in the last forward pass (the first-layer rule follows the call order)."""

    def __init__(self, root: nn.Module, rules: dict[nn.Module, tuple[str, Rule]],
                 first: dict[nn.Module, tuple[str, Rule, Rule | None]] | None = None,
                 rows: Callable[[], torch.Tensor | None] | None = None) -> None:
        self.root = root
        self.rows = rows  # the sample ids of the rows of the current forward pass
        self.rules = rules
        self.first = first or {}  # module -> (path, first-layer rule, its layer_map rule)
        self.first_module: nn.Module | None = None
        self.calls: dict[nn.Module, int] = {}
        self.handles: list[Any] = []
        # id(copy returned by a rule) -> (weak ref to it, the z saved with it, its version then)
        self.copies: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor, int]] = {}

    def install(self) -> None:
        self.handles.append(self.root.register_forward_pre_hook(self._reset))
        for mod in {**self.rules, **self.first}:
            self.handles.append(mod.register_forward_hook(self._hook()))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.copies.clear()

    def _reset(self, mod: nn.Module, args: Any) -> None:
        self.calls.clear()
        self.copies.clear()
        self.first_module = None

    def _rule_for(self, mod: nn.Module) -> tuple[str, Rule]:
        """This call's rule: the first-layer rule for the first ``first_map`` module called."""
        if mod not in self.first:
            return self.rules[mod]
        path, first_rule, layer_rule = self.first[mod]
        if self.first_module is None:
            self.first_module = mod
        rule = first_rule if self.first_module is mod else layer_rule
        if rule is None:
            first_path = self.first[self.first_module][0]
            raise UnsupportedModelError(
                f"lrp: module {path!r} ({type(mod).__name__}) comes first in the model's "
                f"declaration but the forward pass reads the input with {first_path!r}, which takes "
                f"the first-layer rule; {path!r} then needs a rule of its own: add one with "
                f"composite.with_rules({{{type(mod).__name__}: Epsilon()}}) (any Rule)."
            )
        if self.rules.get(mod, ("", None))[1] is not rule:
            rule.check(mod)
            self.rules[mod] = (path, rule)
        return path, rule

    def _hook(self) -> Any:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            n = self.calls.get(mod, 0) + 1
            self.calls[mod] = n
            path, rule = self._rule_for(mod)
            if rule.first_layer and n > 1:
                raise UnsupportedModelError(
                    f"lrp: module {path!r} ({type(mod).__name__}) is called {n} times in one forward "
                    f"pass but has the first-layer rule {type(rule).__name__}, which assumes it reads "
                    "the model's input once. Use a separate module for each call, or a composite "
                    "without a first-layer rule (e.g. composite='epsilon_plus')."
                )
            if isinstance(mod, Add):
                if len(args) != 2:
                    raise UnsupportedModelError(f"lrp: Add module {path!r} must be called with two tensors.")
                stab = getattr(rule, "stabilizer", 1e-6)
                return _SumFn.apply(args[0], args[1], stab)  # type: ignore[no-untyped-call]
            if not args or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
                raise UnsupportedModelError(
                    f"lrp: module {path!r} ({type(mod).__name__}) must take and return one tensor to "
                    "carry an LRP rule."
                )
            x = args[0]
            if len(args) > 1:
                raise UnsupportedModelError(
                    f"lrp: module {path!r} ({type(mod).__name__}) was called with {len(args)} positional "
                    "inputs; a rule needs exactly one."
                )
            if not x.requires_grad:
                return None
            if rule.reads_weights and replaces_forward(mod):
                # a Linear/Conv subclass with its own forward (LoRA, weight standardisation,
                # "same" padding): the rule would redistribute through .weight alone (aud40g)
                check_affine_call(mod, x.detach(), out.detach(), repr(path), rule)
            low = high = None
            if isinstance(rule, ZBox):
                rows = None if self.rows is None else self.rows()
                if rows is not None and rows.shape[0] != x.shape[0]:
                    rows = None  # the model regroups its batch: bounds broadcast as given
                low, high = rule.bounds(x.detach(), rows)
            # The rule node returns a copy of z (the model may modify it in place, aud43g); the
            # next rule then reads the saved z instead of saving the copy again when the copy is
            # unmodified: aud43g's copies had raised LRP's saved activations by 73% (rev43g).
            x_values = x.detach()
            seen = self.copies.get(id(x))
            if seen is not None and seen[0]() is x and x._version == seen[2]:
                x_values = seen[1]
            z = out.detach()
            y: torch.Tensor = _RuleFn.apply(x, z, x_values, mod, rule, low, high)  # type: ignore[no-untyped-call]
            self.copies[id(y)] = (weakref.ref(y), z, y._version)
            return y

        return hook


@contextlib.contextmanager
def lrp_rules(model: nn.Module, composite: Composite,
              rows: Callable[[], torch.Tensor | None] | None = None) -> Iterator[dict[nn.Module, tuple[str, Rule]]]:
    """Canonize ``model`` and install ``composite``'s rules; undo everything on exit.

    Args:
        model: the model.
        composite: the rules and canonizers.
        rows: returns the sample index of each row of the forward pass being run (z^B
            bounds given per sample are indexed by it); None: bounds are broadcast as given.

    Yields:
        ``{module: (path, rule)}`` of the rules in force.

    Raises:
        UnsupportedModelError: a module without a rule, or a rule that does not fit its module.
    """
    with canonized(model, composite.canonizers):
        rules = composite.rules(model)
        check_rules(model, rules)
        first: dict[nn.Module, tuple[str, Rule, Rule | None]] = {}
        for path, mod in model.named_modules():
            hit = composite.first_rule(mod)
            if hit is not None and mod not in first:
                first[mod] = (path, hit, composite.layer_rule(mod))
        inst = _Installer(model, rules, first, rows)
        try:
            inst.install()
            yield rules
        finally:
            inst.remove()
