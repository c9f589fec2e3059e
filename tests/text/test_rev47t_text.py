"""rev47t: the refusal of non-binary presences on text games that cannot blend a token names
the presence it saw, also outside [0, 1] (infidelity's gaussian ``1 - u`` gives 1.25 or -0.2):
it read ``presence nan`` there (it looked for a value strictly between 0 and 1)."""

from __future__ import annotations

import pytest
import torch
from test_aud47t_text import _TEXT, _TOK, _Calls, _Functional, _NoModule

import tribute
from tribute.errors import InputError

pytestmark = pytest.mark.text


@pytest.mark.parametrize(("cls", "removal"), [(_Calls, "delete"), (_NoModule, "mask"), (_Functional, "mask")],
                         ids=["delete", "no-embedding-module", "module-never-run"])
@pytest.mark.parametrize(("z", "shown"), [([1.25, 1.0, 1.0, 1.0, 1.0], "1.25"),
                                          ([-0.2, 1.0, 0.0, 1.0, 1.0], "-0.2"),
                                          ([1.0, 0.0, 0.3, 1.0, 0.0], "0.3")])
def test_refusal_names_the_presence_seen(cls: type[_Calls], removal: str, z: list[float], shown: str) -> None:
    game = tribute.build_game(cls().eval(), [_TEXT], tokenizer=_TOK, removal=removal, target=0,
                              progress=False)
    game.value(torch.ones((1, 5), dtype=torch.float64))  # the reference pass (binary) runs
    with pytest.raises(InputError, match=rf"presence {shown}: method='sobol'"):
        game.value(torch.tensor([z], dtype=torch.float64))
