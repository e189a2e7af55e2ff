# The README's two commands: `make demo` (run the main job) and `make test` (run the tests).
# Both set up everything they need on a fresh machine, into local virtual environments.
PYTHON ?= python3
VENV := .venv
LITELLM_VENV := .venv-litellm
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check -q

.PHONY: demo test setup lint typecheck bench clean chromium

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[dev]'
	# The real OPA engine (Go library via ctypes) for differential and remote-OPA tests;
	# it declares Python >= 3.14 but works on 3.11.
	$(PIP) install --no-deps --ignore-requires-python opa-golib-python-bindings==0.4.4
	# xds-protos ships an old copy of the OpenTelemetry protos over opentelemetry-proto's
	# files (same paths); put the real ones back so the OTLP exporter imports.
	$(PIP) install --no-deps --force-reinstall opentelemetry-proto==1.45.2
	touch $@

# LiteLLM pins its own openai/pydantic versions: it gets a venv of its own.
# (1.104.0: 1.107.0 was a compromised release; newer ones need packages not available here.)
$(LITELLM_VENV)/.installed:
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip --disable-pip-version-check -q install 'litellm[proxy]==1.104.0'
	touch $@

# Debian's Chromium and its driver, for the dashboard's browser tests (nothing is
# downloaded at test time). Root is needed only when they are missing.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

setup: $(VENV)/.installed $(LITELLM_VENV)/.installed chromium

demo: $(VENV)/.installed
	$(BIN)/routeiq demo

test: setup
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check extproc tests benchmarks
	$(BIN)/ruff format --check extproc tests benchmarks
	$(BIN)/mypy

bench: $(VENV)/.installed
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/data_path.py

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .pytest_cache .mypy_cache .ruff_cache
