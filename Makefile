# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment in .venv when it is missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-quick install clean

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned in the same command: an unpinned torch would pull a CUDA build.
	# constraints.txt: the exact versions known to work together (pyproject.toml gives ranges)
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0 -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/pascal-fpga demo --force  # replaces only an earlier demo in runs/demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q --durations=20  # the 20 slowest tests: where the time goes

# the quick loop while working: every test not marked slow (pyproject.toml's markers)
test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV)
	# runs/demo only if it is the demo's own output (it carries the marker)
	if [ -f runs/demo/.pascal-fpga ]; then rm -rf runs/demo; fi
