"""Bounded coverage-guided fuzzing in CI (`make fuzz` runs the same harnesses for longer)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("atheris", reason="atheris is a test extra")
HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = int(os.environ.get("EDGECOLBERT_FUZZ_SECONDS", "30"))


@pytest.mark.parametrize("harness", ["fuzz_bindings.py", "fuzz_parsers.py"])
def test_fuzz_harness_finds_nothing(harness, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(HERE, "fuzz", harness), f"-max_total_time={SECONDS}",
                        f"-artifact_prefix={tmp_path}/"], capture_output=True, text=True, timeout=SECONDS + 300)
    done = re.search(r"Done (\d+) runs", r.stderr)
    print(f"{harness}: {done.group(1) if done else '?'} executions in {SECONDS} s, exit {r.returncode}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert done and int(done.group(1)) > 100
