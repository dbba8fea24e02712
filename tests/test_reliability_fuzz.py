"""Hypothesis fuzzing of every native entry point (issue 8).

Each test starts from a valid call and replaces one or more arguments with hostile values: wrong dtypes
(float64, integers, bool, byte-swapped floats), wrong shapes, empty and zero-size arrays, non-contiguous,
zero-stride (broadcast), transposed, read-only and misaligned views, negative or overflowing offsets and
ids (2^31, 2^32 + k, 2^63 - 1, uint64 above INT64_MAX), huge k, NaN and Inf, odd scalars. Every call
must raise ValueError/TypeError, or return a defined result: the documented shape, finite where the
inputs were finite. The compiled module (`_native`) is fuzzed directly as well as the public wrappers,
since the index calls it directly. Run under ASan by `make test-asan`, where a read out of bounds is
a failure too. EDGECOLBERT_FUZZ_EXAMPLES sets examples per test (default 150).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgecolbert_native as ec
from edgecolbert_native import _native as N

EXAMPLES = int(os.environ.get("EDGECOLBERT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ALLOWED = (ValueError, TypeError, OverflowError)

DTYPES = [np.float32, np.float16, np.float64, np.int32, np.int64, np.uint64, np.uint16, np.uint8, np.bool_,
          np.dtype(">f4"), np.dtype(">f2"), np.dtype(">i8"), np.int8, np.complex64]
BAD_INTS = [-1, -(2**31), 2**31, 2**32, 2**32 + 1, 2**63 - 1, -(2**63)]
BAD_SCALARS = [0, -1, 2**31, 2**40, 2**63 - 1, 2**70, -(2**70), 1.5, float("nan"), float("inf"), None, "3", True]


def hostile_view(data: st.DataObject, a: np.ndarray) -> np.ndarray:
    """The same values in a layout the kernels do not read directly."""
    kind = data.draw(st.sampled_from(["as-is", "non-contiguous", "zero-stride", "transposed", "read-only",
                                      "misaligned", "fortran", "byteswapped"]))
    if kind == "non-contiguous" and a.ndim >= 1:
        wide = np.repeat(a, 2, axis=-1)
        return wide[..., ::2]
    if kind == "zero-stride" and a.ndim >= 1 and a.shape[0] > 0:
        return np.broadcast_to(a[:1], a.shape)
    if kind == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    if kind == "read-only":
        b = a.copy()
        b.setflags(write=False)
        return b
    if kind == "misaligned" and a.itemsize > 1 and a.size > 0:
        buf = np.zeros(a.nbytes + 1, np.uint8)
        m = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        return m
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "byteswapped" and a.dtype.kind in "fiu" and a.itemsize > 1:
        return a.astype(a.dtype.newbyteorder(">"))
    return a


def hostile_array(data: st.DataObject, like: np.ndarray) -> Any:
    """An argument to put where `like` belongs: a wrong dtype, shape or layout, poisoned values, or not
    an array at all."""
    what = data.draw(st.sampled_from(["dtype", "shape", "empty", "values", "view", "ints", "object"]))
    a = like.copy()
    if what == "dtype":
        dt = data.draw(st.sampled_from(DTYPES))
        with np.errstate(all="ignore"):
            return a.astype(dt)
    if what == "shape":
        nd = data.draw(st.integers(0, 4))
        shape = tuple(data.draw(st.integers(0, 5)) for _ in range(nd))
        return np.ones(shape, like.dtype)
    if what == "empty":
        return np.zeros((0,) * max(like.ndim, 1), like.dtype)
    if what == "values" and a.size:
        flat = a.reshape(-1)
        i = data.draw(st.integers(0, a.size - 1))
        if a.dtype.kind == "f":
            flat[i] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38, -0.0]))
        elif a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            flat[i] = data.draw(st.sampled_from([v for v in BAD_INTS if info.min <= v <= info.max] or [0]))
        return a
    if what == "ints":
        n = data.draw(st.integers(0, 6))
        vals = data.draw(st.lists(st.sampled_from(BAD_INTS + [0, 1, 2, 3]), min_size=n, max_size=n))
        dt = data.draw(st.sampled_from([np.int64, np.uint64, np.int32]))
        with np.errstate(all="ignore"):
            return np.array([v % 2**64 if dt is np.uint64 else v for v in vals], dtype=object).astype(dt) \
                if dt is not np.int32 else np.array(vals, np.int64).astype(np.int32)
    if what == "object":
        return data.draw(st.sampled_from([None, "tokens", 3, [[1.0, 2.0]], [[[1, "a"]]], np.array([{}])]))
    return hostile_view(data, a)


def exercise(data: st.DataObject, fn: Callable[..., Any], args: dict[str, Any], scalars: tuple[str, ...] = (),
             check: Callable[[Any, dict[str, Any]], None] | None = None) -> None:
    """Call fn with up to three arguments made hostile; it raises a clear error or returns sanely."""
    names = [n for n in args]
    for name in data.draw(st.lists(st.sampled_from(names), min_size=0, max_size=3, unique=True)):
        if name in scalars:
            args[name] = data.draw(st.sampled_from(BAD_SCALARS))
        elif isinstance(args[name], np.ndarray):
            args[name] = hostile_array(data, args[name])
    try:
        out = fn(**args)
    except ALLOWED as e:
        assert str(e), f"{fn.__name__}: an exception without a message"
        return
    finite = all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in args.values()
                 if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size < 10_000)
    if check is not None:
        check(out, args)
    if finite:
        for o in out if isinstance(out, tuple) else (out,):
            o = np.asarray(o)
            if o.dtype.kind == "f":
                assert not np.isnan(o).any(), f"{fn.__name__}: NaN from finite inputs"


rng = np.random.default_rng(7)
DIM = 8
Q = rng.standard_normal((2, 3, DIM)).astype(np.float32)
T = rng.standard_normal((10, DIM)).astype(np.float32)
OFF = np.array([0, 4, 4, 10], np.int64)  # an empty document in the middle
MASK = np.array([[1, 1, 0], [1, 0, 1]], bool)
CODEC = ec.ResidualCodec.train(rng.standard_normal((256, DIM)).astype(np.float32), 8, 2)
CODES, RES = CODEC.compress(T)
# The IVF of the three documents of OFF over CODEC's 8 centroids (centroid -> documents holding it).
_DOC_OF = np.repeat(np.arange(3), np.diff(OFF))
IVF_LISTS = [np.unique(_DOC_OF[CODES == c]) for c in range(8)]
IVF = np.concatenate(IVF_LISTS).astype(np.int32)
IVF_OFF = np.concatenate([[0], np.cumsum([len(x) for x in IVF_LISTS])]).astype(np.int64)


def _shape(expect: Callable[[dict[str, Any]], tuple[int, ...]]) -> Callable[[Any, dict[str, Any]], None]:
    def check(out: Any, args: dict[str, Any]) -> None:
        got = np.asarray(out[0] if isinstance(out, tuple) else out).shape
        assert got == expect(args), (got, expect(args))
    return check


ALLOWED6 = np.array([1, 0, 1, 1, 1, 1], np.uint8)  # the positions of two segments of OFF's three documents


def _segments(codes: Any, residuals: Any, doc_offsets: Any, ivf: Any, ivf_offsets: Any) -> list:
    """Two segments made of the same (possibly hostile) arrays: every segment's arrays are checked."""
    return [(codes, residuals, doc_offsets, ivf, ivf_offsets)] * 2


