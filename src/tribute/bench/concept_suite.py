"""The ``concepts`` suite: do CRAFT's concepts find the patterns a CNN was trained to use?

Ground truth: grey ``size x size`` images on clipped-Gaussian noise; a 6 x 6 plus and a 6 x 6
square ring (20 pixels each, value 1.0) are planted at random non-overlapping positions. The
label is 1 iff **both** patterns are present (class 0: plus only, ring only or neither, a third
each), so a model that classifies well has to detect both. A small CNN (conv-ReLU-maxpool-
conv-ReLU-global max pool-linear, seed 0) is trained on the fly for a few seconds on CPU.

CRAFT (:func:`tribute.craft`) then runs on class-1 images at the last ReLU. For every planted
pattern and concept, the **IoU** of the concept map with the pattern mask is measured (the
concept map thresholded to its ``|mask|`` highest pixels, so no threshold is tuned), averaged
over the images; a pattern's concept is the one with the highest mean IoU. Also reported: the
IoU with the pattern's filled 6 x 6 box (the ring is hollow: a blob on it overlaps its box more
than its 20 border pixels), the **pointing** rate (the concept map's maximum falls inside the pattern's 6 x 6 box), the
matched concepts' Sobol importances, the NMF reconstruction error, and the CNN's accuracy.
Chance level for the IoU of ``k = |mask|`` random pixels (:func:`chance_iou`) is ``E[h / (2 k - h)]``
with ``h`` hypergeometric (``k`` of ``size^2`` pixels drawn, ``k`` of them on the pattern), about
``k / (2 size^2)``: 0.010 for the 20-pixel patterns at 32 x 32 (a random pixel lands on the pattern
with probability ``k / size^2`` = 2%, but the union counts both sets); chance pointing is
``36 / size^2`` (3.5%).

**TCAV** (:func:`tribute.tcav`) on the same CNN, class 1, at the last conv ReLU (layer ``"4"``),
with the paper's flattened CAVs (``spatial="flatten"``) and with channel-mean CAVs
(``spatial="mean"``, insensitive to where a pattern sits). Concept sets of 20 images: "plus" and
"ring" (the pattern planted at a random position on the noise; ground truth: relevant, the
class needs both), "diagonal" (a 16-pixel diagonal band the CNN never saw in training; ground
truth: not relevant) and "random law" (images drawn from the random examples' own law;
not relevant). What "relevant" means here is *needed*: on the seed-0 CNN (aud35t), setting the
pixels of the plus or the ring of class-1 test images to the background mean 0.3 lowers the
class-1 margin (logit 1 - logit 0) by 16.1 / 16.3 on average.
The diagonal is not needed, but it is not inert either: planted on ring-only class-0 images
it raises the margin by 5.7 (a plus: 16.1; it overlaps the plus's centre), though it flips
only 4% of them; on the class-1 inputs TCAV is measured at it changes the margin by -0.09
(a second plus +0.78, a second ring +1.0: the global max pool is saturated there).
Random examples: 100 noise images each with a random 20-of-36-pixel shape planted at a random
position (so a CAV learns the concept's *shape*, not "a bright blob").
Reported per concept and seed: mean TCAV score, the permutation and the Welch p-values, and
whether each test's decision (``p < 0.05``) matches the ground truth.

Run it with ``tribute bench --suite concepts`` (``concepts-tiny``: fewer images and designs, for
tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..datasets import PLUS, RING
from ..methods.craft import CRAFTResult, craft
from ..methods.tcav import tcav

__all__ = ["ConceptSuiteResult", "TCAVBenchRow", "chance_iou", "cmd_concept_suite", "concept_images", "format_concept_results",
           "format_tcav_rows", "pattern_cnn", "pattern_iou", "run_concept_suite", "run_tcav_bench",
           "two_pattern_images"]

PATTERN = PLUS.shape[0]  # the planted-pattern images' 6 x 6 plus and ring
PATTERNS = {"plus": PLUS, "ring": RING}
#: A pattern the CNN never saw: the 6 x 6 main diagonal and its two neighbours (16 pixels).
DIAGONAL = np.eye(PATTERN, dtype=bool) | np.eye(PATTERN, k=1, dtype=bool) | np.eye(PATTERN, k=-1, dtype=bool)
#: TCAV concept sets and their ground truth (relevant to class 1 or not).
TCAV_CONCEPTS = {"plus": True, "ring": True, "diagonal": False, "random law": False}


@dataclass(frozen=True)
class TwoPatternImages:
    """Images, labels and the pixel masks / top-left corners of the two planted patterns."""

    X: np.ndarray  # n x 1 x size x size float32
    y: np.ndarray  # n int64
    masks: dict[str, np.ndarray]  # pattern -> n x size x size bool
    corners: dict[str, np.ndarray]  # pattern -> n x 2 (row, col), -1 when absent


def two_pattern_images(n: int = 1200, size: int = 32, seed: int = 0) -> TwoPatternImages:
    """``n`` images; class 1 iff both the plus and the ring are planted (see the module notes)."""
    if size < 2 * PATTERN + 2 or n < 4:
        raise ValueError(f"two_pattern_images: need size >= {2 * PATTERN + 2} and n >= 4; got size={size}, n={n}")
    rng = np.random.default_rng(seed)
    y = rng.permutation((np.arange(n) < n // 2).astype(np.int64))
    kind = rng.integers(0, 3, size=n)  # class 0: 0 plus only, 1 ring only, 2 neither
    has_plus = (y == 1) | (kind == 0)
    has_ring = (y == 1) | (kind == 1)
    X = np.clip(rng.normal(0.3, 0.12, size=(n, 1, size, size)), 0.0, 0.7).astype(np.float32)
    masks = {k: np.zeros((n, size, size), dtype=bool) for k in PATTERNS}
    corners = {k: np.full((n, 2), -1, dtype=np.int64) for k in PATTERNS}
    for i in range(n):
        p = rng.integers(0, size - PATTERN + 1, size=2)
        q = rng.integers(0, size - PATTERN + 1, size=2)
        while np.all(np.abs(p - q) <= PATTERN):  # keep one pixel of gap
            q = rng.integers(0, size - PATTERN + 1, size=2)
        for name, present, (r, c) in (("plus", has_plus[i], p), ("ring", has_ring[i], q)):
            if present:
                masks[name][i, r : r + PATTERN, c : c + PATTERN] = PATTERNS[name]
                corners[name][i] = (r, c)
                X[i, 0][masks[name][i]] = 1.0
    return TwoPatternImages(X=X, y=y, masks=masks, corners=corners)


def pattern_cnn(data: TwoPatternImages, steps: int = 400, seed: int = 0) -> tuple[torch.nn.Module, float]:
    """Train the suite's CNN on ``data`` (Adam, batches of 64); returns ``(model, train accuracy)``.

    Layers: ``0`` Conv(1, 8, 3) ``1`` ReLU ``2`` MaxPool(2) ``3`` Conv(8, 16, 3) ``4`` ReLU
    ``5`` global max pool ``6`` Flatten ``7`` Linear(16, 2). Global RNG state is left as it was.
    """
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(16, 2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            idx = torch.randint(0, X.shape[0], (64,), generator=g)
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(X).argmax(1) == y).float().mean())
    return model, acc


def pattern_iou(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """IoU of each map (``images x concepts x H x W``) with ``mask`` (``images x H x W``), maps
    thresholded to their ``|mask|`` highest pixels; ``images x concepts``."""
    n, r = maps.shape[:2]
    flat = maps.reshape(n, r, -1)
    m = mask.reshape(n, -1)
    k = m.sum(axis=1)
    out = np.zeros((n, r))
    for i in range(n):
        if k[i] == 0:
            continue
        top = np.argsort(-flat[i], axis=1, kind="stable")[:, : k[i]]
        hits = m[i][top].sum(axis=1)
        out[i] = hits / (2 * k[i] - hits)
    return np.asarray(out)


def chance_iou(k: int, pixels: int) -> float:
    """Expected :func:`pattern_iou` of a random map: ``k`` of ``pixels`` picked at random against a ``k``-pixel
    mask; the overlap ``h`` is hypergeometric and the IoU ``h / (2 k - h)``."""
    from scipy.stats import hypergeom

    h = np.arange(k + 1)
    return float((hypergeom(pixels, k, k).pmf(h) * h / (2 * k - h)).sum())


def _pointing(maps: np.ndarray, corners: np.ndarray) -> np.ndarray:
    n, r, _, w = maps.shape
    arg = maps.reshape(n, r, -1).argmax(axis=2)
    rows, cols = arg // w, arg % w
    r0, c0 = corners[:, :1], corners[:, 1:]
    inside = (rows >= r0) & (rows < r0 + PATTERN) & (cols >= c0) & (cols < c0 + PATTERN)
    return np.asarray(inside, dtype=np.float64)


def concept_images(mask: np.ndarray | None, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n x 1 x size x size`` noise images (the suite's law) with ``mask`` planted at a random
    position; ``mask=None``: a random 20-of-36-pixel shape per image (the TCAV random law)."""
    X = np.clip(rng.normal(0.3, 0.12, size=(n, 1, size, size)), 0.0, 0.7).astype(np.float32)
    for i in range(n):
        r, c = rng.integers(0, size - PATTERN + 1, size=2)
        m = mask
        if m is None:
            m = np.zeros(PATTERN * PATTERN, dtype=bool)
            m[rng.choice(PATTERN * PATTERN, 20, replace=False)] = True
            m = m.reshape(PATTERN, PATTERN)
        X[i, 0, r : r + PATTERN, c : c + PATTERN][m] = 1.0
    return X


