"""Data games: players are training examples (or groups of them).

``v(S)`` is the explained output, on each test point, of the model that ``fit`` trains on the
subset ``S`` of the training set (fractional masks weight examples). Retraining is the ground
truth, and through the retrain bank (:mod:`tribute.games.data_bank`) every estimator that only
calls ``game.value`` works unchanged:

==============================  ================================================================
estimator on a data game        what it is called in data attribution
==============================  ================================================================
``feature_ablation``            leave-one-out retraining (exact)
``exact_shapley``               data Shapley by enumeration (Ghorbani & Zou 2019), tiny n
``permutation_shapley``         TMC-style data Shapley (without truncation)
``kernel_shap``                 KernelSHAP on retrained models
``banzhaf``                     Data Banzhaf with the MSR estimator (Wang & Jia 2023)
``datamodels``                  datamodels (Ilyas et al. 2022): regression on random subsets
==============================  ================================================================

**Standard errors of ``kernel_shap`` on data games** are calibrated at moderate budgets and
somewhat optimistic at small ones (measured on an 8-example ridge data game with exact
enumerated Shapley values, 4 test points, 200 seeds: share of ``|phi - exact| <= 1.96 stderr``
0.929 at ``budget=48``, 0.926 at 64, 0.945 at 96, 0.943 at 128; 10 examples: 0.947 at 128,
0.951 at 400; the sd of these shares, clustered by seed, is 0.003-0.006, so 48-64 are a real
shortfall; the spread of the estimates over seeds matched the root-mean-square stderr
within 3% at 64, so the shortfall comes from stderrs that vary from draw to draw, not from a
wrong average). Read intervals at such small budgets as ~92% ones.

Gradient estimators (``grad_dot``, ``grad_cos``, ``tracin``, ``influence``, ``trak``,
``representer``, ``metagradient``) approximate the same game without retraining, through the
public gradient interface of :class:`DataGame` (per-example gradients in bounded blocks,
Hessian-vector products of the training objective).

**Explained output** (``output=``): ``"raw"`` (the default of :func:`tribute.explain`) means the
*margin* ``log p_y / (1 - p_y)`` of the target class for classifiers (``z_y - logsumexp_{c != y}
z_c``; ``(2y - 1) z`` for one binary logit) and the raw output for regression; ``"margin"`` says
so explicitly; ``"logit"`` is the target class's logit ``z_y`` (for one binary logit,
``loss="binary_cross_entropy"``, the model's ``z`` is class 1's logit and class 0's is ``-z``, as
in :mod:`tribute.targets`' table of binary classifiers: ``(2y - 1) z``, the margin); ``"loss"``
is the test loss (then a positive credit means the example *raises* the loss, i.e. hurts).

**Sign and scale convention** (every estimator): ``phi_i`` approximates
``v(all) - v(all without i)`` — the effect of *including* example ``i`` — so a positive credit
means the example raises the explained output (a proponent), a negative one lowers it (an
opponent). Gradient estimators use the first-order version of that difference; ``grad_dot`` /
``tracin`` are the effect of one gradient step on the example with the given learning rate.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import numbers
import operator
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from ..attribution import Attribution, Layout
from ..engine import Engine
from ..engine.memory import resolve_max_memory
from ..errors import InputError, UnsupportedModelError, user_stacklevel
from ..models import ModelAdapter, TorchModel, as_model, as_output_tensor
from ..params import MAX_SEED
from ..targets import Target, resolve_target
from .base import Game
from .data_bank import RetrainBank, data_fingerprint, float_state
from .features import check_input_container

__all__ = ["DATA_LOSSES", "DATA_OUTPUTS", "DataGame", "ModelMismatchWarning", "TrainingData",
           "ensemble_seed"]

DATA_LOSSES = ("cross_entropy", "binary_cross_entropy", "mse")
DATA_OUTPUTS = ("raw", "margin", "logit", "loss")
#: Bytes of per-example gradients held at once (``block x n_params`` float64) by default.
GRAD_BUDGET_BYTES = 256 * 1024**2
#: Basis vectors per vmapped Hessian block (:meth:`DataGame.hessian_blocks`).
HESSIAN_COLUMNS = 128


class ModelMismatchWarning(UserWarning):
    """The explained model is not the model ``fit`` trains on all of ``X_train``.

    Retraining estimators (leave-one-out, data Shapley/Banzhaf, datamodels, the LDS and
    leave-one-out metrics) explain ``v(S)`` of models that ``fit`` retrains with
    ``TrainingData.seed``; their ``v(all)`` is then not the explained model's output, while the
    gradient estimators explain the model itself.
    """


#: Largest ``|v_bank(all) - v_model|`` accepted as the same model, relative to ``1 + max |v|``.
MODEL_GAP_TOL = 1e-5


def _output_tensor(out: Any) -> torch.Tensor:
    """The module's output as one tensor: a tuple's (or list's) first element as before, else as
    feature games read it (:func:`tribute.models.as_output_tensor`: a ``logits`` field of a
    mapping or a Hugging Face output, or a clear :class:`ModelOutputError`). aud48d: a model
    returning ``{"logits": ...}`` failed every data method with a bare ``AssertionError``."""
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return as_output_tensor(out)


def _on_cpu(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` on the CPU, floating point as ``dtype`` (integer tensors, e.g. token ids or
    step counters, keep their dtype)."""
    return t.to("cpu", dtype) if t.dtype.is_floating_point else t.cpu()


def _tensor(x: Any, name: str) -> torch.Tensor:
    # the containers FeatureGame refuses (small44), refused here too (rev44z): a torch sparse
    # X_train was taken and failed at the first gradient ("Could not run 'aten::as_strided' with
    # arguments from the 'SparseCPU' backend"), sparse test points with "reshape is not
    # implemented for sparse tensors", a scipy matrix as "not array-like (can't convert
    # np.ndarray of type numpy.object_ ...)"
    check_input_container(x, name)
    if isinstance(x, torch.Tensor):
        return x.detach()
    arr = None
    try:
        arr = np.asarray(x)
        return torch.as_tensor(arr)
    except Exception as exc:
        if arr is not None and arr.dtype.kind in "USO" and arr.size and \
                isinstance(arr.reshape(-1)[0], str):
            raise InputError(
                f"{name} holds strings (e.g. {arr.reshape(-1)[:3].tolist()}); give class indices "
                "of the model's outputs instead (e.g. classes, idx = np.unique(labels, "
                "return_inverse=True) if the model's outputs follow the sorted class names)."
            ) from exc
        raise InputError(f"{name} of type {type(x).__name__} is not array-like ({exc}).") from exc


def _from_dataset(X: Any, y: Any) -> tuple[Any, Any]:
    """``(X_train, y_train)`` of a ``torch.utils.data.Dataset`` of ``(x, y)`` pairs or of a
    ``DataLoader`` over one (``y_train=None``); other inputs are returned as given.

    A DataLoader is read through its ``dataset`` in index order: row ``i`` (the credited
    player ``i``) is ``dataset[i]``, whatever order ``shuffle=True`` visits the rows in and
    however they are batched. A sampler that does not visit every row exactly once per epoch
    (a subset, weights, replacement) is refused: which rows were trained on is then not the
    dataset; so is a custom ``collate_fn`` (it may change the rows the model sees)."""
    from torch.utils.data import (
        BatchSampler,
        DataLoader,
        Dataset,
        IterableDataset,
        RandomSampler,
        SequentialSampler,
        default_collate,
        default_convert,
    )

    what = "X_train"
    if isinstance(X, DataLoader):
        sampler, size, drop_last = X.sampler, X.batch_size, X.drop_last
        batches = X.batch_sampler
        if batches is not None:
            # DataLoader(batch_sampler=...) leaves X.sampler its default SequentialSampler and
            # drop_last False: the rows trained on are what the batch sampler yields
            if not isinstance(batches, BatchSampler):
                raise InputError(
                    f"X_train is a DataLoader with batch_sampler {type(batches).__name__}, whose "
                    "batches may skip or repeat rows of its dataset; pass the dataset of the rows "
                    "trained on or X_train, y_train arrays."
                )
            sampler, size, drop_last = batches.sampler, batches.batch_size, batches.drop_last
        every_row = isinstance(sampler, SequentialSampler) or (
            isinstance(sampler, RandomSampler) and not sampler.replacement
            and sampler.num_samples == len(sampler.data_source))
        if not every_row:
            raise InputError(
                f"X_train is a DataLoader with sampler {type(sampler).__name__}, which does not "
                "visit every row of its dataset exactly once; pass the dataset of the rows "
                "trained on (e.g. torch.utils.data.Subset(dataset, indices)) or X_train, "
                "y_train arrays."
            )
        if X.collate_fn not in (default_collate, default_convert):
            name = getattr(X.collate_fn, "__name__", type(X.collate_fn).__name__)
            raise InputError(
                f"X_train is a DataLoader with collate_fn={name}, which may change the rows the "
                "model trains on (the game reads the dataset's items as they are); pass the "
                "collated training inputs and labels as X_train, y_train arrays."
            )
        if drop_last and isinstance(sampler, SequentialSampler) and size and len(sampler) % size:
            raise InputError(
                f"X_train is a DataLoader with drop_last=True, shuffle=False and batch_size="
                f"{size}, which never trains on the last {len(sampler) % size} of its "
                f"{len(sampler)} rows; pass drop_last=False (or shuffle=True), or the dataset of "
                "the rows trained on."
            )
        X, what = X.dataset, "X_train (a DataLoader's dataset)"
    if not isinstance(X, Dataset):
        return X, y
    if isinstance(X, IterableDataset):
        raise InputError(
            f"{what} is an IterableDataset ({type(X).__name__}), whose rows have no index to "
            "credit; pass a map-style Dataset (dataset[i] -> (x, y)) or X_train, y_train arrays."
        )
    if y is not None:
        raise InputError(
            f"{what} is a {type(X).__name__}, whose items are (x, y) pairs; leave y_train=None "
            f"(got y_train of type {type(y).__name__})."
        )
    tensors = getattr(X, "tensors", None)  # TensorDataset: no per-row loop
    if isinstance(tensors, tuple) and len(tensors) == 2:
        return tensors[0], tensors[1]
    try:
        n = len(X)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InputError(f"{what} ({type(X).__name__}) has no len(); pass X_train, y_train arrays.") from exc
    xs, ys = [], []
    for i in range(n):
        item = X[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InputError(
                f"{what}[{i}] is a {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
                + "; a training Dataset must give (x, y) pairs. Pass X_train, y_train arrays "
                "for other layouts."
            )
        # numpy reads a Python float as float64 (torch.as_tensor would round it to float32)
        xs.append(item[0].detach() if isinstance(item[0], torch.Tensor)
                  else torch.as_tensor(np.asarray(item[0])))
        ys.append(item[1].detach() if isinstance(item[1], torch.Tensor)
                  else torch.as_tensor(np.asarray(item[1])))
    if n == 0:
        return torch.empty(0), torch.empty(0)
    return torch.stack(xs), torch.stack(ys)


def _load_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state_dict saved at ``path``: safetensors (``.safetensors``), else ``torch.save``
    of a state_dict, read with ``torch.load(weights_only=True)`` (tensors only, no code).

    Before: a path given as a checkpoint failed with "dictionary update sequence element #0
    has length 1; 2 is required" (str) or "'PosixPath' object is not iterable"."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise InputError(f"checkpoint path {where!r} is not a file; pass the path of a saved "
                         "state_dict, the state_dict itself or the model.")
    try:
        if where.endswith(".safetensors"):
            from safetensors.torch import load_file

            state: Any = load_file(where, device="cpu")
        else:
            state = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"checkpoint {where!r} could not be read as a state_dict ({type(exc).__name__}: "
            f"{str(exc)[:200]}); save checkpoints with torch.save(model.state_dict(), path) or "
            "safetensors.torch.save_file(model.state_dict(), path)."
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = list(state)[:5] if isinstance(state, Mapping) else type(state).__name__
        raise InputError(
            f"checkpoint {where!r} holds {keys}, not a state_dict of tensors (a training "
            "checkpoint with optimizer state?); save model.state_dict() alone, or pass "
            "torch.load(path)['<the model's key>']."
        )
    return dict(state)


def ensemble_seed(seed: int, member: int) -> int:
    """Training seed of ensemble member ``member >= 1`` for an estimator's ``seed >= 0``.

    ``numpy.random.SeedSequence([seed, member]).generate_state(1)[0]``: a 32-bit seed, a
    deterministic function of both, and (unlike ``seed + member``) distinct across the
    members of neighbouring estimator seeds.
    """
    return int(np.random.SeedSequence([int(seed), int(member)]).generate_state(1)[0])


class TrainingData:
    """Training examples as players; pass as ``players=`` to :func:`tribute.explain`.

    Args:
        X_train: training inputs, first axis = examples; or a map-style
            ``torch.utils.data.Dataset`` of ``(x, y)`` pairs, or a ``DataLoader`` over one
            (read in the dataset's index order: player ``i`` is ``dataset[i]``, whatever
            ``shuffle=True`` and the batching do; samplers that skip or repeat rows and a
            custom ``collate_fn`` are refused).
        y_train: training labels (class indices, or targets for regression), same length.
            default=None (only with a Dataset or DataLoader).
        fit: ``fit(X, y, *, seed, weights=None) -> torch.nn.Module``, deterministic for a seed;
            needed by retraining estimators and metrics (``None``: gradient estimators only).
            The reference trainers of :mod:`tribute.games.data_fits` fit this contract.
        loss: the per-example training loss: ``"cross_entropy"`` (logits ``n x C``),
            ``"binary_cross_entropy"`` (one logit) or ``"mse"`` (regression). default=None
            (``fit.loss`` if it has one, else ``"cross_entropy"``).
        checkpoints: models, ``state_dict``\\ s or paths of saved ``state_dict``\\ s
            (``.safetensors``, or ``torch.save`` files read with ``weights_only=True``) along
            the training run, optionally as
            ``(model, learning_rate)`` pairs — used by ``tracin`` and ensembled by ``trak``.
            default=None (the explained model alone, learning rate 1).
        groups: one integer player id ``0..G-1`` per training example (players are blocks of
            examples: classes, sources, duplicates). default=None (one player per example).
        l2: the L2 penalty ``l2/2 ||theta||^2`` of the training objective (the influence
            estimators' Hessian and ``representer``). default=None (``fit.l2`` or 0).
        reduction: ``"sum"`` or ``"mean"`` of the weighted per-example losses in the training
            objective (the mean over the examples ``fit`` trains on: ``loss.mean() + l2/2
            ||theta||^2``, e.g. weight decay). A penalty divided by that number too
            (``loss.mean() + l2/(2 m) ||theta||^2``) is ``"sum"`` with ``l2`` (the objective times
            ``m``). default=None (``fit.reduction`` or ``"mean"``).
        bank: directory of the on-disk retrain bank (None: in memory). default=None.
        seed: seed every retrained subset uses. default=0.
        workers: worker processes (or Ray tasks in flight) retraining independent subsets.
            default=1.
        backend: where the retrain bank trains subsets: ``"local"``, ``"processes"`` or
            ``"ray"`` (:class:`~tribute.games.data_bank.RetrainBank`). default=None
            (``"processes"`` when ``workers > 1``, else ``"local"``).
        address: the Ray cluster for ``backend="ray"`` (None: an initialised Ray, else
            ``RAY_ADDRESS``, else a local instance). default=None.

    Example:
        >>> data = tribute.TrainingData(X_train, y_train, fit=LogisticFit(10, l2=1.0))  # doctest: +SKIP
        >>> attr = tribute.explain(model, X_test, method="influence", target=y_test, players=data)  # doctest: +SKIP
        >>> attr.top(0, k=5)  # doctest: +SKIP
    """

    def __init__(self, X_train: Any, y_train: Any = None, fit: Callable[..., torch.nn.Module] | None = None,
                 *, loss: str | None = None, checkpoints: Sequence[Any] | None = None,
                 groups: Any = None, l2: float | None = None, reduction: str | None = None,
                 bank: str | os.PathLike[str] | None = None, seed: int = 0,
                 workers: int = 1, backend: str | None = None,
                 address: str | None = None) -> None:
        X_train, y_train = _from_dataset(X_train, y_train)
        #: X_train or y_train came as an array (numpy, pandas): the tensors share its memory,
        #: and an in-place edit of it leaves torch's version counters alone
        self._shares_memory = not (isinstance(X_train, torch.Tensor) and isinstance(y_train, torch.Tensor))
        if y_train is None:
            raise InputError(
                f"y_train is None but X_train (of type {type(X_train).__name__}) is not a "
                "torch Dataset of (x, y) pairs; pass one label per training example."
            )
        self.X = _tensor(X_train, "X_train")
        self.y = _tensor(y_train, "y_train")
        if self.X.ndim == 0 or self.X.shape[0] == 0:
            raise InputError(f"X_train has shape {tuple(self.X.shape)}; it needs at least one example on its first axis.")
        if self.y.ndim == 0 or self.y.shape[0] != self.X.shape[0]:
            raise InputError(
                f"X_train has {self.X.shape[0]} examples but y_train has shape "
                f"{tuple(self.y.shape)}; give one label per training example."
            )
        if fit is not None and not callable(fit):
            raise InputError(f"fit={fit!r} is not callable; pass fit(X, y, *, seed, weights=None) -> module.")
        self.fit = fit
        loss = loss if loss is not None else getattr(fit, "loss", "cross_entropy")
        if loss not in DATA_LOSSES:
            close = difflib.get_close_matches(str(loss), DATA_LOSSES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InputError(f"loss={loss!r} is not one of {DATA_LOSSES}.{hint}")
        self.loss = loss
        if loss in ("cross_entropy", "binary_cross_entropy"):
            if self.y[0].numel() != 1:
                raise InputError(
                    f"loss={loss!r} needs one class index per training example; y_train has shape "
                    f"{tuple(self.y.shape)} (one-hot or several labels per example?). Pass the "
                    "class indices, e.g. y_train.argmax(1) for one-hot labels."
                )
            if self.y.dtype.is_floating_point and not bool(torch.all(self.y == self.y.round())):
                raise InputError(f"loss={loss!r} needs integer class labels in y_train; got {self.y[:5].tolist()}.")
        if loss == "binary_cross_entropy":
            bad = ~((self.y == 0) | (self.y == 1))
            if bool(bad.any()):
                seen = sorted({float(v) for v in self.y[bad].reshape(-1)[:1000].tolist()})[:5]
                raise InputError(
                    f"loss='binary_cross_entropy' needs labels 0 or 1 in y_train; got {seen} (e.g. "
                    "labels -1/+1). Map them to 0/1 (y_train = (y_train > 0)) and train and explain "
                    "with those labels."
                )
        given = l2 if l2 is not None else getattr(fit, "l2", 0.0)
        where = "l2" if l2 is not None else "fit.l2"
        try:
            self.l2 = float(given)
        except (TypeError, ValueError):
            raise InputError(f"{where}={given!r} must be a number >= 0"
                             + (" (or pass TrainingData(l2=...))." if l2 is None else ".")) from None
        # aud48d: nan passed the >= 0 check (every comparison with nan is False): influence (cg,
        # ekfac) and representer gave NaN credits with no word, explicit/freeshap a raw LinAlgError
        if not math.isfinite(self.l2) or self.l2 < 0:
            raise InputError(f"{where}={self.l2} must be a finite number >= 0 (the L2 penalty of the "
                             "training objective).")
        red = reduction if reduction is not None else getattr(fit, "reduction", "mean")
        if red not in ("sum", "mean"):
            raise InputError(f"reduction={red!r} must be 'sum' or 'mean'.")
        self.reduction = red
        n = int(self.X.shape[0])
        if groups is None:
            self.groups = np.arange(n)
            self.player_names = [f"example {i}" for i in range(n)]
        else:
            g = np.asarray(groups)
            if g.shape != (n,) or not np.issubdtype(g.dtype, np.integer):
                raise InputError(
                    f"groups has shape {g.shape} and dtype {g.dtype}; give one integer player id "
                    f"per training example (shape ({n},))."
                )
            ids = np.unique(g)
            if ids[0] != 0 or ids[-1] != len(ids) - 1:
                raise InputError(f"groups must use ids 0..G-1 with every id present; got ids {ids[:10].tolist()}...")
            self.groups = g.astype(np.int64)
            self.player_names = [f"group {i}" for i in range(len(ids))]
        if isinstance(checkpoints, (str, os.PathLike, Mapping, torch.nn.Module)) \
                and not isinstance(checkpoints, torch.nn.ModuleList):  # a list of models
            # list() of one path read its characters (of a state_dict, its keys) as checkpoints
            raise InputError(
                f"checkpoints is one {type(checkpoints).__name__}; pass a list of checkpoints "
                "(models, state_dicts or paths), e.g. checkpoints=[ckpt] or [(ckpt, lr), ...]."
            )
        self.checkpoints = list(checkpoints) if checkpoints is not None else None
        self.bank_path = bank
        try:  # an int, numpy or torch integer (not a bool, a float or a string)
            whole = None if isinstance(seed, (bool, np.bool_)) else operator.index(seed)
        except TypeError:
            whole = None
        if whole is None or not 0 <= whole < MAX_SEED:
            # aud48d: int(seed) read 1.5 and True as seed 1 and "3" as 3, silently; 2**64 failed
            # inside fit, blamed on fit ("fit raised ValueError: Overflow ...")
            # rev48d: BASE passed a negative seed on to fit, and torch's generators read -1 as
            # 2**64-1 (a model trained with torch.manual_seed(-1) retrains bit for bit with it),
            # so the hint names that seed, not seed=0 (another model: ModelMismatchWarning)
            same = (f"seed={whole % MAX_SEED} (torch's generators read seed={whole} as that seed)"
                    if whole is not None and -MAX_SEED // 2 <= whole < 0 else "seed=0")
            raise InputError(f"seed={seed!r} must be an int in 0..2**64-1 (the seed fit trains every "
                             f"subset with), e.g. {same}.")
        self.seed = int(whole)
        self.workers = workers
        self.backend = backend
        self.address = address
        self._bank: RetrainBank | None = None
        self._fingerprint: tuple[str, str] | None = None
        self._digest: tuple[tuple[int, int], str] | None = None

    def _data_digest(self) -> str:
        """:func:`data_fingerprint` of ``X_train`` and ``y_train`` as they are now: cached while
        torch's version counters stand still, recomputed every time for arrays (whose in-place
        edits the counters do not see)."""
        key = (self.X._version, self.y._version)
        if self._digest is None or self._digest[0] != key or self._shares_memory:
            self._digest = (key, data_fingerprint(self.X, self.y))
        return self._digest[1]

    def fingerprint(self) -> str:
        """The training data's fingerprint: sha256 (16 hex digits) of the dtypes, shapes and
        every byte of ``X_train`` and ``y_train``, and of the ``groups`` (players).

        Every attribution of a data game records it in ``attr.params["data_fingerprint"]``;
        metrics refuse to score credits against another training set of the same size (their
        players would be other examples). About 0.12 s for 60,000 x 784 float32; cached, and
        recomputed after an in-place change of the tensors (torch's version counter), and every
        time for numpy/pandas inputs (their in-place edits are invisible to that counter)."""
        return self._fingerprint_of(self._data_digest())

    def _fingerprint_of(self, digest: str) -> str:
        """:meth:`fingerprint` from the data's digest (:meth:`_data_digest`)."""
        if self._fingerprint is None or self._fingerprint[0] != digest:
            fp = digest
            if not np.array_equal(self.groups, np.arange(self.n_train)):  # players: groups
                g = np.ascontiguousarray(self.groups, dtype=np.int64)
                fp = hashlib.sha256(digest.encode() + g.view(np.uint8).tobytes()).hexdigest()[:16]
            self._fingerprint = (digest, fp)
        return self._fingerprint[1]

    @property
    def n_train(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_players(self) -> int:
        return len(self.player_names)

    @property
    def bank(self) -> RetrainBank:
        """The retrain bank (created on first use; shared by every game of this object; a new
        one after X_train or y_train were edited in place)."""
        return self._bank_for(None)

    def _bank_for(self, digest: str | None) -> RetrainBank:
        """:attr:`bank` for the data whose digest is ``digest`` (None: hash the data now; a
        :class:`DataGame` hashes array data once per explain call, not once per block of
        coalitions)."""
        if self.fit is None:
            raise InputError(
                "this estimator retrains models, but TrainingData has no fit=...; pass "
                "fit(X, y, *, seed, weights=None) -> module, or use a gradient estimator "
                "('influence', 'trak', 'tracin', 'grad_dot', 'representer')."
            )
        if self._bank is not None and self._bank.fingerprints["data"] != (
                digest if digest is not None else self._data_digest()):
            # X_train / y_train were edited in place (a label fixed after mislabel_auc): the
            # stored models were trained on the old data, and serving them beside new fits gave
            # leave-one-out credits 0.38-0.55 off retraining on the new data, with only a
            # ModelMismatchWarning. A new bank retrains (an on-disk one refuses the directory
            # built from the old data).
            self._bank = None
        if self._bank is None:
            self._bank = RetrainBank(self.fit, self.X, self.y, path=self.bank_path, seed=self.seed,
                                     workers=self.workers, backend=self.backend,
                                     address=self.address)
            # the bank hashed the data as it is now (no second hash for _data_digest)
            self._digest = ((self.X._version, self.y._version), self._bank.fingerprints["data"])
        return self._bank

    def example_masks(self, masks: np.ndarray) -> np.ndarray:
        """Player masks ``K x players`` -> example masks ``K x n_train``."""
        return np.asarray(masks, dtype=np.float64)[:, self.groups]

    def __repr__(self) -> str:
        return (f"TrainingData(n_train={self.n_train}, players={self.n_players}, loss={self.loss!r}, "
                f"fit={self.fit!r})")

    def make_game(self, model: ModelAdapter, inputs: Any, *, target: Any = None,
                  output: str = "raw", batch_size: int | None = None,
                  progress: bool | None = None, baseline: Any = 0.0,
                  forward_args: Sequence[Any] | None = None,
                  forward_kwargs: dict[str, Any] | None = None, **unknown: Any) -> DataGame:
        """Build the :class:`DataGame` for test points ``inputs`` (called by ``tribute.explain``)."""
        if unknown:
            raise InputError(f"unexpected argument(s) {sorted(unknown)} for a data game.")
        if forward_args or forward_kwargs:
            raise InputError("data games take no forward_args/forward_kwargs (the model is called on X_test alone).")
        if not (isinstance(baseline, (int, float, np.number)) and not isinstance(baseline, bool)
                and float(baseline) == 0.0):
            raise InputError(
                f"baseline of type {type(baseline).__name__} has no meaning for training-data "
                "players: a removed example is left out of training (retraining) or weighted to "
                "zero (gradient estimators). Leave baseline unset."
            )
        adapter = model if isinstance(model, ModelAdapter) else as_model(model, "torch")
        if not isinstance(adapter, TorchModel) or adapter.module is None:
            raise UnsupportedModelError(
                f"training-data players need the torch.nn.Module trained on all of X_train; got "
                f"{type(adapter).__name__}"
                + (f" (a {type(user).__name__})"
                   if (user := getattr(adapter, "estimator", model)) is not adapter else "")
                + ". Data attribution retrains the model and differentiates its parameters: "
                "explain a torch model, e.g. the one TrainingData's fit returns (the reference "
                "trainers tribute.games.data_fits.RidgeFit, LogisticFit and MLPFit train "
                "torch counterparts of a ridge regression, a logistic regression and an MLP)."
            )
        return DataGame(self, adapter, inputs, target=target, output=output,
                        batch_size=batch_size, progress=progress)


class DataGame(Game):
    """The data game of :class:`TrainingData` on test points (see the module docstring).

    The game computes in float64 on the CPU wherever the model lives (its own copies of the
    parameters and buffers run the module through ``functional_call``; the model itself is
    neither moved nor changed), and the credits are returned on the test points' device.

    The trained parameters are those with ``requires_grad=True``; frozen ones beside them (a
    fixed feature extractor) are held fixed like buffers and enter no gradient, Hessian or
    ``l2`` term (:attr:`frozen` lists them). A model frozen as a whole is taken as trained
    entirely.

    Values are ``batch x K x 1`` (one explained scalar per test point). Gradient estimators use
    :meth:`test_grads`, :meth:`train_grads`, :meth:`hvp`, :meth:`hessian` and
    :meth:`model_params`; retraining ones use :meth:`value` like on any game.

    Counting: ``n_evals`` counts the evaluations per test point -- one per distinct coalition a
    retraining estimator evaluates (its retrained model on the test points), one per gradient
    pass at a model (a checkpoint, an ensemble member). Unlike a feature game's, the reference
    pass of the explained model on the test points, made when the game is built (it resolves
    the target and gives :attr:`model_values`), is no evaluation of ``v``: ``v(N)`` is the
    model ``fit`` retrains on all of ``X_train``. ``n_rows`` counts the test points' rows:
    ``n_samples * (1 + n_evals)``, the reference pass included (before, retraining calls left
    it out: rows seen = ``n_rows`` + the batch in every run; aud51d), plus the rows of checks
    that run the model on test points without evaluating ``v``: :meth:`test_outputs`
    (metagradient's replay check, ``n_samples`` rows) and :meth:`probe_forward` (representer's
    layer probe, one row per call; rev51d). Gradient work on the
    training rows is ``attr.extra["n_grad_evals"]`` where the estimator reports it, refits
    ``attr.extra["n_retrains"]``.
    """

    kind = "data"
    player_kind = "example"
    differentiable = False
    #: v(S) is a function of S: the retrain bank trains every subset with the one seed and
    #: keeps it, so a coalition asked for twice is evaluated (and counted in ``n_evals`` /
    #: ``n_rows``) once, as on feature games (aud50d: datamodels at budget=150 on 6 examples
    #: reported n_evals=150 and n_rows=300 for 57 distinct subsets the test points saw)
    distinct_coalitions = True
    #: and copies are searched for among any number of coalitions (datamodels at budget=10
    #: on 10 examples ran and counted a subset drawn twice twice; aud51d)
    search_copies_always = True

    def __init__(self, data: TrainingData, model: TorchModel, inputs: Any, *, target: Any = None,
                 output: str = "raw", batch_size: int | None = None,
                 progress: bool | None = None) -> None:
        assert model.module is not None
        self.data = data
        self.module: torch.nn.Module = model.module
        x = _tensor(inputs, "inputs")
        framework = "torch" if isinstance(inputs, torch.Tensor) else "numpy"
        if x.ndim == 0 or x.shape[0] == 0:
            raise InputError(f"inputs (test points) have shape {tuple(x.shape)}; give a batch of test points.")
        if tuple(x.shape[1:]) != tuple(data.X.shape[1:]):
            raise InputError(
                f"inputs have per-example shape {tuple(x.shape[1:])} but X_train has "
                f"{tuple(data.X.shape[1:])}; test points must look like training examples."
            )
        if output not in DATA_OUTPUTS:
            raise InputError(f"output={output!r} is not one of {DATA_OUTPUTS} for a data game.")
        self.dtype = torch.float64
        # the game computes on the CPU in float64 wherever the model lives: its own copies of
        # the parameters run the module through functional_call (the model is not moved)
        self.X_test = _on_cpu(x, self.dtype)
        self.X_train = _on_cpu(data.X, self.dtype)
        self.y_train = self._labels(data.y.cpu())
        # the trained parameters are those that require grad; frozen ones (requires_grad=False
        # beside trainable ones: a fixed feature extractor) never moved in training, so they
        # are held fixed like buffers — no gradient, Hessian or l2 term of theirs enters any
        # estimator (before: included, 7x off the influence of the trained head). A model
        # frozen as a whole (requires_grad_(False) for inference) is taken as trained entirely.
        # Inside ``adapter.session()`` every flag reads False; the flags the session found are
        # read from the adapter's ``requires_grad_before`` (``{id(param): flag}``) where it
        # records them.
        before = getattr(model, "requires_grad_before", None) or {}
        named = list(self.module.named_parameters())
        trained = [(n, p) for n, p in named if before.get(id(p), p.requires_grad)] or named
        self._names = [n for n, _ in trained]
        #: the frozen parameters (held fixed, evaluated like buffers)
        self.frozen = [n for n, _ in named if n not in set(self._names)]
        #: how :meth:`_run_module` names tied tensors (second names to drop, tensors to copy)
        self._tie_plan: tuple[dict[str, str], dict[str, list[str]]] | None = None
        self._buffers = {k: _on_cpu(v.detach(), self.dtype) for k, v in self.module.named_buffers()}
        self._buffers.update({n: p.detach().to("cpu", self.dtype) for n, p in named
                              if n in self.frozen})
        self._base_params = {n: p.detach().to("cpu", self.dtype) for n, p in trained}
        self._act_bytes: int | None = None
        with torch.no_grad():
            ref = self._forward(self._base_params, self.X_test)
        #: raw outputs per example (classes of a classifier)
        self.n_outputs = int(ref.reshape(ref.shape[0], -1).shape[1])
        self.classifier = data.loss != "mse"
        if data.loss == "cross_entropy" and (ref.ndim != 2 or ref.shape[1] < 2):
            raise InputError(
                f"loss='cross_entropy' needs a model output of shape (n, classes>=2); got "
                f"{tuple(ref.shape)}. Use loss='binary_cross_entropy' for one logit or 'mse'."
            )
        if data.loss == "cross_entropy":
            bad = (data.y < 0) | (data.y >= self.n_outputs)
            if bool(bad.any()):
                seen = sorted({int(v) for v in data.y[bad].reshape(-1)[:1000].tolist()})[:5]
                raise InputError(
                    f"y_train has labels {seen} outside 0..{self.n_outputs - 1}, but the model "
                    f"has {self.n_outputs} class outputs; give class indices of the model's outputs."
                )
        if data.loss != "cross_entropy" and self.n_outputs != 1:
            raise InputError(
                f"loss={data.loss!r} needs a model with one output per example; got outputs of "
                f"shape {tuple(ref.shape)} (the game would explain and train on column 0 only). "
                "Use loss='cross_entropy' for class logits, or wrap the model to return the one "
                "output trained with this loss."
            )
        if data.loss == "mse" and data.y[0].numel() != 1:
            raise InputError(
                f"loss='mse' needs one target per training example; y_train has shape "
                f"{tuple(data.y.shape)}. Explain one output at a time (one column of y_train and "
                "a model returning that output)."
            )
        batch = int(x.shape[0])
        if output == "logit" and not self.classifier:
            raise InputError("output='logit' needs a classifier; for regression use output='raw' or 'loss'.")
        self.output = "margin" if output == "raw" and self.classifier else output
        if data.loss == "cross_entropy":
            tgt = resolve_target(target, "raw", ref, batch)
            if tgt.index is None or tgt.multi:
                hint = (f" target={list(target)[:5]!r} is a {type(target).__name__}, which means "
                        "several classes explained for every test point; give one class index per "
                        "test point as an array or tensor (np.asarray(...))."
                        if isinstance(target, (list, tuple)) else "")
                raise InputError(
                    "a data game explains one scalar per test point: pass target=None, "
                    "'predicted', an int, or one class index per test point (e.g. y_test)." + hint
                )
            self.y_test = tgt.index[:, 0].cpu()
        else:
            if target is None or (isinstance(target, str) and target == "predicted"):
                if self.output == "loss" and not self.classifier:
                    raise InputError("output='loss' on a regression game needs target=y_test (the test targets).")
                lab = (ref.reshape(-1) > 0).long() if self.classifier else ref.reshape(batch, -1)[:, 0]
            else:
                lab = _tensor(target, "target").reshape(-1).cpu()
                if lab.numel() == 1:
                    lab = lab.expand(batch)
                if lab.shape[0] != batch:
                    raise InputError(f"target has {lab.shape[0]} entries for {batch} test points; give one per test point.")
                if data.loss == "binary_cross_entropy" and not bool(torch.all((lab == 0) | (lab == 1))):
                    raise InputError(
                        f"target={lab[:5].tolist()} for loss='binary_cross_entropy': each test "
                        "point's label must be 0 or 1 (the explained margin is (2 y - 1) z)."
                    )
            self.y_test = self._labels(lab)
            tgt = Target(self.y_test.reshape(-1, 1).long() if self.classifier else None, None,
                         "raw", False, [self.output])
        engine = Engine(model, tgt, batch_size=batch_size, progress=progress,
                        max_memory=resolve_max_memory(None))  # on the CPU: the host's memory
        #: where the game computes (its default memory cap follows it, not the model's device)
        self.compute_device = torch.device("cpu")
        # credits in the test points' floating dtype, but at least float32: the game computes
        # in float64, and rounding credits to bfloat16 (8 significant bits) tied 3 to 10 of 60
        # training examples per test point that float32 told apart (influence, TRAK, TracIn...)
        out_dtype = (torch.promote_types(x.dtype, torch.float32) if x.dtype.is_floating_point
                     else torch.float64)
        layout = Layout(input_shapes=(tuple(x.shape[1:]),), dense=False, multi_target=False,
                        framework=framework, device=str(x.device),
                        dtype=str(out_dtype).replace("torch.", ""))
        super().__init__(engine, tgt, layout, list(data.player_names), batch)
        engine.n_rows += batch  # the reference pass above (no evaluation of v: see the class)
        self.n_grad_evals = 0
        #: whether :meth:`_check_second_order` walked the training loss's graph already
        self._second_order_checked = False
        #: the explained model's own value on each test point (from the reference pass above)
        self.model_values = self.explained(ref.to(self.dtype), self.y_test).detach()
        self._model_checked = False
        #: calls of ``fit`` this game's values caused (retrained subsets and the retrain bank's
        #: determinism check); ``attr.extra["n_retrains"]`` where any
        self.n_fits = 0
        #: the most fits this game may cause (``tribute.explain`` sets the estimator's budget:
        #: the bank's determinism check is then deferred to :meth:`attribution` and made there
        #: only within it); None: no limit (the check is made on the first retraining)
        self.fit_budget: int | None = None
        #: the training data's digest as this explain call found it (hashed once per call for
        #: array data, whose in-place edits torch's version counters do not see)
        self._pinned: str | None = None

    def _data_digest(self) -> str:
        """The training data's digest, hashed once per explain call (per block of coalitions
        it cost 0.12 s at 60,000 x 784 for every ~140 retrained subsets); rehashed when another
        hash of the same :class:`TrainingData` (a metric's fingerprint check, another game)
        found other data, and every time for torch input (cached by its version counters)."""
        data = self.data
        latest = data._digest[1] if data._digest is not None else None
        if self._pinned is None or not data._shares_memory or latest != self._pinned:
            self._pinned = data._data_digest()
        return self._pinned

    def _retrain_bank(self) -> RetrainBank:
        """The data's retrain bank for the data as this call found it (see :meth:`_data_digest`)."""
        bank = self.data._bank_for(None if self.data._bank is None else self._data_digest())
        self._pinned = bank.fingerprints["data"]
        return bank

    def attribution(self, values: torch.Tensor, method: str, params: dict[str, Any] | None = None,
                    *, stderr: torch.Tensor | None = None, gap: torch.Tensor | None = None,
                    extra: dict[str, Any] | None = None) -> Attribution:
        """As :meth:`Game.attribution`, recording the training data's fingerprint
        (:meth:`TrainingData.fingerprint`) in ``params["data_fingerprint"]`` and the fits
        made for it in ``extra["n_retrains"]``."""
        bank = self.data._bank
        if bank is not None and self.n_fits and self.fit_budget is not None \
                and self.n_fits < int(self.fit_budget):
            before = bank.n_fits  # the determinism check deferred by _evaluate, within budget
            try:
                bank.verify_determinism()
            finally:
                self.n_fits += bank.n_fits - before
        attr = super().attribution(values, method, params, stderr=stderr, gap=gap, extra=extra)
        attr.params.setdefault("data_fingerprint", self.data._fingerprint_of(self._data_digest()))
        self._pinned = None  # the call is over: the next one (a reused game) hashes again
        if self.n_fits:
            attr.extra.setdefault("n_retrains", self.n_fits)
        return attr

    def _labels(self, y: torch.Tensor) -> torch.Tensor:
        if self.data.loss == "mse":
            return y.to(self.dtype)
        return y.long()

    # ----------------------------------------------------------- the outputs
    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Raw model outputs on ``x`` under ``params`` (buffers that ``params`` carries, e.g. an
        ensemble member's BatchNorm statistics; the explained model's for the others)."""
        return self._forward(params, x)

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return _output_tensor(self._run_module({**self._buffers, **params}, x))

    def _run_module(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> Any:
        """``self.module(x)`` with its parameters and buffers replaced by ``state``.

        Through ``functional_call(..., tie_weights=False)`` with one name per module that holds
        a tensor: torch's tying sets a module registered under two names (``self.head =
        self.body[-1]``) twice and restored it wrongly, leaving the explained model holding the
        game's float64 copy instead of its own Parameter (a float32 model then computed in
        float64), and refused the two names the stored state of a retrained model carries
        ("functional_call got multiple values for keys [...], which are tied"). A tensor
        held by two modules (tied weights) is set in both.
        """
        if self._tie_plan is None:
            owners: dict[int, list[str]] = {}
            for mname, mod in self.module.named_modules():  # distinct module objects
                pre = f"{mname}." if mname else ""
                for attr, t in [*mod._parameters.items(), *mod._buffers.items()]:
                    if t is not None:
                        owners.setdefault(id(t), []).append(pre + attr)
            kept = {n for names in owners.values() for n in names}
            every = [*self.module.named_parameters(remove_duplicate=False),
                     *self.module.named_buffers(remove_duplicate=False)]
            drop = {n: owners[id(t)][0] for n, t in every if n not in kept and id(t) in owners}
            copies = {names[0]: names[1:] for names in owners.values() if len(names) > 1}
            self._tie_plan = (drop, copies)
        drop, copies = self._tie_plan
        if drop or copies:
            state = dict(state)
            for alias, name in drop.items():  # the same module under a second name
                self._check_tied_copy(alias, state.pop(alias, None), name, state)
            for name, others in copies.items():  # one tensor held by several modules
                if name in state:
                    for other in others:
                        self._check_tied_copy(other, state.get(other), name, state)
                        state[other] = state[name]
        return functional_call(self.module, state, (x,), tie_weights=False)

    @staticmethod
    def _check_tied_copy(alias: str, value: torch.Tensor | None, name: str,
              state: dict[str, torch.Tensor]) -> None:
        """Refuse a stored state whose copy ``alias`` of a tied tensor differs from ``name``."""
        if value is not None and name in state and value is not state[name] \
                and not torch.equal(value, state[name]):
            raise InputError(
                f"fit returns models whose {alias!r} differs from {name!r}, but the explained "
                "model holds one tensor under both names (tied); pass the model trained by the "
                "same fit on all of X_train."
            )

    def explained(self, out: torch.Tensor, y: torch.Tensor, output: str | None = None) -> torch.Tensor:
        """Explained scalar per row from raw outputs ``rows x C`` and labels (see module doc)."""
        which = output or self.output
        if which == "loss":
            return self.loss(out, y)
        loss = self.data.loss
        if loss == "mse" or which == "raw":
            return out.reshape(out.shape[0], -1)[:, 0]
        if loss == "binary_cross_entropy":
            # the label's log-odds for both: one binary logit ``z`` is class 1's, class 0's logit
            # is ``-z`` (tribute.targets' table of known binary classifiers; rev50d: output="logit"
            # gave z for a label-0 test point, the credits of class 1, sign-flipped, with no word)
            z = out.reshape(out.shape[0], -1)[:, 0]
            return (2 * y.to(z.dtype) - 1) * z
        zy = out.gather(1, y.reshape(-1, 1)).reshape(-1)
        if which == "logit":
            return zy
        other = out.scatter(1, y.reshape(-1, 1), float("-inf"))
        return zy - torch.logsumexp(other, dim=1)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example training loss from raw outputs (``rows``)."""
        if self.data.loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(out, y.reshape(-1), reduction="none")
        z = out.reshape(out.shape[0], -1)[:, 0]
        if self.data.loss == "binary_cross_entropy":
            return torch.nn.functional.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="none")
        return 0.5 * (z - y.reshape(-1)) ** 2

    # ------------------------------------------------------------ parameters
    @property
    def param_names(self) -> list[str]:
        return list(self._names)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self._base_params.values())

    def model_params(self, model: Any = None) -> dict[str, torch.Tensor]:
        """Float64 parameters of the explained model, or of a checkpoint (module or state_dict).

        A checkpoint's (or ensemble member's) entries also carry its own buffers (BatchNorm
        running statistics, ...) where its state has them, so every game method that takes
        ``params`` evaluates that model with its own buffers; buffers the state lacks stay the
        explained model's (:meth:`buffers_of`).
        """
        if model is None:
            return dict(self._base_params)
        if isinstance(model, (str, os.PathLike)):
            model = _load_state(model)
        if isinstance(model, torch.nn.Module):
            state = {**dict(model.named_buffers()), **model.state_dict()}  # non-persistent too
        else:
            try:
                state = dict(model)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"checkpoint of type {type(model).__name__} is not a torch.nn.Module, a "
                    "state_dict or the path of a saved state_dict (.safetensors, or torch.save "
                    "of a state_dict)."
                ) from exc
        out: dict[str, torch.Tensor] = {}
        for n, p in self._base_params.items():
            if n not in state or tuple(state[n].shape) != tuple(p.shape):
                got = {k: tuple(v.shape) for k, v in list(state.items())[:4]}
                raise InputError(
                    f"checkpoint does not match the explained model's architecture: parameter "
                    f"{n!r} of shape {tuple(p.shape)} is "
                    f"{'missing' if n not in state else tuple(state[n].shape)} (checkpoint has "
                    f"{got}...). Checkpoints must be states of the same architecture."
                )
            out[n] = torch.as_tensor(state[n]).detach().to("cpu", self.dtype)
        for n, b in self._buffers.items():
            if n in state:
                t = torch.as_tensor(state[n]).detach()
                if tuple(t.shape) != tuple(b.shape):
                    raise InputError(
                        f"checkpoint does not match the explained model's architecture: buffer "
                        f"{n!r} of shape {tuple(b.shape)} is {tuple(t.shape)}. Checkpoints must be "
                        "states of the same architecture."
                    )
                out[n] = _on_cpu(t, self.dtype)
        return out

    def buffers_of(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The buffers a model given by ``params`` runs with: those ``params`` carries (a
        checkpoint's or ensemble member's, :meth:`model_params`), the explained model's for the
        rest."""
        return {**self._buffers, **{k: v for k, v in params.items() if k in self._buffers}}

    def _split(self, params: dict[str, torch.Tensor]
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``params`` -> (trainable parameters only, the buffers to run them with)."""
        return {n: params[n] for n in self._names}, self.buffers_of(params)

    def checkpoints(self) -> list[tuple[dict[str, torch.Tensor], float]]:
        """``(params, learning_rate)`` per checkpoint (the explained model with lr 1 if none)."""
        cks = self.data.checkpoints
        if not cks:
            return [(self.model_params(), 1.0)]
        out = []
        for i, c in enumerate(cks):
            model, lr = (c if isinstance(c, tuple) else (c, 1.0))
            # aud48d: nan and inf passed (tracin credits all NaN / +-inf, no word), while a
            # numpy float32 or a 0-d tensor learning rate (0.5) was refused as not positive
            real = isinstance(lr, numbers.Real) or (isinstance(lr, torch.Tensor) and lr.numel() == 1
                                                    and not lr.is_complex())
            rate = float(lr) if real and not isinstance(lr, (bool, np.bool_)) else float("nan")
            if lr is None or not (math.isfinite(rate) and rate > 0) or (
                    isinstance(lr, torch.Tensor) and lr.dtype == torch.bool):
                raise InputError(f"checkpoints[{i}] has learning rate {lr!r}; it must be a finite "
                                 "positive number.")
            out.append((self.model_params(model), rate))
        return out

    def ensemble(self, n_models: int, seed: int, *, method: str, checkpoints: bool = False
                 ) -> tuple[list[dict[str, torch.Tensor]], dict[str, Any]]:
        """Parameters of an ensemble of independently trained models, explained model first.

        Member 0 is the explained model; members ``m = 1 .. n_models - 1`` are
        ``fit(X_train, y_train, seed=ensemble_seed(seed, m))`` — trained on *all* of the
        training set with seeds derived deterministically from the estimator's ``seed``
        (:func:`ensemble_seed`). Gradient estimators average their per-model scores over the
        members (``n_models=`` of ``influence``, ``trak``, ``grad_dot``, ``grad_cos``,
        ``representer``), as TRAK ensembles independently trained models (Park et al. 2023):
        the retraining ground truth itself varies with the training seed, and the average
        estimates its seed-averaged effect.

        With ``checkpoints=True`` (estimators that ensemble checkpoints: ``trak``) and
        ``n_models=1``, the members are ``TrainingData(checkpoints=...)``'s models when it has
        any (:meth:`checkpoints`, learning rates ignored): one ensemble path for both.

        Returns the members' float64 parameters and what the extra training cost:
        ``{"n_models", "fit_seeds", "n_fits", "fit_seconds"}`` (``n_models=1``: the explained
        model alone and ``{}``, nothing trained; checkpoints: ``{"n_models"}``).

        Raises:
            InputError: ``n_models`` is not a positive int, ``seed`` is negative,
                ``n_models > 1`` and :class:`TrainingData` has no ``fit``, or ``n_models > 1``
                with ``checkpoints=True`` and checkpoints given (two ensembles at once).
        """
        if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
            raise InputError(f"{method}: n_models={n_models!r} must be a positive int (1 = the "
                             "explained model alone).")
        if checkpoints and self.data.checkpoints:
            if n_models > 1:
                raise InputError(
                    f"{method}: n_models={n_models} trains its own ensemble, but TrainingData "
                    f"also has {len(self.data.checkpoints)} checkpoint(s); pass one of them "
                    "(n_models=1 ensembles the checkpoints)."
                )
            cks = self.checkpoints()
            return [p for p, _ in cks], {"n_models": len(cks)}
        if n_models == 1:
            return [self.model_params()], {}
        if self.data.fit is None:
            raise InputError(
                f"{method}: n_models={n_models} trains {n_models - 1} more model(s) on all of "
                "X_train, but TrainingData has no fit=...; pass fit(X, y, *, seed, weights=None) "
                "-> module, or use n_models=1 (or checkpoints=[...] with trak/tracin)."
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"{method}: seed={seed!r} must be an int >= 0 to derive the "
                             "ensemble's training seeds.")
        seeds = [ensemble_seed(int(seed), m) for m in range(1, n_models)]
        members = [self.model_params()]
        t0 = time.perf_counter()
        for m, s in enumerate(seeds, start=1):
            model = self.data.fit(self.data.X, self.data.y, seed=s)
            if not isinstance(model, torch.nn.Module):
                raise InputError(f"{method}: fit(X_train, y_train, seed={s}) returned "
                                 f"{type(model).__name__}, not a torch.nn.Module.")
            try:
                members.append(self.model_params(model))
            except InputError as exc:
                raise InputError(f"{method}: ensemble member {m} (seed {s}): {exc}") from exc
        info = {"n_models": n_models, "fit_seeds": seeds, "n_fits": n_models - 1,
                "fit_seconds": time.perf_counter() - t0}
        return members, info

    def flatten(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([params[n].reshape(-1) for n in self._names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for n in self._names:
            p = self._base_params[n]
            out[n] = flat[i : i + p.numel()].reshape(p.shape)
            i += p.numel()
        return out

    # ------------------------------------------------------------- gradients
    def block_size(self, budget_bytes: int = GRAD_BUDGET_BYTES) -> int:
        """Rows of per-example gradients per block so that ``block x n_params`` fits the budget."""
        return max(1, int(budget_bytes // (8 * max(self.n_params, 1) * 3)))

    def _per_example(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     params: dict[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        params, buffers = self._split(params)

        def one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return fn(self._forward({**buffers, **p}, x[None]), y[None])[0]

        g = vmap(grad(one), in_dims=(None, 0, 0))(params, X, Y)
        self.n_grad_evals += int(X.shape[0])
        return torch.cat([g[n].reshape(X.shape[0], -1) for n in self._names], 1)

    def test_grads(self, params: dict[str, torch.Tensor] | None = None,
                   output: str | None = None) -> torch.Tensor:
        """Gradients of the explained output of each test point, ``batch x n_params``."""
        p = params if params is not None else self._base_params
        return self._per_example(lambda o, y: self.explained(o, y, output), p, self.X_test, self.y_test)

    def train_grads(self, params: dict[str, torch.Tensor] | None = None, what: str = "loss",
                    block: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Per-example gradients of the training examples in blocks: ``(start, rows x n_params)``.

        ``what="loss"``: the training loss; ``"output"``: the model output the loss is a function
        of (the margin of the example's label for classifiers, the raw output for regression).
        """
        p = params if params is not None else self._base_params
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
        if what == "loss":
            fn = self.loss
        elif what == "output":
            fn = lambda o, y: self.explained(o, y, "margin" if self.classifier else "raw")  # noqa: E731
        else:
            raise InputError(f"what={what!r} must be 'loss' or 'output'.")
        b = block or self.block_size()
        n = int(self.X_train.shape[0])
        for s in range(0, n, b):
            yield s, self._per_example(fn, p, self.X_train[s : s + b], self.y_train[s : s + b])

    def train_jacobians(self, params: dict[str, torch.Tensor] | None = None,
                        block: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Per-example Jacobians of the raw outputs, in blocks: ``(start, rows x C x n_params)``."""
        p, buffers = self._split(params if params is not None else self._base_params)
        C = int(self.train_outputs({**buffers, **p}).reshape(self.data.n_train, -1).shape[1])
        b = max(1, (block or self.block_size()) // C)
        n = int(self.X_train.shape[0])

        def one(q: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return self._forward({**buffers, **q}, x[None]).reshape(-1)

        for s in range(0, n, b):
            X = self.X_train[s : s + b]
            J = vmap(torch.func.jacrev(one), in_dims=(None, 0))(p, X)
            self.n_grad_evals += int(X.shape[0]) * C
            yield s, torch.cat([J[nm].reshape(X.shape[0], C, -1) for nm in self._names], 2)

    def test_jacobians(self, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Per-test-point Jacobians of the raw outputs, ``batch x C x n_params`` (``freeshap``)."""
        p, buffers = self._split(params if params is not None else self._base_params)

        def one(q: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return self._forward({**buffers, **q}, x[None]).reshape(-1)

        J = vmap(torch.func.jacrev(one), in_dims=(None, 0))(p, self.X_test)
        B = int(self.X_test.shape[0])
        C = int(J[self._names[0]].shape[1])
        self.n_grad_evals += B * C
        return torch.cat([J[nm].reshape(B, C, -1) for nm in self._names], 2)

    def linear_layers(self) -> list[tuple[str, str, str | None]]:
        """``(module name, weight name, bias name or None)`` of every Kronecker-factored layer.

        The layers are ``nn.Linear`` and ``nn.Conv2d`` (``groups=1``, zero padding). Raises
        :class:`UnsupportedModelError` when a parameter lives outside such layers.
        """
        layers: list[tuple[str, str, str | None]] = []
        covered: set[str] = set()
        partial: list[str] = []
        # a parameter held by two module objects (tied weights: b.weight = a.weight, a head tied
        # to an embedding) is registered once, under one module's name; the factors saw only
        # that module's inputs and outputs, and the solve of a layer run twice through one
        # weight came out 3.3x off the exact Gauss-Newton solve, with no error
        owners: dict[int, list[str]] = {}
        for name, mod in self.module.named_modules():  # distinct module objects
            for pn, prm in mod.named_parameters(recurse=False):
                if prm is not None:
                    owners.setdefault(id(prm), []).append(f"{name}.{pn}" if name else pn)
        for name, mod in self.module.named_modules():
            if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
                continue
            if isinstance(mod, torch.nn.Conv2d) and (mod.groups != 1 or mod.padding_mode != "zeros"
                                                     or isinstance(mod.padding, str)):
                continue  # not an unfold-able convolution: reported below as uncovered
            pre = f"{name}." if name else ""
            w = f"{pre}weight"
            b = f"{pre}bias" if mod.bias is not None else None
            if w not in self._base_params or (b is not None and b not in self._base_params):
                if any(x in self._base_params for x in (w, b) if x is not None):
                    partial.append(name)  # weight or bias frozen beside a trained one
                continue  # shared or frozen: not a trained parameter of its own
            for x in (w, b):
                tied = owners.get(id(getattr(mod, x.rsplit(".", 1)[-1]))) if x is not None else None
                if tied is not None and len(tied) > 1:
                    raise UnsupportedModelError(
                        f"Kronecker-factored curvature needs each layer's parameters to be its "
                        f"own; {x!r} of layer {name!r} is also {[t for t in tied if t != x][:3]} "
                        "(tied weights: one parameter held by several modules). Use "
                        "solver='cg' or 'explicit' for this model."
                    )
            layers.append((name, w, b))
            covered.update(x for x in (w, b) if x is not None)
        other = [n for n in self._names if n not in covered]
        if other:
            # before: a Linear with a frozen weight and a trained bias was reported as a
            # parameter "in other modules"
            why = (f" or in layers {partial[:4]} whose weight or bias is frozen beside a trained "
                   "one (the factors cover a whole layer)" if partial else "")
            raise UnsupportedModelError(
                f"Kronecker-factored curvature covers nn.Linear layers only and nn.Conv2d layers "
                f"with groups=1 and numeric zero padding; parameters {other[:4]} of "
                f"{type(self.module).__name__} are in other modules{why}. Use solver='cg' or "
                "'explicit' for this model."
            )
        return layers

    def linear_pseudo_grads(self, params: dict[str, torch.Tensor] | None = None,
                            block: int | None = None
                            ) -> Iterator[tuple[int, dict[str, tuple[torch.Tensor, torch.Tensor]]]]:
        """Inputs and Gauss-Newton pseudo-gradients of every Kronecker-factored layer, in blocks.

        Yields ``(start, {module name: (a, g)})`` with ``a`` the layer's inputs at each of its
        ``T`` positions (``rows x T x in``) and ``g`` (``rows x C x T x out``) the
        pre-activation gradients ``J_s^T L_c`` of the columns of ``L`` with ``L L^T = M``, the
        loss's Hessian w.r.t. the raw outputs (``C`` of them). An ``nn.Linear`` on 2-D inputs
        has one position (``T = 1``); an ``nn.Conv2d`` has one per output pixel, its ``a`` being
        the unfolded input patches (``in = in_channels x kh x kw``, the order of
        ``weight.reshape(out, -1)``; Grosse & Martens 2016). The per-example weight gradient of
        column ``c`` is ``sum_t g_ct a_t^T``, so ``sum_c`` of its outer products summed over
        examples is the layer's exact Gauss-Newton block, deterministically (no sampled labels).
        """
        p = params if params is not None else self._base_params
        layers = self.linear_layers()
        mods = dict(self.module.named_modules())
        b = block or self.block_size()
        n = int(self.X_train.shape[0])
        for s in range(0, n, b):
            X, Y = self.X_train[s : s + b], self.y_train[s : s + b]
            rows = int(X.shape[0])
            acts: dict[str, torch.Tensor] = {}
            eps: dict[str, torch.Tensor] = {}

            def make(name: str, acts: dict[str, torch.Tensor] = acts,
                     eps: dict[str, torch.Tensor] = eps) -> Callable[..., torch.Tensor]:
                def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...],
                         output: torch.Tensor) -> torch.Tensor:
                    if name in acts:
                        # a layer run twice per forward pass (weight sharing across steps, a
                        # block applied twice) kept only its last call's inputs and gradients:
                        # 3.3x off the exact solve of a linear model, with no error
                        raise UnsupportedModelError(
                            f"layer {name!r} ({type(mod).__name__}) is called more than once in "
                            "one forward pass; Kronecker-factored curvature takes each layer's "
                            "inputs and output gradients from a single call. Use solver='cg' "
                            "or 'explicit' for this model."
                        )
                    x = inp[0].detach()
                    if isinstance(mod, torch.nn.Conv2d):
                        if x.ndim != 4:
                            raise UnsupportedModelError(
                                f"layer {name!r} sees inputs of shape {tuple(x.shape)}; "
                                "Kronecker-factored curvature needs batched (rows x C x H x W) inputs."
                            )
                        assert not isinstance(mod.padding, str)  # refused by linear_layers
                        cols = torch.nn.functional.unfold(x, mod.kernel_size, dilation=mod.dilation,
                                                          padding=mod.padding, stride=mod.stride)
                        acts[name] = cols.transpose(1, 2)  # rows x T x in*kh*kw
                    elif x.ndim != 2:
                        raise UnsupportedModelError(
                            f"layer {name!r} sees inputs of shape {tuple(x.shape)}; "
                            "Kronecker-factored curvature needs rows x features (2-D) inputs."
                        )
                    else:
                        acts[name] = x[:, None, :]
                    e = torch.zeros_like(output, requires_grad=True)
                    eps[name] = e
                    return output + e
                return hook

            handles = [mods[m].register_forward_hook(make(m)) for m, _, _ in layers]
            # the layers' own parameters as leaves: their true gradient checks the factors'
            q = {k: v.detach() for k, v in p.items()}
            own = [x for _, w, bn in layers for x in (w, bn) if x is not None]
            for k in own:
                q[k] = q[k].requires_grad_(True)
            try:
                with torch.enable_grad():
                    out = self._forward(q, X)
            finally:
                for h in handles:
                    h.remove()
            out2 = out.reshape(rows, -1)
            _, M = self.loss_output_derivatives(out2.detach(), Y)
            C = int(M.shape[1])
            out2 = out2[:, :C]
            ev, V = torch.linalg.eigh(M)
            L = V * ev.clamp_min(0).sqrt()[:, None, :]  # rows x C x C, L L^T = M
            # the layers this pass called: one the forward pass never calls (a spare head)
            # has zero gradients and no factors (before: KeyError of its name)
            names = [m for m, _, _ in layers if m in eps]

            def positions(e: torch.Tensor) -> torch.Tensor:
                # rows x out (Linear) or rows x out x H x W (Conv2d) -> rows x T x out
                return e[:, None, :] if e.ndim == 2 else e.flatten(2).transpose(1, 2)

            gs = {m: torch.empty(rows, C, *positions(eps[m]).shape[1:], dtype=self.dtype)
                  for m in names}
            for c in range(C):
                last = c == C - 1
                grads = torch.autograd.grad(out2, [eps[m] for m in names] + ([q[k] for k in own] if last else []),
                                            grad_outputs=L[:, :, c], retain_graph=not last,
                                            allow_unused=True)
                for m, gr in zip(names, grads):
                    gs[m][:, c] = 0 if gr is None else positions(gr)  # None: output unused
                if last:
                    self._check_layer_grads(layers, acts, gs, dict(zip(own, grads[len(names):])))
            self.n_grad_evals += rows * C
            yield s, {m: (acts[m], gs[m]) for m in names}

    @staticmethod
    def _check_layer_grads(layers: list[tuple[str, str, str | None]], acts: dict[str, torch.Tensor],
                           gs: dict[str, torch.Tensor], true: dict[str, torch.Tensor | None]) -> None:
        """Refuse a layer whose parameters' true gradient is not the one its calls' inputs and
        output gradients give (the weight also used outside the layer's call: ``F.linear(x,
        lin.weight)``, ``x @ lin.weight.T``; before: 2.2x off the exact solve, no error)."""
        for m, w, b in layers:
            for x in (w, b):
                if x is None:
                    continue
                t = true[x]
                tg = torch.zeros(()) if t is None else t.reshape(t.shape[0], -1)
                if m not in gs:
                    hg = torch.zeros_like(tg)
                elif x == w:
                    hg = torch.einsum("rto,rti->oi", gs[m][:, -1], acts[m])
                else:
                    hg = gs[m][:, -1].sum((0, 1)).reshape(tg.shape)
                scale = float(torch.maximum(tg.abs().max(), hg.abs().max()))
                if float((hg - tg).abs().max()) > 1e-7 * scale:
                    raise UnsupportedModelError(
                        f"parameter {x!r} of layer {m!r} is also used outside that layer's call "
                        "(a functional use such as F.linear(x, layer.weight) or x @ "
                        "layer.weight.T, or a layer never called whose weight is used): "
                        "Kronecker-factored curvature takes each layer's gradient from its "
                        "inputs and output gradients alone. Use solver='cg' or 'explicit' for "
                        "this model."
                    )

    def loss_output_derivatives(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First and second derivatives of the loss w.r.t. the raw outputs: ``rows x C``, ``rows x C x C``."""
        if self.data.loss == "cross_entropy":
            pr = torch.softmax(out, 1)
            r = pr - torch.nn.functional.one_hot(y.reshape(-1), pr.shape[1]).to(pr.dtype)
            return r, torch.diag_embed(pr) - pr[:, :, None] * pr[:, None, :]
        z = out.reshape(out.shape[0], -1)[:, :1]
        if self.data.loss == "binary_cross_entropy":
            sg = torch.sigmoid(z)
            return sg - y.reshape(-1, 1).to(z.dtype), (sg * (1 - sg))[:, :, None]
        return z - y.reshape(-1, 1), torch.ones(z.shape[0], 1, 1, dtype=z.dtype)

    def train_outputs(self, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Raw model outputs on the training set (``n_train x C``)."""
        p = params if params is not None else self._base_params
        with torch.no_grad():
            return self._forward(p, self.X_train)

    def test_outputs(self, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Explained outputs of the test points (``batch``) under ``params``: a check's pass,
        counted in ``n_rows`` (no evaluation of ``v``; before, its rows went uncounted:
        metagradient's replay check, rev51d)."""
        p = params if params is not None else self._base_params
        with torch.no_grad():
            out = self.explained(self._forward(p, self.X_test), self.y_test)
        self.engine.n_rows += self.n_samples
        return out

    def probe_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs of the explained model on ``x`` (rows shaped like the test points), for a
        probe of the model's structure; its rows are counted in ``n_rows``, not in ``n_evals``
        (representer's search for the last ``nn.Linear`` the forward pass calls ran one test
        point uncounted per call; rev51d)."""
        with torch.no_grad():
            out = self._forward(self._base_params, x)
        self.engine.n_rows += int(x.shape[0])
        return out

    def count_pass(self) -> None:
        """Count one gradient-estimator pass as one evaluation per input (``n_evals``) and the
        test points' rows it ran (``n_rows``)."""
        self.n_evals += 1
        self.engine.n_rows += self.n_samples

    @property
    def removal_scale(self) -> float:
        """Weight change of one example in the training objective (1 for sums, 1/n for means)."""
        return 1.0 if self.data.reduction == "sum" else 1.0 / self.data.n_train

    def objective(self, flat: torch.Tensor, rows: slice | None = None,
                  buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Training objective at flat parameters (the loss part restricted to ``rows``).

        ``reduce_i loss_i + l2/2 ||theta||^2`` with the regulariser added only when
        ``rows`` is None or starts at 0, so that block sums give the full objective.
        ``buffers``: the model's buffers to use (default: the explained model's).
        """
        r = rows or slice(0, None)
        X, Y = self.X_train[r], self.y_train[r]
        out = self._forward({**(buffers or {}), **self.unflatten(flat)}, X)
        val = self.loss(out, Y).sum() * self.removal_scale
        if r.start in (None, 0):
            val = val + 0.5 * self.data.l2 * (flat * flat).sum()
        return val

    def _row_blocks(self) -> list[slice]:
        n = int(self.X_train.shape[0])
        b = max(1, min(n, self.block_size() * 4))
        return [slice(s, s + b) for s in range(0, n, b)]

    def work_bytes(self) -> int:
        """Bytes one block of gradient work may hold: :data:`GRAD_BUDGET_BYTES`, or a quarter of
        the engine's ``max_memory`` when that is smaller."""
        cap = getattr(self.engine, "max_memory", None)
        return int(min(GRAD_BUDGET_BYTES, cap // 4)) if cap else GRAD_BUDGET_BYTES

    def activation_bytes(self) -> int:
        """Bytes of the activations of one example's forward pass (every leaf module's outputs,
        float64), measured once with forward hooks that are removed again. A pass
        differentiated along ``m`` directions holds about this much per row and direction."""
        if self._act_bytes is None:
            total = [0]

            def hook(mod: torch.nn.Module, inp: Any, out: Any) -> None:
                for t in (out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(t, torch.Tensor):
                        total[0] += int(t.numel())

            handles = [m.register_forward_hook(hook) for m in self.module.modules()
                       if not any(True for _ in m.children())]
            try:
                with torch.no_grad():
                    self._forward(self._base_params, self.X_train[:1])
            finally:
                for h in handles:
                    h.remove()
            self._act_bytes = 8 * total[0]
        return self._act_bytes

    def hessian_blocks(self, budget_bytes: int | None = None) -> tuple[int, int]:
        """``(rows, columns)`` of one Hessian block: ``rows`` training examples whose
        reverse-over-reverse pass is vmapped over ``columns`` basis vectors, so that
        ``rows x columns x`` :meth:`activation_bytes` fits ``budget_bytes`` (default
        :meth:`work_bytes`). At most :data:`HESSIAN_COLUMNS` columns, then as many rows as fit:
        on digits + MLP 100 columns x all 300 rows took 3.6 s, all 2,410 columns x 17 rows
        34 s, ``jacrev`` over 582 columns x 300 rows 12 s (same Hessian to 1e-18)."""
        budget = self.work_bytes() if budget_bytes is None else int(budget_bytes)
        P, n = max(self.n_params, 1), max(int(self.X_train.shape[0]), 1)
        pairs = max(1, budget // max(self.activation_bytes(), 1))
        cols = min(P, HESSIAN_COLUMNS, pairs)
        return max(1, min(n, pairs // cols)), cols

    def hessian(self, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Hessian of the training objective, ``n_params x n_params`` (float64).

        Built in bounded blocks (:meth:`hessian_blocks`): for each block of training rows, the
        gradient of that block's objective is recorded once and its vector-Jacobian product
        is vmapped over chunks of basis vectors (rows of ``H``, by symmetry its columns), so the
        work held at once is ``rows x columns`` activations and no ``n_params^2`` temporary
        exists beside ``H`` itself (before: ``jacrev`` over all examples at once and its basis,
        6.7 GiB on a 1,370-parameter CNN with 900 examples).
        """
        p, buffers = self._split(params if params is not None else self._base_params)
        flat = self.flatten(p)
        self._check_second_order(flat, buffers)
        P = flat.numel()
        n = int(self.X_train.shape[0])
        H = torch.zeros(P, P, dtype=self.dtype)
        rows, cols = self.hessian_blocks()
        for s in range(0, n, rows):
            r = slice(s, min(s + rows, n))

            def obj(f: torch.Tensor, r: slice = r) -> torch.Tensor:
                return self.objective(f, r, buffers)

            vjp_fn = torch.func.vjp(grad(obj), flat)[1]
            for c in range(0, P, cols):
                k = min(cols, P - c)
                E = torch.zeros(k, P, dtype=self.dtype)
                E[torch.arange(k), torch.arange(c, c + k)] = 1.0
                H[c : c + E.shape[0]] += vmap(vjp_fn)(E)[0]
        self.n_grad_evals += n * 2
        return H

    def hvp(self, V: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Hessian of the training objective times ``V`` (``n_params x m``)."""
        p, buffers = self._split(params if params is not None else self._base_params)
        flat = self.flatten(p)
        self._check_second_order(flat, buffers)
        out = torch.zeros_like(V)
        for r in self._row_blocks():
            g = grad(lambda f, r=r: self.objective(f, r, buffers))

            def one(v: torch.Tensor, g: Callable[..., torch.Tensor] = g) -> torch.Tensor:
                out: torch.Tensor = torch.func.jvp(g, (flat,), (v,))[1]
                return out

            try:
                out += vmap(one, in_dims=1, out_dims=1)(V)
            except NotImplementedError as e:
                if "jvp" not in str(e):
                    raise
                raise UnsupportedModelError(
                    "influence's iterative solvers (cg, lissa, loo_step) take Hessian-vector "
                    "products in forward mode (torch.func.jvp), but the model calls a custom "
                    f"autograd.Function without a jvp ({e}). Use solver='explicit' (reverse "
                    "mode), or give the Function a jvp staticmethod."
                ) from e
        self.n_grad_evals += int(self.X_train.shape[0]) * 2
        return out

    def refuse_once_differentiable(self, out: torch.Tensor, leaf: torch.Tensor, *, who: str,
                                   instead: str) -> None:
        """Refuse second derivatives of ``out`` with respect to ``leaf`` through a custom
        ``autograd.Function`` whose backward is ``@once_differentiable`` (the walk
        integrated_hessians and :meth:`hessian` use; ``who`` and ``instead`` word the refusal).
        For estimators that differentiate a recorded graph twice themselves: metagradient's
        replay of training gave credits 0.31 off (of at most 0.70) through such a tanh, with no
        error (rev51d). There the Function's node does not reach ``leaf``: torch wraps the
        backward's result of a differentiated training step in a ``DelayedError`` node on
        detached copies, which cuts the weights' path instead of raising; so any such node in
        the graph is refused too."""
        from .features import _marks_once_differentiable, _refuse_once_differentiable

        _refuse_once_differentiable(out, leaf, who=who, instead=instead)
        probe = torch.zeros(1, requires_grad=True)
        delayed = type(torch._C._functions.DelayedError(b"probe", 1)(probe).grad_fn)
        seen: dict[int, Any] = {}  # id -> node: holds every visited node
        marked: set[str] = set()
        cut = False
        stack = [out.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen[id(node)] = node
            cut = cut or type(node) is delayed
            fwd = getattr(node, "_forward_cls", None)
            if _marks_once_differentiable(getattr(fwd, "backward", None)):
                marked.add(repr(getattr(fwd, "__qualname__", fwd)))
            stack.extend(nxt for nxt, _ in getattr(node, "next_functions", ()))
        if cut:
            raise UnsupportedModelError(
                f"{who} needs second derivatives, but a custom autograd.Function whose backward "
                "is marked @once_differentiable ran in a differentiated step"
                + (f" ({', '.join(sorted(marked))})" if marked else "")
                + ": torch cut its result off the graph (credits wrong, no error). Give it a "
                f"differentiable backward, or use a first-order method ({instead})."
            )

    def _check_second_order(self, flat: torch.Tensor, buffers: dict[str, torch.Tensor]) -> None:
        """Refuse Hessians through a custom ``autograd.Function`` whose backward is
        ``@once_differentiable`` (once per game, from the graphs of the training loss taken in
        plain autograd over the same row blocks as :meth:`hvp`). Under ``torch.func`` its
        backward's result carries no derivative, so the Hessian silently lost every term
        through it: influence on a tanh MLP with such a tanh gave -0.020 where the true
        influence is 0.126 (aud51d). Every block, not one row: a model whose forward pass
        takes the Function only for some batches (here: more than one row) passed a one-row
        check and its explicit influence was 0.011 off on credits of 0.16 (rev51d); the walk
        costs one forward pass over the training rows, less than one Hessian-vector product."""
        if self._second_order_checked:
            return
        from .features import _refuse_once_differentiable

        leaf = flat.detach().clone().requires_grad_(True)
        for r in self._row_blocks():
            with torch.enable_grad():
                val = self.objective(leaf, r, buffers)
            _refuse_once_differentiable(
                val, leaf, who="influence (the training loss's Hessian)",
                instead="trak, grad_dot, tracin, representer, or influence(solver='ekfac')")
            del val
        self._second_order_checked = True

    def _param_chunk(self, rows: int) -> int:
        """Parameter vectors per vmapped chunk so that ``chunk x rows x n_params`` floats fit."""
        return max(1, int(GRAD_BUDGET_BYTES // (8 * max(rows, 1) * max(self.n_params, 1) * 2)))

    def loo_objective_grads(self, flats: torch.Tensor, drop: torch.Tensor | None,
                            buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Gradients of leave-one-out training objectives at many parameter vectors.

        Row ``k`` (``flats``: ``K x n_params``, ``drop``: ``K`` example indices) is the gradient
        at ``flats[k]`` of the training objective without example ``drop[k]``:
        ``grad objective(theta_k) - s grad loss_{drop[k]}(theta_k)`` (``s`` =
        :attr:`removal_scale`); ``drop=None`` keeps every example (the full objective's
        gradient). Costs ``K x (n_train + 1)`` gradient evaluations, vmapped in chunks bounded by
        the gradient memory budget. ``buffers``: the model's buffers (default: the explained
        model's). Returns ``K x n_params``.
        """
        K = int(flats.shape[0])
        out = torch.zeros(K, self.n_params, dtype=self.dtype)
        for r in self._row_blocks():
            rows = len(range(*r.indices(int(self.X_train.shape[0]))))
            g = grad(lambda f, r=r: self.objective(f, r, buffers))
            out += vmap(g, chunk_size=self._param_chunk(rows))(flats)
        buf = buffers or {}

        def one(f: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.loss(self._forward({**buf, **self.unflatten(f)}, x[None]), y[None])[0]

        self.n_grad_evals += K * int(self.X_train.shape[0])
        if drop is None:
            return out
        idx = torch.as_tensor(drop, dtype=torch.long)
        self.n_grad_evals += K
        out -= self.removal_scale * vmap(grad(one))(flats, self.X_train[idx], self.y_train[idx])
        return out

    def test_outputs_at(self, flats: torch.Tensor,
                        buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Explained outputs of the test points under each parameter vector: ``K x batch``
        (``buffers``: the model's buffers; default the explained model's)."""
        buf = buffers or {}

        def one(f: torch.Tensor) -> torch.Tensor:
            return self.explained(self._forward({**buf, **self.unflatten(f)}, self.X_test), self.y_test)

        with torch.no_grad():
            return vmap(one, chunk_size=self._param_chunk(self.n_samples))(flats)

    def to_players(self, scores: torch.Tensor) -> torch.Tensor:
        """Sum example-level credits ``batch x n_train`` into player credits ``batch x players``."""
        g = torch.as_tensor(self.data.groups, dtype=torch.long)
        if self.data.n_players == self.data.n_train and bool(torch.all(g == torch.arange(len(g)))):
            return scores
        out = torch.zeros(scores.shape[0], self.data.n_players, dtype=scores.dtype)
        return out.index_add_(1, g, scores)

    # ---------------------------------------------------------------- values
    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        m = masks.detach().cpu().double().numpy()
        B = self.n_samples
        flat_masks = m if shared else m.reshape(-1, m.shape[-1])
        ex = self.data.example_masks(flat_masks)
        bank = self._retrain_bank()
        before = bank.n_fits
        try:  # under a budget the determinism check waits for attribution(), where it has room
            P = bank.params(ex, check=self.fit_budget is None)
        finally:
            self.n_fits += bank.n_fits - before
        self._check_spec(bank)
        vals = torch.empty(len(P), B, dtype=torch.float64)
        with torch.no_grad():
            for k in range(len(P)):
                # the game's CPU float64 buffers for any the bank does not store (non-persistent
                # ones): the module's own may sit on another device or in another dtype
                state = {**self._buffers, **self._state_from_flat(bank, P[k])}
                out = _output_tensor(self._run_module(state, self.X_test))
                vals[k] = self.explained(out.to(self.dtype), self.y_test)
        self.engine.n_rows += len(P) * B
        self._check_full_model(ex, vals)
        if shared:
            return vals.T[:, :, None].contiguous()
        K = m.shape[1]
        v = vals.reshape(B, K, B)
        idx = torch.arange(B)
        return v[idx, :, idx][:, :, None].contiguous()

    def _check_full_model(self, ex: np.ndarray, vals: torch.Tensor) -> None:
        """Warn (once per game) when the retrained model on all of ``X_train`` is not the
        explained model: the retraining credits then explain another model."""
        if self._model_checked:
            return
        full = np.flatnonzero(np.all(ex == 1.0, axis=1))
        if len(full) == 0:
            return
        self._model_checked = True
        v_bank = vals[int(full[0])]
        gap = float((v_bank - self.model_values).abs().max())
        scale = 1.0 + float(self.model_values.abs().max())
        if gap > MODEL_GAP_TOL * scale:
            warnings.warn(
                f"the model that fit retrains on all of X_train (seed={self.data.seed}) is not the "
                f"explained model: their explained outputs on the test points differ by up to "
                f"{gap:.3g} (e.g. {float(v_bank[0]):.6g} vs {float(self.model_values[0]):.6g}), so "
                "retraining credits explain fit's model, not this one. Explain the model "
                "fit(X_train, y_train, seed=...) returns, or pass TrainingData(seed=<the seed it "
                "was trained with>).",
                ModelMismatchWarning, stacklevel=user_stacklevel())

    def _check_spec(self, bank: RetrainBank) -> None:
        spec = bank.spec or []
        state = {k: tuple(v.shape) for k, v in float_state(self.module)}
        mine = [(k, s) for k, s in state.items()]
        if mine != list(spec):
            raise InputError(
                f"fit returns models with state {list(spec)[:4]}... but the explained model has "
                f"{mine[:4]}...; pass the model trained by the same fit on all of X_train."
            )

    def _state_from_flat(self, bank: RetrainBank, flat: np.ndarray) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        assert bank.spec is not None
        t = torch.as_tensor(flat, dtype=self.dtype)
        for k, shape in bank.spec:
            size = int(np.prod(shape, dtype=np.int64))
            out[k] = t[i : i + size].reshape(shape)
            i += size
        return out
