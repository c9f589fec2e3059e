"""Token-level attributions as self-contained HTML: :func:`text` and :func:`text_highlight`.

:func:`text_highlight` draws an attribution of text players (``tribute.explain(model, texts,
tokenizer=...)``) on the original text: every player's characters are highlighted in place,
everything between players (spaces, unexplained words) is shown unchanged; the result is an
:class:`HTML` object that notebooks display directly.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import _as_vector

__all__ = ["HTML", "text", "text_highlight"]

# RdBu ends (red = positive credit), as RGB for rgba() backgrounds.
_POS_RGB = (202, 0, 32)
_NEG_RGB = (5, 113, 176)
_WHITE_TEXT_ABOVE = 0.6  # opacity above which dark text becomes hard to read


class HTML:
    """An HTML fragment that Jupyter renders (``_repr_html_``); ``str()`` gives the markup.

    Attributes:
        data: the HTML string.
    """

    def __init__(self, data: str) -> None:
        self.data = data

    def _repr_html_(self) -> str:
        return self.data

    def __str__(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return f"HTML({len(self.data)} characters)"


def _span_style(v: float, scale: float) -> tuple[str, str]:
    opacity = abs(v) / scale if scale > 0 else 0.0
    rgb = _POS_RGB if v >= 0 else _NEG_RGB
    fg = "#ffffff" if opacity > _WHITE_TEXT_ABOVE else "#111111"
    style = (
        f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {opacity:.3f}); "
        f"color: {fg}; padding: 1px 1px; border-radius: 3px; white-space: pre-wrap"
    )
    return style, f"{v:+.4g}"


def text_highlight(
    texts: Sequence[str],
    spans: Sequence[Sequence[int]],
    values: Any,
    *,
    title: str | None = None,
    names: Sequence[str] | None = None,
) -> HTML:
    """Players highlighted in place on the text they come from.

    Args:
        texts: the text (a string), or the texts of a pair (a sequence of strings).
        spans: one ``(segment, start, end)`` per player: the player's characters
            ``texts[segment][start:end]``; players with ``segment < 0`` (special tokens) are
            listed after the text.
        values: one credit per player, finite (a NaN player would look like a zero credit, so it
            is refused: slice a shorter text's NaN padding off, ``values[: len(spans)]``).
        title: optional caption, default=None.
        names: one name per player (``attr.extra["text_players"][i]``), used to label the
            special tokens listed after the text, default=None (``<special j>``).

    Returns:
        An :class:`HTML` fragment with inline styles only; all text is HTML-escaped.
    """
    if isinstance(texts, str):  # "the text": one string is one text, not one text per character
        texts = [texts]
    vals = _as_vector(values, "values", "text_highlight")
    if len(spans) != vals.size:
        raise ValueError(
            f"text_highlight: {len(spans)} spans but {vals.size} values; pass one value per player"
        )
    if names is not None and len(names) != vals.size:
        raise ValueError(
            f"text_highlight: {len(names)} names but {vals.size} values; pass one name per player"
        )
    for p, (sg, a, b) in enumerate(spans):
        if int(sg) >= len(texts) or (int(sg) >= 0 and not 0 <= int(a) <= int(b) <= len(texts[int(sg)])):
            raise ValueError(
                f"text_highlight: spans[{p}]={tuple(int(s) for s in (sg, a, b))} is outside the "
                f"{len(texts)} text(s) given; its credit would not be shown"
            )
    scale = float(np.abs(vals).max())
    blocks = []
    for g, part in enumerate(texts):
        own = sorted((int(a), int(b), float(v)) for (sg, a, b), v in zip(spans, vals)
                     if int(sg) == g)
        out, pos = [], 0
        for a, b, v in own:
            if a < pos:
                raise ValueError(
                    f"text_highlight: two players overlap in texts[{g}] at characters {a}..{pos}; "
                    "each character can show one player's credit"
                )
            out.append(html.escape(part[pos:a], quote=True))
            style, tip = _span_style(v, scale)
            out.append(f'<span style="{style}" title="{html.escape(tip, quote=True)}">'
                       f"{html.escape(part[a:b], quote=True)}</span>")
            pos = b
        out.append(html.escape(part[pos:], quote=True))
        blocks.append(f'<div style="white-space: pre-wrap">{"".join(out)}</div>')
    extra = [(p, float(v)) for p, ((sg, _, _), v) in enumerate(zip(spans, vals)) if int(sg) < 0]
    if extra:
        chips = []
        for j, (p, v) in enumerate(extra):
            style, tip = _span_style(v, scale)
            label = f"<special {j}>" if names is None else str(names[p])
            chips.append(f'<span style="{style}" title="{html.escape(tip, quote=True)}">'
                         f"{html.escape(label, quote=True)}</span>")
        blocks.append(f"<div>{' '.join(chips)}</div>")
    head = ""
    if title:
        head = (
            '<div style="font-weight: bold; margin-bottom: 4px;">'
            f"{html.escape(title, quote=True)}</div>"
        )
    sep = '<div style="color: #777777; margin: 2px 0;">&#8596;</div>'
    return HTML(
        '<div style="font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; '
        'font-size: 14px; line-height: 1.9; color: #111111; background: #ffffff;">'
        f"{head}{sep.join(blocks)}</div>"
    )


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
