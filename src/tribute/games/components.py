"""Component games: players are units of named modules (neurons, channels, attention heads).

The same game as for features, with other players: a coalition ``S`` says which units keep
their activation; the others are *ablated* (replaced by zero, by their mean over a reference
batch, by activations of resampled reference rows, or by their activation on a counterfactual
input — activation patching). ``v(S)`` is the explained output of the model run with that
edit. Every estimator that only uses ``game.value`` / ``game.value_and_grad`` / ``full()`` /
``empty()`` works unchanged:

================================  ===============================================================
estimator on a component game     what it is called elsewhere
================================  ===============================================================
``feature_ablation``              activation patching / leave-one-out ablation (exact)
``exact_shapley``, ``kernel_shap``  neuron Shapley / component Shapley values
``coar``                          COAR (Shah, Ilyas & Madry 2024): regression on random ablations
``input_x_gradient`` / ``atp``    attribution patching (AtP, Nanda 2023): mask gradient at m=1;
                                  with ``ablation="zero"`` this is Captum's layer
                                  gradient x activation summed over each unit's elements
``integrated_gradients``          IG along the mask: Captum's layer integrated gradients whose
                                  baseline is the ablation value (zero, or the counterfactual's
                                  layer activation with ``ablation="patch"``)
``atp_star``                      AtP* (Kramár et al. 2024): AtP + GradDrop, and the QK fix
                                  (exact softmax) for query/key head players
``conductance``                   Captum's layer conductance (input-path integral per unit; equal
                                  to Captum's with ``method="riemann_trapezoid"``)
``layer_grad_cam``                Grad-CAM channel weight x activation mass per unit (Captum's
                                  ``LayerGradCam(attr_dim_summation=False)`` summed over space)
================================  ===============================================================

Definitions vs Captum: a unit's credit is the sum over the unit's elements (a neuron of a
``(batch, tokens, features)`` output spans all tokens; a channel spans its map). Layer IG in
Captum integrates along the straight line between the layer activations of the baseline input
and of the input; the mask path ``a + m (act - a)`` is that line when the ablation value ``a``
is the layer activation of the baseline input (``ablation="patch"``, ``counterfactual=`` the
baseline), and with ``ablation="zero"`` it is layer IG from a zero activation (which no input
baseline need produce). Parity is tested for both.

The mask relaxation is ``act' = a + m * (act - a)`` per unit (``a`` the ablation value), so
``d v / d m`` at ``m = 1`` is ``(act - a) . d v / d act`` summed over the unit's elements.

Rows: for ``K`` coalitions and ``B`` inputs the engine evaluates ``B x K`` rows (``x M`` with a
resample set of ``M`` rows), each row a copy of its input carrying its own coalition: a forward
hook reads the row's mask and edits the activation of every row at once. Hooks are installed for
each evaluation and removed afterwards, also after an exception. Coalition values (no gradients,
no extra model arguments) use the engine's block mode (issue #9): rows of many forward passes are
composed at once, and before each pass the engine's ``chunk`` callback points the hooks at that
pass's slice of the block's masks, samples and reference rows — the model and the hooks see the
same chunks as in a per-chunk run, so the values are bit-identical.

Query/key heads are players too: ``unit="head"`` on the ``query``/``key`` projection of an
attention module splits its output per head (the head count is read from the parent).

Modules that are called several times in one forward pass (a sentence encoder applied to both
sentences of a pair) get the same mask at every call; ablation values are cached per call.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..attribution import Layout
from ..engine import Engine, Rows, row_signature
from ..errors import InputError, TributeError, UnsupportedModelError, user_stacklevel
from ..models import ModelAdapter, TorchModel, as_model
from ..targets import TargetLike, resolve_target
from ._hooks import RowState, Site, installed
from ._rows import PeriodicRows, SampleIds, repeat_rows, sample_ids, tile_rows
from .base import Game, is_call_error, model_failure_note, one_dimensional_note
from .features import Background, PerSample, _as_tensor, _check_finite, check_input_container
from .sites import (
    ABLATIONS,
    UNITS,
    Ablation,
    as_ablation,
    get_module,
    qk_context_sites,
    refuse_same_module,
    refuse_sequence_first,
    resolve_site,
)

__all__ = [
    "ABLATIONS",
    "UNITS",
    "Ablation",
    "ComponentGame",
    "ComponentSet",
    "Site",
    "components",
]

if TYPE_CHECKING:
    from .sae import SAE


def components(model: torch.nn.Module, modules: str | Sequence[str] | None = None, unit: str = "neuron", *,
               num_heads: int | None = None, ablation: str | Ablation = "zero",
               reference: Any = None, counterfactual: Any = None, n_resample: int = 16,
               seed: int = 0, sae: SAE | None = None,
               counterfactual_kwargs: dict[str, Any] | None = None) -> ComponentSet:
    """Players that are units of named modules; pass the result as ``players=`` to ``explain``.

    Args:
        model: the torch module (the one passed to :func:`tribute.explain`).
        modules: a module path (``"encoder.layer.3.attention.self"``, ``"fc1"``) or a list of
            paths; several modules form one player set (players in the order given).
        unit: ``"neuron"`` (last axis of the output, e.g. a Linear's features; one unit spans all
            token positions), ``"channel"`` (axis 1, Conv layers) or ``"head"`` (attention heads:
            ``nn.MultiheadAttention`` — the per-head context before ``out_proj`` —, a module
            returning the concatenated heads' context such as Hugging Face
            ``BertSelfAttention``, or an attention module with a ``num_heads``-like attribute
            and an output projection child (``o_proj``/``c_proj``/``out_proj``/``dense``/``o``/``out_lin``: its
            input is split); a path above one attention module, e.g. ``"encoder.layer.3"``,
            is resolved to it). A query/key/value projection inside an attention module
            (``q_proj``, ``key``, ...) splits its output per head (a grouped-query ``k_proj`` /
            ``v_proj``: its key-value heads); a fused one (``c_attn``, ``query_key_value``,
            ``qkv_proj``, or any projection wider than the heads) is refused. default="neuron".
        num_heads: heads for ``unit="head"`` when the module has no ``num_heads`` /
            ``num_attention_heads`` attribute; the module's *output* is split into that many
            chunks of its last axis (for a module with an output-projection child, e.g.
            ``o_proj``, that projection's *input*: its output mixes the heads); on an attention
            module or its query/key/value projections it may only repeat the count read there.
            default=None.
        ablation: ``"zero"``, ``"mean"``, ``"resample"``, ``"patch"``, or an :class:`Ablation`.
            ``explain(..., ablation=...)`` overrides it. default="zero".
        reference: reference inputs for ``mean``/``resample`` (default: the explained inputs).
        counterfactual: corrupted inputs for ``patch`` (one per sample). Counterfactual row ``i``
            runs with input ``i``'s ``forward_args``/``forward_kwargs`` unless
            ``counterfactual_kwargs`` replaces them; a counterfactual padded differently needs
            its own attention mask: ``counterfactual_kwargs={"attention_mask": mask_cf}``, or
            masks as inputs: ``explain(model, (ids, mask), ...)`` with
            ``counterfactual=(ids_cf, mask_cf)``.
        n_resample: reference rows averaged over for ``resample``. default=16.
        seed: seed of the resample draw. default=0.
        sae: a :class:`tribute.SAE` (sparse autoencoder or transcoder attached at a module):
            the players are its latents plus its reconstruction error (see
            :mod:`tribute.games.sae`; the result is then a ``SAEComponentSet``); give it instead
            of ``modules``. default=None.
        counterfactual_kwargs: model keyword arguments for the counterfactual run of ``patch``
            (see :class:`Ablation`); ``{}`` keeps the inputs' ``forward_kwargs`` on purpose.
            default=None: the inputs' kwargs, with a warning when ``forward_kwargs`` hold
            per-sample tensors (per-sample ``forward_args`` always warn: pass them as inputs).

    Example:
        >>> heads = tribute.components(bert, [f"encoder.layer.{i}.attention.self" for i in range(6)],  # doctest: +SKIP
        ...                            unit="head")
        >>> attr = tribute.explain(bert, ids, method="feature_ablation", players=heads,  # doctest: +SKIP
        ...                        target=lambda out: out[:, 0, 0])
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(
            f"components(model=...) needs a torch.nn.Module, got {type(model).__name__}; "
            "component players are units of the module's submodules."
        )
    if sae is not None:  # SAE / transcoder latents as players (issue #16): tribute.games.sae
        if modules is not None:
            raise InputError(f"components(modules={modules!r}, sae=...): give either modules or sae, not both.")
        from .sae import sae_features

        return sae_features(model, sae, ablation=ablation, reference=reference, counterfactual=counterfactual,
                            n_resample=n_resample, seed=seed, counterfactual_kwargs=counterfactual_kwargs)
    if modules is None:
        raise InputError("components(model, modules): give a module path (or a list), or sae=tribute.SAE(...).")
    given = [modules] if isinstance(modules, (str, torch.nn.Module)) else modules
    objects = [m for m in given if isinstance(m, torch.nn.Module)] if isinstance(given, (list, tuple)) else []
    if objects:
        # aud44c: components(net, net.out) raised "TypeError: 'Linear' object is not iterable"
        paths = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        seen = [f"{type(m).__name__} ({paths[id(m)]!r})" if id(m) in paths
                else f"{type(m).__name__} (not a submodule of the model)" for m in objects]
        fix = [paths.get(id(m), m) if isinstance(m, torch.nn.Module) else m for m in given]
        hint = (f"components(model, {fix[0]!r})" if len(fix) == 1 else f"components(model, {fix!r})") \
            if all(isinstance(f, str) for f in fix) else "components(model, 'path.to.module')"
        raise InputError(f"modules= takes module paths (strings), not module objects; got {', '.join(seen)}. "
                         f"Pass the paths: {hint}.")
    names = [modules] if isinstance(modules, str) else list(modules)
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"modules={modules!r}: give a module path or a list of module paths.")
    if len(set(names)) != len(names):
        raise InputError(f"modules={names!r} lists a module twice.")
    if unit not in UNITS:
        raise InputError(f"unit={unit!r} is not one of {UNITS}.")
    if num_heads is not None and unit != "head":
        # aud44c: components(net, "attn", num_heads=4) (unit= forgotten) gave neuron players
        # and dropped num_heads= without a word
        raise InputError(f"num_heads={num_heads!r} is read only with unit='head' (got unit={unit!r}); "
                         "pass unit='head' for head players, or drop num_heads=.")
    abl = as_ablation(ablation, reference=reference, counterfactual=counterfactual,
                       n_resample=n_resample, seed=seed, counterfactual_kwargs=counterfactual_kwargs)
    sites = [resolve_site(model, n, unit, num_heads) for n in names]
    if len({s.path for s in sites}) != len(sites):
        raise InputError(f"modules={names!r} resolve to the same module more than once.")
    refuse_same_module(model, sites)
    refuse_sequence_first(model, sites)
    return ComponentSet(model, sites, abl)


