# Two commands on a fresh machine (each installs what it needs into .venv):
#   make demo   fly a nominal descent and the ispace M2 late-LRF case: summary table + demo-output/demo.png
#   make test   the test suite without the tests marked slow (make test-slow runs those; CI runs both)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fsil-installed
PYTEST_ARGS ?=
# Besides the whole suite on loopback, the closed-loop test file flies again on each of these
# rigs (same file, every rig); a rig whose tools are absent skips, naming them.
RIGS   ?= host-pty qemu-m4 examples/simple_lander/rig.toml

.PHONY: demo test test-slow install clean fuzz

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/fsil demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest --rig loopback -m "not slow" $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/test_closed_loop.py $(foreach r,$(RIGS),--rig $(r)) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest --rig loopback -m slow $(PYTEST_ARGS)

# Fuzz targets (fuzz/README.md), FUZZ_SECONDS each (default 60; long runs: FUZZ_SECONDS=3600).
# A crash, sanitizer report or invariant violation fails and leaves its reproducer in fuzz-out/.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=$(BIN)/python fuzz/run

clean:
	rm -rf $(VENV) .fsil-cache demo-output artifacts fuzz-out
