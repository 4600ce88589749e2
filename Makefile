# The two commands of the README. Both set everything up first (idempotent).
VENV ?= .venv

.PHONY: setup run test bench

setup:
	bash scripts/setup.sh

# The main job on the embedded default: the Streamlit app (chat with your images).
run: setup
	$(VENV)/bin/efe app

# Every test, the browser test included (Chromium comes from Debian's packages).
test:
	bash scripts/setup.sh --browser
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

bench: setup
	for b in benchmarks/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done
