# The README's two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
# Debian packages the tests and corpus builders need (installed by `make system-deps` when root).
APT_PACKAGES ?= ffmpeg chromium espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fluidsynth fluid-soundfont-gm fortunes
STAMP := $(VENV)/.accelerando-installed

# A sub-minute check of the core (audio, files, models' save/load, metrics, the loader and defaults);
# `make test` and CI run everything.
QUICK_TESTS ?= tests/audio tests/test_fileio.py tests/test_modeling.py tests/test_pretrained_defaults.py \
	tests/test_pretrained_loading.py tests/test_recipes.py tests/vocoders/test_fregrad.py

.PHONY: demo test test-quick setup system-deps lint clean

demo: setup
	$(VENV)/bin/accelerando demo

test: setup system-deps
	$(PY) -m pytest

test-quick: setup
	$(PY) -m pytest -q $(QUICK_TESTS)

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first: an unpinned torch would pull the CUDA build. GPU users install their own
	@# torch into .venv before `make` (see README) and this step leaves it alone.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "error: Debian packages missing:$$missing"; \
		echo "install them with: sudo apt-get install$$missing"; exit 1; \
	fi

lint: setup
	$(VENV)/bin/ruff check accelerando tests benchmarks
	$(VENV)/bin/ruff format --check accelerando tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
