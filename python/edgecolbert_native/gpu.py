"""The GPU path: MaxSim, decompression, compressed scoring and centroid search on torch tensors.

Every entry point takes torch tensors on any device (CPU or CUDA; objects with ``__dlpack__`` or
``__cuda_array_interface__`` are wrapped without a copy), keeps the work on the inputs' device and
returns torch tensors there. Two implementations sit behind each one:

* the **torch path**: device-agnostic torch ops (chunked matmul with a scatter max per document,
  gather-based decode, a stable sort for top-k). It is tested on CPU tensors in CI against the CPU
  kernels and the scalar reference, and it is the default on CUDA tensors;
* the **CUDA kernels** of ``edgecolbert_native._cuda`` (csrc/cuda). They run only on CUDA tensors and
  only when chosen: ``EDGECOLBERT_CUDA_KERNELS=1`` opts in, ``=0`` opts out, and unset means "use them
  if they were verified on real hardware" -- a fact recorded in ``cuda_verified.json`` beside this file,
  not guessed. They have not been (see docs/gpu.md), so the torch path is what runs today.

``info()`` says which is in use. Mixing devices is a ``ValueError``; asking for the kernels where the
module or a driver is missing is a ``RuntimeError``. Launches use the current CUDA stream; nothing
synchronises except the argument validation (one scalar read back per call, ``validate=False`` skips
it for arrays that come from a trusted index) and ``maxsim_candidates`` on the torch path (one scalar:
the number of candidate tokens, to size a buffer).

Semantics are the CPU kernels' (edgecolbert_native.maxsim and friends): float32 accumulation and
scores; per query row the max over a document's tokens (a NaN dot product never wins), kept rows summed
in float64; an empty document scores 0; top-k best first, ties to the lower index, NaN last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "maxsim", "maxsim_topk", "maxsim_candidates", "decompress", "maxsim_compressed", "centroid_search", "assign",
    "info", "kernels_verified",
]

_VERIFIED_FILE = Path(__file__).with_name("cuda_verified.json")
_ENV = "EDGECOLBERT_CUDA_KERNELS"
# Elements of a float32 similarity block the torch path materialises at once (CPU, CUDA).
_CHUNK_ELEMS = {"cpu": 1 << 23, "cuda": 1 << 27}
# Row maxima [queries x Lq x documents] the torch path keeps at once: queries go in groups below this.
_ROWMAX_ELEMS = {"cpu": 1 << 26, "cuda": 1 << 28}


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a test dependency
        raise RuntimeError("edgecolbert_native.gpu needs torch (pip install 'edgecolbert-native[encoder]')") from e
    return torch


# -- provenance and choice of implementation ----------------------------------------------------------
def kernels_verified() -> dict:
    """The repository's record of whether the CUDA kernels ever ran and passed on a real GPU."""
    try:
        return json.loads(_VERIFIED_FILE.read_text())
    except (OSError, ValueError):
        return {"verified": False, "reason": f"{_VERIFIED_FILE.name} missing or unreadable"}


_CUDA_MODULE: Any = None
_CUDA_IMPORT_ERROR: str | None = None


def _cuda_module():
    """The compiled _cuda module or None (import is attempted once; never raises)."""
    global _CUDA_MODULE, _CUDA_IMPORT_ERROR
    if _CUDA_MODULE is None and _CUDA_IMPORT_ERROR is None:
        try:
            from . import _cuda  # type: ignore[attr-defined]

            _CUDA_MODULE = _cuda
        except ImportError as e:
            _CUDA_IMPORT_ERROR = str(e) or "edgecolbert_native._cuda was not built (no nvcc at build time)"
    return _CUDA_MODULE


def _kernel_choice() -> tuple[bool, str]:
    """(use the CUDA kernels on CUDA tensors?, why)."""
    env = os.environ.get(_ENV, "").strip()
    if env == "1":
        return True, f"{_ENV}=1"
    if env == "0":
        return False, f"{_ENV}=0"
    if env:
        raise ValueError(f"{_ENV} must be 0 or 1, got {env!r}")
    if kernels_verified().get("verified") is True:
        return True, "kernels verified on hardware (cuda_verified.json)"
    return False, "kernels not yet verified on hardware (cuda_verified.json); set EDGECOLBERT_CUDA_KERNELS=1 to opt in"


