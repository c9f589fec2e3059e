"""The registered ``attnlrp`` method: AttnLRP for transformers (one modified backward pass).

On a text game (``tribute.explain(model, texts, tokenizer=tok, method="attnlrp")``) the
relevance of a token is ``sum_d e_td * g_td``: its input (word) embedding times the
AttnLRP-modified gradient of the explained logit (see :mod:`tribute.methods.lrp.transformer`
for the rules), as the ``lxt`` package defines it; a player's relevance is the sum over its
tokens. The game's removal option plays no part (LRP has no baseline). On other feature
games with a torch model (real-valued inputs) the relevance is ``x * g`` per input element.

``Attribution.gap`` is the conservation gap ``sum_t R_t - f(x)`` over *all* input tokens
(players, special tokens and padding) per sample and target: what biases, the softmax
linearisation and (BERT, GPT-2) the position/segment embeddings absorb.
``attr.extra["unassigned"]`` holds the relevance of the tokens that are not players
([CLS], [SEP], BOS, padding), so ``values.sum(-1) + unassigned - explained == gap``.

Texts of different token lengths: a Hugging Face model (or a module declaring
``masks_padding``) gets the padded batch with its attention mask; any other module runs once
per token length on texts cut to it (:meth:`tribute.games.text.TextGame.probe_by_length`), as
the text game runs it for every other method, so a wrapper reading a fixed position (the
logits at position ``-1``) explains each text's own last token, not a padding token.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import torch

from ...attribution import Attribution
from ...errors import InputError, UnsupportedModelError, user_stacklevel
from ...games.base import Game
from ...games.features import ProbeChunk
from ...games.generation import GenerationGame
from ...games.text import TextGame, input_embedding
from ...params import Interval, Options, declare
from ..base import Cost, Method, Tags, coalition_cost, register
from ..gradients_basic import feature_game, output_transform
from .transformer import VARIANTS, attnlrp_rules

__all__ = ["AttnLRP"]


def _warn_unruled(unruled: Counter[str], attr: Attribution) -> None:
    """Warn when the model's own code applied nonlinear functions no rule covers (they went
    through as plain gradients, silently, before audit aud34l); record them in ``extra``."""
    per_pass = dict(unruled)
    attr.extra["functional_ops"] = per_pass
    if per_pass:
        calls = ", ".join(f"{k} x{v}" for k, v in sorted(per_pass.items()))
        warnings.warn(
            f"attnlrp: the model's own forward code applies nonlinear functions to "
            f"input-dependent tensors outside the modules the rules know ({calls}, over all "
            "passes); they go through as plain gradients, which is not what the AttnLRP rules "
            "define (see Attribution.gap). Use modules (nn.LayerNorm/nn.RMSNorm, activation "
            "modules) for them, or a gradient method such as 'integrated_gradients'."
            + (" An activation computed in place (inplace=True, a name ending in '_') has overwritten "
               "its input, which its rule needs: compute it out of place."
               if any(k.endswith(("_", "(inplace=True)")) for k in per_pass) else ""),
            UserWarning, stacklevel=user_stacklevel())


@register
class AttnLRP(Method):
    """Attention-aware layer-wise relevance propagation for transformers.

    The explained logit ``f(x)`` is redistributed down to the input embeddings with the
    AttnLRP rules: epsilon-0 (gradient) for linear layers, the identity rule for elementwise
    nonlinearities and LayerNorm/RMSNorm (standard deviation held constant), the uniform rule
    for the bilinear products ``Q K^T`` and ``A V`` (and gated MLPs), and the softmax rule
    that linearises at the input. One forward and one modified backward pass per input.

    Args:
        variant: ``"attnlrp"`` (Achtibat et al. 2024) or ``"cp"`` (CP-LRP, Ali et al. 2022:
            no relevance through the attention weights). default="attnlrp".
        epsilon: stabiliser of the identity rule's ratio ``y / x``. default=1e-10.

    Works on Hugging Face BERT-, GPT-2-, Llama- and ViT-style models (eager or SDPA attention) and
    modules built from the same layers; other layers are refused with the module's path.

    References: Achtibat et al. (2024), "AttnLRP: Attention-Aware Layer-Wise Relevance
    Propagation for Transformers", ICML; Ali et al. (2022), "XAI for Transformers: Better
    Explanations through Conservative Propagation", ICML.
    """

    name = "attnlrp"
    tags = Tags(family="gradient", needs_gradients=True, needs_baseline=False, has_gap=True,
                games=("feature",), model_specific=True)
    paper = "Achtibat et al. (2024), AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for Transformers"
    reads_full = False  # f(x) comes from its own forward pass
    constraints = declare({"variant": Options(VARIANTS),
                           "epsilon": Interval(float, 0.0, math.inf, closed="left")})

    def __init__(self, variant: str = "attnlrp", epsilon: float = 1e-10) -> None:
        self.variant = variant
        self.epsilon = epsilon

    def min_budget(self, game: Game) -> int:
        return 1 + game.n_evals  # one gradient pass, plus v(N) already spent

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        if isinstance(game, GenerationGame):
            raise UnsupportedModelError(
                "attnlrp does not run in explain_generation: the generation game's values are "
                "log-probabilities (a log-softmax outside the model) relaxed against a "
                "replacement-token baseline, while AttnLRP redistributes one logit with no "
                "baseline. Explain the next-token logit instead: tribute.explain(wrapper, "
                "prompt, tokenizer=tok, method='attnlrp', target=token_id) with a module that "
                "returns the causal LM's logits at the last position (see the README's AttnLRP "
                "section), or use explain_generation with 'integrated_gradients'."
            )
        fg = feature_game(game, self.name)
        root = fg.model.module
        if root is None:
            raise UnsupportedModelError(
                "attnlrp needs a torch.nn.Module (it installs rules on the model's layers); got a "
                "plain callable.")
        if output_transform(fg) is not None or fg.target.fn is not None:
            raise InputError(
                f"attnlrp: output={fg.target.output!r} (model_output={fg.target.model_output!r}; or a "
                "target function) transforms the model output "
                "outside the model, which the rules cannot see; use output='raw' (or 'logit' "
                "of a model that returns logits: AttnLRP explains the logit, so drop a final "
                "Sigmoid/Softmax) and an integer target."
            )
        params = {**self.get_params()}
        unruled: Counter[str] = Counter()
        if isinstance(fg, TextGame):
            attr = self._text(fg, root, params, unruled)
            _warn_unruled(unruled, attr)
            return attr
        with attnlrp_rules(root, self.variant, self.epsilon, unruled):
            vals, acc = fg.input_gradients(1, lambda xs, b, k: xs)
        f_x = vals[:, 0, :]
        rel = acc[1] * fg.inputs_flat().detach().to("cpu", torch.float64)[:, None, :]
        gap = rel.sum(-1) - f_x
        values = fg.elements_to_players(rel)
        attr = fg.attribution(values, self.name, params, gap=gap,
                              extra={"explained": f_x.numpy(), "variant": self.variant})
        _warn_unruled(unruled, attr)
        return attr

    def _text(self, fg: TextGame, root: torch.nn.Module, params: dict[str, Any],
              unruled: Counter[str]) -> Attribution:
        if fg.pair == "cosine":
            raise UnsupportedModelError(
                "attnlrp: pair='cosine' compares two embeddings outside the model (the encoder "
                "runs twice); AttnLRP explains one model output. Use pair='cross' with a "
                "cross-encoder, or a gradient method such as 'integrated_gradients'."
            )
        emb = input_embedding(root)
        path = next((p for p, m in root.named_modules() if m is emb), None)
        if emb is None or not path:
            raise UnsupportedModelError(
                "attnlrp: the model has no input embedding module (get_input_embeddings() or an "
                "nn.Embedding child); relevance is read at the token embeddings.")
        token_player = fg.text.token_player
        n_b, n_t, n_p = fg.n_samples, fg.n_targets, fg.n_players
        values = torch.zeros(n_b, n_t, n_p, dtype=torch.float64)
        unassigned = torch.zeros(n_b, n_t, dtype=torch.float64)
        explained = torch.zeros(n_b, n_t, dtype=torch.float64)

        def on_chunk(c: ProbeChunk) -> None:
            e = c.activations[path]  # R x L x d
            g = c.grads[0]  # R x T x L x d
            r_tok = (e[:, None] * g).sum(-1)  # R x T x L
            tp = token_player[c.sample][:, : e.shape[1]]  # R x L (a chunk cut to its texts' length)
            owned = tp >= 0
            idx = torch.where(owned, tp, torch.zeros_like(tp))[:, None, :].expand_as(r_tok)
            per = torch.zeros(r_tok.shape[0], n_t, n_p, dtype=torch.float64)
            per.scatter_add_(2, idx, torch.where(owned[:, None, :], r_tok, torch.zeros_like(r_tok)))
            values.index_add_(0, c.sample, per)
            unassigned.index_add_(0, c.sample, torch.where(owned[:, None, :], 0.0, r_tok).sum(-1))
            explained.index_add_(0, c.sample, c.values)

        # per token length for a module that could read padding (e.g. logits[:, -1]), as the
        # text game runs it for every other method
        fg.probe_by_length(on_chunk, modules=[path], grad="modules",
                 context=lambda: attnlrp_rules(root, self.variant, self.epsilon, unruled), desc=self.name)
        gap = values.sum(-1) + unassigned - explained
        extra = {"explained": explained.numpy(), "unassigned": unassigned.numpy(),
                 "variant": self.variant, "embedding": path}
        return fg.attribution(values, self.name, params, gap=gap, extra=extra)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One forward and one modified backward pass per input."""
        return coalition_cost(game, 2, grads=True, note="v(N) and one relevance (gradient) pass per input", background=False)
