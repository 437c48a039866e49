# The README's two commands: `make demo` and `make test`. Both set up .venv from scratch
# (Python packages and the native op library) and then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfcompress-installed
DEMO_DIR := out/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Convert the shipped float model to float and int8 .tflite, evaluate both through the
# runtime on flowers5 test.txt, and print the comparison table.
demo: setup
	mkdir -p $(DEMO_DIR)
	$(VENV)/bin/tfcompress convert models/flowers_float.keras -o $(DEMO_DIR)/flowers_float.tflite --force
	$(VENV)/bin/tfcompress convert models/flowers_float.keras --int8 -o $(DEMO_DIR)/flowers_int8.tflite --force
	$(VENV)/bin/tfcompress eval $(DEMO_DIR)/flowers_float.tflite --threads 1 --json $(DEMO_DIR)/float.json --force
	$(VENV)/bin/tfcompress eval $(DEMO_DIR)/flowers_int8.tflite --threads 1 --json $(DEMO_DIR)/int8.json --force
	$(VENV)/bin/tfcompress report $(DEMO_DIR)/float.json $(DEMO_DIR)/int8.json -o $(DEMO_DIR) --force

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info out
