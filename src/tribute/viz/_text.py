"""Token-level attributions as self-contained HTML: :func:`text`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import _as_vector

__all__ = ["text"]

# RdBu ends (red = positive credit), as RGB for rgba() backgrounds.
_POS_RGB = (202, 0, 32)
_NEG_RGB = (5, 113, 176)
_WHITE_TEXT_ABOVE = 0.6  # opacity above which dark text becomes hard to read


def text(
    tokens: Sequence[str],
    values: Any,
    *,
    signed: bool = True,
    sep: str = " ",
    title: str | None = None,
) -> str:
    """Tokens highlighted by their credit, as an HTML fragment with inline styles only.

    Each token becomes one ``<span>`` whose background is red (positive credit: the token
    raises the output) or blue (negative), with opacity ``|value| / max|value|`` and the
    value in a ``title`` tooltip. Tokens are HTML-escaped, so any string is safe to embed.

    Args:
        tokens: the T tokens, as displayed (``str(token)`` is used).
        values: credits, shape ``(T,)`` (or ``(1, T)``); an array, tensor or
            attribution-like object with ``.values``.
        signed: colour by sign (True) or show ``|value|`` in red only (False), default=True.
        sep: HTML-escaped text put between tokens, default=" ". Use "" for subword tokens
            that carry their own spaces.
        title: optional caption shown above the tokens, default=None.

    Returns:
        An HTML string: one ``<div>`` holding one ``<span>`` per token.
    """
    if isinstance(tokens, str):
        raise TypeError(
            "text: tokens must be a sequence of strings, not one string; "
            "split it first (e.g. text.split())"
        )
    toks = [str(t) for t in tokens]
    vals = _as_vector(values, "values", "text")
    if len(toks) != vals.size:
        raise ValueError(
            f"text: tokens has {len(toks)} entries but values has {vals.size}; "
            f"pass one value per token"
        )
    scale = float(np.abs(vals).max())
    spans = []
    for tok, v in zip(toks, vals):
        opacity = abs(v) / scale if scale > 0 else 0.0
        rgb = _POS_RGB if (v >= 0 or not signed) else _NEG_RGB
        fg = "#ffffff" if opacity > _WHITE_TEXT_ABOVE else "#111111"
        style = (
            f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {opacity:.3f}); "
            f"color: {fg}; padding: 1px 3px; margin: 0 1px; border-radius: 3px; "
            f"white-space: pre-wrap"
        )
        tip = f"{v:+.4g}" if signed else f"{abs(v):.4g}"
        spans.append(
            f'<span style="{style}" title="{html.escape(tip, quote=True)}">'
            f"{html.escape(tok, quote=True)}</span>"
        )
    head = ""
    if title:
        head = (
            '<div style="font-weight: bold; margin-bottom: 4px;">'
            f"{html.escape(title, quote=True)}</div>"
        )
    body = html.escape(sep, quote=True).join(spans)
    return (
        '<div style="font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; '
        'font-size: 14px; line-height: 1.9; color: #111111; background: #ffffff;">'
        f"{head}{body}</div>"
    )
