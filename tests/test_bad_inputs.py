"""The fast subset of tests/bad_input_cases.py through the real CLI: each bad input ends with
its documented exit code and one message, never a traceback, and no planted pickle runs.
(`python -m tests.bad_input_cases` prints the whole table.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.bad_input_cases import CASES, PWNED, can_mount, cleanup, run_case
from tests.conftest import REPO_ROOT, cli_env

FAST = [c for c in CASES if c.fast]


@pytest.mark.parametrize("case", FAST, ids=[c.setup.__name__[2:] for c in FAST])
def test_bad_input_exits_with_its_code_and_one_line(tmp_path, case):
    try:
        result = run_case(case, tmp_path)
    finally:
        cleanup()
    assert not result.traceback, result.message
    assert not result.code_ran, f"a planted pickle ran ({PWNED} written)"
    assert result.code == case.expect, result.message
    assert result.message.lower().startswith("error:"), result.message


@pytest.mark.skipif(not can_mount(), reason="needs root and mount for a read-only bind mount")
@pytest.mark.parametrize("name", ["c_read_only_status", "c_read_only_cut",
                                  "c_disk_full_manifest"])
def test_read_only_workdir_and_full_disk(tmp_path, name):
    case = next(c for c in CASES if c.setup.__name__ == name)
    try:
        result = run_case(case, tmp_path)
    finally:
        cleanup()
    assert not result.traceback, result.message
    assert result.code == case.expect, result.message
    if case.expect == 5:
        assert "cannot write" in result.message and str(tmp_path) in result.message


def test_minus_vv_keeps_the_traceback(tmp_path):
    (tmp_path / "avel.yaml").write_text("dataset: {name: ave}\n")
    (tmp_path / "manifest.parquet").write_bytes(b"PAR1 not really")
    quiet = subprocess.run([sys.executable, "-m", "pipeline", "cut", "-w", str(tmp_path)],
                           env=cli_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    loud = subprocess.run([sys.executable, "-m", "pipeline", "-vv", "cut", "-w", str(tmp_path)],
                          env=cli_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "manifest.parquet" in quiet.stderr
    assert "Traceback" in loud.stderr
