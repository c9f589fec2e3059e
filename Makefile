# Two commands on a fresh clone: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tribute-installed
# The CPU build of torch that lies on disk; never let pip pull a CUDA build.
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,text,explorer,ray
# ray: the Ray backend tests (tests/jobs/test_jobs_ray.py, local 2-CPU instance on 127.0.0.1) run in `make test`.
# Tree libraries for the tree tests: the CPU-only XGBoost wheel, LightGBM, CatBoost (users get `tribute[trees]`).
TREELIBS ?= xgboost-cpu>=2.1 lightgbm>=4.0 catboost>=1.2
# LRP parity anchors (tests only; lxt: AttnLRP, run in a subprocess by the tests). --no-deps: its torchvision requirement resolves to a wheel
# built for another torch (import fails: "operator torchvision::nms does not exist"); the tests
# stand in the two torchvision ResNet block classes zennit imports.
LRPLIBS ?= zennit==0.5.1 lxt==2.1

.PHONY: setup demo test test-all bench lint typecheck clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" "$(TORCH)"
	$(PY) -m pip install -q $(foreach p,$(TREELIBS),"$(p)")
	$(PY) -m pip install -q --no-deps $(foreach p,$(LRPLIBS),"$(p)")
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tribute bench --suite quick --out report-out

# A worker that dies (crash, kill) fails the run naming its test (--max-worker-restart=0):
# pytest-xdist 3.8's loadfile scheduler, replacing a crashed worker, can wait forever (stop 48's
# fresh-clone CI sat idle at 94 %; pytest-xdist #784 / #1313). A test running over 15 minutes
# dumps every thread's stack and ends its worker (pytest >= 9's faulthandler_exit_on_timeout).
XDIST  := -n 2 --dist loadfile --max-worker-restart=0
HANG   := -o faulthandler_timeout=900 -o faulthandler_exit_on_timeout=true

test: $(STAMP)
	$(PY) -m pytest -q $(XDIST) $(HANG)

test-all: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "slow or not slow"

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[$(EXTRAS),bench]" "$(TORCH)"
	$(PY) benchmarks/run_all.py

# mypy reads [tool.mypy] in pyproject.toml: src/ strict, tests/ in the stated tests profile.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) report-out bench-out .pytest_cache .mypy_cache .ruff_cache
