# The two commands of the README:
#   make run    set up (first time) and run the main job on the embedded default
#   make test   set up (first time) and run the test suite (what CI runs)
# torch is pinned to the CPU build this machine's pip finds (2.13.0); a GPU machine may
# install its own CUDA build of torch first and then `pip install -e .`.

VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

$(BIN)/.forgetlab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH) -e '.[test]'
	touch $@

.PHONY: install run test
install: $(BIN)/.forgetlab-installed

run: install
	$(BIN)/forgetlab run --config lightning_configs/r4.yaml

# Offline and quiet: hub look-ups fail at once instead of retrying. Test files run in parallel
# on up to 4 cores (pytest-xdist; one file's module fixtures stay on one worker). Any non-zero
# pytest exit fails, 5 ("no tests collected") included: a suite that collects nothing is broken.
test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true \
	$(BIN)/python -m pytest -q --timeout=900 -n auto --maxprocesses=4 --dist loadfile tests
