"""Bounded coverage-guided fuzzing in CI (`make fuzz` runs the same harnesses for longer)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys

import pytest

pytest.importorskip("atheris", reason="atheris is a test extra")
HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = int(os.environ.get("EDGECOLBERT_FUZZ_SECONDS", "30"))


def _rss_limit() -> str:
    """libFuzzer's memory guard reads the peak RSS, which Linux carries from this (pytest) process into the
    child across fork and exec: after a few GiB of earlier tests every harness was killed as out-of-memory
    on its first check. The guard is kept at libFuzzer's 2 GiB, above what this process has already used."""
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return f"-rss_limit_mb={inherited_mb + 2048}"


@pytest.mark.slow
@pytest.mark.parametrize("harness", ["fuzz_bindings.py", "fuzz_parsers.py"])
def test_fuzz_harness_finds_nothing(harness, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(HERE, "fuzz", harness), f"-max_total_time={SECONDS}",
                        _rss_limit(), f"-artifact_prefix={tmp_path}/"], capture_output=True, text=True, timeout=SECONDS + 300)
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
    r = subprocess.run([sys.executable, os.path.join(HERE, "fuzz", harness), _rss_limit(), *inputs],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("Executed ") == len(inputs), r.stderr[-3000:]
