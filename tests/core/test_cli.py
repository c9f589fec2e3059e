"""The `tribute` command: help, methods table, explain end to end, bad weights."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import tribute
from tribute.cli import main
from tribute_testing import factory_module

FACTORY = textwrap.dedent(
    """
    import torch

    def make_cnn():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(4 * 8 * 8, 3),
        )
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with factory_module(tmp_path, "factory_mod", FACTORY) as factory_mod:
        model = factory_mod.make_cnn()
        save_file(model.state_dict(), str(tmp_path / "cnn.safetensors"))
        torch.save(model.state_dict(), tmp_path / "cnn.pt")
        np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32))
        yield tmp_path


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "explain" in out and "methods" in out and "examples:" in out


def test_methods_table_and_json(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "feature_ablation" in out and "paper" in out
    assert main(["methods", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(tribute.methods()) == set(data)


def test_explain_end_to_end(project, capsys):
    out = project / "results"
    code = main([
        "explain", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
        "--data", str(project / "x.npy"), "--method", "feature_ablation", "--groups", "patch:4",
        "--target", "1", "--out", str(out), "--no-progress",
    ])
    assert code == 0
    attr = tribute.Attribution.load(out / "attribution.npz")
    assert attr.method == "feature_ablation" and attr.flat().shape == (3, 1, 4)
    assert (out / "attribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "attribution.html").read_text()
    assert "data:image/png;base64," in page and "feature_ablation" in page


def test_explain_file_factory_and_params(project):
    out = project / "r2"
    code = main([
        "explain", "--model", f"{project / 'factory_mod.py'}:make_cnn", "--data", str(project / "x.npy"),
        "--method", "saliency", "--param", "absolute=true", "--limit", "2", "--out", str(out),
    ])
    assert code == 0
    attr = tribute.Attribution.load(out / "attribution.npz")
    assert attr.params["absolute"] is True and attr.flat().shape == (2, 1, 64)
    assert (attr.flat() >= 0).all()


def test_explain_refuses_pickled_weights(project, capsys):
    code = main([
        "explain", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.pt"),
        "--data", str(project / "x.npy"), "--method", "saliency", "--out", str(project / "r3"),
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert "not safetensors" in err and "never unpickles" in err
    assert not (project / "r3" / "attribution.npz").exists()


def test_explain_npz_with_several_arrays_needs_a_key(project, capsys):
    """One rule for ``.npz`` in a single call and a dataset job: several arrays need
    ``--data-key`` (the single call once took the first array, the job every array)."""
    x = np.load(project / "x.npy")
    np.savez(project / "xy.npz", x=x, y=np.arange(len(x)))
    base = ["explain", "--model", "factory_mod:make_cnn", "--data", str(project / "xy.npz"),
            "--method", "saliency", "--no-progress"]
    for extra in ([], ["--shard-size", "2"]):  # single call, dataset job
        assert main([*base, *extra, "--out", str(project / "k")]) == 2
        err = capsys.readouterr().err
        assert "holds 2 arrays ['x', 'y']" in err and "--data-key" in err, err
        assert not (project / "k").exists()
    assert main([*base, "--data-key", "x,y", "--out", str(project / "k")]) == 2
    assert "add --shard-size N" in capsys.readouterr().err  # two arrays: a dataset job's work
    assert main([*base, "--data-key", "x", "--out", str(project / "k")]) == 0


def test_explain_bad_factory(project, capsys):
    assert main(["explain", "--model", "nope_mod:make", "--data", str(project / "x.npy"),
                 "--out", str(project / "r4")]) == 2
    assert "cannot import module 'nope_mod'" in capsys.readouterr().err


def test_console_script_runs():
    exe = Path(sys.executable).with_name("tribute")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tribute.cli"]
    res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert res.stdout.startswith("tribute ")


def test_components_end_to_end(project):
    out = project / "comp"
    code = main([
        "components", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
        "--data", str(project / "x.npy"), "--module", "0", "--unit", "channel",
        "--method", "feature_ablation", "--target", "1", "--out", str(out), "--no-progress",
    ])
    assert code == 0
    attr = tribute.Attribution.load(out / "attribution.npz")
    assert attr.player_kind == "component" and attr.flat().shape == (3, 1, 4)
    assert attr.player_names[0] == "0 channel 0"
    assert (out / "attribution.png").read_bytes()[:4] == b"\x89PNG"


def _components_channels(project: Path, out: str, *extra: str) -> tribute.Attribution:
    """``tribute components`` on conv channels of the project's CNN (feature_ablation, target 1)."""
    code = main([
        "components", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
        "--data", str(project / "x.npy"), "--module", "0", "--unit", "channel", *extra,
        "--method", "feature_ablation", "--target", "1", "--out", str(project / out), "--no-progress",
    ])
    assert code == 0
    return tribute.Attribution.load(project / out / "attribution.npz")


def test_components_limit_takes_the_same_counterfactual_rows(project):
    # --counterfactual holds one row per sample; with --limit 2 the data had 2 rows and the
    # counterfactual 3, refused. It is now cut to the same first rows. Truth: feature_ablation
    # of channel c = v(all) - v(all but c patched from the counterfactual), by hand.
    import factory_mod

    cf = np.random.default_rng(1).random((3, 1, 8, 8)).astype(np.float32)
    np.save(project / "cf.npy", cf)
    attr = _components_channels(project, "comp_cf", "--ablation", "patch", "--counterfactual",
                                str(project / "cf.npy"), "--limit", "2")
    model = factory_mod.make_cnn().eval()
    x = torch.from_numpy(np.load(project / "x.npy"))[:2]
    with torch.no_grad():
        h, hc = model[0](x), model[0](torch.from_numpy(cf[:2]))
        full = model[1:](h)[:, 1]
        own = []
        for c in range(4):
            z = h.clone()
            z[:, c] = hc[:, c]
            own.append((full - model[1:](z)[:, 1]).numpy())
    np.testing.assert_allclose(np.asarray(attr.values), np.stack(own, 1), atol=1e-5)


# --------------------------------------------------------------------------- weights
WRONG_FACTORY = textwrap.dedent(
    """
    import torch

    def make_cnn_5():
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(4 * 8 * 8, 5),
        )

    def make_cnn_extra():
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(4 * 8 * 8, 3), torch.nn.Linear(3, 3),
        )
    """
)


def test_weights_with_the_wrong_shape_name_the_tensor(project, capsys):
    (project / "wrong_mod.py").write_text(WRONG_FACTORY)
    code = main(["explain", "--model", f"{project / 'wrong_mod.py'}:make_cnn_5",
                 "--weights", str(project / "cnn.safetensors"), "--data", str(project / "x.npy"),
                 "--method", "saliency", "--out", str(project / "w1")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "'3.weight'" in err and "[3, 256]" in err and "[5, 256]" in err
    assert "in the file" in err and "in the model" in err and "1 more tensors differ" in err
    assert "architecture" in err  # the fix
    assert not (project / "w1").exists()


def test_weights_with_missing_and_unexpected_keys(project, capsys):
    (project / "wrong_mod.py").write_text(WRONG_FACTORY)
    code = main(["explain", "--model", f"{project / 'wrong_mod.py'}:make_cnn_extra",
                 "--weights", str(project / "cnn.safetensors"), "--data", str(project / "x.npy"),
                 "--method", "saliency", "--out", str(project / "w2")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing from the file: ['4.weight', '4.bias']" in err
    assert "does not match the model built by --model" in err


# --------------------------------------------------------------------------- Ctrl-C
def test_a_failing_plot_leaves_the_previous_outputs_as_a_set(project, monkeypatch):
    out = project / "as_a_set"
    args = ["explain", "--model", "factory_mod:make_cnn", "--data", str(project / "x.npy"),
            "--method", "saliency", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"attribution.npz", "attribution.png", "attribution.html"}

    def broken(*a, **k):
        raise RuntimeError("no display")

    monkeypatch.setattr(tribute.Attribution, "plot", broken)
    with pytest.raises(RuntimeError, match="no display"):
        main([*args[:-3], "--method", "input_x_gradient", "--out", str(out), "--no-progress"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new npz beside old views


@pytest.mark.parametrize("job", [False, True])
def test_baseline_background_prefix_reads_a_background_set(project, job):
    # a background file with as many rows as --data was read as one baseline per sample, and
    # the CLI had no way to say "background set"; background:FILE says it
    bg = np.random.default_rng(1).random((3, 1, 8, 8)).astype(np.float32)
    np.save(project / "bg.npy", bg)
    out = project / ("bg_job" if job else "bg_one")
    args = ["explain", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
            "--data", str(project / "x.npy"), "--method", "feature_ablation",
            "--target", "1", "--baseline", f"background:{project / 'bg.npy'}", "--out", str(out),
            "--no-progress", *(["--shard-size", "2"] if job else [])]
    assert main(args) == 0
    got = tribute.Attribution.load(out / ("result.npz" if job else "attribution.npz"))
    import factory_mod  # the project fixture's module

    model = factory_mod.make_cnn()
    model.load_state_dict(load_file(str(project / "cnn.safetensors")))
    x = torch.from_numpy(np.load(project / "x.npy"))
    want = tribute.explain(model, x, method="feature_ablation", target=1,
                           baseline=tribute.Background(torch.from_numpy(bg)))
    np.testing.assert_allclose(got.flat(), want.flat(), rtol=1e-5, atol=1e-6)
    per_sample = tribute.explain(model, x, method="feature_ablation", target=1,
                                 baseline=torch.from_numpy(bg))
    assert not np.allclose(got.flat(), per_sample.flat(), atol=1e-4)


def test_ctrl_c_exits_130_quietly(project, capsys, monkeypatch):
    import tribute.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tribute.api, "explain", interrupted)
    code = main(["explain", "--model", "factory_mod:make_cnn", "--data", str(project / "x.npy"),
                 "--method", "saliency", "--out", str(project / "cc")])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


#: Runs ``python -m tribute.cli ARGS`` as a terminal would start it: SIGINT unblocked and at its
#: default disposition. A child inherits its parent's signal mask and ignored signals across
#: exec, and a test runner's process can carry either (a library that blocks SIGINT in the
#: main thread, a CI shell that starts jobs with SIGINT ignored): the child then never sees
#: the signal and sleeps on (reproduced: block SIGINT, then run this test -> TimeoutExpired).
_AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "sys.argv = ['tribute', *sys.argv[1:]]\n"
    "runpy.run_module('tribute.cli', run_name='__main__', alter_sys=True)\n"
)


def test_ctrl_c_in_a_real_process(project):
    """The console command itself: SIGINT while loading the model -> status 130, one line."""
    import signal
    import time

    (project / "slow_mod.py").write_text(
        "import time\n\ndef make():\n    print('ready', flush=True)\n    time.sleep(60)\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _AS_FROM_A_TERMINAL, "explain", "--model", "slow_mod:make",
         "--data", str(project / "x.npy"), "--out", str(project / "cc2")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


# --------------------------------------------------------------------------- methods NAME
def test_methods_name_describes_one_method(capsys, recwarn):
    assert main(["methods", "kernel_shap"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert not captured.err and not [w for w in recwarn if "baseline" in str(w.message)]
    assert out.startswith("kernel_shap — KernelSHAP")
    assert "Lundberg & Lee (2017)" in out and "stochastic" in out
    assert "parameters (default):" in out and "allocation='kernel'" in out
    # the default budget rule, read from the registry on games of a few sizes
    info = tribute.methods()["kernel_shap"]
    assert info.tags.budgeted and "default budget (evaluations per input): 4 players ->" in out
    assert main(["methods", "lime", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "lime" and data["defaults"]["sampling"] == "bernoulli"
    assert set(data["default_budget"]) == {"4", "16", "64", "256"}
    assert data["default_budget"]["16"] == max(256, 8 * 16 + 64)  # lime's rule
    assert "sampling" in data["parameters"] and data["parameters"]["sampling"]


def test_methods_name_alias_and_unknown(capsys):
    assert main(["methods", "shapley"]) == 0
    assert capsys.readouterr().out.startswith("gp_shapley (also: shapley)")
    assert main(["methods", "kernel_shapp"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'kernel_shap'" in err and "Traceback" not in err


# --------------------------------------------------------------------------- names, device
TAB_FACTORY = textwrap.dedent(
    """
    import torch

    def make_mlp():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    """
)


@pytest.fixture
def tabular(tmp_path: Path) -> Path:
    (tmp_path / "tab_mod.py").write_text(TAB_FACTORY)
    np.save(tmp_path / "t.npy", np.random.default_rng(0).random((4, 3)).astype(np.float32))
    return tmp_path


def _explain_tab(root: Path, out: str, *extra: str) -> int:
    return main(["explain", "--model", f"{root / 'tab_mod.py'}:make_mlp", "--data",
                 str(root / "t.npy"), "--method", "feature_ablation", "--out", str(root / out),
                 "--no-progress", *extra])


def test_feature_names_list_and_file(tabular):
    assert _explain_tab(tabular, "n1", "--feature-names", "age, income,score") == 0
    attr = tribute.Attribution.load(tabular / "n1" / "attribution.npz")
    assert attr.player_names == ["age", "income", "score"]
    (tabular / "names.txt").write_text("a\nb\n\nc\n")
    assert _explain_tab(tabular, "n2", "--feature-names", str(tabular / "names.txt")) == 0
    attr = tribute.Attribution.load(tabular / "n2" / "attribution.npz")
    assert attr.player_names == ["a", "b", "c"]


def test_feature_names_errors(tabular, capsys):
    assert _explain_tab(tabular, "n3", "--feature-names", "a,b") == 2
    assert "2 names but there are 3 players" in capsys.readouterr().err
    assert _explain_tab(tabular, "n4", "--feature-names", "missing/names.txt") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _explain_tab(tabular, "n5", "--feature-names", "a,,c") == 2
    assert "empty name" in capsys.readouterr().err


def test_device_cpu_and_unavailable(tabular, capsys):
    assert _explain_tab(tabular, "d1", "--device", "cpu") == 0
    assert _explain_tab(tabular, "d2", "--device", "gpu0") == 2
    assert "--device 'gpu0' is not a device name" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert _explain_tab(tabular, "d3", "--device", "cuda:0") == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and "--device cpu" in err
    else:  # pragma: no cover - GPU machines
        n = torch.cuda.device_count()
        assert _explain_tab(tabular, "d3", "--device", f"cuda:{n}") == 2
        assert f"has {n} CUDA device(s)" in capsys.readouterr().err
        assert _explain_tab(tabular, "d4", "--device", "cuda") == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_end_to_end(project):  # pragma: no cover - GPU machines
    out = project / "gpu"
    assert main(["explain", "--model", "factory_mod:make_cnn", "--weights",
                 str(project / "cnn.safetensors"), "--data", str(project / "x.npy"),
                 "--method", "integrated_gradients", "--device", "cuda", "--baseline", "mean",
                 "--out", str(out), "--no-progress"]) == 0
    cpu = project / "cpu"
    assert main(["explain", "--model", "factory_mod:make_cnn", "--weights",
                 str(project / "cnn.safetensors"), "--data", str(project / "x.npy"),
                 "--method", "integrated_gradients", "--baseline", "mean",
                 "--out", str(cpu), "--no-progress"]) == 0
    a = tribute.Attribution.load(out / "attribution.npz").flat()
    b = tribute.Attribution.load(cpu / "attribution.npz").flat()
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------------------- files
def test_written_files_respect_the_umask(tabular):
    import os

    old = os.umask(0o022)
    try:
        assert _explain_tab(tabular, "perm") == 0
    finally:
        os.umask(old)
    for name in ("attribution.npz", "attribution.png", "attribution.html"):
        mode = (tabular / "perm" / name).stat().st_mode & 0o777
        assert mode == 0o644, (name, oct(mode))
    assert not [p for p in (tabular / "perm").iterdir() if p.name.startswith(".")]


def test_import_tribute_plot():
    import tribute.plot
    from tribute.plot import bar, waterfall

    assert tribute.plot.waterfall is waterfall
    assert tribute.plot.__all__ == tribute.viz.__all__  # nothing viz exports goes missing
    for name in tribute.viz.__all__:
        assert getattr(tribute.plot, name) is getattr(tribute.viz, name), name
    fig = bar(np.array([[0.3, -0.1, 0.2]]), ["a", "b", "c"])
    assert fig.axes


def test_attribution_page_is_rendered_with_autoescaping(tmp_path):
    """attribution.html comes from a Jinja2 template with autoescape: markup in player names,
    the method's parameters or anything else a user controls is shown, never interpreted."""
    from dataclasses import replace

    from tribute.cli import write_views

    x = np.random.default_rng(0).normal(size=(2, 3))
    attr = tribute.explain(lambda a: a.sum(1), x, method="feature_ablation", baseline=0.0)
    attr = replace(attr, player_names=["<script>alert(1)</script>", "a&b", "plain"],
                   params={**attr.params, "note": "<b>bold</b>"})
    _, page = write_views(attr, tmp_path, max_samples=2)
    text = page.read_text()
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&amp;b" in text and "<b>bold</b>" not in text
    assert text.count("<img ") == 2 and "data:image/png;base64," in text
    assert page.stat().st_mode & 0o777 == 0o666 & ~tribute.atomic.umask()  # not mkstemp's 0600


def test_reference_help_names_only_formats_the_loader_reads(tmp_path):
    """``--reference`` is read by ``load_data`` (.npy/.npz, no pickle); its help once promised
    ``.pt`` files, which the loader refuses."""
    from tribute.cli import load_data
    from tribute.cli_components import components_cli_args

    helps = {flags[0]: kw.get("help", "") for flags, kw in components_cli_args()}
    text = helps["--reference"]
    assert ".npy" in text and ".npz" in text and ".pt" not in text, text
    np.save(tmp_path / "r.npy", np.ones((2, 3)))
    np.savez(tmp_path / "r.npz", first=np.zeros((2, 3)), second=np.ones(1))
    np.savez(tmp_path / "one.npz", only=np.zeros((2, 3)))
    assert load_data(str(tmp_path / "r.npy")).shape == (2, 3)
    assert load_data(str(tmp_path / "one.npz")).sum() == 0.0
    assert load_data(str(tmp_path / "r.npz"), "second").sum() == 1.0
    with pytest.raises(tribute.errors.InputError, match=r"--reference: .* holds 2 arrays .*give a "
                       r"\.npy file or an \.npz holding one array"):
        load_data(str(tmp_path / "r.npz"), arg="--reference")  # never the first one silently
    torch.save(torch.ones(2, 3), tmp_path / "r.pt")
    with pytest.raises(tribute.errors.InputError, match=r"not a \.npy/\.npz array file"):
        load_data(str(tmp_path / "r.pt"))  # a zip numpy opens as an .npz of raw bytes


def test_unknown_ablation_hint_names_the_public_class():
    with pytest.raises(tribute.errors.InputError, match=r"tribute\.Ablation\(") as err:
        tribute.components(torch.nn.Sequential(torch.nn.Linear(3, 2)), "0", ablation=3)  # type: ignore[arg-type]  # wrong on purpose
    assert "tribute.components.Ablation" not in str(err.value)


def test_a_file_that_is_no_numpy_file_is_not_called_pickled(tmp_path):
    """``numpy.load`` reads a file without the .npy/.zip signature as a pickle, so a text file
    named ``.npy`` was once reported as "holds pickled objects"; the loader now says what the
    file is (its first bytes) and keeps "pickled objects" for .npy files that hold objects."""
    from tribute.cli import load_data
    from tribute.errors import InputError

    (tmp_path / "text.npy").write_bytes(b"a,b\n1,2\n")
    with pytest.raises(InputError, match=r"is not a numpy \.npy/\.npz file: it starts with b'a,b") as err:
        load_data(str(tmp_path / "text.npy"))
    assert "pickled" not in str(err.value)
    with open(tmp_path / "pickle.npy", "wb") as fh:
        import pickle

        pickle.dump([1, 2], fh)
    with pytest.raises(InputError, match="is a Python pickle"):
        load_data(str(tmp_path / "pickle.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="holds pickled objects"):
        load_data(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "ok.npy", np.ones((2, 3)))
    assert load_data(str(tmp_path / "ok.npy")).shape == (2, 3)


def test_explain_help_names_tables_and_the_job_reading_of_npz(capsys):
    """``tribute explain`` reads .csv/.parquet (as a dataset job) and a job takes several arrays
    of an .npz, named by --data-key, as the inputs of a multi-input model; its --data/--data-key
    help says so (the other commands that share these options read .npy/.npz only, one array)."""
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ".csv/.parquet" in text and "comma-separated names for the inputs of a multi-input" in text
    with pytest.raises(SystemExit):
        main(["components", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ".csv" not in text and "(needed when it holds several arrays)" in text
    assert "multi-input" not in text


# ------------------------------------------------------------------ review findings 6, 7, 9
def test_parse_params_reads_python_spellings_of_true_false_none():
    """Review finding 6: ``--param loo_step=True`` gave the string 'True', refused with
    "must be True or False"."""
    from tribute.cli import _parse_params

    got = _parse_params(["a=True", "b=False", "c=None", "d=true", "e=[1, 2]", "f=name", "g= True"])
    assert got == {"a": True, "b": False, "c": None, "d": True, "e": [1, 2], "f": "name", "g": True}
    assert _parse_params(["t=TRUE", "u=Nonesuch"]) == {"t": "TRUE", "u": "Nonesuch"}


def test_commands_taking_one_array_do_not_suggest_several(project, capsys):
    """Review finding 7: ``tribute evaluate`` and ``tribute components`` (one array each) were
    told to name several arrays for a multi-input model or to add --shard-size, which they do
    not take; ``tribute explain`` keeps both hints."""
    x = np.load(project / "x.npy")
    np.savez(project / "xy.npz", x=x, y=np.arange(len(x)))
    data = ["--model", "factory_mod:make_cnn", "--data", str(project / "xy.npz")]
    commands = {
        "evaluate": ["evaluate", *data, "--out", str(project / "e"), "--no-progress"],
        "components": ["components", *data, "--module", "0", "--unit", "channel",
                       "--method", "feature_ablation", "--out", str(project / "c"), "--no-progress"],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        err = " ".join(capsys.readouterr().err.split())
        assert "holds 2 arrays ['x', 'y']; this takes one array: name it with --data-key 'x'." in err, err
        assert "multi-input" not in err and "--shard-size" not in err, err
        assert main([*argv, "--data-key", "x,y"]) == 2, name
        err = " ".join(capsys.readouterr().err.split())
        assert "selects 2 arrays" in err and "Name one array with --data-key." in err, err
        assert "--shard-size" not in err, err
    explain = ["explain", *data, "--method", "saliency", "--out", str(project / "k"), "--no-progress"]
    assert main(explain) == 2
    assert "'x,y' for the inputs of a multi-input model" in capsys.readouterr().err


def test_data_key_with_a_npy_file_ends_with_the_fix(project, capsys, tmp_path):
    """Review finding 9: the refusal of --data-key with a .npy file now says what to do."""
    from tribute.errors import InputError
    from tribute.jobs.data import load_array, load_dataset

    argv = ["explain", "--model", "factory_mod:make_cnn", "--data", str(project / "x.npy"),
            "--data-key", "X", "--method", "saliency", "--out", str(project / "k"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "a key ('X') applies to .npz files" in err and err.rstrip().endswith("; drop --data-key."), err
    with pytest.raises(InputError, match=r"is a \.npy file; drop the key \(--data-key on the "
                                         r"command line, data_key=None in Python\)\.$"):
        load_dataset(project / "x.npy", "X")
    with pytest.raises(InputError, match=r"holds one array; drop the key\.$"):
        load_array(project / "x.npy", "X", arg="--reference")


def test_components_seed_draws_the_resample_rows(project):
    # --seed reached explain() only: the resample rows were always drawn with seed 0, so
    # `--ablation resample --seed 7` gave another answer than components(seed=7) (and the
    # draw could not be changed from the command line at all).
    import factory_mod

    ref = np.random.default_rng(2).random((8, 1, 8, 8)).astype(np.float32)
    np.save(project / "ref.npy", ref)
    attr = _components_channels(project, "comp_rs", "--ablation", "resample", "--reference",
                                str(project / "ref.npy"), "--n-resample", "3", "--seed", "7")
    model = factory_mod.make_cnn().eval()
    x = torch.from_numpy(np.load(project / "x.npy"))
    players = tribute.components(model, "0", unit="channel", ablation="resample",
                                 reference=torch.from_numpy(ref), n_resample=3, seed=7)
    api = tribute.explain(model, x, method="feature_ablation", players=players, target=1, seed=7)
    np.testing.assert_allclose(np.asarray(attr.values), np.asarray(api.values), rtol=1e-6, atol=1e-7)


def test_baseline_mean_keeps_a_float64_models_precision(tmp_path):
    # --baseline mean was computed as data.float().mean(0): a float64 model got a float32-rounded
    # baseline (credits off by ~1e-9 from explain(..., baseline=x.mean(0)))
    (tmp_path / "f64_mod.py").write_text(textwrap.dedent(
        """
        import torch

        def make():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
        """))
    x = np.random.default_rng(3).normal(size=(3, 5)) / 3.0
    np.save(tmp_path / "x.npy", x)
    sys.path.insert(0, str(tmp_path))
    try:
        import f64_mod

        out = tmp_path / "out"
        assert main(["explain", "--model", "f64_mod:make", "--data", str(tmp_path / "x.npy"), "--method",
                     "exact_shapley", "--baseline", "mean", "--target", "1", "--out", str(out),
                     "--no-progress"]) == 0
        attr = tribute.Attribution.load(out / "attribution.npz")
        xt = torch.from_numpy(x)
        api = tribute.explain(f64_mod.make().eval(), xt, method="exact_shapley", baseline=xt.mean(0), target=1)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("f64_mod", None)
    np.testing.assert_allclose(np.asarray(attr.values), np.asarray(api.values), rtol=0, atol=1e-14)


def test_components_baseline_reaches_conductance(project):
    # `tribute components` had no --baseline: conductance (an input-path method) always ran from 0
    import factory_mod

    attr = _components_channels(project, "comp_bl", "--baseline", "0.5")
    assert attr.method == "feature_ablation"  # the baseline is not read by patching methods
    out = project / "comp_cond"
    assert main(["components", "--model", "factory_mod:make_cnn", "--weights", str(project / "cnn.safetensors"),
                 "--data", str(project / "x.npy"), "--module", "0", "--unit", "channel", "--method",
                 "conductance", "--param", "n_steps=4", "--baseline", "0.5", "--target", "1", "--out",
                 str(out), "--no-progress"]) == 0
    cli = tribute.Attribution.load(out / "attribution.npz")
    model = factory_mod.make_cnn().eval()
    x = torch.from_numpy(np.load(project / "x.npy"))
    api = tribute.explain(model, x, method="conductance", n_steps=4, baseline=0.5, target=1,
                          players=tribute.components(model, "0", unit="channel"))
    zero = tribute.explain(model, x, method="conductance", n_steps=4, target=1,
                           players=tribute.components(model, "0", unit="channel"))
    np.testing.assert_allclose(np.asarray(cli.values), np.asarray(api.values), rtol=1e-6, atol=1e-7)
    assert not np.allclose(np.asarray(api.values), np.asarray(zero.values))


def test_background_sets_where_one_path_baseline_is_read(project, capsys):
    # rev33b: `tribute components --baseline background:F` crashed ("Could not infer dtype of
    # Background") and conductance with a Background crashed with a numpy TypeError
    import factory_mod

    np.save(project / "bg2.npy", np.zeros((5, 1, 8, 8), dtype=np.float32))
    base = ["components", "--model", "factory_mod:make_cnn", "--data", str(project / "x.npy"), "--module",
            "0", "--unit", "channel", "--method", "conductance", "--no-progress"]
    assert main([*base, "--baseline", f"background:{project / 'bg2.npy'}", "--out", str(project / "cb")]) == 2
    assert "a background set is not read" in capsys.readouterr().err
    assert main(["explain", "--model", "factory_mod:make_cnn", "--data", str(project / "x.npy"),
                 "--baseline", "background:", "--out", str(project / "cb2")]) == 2
    assert "background: needs a file name" in capsys.readouterr().err
    model = factory_mod.make_cnn().eval()
    x = torch.from_numpy(np.load(project / "x.npy"))
    with pytest.raises(tribute.errors.InputError, match="a background set is not read"):
        tribute.explain(model, x, method="conductance", target=1, baseline=tribute.Background(torch.zeros(5, 1, 8, 8)),
                        players=tribute.components(model, "0", unit="channel"))