def _use_kernels(device: Any) -> bool:
    if device.type != "cuda":
        return False
    want, why = _kernel_choice()
    if not want:
        return False
    mod = _cuda_module()
    if mod is None:
        raise RuntimeError(f"{why} asks for the CUDA kernels, but {_CUDA_IMPORT_ERROR}")
    rt = mod.runtime_info()
    if rt["device_count"] == 0:
        raise RuntimeError(f"{why} asks for the CUDA kernels, but no usable GPU: {rt['error']}")
    return True


def info() -> dict:
    """Which implementation runs on CUDA tensors, and what is known about the CUDA kernels.

    Keys: ``cuda_tensors`` ("cuda-kernels" or "torch"), ``reason``, ``kernels_verified_on_hardware``
    (bool, from cuda_verified.json), ``verification`` (that record), ``cuda_module_built``,
    ``cuda_module_error``, ``runtime`` (CUDA runtime/driver versions, devices, compiled architectures),
    ``torch_cuda_available``.
    """
    torch = _torch()
    record = kernels_verified()
    mod = _cuda_module()
    want, why = _kernel_choice()
    rt = mod.runtime_info() if mod is not None else None
    usable = mod is not None and rt is not None and rt["device_count"] > 0
    return {
        "cuda_tensors": "cuda-kernels" if (want and usable) else "torch",
        "reason": why if (not want or usable) else f"{why}, but the kernels cannot run here ("
        + (_CUDA_IMPORT_ERROR or (rt or {}).get("error", "")) + "); CUDA entry points will raise",
        "kernels_verified_on_hardware": record.get("verified") is True,
        "verification": record,
        "cuda_module_built": mod is not None,
        "cuda_module_error": _CUDA_IMPORT_ERROR,
        "runtime": dict(rt) if rt is not None else None,
        "torch_cuda_available": bool(torch.cuda.is_available()),
    }


# -- inputs ---------------------------------------------------------------------------------------------
_TOKEN_DTYPES = ("float32", "float16", "bfloat16")


def _tensor(x: Any, fn: str, arg: str):
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x.detach()
    if hasattr(x, "__cuda_array_interface__"):
        return torch.as_tensor(x, device="cuda")
    if hasattr(x, "__dlpack__"):
        try:
            return torch.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError) as e:
            raise TypeError(f"{fn}: {arg} could not be read through DLPack: {e}") from None
    try:
        import numpy as np

        return torch.from_numpy(np.ascontiguousarray(x))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {arg} must be a tensor or array, got {type(x).__name__}") from e


def _dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def _same_device(fn: str, named: dict[str, Any]) -> Any:
    device = None
    first = None
    for name, t in named.items():
        if t is None:
            continue
        if device is None:
            device, first = t.device, name
        elif t.device != device:
            raise ValueError(
                f"{fn}: {name} is on {t.device} but {first} is on {device}; every tensor must be on the same device"
            )
    return device


def _tokens(x: Any, fn: str, arg: str, ndim: int, layout: str):
    t = _tensor(x, fn, arg)
    if t.dim() != ndim:
        raise ValueError(f"{fn}: {arg} must have {ndim} dimensions {layout}, got shape {tuple(t.shape)}")
    if _dtype_name(t) not in _TOKEN_DTYPES:
        raise TypeError(f"{fn}: {arg} must be float32, float16 or bfloat16, got {_dtype_name(t)}")
    return t


def _index(x: Any, fn: str, arg: str, ndim: int, layout: str):
    torch = _torch()
    t = _tensor(x, fn, arg)
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{fn}: {arg} must hold integers, got {_dtype_name(t)}")
    if t.dim() != ndim:
        raise ValueError(f"{fn}: {arg} must have {ndim} dimension{'s' if ndim > 1 else ''} {layout}, got shape {tuple(t.shape)}")
    return t.to(torch.int64)


