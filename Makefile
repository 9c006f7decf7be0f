# Two-command quick start: `make train` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: train test test-all lint bench docs side-by-side golden clean help

help:
	@echo "make train      train the PyTorch port (python -m torch_port.train, 1500 epochs)"
	@echo "make test       the test suite (parity, both sides, executed docs); no slow tests"
	@echo "make test-all   the test suite including the slow 1500-epoch trajectories"
	@echo "make lint       ruff"
	@echo "make bench      benchmark every implementation side by side (python -m benchmarks)"
	@echo "make docs       regenerate the generated docs pages (side-by-side view, drift plot)"
	@echo "make golden     regenerate the golden TensorFlow traces in parity/golden/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned and installed first: that CPU build is on the machines here, and an
# unpinned torch pulled in by a dependency would be a CUDA build of several GB.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[tensorflow,dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python -m torch_port.train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

docs: side-by-side
	$(BIN)/python -m parity report --steps 34 --dtype float32 --mode free-running --plot docs/img/drift.png

side-by-side: $(STAMP)
	$(BIN)/python -m docs.tools.side_by_side

golden: $(STAMP)
	$(BIN)/python -m parity golden

clean:
	rm -rf $(VENV) build *.egg-info
