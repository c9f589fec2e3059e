"""Benchmark data with known ground truth, real data from scikit-learn, and small models.

Everything here depends only on numpy, scipy, torch, scikit-learn and safetensors.

Datasets (all return a :class:`Dataset`; by name through :func:`make`/:func:`available`):

* :func:`tabular_symbolic`: a known symbolic function of a few Gaussian features; its
  :class:`SymbolicFunction` (``meta["model"]``) gives exact gradients, ablation, Shapley,
  Banzhaf and integrated-gradients values.
* :func:`tabular_correlated`: unused features correlated with used ones (true to the model
  vs true to the data; :func:`conditional_shapley_linear_gaussian`).
* :func:`planted_images`: a plus pattern planted on noise or texture, with a distractor.
* :func:`difull_grid` + :func:`difull_model`: digit mosaics where only one cell can matter.
* :func:`planted_text`: token sequences with trigger tokens, for :class:`TinyTransformer`.
* :func:`digits`, :func:`wine`, :func:`breast_cancer`, :func:`diabetes`: scikit-learn data.

Models: :func:`small_cnn`, :class:`MLP`, :class:`SmallCNN`, :class:`TinyTransformer`,
:class:`DiFullModel`; trained (deterministic, cached as safetensors) by :func:`train_mlp`,
:func:`train_cnn`, :func:`train_transformer`.
"""

from ._base import Dataset, available, make, register
from ._cache import default_cache_dir
from ._images import PLUS, RING, difull_grid, planted_images
from ._models import MLP, DiFullModel, SmallCNN, TinyTransformer, TransformerBlock, small_cnn
from ._real import breast_cancer, diabetes, digits, patch_groups, wine
from ._tabular import (
    TRANSFORMS,
    SymbolicFunction,
    Term,
    conditional_shapley_linear_gaussian,
    tabular_correlated,
    tabular_symbolic,
)
from ._text import SubwordTokenizer, planted_text, planted_words, planted_words_tokenizer
from ._train import difull_model, train_cnn, train_mlp, train_transformer

__all__ = [
    "MLP",
    "PLUS",
    "RING",
    "TRANSFORMS",
    "Dataset",
    "DiFullModel",
    "SmallCNN",
    "SubwordTokenizer",
    "SymbolicFunction",
    "Term",
    "TinyTransformer",
    "TransformerBlock",
    "available",
    "breast_cancer",
    "conditional_shapley_linear_gaussian",
    "default_cache_dir",
    "diabetes",
    "difull_grid",
    "difull_model",
    "digits",
    "make",
    "patch_groups",
    "planted_images",
    "planted_text",
    "planted_words",
    "planted_words_tokenizer",
    "register",
    "small_cnn",
    "tabular_correlated",
    "tabular_symbolic",
    "train_cnn",
    "train_mlp",
    "train_transformer",
    "wine",
]
