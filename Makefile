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

.PHONY: demo test lint bench ffmpeg install clean image image-test image-archive debian-base

# ---- the container image (docker/Dockerfile); not part of `make test` ------------------------
# IMAGE_TOOL: docker when its daemon answers, else buildah, else podman (both build without a
# daemon; chroot isolation works inside an unprivileged container too). BASE: the image
# `make debian-base` imported (debootstrap, for machines that cannot pull) when present,
# else Debian bookworm-slim from the registry. --layers: a code-only change rebuilds in seconds.
IMAGE ?= localhost/avel:latest
LOCAL_BASE := localhost/debian-base:bookworm
IMAGE_TOOL ?= $(shell if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; \
  elif command -v buildah >/dev/null 2>&1; then echo buildah; elif command -v podman >/dev/null 2>&1; then echo podman; fi)
BASE ?= $(shell if $(IMAGE_TOOL) image inspect $(LOCAL_BASE) >/dev/null 2>&1 \
  || buildah inspect --type image $(LOCAL_BASE) >/dev/null 2>&1; then echo $(LOCAL_BASE); \
  else echo docker.io/library/debian:bookworm-slim; fi)
IMAGE_ARCHIVE ?= avel.tar
# CA_BUNDLE: a PEM file pip should trust (a network that intercepts TLS); a build secret, not a layer
CA_BUNDLE ?=
IMAGE_BUILD_ARGS = -f docker/Dockerfile --build-arg BASE=$(BASE) -t $(IMAGE) $(if $(CA_BUNDLE),--secret id=ca_bundle$(,)src=$(CA_BUNDLE))
, := ,

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
	  echo "WARNING: no system ffmpeg; using the ffmpeg binary imageio-ffmpeg ships (it has no ffprobe, which download and cut need: install ffmpeg for those)"; \
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

debian-base:
	docker/make-debian-base.sh $(LOCAL_BASE) bookworm

image:
	@test -n "$(IMAGE_TOOL)" || { echo "make image: needs docker (with a daemon), buildah or podman"; exit 2; }
	@echo "building $(IMAGE) from $(BASE) with $(IMAGE_TOOL)"
ifeq ($(IMAGE_TOOL),docker)
	docker build $(IMAGE_BUILD_ARGS) .
else ifeq ($(IMAGE_TOOL),buildah)
	buildah bud --isolation chroot --layers $(IMAGE_BUILD_ARGS) .
else
	podman build --isolation chroot --layers $(IMAGE_BUILD_ARGS) .
endif

# `avel doctor` and `avel demo` inside the image as uid 1000, writing to a host directory
image-test: image
	docker/image-test.sh $(IMAGE_TOOL) $(IMAGE)

# one file to copy to a cluster: `apptainer build avel.sif docker-archive://avel.tar`
image-archive: image
	rm -f $(IMAGE_ARCHIVE)
ifeq ($(IMAGE_TOOL),docker)
	docker save -o $(IMAGE_ARCHIVE) $(IMAGE)
else
	$(IMAGE_TOOL) push $(IMAGE) docker-archive:$(IMAGE_ARCHIVE):$(IMAGE)
endif
