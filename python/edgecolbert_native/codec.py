"""ColBERTv2 residual codec (byte-compatible with colbert-ai's ``ResidualCodec``) and MaxSim straight
from codes.

Formulas (colbert-ai 0.2.x, ``colbert/indexing/codecs/residual.py``):

* ``code = argmax_c <x, centroids[c]>`` (inner product; ties to the lower id);
* ``residual = x - centroids[code]``; per dimension ``bucket = torch.bucketize(residual, bucket_cutoffs)``
  (``right=False``: the number of cutoffs strictly below the value, so a value equal to a cutoff goes to
  the lower bucket), ``0 <= bucket < 2**nbits``;
* decompression: ``v = centroids[code] + bucket_weights[bucket]``, returned as ``v / max(||v||, 1e-12)``
  (``torch.nn.functional.normalize``).

Byte layout of ``residuals uint8 [T, dim * nbits // 8]``: each dimension contributes its ``nbits`` bits
least significant first, dimension after dimension; the bit stream is cut into bytes with the first bit
as the most significant (``numpy.packbits``). So byte ``p`` holds dimensions ``p*g .. p*g+g-1``
(``g = 8 // nbits``) and bit ``i`` of dimension ``d``'s bucket is bit ``7 - ((d % g) * nbits + i)`` of its
byte. ``dim * nbits`` must be a multiple of 8 (colbert-ai further requires ``dim % (8 * nbits) == 0``;
this codec does not).

Training (colbert-ai's ``CollectionIndexer``): a held-out 5 % of the sample (at most 50,000 rows) is
set aside, spherical k-means runs on the rest, and the held-out residuals (all dims flattened) give
``bucket_cutoffs = quantile(r, [1 .. 2**nbits - 1] / 2**nbits)`` and
``bucket_weights = quantile(r, ([0 .. 2**nbits - 1] + 0.5) / 2**nbits)`` (linear interpolation, like
``torch.quantile``, computed with ``numpy.quantile``, which has no input-size limit).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any, NoReturn

import numpy as np

from . import _native
from ._arrays import as_array, as_index_array, as_mask, check_threads, to_numpy
from ._atomic import atomic_write
from .centroids import all_finite, as_float32_matrix, assign, kmeans

_MAGIC = b"ECCODEC\x00"
FORMAT_VERSION = 1
_NBITS = (1, 2, 4, 8)


def _fail(msg: str) -> NoReturn:
    raise ValueError(msg)


def lloyd_max(values: np.ndarray, cutoffs: np.ndarray, weights: np.ndarray, *, iters: int = 100,
              max_values: int = 1 << 22, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd-Max refinement of a scalar quantiser with ``torch.bucketize`` buckets (a value equal to a
    cutoff goes to the lower bucket): alternately each weight becomes the mean of the values in its
    bucket (an empty bucket keeps its weight) and each cutoff the midpoint of its two neighbouring
    weights, until nothing moves (or ``iters`` rounds). Each round lowers the mean squared error
    Σ (v - weights[bucket(v)])^2 or leaves it; the result stays sorted. At most ``max_values`` values
    (a seeded random subset) enter the means."""
    v = np.asarray(values, np.float32).reshape(-1)
    if v.size > max_values:
        v = v[np.random.default_rng(seed).choice(v.size, max_values, replace=False)]
    c = np.asarray(cutoffs, np.float64).copy()
    w = np.asarray(weights, np.float64).copy()
    nb = len(w)
    for _ in range(iters):
        b = np.searchsorted(c.astype(np.float32), v, side="left")
        cnt = np.bincount(b, minlength=nb)
        tot = np.bincount(b, weights=v, minlength=nb)
        new_w = np.where(cnt > 0, tot / np.maximum(cnt, 1), w)
        new_w = np.maximum.accumulate(new_w)
        new_c = (new_w[1:] + new_w[:-1]) / 2
        done = np.array_equal(new_c.astype(np.float32), c.astype(np.float32)) and \
            np.array_equal(new_w.astype(np.float32), w.astype(np.float32))
        c, w = new_c, new_w
        if done:
            break
    return c.astype(np.float32), w.astype(np.float32)


