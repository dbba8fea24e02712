"""hypothesis: every codec / centroid entry point on arbitrary shapes, dtypes, layouts, ids and values
either returns a well-formed result or raises ValueError/TypeError (the MaxSim family is covered in
test_maxsim_errors.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgecolbert_native as ec

CODEC = ec.ResidualCodec.train(np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32), 4, 2)
DTYPES = [np.float32, np.float16, np.float64, np.int32, np.uint16, np.uint8, np.bool_]


@st.composite
def arrays(draw, ndim: int, dim: int | None = None):
    shape = [draw(st.integers(0, 5)) for _ in range(ndim)]
    if dim is not None and ndim and draw(st.booleans()):
        shape[-1] = dim
    dt = draw(st.sampled_from(DTYPES))
    vals = draw(st.sampled_from([0.0, 1.0, -2.5, 1e30, np.nan, np.inf]))
    a = np.full(shape, vals).astype(dt) if dt != np.bool_ else np.zeros(shape, bool)
    layout = draw(st.integers(0, 3))
    if layout == 1 and ndim and a.shape[-1] > 1:
        a = a[..., ::2]
    elif layout == 2 and a.size:
        a = np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * ndim), a.shape)
    elif layout == 3 and a.size and a.itemsize > 1:
        raw = np.zeros(a.nbytes + 1, np.uint8)
        a = raw[1:].view(a.dtype).reshape(a.shape)
    return a


def _ok(call) -> None:
    try:
        out = call()
    except (ValueError, TypeError):
        return
    for o in out if isinstance(out, tuple) else (out,):
        assert isinstance(o, np.ndarray)


@settings(max_examples=200, deadline=None)
@given(t=arrays(2, 8), c=arrays(2, 8), k=st.integers(-3, 2**40))
def test_centroid_entry_points(t, c, k):
    _ok(lambda: ec.centroid_search(t, c, k))
    _ok(lambda: ec.centroid_scores(t, c))
    _ok(lambda: ec.assign(t, c))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(t=arrays(2, 8), codes=st.lists(st.integers(-5, 10), max_size=6), r=arrays(2, 2),
       q=arrays(3, 8), offs=st.lists(st.integers(-2, 8), max_size=4))
def test_codec_entry_points(t, codes, r, q, offs):
    c = np.asarray(codes, np.int64)
    _ok(lambda: CODEC.compress(t))
    _ok(lambda: CODEC.decompress(c, r.astype(np.uint8) if r.dtype != np.uint8 else r))
    _ok(lambda: ec.maxsim_compressed(q, c, r, np.asarray(offs, np.int64), CODEC))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(-1, 300), k=st.integers(-1, 40), dim=st.integers(0, 9), nbits=st.integers(0, 9))
def test_training_and_construction(n, k, dim, nbits):
    x = np.random.default_rng(1).standard_normal((max(n, 0), dim)).astype(np.float32)
    _ok(lambda: ec.kmeans(x, k, niters=1))
    _ok(lambda: (ec.ResidualCodec.train(x, k, nbits, niters=1).centroids,))
