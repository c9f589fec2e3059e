"""``tribute serve`` on the command line: options, errors, and a real process serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from _explorer_live import free_port

from tribute.cli import main


def test_serve_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--model", "--weights", "--data", "--results", "--host", "--port", "--token"):
        assert opt in out


@pytest.mark.parametrize("argv, words", [
    (["serve", "--data", "x.npy"], "--data needs --model"),
    (["serve", "--weights", "w.safetensors"], "--weights needs --model"),
    (["serve", "--results", "/nonexistent/folder"], "is not a folder"),
    (["serve", "--host", "0.0.0.0", "--token", "short"], "too short"),
    (["serve", "--port", "70000"], "--port 70000"),
])
def test_serve_refuses_bad_options(argv: list[str], words: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--no-text"]) == 2
    assert words in capsys.readouterr().err


def test_serve_in_a_real_process_prints_its_address_and_answers() -> None:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tribute.cli", "serve", "--port", str(port),
                             "--no-text"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
        assert f"http://127.0.0.1:{port}/" in line, (line, err)
        t0 = time.time()
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=30) as r:
                info = json.loads(r.read())
            if info["subjects"][0]["ready"] or time.time() - t0 > 120:
                break
            time.sleep(0.2)
        assert [s["name"] for s in info["subjects"]] == ["digits"]
        assert info["subjects"][0]["ready"]  # preloaded in the background after start-up
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_checks_the_npz_arrays_at_startup(tmp_path) -> None:
    """Review finding 13: ``tribute serve --data two.npz`` without --data-key started and failed
    only when the subject was opened; the array names are now checked when the server is set up."""
    import numpy as np

    from tribute.errors import InputError
    from tribute.explorer import build_config

    np.savez(tmp_path / "two.npz", X=np.zeros((3, 4), np.float32), y=np.zeros(3))
    data = str(tmp_path / "two.npz")
    with pytest.raises(InputError, match=r"--data: .*two\.npz' holds 2 arrays \['X', 'y'\]; this "
                                         r"takes one array: name it with --data-key 'X'\.$"):
        build_config(model="nowhere_mod:make", data=data, text=False)
    with pytest.raises(InputError, match=r"--data-key 'X,y' names several arrays; the explorer "
                                         r"explains single-input models"):
        build_config(model="nowhere_mod:make", data=data, data_key="X,y", text=False)
    with pytest.raises(InputError, match=r"--data-key 'Z': \['Z'\] not in"):
        build_config(model="nowhere_mod:make", data=data, data_key="Z", text=False)
    assert build_config(model="nowhere_mod:make", data=data, data_key="X", text=False) is not None