class ResidualCodec:
    """ColBERTv2 residual codec from explicit state.

    centroids float32 ``[K, dim]``; bucket_cutoffs ``[2**nbits - 1]`` (sorted ascending);
    bucket_weights ``[2**nbits]``; nbits in {1, 2, 4, 8} with ``dim * nbits % 8 == 0``. All values must
    be finite. The arrays are copied (float32, C-contiguous) and exposed read-only.
    """

    def __init__(self, centroids: Any, bucket_cutoffs: Any, bucket_weights: Any, nbits: int) -> None:
        fn = "ResidualCodec"
        if not isinstance(nbits, (int, np.integer)) or isinstance(nbits, bool) or int(nbits) not in _NBITS:
            _fail(f"{fn}: nbits must be 1, 2, 4 or 8, got {nbits!r}")
        nbits = int(nbits)
        c = as_float32_matrix(centroids, fn, "centroids").copy()
        k, dim = c.shape
        if k < 1 or dim < 1:
            _fail(f"{fn}: centroids must be non-empty [K, dim], got shape {c.shape}")
        if k > 2**31 - 1:
            _fail(f"{fn}: at most 2**31 - 1 centroids (codes are int32), got {k}")
        if dim * nbits % 8:
            _fail(
                f"{fn}: dim * nbits must be a multiple of 8 (residuals are packed into whole bytes); "
                f"dim {dim} with nbits {nbits} gives {dim * nbits} bits per token"
            )
        cut = np.array(to_numpy(bucket_cutoffs), dtype=np.float32).reshape(-1) if bucket_cutoffs is not None else None
        wts = np.array(to_numpy(bucket_weights), dtype=np.float32).reshape(-1) if bucket_weights is not None else None
        if cut is None or cut.shape != ((1 << nbits) - 1,):
            _fail(f"{fn}: bucket_cutoffs must have {(1 << nbits) - 1} values for nbits {nbits}, got "
                  f"{None if cut is None else cut.shape}")
        if wts is None or wts.shape != (1 << nbits,):
            _fail(f"{fn}: bucket_weights must have {1 << nbits} values for nbits {nbits}, got "
                  f"{None if wts is None else wts.shape}")
        for name, arr in (("centroids", c), ("bucket_cutoffs", cut), ("bucket_weights", wts)):
            if not np.isfinite(arr).all():
                _fail(f"{fn}: {name} contains NaN or infinity")
        if np.any(np.diff(cut) < 0):
            _fail(f"{fn}: bucket_cutoffs must be sorted ascending")
        for arr in (c, cut, wts):
            arr.flags.writeable = False
        self._centroids, self._cutoffs, self._weights, self._nbits = c, cut, wts, nbits
        self._i8: tuple | None = None

    def centroids_int8(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The centroids quantised for int8 scoring (computed once): ``(c8 int8 [K, dim4], scale float32 [K],
        csum int32 [K])``, each row ``round(c * 127 / max|c|)`` with ``scale = max|c| / 127`` (dim4 = dim
        rounded up to 4; csum = 128 * the row's sum, for the unsigned-by-signed dot product)."""
        if self._i8 is None:
            self._i8 = tuple(_native.quantize_rows_i8(self._centroids))
        return self._i8  # type: ignore[return-value]

    # -- state -------------------------------------------------------------------------------------
    @property
    def centroids(self) -> np.ndarray:
        return self._centroids

    @property
    def bucket_cutoffs(self) -> np.ndarray:
        return self._cutoffs

    @property
    def bucket_weights(self) -> np.ndarray:
        return self._weights

    @property
    def nbits(self) -> int:
        return self._nbits

    @property
    def dim(self) -> int:
        return int(self._centroids.shape[1])

    @property
    def num_centroids(self) -> int:
        return int(self._centroids.shape[0])

    @property
    def packed_dim(self) -> int:
        """Residual bytes per token: ``dim * nbits // 8``."""
        return self.dim * self.nbits // 8

    def state_dict(self) -> dict[str, Any]:
        """Plain numpy state: ``centroids``, ``bucket_cutoffs``, ``bucket_weights``, ``nbits``."""
        return {
            "centroids": self._centroids, "bucket_cutoffs": self._cutoffs,
            "bucket_weights": self._weights, "nbits": self._nbits,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "ResidualCodec":
        return cls(state["centroids"], state["bucket_cutoffs"], state["bucket_weights"], state["nbits"])

    def __repr__(self) -> str:
        return f"ResidualCodec(num_centroids={self.num_centroids}, dim={self.dim}, nbits={self.nbits})"

    # -- training ----------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        sample: Any,
        num_centroids: int,
        nbits: int,
        *,
        niters: int = 4,
        seed: int = 0,
        num_threads: int | None = None,
        progress: bool | None = None,
        heldout_fraction: float = 0.05,
        max_heldout: int = 50_000,
        buckets: str = "quantile",
    ) -> "ResidualCodec":
        """k-means centroids, then cutoffs and weights from quantiles of the held-out residuals.

        The sample is shuffled with ``numpy.random.default_rng(seed)``; ``min(heldout_fraction * n,
        max_heldout)`` rows are held out (when that is 0 — a tiny sample — the training rows serve as
        held-out rows). Works for any sample size (quantiles by ``numpy.quantile``).

        ``buckets``: ``"quantile"`` (ColBERTv2's indexer: cutoffs at the i/2^nbits quantiles, weights at
        the (i+0.5)/2^nbits quantiles) or ``"lloyd"``: those quantiles refined by Lloyd-Max iterations on
        the same held-out residuals (each weight the mean of its bucket, each cutoff the midpoint of its
        two weights), which minimises the residuals' squared quantisation error. Same state, same byte
        layout and decoding formula: only the numbers differ (docs/codec.md, "Bucket placement").
        """
        fn = "ResidualCodec.train"
        for name, value in (("num_centroids", num_centroids), ("niters", niters), ("max_heldout", max_heldout)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"{fn}: {name} must be >= 0, got {value}")
        if isinstance(heldout_fraction, bool) or not isinstance(heldout_fraction, (int, float, np.floating, np.integer)) \
                or not 0 <= heldout_fraction < 1:  # NaN fails too
            raise ValueError(f"{fn}: heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
        check_threads(num_threads, fn)
        x = as_float32_matrix(sample, fn, "sample")
        perm, held = cls.heldout_split(x.shape[0], seed, heldout_fraction, max_heldout)
        return cls.train_split(x[perm[held:]] if held else x, x[perm[:held]] if held else x, num_centroids, nbits,
                               niters=niters, seed=seed, num_threads=num_threads, progress=progress, buckets=buckets)

    @staticmethod
    def heldout_split(n: int, seed: int = 0, heldout_fraction: float = 0.05,
                      max_heldout: int = 50_000) -> tuple[np.ndarray, int]:
        """The shuffle ``train`` applies to a sample of ``n`` rows: ``(perm, held)``. Rows ``perm[:held]`` are
        held out and rows ``perm[held:]`` train k-means, in that order; with ``held`` 0 every row does both."""
        if not 0 <= heldout_fraction < 1 or max_heldout < 0:  # a negative count would hold out the tail's complement
            raise ValueError("ResidualCodec.heldout_split: heldout_fraction must be in [0, 1) and max_heldout >= 0, "
                             f"got {heldout_fraction!r} and {max_heldout!r}")
        perm = np.random.default_rng(seed).permutation(n)
        return perm, int(min(heldout_fraction * n, max_heldout))

    @classmethod
    def train_split(cls, train_rows: Any, heldout: Any, num_centroids: int, nbits: int, *, niters: int = 4,
                    seed: int = 0, num_threads: int | None = None, progress: bool | None = None,
                    buckets: str = "quantile") -> "ResidualCodec":
        """What ``train`` runs after its shuffle: k-means on ``train_rows`` (in their order), buckets from the
        residuals of ``heldout``. A caller that gathers its sample itself can write it in the shuffled order
        (``heldout_split``) and train on two views of one array, with no second copy (``Index.build``)."""
        fn = "ResidualCodec.train"
        if buckets not in ("quantile", "lloyd"):
            _fail(f"{fn}: buckets must be 'quantile' or 'lloyd', got {buckets!r}")
        if not isinstance(nbits, (int, np.integer)) or isinstance(nbits, bool) or int(nbits) not in _NBITS:
            _fail(f"{fn}: nbits must be 1, 2, 4 or 8, got {nbits!r}")
        train_rows = as_float32_matrix(train_rows, fn, "sample")
        heldout = as_float32_matrix(heldout, fn, "sample")
        dim = train_rows.shape[1]
        if dim * int(nbits) % 8:
            _fail(f"{fn}: dim * nbits must be a multiple of 8 (residuals are packed into whole bytes); "
                  f"dim {dim} with nbits {nbits} gives {dim * int(nbits)} bits per token")
        if heldout.shape[1] != dim:
            _fail(f"{fn}: held-out rows have dim {heldout.shape[1]}, training rows {dim}")
        if not (all_finite(train_rows) and all_finite(heldout)):
            _fail(f"{fn}: sample contains NaN or infinity")
        if not 1 <= num_centroids <= train_rows.shape[0]:
            _fail(f"{fn}: num_centroids must be in [1, {train_rows.shape[0]}] (training rows after the held-out "
                  f"split), got {num_centroids}")
        cents = kmeans(train_rows, num_centroids, niters=niters, seed=seed, num_threads=num_threads, progress=progress)
        codes = assign(heldout, cents, num_threads=num_threads)
        resid = (heldout - cents[codes]).reshape(-1)
        nb = 1 << int(nbits)
        cut_q = np.arange(1, nb, dtype=np.float64) / nb
        w_q = (np.arange(nb, dtype=np.float64) + 0.5) / nb
        cutoffs = np.quantile(resid, cut_q).astype(np.float32)
        weights = np.quantile(resid, w_q).astype(np.float32)
        if buckets == "lloyd":
            cutoffs, weights = lloyd_max(resid, cutoffs, weights, seed=seed)
        return cls(cents, cutoffs, weights, int(nbits))

    # -- compression -------------------------------------------------------------------------------
    def compress(
        self, tokens: Any, *, num_threads: int | None = None, dtype: str | None = None, _isa: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(codes int32 [T], residuals uint8 [T, dim * nbits // 8])`` for tokens ``[T, dim]``
        (float32, float16 or bfloat16; must be finite)."""
        t, td = as_array(tokens, "ResidualCodec.compress", "tokens", dtype)
        return _native.codec_compress(self._centroids, self._cutoffs, self._weights, self._nbits, t, td,
                                      num_threads, _isa)

    def decompress(
        self, codes: Any, residuals: Any, *, dtype: Any = np.float32, num_threads: int | None = None, _isa: str = ""
    ) -> np.ndarray:
        """Unit-length token vectors ``[T, dim]`` in float32 or float16 (computed in float32, then rounded)."""
        try:
            name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        except TypeError:  # not a numpy dtype (torch.float16, say): the message below, not numpy's
            name = ""
        if name not in ("float32", "float16"):
            raise TypeError(f"ResidualCodec.decompress: dtype must be float32 or float16, got {dtype!r}")
        c = _codes(codes, "ResidualCodec.decompress")
        r = _residuals(residuals, "ResidualCodec.decompress")
        return _native.codec_decompress(self._centroids, self._weights, self._nbits, c, r, name, num_threads, _isa)

    def token_norms(self, codes: Any, residuals: Any, *, num_threads: int | None = None, _isa: str = "") -> np.ndarray:
        """Per-token norms ``float32 [T]``: ``||centroids[code] + residual||`` before normalisation, the
        value ``decompress`` divides by (same instruction sequence on the same path). An index can store
        them (4 bytes per token, computed once at build/append time) and pass them to
        ``maxsim_compressed(..., token_norms=...)``, which then skips the per-token norm work."""
        fn = "ResidualCodec.token_norms"
        c = _codes(codes, fn)
        r = _residuals(residuals, fn)
        return _native.codec_token_norms(self._centroids, self._weights, self._nbits, c, r, num_threads, _isa)

    # -- files -------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The on-disk format: magic ``ECCODEC\\0``, a little-endian uint32 header length, a JSON header
        (format_version, nbits, num_centroids, dim, dtype, byte_order, sha256 of the payload), then the
        payload: centroids, bucket_cutoffs, bucket_weights as little-endian float32."""
        payload = b"".join(a.astype("<f4").tobytes() for a in (self._centroids, self._cutoffs, self._weights))
        header = json.dumps({
            "format": "edgecolbert.ResidualCodec", "format_version": FORMAT_VERSION, "nbits": self._nbits,
            "num_centroids": self.num_centroids, "dim": self.dim, "dtype": "float32", "byte_order": "little",
            "sha256": hashlib.sha256(payload).hexdigest(),
        }, sort_keys=True).encode()
        return _MAGIC + struct.pack("<I", len(header)) + header + payload

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> "ResidualCodec":
        fn = "ResidualCodec.load"
        if len(data) < 12 or data[:8] != _MAGIC:
            _fail(f"{fn}: {source} is not a ResidualCodec file (bad magic)")
        (hlen,) = struct.unpack("<I", data[8:12])
        if 12 + hlen > len(data):
            _fail(f"{fn}: {source} is truncated (header)")
        try:
            h = json.loads(data[12:12 + hlen].decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{fn}: {source} has a corrupt header: {e}") from None
        if not isinstance(h, dict) or h.get("format_version") != FORMAT_VERSION:
            _fail(f"{fn}: {source} has format_version {h.get('format_version') if isinstance(h, dict) else None}; "
                  f"this version reads {FORMAT_VERSION}")
        try:
            nbits, k, dim = int(h["nbits"]), int(h["num_centroids"]), int(h["dim"])
            digest = str(h["sha256"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{fn}: {source} header lacks a valid field: {e}") from None
        if nbits not in _NBITS or k < 1 or dim < 1 or h.get("dtype") != "float32" or h.get("byte_order") != "little":
            _fail(f"{fn}: {source} header has invalid values: {h}")
        nb = 1 << nbits
        sizes = (k * dim, nb - 1, nb)
        payload = data[12 + hlen:]
        if len(payload) != 4 * sum(sizes):
            _fail(f"{fn}: {source} payload has {len(payload)} bytes, expected {4 * sum(sizes)}")
        if hashlib.sha256(payload).hexdigest() != digest:
            _fail(f"{fn}: {source} checksum mismatch (corrupt file)")
        flat = np.frombuffer(payload, dtype="<f4").astype(np.float32)
        c = flat[: sizes[0]].reshape(k, dim)
        cut = flat[sizes[0]: sizes[0] + sizes[1]]
        w = flat[sizes[0] + sizes[1]:]
        return cls(c, cut, w, nbits)

    def save(self, path: str | os.PathLike) -> None:
        """Writes :meth:`to_bytes` atomically (``_atomic``: a crash leaves the old file or the new one)."""
        atomic_write(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ResidualCodec":
        """Reads and validates a file written by :meth:`save` (shapes, nbits, finite values, checksum)."""
        with open(path, "rb") as f:
            data = f.read()
        return cls.from_bytes(data, os.fspath(path))


def _codes(codes: Any, fn: str) -> np.ndarray:
    a = np.asarray(to_numpy(codes))
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{fn}: codes must hold integers, got {a.dtype}")
    return a


def _residuals(residuals: Any, fn: str) -> np.ndarray:
    a = np.asarray(to_numpy(residuals))
    if a.dtype != np.uint8:
        raise TypeError(f"{fn}: residuals must be uint8, got {a.dtype}")
    return a


def maxsim_compressed(
    queries: Any,
    codes: Any,
    residuals: Any,
    doc_offsets: Any,
    codec: ResidualCodec,
    *,
    candidates: Any = None,
    query_mask: Any = None,
    num_threads: int | None = None,
    dtype: str | None = None,
    token_norms: Any = None,
    _isa: str = "",
    _kernel: str = "auto",
) -> np.ndarray:
    """MaxSim straight from codes: ``float32 [nq, n]``, or ``[nq, c]`` with ``candidates int [nq, c]``.

    queries ``[nq, Lq, dim]`` (optional boolean ``query_mask [nq, Lq]``); documents in CSR form over
    ``codes [T]`` / ``residuals [T, dim * nbits // 8]`` with ``doc_offsets int64 [n+1]``. Equals
    ``maxsim(queries, codec.decompress(codes, residuals), doc_offsets)`` up to float rounding, with no
    decompressed copy: tiles of a dozen tokens are decoded (``c + r``) into a per-thread buffer that stays in
    L1 cache and run through the MaxSim micro-kernel; each token's dot products are multiplied by
    ``1 / max(||c + r||, 1e-12)`` before the max, so the unit-length renormalisation is exact (the norm is
    recomputed per token, O(dim), or read from ``token_norms float32 [T]`` as returned by
    ``codec.token_norms(codes, residuals)``, which an index can store). On AVX-512 at nbits 1 and 2 a
    second kernel reads per-byte tables of partial dot products instead; each process measures once
    which of the two its core runs faster (``EDGECOLBERT_COMPRESSED_KERNEL=decode|lut`` pins one; the
    private ``_kernel`` does so per call). They agree up to float rounding.
    """
    fn = "maxsim_compressed"
    if not isinstance(codec, ResidualCodec):
        raise TypeError(f"{fn}: codec must be a ResidualCodec, got {type(codec).__name__}")
    q, qd = as_array(queries, fn, "queries", dtype)
    cand = None if candidates is None else as_index_array(candidates, fn, "candidates")
    return _native.maxsim_compressed(
        q, codec.centroids, codec.bucket_weights, codec.nbits, _codes(codes, fn), _residuals(residuals, fn),
        as_index_array(doc_offsets, fn, "doc_offsets"), cand, as_mask(query_mask, fn, "query_mask"), num_threads,
        qd, _isa, token_norms, _kernel,
    )