@dataclass(frozen=True)
class TCAVBenchRow:
    """One TCAV test in the concept suite."""

    concept: str
    relevant: bool
    spatial: str
    seed: int
    score: float
    p_permutation: float
    p_welch: float

    def matches(self, test: str, alpha: float = 0.05) -> bool:
        """Whether ``test``'s decision at ``alpha`` equals the ground truth."""
        p = self.p_permutation if test == "permutation" else self.p_welch
        return bool(p < alpha) == self.relevant


def run_tcav_bench(model: torch.nn.Module, inputs: np.ndarray, seeds: tuple[int, ...] = (0, 1, 2), n_concept: int = 20,
                   n_random_pool: int = 100, size: int = 32, layer: str = "4",
                   spatial: tuple[str, ...] = ("flatten", "mean"), n_permutations: int = 200) -> list[TCAVBenchRow]:
    """TCAV of every :data:`TCAV_CONCEPTS` set for class 1 of ``model`` at ``layer``, per seed
    (one torch thread, restored after: small batched solves, fastest and immune to a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _tcav_rows(model, inputs, seeds, n_concept, n_random_pool, size, layer, spatial, n_permutations)
    finally:
        torch.set_num_threads(threads)


def _tcav_rows(model: torch.nn.Module, inputs: np.ndarray, seeds: tuple[int, ...], n_concept: int, n_random_pool: int,
               size: int, layer: str, spatial: tuple[str, ...], n_permutations: int) -> list[TCAVBenchRow]:
    rows = []
    masks = {"plus": PLUS, "ring": RING, "diagonal": DIAGONAL, "random law": None}
    for s in seeds:
        rng = np.random.default_rng(10_000 + s)
        pool = concept_images(None, n_random_pool, size, rng)
        sets = {name: concept_images(masks[name], n_concept, size, rng) for name in TCAV_CONCEPTS}
        for sp in spatial:
            for name, relevant in TCAV_CONCEPTS.items():
                r = tcav(model, inputs, sets[name], pool, layer=layer, target=1, n_random=10,
                         n_permutations=n_permutations, spatial=sp, seed=s, concept_name=name)
                rows.append(TCAVBenchRow(concept=name, relevant=relevant, spatial=sp, seed=s, score=r.score,
                                         p_permutation=r.p_values["permutation"], p_welch=r.p_values["welch"]))
    return rows


def format_tcav_rows(rows: list[TCAVBenchRow], layer: str = "4") -> str:
    """Plain-text table of :func:`run_tcav_bench`'s rows, with each test's match count."""
    seeds = sorted({r.seed for r in rows})
    lines = [f"TCAV, class 1 at layer '{layer}', {len(seeds)} seeds (concept/random draws), alpha=0.05; "
             "truth: plus, ring relevant; diagonal, random law not",
             "spatial  concept     truth  scores (per seed)        p permutation            p welch"]
    for sp in dict.fromkeys(r.spatial for r in rows):
        for name in TCAV_CONCEPTS:
            rs = [r for r in rows if r.spatial == sp and r.concept == name]
            lines.append(f"{sp:<8} {name:<11} {'yes' if rs[0].relevant else 'no':<5}  "
                         f"{' '.join(f'{r.score:.2f}' for r in rs):<24} {' '.join(f'{r.p_permutation:.3f}' for r in rs):<24} "
                         f"{' '.join(f'{r.p_welch:.3f}' for r in rs)}")
        sub = [r for r in rows if r.spatial == sp]
        lines.append(f"{sp:<8} decisions matching the truth: permutation {sum(r.matches('permutation') for r in sub)}/"
                     f"{len(sub)}, welch {sum(r.matches('welch') for r in sub)}/{len(sub)}")
    return "\n".join(lines)


@dataclass
class ConceptSuiteResult:
    """What :func:`run_concept_suite` measured."""

    accuracy: float
    n_images: int
    n_concepts: int
    reconstruction_error: float
    iou: dict[str, np.ndarray]  # pattern -> concepts mean IoU
    iou_stderr: dict[str, np.ndarray]
    box_iou: dict[str, np.ndarray]  # pattern -> concepts mean IoU with the pattern's filled 6 x 6 box
    pointing: dict[str, np.ndarray]
    matched: dict[str, int]
    importances: np.ndarray
    importance_stderr: np.ndarray
    n_evals: int
    seconds_train: float
    seconds_craft: float
    settings: dict[str, Any] = field(default_factory=dict)
    result: CRAFTResult | None = None
    tcav: list[TCAVBenchRow] = field(default_factory=list)
    seconds_tcav: float = 0.0


def run_concept_suite(seed: int = 0, n_images: int = 24, n_concepts: int = 3, n_crops: int = 16,
                      crop_size: int = 12, n_designs: int = 32, size: int = 32,
                      train_steps: int = 400, n_train: int = 1200,
                      tcav_seeds: tuple[int, ...] = (0, 1, 2)) -> ConceptSuiteResult:
    """Train the CNN, run CRAFT on ``n_images`` class-1 test images, score the concepts; then
    TCAV on 40 class-1 test images for each of ``tcav_seeds`` (none: skipped)."""
    t0 = time.perf_counter()
    train = two_pattern_images(n_train, size, seed)
    model, acc = pattern_cnn(train, steps=train_steps, seed=seed)
    t1 = time.perf_counter()
    test = two_pattern_images(4 * n_images + 8, size, seed + 1)
    pos = np.flatnonzero(test.y == 1)[:n_images]
    res = craft(model, test.X[pos], layer="4", target=1, n_concepts=n_concepts, n_crops=n_crops,
                crop_size=crop_size, resize=False, n_designs=n_designs, seed=seed)
    t2 = time.perf_counter()
    iou, se, point, matched, box = {}, {}, {}, {}, {}
    for name in PATTERNS:
        per = pattern_iou(res.concept_maps, test.masks[name][pos])
        boxes = np.zeros_like(test.masks[name][pos])
        for j, (r0, c0) in enumerate(test.corners[name][pos]):
            boxes[j, r0 : r0 + PATTERN, c0 : c0 + PATTERN] = True
        box[name] = pattern_iou(res.concept_maps, boxes).mean(axis=0)
        iou[name] = per.mean(axis=0)
        se[name] = per.std(axis=0, ddof=1) / np.sqrt(len(pos))
        point[name] = _pointing(res.concept_maps, test.corners[name][pos]).mean(axis=0)
        matched[name] = int(np.argmax(iou[name]))
    t3 = time.perf_counter()
    rows: list[TCAVBenchRow] = []
    if tcav_seeds:
        tx = two_pattern_images(160, size, seed + 2)
        rows = run_tcav_bench(model, tx.X[tx.y == 1][:40], seeds=tuple(seed + s for s in tcav_seeds), size=size)
    t4 = time.perf_counter()
    return ConceptSuiteResult(
        accuracy=acc, n_images=len(pos), n_concepts=n_concepts, reconstruction_error=res.reconstruction_error,
        iou=iou, iou_stderr=se, box_iou=box, pointing=point, matched=matched, importances=res.importances,
        importance_stderr=res.stderr, n_evals=res.n_evals, seconds_train=t1 - t0, seconds_craft=t2 - t1,
        settings={"seed": seed, "n_images": n_images, "n_concepts": n_concepts, "n_crops": n_crops,
                  "crop_size": crop_size, "n_designs": n_designs, "size": size, "train_steps": train_steps, "n_train": n_train},
        result=res, tcav=rows, seconds_tcav=t4 - t3)


def format_concept_results(r: ConceptSuiteResult) -> str:
    """Plain-text table of a :class:`ConceptSuiteResult`."""
    s = r.settings
    lines = [f"concepts suite: CNN train accuracy {r.accuracy:.3f}; CRAFT at layer '4' on {r.n_images} class-1 "
             f"images, {r.n_concepts} concepts, {s.get('n_crops')} crops/image of {s.get('crop_size')} px, "
             f"{s.get('n_designs')} Sobol designs",
             f"NMF relative reconstruction error {r.reconstruction_error:.3f}; {r.n_evals} forward rows; "
             f"train {r.seconds_train:.1f}s, CRAFT {r.seconds_craft:.1f}s",
             "pattern  concept  IoU (± se)      box IoU  pointing  importance (± se)   IoU of every concept"]
    for name in PATTERNS:
        k = r.matched[name]
        every = " ".join(f"{v:.2f}" for v in r.iou[name])
        lines.append(f"{name:<8} {k:>7}  {r.iou[name][k]:.3f} ± {r.iou_stderr[name][k]:.3f}   {r.box_iou[name][k]:.3f}"
                     f"    {r.pointing[name][k]:.2f}      {r.importances[k]:.3f} ± {r.importance_stderr[k]:.3f}"
                     f"       {every}")
    distinct = len(set(r.matched.values())) == len(r.matched)
    size = s.get("size", 32)
    lines.append(f"patterns matched to distinct concepts: {distinct}; chance IoU "
                 f"{chance_iou(int(PLUS.sum()), size**2):.3f}, chance pointing {PATTERN**2 / size**2:.3f}; "
                 "importances of all concepts " + " ".join(f"{v:.3f}" for v in r.importances))
    if r.tcav:
        lines.append(format_tcav_rows(r.tcav) + f"\nTCAV {r.seconds_tcav:.1f}s")
    return "\n".join(lines)


def cmd_concept_suite(args: Any) -> int:
    """``tribute bench --suite concepts`` (``concepts-tiny``: 8 images, 16 designs)."""
    seed = int(getattr(args, "seed", 0) or 0)
    if args.suite == "concepts-tiny":
        r = run_concept_suite(seed=seed, n_images=8, n_designs=16, train_steps=300, tcav_seeds=(0,))
    else:
        r = run_concept_suite(seed=seed)
    print(format_concept_results(r))
    return 0
