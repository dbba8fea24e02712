import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # A fixed seed per test (from its id): fresh data for every test, the same data on every run.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
