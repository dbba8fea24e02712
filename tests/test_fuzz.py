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


@pytest.mark.slow
@pytest.mark.parametrize("harness", ["fuzz_bindings.py", "fuzz_parsers.py"])
def test_fuzz_harness_finds_nothing(harness, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(HERE, "fuzz", harness), f"-max_total_time={SECONDS}",
                        f"-artifact_prefix={tmp_path}/"], capture_output=True, text=True, timeout=SECONDS + 300)
    done = re.search(r"Done (\d+) runs", r.stderr)
    print(f"{harness}: {done.group(1) if done else '?'} executions in {SECONDS} s, exit {r.returncode}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert done and int(done.group(1)) > 100


@pytest.mark.slow
@pytest.mark.parametrize("harness", ["fuzz_parsers.py"])
def test_fuzz_regressions_replay(harness):
    """Inputs that once crashed a harness (kept in tests/fuzz/regressions/<harness>/) are replayed: libFuzzer
    runs each file given as an argument once and fails on any finding."""
    folder = os.path.join(HERE, "fuzz", "regressions", harness.removeprefix("fuzz_").removesuffix(".py"))
    inputs = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    assert inputs, f"no regression inputs in {folder}"
    r = subprocess.run([sys.executable, os.path.join(HERE, "fuzz", harness), *inputs],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("Executed ") == len(inputs), r.stderr[-3000:]
