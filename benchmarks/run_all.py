"""Run every ``benchmarks/bench_*.py`` script and keep their reports in ``bench-out/``.

Each script prints its own side-by-side table (ratios against Captum / SHAP / Quantus and the
bare model, measured in the same run). This runner only executes them one after another, tees
their output to ``bench-out/<name>.txt`` and prints a one-line status per script.

Usage: ``python benchmarks/run_all.py [name-substring ...]``
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    out = here.parent / "bench-out"
    out.mkdir(exist_ok=True)
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.name for a in argv)]
    failed = 0
    for script in scripts:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        log = out / f"{script.stem}.txt"
        log.write_text(res.stdout + ("\n--- stderr ---\n" + res.stderr if res.stderr else ""))
        status = "ok" if res.returncode == 0 else f"FAILED ({res.returncode})"
        failed += res.returncode != 0
        print(f"{script.name:40s} {status:12s} {time.perf_counter() - t0:7.1f}s  -> {log}")
        print(res.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
