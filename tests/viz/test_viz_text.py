from __future__ import annotations

import re

import numpy as np
import pytest
from viz_helpers import FakeAttribution

from tribute import viz

SPAN = re.compile(r'<span style="([^"]*)" title="([^"]*)">(.*?)</span>', re.S)


def test_one_span_per_token_with_sign_colours():
    tokens = ["good", "bad", "meh", "great"]
    out = viz.text(tokens, np.array([0.5, -1.0, 0.0, 1.0]))
    spans = SPAN.findall(out)
    assert out.count("<span") == len(tokens) == len(spans)
    assert [s[2] for s in spans] == tokens
    styles = [s[0] for s in spans]
    assert "rgba(202, 0, 32, 0.500)" in styles[0]  # red, half opacity
    assert "rgba(5, 113, 176, 1.000)" in styles[1]  # blue, full opacity
    assert ", 0.000)" in styles[2]  # zero credit: transparent
    assert "rgba(202, 0, 32, 1.000)" in styles[3]
    assert [s[1] for s in spans] == ["+0.5", "-1", "+0", "+1"]
    assert "<link" not in out and "class=" not in out  # inline styles only


def test_tokens_and_tooltips_are_escaped():
    tokens = ["<script>alert('x')</script>", '"quoted"', "a&b", "<b>"]
    out = viz.text(tokens, [1.0, -1.0, 0.5, 0.2], title="<i>t</i>")
    assert "<script>" not in out and "<b>" not in out and "<i>" not in out
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert "&quot;quoted&quot;" in out and "a&amp;b" in out
    assert out.count("<span") == 4


def test_unsigned_uses_one_colour_and_attribution_input():
    attr = FakeAttribution(np.array([[0.2, -0.4]]))  # batch of 1
    out = viz.text(["x", "y"], attr, signed=False)
    assert out.count("rgba(202, 0, 32,") == 2 and "rgba(5, 113, 176" not in out
    assert 'title="0.4"' in out


def test_all_zero_values_do_not_divide_by_zero():
    out = viz.text(["a", "b"], [0.0, 0.0])
    assert out.count(", 0.000)") == 2 and "nan" not in out


def test_text_errors_name_arguments():
    with pytest.raises(ValueError, match="tokens has 2 entries but values has 3"):
        viz.text(["a", "b"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"values contains 1 NaN value\(s\) at index 1"):
        viz.text(["a", "b"], [1.0, np.nan])
    with pytest.raises(TypeError, match="tokens must be a sequence"):
        viz.text("a b", [1.0, 2.0])
