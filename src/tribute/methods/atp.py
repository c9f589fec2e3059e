"""AtP*'s QK fix: attribution patching with the attention softmax recomputed exactly.

For a query (or key) head player, linearising the model at the clean activation misses the
softmax's saturation. Kramár et al. (2024) recompute the attention of that head *exactly* with
the ablated query (key) and linearise only after the softmax (and after the product with the
values, which is linear): with ``z_h`` the head's clean context and ``z'_h`` its context with
the query/key ablated, the credit is

    phi_h ~ v(N) - v(N minus h) ~ <z_h - z'_h, dv/dz_h>.

One forward pass per query/key module with all its heads ablated gives every head's ``z'_h``
(heads do not interact inside one attention module). A query/key module called several
times per forward pass (weights shared across layers, e.g. ALBERT) gets one pass per call, its
heads ablated at that call only: ``z'`` of call ``c`` is then the exact local recomputation,
and the credit sums ``<z_c - z'_c, dv/dz_c>`` over calls (``dv/dz_c`` the total gradient,
which already carries call ``c``'s effect through the later calls). A grouped-query key head ``j`` (a
``k_proj`` with ``H_kv < H`` heads) serves the ``r = H / H_kv`` query heads ``j r .. j r + r - 1``
(transformers' ``repeat_kv``): with every key head ablated each query head still sees only its
own key head's ablation, so the same pass serves, and key head ``j``'s credit is the sum of
``<z_h - z'_h, dv/dz_h>`` over its ``r`` query heads. With GradDrop layers the gradient
``dv/dz`` is also taken with each layer's backward pass dropped.

Everything that touches the model goes through the component game's public, counted
primitives (:meth:`ComponentGame.probe_sites`, :meth:`ComponentGame.masked_activations`).

Reference: Kramár, Lieberum, Shah & Nanda (2024), "AtP*: An efficient and scalable method for
localizing LLM behaviour to components".
"""

from __future__ import annotations

import torch

from ..games.components import ComponentGame, Site

__all__ = ["qk_fixed_estimates"]


def qk_fixed_estimates(game: ComponentGame, drop_layers: list[str] | None = None,
                       ) -> tuple[list[int], torch.Tensor]:
    """AtP with the QK fix for the query/key head players of ``game``.

    Args:
        game: the component game.
        drop_layers: GradDrop layers (module paths), or None.

    Returns:
        ``(player ids, estimates batch x K x targets x len(ids))`` with ``K = 1`` or
        ``len(drop_layers) + 1`` (the last row is without GradDrop). Counts ``Q + K``
        evaluations per input (``Q``: one per query/key module and call).
    """
    qk = game.qk_sites()
    if not qk:
        return [], torch.zeros(game.n_samples, 1, game.n_targets, 0, dtype=torch.float64)
    ctx_paths: list[str] = []
    ctx_sites: list[Site] = []
    for ctx in qk.values():
        if ctx.path not in ctx_paths:
            ctx_paths.append(ctx.path)
            ctx_sites.append(Site(ctx.name, ctx.path, "head", ctx.kind, ctx.num_heads))
    k_count = 1 + (len(drop_layers) if drop_layers else 0)
    # clean contexts z and dv/dz (per GradDrop row): (ctx, call) -> (B x K x shape, B x K x T x shape)
    probe = game.probe_sites(ctx_sites, n_points=k_count, drop_layers=drop_layers)
    n_calls = {c: sum(1 for (ci, _) in probe if ci == c) for c in range(len(ctx_sites))}
    for c, cs in enumerate(ctx_sites):
        cs.shapes = [tuple(probe[(c, k)][0].shape[2:]) for k in range(n_calls[c])]
        cs.n_units = int(cs.num_heads or 0)
    # contexts z' with one query/key module fully ablated per coalition; a module called several
    # times per forward pass (shared weights) gets one coalition per call, ablated at that call
    # only (aud38c: ablating every call at once let call 1's ablation reach call 2's z' and
    # through it the gradient at call 1 a second time)
    q_ids = sorted(qk)
    n = game.n_players
    rows: list[tuple[int, int]] = []  # (qk site, its call or -1)
    for sid in q_ids:
        site_calls = len(game.sites[sid].shapes)
        rows += [(sid, -1)] if site_calls <= 1 else [(sid, c) for c in range(site_calls)]
    masks = torch.ones(len(rows), n, dtype=torch.float64)
    for qi, (sid, _) in enumerate(rows):
        s = game.sites[sid]
        masks[qi, s.offset : s.offset + s.n_units] = 0.0
    # (ctx, call) -> B x Q x M x shape
    recorded = game.masked_activations(masks, ctx_sites, calls=[c for _, c in rows])
    b_total, t_count = game.n_samples, game.n_targets
    est = torch.zeros(b_total, k_count, t_count, n, dtype=torch.float64)
    fixed: list[int] = []
    for qi, (sid, qcall) in enumerate(rows):
        site = game.sites[sid]
        c = ctx_paths.index(qk[sid].path)
        cs = ctx_sites[c]
        if qcall >= 0 and n_calls[c] != len(site.shapes):
            continue  # the context is not read once per call of the query/key: plain GradDrop
        if qcall <= 0:
            fixed.append(sid)
        for call in range(n_calls[c]) if qcall < 0 else [qcall]:
            z, g = probe[(c, call)]  # B x K x shape, B x K x T x shape
            zp = recorded[(c, call)][:, qi].mean(1)  # B x shape (mean over resample rows)
            dz = (z[:, 0] - zp).reshape(b_total, 1, 1, -1)  # credit ~ v(all) - v(all but i)
            prod = dz * g.reshape(b_total, k_count, t_count, -1)
            per_head = cs.reduce(prod, cs.shapes[call])  # B x K x T x query heads
            if site.n_units != cs.n_units:
                # grouped-query key heads (aud38c): ablating every key head of the module in one
                # pass changes each query head's context through its own key head only; key
                # head j's credit sums its r query heads (transformers' repeat_kv layout)
                per_head = per_head.reshape(*per_head.shape[:-1], site.n_units, -1).sum(-1)
            est[..., site.offset : site.offset + site.n_units] += per_head
    players = [p for sid in fixed for p in range(game.sites[sid].offset,
                                                 game.sites[sid].offset + game.sites[sid].n_units)]
    return players, est[..., players]
