"""Generation attributions as a self-contained HTML heat map: :func:`generation_heatmap`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import _check_finite
from ._text import _NEG_RGB, _POS_RGB, _WHITE_TEXT_ABOVE

__all__ = ["generation_heatmap"]


def _cell(v: float, scale: float, signed: bool) -> str:
    opacity = min(abs(v) / scale, 1.0) if scale > 0 else 0.0
    rgb = _POS_RGB if (v >= 0 or not signed) else _NEG_RGB
    fg = "#ffffff" if opacity > _WHITE_TEXT_ABOVE else "#111111"
    tip = f"{v:+.4g}" if signed else f"{abs(v):.4g}"
    return (f'<td style="background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {opacity:.3f}); '
            f'color: {fg}; padding: 2px 6px; text-align: right;" '
            f'title="{html.escape(tip, quote=True)}">{html.escape(tip, quote=True)}</td>')


def generation_heatmap(
    prompt_tokens: Sequence[str],
    generated_tokens: Sequence[str],
    matrix: Any,
    *,
    total: Any = None,
    signed: bool = True,
    title: str | None = None,
) -> str:
    """A ``generated x prompt`` credit matrix as an HTML table with inline styles only.

    Rows are generated tokens (plus a ``total`` row for the whole continuation when given),
    columns are prompt players; each cell is red (the player raises that token's
    log-probability) or blue (lowers it), with opacity ``|value| / max|value|`` of its row.
    Every token is HTML-escaped, so any string is safe to embed.

    Args:
        prompt_tokens: the P prompt players, as displayed.
        generated_tokens: the G generated tokens.
        matrix: ``G x P`` credits (finite: a NaN or inf cell is refused, it would blank its
            whole row's colour scale).
        total: optional ``P`` credits of the whole continuation (an extra row). default=None.
        signed: colour by sign (True) or magnitude only (False). default=True.
        title: caption above the table. default=None.

    Returns:
        An HTML string (one ``<table>`` in a ``<div>``).
    """
    if isinstance(prompt_tokens, str) or isinstance(generated_tokens, str):
        raise TypeError("generation_heatmap: prompt_tokens and generated_tokens must be sequences "
                        "of strings, not one string.")
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape != (len(generated_tokens), len(prompt_tokens)):
        raise ValueError(
            f"generation_heatmap: matrix has shape {m.shape}; expected "
            f"({len(generated_tokens)}, {len(prompt_tokens)}) = (generated tokens, prompt players)."
        )
    m = _check_finite(m, "generation_heatmap: matrix")
    rows = [(str(g), m[i]) for i, g in enumerate(generated_tokens)]
    if total is not None:
        t = _check_finite(np.asarray(total, dtype=np.float64).reshape(-1), "generation_heatmap: total")
        if t.size != len(prompt_tokens):
            raise ValueError(f"generation_heatmap: total has {t.size} entries, expected {len(prompt_tokens)}.")
        rows.append(("total", t))
    th = 'style="padding: 2px 6px; font-weight: normal; white-space: pre;"'
    head = "".join(f"<th {th}>{html.escape(str(p), quote=True)}</th>" for p in prompt_tokens)
    body = []
    for label, vals in rows:
        scale = float(np.abs(vals).max()) if vals.size else 0.0
        cells = "".join(_cell(float(v), scale, signed) for v in vals)
        body.append('<tr><th style="padding: 2px 6px; text-align: left; white-space: pre;">'
                    f'{html.escape(label, quote=True)}</th>'
                    f"{cells}</tr>")
    cap = (f'<div style="font-weight: bold; margin-bottom: 4px;">{html.escape(title, quote=True)}</div>'
           if title else "")
    return ('<div style="font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; '
            'font-size: 13px; color: #111111; background: #ffffff;">'
            f'{cap}<table style="border-collapse: collapse;"><tr><th {th}></th>{head}</tr>'
            f'{"".join(body)}</table></div>')
