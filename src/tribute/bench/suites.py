"""Benchmark suites: cases with known ground truth (or none), built from :mod:`tribute.datasets`.

A :class:`Case` is everything one comparison needs: a model, the inputs to explain, the target,
the baseline (removal value), the groups (players), and the ground truth when it is known (a
relevance mask and, for the symbolic tabular data, the exact attribution values). Every case
is built deterministically from the suite seed; models are trained on the fly with a fixed
training seed (0) and cached as safetensors by :mod:`tribute.datasets`, so a second run costs
no training and changing ``--seed`` changes the explained samples and the methods' and
metrics' random draws, not the trained models. (The symbolic and correlated tabular cases
explain their generating function, which the seed draws anew: their relevant columns and
weights change with ``--seed``.)

Suites (:func:`build_suite`):

* ``tiny`` — the smallest version of most cases (no planted words, no breast cancer;
  used by the tests).
* ``quick`` — what ``make demo`` runs: every case, 24-32 samples, modest budgets.
* ``full`` — more samples and cases (additive symbolic data, textured planted images),
  larger budgets, every registered feature-attribution method and more metrics.
* ``data`` (and ``data-tiny``) — training examples as players, scored against real
  retraining: its cases and runner live in :mod:`tribute.bench.data_suite` (see
  :data:`DATA_SUITES`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..params import MAX_SEED

__all__ = [
    "DATA_SUITES",
    "PRESETS",
    "Case",
    "GradView",
    "Preset",
    "Suite",
    "available_suites",
    "build_suite",
    "case_builders",
    "check_seed",
]

Modality = Literal["tabular", "image", "text"]

#: Seed with which every benchmark model is trained (kept fixed so that the weights cache is
#: shared by all runs; the suite seed varies the explained samples and the random draws).
MODEL_SEED = 0


@dataclass
class GradView:
    """A differentiable view of a case whose inputs are token ids.

    Gradient methods cannot differentiate through integer token ids; they run on the token
    *embeddings* instead, with one player per token (all embedding dimensions of a token form
    one group) and the padding token's embedding as the baseline. For binary masks this game
    is identical to the token game (a removed token becomes the pad token), so the credits
    are comparable and are evaluated on the token game.

    Attributes:
        make: ``make(model, token_ids) -> (embedding_model, embeddings, baseline, groups)``.
        note: shown in the report.
    """

    make: Callable[[nn.Module, torch.Tensor], tuple[nn.Module, torch.Tensor, Any, Any]]
    note: str


@dataclass
class Case:
    """One benchmark case: (dataset, model, inputs, target, baseline, groups, ground truth).

    Attributes:
        name: short unique name, e.g. ``"planted_images"``.
        title: one-line human title.
        description: what the case tests and what the truth means.
        modality: ``"tabular"``, ``"image"`` or ``"text"`` (picks the report's gallery).
        model: the model to explain (a torch module in eval mode, or a numpy callable).
        inputs: the inputs to explain, ``batch x ...`` (float, or int64 token ids); a tensor
            for torch models, a numpy array for numpy callables.
        target: one class index per sample (``batch`` int64), or None for a regressor.
        baseline: removal value passed to the game (scalar or one sample's shape).
        groups: integer player map shared by all samples (one sample's shape), or None.
        ground_truth: relevance mask with the inputs' shape (bool), or None (real data).
        truth_values: exact attribution values ``batch x players`` (float64), or None.
        truth_label: what the truth values are (e.g. "exact interventional Shapley values").
        n_classes: number of classes (None for regression).
        feature_names: one name per player for tabular data.
        tokens: display strings per sample and token (text cases).
        grad_view: differentiable view for gradient methods (token inputs), or None.
        budget: evaluations per input for sampling methods (perturbation, Shapley, surrogate).
        grad_budget: gradient points per input for budgeted gradient methods.
        model_info: how the model was obtained and how well it does (for the report).
        skip_metrics: metric name -> reason it does not apply to this case.
        metric_params: metric name -> hyperparameters on this case, over the preset's (e.g.
            ``relevance_mass`` on ``|credit|`` where the truth values are signed).
        method_params: method name -> extra ``tribute.explain`` arguments on this case;
            ``"groups": None`` runs the method ungrouped and its per-element credits are then
            averaged over each group (e.g. occlusion with windows aligned to the patches).
        share_key: cases with the same key explain the same model, inputs, target, baseline
            and groups, so attributions are computed once and shared.
        notes: free-form notes shown in the report.
    """

    name: str
    title: str
    description: str
    modality: Modality
    model: Any
    inputs: Any
    target: np.ndarray | None
    baseline: Any = 0.0
    groups: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    truth_values: np.ndarray | None = None
    truth_label: str = ""
    n_classes: int | None = None
    feature_names: list[str] | None = None
    tokens: list[list[str]] | None = None
    grad_view: GradView | None = None
    budget: int = 256
    grad_budget: int = 32
    model_info: str = ""
    skip_metrics: dict[str, str] = field(default_factory=dict)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    share_key: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_players(self) -> int:
        if self.groups is not None:
            return int(np.asarray(self.groups).max()) + 1
        return int(np.prod(self.inputs.shape[1:]))

    @property
    def has_truth(self) -> bool:
        return self.ground_truth is not None or self.truth_values is not None

    def truth_players(self) -> np.ndarray | None:
        """The ground truth in player space, ``batch x players`` float64 (the oracle's credit).

        Exact values when known; otherwise the relevance mask, averaged over each group's
        elements (the fraction of the group that is relevant).
        """
        if self.truth_values is not None:
            return np.asarray(self.truth_values, dtype=np.float64)
        if self.ground_truth is None:
            return None
        mask = np.asarray(self.ground_truth, dtype=np.float64).reshape(self.n_samples, -1)
        if self.groups is None:
            return mask
        g = np.asarray(self.groups).reshape(-1)
        counts = np.bincount(g, minlength=self.n_players).astype(np.float64)
        out = np.zeros((self.n_samples, self.n_players))
        for b in range(self.n_samples):  # per-sample bincount of a small mask, not a model loop
            out[b] = np.bincount(g, weights=mask[b], minlength=self.n_players)
        return out / counts[None]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return {
            "name": self.name, "title": self.title, "description": self.description,
            "modality": self.modality, "n_samples": self.n_samples,
            "n_players": self.n_players, "input_shape": list(self.inputs.shape[1:]),
            "target": "regression" if self.target is None else "class index per sample",
            "n_classes": self.n_classes, "ground_truth": self.ground_truth is not None,
            "truth_values": self.truth_label if self.truth_values is not None else None,
            "budget": self.budget, "grad_budget": self.grad_budget,
            "model": type(self.model).__name__, "model_info": self.model_info,
            "skip_metrics": dict(self.skip_metrics),
            "metric_params": {k: dict(v) for k, v in self.metric_params.items()},
            "notes": list(self.notes),
            "feature_names": list(self.feature_names) if self.feature_names else None,
        }


@dataclass(frozen=True)
class Preset:
    """Sizes, budgets, methods and metrics of one suite.

    Attributes:
        name: suite name.
        cases: case builder names (see :func:`case_builders`), in report order.
        n_tabular: samples explained per tabular case.
        n_image: samples explained per image case.
        n_text: samples explained per text case.
        budget_tabular, budget_image, budget_text: evaluations per input for sampling methods.
        grad_budget: gradient points per input for budgeted gradient methods.
        methods: default methods (unregistered ones are skipped with a note); ``None`` means
            every registered method that works on feature games.
        metrics: default metrics (those that do not apply to a case are skipped there).
        metric_params: per-metric hyperparameters.
    """

    name: str
    cases: tuple[str, ...]
    n_tabular: int
    n_image: int
    n_text: int
    budget_tabular: int
    budget_image: int
    budget_text: int
    grad_budget: int
    methods: tuple[str, ...] | None
    metrics: tuple[str, ...]
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)


_QUICK_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "kernel_shap",
                  "feature_ablation", "occlusion", "lime")
_GT_METRICS = ("auroc", "precision_at_k", "relevance_mass", "relevance_rank", "truth_error")
_FAITH_METRICS = ("deletion", "insertion", "faithfulness_correlation", "linear_score")
_QUICK_PARAMS: dict[str, dict[str, Any]] = {
    "deletion": {"steps": 16}, "insertion": {"steps": 16},
    "faithfulness_correlation": {"n_subsets": 64}, "linear_score": {"n_subsets": 64},
}
_ALL_CASES = ("symbolic", "correlated_model", "correlated_data", "planted_images", "difull",
              "planted_text", "planted_words", "digits", "wine", "breast_cancer")

#: Region methods and the maps they are compared with (``tribute bench --suite regions``).
_REGION_METHODS = ("integrated_gradients", "grad_cam", "kernel_shap", "xrai",
                   "submodular_regions", "extremal_perturbation")

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        cases=("symbolic", "correlated_model", "correlated_data", "planted_images", "difull",
               "planted_text", "wine", "digits"),
        n_tabular=10, n_image=6, n_text=8, budget_tabular=128, budget_image=256,
        budget_text=64, grad_budget=16, methods=_QUICK_METHODS,
        metrics=("auroc", "precision_at_k", "relevance_mass", "relevance_rank", "truth_error",
                 "deletion", "insertion", "faithfulness_correlation"),
        metric_params={"deletion": {"steps": 10}, "insertion": {"steps": 10},
                       "faithfulness_correlation": {"n_subsets": 32}},
    ),
    "quick": Preset(
        name="quick", cases=_ALL_CASES,
        n_tabular=32, n_image=24, n_text=32, budget_tabular=256, budget_image=512,
        budget_text=128, grad_budget=32, methods=_QUICK_METHODS,
        metrics=_GT_METRICS + _FAITH_METRICS, metric_params=_QUICK_PARAMS,
    ),
    "full": Preset(
        name="full",
        cases=("symbolic", "symbolic_additive", "correlated_model", "correlated_data",
               "planted_images", "planted_images_texture", "difull", "planted_text",
               "planted_words", "digits", "wine", "breast_cancer"),
        n_tabular=64, n_image=32, n_text=64, budget_tabular=1024, budget_image=1024,
        budget_text=512, grad_budget=64, methods=None,
        metrics=_GT_METRICS + _FAITH_METRICS + (
            "infidelity", "road", "sparseness", "complexity", "max_sensitivity",
            "random_logit"),
        # re-explaining metrics cost a full explanation per draw: keep the draws few
        metric_params={"max_sensitivity": {"n_samples": 3}},
    ),
}


PRESETS["regions"] = Preset(
    name="regions", cases=("planted_images", "difull"),
    n_tabular=0, n_image=24, n_text=0, budget_tabular=0, budget_image=512, budget_text=0,
    grad_budget=32, methods=_REGION_METHODS,
    metrics=("relevance_mass", "relevance_rank", "auroc", "deletion", "insertion"),
    metric_params={"deletion": {"steps": 20}, "insertion": {"steps": 20}},
)

#: Training-data suites (``tribute bench --suite data``), run by :mod:`tribute.bench.data_suite`.
DATA_SUITES = ("data", "data-tiny")


def available_suites() -> list[str]:
    """Suite names accepted by :func:`build_suite`."""
    return list(PRESETS)


# --------------------------------------------------------------------------- helpers
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Model output on ``x`` (bench bookkeeping: accuracy and predicted classes)."""
    with torch.no_grad():
        out: torch.Tensor = model(x)
        return out


def _accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float((_predict(model, torch.from_numpy(X)).argmax(1).numpy() == y).mean())


def _positives(ds: Any, n: int, where: str) -> Any:
    idx = np.flatnonzero(ds.y == 1)[:n]
    if idx.size < n:
        raise RuntimeError(f"{where}: only {idx.size} positive samples, need {n}")
    return ds.subset(idx)


#: Tabular cases whose truth values are signed (exact Shapley values): ``relevance_mass`` on the
#: positive part is undefined (NaN, the sample dropped) wherever a method credits nothing
#: positively, e.g. a faithful method on a sample whose relevant effects are all negative, while
#: a method with non-negative credits (saliency's ``|gradient|``) is scored there: the means would
#: compare different samples. The share of ``|credit|`` on the relevant features is defined for
#: every method and sample.
_SIGNED_TRUTH_METRIC_PARAMS: dict[str, dict[str, Any]] = {"relevance_mass": {"absolute": True}}


def _signed_truth_metric_params() -> dict[str, dict[str, Any]]:
    """A case's own copy of :data:`_SIGNED_TRUTH_METRIC_PARAMS` (a case edited later must not
    change the others)."""
    return {k: dict(v) for k, v in _SIGNED_TRUTH_METRIC_PARAMS.items()}


# --------------------------------------------------------------------------- tabular
def _symbolic(preset: Preset, seed: int, kind: str) -> Case:
    from .. import datasets as D

    n = preset.n_tabular
    ds = D.tabular_symbolic(n=n, n_relevant=4, n_noise=8, kind=kind,  # type: ignore[arg-type]
                            seed=seed)
    f = ds.meta["model"]
    truth = f.shapley(ds.X, None)
    name = "symbolic" if kind == "interaction" else "symbolic_additive"
    extra = (" plus products of pairs of relevant features (the Shapley value splits each "
             "interaction equally; leave-one-out and gradients do not)"
             if kind == "interaction" else "")
    return Case(
        name=name,
        title=f"Tabular, symbolic ({kind})",
        description=(
            f"12 independent N(0, 1) features; the output is a known function of 4 of them"
            f"{extra}: {ds.meta['formula']}. The model explained IS that function, so the "
            "truth is exact: the relevant-feature mask and the exact Shapley values of the "
            "baseline game (baseline 0, the mean), computed in closed form. After "
            "ChaosMining (Shi et al., 2024)."),
        modality="tabular", model=f, inputs=torch.from_numpy(ds.X), target=None,
        baseline=0.0, ground_truth=ds.ground_truth, truth_values=truth,
        truth_label="exact interventional Shapley values (closed form)",
        feature_names=list(ds.feature_names or []), budget=preset.budget_tabular,
        grad_budget=preset.grad_budget,
        model_info="the generating function itself (no training)",
        skip_metrics={"relevance_rank": "the truth has signed values; relevance_rank ranks "
                                        "signed credits against a mask (use auroc / "
                                        "precision_at_k, which rank |credit|)"},
        metric_params=_signed_truth_metric_params(),
    )


def _correlated(preset: Preset, seed: int, truth: str) -> Case:
    from .. import datasets as D

    n = preset.n_tabular
    ds = D.tabular_correlated(n=n, n_relevant=3, n_correlated=3, n_noise=6, rho=0.9, seed=seed)
    f = ds.meta["model"]
    roles = ", ".join(f"x{j}: {r}" for j, r in enumerate(ds.meta["roles"]))
    common = (f"12 Gaussian features: 3 used by a linear function, 3 unused but correlated "
              f"(rho = 0.9) with a used one, 6 independent noise ({roles}). The model "
              "explained is the linear function itself. ")
    if truth == "model":
        return Case(
            name="correlated_model", title="Tabular, correlated — true to the model",
            description=common + (
                "Truth *true to the model*: only the 3 used features matter (exact values: "
                "interventional Shapley, w_i x_i). Methods that remove features by a "
                "baseline should score well here."),
            modality="tabular", model=f, inputs=torch.from_numpy(ds.X), target=None,
            baseline=0.0, ground_truth=ds.ground_truth, truth_values=f.shapley(ds.X, None),
            truth_label="exact interventional Shapley values (w_i x_i)",
            feature_names=list(ds.feature_names or []), budget=preset.budget_tabular,
            grad_budget=preset.grad_budget, model_info="the generating function (no training)",
            skip_metrics={"relevance_rank": "signed truth values (see auroc)"},
            metric_params=_signed_truth_metric_params(), share_key=f"correlated-{seed}",
        )
    obs = D.conditional_shapley_linear_gaussian(ds.X, ds.meta["weights"], ds.meta["covariance"])
    # Independent noise columns get 0 up to rounding (~1e-17); make it exact, or a tiny
    # positive rounding error would count as credit outside the truth in relevance_mass.
    obs[np.abs(obs) < 1e-12 * np.abs(obs).max(axis=1, keepdims=True)] = 0.0
    return Case(
        name="correlated_data", title="Tabular, correlated — true to the data",
        description=common + (
            "Truth *true to the data*: observational (conditional) Shapley values, which also "
            "credit the unused features that are correlated with used ones (mask: used + "
            "correlated). Same attributions as the 'true to the model' case: every baseline "
            "method is interventional and should score worse here — a property of the "
            "question asked, not a bug (Chen et al., 2020, 'True to the Model or True to the "
            "Data?')."),
        modality="tabular", model=f, inputs=torch.from_numpy(ds.X), target=None,
        baseline=0.0, ground_truth=ds.meta["ground_truth_observational"], truth_values=obs,
        truth_label="exact observational (conditional Gaussian) Shapley values",
        feature_names=list(ds.feature_names or []), budget=preset.budget_tabular,
        grad_budget=preset.grad_budget, model_info="the generating function (no training)",
        skip_metrics={"relevance_rank": "signed truth values (see auroc)"},
        metric_params=_signed_truth_metric_params(), share_key=f"correlated-{seed}",
    )


def _real_tabular(preset: Preset, seed: int, name: str) -> Case:
    from .. import datasets as D

    ds = D.make(name)
    train, test = ds.split(0.25, seed=0)
    model = D.train_mlp(train, seed=MODEL_SEED)
    acc = _accuracy(model, test.X, test.y)
    rng = np.random.default_rng(seed)
    n = min(preset.n_tabular, len(test))
    sub = test.subset(np.sort(rng.permutation(len(test))[:n]))
    x = torch.from_numpy(sub.X)
    pred = _predict(model, x).argmax(1).numpy().astype(np.int64)
    title = {"wine": "Wine (scikit-learn)", "breast_cancer": "Breast cancer (scikit-learn)"}
    return Case(
        name=name, title=f"{title.get(name, name)} — real data, no ground truth",
        description=(
            f"{len(ds)} samples, {ds.X.shape[1]} standardised features, {ds.n_classes} "
            "classes. No ground truth: only faithfulness metrics apply. The predicted class "
            "of each held-out sample is explained; baseline 0 (the feature means)."),
        modality="tabular", model=model, inputs=x, target=pred, baseline=0.0,
        n_classes=ds.n_classes, feature_names=list(ds.feature_names or []),
        budget=preset.budget_tabular, grad_budget=preset.grad_budget,
        model_info=(f"MLP(64, 64) trained on 75% of the data (seed {MODEL_SEED}); held-out "
                    f"accuracy {acc:.3f}"),
    )


# --------------------------------------------------------------------------- images
def _planted_images(preset: Preset, seed: int, background: str) -> Case:
    from .. import datasets as D

    size = 20
    # Class-0 images hold a random decoy shape (same pixel count as the plus), so the CNN must
    # find the plus' shape: counting bright pixels or spotting one fixed shape would make the
    # ring relevant or the plus irrelevant. Shape detection needs more training than counting;
    # the textured background more data.
    n_train, epochs = (800, 20) if background == "noise" else (1600, 20)
    train = D.planted_images(n=n_train, size=size, background=background,  # type: ignore[arg-type]
                             seed=MODEL_SEED)
    model = D.train_cnn(train, epochs=epochs, seed=MODEL_SEED)
    held = D.planted_images(n=4 * preset.n_image + 200, size=size,
                            background=background, seed=1000 + seed)  # type: ignore[arg-type]
    acc = _accuracy(model, held.X, held.y)
    sub = _positives(held, preset.n_image, "planted_images")
    name = "planted_images" if background == "noise" else "planted_images_texture"
    return Case(
        name=name,
        title=f"Planted cause, images ({background} background)",
        description=(
            f"{size}x{size} grey images; class 1 iff a 6x6 plus is planted (class-0 images "
            "hold a random 20-pixel decoy instead, so brightness does not tell the classes "
            "apart). Every image also holds a 6x6 ring of the same brightness (a distractor "
            "that carries no information). Truth: the plus' pixels. Class-1 images are "
            "explained (target 1), pixels are the players, baseline 0 (black). After BAM "
            "(Yang & Kim, 2019)."),
        modality="image", model=model, inputs=torch.from_numpy(sub.X),
        target=np.ones(len(sub), dtype=np.int64), baseline=0.0,
        ground_truth=sub.ground_truth, n_classes=2, budget=preset.budget_image,
        grad_budget=preset.grad_budget,
        method_params={**_region_params(preset.budget_image), **_superpixel_params(size)},
        skip_metrics={"linear_score": (
            "its coalitions keep half of the 400 pixels at random, which never leaves the "
            "20-pixel plus whole: every value is the model's no-plus output, so the score is "
            "noise for every method (the oracle's too)")},
        model_info=(f"SmallCNN trained on {n_train} images ({epochs} epochs, seed "
                    f"{MODEL_SEED}); held-out accuracy {acc:.3f}"),
        notes=_planted_image_notes(background),
    )


def _planted_image_notes(background: str) -> list[str]:
    """What the trained CNN does beyond the truth mask (measured by exact group Shapley
    values of plus / ring / background; see :func:`tribute.datasets.planted_images`)."""
    notes = ["The ring carries no information about the label, but the CNN reads it as weak "
             "evidence for class 0 (a saturated non-plus shape, like the decoys): a method "
             "faithful to the model may give it negative credit (not counted against it by "
             "relevance_mass or by rankings of |credit| led by the plus)."]
    if background == "texture":
        notes.append("On this background the baseline (an all-black image) is itself classified "
                     "as class 1: removing the background moves the output about as much as "
                     "removing the plus (spread over 18 times as many pixels), so negative credit "
                     "on the background is faithful to the model, not an error of the method.")
    return notes


def _region_params(budget: int) -> dict[str, dict[str, Any]]:
    """Image cases: extremal perturbations optimise masks, so they get the sampling budget
    (``steps = (budget - 1) // areas``), not the gradient methods' few points."""
    return {"extremal_perturbation": {"budget": budget, "areas": (0.05, 0.1, 0.2)}}


def _superpixel_params(size: int, patch: int = 2) -> dict[str, dict[str, Any]]:
    """Pixel-player image cases: LIME perturbs superpixels, as in its paper (Ribeiro et al.,
    2016, "Why Should I Trust You?"), here ``patch x patch`` squares; its credits are spread
    evenly over each square's pixels. On raw pixels with half of them off per sample, no
    sample keeps a 20-pixel shape whole, so a shape detector's output does not move and the
    surrogate fits noise."""
    from ..datasets import patch_groups

    return {"lime": {"groups": patch_groups(size, size, patch)}}


def _difull(preset: Preset, seed: int) -> Case:
    from .. import datasets as D

    ds = D.difull_grid(n=preset.n_image, grid=2, cell=8, active_cell=0, seed=seed)
    model = D.difull_model(ds, epochs=8, seed=MODEL_SEED)
    acc = _accuracy(model, ds.X, ds.y)
    groups = D.patch_groups(16, 16, 2)
    return Case(
        name="difull",
        title="DiFull digit grid (only one cell can matter)",
        description=(
            "2x2 mosaics of four different 8x8 digits; the model classifies the top-left cell "
            "only — by construction (Rao et al., 2022, 'Towards Better Understanding "
            "Attribution Methods') the other three cells cannot influence the output, so any "
            "credit there is an error of the method. Players: 2x2-pixel patches (64), "
            "aligned with the cells. The label (the top-left digit) is explained; baseline 0."),
        modality="image", model=model, inputs=torch.from_numpy(ds.X), target=ds.y.copy(),
        baseline=0.0, groups=groups, ground_truth=ds.ground_truth, n_classes=10,
        budget=max(preset.budget_image // 2, 128), grad_budget=preset.grad_budget,
        method_params={"occlusion": {"groups": None, "window": (1, 2, 2), "stride": 2},
                       **_region_params(max(preset.budget_image // 2, 128))},
        model_info=(f"SmallCNN trained on all scikit-learn digits at 8x8 (8 epochs, seed "
                    f"{MODEL_SEED}), applied per cell; accuracy on these mosaics {acc:.3f}"),
        notes=["The per-cell CNN has seen the digits the mosaics are made of (a benchmark of "
               "attribution, not of generalisation)."],
    )


def _digits(preset: Preset, seed: int) -> Case:
    from .. import datasets as D

    ds = D.digits(size=8)
    model = D.train_cnn(ds, epochs=8, seed=MODEL_SEED)  # the same cached model as DiFull's
    rng = np.random.default_rng(seed)
    sub = ds.subset(np.sort(rng.permutation(len(ds))[:preset.n_image]))
    x = torch.from_numpy(sub.X)
    pred = _predict(model, x).argmax(1).numpy().astype(np.int64)
    return Case(
        name="digits", title="Digits 8x8 (scikit-learn) — real data, no ground truth",
        description=(
            "Handwritten digits, 8x8 pixels in [0, 1]; the predicted class is explained, "
            "pixels are the players, baseline 0 (black). No ground truth: only faithfulness "
            "metrics apply."),
        modality="image", model=model, inputs=x, target=pred, baseline=0.0, n_classes=10,
        budget=max(preset.budget_image // 2, 128), grad_budget=preset.grad_budget,
        model_info=(f"SmallCNN trained on all 1797 digits (8 epochs, seed {MODEL_SEED}); "
                    f"training accuracy {_accuracy(model, ds.X, ds.y):.3f}"),
    )


# --------------------------------------------------------------------------- text
class EmbeddingModel(nn.Module):
    """A :class:`~tribute.datasets.TinyTransformer` called on token embeddings."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.transformer.forward_embeddings(emb)  # type: ignore[operator]
        return out


class EmbeddingInputs:
    """``(model, token_ids) -> (EmbeddingModel, embeddings, pad embedding, token groups)``."""

    def __init__(self, pad: int) -> None:
        self.pad = pad

    def __call__(self, model: nn.Module,
                 tokens: torch.Tensor) -> tuple[nn.Module, torch.Tensor, Any, Any]:
        embed: Any = model.embed
        with torch.no_grad():
            emb = embed(tokens).detach()
            base = embed(torch.full((tokens.shape[1],), self.pad, dtype=torch.long)).detach()
        seq, dim = emb.shape[1], emb.shape[2]
        groups = np.repeat(np.arange(seq, dtype=np.int64)[:, None], dim, axis=1)
        return EmbeddingModel(model), emb, base, groups


def _embedding_view(pad: int) -> GradView:
    return GradView(make=EmbeddingInputs(pad), note=(
        "gradient methods run on token embeddings (one player per token, baseline = the pad "
        "token's embedding); for binary masks that game equals the token game, on which all "
        "credits are evaluated"))


def _planted_text(preset: Preset, seed: int) -> Case:
    from .. import datasets as D

    train = D.planted_text(n=1000, seq_len=16, vocab=50, seed=MODEL_SEED)
    model = D.train_transformer(train, epochs=6, seed=MODEL_SEED)
    held = D.planted_text(n=4 * preset.n_text + 200, seq_len=16, vocab=50, seed=1000 + seed)
    acc = _accuracy(model, held.X, held.y)
    sub = _positives(held, preset.n_text, "planted_text")
    triggers = set(train.meta["triggers"])
    tokens = [[(f"TRIGGER{t}" if t in triggers else f"w{t}") for t in row.tolist()]
              for row in sub.X]
    return Case(
        name="planted_text", title="Planted trigger tokens, text (tiny transformer)",
        description=(
            "Sequences of 16 random tokens; class 1 iff a trigger token (id 1 or 2) occurs "
            "anywhere. Truth: the trigger positions. Class-1 sequences are explained (target "
            "1). Tokens are the players; a removed token becomes the pad token 0. Gradient "
            "methods run on the token embeddings (one player per token)."),
        modality="text", model=model, inputs=torch.from_numpy(sub.X),
        target=np.ones(len(sub), dtype=np.int64), baseline=0,
        ground_truth=sub.ground_truth, n_classes=2, tokens=tokens,
        grad_view=_embedding_view(int(train.meta["pad_token"])), budget=preset.budget_text,
        grad_budget=preset.grad_budget,
        model_info=(f"TinyTransformer (1 layer, d=32) trained on 1000 sequences (6 epochs, "
                    f"seed {MODEL_SEED}); held-out accuracy {acc:.3f}"),
        skip_metrics={"infidelity": "token ids take binary masks only",
                      "relevance_mass": _PAD_REMOVAL_MASS},
        notes=["The pad token never occurs in training, so removing ordinary tokens (they become "
               "pads) also moves the output: exact Shapley values of this game rank the "
               "triggers first (auroc and precision_at_k 1) but put about half of the positive "
               "credit on the other tokens, so relevance_mass is left out here."],
    )


#: Why ``relevance_mass`` is left out on ``planted_text``: its truth mask is not what the model
#: does under pad removal. Exact Shapley values of the case's game (all 2^16 coalitions, class-1
#: logit, 8 positives) rank the triggers first but keep only 0.51 of their positive credit on them,
#: so faithful methods scored below concentrated ones (quick, seed 0: permutation_shapley 0.55,
#: kernel_shap 0.53, integrated_gradients 0.67).
_PAD_REMOVAL_MASS = (
    "the model reacts to pads (never seen in training) in place of ordinary tokens: exact "
    "Shapley values of this game keep only about half of their positive credit on the triggers, "
    "so the mass metric would rank faithful methods below concentrated ones (auroc and "
    "precision_at_k, which exact Shapley values score 1 on, apply)")


class WordEmbeddingInputs(EmbeddingInputs):
    """Like :class:`EmbeddingInputs`, but the players are words: ``word_of_token`` maps each
    token position to its word, so a word's sub-tokens and embedding dimensions form one group."""

    def __init__(self, pad: int, word_of_token: np.ndarray) -> None:
        super().__init__(pad)
        self.word_of_token = np.asarray(word_of_token, dtype=np.int64)

    def __call__(self, model: nn.Module,
                 tokens: torch.Tensor) -> tuple[nn.Module, torch.Tensor, Any, Any]:
        m, emb, base, _ = super().__call__(model, tokens)
        groups = np.repeat(self.word_of_token[:, None], emb.shape[2], axis=1)
        return m, emb, base, groups


def _planted_words(preset: Preset, seed: int) -> Case:
    from .. import datasets as D

    train = D.planted_words(n=1000, seed=MODEL_SEED)
    model = D.train_transformer(train, epochs=6, seed=MODEL_SEED)
    held = D.planted_words(n=4 * preset.n_text + 200, seed=1000 + seed)
    acc = _accuracy(model, held.X, held.y)
    sub = _positives(held, preset.n_text, "planted_words")
    idx = [int(i) for i in np.nonzero(held.y == 1)[0][: len(sub)]]
    texts = [held.meta["texts"][i] for i in idx]
    word_of_token = np.asarray(held.meta["word_of_token"])
    mask = int(held.meta["mask_token"])
    return Case(
        name="planted_words", title="Planted trigger words, sub-word tokens (tiny transformer)",
        description=(
            "Sentences of 8 real words (11 sub-word tokens: long words are two tokens); class 1 "
            "iff 'great' or 'wonderful' occurs. Players are the 8 words (a word's tokens are "
            "removed together, replaced by the mask token), as tribute.explain(model, texts, "
            "tokenizer=tribute.datasets.planted_words_tokenizer(), removal='mask') makes them. "
            "Truth: the trigger words' tokens. Gradient methods run on the token embeddings "
            "(one player per word, baseline = the mask token's embedding)."),
        modality="text", model=model, inputs=torch.from_numpy(sub.X),
        target=np.ones(len(sub), dtype=np.int64), baseline=mask, groups=word_of_token,
        ground_truth=sub.ground_truth, n_classes=2,
        tokens=[t.split() for t in texts],
        grad_view=GradView(make=WordEmbeddingInputs(mask, word_of_token), note=(
            "gradient methods run on token embeddings (one player per word: its sub-tokens and "
            "embedding dimensions; baseline = the mask token's embedding); for binary masks that "
            "game equals the word game, on which all credits are evaluated")),
        budget=preset.budget_text, grad_budget=preset.grad_budget,
        model_info=(f"TinyTransformer (1 layer, d=32) trained on 1000 sentences (6 epochs, "
                    f"seed {MODEL_SEED}); held-out accuracy {acc:.3f}"),
        skip_metrics={"infidelity": "token ids take binary masks only"},
    )


# --------------------------------------------------------------------------- registry
Builder = Callable[[Preset, int], Case]


def case_builders() -> dict[str, Builder]:
    """Case name -> builder ``(preset, seed) -> Case``."""
    return {
        "symbolic": lambda p, s: _symbolic(p, s, "interaction"),
        "symbolic_additive": lambda p, s: _symbolic(p, s, "additive"),
        "correlated_model": lambda p, s: _correlated(p, s, "model"),
        "correlated_data": lambda p, s: _correlated(p, s, "data"),
        "planted_images": lambda p, s: _planted_images(p, s, "noise"),
        "planted_images_texture": lambda p, s: _planted_images(p, s, "texture"),
        "difull": _difull,
        "planted_text": _planted_text,
        "planted_words": _planted_words,
        "digits": _digits,
        "wine": lambda p, s: _real_tabular(p, s, "wine"),
        "breast_cancer": lambda p, s: _real_tabular(p, s, "breast_cancer"),
    }


#: The :class:`Preset` field that sizes each case (samples explained).
_CASE_SIZE = {"symbolic": "n_tabular", "symbolic_additive": "n_tabular", "correlated_model": "n_tabular",
              "correlated_data": "n_tabular", "wine": "n_tabular", "breast_cancer": "n_tabular",
              "planted_images": "n_image", "planted_images_texture": "n_image", "difull": "n_image",
              "digits": "n_image", "planted_text": "n_text", "planted_words": "n_text"}


def _n_samples(preset: Preset, case: str) -> int:
    """Samples ``preset`` explains on ``case`` (1 for a case without a size field: not refused)."""
    return int(getattr(preset, _CASE_SIZE[case])) if case in _CASE_SIZE else 1


@dataclass
class Suite:
    """A named list of cases plus the preset they were built with."""

    name: str
    preset: Preset
    seed: int
    cases: list[Case]


#: The suites with their own runner (and their ``-tiny`` forms), and the options each one reads
#: beyond ``--seed`` (and ``--out``/``--quiet`` where it writes or logs): a suite never ignores
#: ``--methods``/``--cases``/``--metrics`` silently.
SPECIAL_SUITES: dict[str, tuple[str, ...]] = {
    "data": ("methods", "cases"), "generation": ("methods",), "concepts": (), "sae": ("methods",),
    "decision": (), "rashomon": (),
}


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or :class:`~tribute.errors.InputError` naming ``--seed`` (numpy's
    generators take non-negative integers only; a negative one used to end in a traceback)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"--seed {seed!r}: the suite seed must be a non-negative integer "
                         "(e.g. --seed 0).")
    if int(seed) >= MAX_SEED:
        # rev43z: the bound stop 43 gave tribute.params.check_seed (torch's 64-bit seeds) was
        # missing here: --seed 2**64 built every case, then each method was "n/a" (the seed
        # refused inside it) and the run exited 0 with an empty leaderboard
        raise InputError(f"--seed {seed!r}: the suite seed must be below 2**64 (torch's random "
                         f"generators take 64-bit seeds), e.g. --seed {int(seed) % MAX_SEED}.")
    return int(seed)


def build_suite(name: str = "quick", seed: int = 0, cases: list[str] | None = None,
                progress: Callable[[str], None] | None = None) -> Suite:
    """Build a suite's cases (training and caching their models on first use).

    Args:
        name: ``"tiny"``, ``"quick"`` or ``"full"``; default="quick".
        seed: seed of the explained samples (models use a fixed training seed); default=0.
        cases: keep only these case names (in the suite's order); default=None (all).
        progress: called with a line of text before each case is built; default=None.

    Returns:
        The :class:`Suite`.
    """
    if name not in PRESETS:
        every = [*PRESETS, *(f"{s}{t}" for s in SPECIAL_SUITES for t in ("", "-tiny"))]
        close = difflib.get_close_matches(name, every, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(f"--suite {name!r} is not a suite.{hint} Choose from "
                         f"{', '.join(every)}.")
    seed = check_seed(seed)
    preset = PRESETS[name]
    builders = case_builders()
    wanted = list(preset.cases)
    if cases:
        # aud44b: each case once -- a case outside the preset named twice (tiny with
        # --cases symbolic_additive,symbolic_additive) was built, run and scored twice, and counted
        # twice in the overall mean rank (feature_ablation 1.33 where the one case gives 1.5)
        cases = list(dict.fromkeys(cases))
        unknown = [c for c in cases if c not in builders]
        if unknown:
            raise InputError(f"--cases: unknown case(s) {unknown}; the suite {name!r} has "
                             f"{', '.join(preset.cases)}.")
        wanted = [c for c in wanted if c in cases] + [c for c in cases if c not in wanted]
        # aud47b: a case the preset sizes at 0 samples (--suite regions --cases wine) was built with
        # an empty batch: a traceback (symbolic: ValueError n=0; planted_text: reshape of size 0) or,
        # after the run, "inputs is an empty batch"
        empty = [c for c in wanted if _n_samples(preset, c) < 1]
        if empty:
            sized = [c for c in builders if _n_samples(preset, c) >= 1]
            raise InputError(f"--cases {','.join(cases)}: the {name!r} suite explains no samples of "
                             f"{', '.join(repr(c) for c in empty)} (its "
                             f"{', '.join(sorted({_CASE_SIZE[c] for c in empty}))} is 0); choose from "
                             f"{', '.join(sized)}, or run {'it' if len(empty) == 1 else 'them'} with --suite quick.")
    built = []
    for cname in wanted:
        if progress is not None:
            progress(f"building case {cname}")
        built.append(builders[cname](preset, seed))
    return Suite(name=name, preset=preset, seed=seed, cases=built)