def _mask(x: Any, fn: str, nq: int, lq: int):
    if x is None:
        return None
    torch = _torch()
    t = _tensor(x, fn, "query_mask")
    if t.is_complex():
        raise TypeError(f"{fn}: query_mask must be boolean, got {_dtype_name(t)}")
    if tuple(t.shape) != (nq, lq):
        raise ValueError(f"{fn}: query_mask must have shape ({nq}, {lq}) like queries, got {tuple(t.shape)}")
    return t != 0 if t.dtype != torch.bool else t


def _check_offsets(offsets: Any, T: int, fn: str, validate: bool) -> None:
    if offsets.numel() < 1:
        raise ValueError(f"{fn}: doc_offsets must have 1 dimension [n+1] with n >= 0, got shape {tuple(offsets.shape)}")
    if not validate:
        return
    bad = (offsets[0] != 0) | (offsets[-1] != T)
    if offsets.numel() > 1:
        bad = bad | (offsets[1:] < offsets[:-1]).any()
    if bool(bad):  # one scalar read back
        o = offsets.cpu()
        if int(o[0]) != 0:
            raise ValueError(f"{fn}: doc_offsets[0] must be 0, got {int(o[0])}")
        if int(o[-1]) != T:
            raise ValueError(f"{fn}: doc_offsets[-1] must equal the number of tokens {T}, got {int(o[-1])}")
        i = int((o[1:] < o[:-1]).nonzero()[0, 0]) + 1
        raise ValueError(
            f"{fn}: doc_offsets must be non-decreasing, but doc_offsets[{i}] = {int(o[i])} < doc_offsets[{i - 1}] = {int(o[i - 1])}"
        )


def _check_range(idx: Any, hi: int, fn: str, arg: str, what: str, validate: bool) -> None:
    if validate and idx.numel() and bool(((idx < 0) | (idx >= hi)).any()):
        bad = idx.reshape(-1)[((idx < 0) | (idx >= hi)).reshape(-1)][0]
        raise ValueError(f"{fn}: {arg} holds {int(bad)}, which is not {what} in [0, {hi})")


def _int_arg(v: Any, fn: str, arg: str) -> int:
    import numpy as np

    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{fn}: {arg} must be an int, got {type(v).__name__}")
    return int(v)


def _desc(t: Any) -> tuple | None:
    if t is None:
        return None
    name = _dtype_name(t)
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), name, t.device.index)


def _stream(device: Any) -> int:
    return _torch().cuda.current_stream(device).cuda_stream


def _contig(t: Any):
    return None if t is None else t.contiguous()


# -- the torch path: shared pieces ---------------------------------------------------------------------
def _chunk(device: Any) -> int:
    return _CHUNK_ELEMS.get(device.type, _CHUNK_ELEMS["cuda"])


def _nan_to_neg_inf(s: Any):
    torch = _torch()
    return torch.where(torch.isnan(s), torch.full_like(s, float("-inf")), s)


def _sum_rows(rowmax: Any, mask: Any, q_index: Any = None):
    """rowmax [nq or P, Lq, ...] -> float32 scores: kept rows summed in float64 (masked rows add 0)."""
    torch = _torch()
    if mask is not None:
        keep = mask if q_index is None else mask[q_index]
        keep = keep.reshape(keep.shape + (1,) * (rowmax.dim() - keep.dim()))
        rowmax = torch.where(keep, rowmax, torch.zeros((), dtype=rowmax.dtype, device=rowmax.device))
    return rowmax.double().sum(dim=1).float()


