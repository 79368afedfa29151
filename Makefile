# Every target installs what it needs first (scripts/setup.sh is idempotent).
PY := .venv/bin/python

.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py $(ARGS)

test: setup
	$(PY) -m pytest -q --durations=25

bench: setup
	$(PY) benchmarks/bench_cams.py $(ARGS)
