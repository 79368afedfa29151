# Every target installs what it needs first (scripts/setup.sh is idempotent).
PY := .venv/bin/python

.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py $(ARGS)

# two pytest workers, each with its own mongod: most tests wait on subprocesses, the App or the
# database half the time, so two keep both cores busy; the browser tests share one worker (group "app")
WORKERS ?= 2

test: setup
	$(PY) -m pytest -q -n $(WORKERS) --dist loadgroup --durations=25

bench: setup
	$(PY) benchmarks/bench_cams.py $(ARGS)
