"""Class activation maps from gradients: Grad-CAM and Grad-CAM++.

Both read the activation ``A`` (``channels x h x w``) of one convolutional layer and the
gradient ``g = dS/dA`` of the explained output ``S``, weight the channels, keep the positive
part of the weighted sum and upsample it to the input's spatial size. The layer output is
captured by a forward hook that swaps it for a leaf tensor, so the engine's single gradient
pass gives ``dS/dA`` directly; hooks are removed in ``finally`` blocks, also after errors.

Maps are broadcast over the input's channel (and any other leading) axes; with groups each
player gets the sum of its elements' map values.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..attribution import Attribution
from ..errors import InputError, UnsupportedModelError
from ..games.base import Game
from ..games.features import FeatureGame, ProbeChunk
from ..models.layout import CHANNEL_COUNTS, channels_last_by_model
from ..params import NONE, InstanceOf, Options, declare, scalar_value
from .base import Cost, Method, Tags, coalition_cost, register
from .gradients_basic import feature_game

__all__ = ["GradCAM", "GradCAMPlusPlus", "find_layer", "layer_activation_gradients"]

_MODES = ("nearest", "bilinear", "bicubic", "area", "nearest-exact")


def find_layer(module: torch.nn.Module, layer: str | None, method: str) -> tuple[str, torch.nn.Module]:
    """Resolve a module path (``"features.3"``); ``None`` picks the last ``Conv2d``.

    Raises:
        UnsupportedModelError: no such module (a few valid names are listed), or no Conv2d.
    """
    named = dict(module.named_modules())
    if layer is None:
        convs = [n for n, m in named.items() if isinstance(m, torch.nn.Conv2d)]
        if not convs:
            raise UnsupportedModelError(
                f"{method}: the model has no torch.nn.Conv2d layer to take the default from; pass "
                f"layer='<module path>' naming a layer with a 4-D output (batch, channels, h, w). "
                f"Modules: {_some_names(named)}."
            )
        return convs[-1], named[convs[-1]]
    if not isinstance(layer, str):
        raise InputError(f"{method}: layer={layer!r} must be a module path string like 'features.3', or None.")
    if layer not in named or layer == "":
        raise UnsupportedModelError(
            f"{method}: layer={layer!r} is not a module of the model; valid paths include "
            f"{_some_names(named)}."
        )
    return layer, named[layer]


def _some_names(named: dict[str, torch.nn.Module], limit: int = 8, exclude: str | None = None) -> str:
    # containers (ModuleList / ModuleDict) are never called: not a layer to pick (aud41v)
    names = [n for n in named if n and n != exclude
             and not isinstance(named[n], (torch.nn.ModuleList, torch.nn.ModuleDict))]
    convs = [n for n in names if isinstance(named[n], torch.nn.Conv2d)]
    pick = (convs + [n for n in names if n not in convs])[:limit]
    more = f" (+{len(names) - len(pick)} more)" if len(names) > len(pick) else ""
    return ", ".join(repr(n) for n in pick) + more if pick else "(none)"


def layer_activation_gradients(
    game: FeatureGame,
    layer: str | None,
    method: str,
    on_chunk: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None],
    channel_axis: int | None = None,
) -> str:
    """Run every sample once and hand each chunk's ``(activation, gradient, sample ids)``.

    The activation is ``rows x C x h x w`` and the gradient ``rows x targets x C x h x w``
    (both float64 CPU; a channels-last ``rows x h x w x C`` layer output, told by the channel
    count the model set, or by ``channel_axis`` where given: 1 or -1 / 3, is handed over with its
    channels moved to axis 1). Returns the resolved layer path. Counts one evaluation per input.
    """
    module = game.model.module
    if module is None:
        raise UnsupportedModelError(f"{method} needs a torch.nn.Module (it reads a layer's activations); got a plain callable.")
    path, _ = find_layer(module, layer, method)
    image_hw = tuple(int(d) for d in game.input_shapes()[0][-2:])

    def check(pth: str, mod: torch.nn.Module, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            # a (batch, tokens, features) output (a transformer block): its tokens have no (h, w)
            # grid here; say where a map or a per-unit credit comes from (aud41v)
            tokens = (
                " It is a (batch, tokens, features) sequence (a transformer layer): take a layer "
                "that still has the (h, w) grid (the patch embedding's Conv2d), or credit the "
                "layer's units with method='layer_grad_cam' and "
                f"players=tribute.components(model, {pth!r})."
                if isinstance(out, torch.Tensor) and out.ndim == 3 else "")
            raise UnsupportedModelError(
                f"{method}: layer {pth!r} ({type(mod).__name__}) outputs {shape}; Grad-CAM needs a "
                f"4-D (batch, channels, h, w) activation.{tokens} Pick a convolutional layer, e.g. "
                f"{_some_names(dict(module.named_modules()), 4, exclude=pth)}."
            )
        hw = tuple(out.shape[1:3]) if channel_axis in (3, -1) else tuple(out.shape[-2:])
        if hw == (1, 1):
            _refuse_one_by_one(pth, mod, tuple(out.shape))

    def _refuse_one_by_one(pth: str, mod: torch.nn.Module, shape: tuple[int, ...]) -> None:
        if image_hw == (1, 1):
            return
        raise UnsupportedModelError(
            f"{method}: layer {pth!r} ({type(mod).__name__}) outputs a 1 x 1 map "
            f"{shape} (after global pooling, or a receptive field covering the "
            f"{image_hw[0]}x{image_hw[1]} image): its map would be one value for the whole "
            "image, with no localisation. Pick a layer before the pooling, e.g. "
            f"{_some_names(dict(module.named_modules()), 4, exclude=pth)}."
        )

    from .tcav import _channel_axis, _channel_watch  # here: tcav imports this module

    channels: dict[str, int] = {}

    def chunk(c: ProbeChunk) -> None:
        act, grad = c.activations[path], c.grads[0]
        if act.ndim == 4 and channel_axis is not None and channels.get("c") is not None:
            # rev46z: channel_axis=-1 on a Conv2d's (batch, 6, 8, 8) output mapped its widths as
            # channels, silently (map 0.026 for 0.157); refused where the model's count says
            # the other axis
            given = channel_axis % 4
            other = 1 if given == 3 else 3
            if int(act.shape[given]) != channels["c"] == int(act.shape[other]):
                raise InputError(
                    f"{method}: channel_axis={channel_axis} puts layer {path!r}'s channels on axis "
                    f"{given} of its output {tuple(act.shape)}, but the model set {channels['c']} "
                    f"channels for it, the size of axis {other}: pass channel_axis="
                    f"{1 if other == 1 else -1}, or None to let the model tell.")
        # A channels-last (batch, h, w, C) output (a Swin stage, a Linear or LayerNorm on each
        # position's vector) had its h read as the channels and (w, C) as the map, silently
        # (aud45g); the channel count the model set tells the layout, as for TCAV and CRAFT,
        # or the caller's channel_axis where the shape cannot (C == h == w, small46).
        if act.ndim == 4 and _channel_axis(act, layer_mod, path, channel_axis, channels, who=method) == 3 \
                and (channel_axis is not None or not _channels_laid_out_first(act)):
            raw = tuple(act.shape)
            act, grad = act.movedim(3, 1), grad.movedim(-1, 2)
            if tuple(act.shape[-2:]) == (1, 1):  # a channels-last (batch, 1, 1, C) output (small46:
                _refuse_one_by_one(path, layer_mod, raw)  # its map was one value, unrefused)
        on_chunk(act, grad, c.sample)

    # a layer the forward pass never calls leaves the gradient run without a leaf, which the
    # engine reports as an internal error: watch the layer and the whole model to say so
    seen = {"layer": False, "model": False, "reached": True}

    def at_model(_m: torch.nn.Module, _a: Any, out: Any) -> None:
        seen["model"] = True
        # rev38a: a layer that is called but does not reach the output (a dead branch) left the
        # output without a gradient path: torch's "element 0 of tensors does not require grad"
        seen["reached"] = bool(out.requires_grad) if isinstance(out, torch.Tensor) else True

    layer_mod = dict(module.named_modules())[path]
    handles = [layer_mod.register_forward_hook(lambda *a: seen.__setitem__("layer", True)),
               module.register_forward_hook(at_model)]
    try:
        with _channel_watch(module, layer_mod, channels):
            game.probe(chunk, modules=[path], check_module=check, grad="modules", desc=method)
    except (RuntimeError, UnsupportedModelError) as exc:
        # (the probe itself now refuses a layer never called, without the layer's type or a
        # suggestion: rev38a, test_aud38v's never-called test failed on integ)
        if seen["model"] and not seen["layer"]:
            raise UnsupportedModelError(
                f"{method}: layer {path!r} ({type(layer_mod).__name__}) is a module of the model "
                "but its forward() never calls it, so it has no activation to weigh; pick a "
                f"layer the model uses, e.g. {_some_names(dict(module.named_modules()), 4, exclude=path)}."
            ) from exc
        if seen["model"] and seen["layer"] and not seen["reached"]:
            raise UnsupportedModelError(
                f"{method}: layer {path!r} ({type(layer_mod).__name__}) is called by the model's "
                "forward() but its output does not reach the model's output (no gradient path), so "
                "it has no gradient to weigh; pick a layer on the path to the output, e.g. "
                f"{_some_names(dict(module.named_modules()), 4, exclude=path)}."
            ) from exc
        raise
    finally:
        for h in handles:
            h.remove()
    return path


def _channels_laid_out_first(act: torch.Tensor) -> bool:
    """Where axes 1 and 3 have the same size (the channel count cannot tell them apart), an
    output whose axis 1 is the contiguous one holds its channels there: timm's ``LayerNorm2d``
    (an ``nn.LayerNorm`` that permutes ``(batch, C, h, w)`` to normalise its channels and back)
    with ``C == w`` was read as channels-last by its type (rev45g: map error 0.14 for a map up
    to 0.058). A channels-last ``(batch, h, w, C)`` output never has stride 1 on axis 1."""
    return act.shape[1] == act.shape[3] and act.shape[1] > 1 and act.stride(1) == 1


def _refuse_channels_last(method: str, shape: tuple[int, ...], layer_hw: tuple[int, int]) -> None:
    """Refuse a 3-D image that reads channels-last by its shape (a last axis of 1, 3 or 4 after
    two longer ones) when the layer's map is wider than that last axis: upsampling the map to
    the last two axes ``(W, C)`` would shrink it and repeat it over ``H`` (aud45g: an
    ``(8, 6, 3)`` image's 8 x 6 map came back as a 6 x 3 map repeated 8 times, silently).
    Channels-last images the model's first Conv2d confirms are read as such, not refused."""
    if len(shape) != 3 or shape[-1] not in CHANNEL_COUNTS or min(shape[0], shape[1]) <= shape[-1]:
        return
    if layer_hw[1] <= shape[-1]:
        return
    raise UnsupportedModelError(
        f"{method}: the input's per-sample shape {shape} reads as a channels-last (H, W, C) image, "
        f"and the layer's {layer_hw[0]} x {layer_hw[1]} map is wider than its last axis; Grad-CAM "
        f"upsamples the map to the input's last two axes {shape[1:]}, which would be another "
        "image than the model's (its first Conv2d does not tell the layout). Pass channels-first "
        "images (x.permute(0, 3, 1, 2), with a model that reads (batch, C, H, W)).")


class _CAMBase(Method):
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, games=("feature",),
                model_specific=True)
    constraints = declare({
        "layer": (NONE, InstanceOf((str,), "a module path string like 'features.3'")),
        "interpolate_mode": Options(_MODES),
        "relu": InstanceOf((bool,), "True or False"),
        "channel_axis": Options((None, 1, 3, -1)),
    })

    def __init__(self, layer: str | None = None, interpolate_mode: str = "bilinear",
                 relu: bool = True, channel_axis: int | None = None) -> None:
        self.layer = layer
        self.interpolate_mode = interpolate_mode
        self.relu = relu
        self.channel_axis = scalar_value(channel_axis)  # numpy / 0-d torch ints as for CRAFT, TCAV (rev46z)

    @abstractmethod
    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``rows x targets x C`` channel weights from ``act`` (rows x C x h x w) and ``grad``."""

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = feature_game(game, self.name)
        if len(fg.inputs) != 1 or len(fg.input_shapes()[0]) < 2:
            raise UnsupportedModelError(
                f"{self.name} upsamples a layer map to the input's (H, W); it applies to models "
                f"with one image input of per-sample shape (C, H, W) or (H, W), got "
                f"{fg.input_shapes()}. Use 'integrated_gradients' or 'saliency' for other inputs."
            )
        shape = tuple(int(d) for d in fg.input_shapes()[0])
        # (H, W, C) images: the model's first Conv2d reads the last axis's channels. Their map
        # went to the last two axes (W, C) and was repeated over H, silently (aud45g).
        # The channel count of the first registered Conv2d can equal the image width by chance
        # (a fuse Conv2d(8, ...) registered before the branches whose 4 + 4 channels it reads):
        # a (3, 8, 8) image was read as 3 x 8 with 8 channels (rev45g: the whole map wrong).
        # channels_last_by_model says None there (the model's branch Conv2d reads the first
        # axis's 3); one rule with the metrics and region methods. Cam's own rule (an (H, W, C)
        # image holds fewer channels than rows and columns) mapped channels-last patches with
        # many bands, (5, 5, 20), to 5 x 20 (small46).
        told = channels_last_by_model(shape, fg.model)
        last = told is True
        spatial = (shape[0], shape[1]) if last else (shape[-2], shape[-1])
        lead = shape[-1] if last else int(np.prod(shape[:-2], dtype=np.int64))
        per_element = torch.zeros(fg.n_samples, fg.n_targets, lead * spatial[0] * spatial[1],
                                  dtype=torch.float64)
        maps: dict[str, Any] = {}

        def on_chunk(act: torch.Tensor, grad: torch.Tensor, b: torch.Tensor) -> None:
            if act.shape[0] != b.shape[0]:
                raise UnsupportedModelError(
                    f"{self.name}: layer {repr(self.layer) if self.layer else '(the last Conv2d)'} sees {act.shape[0]} rows for {b.shape[0]} "
                    "input rows (the model reshapes its batch, e.g. into cells or patches), so its "
                    "maps cannot be assigned to inputs; use 'integrated_gradients' or 'occlusion'."
                )
            if told is None:  # (a layout the first Conv2d confirms channels-first is read
                # as such: rev45z, a padded layer's 34 x 6 map of (8, 32, 4) images was refused)
                _refuse_channels_last(self.name, shape, (int(act.shape[-2]), int(act.shape[-1])))
            w = self.channel_weights(act, grad)  # R x T x C
            cam = torch.einsum("rtc,rchw->rthw", w, act)
            if self.relu:
                cam = cam.clamp_min(0.0)
            maps.setdefault("layer_shape", tuple(act.shape[1:]))
            up = self._upsample(cam, spatial)  # R x T x H x W
            if last:  # (H, W, C): the map broadcast over the last axis
                per_element[b] = up[..., None].expand(*up.shape, lead).flatten(2)
            else:
                per_element[b] = up.flatten(2).repeat(1, 1, lead)

        path = layer_activation_gradients(fg, self.layer, self.name, on_chunk, self.channel_axis)
        values = fg.elements_to_players(per_element)
        params = {**self.get_params(), "layer": path}
        return fg.attribution(values, self.name, params,
                              extra={"layer": path, "layer_shape": maps.get("layer_shape")})

    def _upsample(self, cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(cam.shape[-2:]) == size:
            return cam
        mode = self.interpolate_mode
        corners = False if mode in ("bilinear", "bicubic") else None
        return F.interpolate(cam, size=size, mode=mode, align_corners=corners)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One gradient pass per input; the credits and a layer-activation map per sample."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one gradient pass per input", background=False)


@register
class GradCAM(_CAMBase):
    """Grad-CAM: ``relu(sum_c mean_hw(dS/dA_c) * A_c)``, upsampled to the input.

    Args:
        layer: module path of the layer to read (``"features.3"``); its output must be 4-D
            ``(batch, C, h, w)``. default=None (the model's last ``torch.nn.Conv2d``).
        interpolate_mode: ``torch.nn.functional.interpolate`` mode for the upsampling
            (``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``; bilinear/bicubic use
            ``align_corners=False``). default="bilinear".
        relu: keep only the positive part of the map (as in the paper; Captum's
            ``LayerGradCam`` default is ``relu_attributions=False``). default=True.
        channel_axis: the axis of the layer's 4-D output that holds its channels: 1 for
            ``(batch, C, h, w)``, -1 (or 3) for ``(batch, h, w, C)`` (a Swin stage, a Linear or
            LayerNorm on each position). default=None (told by the channel count the model set
            for the output, and by its strides where axes 1 and 3 have the same size; pass it
            where both tell nothing, e.g. a toy block with C == h == w).

    One gradient pass per input (1 evaluation). The map is broadcast over input channels; with
    groups a player's credit is the sum over its elements. Channels-last ``(batch, H, W, C)``
    images are mapped to ``(H, W)`` when the model's first ``Conv2d`` reads the last axis's
    channels (a channels-last shape it does not confirm is refused), and a layer output laid
    out ``(batch, h, w, C)`` (a Swin stage, a Linear or LayerNorm on each position) is read by
    the channel count the model set for it. Grad-CAM is a localisation map, not
    an additive attribution: it has no completeness property.

    Reference: Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017), "Grad-CAM: Visual
    Explanations from Deep Networks via Gradient-based Localization".
    """

    name = "grad_cam"
    paper = "Selvaraju et al. (2017), Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization"

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad.mean(dim=(-2, -1))


@register
class GradCAMPlusPlus(_CAMBase):
    """Grad-CAM++: channel weights ``sum_ij alpha_ij relu(g_ij)`` with pixel-wise ``alpha``.

    ``alpha_ij = g_ij^2 / (2 g_ij^2 + sum_ab A_ab g_ij^3)`` (0 where the denominator is 0),
    the closed form of the paper for an exponential output ``Y = exp(S)``; the positive factor
    ``exp(S)`` of the paper's weights is dropped (it rescales each map, not its shape), as in
    common implementations.

    Args:
        layer: module path of the layer to read. default=None (the last ``Conv2d``).
        interpolate_mode: upsampling mode. default="bilinear".
        relu: keep only the positive part of the map. default=True.
        channel_axis: the axis of the layer's output that holds its channels (1, or -1 / 3 for
            ``(batch, h, w, C)``). default=None (told by the model; see ``grad_cam``).

    Reference: Chattopadhyay, Sarkar, Howlader & Balasubramanian (2018), "Grad-CAM++:
    Generalized Gradient-Based Visual Explanations for Deep Convolutional Networks".
    """

    name = "grad_cam_pp"
    paper = "Chattopadhyay et al. (2018), Grad-CAM++: Generalized Gradient-Based Visual Explanations for Deep Convolutional Networks"

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        g2 = grad**2
        g3 = g2 * grad
        sum_a = act.sum(dim=(-2, -1), keepdim=True)[:, None]  # R x 1 x C x 1 x 1
        denom = 2.0 * g2 + sum_a * g3
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                            torch.zeros_like(denom))
        return (alpha * grad.clamp_min(0.0)).sum(dim=(-2, -1))
