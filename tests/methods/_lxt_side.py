"""Run the ``lxt`` package (2.1, "efficient" AttnLRP) in a separate process; print nothing, write npz.

lxt patches library classes globally and for good (``nn.LayerNorm.forward``, attention
functions of a modeling module), so the parity tests run it here, never in the test process.

Adjustments to run lxt 2.1 against the installed Transformers (5.x), using only lxt's own rule
functions: ``lxt.efficient.models.bert`` (a copy of an older ``modeling_bert``) and
``vit_torch`` (torchvision) fail to import and are stubbed; ``patch_attention`` replaces the
attention registry by a plain dict that Transformers 5 cannot query, so the models run with
``attn_implementation="eager"`` and the module's ``eager_attention_forward`` is wrapped by
lxt's own ``wrap_attention_forward`` (the same Q/4, K/4, V/2 gradient split). For BERT the
patch map is assembled from lxt's rule functions exactly where lxt's BERT copy applies them
(LayerNorm identity rule, attention split, identity rule on the intermediate activation and
the pooler's tanh).

Usage: python _lxt_side.py MODEL_DIR KIND(gpt2|llama|bert) INPUTS.npz OUT.npz VARIANT(attnlrp|cp) [REPEATS]
(with REPEATS, ``seconds`` in the output is the median time of one relevance pass).
"""

from __future__ import annotations

import importlib
import sys
import time
import types
from typing import Any

import numpy as np
import torch


def _stub_lxt() -> None:
    for name in ("lxt.efficient.models.bert", "lxt.efficient.models.vit_torch"):
        mod = types.ModuleType(name)
        mod.modeling_bert = types.ModuleType("stub_bert")  # type: ignore[attr-defined]
        mod.vision_transformer = types.ModuleType("stub_vit")  # type: ignore[attr-defined]
        mod.attnLRP = {}  # type: ignore[attr-defined]
        mod.cp_LRP = {}  # type: ignore[attr-defined]
        sys.modules[name] = mod


def main() -> None:
    model_dir, kind, inp, out, variant = sys.argv[1:6]
    torch.set_num_threads(1)
    _stub_lxt()
    from functools import partial

    from lxt.efficient import monkey_patch
    from lxt.efficient.patches import (
        cp_wrap_attention_forward,
        dropout_forward,
        layer_norm_forward,
        patch_method,
        wrap_attention_forward,
    )
    from lxt.efficient.rules import identity_rule_implicit
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    wrap = wrap_attention_forward if variant == "attnlrp" else cp_wrap_attention_forward
    hf: Any = importlib.import_module(f"transformers.models.{kind}.modeling_{kind}")
    pmap: dict[Any, Any]
    if kind in ("gpt2", "llama"):
        lx: Any = importlib.import_module(f"lxt.efficient.models.{kind}")
        pmap = {k: v for k, v in (lx.attnLRP if variant == "attnlrp" else lx.cp_LRP).items() if k is not hf}
    else:

        def intermediate_forward(self: object, hidden_states: torch.Tensor) -> torch.Tensor:
            h = self.dense(hidden_states)  # type: ignore[attr-defined]
            return identity_rule_implicit(self.intermediate_act_fn, h)  # type: ignore[attr-defined]

        def pooler_forward(self: object, hidden_states: torch.Tensor) -> torch.Tensor:
            h = self.dense(hidden_states[:, 0])  # type: ignore[attr-defined]
            return identity_rule_implicit(self.activation, h)  # type: ignore[attr-defined]

        pmap = {
            torch.nn.LayerNorm: partial(patch_method, layer_norm_forward),
            torch.nn.Dropout: partial(patch_method, dropout_forward),
            hf.BertIntermediate: partial(patch_method, intermediate_forward),
            hf.BertPooler: partial(patch_method, pooler_forward),
        }
    monkey_patch(hf, pmap)
    hf.eager_attention_forward = wrap(hf.eager_attention_forward)

    data = np.load(inp)
    ids = torch.as_tensor(data["ids"])
    mask = torch.as_tensor(data["mask"])
    target = int(data["target"])
    loader = AutoModelForSequenceClassification if kind == "bert" else AutoModelForCausalLM
    model = loader.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    kw = {"token_type_ids": torch.as_tensor(data["types"])} if "types" in data else {}

    def once() -> tuple[torch.Tensor, torch.Tensor]:
        emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb, attention_mask=mask, **kw).logits
        if kind != "bert":
            last = mask.long().sum(1) - 1
            logits = logits[torch.arange(ids.shape[0]), last]
        logits[:, target].sum().backward()
        assert emb.grad is not None
        return (emb * emb.grad).sum(-1), logits[:, target]

    rel, logit = once()
    times = []
    for _ in range(int(sys.argv[6]) if len(sys.argv) > 6 else 0):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    np.savez(out, relevance=rel.detach().numpy(), logits=logit.detach().numpy(),
             seconds=float(np.median(times)) if times else float("nan"))


if __name__ == "__main__":
    main()
