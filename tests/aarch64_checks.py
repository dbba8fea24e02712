"""Checks that `make test-arm-py` runs inside the aarch64 root under qemu, once per emulated CPU model
(QEMU_CPU), after the kernel, codec, centroid and index suites: the NEON path dispatch chose for the model,
the encoder against the stored x86_64 outputs (1e-5), and `edgecolbert demo` on the pydocs subset against
the stored x86_64 MRR@10 (0.01). The references and how they are made: tests/arm_reference.py.

Not collected by `pytest tests` (the file name does not start with test_): it means something only on
aarch64, and the Makefile names it.
"""

from __future__ import annotations

import os
import platform

import pytest

import arm_reference as R
import edgecolbert_native as ec
from isa_variants import CHOSEN_ON_QEMU, COMPILED

if platform.machine() != "aarch64":
    raise RuntimeError(f"tests/aarch64_checks.py is for aarch64 (make test-arm-py); this is {platform.machine()}")

QEMU_CPU = os.environ.get("QEMU_CPU", "")
CHECKPOINTS = os.environ.get("EDGECOLBERT_ARM_CHECKPOINTS", "build/arm-ref")


def test_dispatch_names_the_expected_neon_path():
    if QEMU_CPU not in CHOSEN_ON_QEMU:
        pytest.fail(f"QEMU_CPU={QEMU_CPU!r}: tests/isa_variants.py has no expectation for this CPU model")
    variant, features = CHOSEN_ON_QEMU[QEMU_CPU]
    info = ec.info()
    assert info["compiled"] == COMPILED["aarch64"]
    assert set(info["features"]) == features, info["features"]
    assert info["isa"] == "neon" and info["variant"] == variant, info


def test_encoder_matches_the_x86_reference():
    paths = R.checkpoint_paths(CHECKPOINTS)
    missing = [p for p in paths.values() if not os.path.isdir(p)]
    if missing:
        pytest.fail(f"no checkpoints at {missing}: on x86, `python tests/arm_reference.py checkpoints "
                    f"{CHECKPOINTS}` makes them (make test-arm-py does)")
    problems = R.compare_encodings(R.encode(paths), R.load_encoder_reference())
    assert not problems, "aarch64 encoder outputs differ from the x86_64 reference:\n" + "\n".join(problems)


def test_demo_mrr_matches_the_x86_reference(tmp_path):
    if os.environ.get("EDGECOLBERT_ARM_DEMO") != "1":  # make test-arm-demo sets it
        pytest.skip("the demo under emulation takes ~20 min (the encoder at ~0.2 GFLOP/s per emulated thread): "
                    "make test-arm-demo runs it")
    ref = R.load_demo_reference()
    assert (ref["passages"], ref["nbits"]) == (R.DEMO_PASSAGES, R.DEMO_NBITS)
    mrr, output = R.run_demo(str(tmp_path))
    print(output)
    assert abs(mrr - ref["mrr_at_10"]) <= R.MRR_TOL, f"MRR@10 {mrr} on aarch64, {ref['mrr_at_10']} on x86_64"
