# genlab: `make demo` and `make test` set everything up on a fresh machine, then run.
# Idempotent: set-up steps re-run only when pyproject.toml changes or the data is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genlab-installed
FMNIST := /usr/share/datasets/fashion-mnist
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-avx2 setup data browser lint docs format bench screenshots app clean \
	notebooks notebook

demo: setup data
	$(BIN)/genlab demo --out demo

test: setup data browser lint docs
	GENLAB_REQUIRE_REAL_DATA=$${CI:+1} $(BIN)/python -m pytest -n 2 --dist loadfile --durations=15
	@$(MAKE) --no-print-directory test-avx2

# The second pass: the tests marked `kernels` (float sums, resume, cross-checks, shipped runs)
# again as a CPU without AVX-512 computes them (PyTorch's AVX2 kernels, oneDNN's AVX2
# convolutions, MKL's AVX2 matrix products, no native bf16, so precision=auto is fp32).
# Skipped where this CPU is one.
test-avx2: setup data
	@if [ "$$($(BIN)/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')" \
		= AVX2 ]; then echo "this CPU computes with AVX2 kernels already: no second pass"; \
	else ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
		GENLAB_REQUIRE_REAL_DATA=$${CI:+1} \
		$(BIN)/python -m pytest -n 2 --dist loadfile -m kernels --durations=15; fi

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile -e '.[dev]'
	@# the .pyc files on every core (pip compiles on one: 83 s against 29 s here); a few files
	@# that are not Python 3.11 (torch's py312 test helpers) fail to compile, as under pip
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib src >/dev/null 2>&1 || true
	touch $(STAMP)

# Fashion-MNIST from Debian's package when apt is there and we are root; otherwise genlab
# looks in --data-dir, $$GENLAB_DATA, or the cache filled by `genlab data fetch fashion-mnist`.
data:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			dataset-fashion-mnist >/dev/null) || echo "apt could not install dataset-fashion-mnist"; \
	else echo "Fashion-MNIST not in $(FMNIST): run 'sudo apt-get install dataset-fashion-mnist'" \
		"or '$(BIN)/genlab data fetch fashion-mnist'"; fi

# Chromium for the browser test (tests/test_app_browser.py), from Debian through apt as root, as
# the data; Playwright (pip, in .[test]) drives it. Elsewhere the test says what is missing.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium >/dev/null) || echo "apt could not install chromium"; \
	else echo "Chromium not in /usr/bin: run 'sudo apt-get install chromium' for the browser test"; fi

# The app's screenshots in the README and docs, taken by the browser test's own tour.
screenshots: setup data browser
	$(BIN)/python tests/test_app_browser.py docs/img/app

app: setup data
	$(BIN)/genlab app

lint: setup
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts

# The guides (docs/*.md) as a site in build/site/; --strict fails on a broken link or anchor.
# (NO_MKDOCS_2_WARNING: mkdocs-material's banner about MkDocs 2.0, which the pins exclude.)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

format: setup
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# The notebooks of notebooks/ run in full (about 1-3 minutes each on 2 cores); their executed
# copies, outputs included, go to docs/notebooks/, which the docs site shows (mkdocs-jupyter).
notebooks: setup data
	$(BIN)/python scripts/run_notebooks.py --out docs/notebooks

# JupyterLab on 127.0.0.1 in notebooks/ (the `lab` extra; no browser is opened: open the URL).
notebook: setup data
	$(BIN)/python -m pip install -q -e '.[lab]'
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=notebooks \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

bench: setup data
	$(BIN)/python bench/vae_throughput.py

clean:
	rm -rf $(VENV) demo build .pytest_cache