def _plaid_search(queries: Any, query_mask: Any, centroids: Any, bucket_weights: Any, nbits: Any, codes: Any,
                  residuals: Any, doc_offsets: Any, ivf: Any, ivf_offsets: Any, allowed: Any, decoded: Any = None,
                  **kw: Any) -> Any:
    """plaid_search over two segments (decoded: one array for both)."""
    return N.plaid_search(queries, query_mask, centroids, bucket_weights, nbits,
                          _segments(codes, residuals, doc_offsets, ivf, ivf_offsets), allowed,
                          decoded=None if decoded is None else [decoded, decoded], **kw)


def _plaid_stages(queries: Any, query_mask: Any, codes: Any, residuals: Any, doc_offsets: Any, ivf: Any,
                  ivf_offsets: Any, allowed: Any, which: Any, probes: Any, ndocs: Any, offsets: Any, docs: Any,
                  threshold: Any) -> Any:
    """The native stage source over two segments, each of its three stages called."""
    src = N.PlaidIndexSource(queries, query_mask, CODEC.centroids, CODEC.bucket_weights, 2,
                             _segments(codes, residuals, doc_offsets, ivf, ivf_offsets), allowed, threshold=threshold,
                             num_threads=2)
    got = src.candidates(which, probes, ndocs)
    return (*got, src.approximate(which, offsets, docs), src.exact(which, offsets, docs))


