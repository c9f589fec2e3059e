"""Small model architectures used with the benchmark datasets (untrained constructors).

Module names are stable so that component attribution can address them (``features.0``,
``layers.0.attn``, ...). ReLUs are not in-place, so hooks see every activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network; inputs of any shape are flattened after the batch axis.

    Modules: ``layers`` (``Linear``/``ReLU`` pairs: ``layers.0``, ``layers.2``, ...) and
    ``head`` (the output ``Linear``).

    Args:
        in_features: Flattened input size.
        hidden: Widths of the hidden layers; default=(64, 64).
        out_features: Outputs (classes, or 1 for regression); default=1.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (64, 64),
                 out_features: int = 1) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        prev = in_features
        for width in hidden:
            mods += [nn.Linear(prev, width), nn.ReLU()]
            prev = width
        self.layers = nn.Sequential(*mods)
        self.head = nn.Linear(prev, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``batch × ... -> batch × out_features``."""
        out: torch.Tensor = self.head(self.layers(x.flatten(1)))
        return out


class SmallCNN(nn.Module):
    """Two conv blocks and a two-layer classifier.

    ``features``: ``0`` Conv3×3 → ``1`` ReLU → ``2`` MaxPool2 → ``3`` Conv3×3 → ``4`` ReLU →
    ``5`` MaxPool2; ``classifier``: ``0`` Flatten → ``1`` Linear → ``2`` ReLU → ``3`` Linear.

    Args:
        in_channels: Input channels; default=1.
        n_classes: Outputs; default=10.
        size: Input side length (divisible by 4); default=32.
        channels: Output channels of the two convolutions; default=(8, 16).
        hidden: Width of the classifier's hidden layer; default=64.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, size: int = 32,
                 channels: tuple[int, int] = (8, 16), hidden: int = 64) -> None:
        super().__init__()
        if size % 4 or size < 4:
            raise ValueError(f"SmallCNN: size must be a positive multiple of 4, got {size}")
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * (size // 4) ** 2, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``batch × C × size × size -> batch × n_classes``."""
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def small_cnn(in_channels: int = 1, n_classes: int = 10, size: int = 32,
              seed: int | None = None) -> SmallCNN:
    """An untrained :class:`SmallCNN` with the same architecture :func:`train_cnn` trains.

    Args:
        in_channels: Input channels; default=1.
        n_classes: Outputs; default=10.
        size: Input side length (a multiple of 4); default=32.
        seed: If given, initialise under a forked, seeded torch RNG (the global RNG state is
            left as it was); default None draws from the global RNG like any torch module.
    """
    if seed is None:
        return SmallCNN(in_channels, n_classes, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(in_channels, n_classes, size)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``.

    ``attn`` is ``torch.nn.MultiheadAttention(batch_first=True)``. Note that it calls its
    ``out_proj`` weights functionally, so hooks on ``attn.out_proj`` never fire; hook ``attn``
    itself (its output is the sum over heads after the output projection).
    """

    def __init__(self, d_model: int, n_heads: int, d_mlp: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.GELU(), nn.Linear(d_mlp, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        out: torch.Tensor = x + self.mlp(self.ln2(x))
        return out


class TinyTransformer(nn.Module):
    """A small transformer classifier over token ids.

    Modules: ``embed`` (token ``Embedding``), ``pos_embed`` (learned positions),
    ``layers.{i}`` (:class:`TransformerBlock` with ``ln1``, ``attn``, ``ln2``, ``mlp``),
    ``norm`` (final ``LayerNorm``) and ``head`` (``Linear``). With ``pooling="cls"`` a learned
    ``cls`` vector is prepended (it is not a token, so it has no token position to attribute).

    Two entry points: ``forward(tokens)`` for int64 ids (``batch × seq_len``) and
    :meth:`forward_embeddings` for float token embeddings (``batch × seq_len × d_model``),
    so gradient methods can attribute to embeddings: ``forward(t) ==
    forward_embeddings(embed(t))``. Positional embeddings are added inside.

    Args:
        vocab_size: Number of token ids.
        seq_len: Maximum sequence length.
        n_classes: Outputs; default=2.
        d_model: Width; default=32.
        n_heads: Attention heads; default=2.
        n_layers: Blocks; default=1.
        d_mlp: Hidden width of each block's MLP; default=64.
        pooling: ``"mean"`` over positions or ``"cls"``; default="mean".
    """

    def __init__(self, vocab_size: int, seq_len: int, n_classes: int = 2, d_model: int = 32,
                 n_heads: int = 2, n_layers: int = 1, d_mlp: int = 64,
                 pooling: Literal["mean", "cls"] = "mean") -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"TinyTransformer: pooling must be 'mean' or 'cls', got {pooling!r}")
        self.seq_len = seq_len
        self.pooling = pooling
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos_embed = nn.Embedding(seq_len, d_model)
        if pooling == "cls":
            self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
            nn.init.normal_(self.cls, std=0.02)
        self.layers = nn.ModuleList(
            [TransformerBlock(d_model, n_heads, d_mlp) for _ in range(n_layers)]
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``batch × seq_len`` int64 ids -> ``batch × n_classes`` logits."""
        if tokens.dtype not in (torch.int64, torch.int32) or tokens.ndim != 2:
            raise TypeError(f"TinyTransformer.forward: expected integer token ids of shape "
                            f"(batch, seq_len), got {tokens.dtype} {tuple(tokens.shape)}; "
                            f"for float embeddings call forward_embeddings")
        return self.forward_embeddings(self.embed(tokens))

    def forward_embeddings(self, emb: torch.Tensor) -> torch.Tensor:
        """``batch × seq_len × d_model`` token embeddings -> ``batch × n_classes`` logits."""
        if emb.ndim != 3 or emb.shape[1] > self.seq_len:
            raise ValueError(f"TinyTransformer.forward_embeddings: expected (batch, seq_len "
                             f"<= {self.seq_len}, d_model), got {tuple(emb.shape)}")
        positions = torch.arange(emb.shape[1], device=emb.device)
        x = emb + self.pos_embed(positions)[None]
        if self.pooling == "cls":
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        pooled = x[:, 0] if self.pooling == "cls" else x.mean(dim=1)
        out: torch.Tensor = self.head(pooled)
        return out


class DiFullModel(nn.Module):
    """Applies a per-cell classifier to every cell of a grid; the output is one cell's logits.

    After Rao et al. (2022, "Towards Better Understanding Attribution Methods"): the grid is
    cut into cells, ``cell_model`` runs on each cell separately (as one batch), and only the
    designated cell's logits are returned, so by construction the other cells cannot
    influence the output (their gradient is exactly zero and changing them, even to NaN,
    leaves the output unchanged). :meth:`cell_logits` exposes all cells' logits.

    Args:
        cell_model: Classifier for ``C × cell × cell`` inputs.
        grid: Cells per side.
        cell: Cell side length in pixels.
        active_cell: Designated cell, row-major.
    """

    def __init__(self, cell_model: nn.Module, grid: int, cell: int, active_cell: int) -> None:
        super().__init__()
        if not 0 <= active_cell < grid * grid:
            raise ValueError(f"DiFullModel: active_cell must be in 0..{grid * grid - 1}, "
                             f"got {active_cell}")
        self.cell_model = cell_model
        self.grid = grid
        self.cell = cell
        self.active_cell = active_cell

    def cell_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``batch × C × (grid·cell) × (grid·cell) -> batch × grid² × n_classes``."""
        b, c, h, w = x.shape
        g, s = self.grid, self.cell
        if h != g * s or w != g * s:
            raise ValueError(f"DiFullModel: expected inputs of side {g * s} (grid={g}, "
                             f"cell={s}), got {tuple(x.shape)}")
        cells = x.reshape(b, c, g, s, g, s).permute(0, 2, 4, 1, 3, 5).reshape(b * g * g, c, s, s)
        out: torch.Tensor = self.cell_model(cells).reshape(b, g * g, -1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``batch × C × H × W -> batch × n_classes``: the designated cell's logits."""
        return self.cell_logits(x)[:, self.active_cell]
