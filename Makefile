# The README's two commands. Both create .venv on first use and install everything into it.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch/torchvision pair that imports together on CPU (clean-fid needs torchvision).
TORCH   ?= torch==2.14.1 torchvision==0.29.1
STAMP   := $(VENV)/.installed

.PHONY: demo test install clean-outputs browser-test book book-check readme-figure chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,book]"
	touch $(STAMP)

install: $(STAMP)

## make demo: run the whole notebook series on the embedded `tiny` default (offline, CPU) and write
## outputs/REPORT.md; finished notebooks and runs are cached, so a second call takes seconds.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m smplora_nb reproduce --profile tiny

## make test: the test suite, including a papermill run of every notebook at small sizes and the book built from
## them, checked in Chromium.
test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=20

## make browser-test: notebooks 01 and 05 (small sizes) in a real JupyterLab, driven by Debian's Chromium;
## screenshots in outputs/browser/. Not part of `make test` (see docs/development.md).
browser-test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/browser_test.py

## make book: the site of the series `make demo` executed, in outputs/book/ (open outputs/book/index.html); nothing
## runs again and nothing is downloaded. make book-check opens every page in Chromium and checks it.
book: $(STAMP)
	$(BIN)/python -m smplora_nb.book

book-check: $(STAMP) chromium
	$(BIN)/python scripts/book_check.py outputs/book

## make readme-figure: docs/result.png, the README's figure: notebook 06's attack matrix from the powered audit
## (`python -m smplora_nb reproduce --powered`, outputs/powered/), where the README's headline verdicts come from.
readme-figure: $(STAMP)
	$(BIN)/python -m smplora_nb.book --readme-figure --outputs outputs/powered

## Debian's Chromium and its driver for the browser checks, installed with apt-get when missing (as root; elsewhere
## the book's browser test skips, saying why).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) || \
		echo "[make] chromium could not be installed: the browser checks will be skipped"

clean-outputs:
	find outputs -mindepth 1 -not -name README.md -not -name .gitignore -delete