def _plaid_drive(queries: Any, query_mask: Any, codes: Any, residuals: Any, doc_offsets: Any, ivf: Any,
                 ivf_offsets: Any, active: Any, **kw: Any) -> Any:
    """The stage driver over the native source of two segments."""
    src = N.PlaidIndexSource(queries, query_mask, CODEC.centroids, CODEC.bucket_weights, 2,
                             _segments(codes, residuals, doc_offsets, ivf, ivf_offsets), num_threads=1)
    return N.plaid_drive(src, active, subset=False, **kw)


NATIVE: dict[str, tuple[Callable[..., Any], Callable[[], dict[str, Any]], tuple[str, ...]]] = {
    "maxsim": (N.maxsim, lambda: dict(queries=Q, doc_tokens=T, doc_offsets=OFF, query_mask=MASK, num_threads=2),
               ("num_threads",)),
    "maxsim_ranges": (N.maxsim_ranges, lambda: dict(queries=Q, doc_tokens=T, doc_begin=np.array([0, 4, 2]),
                                                    doc_end=np.array([4, 4, 10]), floor_zero=np.array([0, 1, 0], np.uint8),
                                                    num_threads=1), ("num_threads",)),
    "maxsim_topk": (N.maxsim_topk, lambda: dict(queries=Q, doc_tokens=T, doc_offsets=OFF, k=2, num_threads=2),
                    ("k", "num_threads")),
    "maxsim_candidates": (N.maxsim_candidates, lambda: dict(queries=Q, doc_tokens=T, doc_offsets=OFF,
                                                            candidates=np.array([[0, 2], [1, 1]]), num_threads=1),
                          ("num_threads",)),
    "centroid_scores": (N.centroid_scores, lambda: dict(query_tokens=T, centroids=CODEC.centroids), ()),
    "centroid_scores_t": (N.centroid_scores_t, lambda: dict(query_tokens=T, centroids=CODEC.centroids), ()),
    "centroid_topk": (N.centroid_topk, lambda: dict(rows=T, centroids=CODEC.centroids, k=3, want_scores=True,
                                                    num_threads=2), ("k", "num_threads")),
    "codec_compress": (N.codec_compress, lambda: dict(centroids=CODEC.centroids, bucket_cutoffs=CODEC.bucket_cutoffs,
                                                      bucket_weights=CODEC.bucket_weights, nbits=2, tokens=T),
                       ("nbits",)),
    "codec_decompress": (N.codec_decompress, lambda: dict(centroids=CODEC.centroids, bucket_weights=CODEC.bucket_weights,
                                                          nbits=2, codes=CODES, residuals=RES), ("nbits",)),
    "maxsim_compressed": (N.maxsim_compressed, lambda: dict(queries=Q, centroids=CODEC.centroids,
                                                            bucket_weights=CODEC.bucket_weights, nbits=2, codes=CODES,
                                                            residuals=RES, doc_offsets=OFF,
                                                            candidates=np.array([[0, 2], [2, 1]])), ("nbits",)),
    "plaid_centroid_interaction": (N.plaid_centroid_interaction, lambda: dict(
        scores_t=rng.standard_normal((8, 4)).astype(np.float32), m=3, codes=CODES, doc_offsets=OFF,
        docs=np.array([0, 2, 1]), threshold=0.0), ("m", "threshold")),
    "plaid_gather": (N.plaid_gather, lambda: dict(codes=CODES, residuals=RES, doc_offsets=OFF,
                                                  docs=np.array([0, 2, 1, 2])), ()),
    "plaid_probe": (N.plaid_probe, lambda: dict(scores_t=rng.standard_normal((8, 4)).astype(np.float32), m=3,
                                                nprobe=2), ("m", "nprobe")),
    "plaid_search": (_plaid_search, lambda: dict(
        queries=Q, query_mask=MASK, centroids=CODEC.centroids, bucket_weights=CODEC.bucket_weights, nbits=2,
        codes=CODES, residuals=RES, doc_offsets=OFF, ivf=IVF, ivf_offsets=IVF_OFF, allowed=ALLOWED6, subset=True,
        nprobe=2, ndocs=2, rerank=1, k=2, threshold=0.0, num_threads=2),
        ("nbits", "nprobe", "ndocs", "rerank", "k", "threshold", "num_threads", "subset")),
    "plaid_search_int8": (_plaid_search, lambda: dict(
        queries=Q, query_mask=None, centroids=CODEC.centroids, bucket_weights=CODEC.bucket_weights, nbits=2,
        codes=CODES, residuals=RES, doc_offsets=OFF, ivf=IVF, ivf_offsets=IVF_OFF, allowed=None, nprobe=1, ndocs=3,
        rerank=2, k=3, num_threads=1, centroids_i8=CODEC.centroids_int8()), ("nprobe", "ndocs", "rerank", "k", "num_threads")),
    "plaid_search_selective": (_plaid_search, lambda: dict(
        queries=Q, query_mask=MASK, centroids=CODEC.centroids, bucket_weights=CODEC.bucket_weights, nbits=2,
        codes=CODES, residuals=RES, doc_offsets=OFF, ivf=IVF, ivf_offsets=IVF_OFF, allowed=ALLOWED6, subset=True,
        k=4, mode="selective", num_threads=2), ("k", "num_threads", "mode")),
    "plaid_search_exhaustive": (_plaid_search, lambda: dict(
        queries=Q, query_mask=MASK, centroids=CODEC.centroids, bucket_weights=CODEC.bucket_weights, nbits=2,
        codes=CODES, residuals=RES, doc_offsets=OFF, ivf=IVF, ivf_offsets=IVF_OFF, allowed=ALLOWED6, k=4,
        mode="exhaustive", decoded=T, num_threads=2), ("k", "num_threads", "mode")),
    "plaid_index_source": (_plaid_stages, lambda: dict(
        queries=Q, query_mask=MASK, codes=CODES, residuals=RES, doc_offsets=OFF, ivf=IVF, ivf_offsets=IVF_OFF,
        allowed=ALLOWED6, which=np.array([1, 0]), probes=np.array([2, 1]), ndocs=3, offsets=np.array([0, 2, 3]),
        docs=np.array([0, 5, 3]), threshold=0.0), ("ndocs", "threshold")),
    "plaid_drive": (_plaid_drive, lambda: dict(
        queries=Q, query_mask=MASK, codes=CODES, residuals=RES, doc_offsets=OFF, ivf=IVF, ivf_offsets=IVF_OFF,
        active=np.array([1, 1], np.uint8), nprobe=1, ndocs=3, rerank=2, k=3, num_centroids=8, num_allowed=6),
        ("nprobe", "ndocs", "rerank", "k", "num_centroids", "num_allowed")),
    "quantize_rows_i8": (N.quantize_rows_i8, lambda: dict(x=T), ()),
    "centroid_scores_t_i8": (N.centroid_scores_t_i8, lambda: dict(query_tokens=T, centroids_i8=CODEC.centroids_int8(),
                                                                  num_threads=2), ("num_threads",)),
    "plaid_stage_a": (N.plaid_stage_a, lambda: dict(
        cells=np.array([[0, 1], [2, 0]], np.int32), cell_scores=np.ones((2, 2), np.float32),
        miss=np.zeros(2, np.float32), ivf=np.array([0, 1, 2, 1, 0], np.int32),
        ivf_offsets=np.array([0, 2, 3, 5]), num_docs=3, allowed=np.array([1, 0, 1], np.uint8)), ("num_docs",)),
}


