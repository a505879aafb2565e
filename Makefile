# The README's two commands: `make run` (set up and start the app) and `make test`.
# Both work from a fresh clone on Debian with Python 3.11; they create .venv themselves.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# llama-cpp-python builds llama.cpp from source. A native build (-march=native) crashed here
# with a general protection fault in libggml-cpu (AVX512/AMX code in a VM), so build for any
# x86-64 CPU with AVX2. For CUDA use CMAKE_ARGS="-DGGML_CUDA=on", for Metal "-DGGML_METAL=on".
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF
export CMAKE_ARGS
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

# The CPU build of PyTorch (a plain `torch` requirement pulls a multi-GB CUDA build).
TORCH ?= torch==2.13.0

.PHONY: run test install install-test system-test-deps bench lint clean assets

run: install
	$(VENV)/bin/mixchat serve

test: install-test system-test-deps
	$(PY) -m pytest

bench: install-test system-test-deps
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/run.py

install: $(VENV)/.installed-app
install-test: $(VENV)/.installed-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel

$(VENV)/.installed-app: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[test,server,transformers,postgres]" "$(TORCH)"
	touch $@ $(VENV)/.installed-app

# Debian packages the tests drive: chromium (browser tests), PostgreSQL (store tests).
system-test-deps:
	@command -v chromium >/dev/null && command -v /usr/lib/postgresql/*/bin/initdb >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    chromium postgresql fonts-dejavu-core ; }

# The transcript's browser code (markdown-it, DOMPurify, KaTeX, highlight.js) from npm, bundled
# by esbuild into src/mixchat/ui/transcript/dist/ and ui/assets/katex/ (committed: `make run`
# needs no Node). Run after changing transcript.js or transcript.css, or to update the libraries.
assets:
	cd js && npm ci --no-audit --no-fund && node build.mjs

# The checks CI runs before the tests: types (mypy, configured in pyproject.toml), format, lint.
LINTED := src tests benchmarks
lint: install-test
	$(PY) -m mypy
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m ruff check $(LINTED)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
