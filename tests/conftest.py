"""Fixtures every test module may use: the repo root and the real data in tests/data/real."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Triton before TensorFlow, always: the other order segfaults torch 2.14 + TF 2.21 when
# torchvision.models loads later in the same process (see extractors/tensorflow_import.py).
# Test modules import tf_keras at collection time, so this must happen first.
try:
    import triton  # noqa: F401
except ImportError:
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]


#: real files of the datasets' and models' releases, in the repository (see its PROVENANCE.md)
SHARED_DATA = REPO_ROOT / "tests" / "data" / "real"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def cli_env() -> dict[str, str]:
    """Environment for running `python -m pipeline` in a subprocess against this checkout."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def avel_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]