@pytest.mark.parametrize("name", sorted(NATIVE))
@FUZZ
@given(data=st.data())
def test_native_entry_point_survives_hostile_arguments(name, data):
    fn, base, scalars = NATIVE[name]
    exercise(data, fn, base(), scalars)


def test_plaid_drive_needs_one_active_entry_per_query_of_a_native_source():
    """The driver asks its source for query i of each active entry i, and a native source reads its batch's rows
    unchecked: an active longer than the batch read past the query mask (found by the test above under ASan),
    so active must match the batch; a shorter one is refused too, its rows being the batch's."""
    kw = NATIVE["plaid_drive"][1]()
    for n in (1, 3, 40):
        kw["active"] = np.ones(n, np.uint8)
        with pytest.raises(ValueError, match=f"active has {n} entries; the source's batch has 2 queries"):
            _plaid_drive(**kw)
    kw["active"] = np.array([1, 0], np.uint8)
    scores, pos = _plaid_drive(**kw)
    assert scores.shape[0] == pos.shape[0] == 2 and (pos[1] == -1).all() and (pos[0] >= 0).any()


PUBLIC: dict[str, tuple[Callable[..., Any], Callable[[], dict[str, Any]], tuple[str, ...], Any]] = {
    "maxsim": (ec.maxsim, lambda: dict(queries=Q, doc_tokens=T, doc_offsets=OFF, query_mask=MASK), ("num_threads",),
               _shape(lambda a: (2, 3))),
    "maxsim_topk": (ec.maxsim_topk, lambda: dict(queries=Q, doc_tokens=T, doc_offsets=OFF, k=3), ("k",), None),
    "maxsim_candidates": (ec.maxsim_candidates, lambda: dict(queries=Q, doc_tokens=T, doc_offsets=OFF,
                                                             candidates=np.array([[0, 2], [1, 1]])), (), None),
    "maxsim_padded": (ec.maxsim_padded, lambda: dict(queries=Q, docs=rng.standard_normal((3, 4, DIM)).astype(np.float32),
                                                     doc_mask=np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)),
                      (), None),
    "centroid_search": (ec.centroid_search, lambda: dict(query_tokens=T, centroids=CODEC.centroids, nprobe=2),
                        ("nprobe", "num_threads"), None),
    "centroid_scores": (ec.centroid_scores, lambda: dict(query_tokens=T, centroids=CODEC.centroids), (), None),
    "assign": (ec.assign, lambda: dict(tokens=T, centroids=CODEC.centroids), ("num_threads",), None),
    "codec_compress": (CODEC.compress, lambda: dict(tokens=T), (), None),
    "codec_decompress": (CODEC.decompress, lambda: dict(codes=CODES, residuals=RES), (), None),
    "codec_new": (ec.ResidualCodec, lambda: dict(centroids=CODEC.centroids, bucket_cutoffs=CODEC.bucket_cutoffs,
                                                 bucket_weights=CODEC.bucket_weights, nbits=2), ("nbits",), None),
    "maxsim_compressed": (ec.maxsim_compressed, lambda: dict(queries=Q, codes=CODES, residuals=RES, doc_offsets=OFF,
                                                             codec=CODEC), (), None),
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
@FUZZ
@given(data=st.data())
def test_public_entry_point_survives_hostile_arguments(name, data):
    fn, base, scalars, check = PUBLIC[name]
    exercise(data, fn, base(), scalars, check)


