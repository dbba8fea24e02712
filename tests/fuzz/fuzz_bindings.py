"""Coverage-guided fuzzing (atheris) of the native binding layer: arbitrary shapes, dtypes, strides,
offsets, ids, k and values (NaN/Inf) for every entry point. Only ValueError/TypeError or a defined
result are allowed; a crash or an out-of-bounds read (run under ASan to see those) is a finding.

    python tests/fuzz/fuzz_bindings.py -max_total_time=60
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["edgecolbert_native"]):
    import numpy as np

    import edgecolbert_native as ec
    # The package imports these lazily, on first use: outside this block they would not be instrumented
    # and libFuzzer would see no coverage at all (it reported cov: 2 before).
    import edgecolbert_native.centroids
    import edgecolbert_native.codec
    import edgecolbert_native.kernels
    from edgecolbert_native import _native as N

DTYPES = [np.float32, np.float16, np.float64, np.int32, np.uint16, np.int64, np.uint8, np.bool_]
_codec = ec.ResidualCodec.train(np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32), 4, 2)


def _array(fdp: atheris.FuzzedDataProvider, ndim: int) -> np.ndarray:
    shape = tuple(fdp.ConsumeIntInRange(0, 6) for _ in range(ndim))
    dt = DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)]
    n = int(np.prod(shape))
    vals = np.array(fdp.ConsumeFloatListInRange(n, -1e4, 1e4) if n else [], dtype=np.float64)
    if n and fdp.ConsumeBool():
        vals[fdp.ConsumeIntInRange(0, n - 1)] = [np.nan, np.inf, -np.inf][fdp.ConsumeIntInRange(0, 2)]
    a = vals.reshape(shape).astype(dt) if n else np.zeros(shape, dt)
    layout = fdp.ConsumeIntInRange(0, 3)
    if layout == 1 and ndim >= 1 and a.shape[-1] > 1:
        a = a[..., ::2]  # non-contiguous
    elif layout == 2 and ndim >= 1 and a.size:
        a = np.broadcast_to(a[..., :1], a.shape)  # zero-stride view (read-only)
    elif layout == 3 and a.size and a.itemsize > 1:
        raw = np.zeros(a.nbytes + 1, np.uint8)  # misaligned by one byte
        a = raw[1:].view(a.dtype).reshape(a.shape)
    if fdp.ConsumeBool() and a.flags.writeable:
        a.setflags(write=False)
    return a


INT_DTYPES = [np.int64, np.uint64, np.int32, np.uint32, np.int16, np.uint8]
EDGES = [2**31, 2**32, 2**32 + 1, 2**63 - 1, 2**64 - 1]


def _ints(fdp: atheris.FuzzedDataProvider, n: int) -> np.ndarray:
    """Small ids and offsets, now and then one past 32 or 64 bits, in any integer dtype (uint64 once
    crashed the binding: numpy refuses a safe uint64 -> int64 cast)."""
    vals = [fdp.ConsumeIntInRange(-3, 12) for _ in range(n)]
    if n and fdp.ConsumeBool():
        vals[fdp.ConsumeIntInRange(0, n - 1)] = EDGES[fdp.ConsumeIntInRange(0, len(EDGES) - 1)]
    dt = INT_DTYPES[fdp.ConsumeIntInRange(0, len(INT_DTYPES) - 1)]
    return np.array([v % 2**64 for v in vals], dtype=np.uint64).astype(dt)


@atheris.instrument_func  # the harness's own branches (which entry point, which arguments) guide too
def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 20)
    try:
        q = _array(fdp, 3)
        t = _array(fdp, 2)
        off = _ints(fdp, fdp.ConsumeIntInRange(0, 5))
        k = fdp.ConsumeIntInRange(-2, 2**40)
        if which == 0:
            ec.maxsim(q, t, off)
        elif which == 1:
            ec.maxsim_topk(q, t, off, k)
        elif which == 2:
            ec.maxsim_candidates(q, t, off, _ints(fdp, 4).reshape(2, 2))
        elif which == 3:
            ec.maxsim_padded(q, _array(fdp, 3), _array(fdp, 2))
        elif which == 4:
            ec.centroid_search(t, _array(fdp, 2), k)
        elif which == 5:
            ec.assign(t, _array(fdp, 2))
        elif which == 6:
            ec.centroid_scores(t, _array(fdp, 2))
        elif which == 7:
            _codec.compress(t)
        elif which == 8:
            _codec.decompress(_ints(fdp, 3), _array(fdp, 2).astype(np.uint8))
        elif which == 9:
            ec.maxsim_compressed(q, _ints(fdp, 3), _array(fdp, 2).astype(np.uint8), off, _codec)
        # the compiled module directly, as the index calls it
        elif which == 10:
            N.maxsim(q, t, off)
        elif which == 11:
            N.maxsim_ranges(q, t, _ints(fdp, 2), _ints(fdp, 2), _ints(fdp, 2) if fdp.ConsumeBool() else None)
        elif which == 12:
            N.centroid_topk(t, _array(fdp, 2), k, fdp.ConsumeBool())
        elif which == 13:
            N.plaid_centroid_interaction(_array(fdp, 2), fdp.ConsumeIntInRange(-1, 40), _ints(fdp, 6), off,
                                         _ints(fdp, 3), fdp.ConsumeFloatInRange(-2.0, 2.0))
        elif which == 14:
            N.plaid_probe(_array(fdp, 2), fdp.ConsumeIntInRange(-1, 40), fdp.ConsumeIntInRange(-1, 70))
        elif which == 15:
            N.centroid_scores_t(t, _array(fdp, 2))
        elif which == 16:
            N.plaid_gather(_ints(fdp, 6), _array(fdp, 2).astype(np.uint8), off, _ints(fdp, 3))
        elif which == 18:
            N.quantize_rows_i8(t)
        elif which == 19:
            N.centroid_scores_t_i8(t, (_array(fdp, 2), _array(fdp, 1), _ints(fdp, 4)) if fdp.ConsumeBool()
                                   else _codec.centroids_int8())
        elif which == 17:
            segs = [(_ints(fdp, 6), _array(fdp, 2).astype(np.uint8), off, _ints(fdp, 5), _ints(fdp, 5))
                    for _ in range(fdp.ConsumeIntInRange(0, 3))]
            N.plaid_search(q, _array(fdp, 2) if fdp.ConsumeBool() else None, _codec.centroids, _codec.bucket_weights,
                           2, segs, _ints(fdp, 3 * len(segs)) if fdp.ConsumeBool() else None, fdp.ConsumeBool(),
                           fdp.ConsumeIntInRange(-1, 6), fdp.ConsumeIntInRange(-1, 6), fdp.ConsumeIntInRange(-1, 6),
                           fdp.ConsumeIntInRange(-1, 12), fdp.ConsumeFloatInRange(-2.0, 2.0),
                           ["plaid", "selective", "exhaustive", "x"][fdp.ConsumeIntInRange(0, 3)],
                           [_array(fdp, 2) for _ in segs] if fdp.ConsumeBool() else None,
                           centroids_i8=_codec.centroids_int8() if fdp.ConsumeBool() else None)
        else:
            N.plaid_stage_a(_ints(fdp, 4).reshape(2, 2), _array(fdp, 2), _array(fdp, 1), _ints(fdp, 5), off,
                            fdp.ConsumeIntInRange(-2, 64))
    except (ValueError, TypeError, OverflowError):
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