def _rowmax_all(qf: Any, T: int, offsets: Any, fetch, nq: int, lq: int):
    """Row maxima [nq, Lq, n] over every document: token blocks of the CSR, one matmul each, folded into
    the documents by a scatter max (no document boundaries are needed on the host)."""
    torch = _torch()
    n = offsets.numel() - 1
    dev = qf.device
    R = nq * lq
    rowmax = torch.full((R, n), float("-inf"), dtype=torch.float32, device=dev)
    if T == 0 or n == 0 or R == 0:
        return rowmax.view(nq, lq, n)
    ends = offsets[1:].contiguous()
    step = max(1, _chunk(dev) // max(R, 1))
    q2 = qf.reshape(R, -1)
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        doc = torch.searchsorted(ends, torch.arange(t0, t1, device=dev), right=True)
        sims = _nan_to_neg_inf(q2 @ fetch(t0, t1).T)
        rowmax.scatter_reduce_(1, doc.unsqueeze(0).expand(R, t1 - t0), sims, reduce="amax", include_self=True)
    return rowmax.view(nq, lq, n)


def _rowmax_pairs(qf: Any, offsets: Any, cand: Any, fetch_idx, lq: int):
    """Row maxima [P, Lq] of (query, candidate) pairs: their tokens gathered, dotted with their query."""
    torch = _torch()
    dev = qf.device
    nq, nc = cand.shape
    n = offsets.numel() - 1
    P = nq * nc
    docs = cand.reshape(-1)
    valid = (docs >= 0) & (docs < n)
    d = docs.clamp(0, max(n - 1, 0))
    starts = offsets[d] if n > 0 else torch.zeros_like(d)
    lens = torch.where(valid, offsets[d + 1] - starts, torch.zeros_like(d)) if n > 0 else torch.zeros_like(d)
    S = int(lens.sum())  # one scalar read back: the gathered token count
    rowmax = torch.full((P, lq), float("-inf"), dtype=torch.float32, device=dev)
    if S == 0:
        return rowmax, valid, lens
    pair = torch.repeat_interleave(torch.arange(P, device=dev), lens, output_size=S)
    first = torch.cumsum(lens, 0) - lens
    tok = starts[pair] + (torch.arange(S, device=dev) - first[pair])
    step = max(1, _chunk(dev) // max(lq * qf.shape[-1], 1))
    for s0 in range(0, S, step):
        s1 = min(S, s0 + step)
        p = pair[s0:s1]
        sims = _nan_to_neg_inf(torch.einsum("cld,cd->cl", qf[p // nc], fetch_idx(tok[s0:s1])))
        rowmax.scatter_reduce_(0, p.unsqueeze(1).expand(s1 - s0, lq), sims, reduce="amax", include_self=True)
    return rowmax, valid, lens


def _pair_scores(rowmax: Any, valid: Any, lens: Any, mask: Any, nq: int, nc: int):
    torch = _torch()
    q_index = torch.arange(nq, device=rowmax.device).repeat_interleave(nc)
    s = _sum_rows(rowmax, mask, q_index)
    s = torch.where(lens == 0, torch.zeros_like(s), s)
    s = torch.where(valid, s, torch.full_like(s, float("nan")))
    return s.view(nq, nc)


def _grouped_all_scores(qf: Any, T: int, offsets: Any, fetch, mask: Any):
    """Scores [nq, n] over every document, queries in groups whose row maxima fit _ROWMAX_ELEMS."""
    torch = _torch()
    nq, lq, _ = qf.shape
    n = offsets.numel() - 1
    budget = _ROWMAX_ELEMS.get(qf.device.type, _ROWMAX_ELEMS["cuda"])
    group = max(1, budget // max(lq * n, 1))
    parts = []
    for g0 in range(0, nq, group):
        g1 = min(nq, g0 + group)
        rowmax = _rowmax_all(qf[g0:g1], T, offsets, fetch, g1 - g0, lq)
        parts.append(_all_scores(rowmax, offsets, None if mask is None else mask[g0:g1]))
    return torch.cat(parts, 0) if parts else torch.zeros((0, n), dtype=torch.float32, device=qf.device)


def _all_scores(rowmax: Any, offsets: Any, mask: Any):
    torch = _torch()
    s = _sum_rows(rowmax, mask)
    empty = (offsets[1:] - offsets[:-1]) == 0
    return torch.where(empty.unsqueeze(0), torch.zeros_like(s), s)


def _topk_total_order(scores: Any, k: int, ids: Any = None):
    """Best k per row under the total order: score descending, NaN last, ties to the lower id."""
    torch = _torch()
    if ids is None:
        ids = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    nan = torch.isnan(scores)
    key = torch.where(nan, torch.full_like(scores, float("-inf")), scores)
    # Stable sorts: by id, then by score descending, then NaN-ness (real numbers first).
    o = torch.argsort(ids, dim=1, stable=True)
    o = o.gather(1, torch.argsort(key.gather(1, o), dim=1, descending=True, stable=True))
    o = o.gather(1, torch.argsort(nan.gather(1, o).to(torch.int8), dim=1, stable=True))
    o = o[:, :k]
    return scores.gather(1, o), ids.gather(1, o)


# -- MaxSim ---------------------------------------------------------------------------------------------
def _maxsim_args(fn: str, queries: Any, doc_tokens: Any, doc_offsets: Any, query_mask: Any, validate: bool):
    q = _tokens(queries, fn, "queries", 3, "[nq, Lq, dim]")
    d = _tokens(doc_tokens, fn, "doc_tokens", 2, "[T, dim]")
    off = _index(doc_offsets, fn, "doc_offsets", 1, "[n+1]")
    nq, lq, dim = q.shape
    if dim < 1:
        raise ValueError(f"{fn}: queries must have dim >= 1, got shape {tuple(q.shape)}")
    if d.shape[1] != dim:
        raise ValueError(f"{fn}: doc_tokens have dim {d.shape[1]} but queries have dim {dim}")
    m = _mask(query_mask, fn, nq, lq)
    device = _same_device(fn, {"queries": q, "doc_tokens": d, "doc_offsets": off, "query_mask": m})
    _check_offsets(off, d.shape[0], fn, validate)
    return q, d, off, m, device


def maxsim(queries: Any, doc_tokens: Any, doc_offsets: Any, *, query_mask: Any = None, validate: bool = True):
    """Scores every query against every document: float32 ``[nq, n]`` on the inputs' device.

    queries ``[nq, Lq, dim]``, doc_tokens ``[T, dim]`` (float32/float16/bfloat16), doc_offsets int
    ``[n+1]`` (CSR), query_mask bool ``[nq, Lq]``.
    """
    fn = "maxsim"
    torch = _torch()
    q, d, off, m, device = _maxsim_args(fn, queries, doc_tokens, doc_offsets, query_mask, validate)
    nq = q.shape[0]
    n = off.numel() - 1
    if _use_kernels(device):
        q, d, off, m = _contig(q), _contig(d), _contig(off), _contig(m)
        out = torch.empty((nq, n), dtype=torch.float32, device=device)
        if _cuda_module().kernel_for(_dtype_name(d), q.shape[2]) != "none":
            _cuda_module().maxsim(_desc(q), _desc(d), _desc(off), _desc(m), _desc(out), device.index, _stream(device))
            return out
    return _grouped_all_scores(q.float(), d.shape[0], off, lambda a, b: d[a:b].float(), m)


def maxsim_candidates(
    queries: Any, doc_tokens: Any, doc_offsets: Any, candidates: Any, *, query_mask: Any = None, validate: bool = True
):
    """Scores only the given documents per query: candidates int ``[nq, c]`` -> float32 ``[nq, c]``."""
    fn = "maxsim_candidates"
    torch = _torch()
    q, d, off, m, device = _maxsim_args(fn, queries, doc_tokens, doc_offsets, query_mask, validate)
    cand = _index(candidates, fn, "candidates", 2, "[nq, c]")
    nq, lq, _ = q.shape
    if cand.shape[0] != nq:
        raise ValueError(f"{fn}: candidates must have shape (nq, c) with nq = {nq}, got {tuple(cand.shape)}")
    _same_device(fn, {"queries": q, "candidates": cand})
    n = off.numel() - 1
    _check_range(cand, n, fn, "candidates", "a document index", validate)
    if _use_kernels(device) and _cuda_module().kernel_for(_dtype_name(d), q.shape[2]) != "none":
        q, d, off, m, cand = _contig(q), _contig(d), _contig(off), _contig(m), _contig(cand)
        out = torch.empty((nq, cand.shape[1]), dtype=torch.float32, device=device)
        _cuda_module().maxsim_candidates(
            _desc(q), _desc(d), _desc(off), _desc(cand), _desc(m), _desc(out), device.index, _stream(device)
        )
        return out
    rowmax, valid, lens = _rowmax_pairs(q.float(), off, cand, lambda idx: d[idx].float(), lq)
    return _pair_scores(rowmax, valid, lens, m, nq, cand.shape[1])


def maxsim_topk(
    queries: Any, doc_tokens: Any, doc_offsets: Any, k: int, *, query_mask: Any = None, validate: bool = True
):
    """Fused top-k: ``(scores float32 [nq, k], indices int64 [nq, k])``, best first, ties to the lower
    index, NaN last; ``1 <= k <= n``."""
    fn = "maxsim_topk"
    torch = _torch()
    k = _int_arg(k, fn, "k")
    q, d, off, m, device = _maxsim_args(fn, queries, doc_tokens, doc_offsets, query_mask, validate)
    nq = q.shape[0]
    n = off.numel() - 1
    if k < 1 or k > n:
        raise ValueError(f"{fn}: k must be in [1, n] with n = {n} documents, got {k}")
    mod = _cuda_module() if _use_kernels(device) else None
    if (mod is not None and k <= mod.runtime_info()["max_topk"] and nq <= 65535
            and mod.kernel_for(_dtype_name(d), q.shape[2]) != "none"):
        q, d, off, m = _contig(q), _contig(d), _contig(off), _contig(m)
        s = torch.empty((nq, k), dtype=torch.float32, device=device)
        i = torch.empty((nq, k), dtype=torch.int64, device=device)
        mod.maxsim_topk(_desc(q), _desc(d), _desc(off), k, _desc(m), _desc(s), _desc(i), device.index, _stream(device))
        return s, i
    return _topk_total_order(maxsim(q, d, off, query_mask=m, validate=False), k)


# -- residual codec -------------------------------------------------------------------------------------
def _codec_args(fn: str, codes: Any, residuals: Any, centroids: Any, bucket_weights: Any, nbits: Any, validate: bool):
    torch = _torch()
    nbits = _int_arg(nbits, fn, "nbits")
    if nbits not in (1, 2, 4, 8):
        raise ValueError(f"{fn}: nbits must be 1, 2, 4 or 8, got {nbits}")
    c = _tokens(centroids, fn, "centroids", 2, "[K, dim]")
    K, dim = c.shape
    if (dim * nbits) % 8:
        raise ValueError(f"{fn}: dim * nbits must be a multiple of 8, got dim {dim}, nbits {nbits}")
    w = _tensor(bucket_weights, fn, "bucket_weights")
    if tuple(w.shape) != (1 << nbits,):
        raise ValueError(f"{fn}: bucket_weights must have shape ({1 << nbits},) for nbits {nbits}, got {tuple(w.shape)}")
    if not w.is_floating_point():
        raise TypeError(f"{fn}: bucket_weights must be floating point, got {_dtype_name(w)}")
    cd = _tensor(codes, fn, "codes")
    if cd.is_floating_point() or cd.dtype == torch.bool or cd.dim() != 1:
        raise TypeError(f"{fn}: codes must be a 1-d integer tensor [T], got {_dtype_name(cd)} {tuple(cd.shape)}")
    r = _tensor(residuals, fn, "residuals")
    if r.dtype != torch.uint8:
        raise TypeError(f"{fn}: residuals must be uint8, got {_dtype_name(r)}")
    if tuple(r.shape) != (cd.shape[0], dim * nbits // 8):
        raise ValueError(f"{fn}: residuals must have shape ({cd.shape[0]}, {dim * nbits // 8}), got {tuple(r.shape)}")
    device = _same_device(fn, {"codes": cd, "residuals": r, "centroids": c, "bucket_weights": w})
    _check_range(cd, K, fn, "codes", "a centroid id", validate)
    return cd, r, c.float(), w.float(), nbits, device


def _decode(codes: Any, residuals: Any, cents: Any, weights: Any, nbits: int):
    """float32 unit vectors [t, dim] for codes [t] and residual rows [t, W] (the torch path)."""
    torch = _torch()
    t, W = residuals.shape
    dim = cents.shape[1]
    shifts = torch.arange(7, -1, -1, device=residuals.device, dtype=torch.int32)
    bits = (residuals.to(torch.int32).unsqueeze(-1) >> shifts) & 1  # [t, W, 8], MSB first
    bits = bits.reshape(t, dim, nbits)  # dim after dim, each's bits least significant first
    bucket = (bits << torch.arange(nbits, device=residuals.device, dtype=torch.int32)).sum(-1)
    v = cents[codes.long()] + weights[bucket.long()]
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)


def decompress(
    codes: Any, residuals: Any, centroids: Any, bucket_weights: Any, nbits: int, dtype: Any = None, *,
    validate: bool = True,
):
    """Unit-length token vectors ``[T, dim]`` (float32 by default; float16/bfloat16 rounded from it).

    ColBERTv2 layout: codes int ``[T]``, residuals uint8 ``[T, dim*nbits/8]``; a token is
    ``v / max(||v||, 1e-12)``, ``v = centroids[code] + bucket_weights[bucket_d]`` per dimension.
    """
    fn = "decompress"
    torch = _torch()
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"{fn}: dtype must be torch.float32, float16 or bfloat16, got {dtype}")
    cd, r, c, w, nbits, device = _codec_args(fn, codes, residuals, centroids, bucket_weights, nbits, validate)
    T, dim = cd.shape[0], c.shape[1]
    if _use_kernels(device) and dim <= 512:
        out = torch.empty((T, dim), dtype=dtype, device=device)
        _cuda_module().decompress(
            _desc(_contig(cd.to(torch.int32))), _desc(_contig(r)), _desc(_contig(c)), _desc(_contig(w)), nbits,
            _desc(out), device.index, _stream(device),
        )
        return out
    out = torch.empty((T, dim), dtype=dtype, device=device)
    step = max(1, _chunk(device) // max(dim * 8, 1))
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        out[t0:t1] = _decode(cd[t0:t1], r[t0:t1], c, w, nbits).to(dtype)
    return out


def maxsim_compressed(
    queries: Any, codes: Any, residuals: Any, doc_offsets: Any, centroids: Any, bucket_weights: Any, nbits: int,
    candidates: Any = None, *, query_mask: Any = None, validate: bool = True,
):
    """MaxSim straight from codes: float32 ``[nq, n]``, or ``[nq, c]`` with ``candidates int [nq, c]``.

    Equals ``maxsim(queries, decompress(codes, residuals, ...), doc_offsets)`` up to float rounding;
    the torch path decodes blocks of tokens on the fly, the CUDA kernel a 16-token tile per warp.
    """
    fn = "maxsim_compressed"
    torch = _torch()
    cd, r, c, w, nbits, device = _codec_args(fn, codes, residuals, centroids, bucket_weights, nbits, validate)
    q = _tokens(queries, fn, "queries", 3, "[nq, Lq, dim]")
    nq, lq, dim = q.shape
    if dim != c.shape[1]:
        raise ValueError(f"{fn}: centroids have dim {c.shape[1]} but queries have dim {dim}")
    off = _index(doc_offsets, fn, "doc_offsets", 1, "[n+1]")
    m = _mask(query_mask, fn, nq, lq)
    cand = None if candidates is None else _index(candidates, fn, "candidates", 2, "[nq, c]")
    _same_device(fn, {"codes": cd, "queries": q, "doc_offsets": off, "query_mask": m, "candidates": cand})
    _check_offsets(off, cd.shape[0], fn, validate)
    n = off.numel() - 1
    if cand is not None:
        if cand.shape[0] != nq:
            raise ValueError(f"{fn}: candidates must have shape (nq, c) with nq = {nq}, got {tuple(cand.shape)}")
        _check_range(cand, n, fn, "candidates", "a document index", validate)
    if _use_kernels(device) and dim <= 512:
        cols = n if cand is None else cand.shape[1]
        out = torch.empty((nq, cols), dtype=torch.float32, device=device)
        _cuda_module().maxsim_compressed(
            _desc(_contig(q)), _desc(_contig(cd.to(torch.int32))), _desc(_contig(r)), _desc(_contig(off)),
            _desc(_contig(c)), _desc(_contig(w)), nbits, _desc(_contig(cand)), _desc(_contig(m)), _desc(out),
            device.index, _stream(device),
        )
        return out
    qf = q.float()
    if cand is None:
        return _grouped_all_scores(qf, cd.shape[0], off, lambda a, b: _decode(cd[a:b], r[a:b], c, w, nbits), m)
    rowmax, valid, lens = _rowmax_pairs(qf, off, cand, lambda idx: _decode(cd[idx], r[idx], c, w, nbits), lq)
    return _pair_scores(rowmax, valid, lens, m, nq, cand.shape[1])


# -- centroid search ------------------------------------------------------------------------------------
def centroid_search(query_tokens: Any, centroids: Any, nprobe: int):
    """Top-``nprobe`` centroids per token: ``(scores float32 [m, nprobe], ids int32 [m, nprobe])``, best
    first, ties to the lower id, NaN last; no ``[m, K]`` matrix beyond one block of centroids."""
    fn = "centroid_search"
    torch = _torch()
    nprobe = _int_arg(nprobe, fn, "nprobe")
    q = _tokens(query_tokens, fn, "query_tokens", 2, "[m, dim]")
    c = _tokens(centroids, fn, "centroids", 2, "[K, dim]")
    device = _same_device(fn, {"query_tokens": q, "centroids": c})
    m, dim = q.shape
    K = c.shape[0]
    if c.shape[1] != dim:
        raise ValueError(f"{fn}: query_tokens have dim {dim} but centroids have dim {c.shape[1]}")
    if nprobe < 1 or nprobe > K:
        raise ValueError(f"{fn}: nprobe must be in [1, K] with K = {K} centroids, got {nprobe}")
    mod = _cuda_module() if _use_kernels(device) else None
    if mod is not None and nprobe <= mod.runtime_info()["max_probe"] and dim <= 256:
        # The kernel reads rows in the centroids' dtype (fp16/bf16 on tensor cores).
        qc = q.to(c.dtype).contiguous()
        s = torch.empty((m, nprobe), dtype=torch.float32, device=device)
        i = torch.empty((m, nprobe), dtype=torch.int32, device=device)
        mod.centroid_topk(_desc(qc), _desc(c.contiguous()), nprobe, _desc(s), _desc(i), device.index, _stream(device))
        return s, i
    qf = q.float()
    best_s = best_i = None
    step = max(nprobe, _chunk(device) // max(m, 1))
    for c0 in range(0, K, step):
        c1 = min(K, c0 + step)
        s = qf @ c[c0:c1].float().T
        ids = torch.arange(c0, c1, device=device).expand(m, c1 - c0)
        s, ids = _topk_total_order(s, min(nprobe, c1 - c0), ids)
        if best_s is not None:  # earlier blocks first: equal scores keep the lower id
            s, ids = _topk_total_order(torch.cat([best_s, s], 1), min(nprobe, best_s.shape[1] + s.shape[1]),
                                       torch.cat([best_i, ids], 1))
        best_s, best_i = s, ids
    if best_s is None or best_i is None:  # K >= 1 is checked by the caller: the loop ran
        raise ValueError("centroid_search: no centroids")
    return best_s, best_i.to(torch.int32)


def assign(tokens: Any, centroids: Any):
    """Nearest centroid by inner product for every token: ``int32 [T]``, ties to the lower id."""
    torch = _torch()
    t = _tokens(tokens, "assign", "tokens", 2, "[T, dim]")
    if t.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int32, device=t.device)
    return centroid_search(t, centroids, 1)[1].reshape(-1)