# Bugs this file found, pinned (each crashed or answered wrongly before the fix in csrc/bindings).
def test_uint64_index_arrays_are_converted_not_dereferenced_as_null():
    # numpy refuses a "safe" cast uint64 -> int64, and the binding used the failed (null) array: SIGSEGV.
    u = np.array([0, 4, 4, 10], np.uint64)
    assert np.array_equal(N.maxsim(Q, T, u), N.maxsim(Q, T, OFF))
    assert N.maxsim_candidates(Q, T, OFF, np.array([[0], [2]], np.uint64)).shape == (2, 1)
    assert N.maxsim_ranges(Q, T, np.array([0, 4], np.uint64), np.array([4, 10], np.uint64)).shape == (2, 2)
    with pytest.raises(ValueError, match="doc_offsets"):
        N.maxsim(Q, T, np.array([0, 2**64 - 1, 10], np.uint64))


def test_byteswapped_tokens_are_refused_not_misread():
    for fn in (lambda: N.maxsim(Q.astype(">f4"), T, OFF), lambda: N.maxsim(Q, T.astype(">f2"), OFF),
               lambda: N.centroid_scores(T.astype(">f4"), CODEC.centroids)):
        with pytest.raises(TypeError, match="byte order"):
            fn()


def test_overflowing_codes_do_not_alias_valid_centroids():
    # 2^32 + k used to wrap to the valid centroid k in the int32 cast and decode as if it were k.
    with pytest.raises(ValueError, match="codes"):
        CODEC.decompress(CODES.astype(np.int64) + 2**32, RES)
    with pytest.raises(ValueError, match="codes"):
        ec.maxsim_compressed(Q, CODES.astype(np.uint64) + np.uint64(2**63), RES, OFF, CODEC)