class ComponentSet:
    """A player set of module units (see :func:`components`); implements ``PlayerSet``."""

    def __init__(self, model: torch.nn.Module, sites: list[Site], ablation: Ablation) -> None:
        self.model = model
        self.sites = sites
        self.ablation = ablation

    @property
    def modules(self) -> list[str]:
        return [s.name for s in self.sites]

    def __repr__(self) -> str:
        return (f"ComponentSet(modules={self.modules}, unit={self.sites[0].unit!r}, "
                f"ablation={self.ablation.kind!r})")

    def make_game(self, model: ModelAdapter, inputs: Any, *, target: TargetLike = None,
                  baseline: Any = 0.0, output: str = "raw",
                  forward_args: Sequence[Any] | None = None,
                  forward_kwargs: dict[str, Any] | None = None, batch_size: int | None = None,
                  progress: bool | None = None, ablation: Any = None, read_ablation: bool = True,
                  **unknown: Any) -> ComponentGame:
        """Build the :class:`ComponentGame` for ``inputs`` (called by ``tribute.explain``;
        ``read_ablation=False`` for a method that never ablates a unit: see
        :class:`ComponentGame`)."""
        if unknown:
            raise InputError(f"unexpected argument(s) {sorted(unknown)} for a component game.")
        abl = self.ablation
        if ablation is not None:
            if isinstance(ablation, str):
                abl = abl.with_kind(ablation)
            else:
                abl = as_ablation(ablation)
        adapter = model if isinstance(model, ModelAdapter) else as_model(model, "torch")
        if not isinstance(adapter, TorchModel) or adapter.module is None:
            raise UnsupportedModelError(
                "component players need a torch.nn.Module model (hooks on its submodules); got "
                f"{type(adapter).__name__}."
            )
        if adapter.module is not self.model:
            for s in self.sites:  # a different (e.g. wrapping) module: the paths must still resolve
                get_module(adapter.module, s.path)
        sites = [Site(s.name, s.path, s.unit, s.kind, s.num_heads) for s in self.sites]
        refuse_same_module(adapter.module, sites)
        refuse_sequence_first(adapter.module, sites)
        return ComponentGame(adapter, inputs, sites, abl, target=target, baseline=baseline,
                             output=output, forward_args=forward_args,
                             forward_kwargs=forward_kwargs, batch_size=batch_size,
                             progress=progress, read_ablation=read_ablation)


def _as_input_tuple(x: Any, name: str) -> tuple[list[torch.Tensor], bool, str]:
    check_input_container(x, name)  # a PackedSequence is a tuple (small44)
    multi = isinstance(x, (tuple, list))
    raw = list(x) if multi else [x]
    if not raw:
        raise InputError(f"{name} is an empty tuple; pass at least one tensor.")
    out, framework = [], "torch"
    for i, v in enumerate(raw):
        t, fw, _ = _as_tensor(v, f"{name}[{i}]" if multi else name)
        if i == 0:
            framework = fw
        if t.ndim == 0 or t.shape[0] == 0:
            raise InputError(f"{name}{f'[{i}]' if multi else ''} needs a non-empty batch axis first; got shape {tuple(t.shape)}.")
        _check_finite(t, name)
        out.append(t)
    n = out[0].shape[0]
    for i, t in enumerate(out[1:], 1):
        if t.shape[0] != n:
            raise InputError(f"{name}[{i}] has {t.shape[0]} rows but {name}[0] has {n}.")
    return out, multi, framework


#: Bytes per block of a coalition-value run (the engine's default is ``BLOCK_BYTES``, 512 KiB),
#: counting what a block holds: the inputs repeated per coalition, the rows' sample ids and the
#: passes' raw outputs (until the block's values are selected). Each forward pass reads its own
#: slice and the hooks edit the pass's own activations, so larger blocks only mean fewer
#: per-block steps (composing, selecting, the finiteness check, storing): issue #9, eng51,
#: mlp13 neuron patching on 17,800 inputs at 2,048 rows per pass (1,157,000 rows): 186 blocks of
#: ~3 passes at 512 KiB of inputs, 24 at 4 MiB, CPU median of 9 interleaved rounds 323.5 ->
#: 286.4 ms, values bit-identical (same chunks). Before, the raw outputs were not counted: a
#: model returning ``(rows, 128 tokens, 768)`` on token-id rows kept ~200 MB of outputs per block.
_BLOCK_CAP = 4 * 1024**2


