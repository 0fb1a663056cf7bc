# The README's two commands. Both create .venv on first use and install everything into it.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch/torchvision pair that imports together on CPU (clean-fid needs torchvision).
TORCH   ?= torch==2.14.1 torchvision==0.29.1
STAMP   := $(VENV)/.installed

.PHONY: demo test install clean-outputs browser-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## make demo: run the whole notebook series on the embedded `tiny` default (offline, CPU) and write
## outputs/REPORT.md; finished notebooks and runs are cached, so a second call takes seconds.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m smplora_nb reproduce --profile tiny

## make test: the test suite, including a papermill run of every notebook at small sizes.
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=20

## make browser-test: notebooks 01 and 05 (small sizes) in a real JupyterLab, driven by Debian's Chromium
## (installed with apt-get when missing); screenshots in outputs/browser/. Not part of `make test` (see README).
browser-test: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	$(BIN)/pip install --quiet "selenium>=4.15"
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/browser_test.py

clean-outputs:
	find outputs -mindepth 1 -not -name README.md -not -name .gitignore -delete
