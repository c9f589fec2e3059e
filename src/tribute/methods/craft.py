"""CRAFT: concept recursive activation factorisation (Fel et al., CVPR 2023).

CRAFT explains a class through *concepts* it discovers in the model's own activations:

1. **Crops.** Random crops of images of the class (``crop_size`` pixels, seeded positions),
   each resized to the input size, give ``n`` small views of the parts of the class.
2. **Factorisation.** The activations of the crops at a layer ``l`` (spatially averaged when
   the layer has a spatial map; non-negative, i.e. read after a ReLU) form ``A`` (``n x p``);
   non-negative matrix factorisation ``A ≈ U W`` (:mod:`._nmf`, HALS) gives the *concept bank*
   ``W`` (``r x p``: each row is a concept, a direction in activation space) and the crops'
   concept coefficients ``U``. The crops with the largest ``U[:, k]`` show what concept ``k`` is.
3. **Importance by Sobol indices.** For an image of the class, its activation map at ``l`` is
   projected onto ``W`` at every position (non-negative least squares): ``u(pos)`` (``r``
   coefficients). Quasi-Monte-Carlo masks ``m ∈ [0, 1]^r`` scale the coefficients,
   ``a(m) = (u ⊙ m) W``, which is fed through the rest of the network (a forward hook replaces
   the layer's output); the target logit's total-order Sobol index per concept (Jansen's
   estimator, :func:`tribute.methods.sobol.jansen_total`, on :func:`~tribute.methods.sobol.sobol_designs`)
   says how much of the output's variance the concept drives. Indices are averaged over the
   images; ``stderr`` is their standard error over images (the estimator's CLT error with one
   image; with 2-3 images at least the images' pooled estimator errors, the spread of so few
   values being too noisy on its own). Every image gets its own independently scrambled designs (split into independent
   replicates and jackknifed, as for one image), so the spread over images also carries the
   estimator's error: designs shared by all images made that error common to them, and the
   standard error came out up to 8x too small. As in the paper, ``a(m)`` is the NMF reconstruction, without the residual
   ``a - u W`` (the reported ``reconstruction_error`` says how much is lost).
4. **Concept attribution maps.** ``u(pos)`` per concept, upsampled (bilinear) to the image
   size: where each concept lives in each image.
5. **Recursive decomposition** (:func:`craft_decompose`): a concept is split into sub-concepts
   by re-running the factorisation at an *earlier* layer on the crops that express it most.

Cost (forward passes, counted in ``n_evals``): ``crops + images`` to read activations, plus
``images x N (r + 2)`` for the Sobol designs (``N = n_designs``); ``craft_decompose`` adds one
image (the check that its layer runs before the concepts' layer).

Reference: Fel, Picard, Béthune, Boissin, Vigouroux, Colin, Cadène & Serre (2023), "CRAFT:
Concept Recursive Activation FacTorization for Explainability", CVPR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, UnsupportedModelError
from ..models.layout import channels_last_by_model, first_conv_channels
from ._eval_mode import eval_mode
from ._nmf import nmf, nmf_transform
from .analyses import register_analysis
from .cam import find_layer
from .sobol import jansen_total, replicate_count, sobol_designs
from .tcav import _channel_axis, _channel_watch, _model_dtype, _refuse_sequence_first

__all__ = ["CRAFTResult", "craft", "craft_decompose"]

_PAPER = ("Fel, Picard, Béthune, Boissin, Vigouroux, Colin, Cadène & Serre (2023), CRAFT: Concept "
          "Recursive Activation FacTorization for Explainability, CVPR")


@dataclass(frozen=True)
class CRAFTResult:
    """Concepts of one class discovered at one layer, their importance and where they are.

    Attributes:
        layer: module path the concepts live at.
        target: the explained class (output column).
        concepts: ``n_concepts x p`` concept bank ``W`` (non-negative rows of unit norm).
        importances: ``n_concepts`` total Sobol indices averaged over ``images``.
        stderr: ``n_concepts`` standard errors of ``importances``.
        image_importances: ``images x n_concepts`` Sobol indices per image.
        coefficients: ``crops x n_concepts`` NMF coefficients ``U`` of the crops.
        crops: ``crops x C x h x w`` the crops (resized to the input size unless ``resize=False``).
        crop_boxes: ``crops x 4`` ``(image, row, col, size)`` where each crop came from.
        top_crops: ``n_concepts x n_top`` crop indices with the largest coefficient per concept.
        concept_maps: ``images x n_concepts x H x W`` concept coefficients per pixel (upsampled).
        images: ``images x C x H x W`` the images maps and importances refer to.
        reconstruction_error: relative NMF error ``||A - U W||_F / ||A||_F`` on the crops.
        nmf_iterations: HALS sweeps run; ``nmf_converged`` whether the tolerance was met.
        n_designs: Sobol designs per image.
        n_evals: forward passes spent (rows through the model).
        parent: ``(layer, concept)`` this result decomposes (:func:`craft_decompose`), or None.
    """

    layer: str
    target: int
    concepts: np.ndarray
    importances: np.ndarray
    stderr: np.ndarray
    image_importances: np.ndarray
    coefficients: np.ndarray
    crops: np.ndarray
    crop_boxes: np.ndarray
    top_crops: np.ndarray
    concept_maps: np.ndarray
    images: np.ndarray
    reconstruction_error: float
    nmf_iterations: int
    nmf_converged: bool
    n_designs: int
    n_evals: int
    parent: tuple[str, int] | None = None

    @property
    def n_concepts(self) -> int:
        return int(self.concepts.shape[0])

    def order(self) -> np.ndarray:
        """Concept indices by decreasing importance."""
        return np.argsort(-self.importances, kind="stable")

    def plot(self, image: int = 0, **kwargs: Any) -> Any:
        """Top crops per concept, the importance bar and the concept map of ``images[image]``
        (see :func:`tribute.viz.craft_plot`)."""
        from ..viz import craft_plot  # viz sits above methods: lazy (allowed in the layering test)

        return craft_plot(self, image=image, **kwargs)


# ---------------------------------------------------------------------------- model access


@contextmanager
def _hooked(layer_module: torch.nn.Module, hook: Callable[..., Any]) -> Iterator[None]:
    handle = layer_module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class _Runner:
    """Forward passes through ``model`` reading or replacing ``layer``'s output; counts rows."""

    def __init__(self, model: torch.nn.Module, layer: str, batch_size: int, channel_axis: int | None = None) -> None:
        self.model = model
        self.path, self.module = find_layer(model, layer, "craft")
        _refuse_sequence_first(model, self.path, "craft")
        self.batch_size = batch_size
        self.channel_axis = channel_axis
        #: the channel axis of the layer's 4-D output (1: batch x channels x h x w; 3: a channels-last
        #: stage's batch x h x w x channels), told as TCAV tells it; activations are held with the
        #: channels on axis 1 and put back in the layer's layout when they replace its output
        self.axis = 1
        self.n_evals = 0
        # parameters, else buffers (aud52c: a model holding its weights as float64 buffers had its
        # float64 images cast to float32 and was refused as one that "fails on the crops")
        dtype, self.device = _model_dtype(model)
        self.dtype = dtype or torch.float32

    def _check_tensor(self, out: Any) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise UnsupportedModelError(f"craft: layer {self.path!r} outputs {type(out).__name__}, not a tensor; "
                                        "name a layer whose output is one tensor.")
        return out

    def _check_calls(self, calls: int) -> None:
        """The layer must run exactly once per forward pass: a module reused (torchvision's
        ``BasicBlock.relu``) gave two activations per image, stacked as rows of other images."""
        if calls == 0:
            raise UnsupportedModelError(f"craft: layer {self.path!r} did not run in the model's forward pass; "
                                        "name a module the forward pass calls.")
        if calls != 1:
            raise UnsupportedModelError(
                f"craft: layer {self.path!r} runs {calls} times per forward pass; CRAFT needs one activation "
                "per image. Name a module that runs once (for a reused activation such as a ResNet block's "
                "relu, the block itself, or an nn.ReLU added for this layer only).")

    def forward_order(self, other: torch.nn.Module, x: torch.Tensor) -> list[str]:
        """``"layer"`` / ``"parent"`` (``other``) in the order their outputs are computed in one
        forward pass of ``x`` (counted)."""
        order: list[str] = []
        with _hooked(self.module, lambda *_: order.append("layer")), \
                _hooked(other, lambda *_: order.append("parent")), torch.no_grad():
            self.model(x.to(self.device, self.dtype))
        self.n_evals += int(x.shape[0])
        return order

    def activations(self, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
        """Layer outputs for ``x`` (``n x p [x h x w]``), checked non-negative; with ``target``,
        the first forward pass's ``batch x classes`` output is checked to have that column."""
        store: list[torch.Tensor] = []
        seen: dict[str, int] = {}

        def hook(_m: torch.nn.Module, _i: Any, out: Any) -> None:
            # a copy: an in-place op after the layer (ReLU(inplace=True)) would rewrite an alias of it
            store.append(self._check_tensor(out).detach().to("cpu", torch.float64, copy=True))

        with _channel_watch(self.model, self.module, seen), _hooked(self.module, hook), torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                chunk = x[i : i + self.batch_size].to(self.device, self.dtype)
                before = len(store)
                logits = self.model(chunk)
                self._check_calls(len(store) - before)
                if target is not None and i == 0 and isinstance(logits, torch.Tensor) and logits.ndim == 2:
                    # aud50x: a target past the output's columns was refused after the crops'
                    # activations, the NMF and the images' activations (134 model rows)
                    _check_logits(logits, target)
                self.n_evals += int(chunk.shape[0])
                if self.channel_axis is not None and store[-1].ndim != 4:
                    raise InputError(f"craft: channel_axis={self.channel_axis} applies to a layer with a 4-D output "
                                     f"(a spatial map); layer {self.path!r} outputs shape {tuple(store[-1].shape)}. "
                                     "Leave channel_axis=None.")
                if store[-1].ndim == 4:
                    # a 4-D output in another layout than batch x channels x h x w (a Swin stage's
                    # batch x h x w x channels) was factorised along its height axis, silently
                    self.axis = _channel_axis(store[-1], self.module, self.path, self.channel_axis, seen, who="craft")
                    store[-1] = store[-1].movedim(self.axis, 1)
        act = torch.cat(store).double().cpu()
        if act.ndim not in (2, 4):
            raise UnsupportedModelError(
                f"craft: layer {self.path!r} outputs per-sample shape {tuple(act.shape[1:])}; CRAFT needs "
                "(channels, height, width) maps or (features,) vectors.")
        low = float(act.min())
        if low < 0:
            raise InputError(
                f"craft: layer={self.path!r} has negative activations (min {low:.3g}); CRAFT factorises "
                "activations by non-negative matrix factorisation. Name a layer that follows a ReLU "
                "(or the ReLU module itself), e.g. the activation after this one.")
        return act

    def logits_from(self, x: torch.Tensor, acts: torch.Tensor, target: int) -> torch.Tensor:
        """``target`` logit when the layer's output is replaced by ``acts`` (rows of the same image ``x``)."""
        out_vals: list[torch.Tensor] = []
        slot: dict[str, torch.Tensor] = {}
        calls = [0]

        def hook(_m: torch.nn.Module, _i: Any, out: Any) -> torch.Tensor:
            self._check_tensor(out)
            calls[0] += 1
            return slot["a"].movedim(1, self.axis).contiguous().to(out.dtype)

        with _hooked(self.module, hook), torch.no_grad():
            for i in range(0, acts.shape[0], self.batch_size):
                a = acts[i : i + self.batch_size].to(self.device, self.dtype)
                slot["a"] = a
                calls[0] = 0
                logits = self.model(x[None].expand(a.shape[0], *x.shape).to(self.device, self.dtype))
                self._check_calls(calls[0])
                _check_logits(logits, target)
                out_vals.append(logits[:, target].double().cpu())
                self.n_evals += int(a.shape[0])
        return torch.cat(out_vals)


def _check_logits(logits: Any, target: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not 0 <= target < logits.shape[1]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"craft: target={target} must index a column of the model's batch x classes output; "
                         f"got output {shape}.")


# ---------------------------------------------------------------------------- pieces


def _as_images(images: Any, model: Any = None) -> torch.Tensor:
    t = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if t.ndim != 4 or t.shape[0] < 1 or not t.dtype.is_floating_point:
        raise InputError(f"craft: images must be a float batch (images x channels x height x width); got "
                         f"shape {tuple(t.shape)} dtype {t.dtype}.")
    if not torch.isfinite(t).all():
        raise InputError("craft: images hold NaN or inf values.")
    # the model's first Conv2d tells the layout where it reads one axis's length and not the
    # other's (tribute.models.layout, shared with the metrics and region methods): by shape alone,
    # 8-band images (n, 8, 16, 4) were refused, and channels-last ones (n, 32, 32, 8) for a model
    # that permutes them ran on crops across width and bands (rev44a); else the shape rule
    told = channels_last_by_model(tuple(int(d) for d in t.shape[1:]), model)
    if told is None:
        told = t.shape[-1] <= 4 < t.shape[1] and t.shape[-1] < t.shape[2]
    if told:
        # channels-last images (n, H, W, 3), as numpy / PIL give them: CRAFT crops axes 2 and 3,
        # so it cut 1-pixel crops across the WIDTH and the colour channels (crop_boxes of size 1,
        # concept maps of shape W x C) and ran silently for a model that permutes them itself;
        # for an images x C x H x W model the failure blamed resize=False
        why = "" if first_conv_channels(model) is None else f" (the model's first Conv2d reads {first_conv_channels(model)} channels)"
        raise InputError(
            f"craft: images of shape {tuple(t.shape)} look channels-last (images x height x width x channels){why}; "
            "CRAFT crops and maps images x channels x height x width. Pass images.permute(0, 3, 1, 2) "
            "(np.transpose(images, (0, 3, 1, 2))), with a model that takes that layout (wrap a channels-last "
            "model in a module that permutes its input back).")
    return t.detach().cpu()


def _random_crops(x: torch.Tensor, n_crops: int, size: int, seed: int, resize: bool,
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """``n_crops`` crops per image at seeded random positions, resized to the image size if ``resize``."""
    n, _, h, w = x.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, h - size + 1, size=(n, n_crops))
    cols = rng.integers(0, w - size + 1, size=(n, n_crops))
    crops = []
    boxes = []
    for i in range(n):
        for r, c in zip(rows[i], cols[i]):
            crops.append(x[i, :, r : r + size, c : c + size])
            boxes.append((i, int(r), int(c), size))
    stack = torch.stack(crops)
    if resize and (size != h or size != w):
        stack = F.interpolate(stack.float(), size=(h, w), mode="bilinear", align_corners=False).to(x.dtype)
    return stack, np.asarray(boxes, dtype=np.int64)


def _pooled(act: torch.Tensor) -> np.ndarray:
    return (act.mean(dim=(2, 3)) if act.ndim == 4 else act).numpy()


def _positions(act: torch.Tensor) -> torch.Tensor:
    """One image's activation ``p [x h x w]`` as ``positions x p``."""
    return act.reshape(act.shape[0], -1).T if act.ndim == 3 else act[None]


def _importance(runner: _Runner, images: torch.Tensor, acts: torch.Tensor, W: np.ndarray, target: int,
                n_designs: int, sampler: str, seed: int,
                ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per-image Sobol indices of the concepts; also each image's per-position coefficients."""
    r, n_img = W.shape[0], images.shape[0]
    # Every image its own independent designs (independent replicates, so that each image's
    # estimate is jackknifed like one image's): with one set of designs shared by all images
    # the estimator's error is common to them, the spread over images misses it, and the
    # standard error came out 8x too small (aud35t: z-scores of sd 8.0 against the closed form).
    reps = replicate_count(n_designs, sampler)
    # one image: its seed as a Python int, and seed=None (fresh draws) drawn here too: sampler='random' seeds a
    # torch generator, which takes neither None nor a numpy integer (craft(seed=None / np.int64(3),
    # sampler='random') raised 'manual_seed expected a long' / 'an integer is required' after the crops ran)
    # (with 'random', a seed of 2**64 or more, e.g. SeedSequence().entropy, overflowed torch's generator after
    # the crops ran: spawned as for several images; 'sobol' seeds numpy, which takes it as it is; rev49k)
    seeds = [int(seed)] if n_img == 1 and seed is not None and (sampler != "random" or int(seed) < 2**64) else \
        [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_img)]
    Wt = torch.from_numpy(W)
    sts, ses, coeffs = [], [], []
    for i in range(n_img):
        a, b = sobol_designs(r, n_designs, seeds[i], sampler, replicates=reps)  # N x r
        hybrids = a[None].repeat(r, 1, 1)  # r x N x r: A with column i from B
        hybrids[torch.arange(r), :, torch.arange(r)] = b.T
        masks = torch.cat([a, b, hybrids.reshape(-1, r)])  # N (r + 2) x r
        act = acts[i]
        u = torch.from_numpy(nmf_transform(_positions(act).numpy(), W))  # positions x r
        coeffs.append(u.numpy())
        pert = (u[None] * masks[:, None, :]) @ Wt  # rows x positions x p
        if act.ndim == 3:
            pert = pert.transpose(1, 2).reshape(masks.shape[0], *act.shape)
        else:
            pert = pert[:, 0]
        v = runner.logits_from(images[i], pert, target)
        fa, fb, fc = v[:n_designs], v[n_designs : 2 * n_designs], v[2 * n_designs :].reshape(r, n_designs)
        st, se = jansen_total(fa, fb, fc, replicates=reps if reps > 1 else None)
        sts.append(st.numpy())
        ses.append(se.numpy())
    return np.stack(sts), np.stack(ses), coeffs


def _maps(coeffs: list[np.ndarray], acts: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    out = []
    for u, act in zip(coeffs, acts):
        if act.ndim == 3:
            m = torch.from_numpy(u).T.reshape(u.shape[1], act.shape[1], act.shape[2])
        else:
            m = torch.from_numpy(u).T.reshape(u.shape[1], 1, 1)
        out.append(F.interpolate(m[None].float(), size=size, mode="bilinear", align_corners=False)[0].numpy())
    return np.stack(out)


#: Up to this many images, CRAFT's standard error is at least the images' pooled estimator error.
_FEW_IMAGES = 3


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"craft: {name}={value!r} must be an integer >= {low}.")
    return int(value)


def _fit(runner: _Runner, crops: torch.Tensor, boxes: np.ndarray, images: torch.Tensor, *, target: int,
         n_concepts: int, n_top: int, n_designs: int, sampler: str, max_iter: int, tol: float, seed: int,
         parent: tuple[str, int] | None) -> CRAFTResult:
    if n_concepts > crops.shape[0]:
        raise InputError(f"craft: n_concepts={n_concepts} exceeds the {crops.shape[0]} crops; use more crops "
                         "(n_crops=...) or fewer concepts.")
    try:
        a_crops = runner.activations(crops, target)
    except RuntimeError as exc:  # a crop the model cannot take (a Linear head after resize=False, most often)
        if tuple(crops.shape[2:]) != tuple(images.shape[2:]):
            hint = ("Crops kept at their own size (resize=False) need a model that takes any image size (fully "
                    "convolutional, global pooling); use resize=True otherwise.")
        else:  # crops of the images' own size: resize=False is not the cause
            hint = (f"The crops have the images' shape {tuple(images.shape[1:])}: check that the model takes "
                    "images x channels x height x width.")
        raise InputError(f"craft: the model fails on the crops (shape {tuple(crops.shape)}): {exc}. {hint}") from exc
    if n_concepts > a_crops.shape[1]:
        raise InputError(f"craft: n_concepts={n_concepts} exceeds the {a_crops.shape[1]} channels of layer "
                         f"{runner.path!r}; concepts are non-negative directions in that space, so use at most "
                         f"{a_crops.shape[1]} concepts (or a wider layer).")
    pooled = _pooled(a_crops)
    if not np.any(pooled > 0):
        # a dead layer (every ReLU unit off on every crop) gave all-zero "concepts", importances 0
        # and a reconstruction error 0, as if the factorisation had succeeded
        raise InputError(f"craft: layer {runner.path!r} outputs only zeros on all {crops.shape[0]} crops (dead "
                         "units, or a layer the crops do not reach); there is nothing to factorise. Name another "
                         "layer, or check the images' scale.")
    fit = nmf(pooled, n_concepts, max_iter=max_iter, tol=tol, seed=seed)
    a_img = runner.activations(images)
    st, se, coeffs = _importance(runner, images, a_img, fit.W, target, n_designs, sampler, seed)
    n_img = st.shape[0]
    imp = st.mean(axis=0)
    if n_img == 1:
        stderr = se[0]
    else:
        stderr = st.std(axis=0, ddof=1) / np.sqrt(n_img)
        if n_img <= _FEW_IMAGES:
            # 1-2 degrees of freedom: the spread over images alone is too noisy (95% intervals
            # covered 0.71-0.83 at 2-3 images, review rev35b); the images' own estimator errors,
            # pooled, bound it from below (conservative: ~2x wide from 4 images on)
            stderr = np.maximum(stderr, np.sqrt((se**2).sum(axis=0)) / n_img)
    k = min(n_top, crops.shape[0])
    top = np.argsort(-fit.U, axis=0, kind="stable")[:k].T
    return CRAFTResult(
        layer=runner.path, target=target, concepts=fit.W, importances=imp, stderr=stderr,
        image_importances=st, coefficients=fit.U, crops=crops.float().numpy(), crop_boxes=boxes,
        top_crops=top, concept_maps=_maps(coeffs, a_img, (images.shape[2], images.shape[3])),
        images=images.float().numpy(), reconstruction_error=fit.error, nmf_iterations=fit.n_iter,
        nmf_converged=fit.converged, n_designs=n_designs, n_evals=runner.n_evals, parent=parent)


def _common_checks(model: Any, target: Any, n_concepts: Any, n_designs: Any, n_top: Any, sampler: str,
                   batch_size: Any, channel_axis: Any = None, seed: Any = 0) -> None:
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(f"craft needs a torch.nn.Module (it hooks a layer); got {type(model).__name__}.")
    _check_int("target", target, 0)
    _check_int("n_concepts", n_concepts, 1)
    _check_int("n_designs", n_designs, 2)
    _check_int("n_top", n_top, 1)
    _check_int("batch_size", batch_size, 1)
    if seed is not None:  # a negative or float seed reached numpy ("expected non-negative integer")
        _check_int("seed", seed, 0)
    if sampler not in ("sobol", "random"):
        raise InputError(f"craft: sampler={sampler!r} must be 'sobol' or 'random'.")
    if channel_axis is not None and (isinstance(channel_axis, (bool, np.bool_))
                                     or not isinstance(channel_axis, (int, np.integer))):
        raise InputError(f"craft: channel_axis={channel_axis!r} must be an int axis (1 or -1) or None.")


# ---------------------------------------------------------------------------- public


@register_analysis("craft", kind="concept", paper=_PAPER)
def craft(
    model: torch.nn.Module,
    images: Any,
    *,
    layer: str,
    target: int,
    n_concepts: int = 10,
    n_crops: int = 16,
    crop_size: int | None = None,
    resize: bool = True,
    n_designs: int = 32,
    n_top: int = 6,
    sampler: str = "sobol",
    max_iter: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
    batch_size: int = 64,
    channel_axis: int | None = None,
) -> CRAFTResult:
    """Discover the concepts of class ``target`` at ``layer`` by NMF on image crops, rank them by
    Sobol indices and map them onto the images (Fel et al. 2023).

    Args:
        model: a ``torch.nn.Module`` mapping ``images x C x H x W`` to ``images x classes`` logits.
        images: ``images x C x H x W`` images of the class (float).
        layer: module path whose output is factorised; its activations must be non-negative
            (the output of a ReLU) and the module must run once per forward pass (a reused
            module, such as torchvision's ``BasicBlock.relu``, is refused). A spatial map ``p x h x w`` is averaged over space for the
            crops and projected per position for the maps.
        target: class (output column) explained.
        n_concepts: number of concepts ``r``, default=10.
        n_crops: random crops per image, default=16.
        crop_size: crop side in pixels, default=half the image's shorter side.
        resize: resize crops to the image size (bilinear) as in the paper, default=True;
            ``False`` feeds them at their own size, keeping objects at their scale (for fully
            convolutional models with global pooling).
        n_designs: Sobol designs ``N`` per image (powers of two keep the sequence balanced),
            default=32.
        n_top: top crops kept per concept, default=6.
        sampler: ``"sobol"`` (scrambled QMC) or ``"random"``, default="sobol".
        max_iter, tol: NMF sweeps and tolerance (:func:`tribute.methods._nmf.nmf`),
            default=500 and 1e-6.
        seed: seed of the crop positions and Sobol designs, default=0 (local generators; a numpy
            integer too; None: fresh draws).
        batch_size: rows per forward pass, default=64.
        channel_axis: the axis of the layer's 4-D output that holds the channels (``1`` for
            ``batch x channels x h x w``, ``3`` or ``-1`` for a channels-last stage's ``batch x h x w
            x channels``, as in Swin). default=None: told as :func:`tribute.tcav` tells it with
            ``spatial="mean"`` (by the channel count the model set for that output, else by the
            layer's type, else PyTorch's image layout, axis 1).

    Returns:
        :class:`CRAFTResult`; ``result.plot()`` draws top crops, importances and a concept map.
    """
    _common_checks(model, target, n_concepts, n_designs, n_top, sampler, batch_size, channel_axis, seed)
    _check_int("n_crops", n_crops, 1)
    x = _as_images(images, model)
    side = min(x.shape[2], x.shape[3])
    size = max(1, side // 2) if crop_size is None else _check_int("crop_size", crop_size, 1)
    if size > side:
        raise InputError(f"craft: crop_size={size} exceeds the images' shorter side {side} "
                         f"(images {tuple(x.shape[1:])}); use a crop_size <= {side}.")
    runner = _Runner(model, layer, int(batch_size), None if channel_axis is None else int(channel_axis))
    if not bool(torch.isfinite(x.to(runner.dtype)).all()):
        # rev52c: finite images past the model's dtype (1e5 for a float16 model) became inf in the
        # forward passes and were refused as "nmf: a holds NaN or inf values"
        raise InputError(f"craft: images hold values outside the range of the model's {runner.dtype} (largest "
                         f"|value| {float(x.abs().max()):.3g} in {x.dtype}); rescale them.")
    crops, boxes = _random_crops(x, int(n_crops), size, seed, bool(resize))
    with eval_mode(model):
        return _fit(runner, crops, boxes, x, target=int(target), n_concepts=int(n_concepts), n_top=int(n_top),
                    n_designs=int(n_designs), sampler=sampler, max_iter=max_iter, tol=tol, seed=seed, parent=None)


def _check_earlier(runner: _Runner, parent_module: torch.nn.Module, parent: str, x: torch.Tensor) -> None:
    """Refuse ``runner``'s layer unless its output is computed before ``parent``'s in a forward
    pass of ``x`` (one image, counted in ``n_evals``): a later layer (or a block holding the
    parent layer, whose output comes after it) accepted before gave no sub-concepts of anything."""
    order = runner.forward_order(parent_module, x)
    if "layer" in order and "parent" in order and order.index("layer") > order.index("parent"):
        raise InputError(
            f"craft_decompose: layer={runner.path!r} runs after {parent!r}, the layer the concepts were found at "
            f"(forward order: {', '.join(dict.fromkeys(order))}); sub-concepts live at an EARLIER layer: name a "
            f"module computed before {parent!r}.")


def craft_decompose(
    model: torch.nn.Module,
    result: CRAFTResult,
    concept: int,
    *,
    layer: str,
    n_concepts: int = 3,
    top_fraction: float = 0.25,
    n_designs: int = 32,
    n_top: int = 6,
    sampler: str = "sobol",
    max_iter: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
    batch_size: int = 64,
    channel_axis: int | None = None,
) -> CRAFTResult:
    """Split ``concept`` of ``result`` into sub-concepts at an earlier ``layer`` (CRAFT's recursion).

    The crops that express the concept most (the top ``top_fraction`` of ``result.coefficients[:,
    concept]``, at least ``n_concepts + 1`` of them) are factorised again at ``layer``; the
    sub-concepts' importances are total Sobol indices for ``result.target`` on ``result.images``
    at that layer, and their maps are computed the same way (Fel et al. 2023, Sec. 3.2).

    Args:
        model: the model ``result`` came from.
        result: a :class:`CRAFTResult`.
        concept: index of the concept to split.
        layer: an earlier module path (non-negative activations): its output must be computed
            before ``result.layer``'s in a forward pass (a later layer is refused).
        n_concepts: number of sub-concepts, default=3.
        top_fraction: share of the crops kept, in (0, 1], default=0.25.
        n_designs, n_top, sampler, max_iter, tol, seed, batch_size: as for :func:`craft`.
        channel_axis: as for :func:`craft`, for ``layer``'s output. default=None.

    Returns:
        :class:`CRAFTResult` with ``parent=(result.layer, concept)``.
    """
    if not isinstance(result, CRAFTResult):
        raise InputError(f"craft_decompose: result must be a CRAFTResult; got {type(result).__name__}.")
    _common_checks(model, result.target, n_concepts, n_designs, n_top, sampler, batch_size, channel_axis, seed)
    if isinstance(concept, bool) or not isinstance(concept, (int, np.integer)) or not 0 <= concept < result.n_concepts:
        raise InputError(f"craft_decompose: concept={concept!r} must be a concept index in 0..{result.n_concepts - 1}.")
    if isinstance(top_fraction, (bool, str, bytes)) or not isinstance(top_fraction, (int, float, np.number)) \
            or not 0.0 < float(top_fraction) <= 1.0:  # a string raised float()'s bare ValueError
        raise InputError(f"craft_decompose: top_fraction={top_fraction!r} must be in (0, 1].")
    runner = _Runner(model, layer, int(batch_size), None if channel_axis is None else int(channel_axis))
    if runner.path == result.layer:
        raise InputError(f"craft_decompose: layer={layer!r} is the layer the concepts were found at; name an "
                         "earlier layer to split a concept into sub-concepts.")
    _, parent_module = find_layer(model, result.layer, "craft_decompose")
    with eval_mode(model):
        _check_earlier(runner, parent_module, result.layer, torch.from_numpy(result.images[:1]))
    n = result.coefficients.shape[0]
    k = min(n, max(int(n_concepts) + 1, int(np.ceil(float(top_fraction) * n))))
    keep = np.sort(np.argsort(-result.coefficients[:, concept], kind="stable")[:k])
    crops = torch.from_numpy(result.crops[keep])
    with eval_mode(model):
        return _fit(runner, crops, result.crop_boxes[keep], torch.from_numpy(result.images),
                    target=result.target, n_concepts=int(n_concepts), n_top=int(n_top),
                    n_designs=int(n_designs), sampler=sampler, max_iter=max_iter, tol=tol, seed=seed,
                    parent=(result.layer, int(concept)))
