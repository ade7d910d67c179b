# The README's two commands: `make demo` and `make test` (plus `make bench`).
# Each makes .venv if missing, installs system ffmpeg when absent (apt-get, as root),
# installs avel with its extras once, at the versions constraints.txt pins (re-installs only when
# pyproject.toml or constraints.txt changes), then runs. `make test` lints and type-checks first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.avel-installed
EXTRAS ?= dev,tf,ray,demo,tensorboard
CONSTRAINTS ?= constraints.txt
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint bench ffmpeg install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

ffmpeg: | $(BIN)/python
	@if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing ffmpeg with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
	  || echo "apt-get could not install ffmpeg"; \
	fi; \
	if ! command -v ffmpeg >/dev/null 2>&1; then \
	  echo "WARNING: no system ffmpeg; using the ffmpeg binary imageio-ffmpeg ships (no ffprobe: probing falls back to ffmpeg)"; \
	  $(BIN)/python -m pip install -q imageio-ffmpeg && \
	  ln -sf "$$($(BIN)/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" $(BIN)/ffmpeg; \
	fi

demo: ffmpeg $(STAMP)
	$(BIN)/avel demo --workdir demo-run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint ffmpeg $(STAMP)
	$(BIN)/python -m pytest -q

bench: ffmpeg $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf demo-run .pytest_cache