class _RunTiles:
    """What the rows of one value run with shared masks repeat (see :meth:`ComponentGame._rows`):
    the masks' periodic tile, the sample-id pattern and zero reference rows."""

    def __init__(self, masks: torch.Tensor, k_count: int) -> None:
        self.masks = PeriodicRows(masks)
        self.ids = SampleIds(k_count, masks.device)
        self._zeros = torch.zeros(0, dtype=torch.long, device=masks.device)

    def zeros(self, n: int) -> torch.Tensor:
        if int(self._zeros.shape[0]) < n:
            self._zeros = torch.zeros(n, dtype=torch.long, device=self._zeros.device)
        return self._zeros[:n]


#: Modules that map the last axis of their input (features), whatever the axes before it hold:
#: on ``(batch, positions, features)`` activations, axis 1 is positions, not channels.
_LAST_AXIS_MODULES: tuple[type[torch.nn.Module], ...] = (
    torch.nn.Linear, torch.nn.Bilinear, torch.nn.Embedding, torch.nn.LayerNorm,
    torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer,
    torch.nn.TransformerEncoder, torch.nn.TransformerDecoder,
    *((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ()),
)


def _feature_shape(mod: torch.nn.Module) -> tuple[int, ...] | None:
    """The trailing axes ``mod`` maps (its features), where the module says: ``out_features``,
    ``embedding_dim``, ``normalized_shape``, ``embed_dim``, a norm's ``weight``; else None."""
    for attr in ("out_features", "embedding_dim", "embed_dim"):
        size = getattr(mod, attr, None)
        if isinstance(size, int):
            return (size,)
    shape = getattr(mod, "normalized_shape", None)
    if isinstance(shape, (tuple, list, torch.Size)) and all(isinstance(n, int) for n in shape):
        return tuple(shape)
    weight = getattr(mod, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 1:
        return (int(weight.shape[0]),)
    return None


def _maps_last_axis(mod: torch.nn.Module, shape: tuple[int, ...]) -> bool:
    """``mod`` maps the trailing axes of its per-sample output ``shape`` and axis 1 lies outside
    them. A subclass with its own ``forward`` may map another axis: Transformers' ConvNext
    ``ConvNextLayerNorm(nn.LayerNorm)`` with ``data_format='channels_first'`` (torchvision's and
    timm's ``LayerNorm2d`` likewise) normalises the channels of a ``(batch, C, H, W)`` output,
    axis 1 (review rev51a: warned that its 8 channels were positions and sent the user to
    ``unit='neuron'``); so do the trailing axes that the module's own sizes do not match."""
    base = next((b for b in _LAST_AXIS_MODULES if isinstance(mod, b)), None)
    own_forward = base is not None and type(mod).forward is not base.forward
    if base is None:
        name = type(mod).__name__  # Transformers' GPT-2 Conv1D (a Linear), *RMSNorm classes
        if not ((name == "Conv1D" and type(mod).__module__.startswith("transformers")) or name.endswith("RMSNorm")):
            return False
    features = _feature_shape(mod)
    if features is None:
        return not own_forward
    if not (len(shape) > len(features) and tuple(shape[len(shape) - len(features):]) == features):
        return False
    # its own forward (a quantised Linear maps the last axis, a channels_first norm axis 1):
    # only where axis 1 cannot be the axes it maps
    return not own_forward or tuple(shape[:len(features)]) != features


def _warn_channel_positions(root: torch.nn.Module, site: Site) -> None:
    """``unit='channel'`` reads axis 1 of the activation. On a module that maps the last axis
    (a Linear in a transformer, output ``(batch, T, features)``) axis 1 is the T positions, so
    the players named "channel j" were token positions without a word (aud51a). Both readings
    are possible: warn, naming both and the spelling of the feature reading; a convolution's
    ``(batch, channels, length)`` output stays silent."""
    if site.unit != "channel" or site.kind != "output" or not site.shapes or len(site.shapes[0]) < 2:
        return
    try:
        mod = root.get_submodule(site.path)
    except AttributeError:
        return
    shape = site.shapes[0]
    if not _maps_last_axis(mod, shape):
        return
    warnings.warn(
        f"unit='channel' on {site.name!r} ({type(mod).__name__}): channels are axis 1 of its output, "
        f"per-sample shape {shape}, so the {shape[0]} players 'channel j' are the {shape[0]} positions "
        f"along axis 1 (e.g. tokens), each spanning all {shape[-1]} features. A {type(mod).__name__} maps "
        f"the last axis: for its {shape[-1]} features as players (each spanning all positions) use "
        f"unit='neuron'. If positions are the players you mean, keep unit='channel' and ignore this warning.",
        UserWarning, stacklevel=user_stacklevel())


class ComponentGame(Game):
    """Players are units of modules; a coalition keeps its units, the rest are ablated.

    Args:
        model: adapted torch model.
        inputs: model inputs (tensor or tuple), passed unchanged (token ids are fine).
        sites: resolved hook sites (from :func:`components`).
        ablation: the :class:`Ablation`.
        target, output: see :mod:`tribute.targets`.
        baseline: the *input* baseline of input-path methods (``conductance``); scalar or one
            per input. default=0.0.
        forward_args, forward_kwargs: extra model arguments (tensors with the batch first are
            indexed per row).
        batch_size, progress: engine settings.
    """

    kind = "component"
    player_kind = "component"
    #: v(S) is a function of S (the resample rows are drawn once per game): a coalition that
    #: shared masks hold twice runs once (aud50c: COAR's default 256 draws over 7 units sent
    #: 768 rows for 3 inputs where 101 distinct coalitions needed 303)
    distinct_coalitions = True

    def __init__(self, model: TorchModel, inputs: Any, sites: list[Site], ablation: Ablation, *,
                 target: TargetLike = None, baseline: Any = 0.0, output: str = "raw",
                 forward_args: Sequence[Any] | None = None,
                 forward_kwargs: dict[str, Any] | None = None, batch_size: int | None = None,
                 progress: bool | None = None, read_ablation: bool = True) -> None:
        xs, multi, framework = _as_input_tuple(inputs, "inputs")
        batch = int(xs[0].shape[0])
        model.adopt_device(xs[0].device)
        self.model = model
        assert model.module is not None
        self.module: torch.nn.Module = model.module
        user_dtype = next((t.dtype for t in xs if t.dtype.is_floating_point), torch.float32)
        self.compute_dtype = model.compute_dtype(user_dtype)
        device = model.device
        self.inputs = [t.to(device) if not t.dtype.is_floating_point
                       else t.to(device=device, dtype=self.compute_dtype) for t in xs]
        self.multi_input = multi
        self.sites = sites
        self.ablation = ablation
        #: False: the method never ablates a unit (conductance, layer_grad_cam), so the
        #: ablation values are not made (no reference / counterfactual pass, none charged)
        self.read_ablation = bool(read_ablation)
        self.forward_args = tuple(forward_args or ())
        self.forward_kwargs = dict(forward_kwargs or {})
        self.baseline = baseline
        #: whether a method read ``baseline`` (:meth:`input_baselines`); the others ablate units
        self.baseline_read = False
        self.state = RowState()
        # rows [first, ...) last composed by _rows: first row, masks (None: sliced per pass
        # from the run's tiles), samples, references, tiles
        self._block: tuple[int, torch.Tensor | None, torch.Tensor, torch.Tensor,
                           _RunTiles | None] | None = None
        engine = Engine(model, None, batch_size=batch_size, progress=progress)
        # the rows are the model inputs: the same tuned size as feature games on these inputs
        engine.tune_key = row_signature(
            [*self.inputs, *self.forward_args, *self.forward_kwargs.values()], batch)

        # ---------------------------------------------------------- reference pass
        ref_out, acts = self._capture(engine, self.inputs, per_sample=True, what="inputs")
        offset = 0
        for i, site in enumerate(sites):
            calls = acts.get(i, {})
            if not calls:
                raise UnsupportedModelError(
                    f"module {site.path!r} was not called during the forward pass, so its units "
                    "cannot be players. Check the module path (is it used by forward()?) or whether "
                    "a fused kernel bypasses it."
                )
            site.shapes = [tuple(int(d) for d in calls[c].shape[1:]) for c in sorted(calls)]
            counts = {site.units_of(sh) for sh in site.shapes}
            if len(counts) != 1:
                raise UnsupportedModelError(
                    f"module {site.path!r} is called {site.n_calls} times per forward pass with "
                    f"different unit counts {sorted(counts)}; its units are not well defined."
                )
            site.n_units = counts.pop()
            site.offset = offset
            offset += site.n_units
            _warn_channel_positions(self.module, site)
        self.clean_acts = acts
        names = [self._unit_name(s, j) for s in sites for j in range(s.n_units)]

        tgt = resolve_target(target, output, ref_out, batch, model.output_kind,
                             assumed=model.output_assumed)
        engine.target = tgt
        # integer inputs (token ids) have no dtype of their own: results take the model's
        # compute dtype (float64 credits of a float64 model, not float32)
        out_dtype = user_dtype if any(t.dtype.is_floating_point for t in xs) else self.compute_dtype
        layout = Layout(input_shapes=(), dense=False, multi_target=tgt.multi, framework=framework,
                        device=str(xs[0].device), dtype=str(out_dtype).replace("torch.", ""),
                        multi_input=False)
        if framework == "numpy":
            layout = Layout(**{**layout.__dict__, "dtype": "float64"})
        self.differentiable = bool(model.differentiable)
        # math.prod: the same integers as np.prod (~8 us hot per shape less, issue #9)
        act_bytes = sum(math.prod(sh) for s in sites for sh in s.shapes)
        in_bytes = sum(math.prod(t.shape[1:]) * t.element_size() for t in self.inputs)
        self.row_bytes = in_bytes + 4 * act_bytes * torch.finfo(self.compute_dtype).bits // 8
        self._in_bytes = in_bytes
        #: bytes of one row's raw model output: a block keeps its passes' raw outputs until it
        #: selects the explained values (a text model's ``(rows, tokens, hidden)`` output is far
        #: bigger than its token-id rows), so blocks are sized by both (see ``_BLOCK_CAP``)
        self._out_bytes = math.prod(ref_out.shape[1:]) * ref_out.element_size()

        super().__init__(engine, tgt, layout, names, batch)
        self.reference_output = ref_out
        self._set_reference(tgt.select(ref_out, torch.arange(batch, device=ref_out.device)).detach().double().cpu())
        self._prepare_ablation()

    # ------------------------------------------------------------------ naming
    @staticmethod
    def _unit_name(site: Site, j: int) -> str:
        return f"{site.name} {site.unit} {j}"

    @property
    def n_modules(self) -> int:
        return len(self.sites)

    def site_keys(self) -> list[str]:
        """What each site hooks, as ``path|unit|kind|heads``: two games with equal keys ablate
        the same units, whatever names the user typed (``"block"`` or ``"block.attn"``)."""
        return [f"{s.path}|{s.unit}|{s.kind}|{s.num_heads}" for s in self.sites]

    def module_of_player(self) -> list[str]:
        """The module name of each player."""
        return [s.name for s in self.sites for _ in range(s.n_units)]

    # ------------------------------------------------------------------ rows
    def _pick(self, v: Any, b: torch.Tensor) -> Any:
        if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == self.n_samples_raw:
            return v.to(self.model.device)[b.to(self.model.device)]
        if isinstance(v, np.ndarray) and v.ndim > 0 and v.shape[0] == self.n_samples_raw:
            return v[b.cpu().numpy()]
        return v

    @property
    def n_samples_raw(self) -> int:
        return int(self.inputs[0].shape[0])

    def _extras(self, b: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (tuple(self._pick(a, b) for a in self.forward_args),
                {k: self._pick(v, b) for k, v in self.forward_kwargs.items()})

    def _has_per_sample_extras(self) -> bool:
        n = self.n_samples_raw
        vals = [*self.forward_args, *self.forward_kwargs.values()]
        return any(isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0 and v.shape[0] == n for v in vals)

    def _capture(self, engine: Engine, xs: list[torch.Tensor], *, per_sample: bool, what: str,
                 kwargs: dict[str, Any] | None = None,
                 ) -> tuple[torch.Tensor, dict[int, dict[int, torch.Tensor]]]:
        """Run ``xs`` through the model unedited; return raw outputs and activations per site/call.

        ``kwargs`` replaces the ``forward_kwargs`` of the same names (per-sample rows picked as
        the inputs' are).
        """
        n = int(xs[0].shape[0])
        if not per_sample and self._has_per_sample_extras():
            # also with as many rows as the inputs: reference row i is not input i, and running
            # it with input i's attention mask (say) silently gives other activations
            raise InputError(
                f"{what} has {n} rows, but forward_args/forward_kwargs hold per-sample tensors of "
                f"the inputs ({self.n_samples_raw} rows), which do not belong to its rows; pass "
                "those tensors as part of the inputs (a tuple) so the reference carries its own "
                "(wrapping the model as forward(ids, mask) if its second positional argument is "
                "not the mask, e.g. GPT-2's past_key_values)."
            )
        device = self.model.device
        outs: list[torch.Tensor] = []
        state = self.state
        state.captured = {}

        def build(start: int, stop: int) -> Rows:
            b = torch.arange(start, stop, device=device)
            state.new_pass(len(self.sites))
            state.rows = stop - start
            extra, kw = self._extras(b)
            if kwargs:
                kw = {**kw, **{k: self._pick(v, b) for k, v in kwargs.items()}}
            # index_select: the same gather as x[b] (fresh, contiguous), ~5 us hot less per input
            return Rows(inputs=tuple(x.index_select(0, b) for x in xs), sample=b, extra=extra, kwargs=kw)

        def select(out: torch.Tensor, rows: Rows) -> torch.Tensor:
            outs.append(out.detach())
            return torch.zeros(out.shape[0], 1, device=out.device)

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            return None

        state.mode = "capture"
        with installed(self.module, self.sites, state):
            state.mode = "capture"
            # its values are zeros, not the explained output: no batch check here (it marked the
            # model checked without checking it, aud48c); the game's own passes check it
            # rev51z: 1-D inputs (X[0] of a table) get the feature game's hint here too (it said
            # nothing of them; a module's activation was sent to batch_first=True)
            one_d = one_dimensional_note(n, what) if all(x.ndim == 1 for x in xs) else ""
            state.rows_hint = one_d
            try:
                engine.run(n, build, sink, row_bytes=max(1, sum(math.prod(x.shape[1:]) * 4 for x in xs)),
                           desc=f"caching activations ({what})", select=select, check=False)
            except (TributeError, torch.cuda.OutOfMemoryError):
                raise  # said by the engine or a hook; not a shape or dtype problem
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:
                # aud50c: a batch norm without running statistics on one input raised torch's raw
                # "ValueError: Expected more than 1 value per channel when training"; aud51a: a
                # missing forward keyword was sent to the inputs' shape, an out-of-vocabulary
                # token id raised a raw IndexError
                shapes = ", ".join(str(tuple(x.shape)) for x in xs)
                kw_all = {**self.forward_kwargs, **(kwargs or {})}
                note = model_failure_note(self.module, exc, xs, what=what, kwargs=kw_all,
                                          n_args=len(self.forward_args))
                # (as the feature game: not for a missing forward argument, rev51a)
                hint = "" if not one_d or is_call_error(self.module, exc, kw_all) else one_d + " "
                raise InputError(f"the model failed on the {what} (shapes {shapes}): {exc}. {hint}{note}") from exc
            finally:
                state.rows_hint = ""
        captured = state.captured
        state.captured = {}
        # the chunks are the hooks' own clones: one contiguous chunk is what torch.cat would copy
        # it to (same values, strides, fresh memory), so it is kept as it is (issue #9)
        acts = {s: {c: chunks[0] if len(chunks) == 1 and chunks[0].is_contiguous() else torch.cat(chunks)
                    for c, chunks in calls.items()} for s, calls in captured.items()}
        for calls in acts.values():
            for c, t in calls.items():
                if t.shape[0] != n:
                    raise UnsupportedModelError(
                        f"a hooked module was called a varying number of times per forward pass "
                        f"(call {c} saw {t.shape[0]} of {n} rows); component games need a fixed "
                        "call pattern."
                    )
        return torch.cat(outs), acts

    # ------------------------------------------------------------------ ablation values
    def _prepare_ablation(self) -> None:
        abl = self.ablation
        unread = abl.unread()
        if unread:
            readers = {"reference": "ablation='mean' or 'resample'", "counterfactual": "ablation='patch'"}
            warnings.warn(
                f"ablation={abl.kind!r} does not read {' or '.join(f'{u}=' for u in unread)}; "
                f"it is ignored (only {' / '.join(readers[u] for u in unread)} read it). Drop it, or "
                "pick the ablation that uses it.",
                UserWarning, stacklevel=user_stacklevel(),
            )
        self.n_background = 1
        #: model passes per input made here besides v(N) (``patch``: the counterfactual's capture;
        #: ``mean``/``resample`` with ``reference=``: its rows, ``ceil(rows / inputs)``)
        self.capture_evals = 0
        #: what those passes were (for a budget refusal)
        self.capture_what = "the counterfactual's capture pass (ablation='patch')"
        self._abl_values: dict[int, dict[int, torch.Tensor]] = {}
        if abl.kind == "zero":
            self.state.ablate = None
            return
        if not self.read_ablation:
            # the given reference / counterfactual is still checked (no model pass); a value run
            # would need the ablation values, which were not made: refused, never zero-filled
            if abl.kind == "patch":
                self._check_like(_as_input_tuple(abl.counterfactual, "counterfactual")[0], "counterfactual",
                                 same_batch=True)
            elif abl.reference is not None:
                self._check_like(_as_input_tuple(abl.reference, "reference")[0], "reference", same_batch=False)
            self.state.ablate = self._ablation_not_made
            return
        if abl.kind == "patch":
            cf, _, _ = _as_input_tuple(abl.counterfactual, "counterfactual")
            self._check_like(cf, "counterfactual", same_batch=True)
            cf_kwargs = self._counterfactual_kwargs(abl.counterfactual_kwargs)
            _, acts = self._capture(self.engine, self._to_device(cf), per_sample=True, what="counterfactual",
                                    kwargs=cf_kwargs)
            self._check_shapes(acts, "counterfactual")
            self._abl_values = acts
            self.state.ablate = self._ablate_per_sample
            # one pass of the model per input before any coalition: tribute.explain takes it off
            # the method's budget and adds it to the attribution's n_evals (issue #14)
            self.capture_evals = 1
            return
        if abl.reference is None:
            if self.n_samples == 1:
                warnings.warn(
                    f"ablation={abl.kind!r} without reference= uses the explained inputs as the "
                    "reference; with a single input every ablated unit keeps its own activation "
                    "and all credits are 0. Pass reference=... (a batch of typical inputs).",
                    stacklevel=user_stacklevel(),
                )
            pool = self.clean_acts
        else:
            ref, _, _ = _as_input_tuple(abl.reference, "reference")
            self._check_like(ref, "reference", same_batch=False)
            _, pool = self._capture(self.engine, self._to_device(ref), per_sample=False, what="reference")
            self._check_shapes(pool, "reference")
            # the reference pass ran its rows through the model before any coalition: charged
            # like patch's capture, rounded up per input (aud38c: 10 reference rows for 2 inputs
            # were in n_rows but not in n_evals, and kernel_shap budget=20 ran 25 rows per input)
            m_ref = int(ref[0].shape[0])
            self.capture_evals = -(-m_ref // self.n_samples)
            self.capture_what = (f"the reference pass of ablation={abl.kind!r} ({m_ref} reference rows "
                                 f"over {self.n_samples} input(s))")
        if abl.kind == "mean":
            self._abl_values = {s: {c: t.mean(0, keepdim=True) for c, t in calls.items()} for s, calls in pool.items()}
            self.state.ablate = self._ablate_shared
            return
        # resample: draw n_resample rows of the pool (shared by every sample and coalition)
        m_pool = int(next(iter(next(iter(pool.values())).values())).shape[0])
        g = torch.Generator().manual_seed(int(abl.seed))
        if abl.n_resample <= m_pool:
            idx = torch.randperm(m_pool, generator=g)[: abl.n_resample]
        else:
            idx = torch.randint(m_pool, (abl.n_resample,), generator=g)
        self.resample_rows = idx
        idx_d = idx.to(self.model.device)
        self._abl_values = {s: {c: t[idx_d] for c, t in calls.items()} for s, calls in pool.items()}
        self.n_background = int(abl.n_resample)
        self.state.ablate = self._ablate_per_ref

    def _counterfactual_kwargs(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """Check ``counterfactual_kwargs`` (per-sample tensors have one row per input); warn when
        it is missing and the inputs' extras are per-sample (another mask would go unnoticed)."""
        n = self.n_samples_raw

        def per_sample(v: Any) -> bool:
            return isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0 and v.shape[0] == n

        if any(per_sample(a) for a in self.forward_args):
            # positional extras cannot be replaced by name: only inputs travel with the counterfactual
            warnings.warn(
                "ablation='patch': the counterfactual runs with the inputs' per-sample "
                "forward_args (e.g. their attention mask). If it needs its own, pass those tensors "
                "as inputs: explain(model, (ids, mask), ...) with counterfactual=(ids_cf, mask_cf).",
                UserWarning, stacklevel=user_stacklevel(),
            )
        if given is None:
            if any(per_sample(v) for v in self.forward_kwargs.values()):
                warnings.warn(
                    "ablation='patch': the counterfactual runs with the inputs' per-sample "
                    "forward_kwargs (e.g. their attention mask). If the counterfactual is padded "
                    "differently, pass its own: components(..., counterfactual_kwargs="
                    "{'attention_mask': mask_cf}); pass counterfactual_kwargs={} to keep the inputs' "
                    "kwargs and silence this warning.",
                    UserWarning, stacklevel=user_stacklevel(),
                )
            return {}
        for k, v in given.items():
            rows = v.shape[0] if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0 else None
            if rows is not None and rows not in (1, n):
                raise InputError(
                    f"counterfactual_kwargs[{k!r}] has {rows} rows but there are {n} inputs; give one "
                    "row per counterfactual (the same batch as counterfactual=...), or one row for all."
                )
        return dict(given)

    def _to_device(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        d = self.model.device
        return [t.to(d) if not t.dtype.is_floating_point else t.to(device=d, dtype=self.compute_dtype) for t in xs]

    def _check_like(self, xs: list[torch.Tensor], name: str, same_batch: bool) -> None:
        if len(xs) != len(self.inputs):
            raise InputError(f"{name} has {len(xs)} tensor(s) but the inputs have {len(self.inputs)}; give the same structure.")
        for i, (a, b) in enumerate(zip(xs, self.inputs)):
            if tuple(a.shape[1:]) != tuple(b.shape[1:]):
                raise InputError(
                    f"{name}[{i}] has per-sample shape {tuple(a.shape[1:])} but the inputs have "
                    f"{tuple(b.shape[1:])}; pad/crop it to the inputs' shape (e.g. tokenize both "
                    "with the same max_length) so activations line up."
                )
        if same_batch and xs[0].shape[0] != self.n_samples_raw:
            raise InputError(
                f"{name} has {xs[0].shape[0]} rows but there are {self.n_samples_raw} inputs; give "
                "one counterfactual per sample."
            )

    def _check_shapes(self, acts: dict[int, dict[int, torch.Tensor]], name: str) -> None:
        for i, site in enumerate(self.sites):
            calls = acts.get(i, {})
            shapes = [tuple(calls[c].shape[1:]) for c in sorted(calls)]
            if shapes != site.shapes:
                raise InputError(
                    f"{name}: module {site.path!r} produced activations of shapes {shapes} but "
                    f"{site.shapes} on the inputs; the {name} must give activations of the same shape."
                )

    def _ablation_not_made(self, site: int, call: int, act: torch.Tensor, st: RowState) -> torch.Tensor | None:
        raise RuntimeError(
            f"this component game was built with read_ablation=False, so its ablation={self.ablation.kind!r} "
            "values were never made; build it with read_ablation=True to ablate units.")

    # sites beyond the players (read-only sites of the QK fix) have no ablation value: None
    def _ablate_shared(self, site: int, call: int, act: torch.Tensor, st: RowState) -> torch.Tensor | None:
        vals = self._abl_values.get(site)
        return None if vals is None else vals[call].to(act.dtype)

    def _ablate_per_sample(self, site: int, call: int, act: torch.Tensor, st: RowState) -> torch.Tensor | None:
        vals = self._abl_values.get(site)
        assert st.sample is not None
        return None if vals is None else vals[call][st.sample].to(act.dtype)

    def _ablate_per_ref(self, site: int, call: int, act: torch.Tensor, st: RowState) -> torch.Tensor | None:
        vals = self._abl_values.get(site)
        assert st.ref is not None
        return None if vals is None else vals[call][st.ref].to(act.dtype)

    # ------------------------------------------------------------------ evaluation
    def _decode(self, start: int, stop: int, k_count: int) -> tuple[torch.Tensor, ...]:
        r = torch.arange(start, stop, device=self.model.device)
        mb = self.n_background
        bk = r // mb
        return bk, bk // k_count, bk % k_count, r % mb

    def _rows(self, masks_d: torch.Tensor, shared: bool, k_count: int, start: int, stop: int,
              leaf: bool, tiles: _RunTiles | None = None) -> Rows:
        """Rows ``[start, stop)``: inputs, masks, samples and reference rows, the hooks pointed
        at them. ``tiles`` (shared masks, one reference row, no gradients): this run's
        periodic masks, sample ids and zero reference rows, sliced instead of made per call
        (the hooks only multiply by the masks and index by the ids; nothing writes to them);
        the masks are then sliced per forward pass by :meth:`_chunk` (which the run must call
        before every pass), so the tile covers one pass, not a whole block."""
        m: torch.Tensor | None
        if shared and self.n_background == 1 and k_count > 1:
            # sample-major rows without per-row gathers (the same tensors; see games._rows)
            device = self.model.device
            if tiles is not None:
                if leaf:
                    raise RuntimeError("_rows: tiles are for runs without gradients")
                b, j, m = tiles.ids(start, stop), tiles.zeros(stop - start), None
            else:
                b = sample_ids(start, stop, k_count, device)
                j = torch.zeros(stop - start, dtype=torch.long, device=device)  # r % 1
                m = tile_rows(masks_d, start, stop)
            xs = tuple(repeat_rows(x, start, stop, k_count) for x in self.inputs)
        else:
            bk, b, k, j = self._decode(start, stop, k_count)
            flat = masks_d if shared else masks_d.reshape(-1, masks_d.shape[-1])
            m = flat[k if shared else bk]
            xs = tuple(x[b] for x in self.inputs)
        if leaf:
            assert m is not None
            m = m.detach().clone().requires_grad_(True)
        st = self.state
        st.new_pass(len(self.sites))
        st.mask, st.sample, st.ref = m, b, j
        self._block = (start, m, b, j, tiles)
        extra, kw = self._extras(b)
        return Rows(inputs=xs, sample=b, extra=extra, kwargs=kw, leaves=[m] if leaf and m is not None else [])

    def _check_leaves(self) -> list[torch.Tensor]:
        """The masks the hooks read in the next forward pass, as a gradient leaf: the engine's
        batch check (see :meth:`Engine.run`'s ``check``) then also finds a row whose value moves
        with another row's coalition (a layer mixing the batch after the hooked module, which
        token-id inputs cannot reveal). rev47o / aud48c: a component game's passes were never
        checked; a batch-mean model's neuron credits moved with ``batch_size`` (feature_ablation,
        sample 0, unit 0: -0.0580 at 16, -0.0346 at 64; 0.0 for the input alone)."""
        st = self.state
        if st.mask is None:
            return []
        if not st.mask.requires_grad:  # a gradient run's masks are its leaves already
            st.mask = st.mask.detach().clone().requires_grad_(True)
        return [st.mask]

    @contextlib.contextmanager
    def _dropping_block(self) -> Iterator[None]:
        """Forget the last block's rows when the run ends (also after an exception)."""
        try:
            yield
        finally:
            self._block = None

    def _chunk(self, start: int, stop: int) -> None:
        """Point the hooks at rows ``[start, stop)`` of the rows :meth:`_rows` composed last
        (the engine's per-chunk callback: in block mode one block holds many forward passes)."""
        assert self._block is not None
        first, m, b, j, tiles = self._block
        st = self.state
        st.new_pass(len(self.sites))
        whole = start == first and stop - start == b.shape[0]
        if tiles is not None:  # the pass's masks: a view of the run's periodic tile
            st.mask = tiles.masks(start, stop)
        else:
            assert m is not None
            st.mask = m if whole else m[start - first : stop - first]
        if whole:
            st.sample, st.ref = b, j
        else:
            lo, hi = start - first, stop - first
            st.sample, st.ref = b[lo:hi], j[lo:hi]

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        k_count = int(masks.shape[-2])
        b_total, t_count, mb = self.n_samples, self.n_targets, self.n_background
        masks_d = masks.to(device=self.model.device, dtype=self.compute_dtype)
        out = torch.zeros(b_total * k_count, t_count, dtype=torch.float64)

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            if mb == 1:
                out[start:stop].copy_(vals)  # one op: to the CPU and to float64 (exact)
                return
            v = vals.to("cpu", torch.float64)
            out.index_add_(0, torch.arange(start, stop) // mb, v / mb)

        # shared masks: every block's masks are slices of one tile (no copy per block)
        tiles = _RunTiles(masks_d, k_count) if shared and mb == 1 and k_count > 1 else None
        with installed(self.module, self.sites, self.state), self._dropping_block():
            self.state.mode = "mask"
            self.engine.run(b_total * k_count * mb,
                            lambda s, e: self._rows(masks_d, shared, k_count, s, e, False, tiles),
                            sink,
                            row_bytes=self.row_bytes, desc="coalitions",
                            describe_row=self.describe_rows(k_count, self.n_background, "resample row"),
                            # block mode (issue #9): rows composed per block, the hooks pointed
                            # at each chunk's slice; extra model arguments stay per chunk
                            blocks=not self.forward_args and not self.forward_kwargs,
                            # blocks hold the composed inputs, sample ids and reference rows
                            # (the masks are a view per pass, the activations per pass too),
                            # and the passes' raw outputs until the block's values are selected
                            chunk=self._chunk, block_bytes=self._in_bytes + 16 + self._out_bytes,
                            block_cap=_BLOCK_CAP,
                            check=self._check_leaves)
        return out.reshape(b_total, k_count, t_count)

    def _evaluate_grad(self, masks: torch.Tensor, shared: bool,
                       weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._grad_run(masks, shared, weights, drop_layers=None, drop_of_k=None)

    def _grad_run(self, masks: torch.Tensor, shared: bool, weights: torch.Tensor | None,
                  drop_layers: list[str] | None, drop_of_k: torch.Tensor | None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.differentiable:
            raise UnsupportedModelError("gradients w.r.t. the component mask need a differentiable torch model.")
        k_count = int(masks.shape[-2])
        b_total, t_count, mb, n = self.n_samples, self.n_targets, self.n_background, self.n_players
        masks_d = masks.to(device=self.model.device, dtype=self.compute_dtype)
        vals_out = torch.zeros(b_total * k_count, t_count, dtype=torch.float64)
        if weights is None:
            grad_out = torch.zeros(b_total * k_count, t_count, n, dtype=torch.float64)
        else:
            grad_out = torch.zeros(b_total, t_count, n, dtype=torch.float64)
            w = weights.to(torch.float64)
        drop_d = None if drop_of_k is None else drop_of_k.to(self.model.device)

        def build(start: int, stop: int) -> Rows:
            rows = self._rows(masks_d, shared, k_count, start, stop, True)
            if drop_d is not None:
                self.state.drop = drop_d[self._decode(start, stop, k_count)[2]]
            return rows

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            bk = torch.arange(start, stop) // mb
            vals_out.index_add_(0, bk, vals.to("cpu", torch.float64) / mb)
            g = grads[0].to("cpu", torch.float64) / mb
            if weights is None:
                grad_out.index_add_(0, bk, g)
            else:
                grad_out.index_add_(0, bk // k_count, g * w[bk % k_count][:, None, None])

        with installed(self.module, self.sites, self.state, drop_layers=drop_layers):
            self.state.mode = "mask"
            self.engine.run(b_total * k_count * mb, build, sink, row_bytes=self.row_bytes,
                            grad=True, desc="gradients", describe_row=self.describe_rows(k_count, self.n_background, "resample row"),
                            check=self._check_leaves)
        vals = vals_out.reshape(b_total, k_count, t_count)
        if weights is None:
            return vals, grad_out.reshape(b_total, k_count, t_count, n)
        return vals, grad_out

    # ------------------------------------------------------------------ method helpers
    def graddrop_gradients(self, layers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask gradients at ``m = 1`` with the backward pass through one layer dropped at a time.

        Row ``l`` treats layer ``layers[l]`` as a pure skip connection in the backward pass (its
        forward value is unchanged): GradDrop of Kramár et al. (2024). Row ``L`` drops nothing
        (plain AtP). Counts ``L + 1`` evaluations per input.

        Returns:
            ``(values batch x (L+1) x targets, grads batch x (L+1) x targets x players)``.
        """
        paths = list(layers)
        self._check_drop_layers(paths)
        k = len(paths) + 1
        masks = torch.ones(k, self.n_players, dtype=torch.float64)
        drop = torch.arange(k)
        drop[-1] = -1
        self.count_evals(k)
        return self._grad_run(masks, True, None, drop_layers=paths, drop_of_k=drop)

    def _check_drop_layers(self, paths: list[str], arg: str = "layers",
                           shown: Sequence[str] | None = None) -> None:
        """Refuse GradDrop layers that are not distinct modules (each path must resolve).

        ``arg`` names the caller's argument and ``shown`` the paths as the caller gave them
        (an SAE game's paths sit under its wrapper's ``model.``; rev46z: the refusal named
        ``'model.layers.0'`` for ``layers=['layers.0', 'layers.0']``)."""
        names = list(shown) if shown is not None else paths
        seen: dict[int, int] = {}
        for i, p in enumerate(paths):
            module = get_module(self.module, p)
            at = seen.setdefault(id(module), i)
            if at != i:
                # aud46c: a tied ModuleList ([blk] * 3, one block looped) or a path listed twice: the
                # drop hooks of one module drop its backward pass at every call, and the same drop was
                # counted once per listing: atp_star 0.152 where per-call GradDrop by hand gives 0.283
                first, q = names[at], names[i]
                what = (f"{arg}= lists {q!r} twice" if paths[at] == p else
                        f"{arg} {first!r} and {q!r} are one module ({type(module).__name__} registered "
                        "under both paths, e.g. a ModuleList holding one block several times)")
                raise InputError(
                    f"{what}; GradDrop drops one layer's backward pass at a time, and a module's drop "
                    "covers every call of it, so the same drop would be counted more than once. Pass "
                    f"{arg}=[...] naming each distinct module once"
                    + (", or use method='atp'." if arg == "layers" else "."))

    def residual_layers(self) -> list[str]:
        """The layers (elements of the ``ModuleList`` that holds the player modules), in order.

        Raises:
            UnsupportedModelError: no ``ModuleList`` ancestor is shared by the player modules.
        """
        named = dict(self.module.named_modules())
        for site in self.sites:
            parts = site.path.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                parent = ".".join(parts[: cut - 1]) if cut > 1 else ""
                if isinstance(named.get(parent), torch.nn.ModuleList) and parts[cut - 1].isdigit():
                    holder = parent
                    break
            else:
                continue
            ml = named[holder]
            assert isinstance(ml, torch.nn.ModuleList)
            return [f"{holder}.{i}" if holder else str(i) for i in range(len(ml))]
        raise UnsupportedModelError(
            "cannot find the residual layers of this model (no torch.nn.ModuleList above the player "
            "modules); pass layers=[...] (module paths of the residual blocks) to the method."
        )

    def activations_and_gradients(self) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
        """Activations and their gradients at the unperturbed inputs (one evaluation).

        Returns:
            ``(site, call) -> (activation batch x *shape, gradient batch x targets x *shape)``,
            float64 CPU, for model-specific methods (Grad-CAM) that need more than the mask
            gradient.
        """
        out = self.probe_sites(self.sites)
        return {k: (a[:, 0], g[:, 0]) for k, (a, g) in out.items()}

    def probe_sites(
        self,
        sites: list[Site],
        *,
        n_points: int = 1,
        make_inputs: Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor],
                              list[torch.Tensor]] | None = None,
        drop_layers: list[str] | None = None,
        evals: int | None = None,
    ) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
        """Unedited activations of ``sites`` and the gradients of the targets w.r.t. them.

        The public, counted way into a component model's internals. Each sample gets
        ``n_points`` rows; row ``k`` of sample ``b`` runs ``make_inputs(xs, b, k)`` (default: the
        inputs themselves). With ``drop_layers`` (``L`` paths, ``n_points = L + 1``) row ``l``
        drops the backward pass through layer ``l`` (GradDrop), row ``L`` drops nothing.

        Args:
            sites: hook sites to read (the game's :attr:`sites` or sites resolved with
                :func:`tribute.games.sites.resolve_site`).
            n_points: rows per sample. default=1.
            make_inputs: ``(inputs rows, sample ids, point ids) -> model inputs`` for a chunk.
            drop_layers: GradDrop layers (module paths). default=None.
            evals: evaluations per input charged to this game. default=None (``n_points``).

        Returns:
            ``(site index in sites, call) -> (act batch x K x *shape, grad batch x K x T x *shape)``
            float64 CPU.
        """
        if not self.differentiable:
            raise UnsupportedModelError("activation gradients need a differentiable torch model.")
        k_count = int(n_points)
        if drop_layers and k_count != len(drop_layers) + 1:
            raise InputError(f"probe_sites: drop_layers needs n_points={len(drop_layers) + 1}, got {n_points}.")
        self._check_drop_layers(list(drop_layers or []), "drop_layers")
        b_total, t_count = self.n_samples, self.n_targets
        device = self.model.device
        st = self.state
        acts: dict[tuple[int, int], list[torch.Tensor]] = {}
        grads_out: dict[tuple[int, int], list[torch.Tensor]] = {}

        def build(start: int, stop: int) -> Rows:
            r = torch.arange(start, stop, device=device)
            b, k = r // k_count, r % k_count
            st.new_pass(len(sites))
            st.rows = stop - start
            st.probes = []
            if drop_layers:
                st.drop = torch.where(k == k_count - 1, torch.full_like(k, -1), k)
            xs = [x[b] for x in self.inputs]
            if make_inputs is not None:
                xs = list(make_inputs(xs, b, k))
            extra, kw = self._extras(b)
            rows = Rows(inputs=tuple(xs), sample=b, extra=extra, kwargs=kw)
            st.leaves = rows.leaves
            return rows

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            for (key, act), g in zip(st.probes, grads):
                acts.setdefault(key, []).append(act.to("cpu", torch.float64))
                grads_out.setdefault(key, []).append(g.to("cpu", torch.float64))

        with installed(self.module, sites, st, drop_layers=drop_layers):
            st.mode = "probe"
            self.engine.run(b_total * k_count, build, sink, row_bytes=self.row_bytes, grad=True,
                            desc="activation gradients", check=self._check_leaves)
        self.count_evals(k_count if evals is None else int(evals))
        out = {}
        for key in acts:
            a, g = torch.cat(acts[key]), torch.cat(grads_out[key])
            out[key] = (a.reshape(b_total, k_count, *a.shape[1:]),
                        g.reshape(b_total, k_count, t_count, *g.shape[2:]))
        return out

    def masked_activations(self, masks: torch.Tensor, sites: list[Site],
                           calls: Sequence[int] | None = None,
                           ) -> dict[tuple[int, int], torch.Tensor]:
        """Activations of extra ``sites`` while the game's players are masked (counted).

        Runs the coalitions ``masks`` (``Q x players``, shared by all samples) like
        :meth:`value` and records what ``sites`` (other modules, e.g. the context of an
        attention module whose queries are players) compute under them. Counts ``Q``
        evaluations per input.

        Args:
            masks: ``Q x players`` coalitions.
            sites: sites to record, with ``shapes`` and ``n_units`` filled (e.g. from
                :meth:`probe_sites`); they are kept whole (mask 1) while recorded.
            calls: per coalition, the one call of the game's modules that its mask applies to
                (a module called several times per forward pass; the other calls run
                unedited), ``-1`` for every call. default=None (every call).

        Returns:
            ``(site index in sites, call) -> batch x Q x M x *shape`` float64 CPU activations
            (``M`` resample rows; 1 otherwise).
        """
        m, shared = self.check_masks(masks)
        if not shared:
            raise InputError("masked_activations takes shared Q x players masks.")
        q_count, n, mb = int(m.shape[0]), self.n_players, self.n_background
        if calls is not None and len(calls) != q_count:
            raise InputError(f"masked_activations: calls has {len(calls)} entries for {q_count} coalitions.")
        calls_d = None if calls is None else torch.as_tensor(list(calls), dtype=torch.long,
                                                               device=self.model.device)
        ext = [*self.sites, *[Site(s.name, s.path, s.unit, s.kind, s.num_heads, list(s.shapes),
                                   s.n_units) for s in sites]]
        off = n
        for cs in ext[len(self.sites):]:
            cs.offset = off
            off += cs.n_units
        full = torch.ones(q_count, off, dtype=self.compute_dtype)
        full[:, :n] = m.to(self.compute_dtype)
        masks_d = full.to(self.model.device)
        st = self.state
        rec_ids = set(range(len(self.sites), len(ext)))
        recorded: dict[tuple[int, int], list[torch.Tensor]] = {}

        def build(start: int, stop: int) -> Rows:
            rows = self._rows(masks_d, True, q_count, start, stop, False)
            st.new_pass(len(ext))
            st.captured = {}
            if calls_d is not None:
                r = torch.arange(start, stop, device=self.model.device)
                st.only_call = calls_d[(r // mb) % q_count]
            return rows

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            for sid, calls in st.captured.items():
                for call, chunks in calls.items():
                    recorded.setdefault((sid - len(self.sites), call), []).append(
                        torch.cat(chunks).to("cpu", torch.float64))
            st.captured = {}

        try:
            with installed(self.module, ext, st):
                st.mode = "mask"
                st.record = rec_ids
                self.engine.run(self.n_samples * q_count * mb, build, sink,
                                row_bytes=self.row_bytes, desc="recording", check=self._check_leaves)
        finally:
            st.record = set()
            st.only_call = None
        self.count_evals(q_count)
        out = {}
        for key, chunks in recorded.items():
            z = torch.cat(chunks)
            out[key] = z.reshape(self.n_samples, q_count, mb, *z.shape[1:])
        return out

    def qk_sites(self) -> dict[int, Site]:
        """Player sites that are the queries or keys of an attention module's heads.

        Maps the site index to the head-output site of its attention module (the heads'
        context, read where head players of that module would be read).
        """
        return qk_context_sites(self.module, self.sites)

    def input_baselines(self) -> list[torch.Tensor]:
        """The input baseline of input-path methods, one ``(1 | batch) x *shape`` per input."""
        self.baseline_read = True
        base = self.baseline
        parts = list(base) if isinstance(base, (tuple, list)) else [base] * len(self.inputs)
        if any(isinstance(p, Background) for p in parts):
            raise InputError(
                "baseline=Background(...): conductance integrates along one straight path from one "
                "input baseline per sample; a background set is not read. Pass one row (e.g. the "
                "set's mean, X.mean(0)) or one row per sample.")
        # PerSample: one row per sample, as a plain array of the batch's length
        parts = [p.data if isinstance(p, PerSample) else p for p in parts]
        if len(parts) != len(self.inputs):
            raise InputError(f"baseline has {len(parts)} parts but there are {len(self.inputs)} inputs.")
        out = []
        for p, x in zip(parts, self.inputs):
            t = torch.as_tensor(np.asarray(p) if not isinstance(p, torch.Tensor) else p)
            t = t.to(device=x.device, dtype=x.dtype)
            if t.ndim == 0 or tuple(t.shape) == tuple(x.shape[1:]):
                t = t.expand(x.shape[1:]).unsqueeze(0)
            elif tuple(t.shape) == (1, *x.shape[1:]):
                pass  # one row for every sample (as feature games and Captum take it)
            elif tuple(t.shape) != tuple(x.shape):
                raise InputError(
                    f"baseline has shape {tuple(t.shape)}; expected a scalar, {tuple(x.shape[1:])}, "
                    f"{(1, *x.shape[1:])} or {tuple(x.shape)} (one per sample)."
                )
            out.append(t)
        return out
