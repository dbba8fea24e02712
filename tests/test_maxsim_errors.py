"""Bad input: every public MaxSim function raises TypeError/ValueError naming itself and the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgecolbert_native as ec
from emulation import size

Q = np.ones((2, 3, 8), np.float32)
T = np.ones((10, 8), np.float32)
OFF = np.array([0, 4, 10], np.int64)


def call(fn, **kw):
    args = dict(queries=Q, doc_tokens=T, doc_offsets=OFF)
    args.update(kw)
    if fn is ec.maxsim_topk:
        args.setdefault("k", 1)
    if fn is ec.maxsim_candidates:
        args.setdefault("candidates", np.zeros((2, 1), np.int64))
    return fn(**args)


CSR_FUNCS = [ec.maxsim, ec.maxsim_topk, ec.maxsim_candidates]


@pytest.mark.parametrize("fn", CSR_FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "kw, exc, words",
    [
        (dict(queries=np.ones((3, 8), np.float32)), ValueError, ["queries", "3 dimensions"]),
        (dict(doc_tokens=np.ones((10, 7), np.float32)), ValueError, ["dim"]),
        (dict(doc_tokens=np.ones((10,), np.float32)), ValueError, ["doc_tokens"]),
        (dict(doc_offsets=np.array([0, 6, 4, 10])), ValueError, ["doc_offsets", "non-decreasing"]),
        (dict(doc_offsets=np.array([1, 4, 10])), ValueError, ["doc_offsets"]),
        (dict(doc_offsets=np.array([0, 4, 11])), ValueError, ["doc_offsets"]),
        (dict(doc_offsets=np.array([0, -4, 10])), ValueError, ["doc_offsets"]),
        (dict(doc_offsets=np.array([], np.int64)), ValueError, ["doc_offsets"]),
        (dict(doc_offsets=np.array([0.0, 4.0, 10.0])), TypeError, ["doc_offsets"]),
        (dict(doc_offsets=np.array([[0, 4, 10]])), ValueError, ["doc_offsets"]),
        (dict(queries=np.ones((2, 3, 8), np.int32)), TypeError, ["queries"]),
        (dict(queries=np.ones((2, 3, 8), np.float64)), TypeError, ["queries", "float64"]),
        (dict(doc_tokens=np.ones((10, 8), np.uint16)), TypeError, ["doc_tokens", "bfloat16"]),
        (dict(doc_tokens=np.ones((10, 16), np.float32)[:, ::2]), ValueError, ["doc_tokens", "contiguous"]),
        (dict(queries=np.ones((2, 3, 16), np.float32)[:, :, ::2]), ValueError, ["queries", "contiguous"]),
        (dict(query_mask=np.ones((2, 4), bool)), ValueError, ["query_mask"]),
        (dict(query_mask=np.ones((2, 3), np.float32) * 1j), TypeError, ["query_mask"]),
        (dict(num_threads=0), ValueError, ["num_threads"]),
        (dict(num_threads=-3), ValueError, ["num_threads"]),
        (dict(num_threads=2.5), TypeError, ["num_threads"]),
        (dict(num_threads=np.float64(2.0)), TypeError, ["num_threads"]),
        (dict(num_threads=np.int64(0)), ValueError, ["num_threads"]),
        (dict(queries="not an array"), TypeError, ["queries"]),
        (dict(dtype="int8"), TypeError, ["dtype"]),
    ],
)
def test_bad_input(fn, kw, exc, words):
    with pytest.raises(exc) as e:
        call(fn, **kw)
    msg = str(e.value)
    assert fn.__name__ in msg, msg
    for w in words:
        assert w in msg, msg


def test_numpy_integer_thread_counts():
    """num_threads takes any integer, as k does: a numpy one (from a config array) gives the same result."""
    want = ec.maxsim(Q, T, OFF, num_threads=2)
    for n in (np.int64(2), np.int32(2), np.uint8(2)):
        np.testing.assert_array_equal(ec.maxsim(Q, T, OFF, num_threads=n), want)


def test_topk_k_range():
    for k in (0, -1, 3, 10**12):
        with pytest.raises(ValueError, match="maxsim_topk: k"):
            ec.maxsim_topk(Q, T, OFF, k)
    with pytest.raises(TypeError, match="maxsim_topk: k"):
        ec.maxsim_topk(Q, T, OFF, 1.5)


def test_candidates_out_of_range():
    for bad in ([[2], [0]], [[-1], [0]], [[0], [10**15]]):
        with pytest.raises(ValueError, match="maxsim_candidates: candidates"):
            ec.maxsim_candidates(Q, T, OFF, np.array(bad))
    with pytest.raises(ValueError, match="candidates must have shape"):
        ec.maxsim_candidates(Q, T, OFF, np.zeros((3, 1), np.int64))


def test_misaligned_buffer_is_refused():
    raw = np.zeros(10 * 8 * 4 + 1, np.uint8)
    tokens = raw[1:].view(np.float32).reshape(10, 8)
    with pytest.raises(ValueError, match="maxsim: doc_tokens is not aligned"):
        ec.maxsim(Q, tokens, OFF)


def test_read_only_inputs_are_fine():
    t = T.copy()
    t.setflags(write=False)
    assert ec.maxsim(Q, t, OFF).shape == (2, 2)


def test_padded_bad_input():
    docs = np.ones((3, 5, 8), np.float32)
    with pytest.raises(ValueError, match="maxsim_padded: docs must have 3 dimensions"):
        ec.maxsim_padded(Q, np.ones((5, 8), np.float32))
    with pytest.raises(ValueError, match="maxsim_padded: doc_mask"):
        ec.maxsim_padded(Q, docs, np.ones((3, 4), bool))
    # The messages name the argument the caller passed (docs), not the flattened array the binding sees.
    with pytest.raises(ValueError, match="maxsim_padded: docs have dim"):
        ec.maxsim_padded(Q, np.ones((3, 5, 9), np.float32))
    with pytest.raises(TypeError, match="maxsim_padded: docs must be float32"):
        ec.maxsim_padded(Q, np.ones((3, 5, 8), np.float64))


def test_cuda_tensor_is_a_clear_error():
    torch = pytest.importorskip("torch")
    t = torch.ones(2, 3, 8)
    if not hasattr(t, "to"):
        pytest.skip("torch without tensors")
    meta = torch.ones(2, 3, 8, device="meta")
    with pytest.raises(ValueError, match="maxsim: queries is on device meta"):
        ec.maxsim(meta, T, OFF)


class _DLPackOnly:
    """An exporter with nothing but the DLPack protocol (np.asarray would make a 0-d object array of it)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_index_and_mask_arguments_through_dlpack():
    """docs/guide.md: anything exporting DLPack is accepted; offsets, candidates and masks were refused
    ("doc_offsets must hold integers, got object") while token arrays were read."""
    rng = np.random.default_rng(4)
    q = rng.standard_normal((2, 3, 8)).astype(np.float32)
    t = rng.standard_normal((7, 8)).astype(np.float32)
    off, cand = np.array([0, 2, 7]), np.array([[1, 0], [0, 1]])
    qmask, dmask = np.array([[1, 1, 0], [1, 0, 1]], bool), np.ones((2, 4), bool)
    want = ec.maxsim(q, t, off, query_mask=qmask)
    np.testing.assert_array_equal(ec.maxsim(_DLPackOnly(q), _DLPackOnly(t), _DLPackOnly(off),
                                            query_mask=_DLPackOnly(qmask)), want)
    np.testing.assert_array_equal(ec.maxsim_candidates(q, t, off, _DLPackOnly(cand)), ec.maxsim_candidates(q, t, off, cand))
    padded = rng.standard_normal((2, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(ec.maxsim_padded(q, padded, _DLPackOnly(dmask)), ec.maxsim_padded(q, padded, dmask))


@settings(max_examples=size(150, 30), deadline=None)
@given(
    lens=st.lists(st.integers(-3, 6), max_size=6),
    total=st.integers(0, 12),
    dim=st.integers(0, 5),
    qdim=st.integers(0, 5),
    lq=st.integers(0, 3),
    k=st.integers(-1, 8),
)
def test_fuzz_offsets_and_shapes(lens, total, dim, qdim, lq, k):
    """Arbitrary offsets and shapes: either a defined result or a ValueError/TypeError, never a crash."""
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = np.ones((total, dim), np.float32)
    q = np.ones((2, lq, qdim), np.float32)
    for f in (
        lambda: ec.maxsim(q, tokens, offsets),
        lambda: ec.maxsim_topk(q, tokens, offsets, k),
        lambda: ec.maxsim_candidates(q, tokens, offsets, np.full((2, 2), k)),
    ):
        try:
            out = f()
        except (ValueError, TypeError):
            continue
        arrays = out if isinstance(out, tuple) else (out,)
        for a in arrays:
            assert a.shape[0] == 2