def _misaligned(a: np.ndarray) -> np.ndarray:
    """a's values in a C-contiguous view one byte past an aligned address."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    m = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert m.flags.c_contiguous and not m.flags.aligned
    return m


def test_misaligned_index_and_codec_arrays_are_copied_not_read_in_place():
    # Such a view has the right dtype and layout, so pybind11's ensure() handed it back as is and the
    # kernels loaded int64/int32/float from odd addresses: undefined behaviour, which UBSan (make test-asan)
    # ends with exit status 1 inside pytest's output capture (dots, then nothing). Now numpy copies it.
    cand = np.array([[0, 2], [1, 1]])
    assert np.array_equal(N.maxsim(Q, T, _misaligned(OFF)), N.maxsim(Q, T, OFF))
    assert np.array_equal(N.maxsim_candidates(Q, T, OFF, _misaligned(cand)), N.maxsim_candidates(Q, T, OFF, cand))
    got = N.codec_decompress(CODEC.centroids, _misaligned(CODEC.bucket_weights), 2, _misaligned(CODES), RES)
    assert np.array_equal(got, N.codec_decompress(CODEC.centroids, CODEC.bucket_weights, 2, CODES, RES))
    codes = CODES.astype(np.int64)  # wider than int32: range-checked through int64_array first
    assert np.array_equal(N.codec_decompress(CODEC.centroids, CODEC.bucket_weights, 2, _misaligned(codes), RES), got)
    scores = rng.standard_normal((8, 4)).astype(np.float32)
    docs = np.array([0, 2, 1])
    want = N.plaid_centroid_interaction(scores, 3, CODES, OFF, docs, 0.0)
    assert np.array_equal(N.plaid_centroid_interaction(_misaligned(scores), 3, _misaligned(CODES), OFF, docs, 0.0), want)
    args = dict(cells=np.array([[0, 1], [2, 0]], np.int32), cell_scores=np.ones((2, 2), np.float32),
                miss=np.zeros(2, np.float32), ivf=np.array([0, 1, 2, 1, 0], np.int32),
                ivf_offsets=np.array([0, 2, 3, 5]), num_docs=3)
    want_a = N.plaid_stage_a(**args)
    got_a = N.plaid_stage_a(**{k: _misaligned(v) if isinstance(v, np.ndarray) else v for k, v in args.items()})
    for g, w in zip(got_a, want_a):
        assert np.array_equal(g, w)


@pytest.mark.parametrize("kernel", ["decode", "lut"])
@pytest.mark.parametrize("poison", ["bucket_weight", "centroid"])
@pytest.mark.parametrize("isa", ec.info()["paths"])
def test_compressed_score_of_a_token_whose_norm_overflows_follows_the_definition(isa, poison, kernel, monkeypatch):
    monkeypatch.setenv("EDGECOLBERT_COMPRESSED_KERNEL", kernel)
    # A finite 3e38 makes a decoded token's squared norm overflow, so 1 / ||v|| = 0. The SIMD paths'
    # factored score (<q, c> + sum lut) / ||v|| was (inf - inf) * 0 = NaN (and a NaN row maximum then
    # changed other rows' maxima), where the definition, decompress then dot, gives <q, v / inf> = 0.
    cents, w = CODEC.centroids.copy(), CODEC.bucket_weights.copy()
    if poison == "bucket_weight":
        w[np.argmax(np.bincount(np.unpackbits(RES).reshape(-1, 2) @ [1, 2], minlength=4))] = 3e38
    else:
        cents[CODES[0], 0] = 3e38
    cand = np.array([[0, 2], [2, 1]])
    dec = N.codec_decompress(cents, w, 2, CODES, RES)
    assert np.isfinite(dec).all()
    full = N.maxsim(Q, dec, OFF)
    want = np.take_along_axis(full, cand, axis=1)
    got = N.maxsim_compressed(Q, cents, w, 2, CODES, RES, OFF, cand, isa=isa)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(N.maxsim_compressed(Q, cents, w, 2, CODES, RES, OFF, isa=isa), full, rtol=1e-5, atol=1e-5)
