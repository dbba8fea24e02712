"""Test sizes under CPU emulation. `make test-arm-py` runs the kernel, codec, centroid and index suites on
aarch64 under qemu-user, where numpy, torch and the kernels run one to two orders of magnitude slower than
natively; EDGECOLBERT_TEST_EMULATED=1 (set there) makes the few tests whose cost is their bulk smaller. The
paths, dtypes, awkward shapes and edge cases a test covers stay the same; only how much data it pushes
through them shrinks."""

from __future__ import annotations

import os

EMULATED = os.environ.get("EDGECOLBERT_TEST_EMULATED") == "1"


def size(native: int, emulated: int) -> int:
    """The size to use here: `native` normally, `emulated` under emulation."""
    return emulated if EMULATED else native
