"""Small models with known structure for the component-game tests (import as
``from component_models import ...``; the ``planted`` fixture is in ``conftest.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

TRIG_DIM = 0  # residual channel that only the planted head can read
CLS, TRIGGER, BLANK = 0, 1, 2


class TwoLinear(nn.Module):
    """y = W2 (W1 x): hidden neurons contribute w2_j * h_j exactly."""

    def __init__(self, d_in: int = 5, d_hidden: int = 4, d_out: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden, bias=False)
        self.fc2 = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class MLP(nn.Module):
    def __init__(self, d_in: int = 6, d_hidden: int = 5, d_out: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.out = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(self.act(self.fc1(x)))))


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(h.flatten(1))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, mlp: bool = True) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d)) if mlp else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, x, x, need_weights=False)[0]
        if self.mlp is not None:
            x = x + self.mlp(x)
        return x


class TinyTransformer(nn.Module):
    """Token classifier read at position 0 (a CLS token)."""

    def __init__(self, vocab: int = 10, d: int = 16, heads: int = 4, layers: int = 2,
                 seq_len: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.1 * torch.randn(seq_len, d))
        self.layers = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.head = nn.Linear(d, 2)

    def block(self, i: int) -> Block:
        """Layer ``i`` with its type (``self.layers[i]`` is a plain ``nn.Module`` to a type checker)."""
        blk = self.layers[i]
        assert isinstance(blk, Block)
        return blk

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids) + self.pos[: ids.shape[1]]
        for blk in self.layers:
            x = blk(x)
        return self.head(x[:, 0])


def _enforce(model: TinyTransformer, layer: int, head: int) -> None:
    """Only head ``head`` of layer ``layer`` can read the trigger channel; nothing writes to it."""
    with torch.no_grad():
        d = model.emb.weight.shape[1]
        hd = d // model.block(0).attn.num_heads
        model.emb.weight[:, TRIG_DIM] = 0.0
        model.emb.weight[TRIGGER] = model.emb.weight[BLANK]
        model.emb.weight[TRIGGER, TRIG_DIM] = 1.0
        model.emb.weight[BLANK, TRIG_DIM] = 0.0
        model.pos[:, TRIG_DIM] = 0.0
        for li in range(len(model.layers)):
            blk = model.block(li)
            w = blk.attn.in_proj_weight  # (3d, d): q, k, v
            keep = torch.zeros(3 * d, dtype=torch.bool)
            if li == layer:
                for part in range(3):
                    keep[part * d + head * hd: part * d + (head + 1) * hd] = True
            w[~keep, TRIG_DIM] = 0.0
            blk.attn.out_proj.weight[TRIG_DIM] = 0.0
            blk.attn.out_proj.bias[TRIG_DIM] = 0.0
            assert blk.mlp is not None
            first, last = blk.mlp[0], blk.mlp[2]
            assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
            first.weight[:, TRIG_DIM] = 0.0
            last.weight[TRIG_DIM] = 0.0
            last.bias[TRIG_DIM] = 0.0


def trigger_data(n: int, seq_len: int = 8, vocab: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences CLS + tokens with a TRIGGER (label 1) or a BLANK (label 0) at a random position.

    Returns ``(ids, labels, counterfactual ids with the trigger replaced by BLANK)``.
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, seq_len), generator=g)
    ids[:, 0] = CLS
    pos = torch.randint(1, seq_len, (n,), generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    ids[torch.arange(n), pos] = torch.where(labels == 1, TRIGGER, BLANK)
    cf = ids.clone()
    cf[torch.arange(n), pos] = BLANK
    return ids, labels, cf


_PLANTED: dict[str, TinyTransformer] = {}


def planted_transformer(layer: int = 1, head: int = 2) -> TinyTransformer:
    """A 2-layer, 4-head transformer trained (seconds) so that only (layer, head) sees the trigger."""
    key = f"{layer}-{head}"
    if key in _PLANTED:
        return _PLANTED[key]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is several times faster on a busy machine
    try:
        model = _train(layer, head)
    finally:
        torch.set_num_threads(threads)
    _PLANTED[key] = model
    return model


def _train(layer: int, head: int) -> TinyTransformer:
    torch.manual_seed(0)
    model = TinyTransformer()
    _enforce(model, layer, head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids, labels, _ = trigger_data(512, seed=1)
    for step in range(150):
        idx = torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(model(ids[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        _enforce(model, layer, head)
    model.eval()
    return model


def hook_count(model: nn.Module) -> int:
    """Hooks of every kind on every submodule (0 when tribute cleaned up)."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_forward_hooks_with_kwargs")
    return sum(len(getattr(m, n, {})) for m in model.modules() for n in names)


def overridden_forwards(model: nn.Module) -> int:
    return sum("forward" in m.__dict__ for m in model.modules())


class Last(nn.Module):
    """A Hugging Face encoder/decoder's last position, first two features: a small output to
    explain components of a model built from a config."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.m(input_ids=ids).last_hidden_state[:, -1, :2]
        return out


def hf_last(build: Callable[[], nn.Module]) -> Last:
    """``Last(build())`` in float64, eval mode, seeded, without transformers' init warnings."""
    logging.disable(logging.WARNING)
    try:
        torch.manual_seed(0)
        return Last(build()).double().eval()
    finally:
        logging.disable(logging.NOTSET)
