"""The GPU entry points: each checks its arguments (_checks), then runs the CUDA kernels where they are
chosen (_backend) or the torch path (_torch_path)."""

from __future__ import annotations

from typing import Any

from ._backend import contig, cuda_module, desc, require_torch, stream, use_kernels
from ._checks import (
    check_offsets,
    check_range,
    codec_args,
    dtype_name,
    index_tensor,
    int_arg,
    mask_tensor,
    maxsim_args,
    same_device,
    token_tensor,
)
from ._torch_path import (
    centroid_topk,
    decode,
    decompress_blocks,
    grouped_all_scores,
    pair_scores,
    rowmax_pairs,
    topk_total_order,
)


CODEC_MAX_DIM = 512  # codec.cu's kCodecMaxDim


def codec_kernel_takes(dim: int) -> bool:
    """Whether the codec kernels take this dim: [1, 512]. dim 0 (empty vectors) goes to the torch path,
    which returns empty vectors / zero scores; the kernels' argument checks refuse it."""
    return 1 <= dim <= CODEC_MAX_DIM


# Opt-in shared memory per block, per device index (runtime_info()["max_shared_memory_per_block"]): 227 KB
# on sm_80/90, 99 KB on sm_86/89/120. Read once per device.
_SMEM_LIMIT: dict[int, int] = {}


def smem_limit(mod: Any, device_index: int) -> int:
    if device_index not in _SMEM_LIMIT:
        limits = mod.runtime_info().get("max_shared_memory_per_block") or []
        _SMEM_LIMIT[device_index] = int(limits[device_index]) if 0 <= device_index < len(limits) else 0
    return _SMEM_LIMIT[device_index]


def kernel_fits(mod: Any, kernel: str, dtype: str, dim: int, device_index: int, nbits: int = 0) -> bool:
    """Whether ``kernel``'s block for this shape fits the device's shared memory: the module's own formula
    (``shared_memory_bytes``, the one its launchers check) against the device's opt-in limit. A shape
    that does not fit goes to the torch path (the launcher would refuse it)."""
    return mod.shared_memory_bytes(kernel, dtype, dim, nbits) <= smem_limit(mod, device_index)


def maxsim_kernel_takes(mod: Any, doc_dtype: str, dim: int, device_index: int) -> bool:
    """Whether the CUDA MaxSim kernels (plain, candidates, top-k) take documents of this dtype and dim."""
    return mod.kernel_for(doc_dtype, dim) != "none" and kernel_fits(mod, "maxsim", doc_dtype, dim, device_index)


# -- MaxSim ---------------------------------------------------------------------------------------------
def maxsim(queries: Any, doc_tokens: Any, doc_offsets: Any, *, query_mask: Any = None, validate: bool = True):
    """Scores every query against every document: float32 ``[nq, n]`` on the inputs' device.

    queries ``[nq, Lq, dim]``, doc_tokens ``[T, dim]`` (float32/float16/bfloat16), doc_offsets int
    ``[n+1]`` (CSR), query_mask bool ``[nq, Lq]``.
    """
    fn = "maxsim"
    torch = require_torch()
    q, d, off, m, device = maxsim_args(fn, queries, doc_tokens, doc_offsets, query_mask, validate)
    nq = q.shape[0]
    n = off.numel() - 1
    if use_kernels(device):
        q, d, off, m = contig(q), contig(d), contig(off), contig(m)
        out = torch.empty((nq, n), dtype=torch.float32, device=device)
        if maxsim_kernel_takes(cuda_module(), dtype_name(d), q.shape[2], device.index):
            cuda_module().maxsim(desc(q), desc(d), desc(off), desc(m), desc(out), device.index, stream(device))
            return out
    return grouped_all_scores(q.float(), d.shape[0], off, lambda a, b: d[a:b].float(), m)


def maxsim_candidates(
    queries: Any, doc_tokens: Any, doc_offsets: Any, candidates: Any, *, query_mask: Any = None, validate: bool = True
):
    """Scores only the given documents per query: candidates int ``[nq, c]`` -> float32 ``[nq, c]``."""
    fn = "maxsim_candidates"
    torch = require_torch()
    q, d, off, m, device = maxsim_args(fn, queries, doc_tokens, doc_offsets, query_mask, validate)
    cand = index_tensor(candidates, fn, "candidates", 2, "[nq, c]")
    nq, lq, _ = q.shape
    if cand.shape[0] != nq:
        raise ValueError(f"{fn}: candidates must have shape (nq, c) with nq = {nq}, got {tuple(cand.shape)}")
    same_device(fn, {"queries": q, "candidates": cand})
    n = off.numel() - 1
    check_range(cand, n, fn, "candidates", "a document index", validate)
    if use_kernels(device) and maxsim_kernel_takes(cuda_module(), dtype_name(d), q.shape[2], device.index):
        q, d, off, m, cand = contig(q), contig(d), contig(off), contig(m), contig(cand)
        out = torch.empty((nq, cand.shape[1]), dtype=torch.float32, device=device)
        cuda_module().maxsim_candidates(
            desc(q), desc(d), desc(off), desc(cand), desc(m), desc(out), device.index, stream(device)
        )
        return out
    rowmax, valid, lens = rowmax_pairs(q.float(), off, cand, lambda idx: d[idx].float(), lq)
    return pair_scores(rowmax, valid, lens, m, nq, cand.shape[1])


def maxsim_topk(
    queries: Any, doc_tokens: Any, doc_offsets: Any, k: int, *, query_mask: Any = None, validate: bool = True
):
    """Fused top-k: ``(scores float32 [nq, k], indices int64 [nq, k])``, best first, ties to the lower
    index, NaN last; ``1 <= k <= n``."""
    fn = "maxsim_topk"
    torch = require_torch()
    k = int_arg(k, fn, "k")
    q, d, off, m, device = maxsim_args(fn, queries, doc_tokens, doc_offsets, query_mask, validate)
    nq = q.shape[0]
    n = off.numel() - 1
    if k < 1 or k > n:
        raise ValueError(f"{fn}: k must be in [1, n] with n = {n} documents, got {k}")
    mod = cuda_module() if use_kernels(device) else None
    if (mod is not None and k <= mod.runtime_info()["max_topk"] and nq <= 65535
            and maxsim_kernel_takes(mod, dtype_name(d), q.shape[2], device.index)):
        q, d, off, m = contig(q), contig(d), contig(off), contig(m)
        s = torch.empty((nq, k), dtype=torch.float32, device=device)
        i = torch.empty((nq, k), dtype=torch.int64, device=device)
        mod.maxsim_topk(desc(q), desc(d), desc(off), k, desc(m), desc(s), desc(i), device.index, stream(device))
        return s, i
    return topk_total_order(maxsim(q, d, off, query_mask=m, validate=False), k)


# -- residual codec -------------------------------------------------------------------------------------
def decompress(
    codes: Any, residuals: Any, centroids: Any, bucket_weights: Any, nbits: int, dtype: Any = None, *,
    validate: bool = True,
):
    """Unit-length token vectors ``[T, dim]`` (float32 by default; float16/bfloat16 rounded from it).

    ColBERTv2 layout: codes int ``[T]``, residuals uint8 ``[T, dim*nbits/8]``; a token is
    ``v / max(||v||, 1e-12)``, ``v = centroids[code] + bucket_weights[bucket_d]`` per dimension.
    """
    fn = "decompress"
    torch = require_torch()
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"{fn}: dtype must be torch.float32, float16 or bfloat16, got {dtype}")
    cd, r, c, w, nbits, device = codec_args(fn, codes, residuals, centroids, bucket_weights, nbits, validate)
    T, dim = cd.shape[0], c.shape[1]
    if (use_kernels(device) and codec_kernel_takes(dim)
            and kernel_fits(cuda_module(), "decompress", "float32", dim, device.index, nbits)):
        out = torch.empty((T, dim), dtype=dtype, device=device)
        cuda_module().decompress(
            desc(contig(cd.to(torch.int32))), desc(contig(r)), desc(contig(c)), desc(contig(w)), nbits,
            desc(out), device.index, stream(device),
        )
        return out
    return decompress_blocks(cd, r, c, w, nbits, dtype)


def maxsim_compressed(
    queries: Any, codes: Any, residuals: Any, doc_offsets: Any, centroids: Any, bucket_weights: Any, nbits: int,
    candidates: Any = None, *, query_mask: Any = None, validate: bool = True,
):
    """MaxSim straight from codes: float32 ``[nq, n]``, or ``[nq, c]`` with ``candidates int [nq, c]``.

    Equals ``maxsim(queries, decompress(codes, residuals, ...), doc_offsets)`` up to float rounding;
    the torch path decodes blocks of tokens on the fly, the CUDA kernel a 16-token tile per warp.
    """
    fn = "maxsim_compressed"
    torch = require_torch()
    cd, r, c, w, nbits, device = codec_args(fn, codes, residuals, centroids, bucket_weights, nbits, validate)
    q = token_tensor(queries, fn, "queries", 3, "[nq, Lq, dim]")
    nq, lq, dim = q.shape
    if dim != c.shape[1]:
        raise ValueError(f"{fn}: centroids have dim {c.shape[1]} but queries have dim {dim}")
    off = index_tensor(doc_offsets, fn, "doc_offsets", 1, "[n+1]")
    m = mask_tensor(query_mask, fn, nq, lq)
    cand = None if candidates is None else index_tensor(candidates, fn, "candidates", 2, "[nq, c]")
    same_device(fn, {"codes": cd, "queries": q, "doc_offsets": off, "query_mask": m, "candidates": cand})
    check_offsets(off, cd.shape[0], fn, validate)
    n = off.numel() - 1
    if cand is not None:
        if cand.shape[0] != nq:
            raise ValueError(f"{fn}: candidates must have shape (nq, c) with nq = {nq}, got {tuple(cand.shape)}")
        check_range(cand, n, fn, "candidates", "a document index", validate)
    if (use_kernels(device) and codec_kernel_takes(dim)
            and kernel_fits(cuda_module(), "maxsim_compressed", "float32", dim, device.index, nbits)):
        cols = n if cand is None else cand.shape[1]
        out = torch.empty((nq, cols), dtype=torch.float32, device=device)
        cuda_module().maxsim_compressed(
            desc(contig(q)), desc(contig(cd.to(torch.int32))), desc(contig(r)), desc(contig(off)),
            desc(contig(c)), desc(contig(w)), nbits, desc(contig(cand)), desc(contig(m)), desc(out),
            device.index, stream(device),
        )
        return out
    qf = q.float()
    if cand is None:
        return grouped_all_scores(qf, cd.shape[0], off, lambda a, b: decode(cd[a:b], r[a:b], c, w, nbits), m)
    rowmax, valid, lens = rowmax_pairs(qf, off, cand, lambda idx: decode(cd[idx], r[idx], c, w, nbits), lq)
    return pair_scores(rowmax, valid, lens, m, nq, cand.shape[1])


# -- centroid search ------------------------------------------------------------------------------------
def centroid_search(query_tokens: Any, centroids: Any, nprobe: int):
    """Top-``nprobe`` centroids per token: ``(scores float32 [m, nprobe], ids int32 [m, nprobe])``, best
    first, ties to the lower id, NaN last; no ``[m, K]`` matrix beyond one block of centroids."""
    fn = "centroid_search"
    torch = require_torch()
    nprobe = int_arg(nprobe, fn, "nprobe")
    q = token_tensor(query_tokens, fn, "query_tokens", 2, "[m, dim]")
    c = token_tensor(centroids, fn, "centroids", 2, "[K, dim]")
    device = same_device(fn, {"query_tokens": q, "centroids": c})
    m, dim = q.shape
    K = c.shape[0]
    if c.shape[1] != dim:
        raise ValueError(f"{fn}: query_tokens have dim {dim} but centroids have dim {c.shape[1]}")
    if nprobe < 1 or nprobe > K:
        raise ValueError(f"{fn}: nprobe must be in [1, K] with K = {K} centroids, got {nprobe}")
    mod = cuda_module() if use_kernels(device) else None
    if (mod is not None and nprobe <= mod.runtime_info()["max_probe"] and dim <= 256
            and kernel_fits(mod, "centroid_search", dtype_name(c), dim, device.index)):
        # The kernel reads rows in the centroids' dtype (fp16/bf16 on tensor cores).
        qc = q.to(c.dtype).contiguous()
        s = torch.empty((m, nprobe), dtype=torch.float32, device=device)
        i = torch.empty((m, nprobe), dtype=torch.int32, device=device)
        mod.centroid_topk(desc(qc), desc(c.contiguous()), nprobe, desc(s), desc(i), device.index, stream(device))
        return s, i
    return centroid_topk(q, c, nprobe)


def assign(tokens: Any, centroids: Any):
    """Nearest centroid by inner product for every token: ``int32 [T]``, ties to the lower id."""
    torch = require_torch()
    fn = "assign"
    t = token_tensor(tokens, fn, "tokens", 2, "[T, dim]")
    # Checked here, with assign's names (and when there are no tokens to run centroid_search on).
    c = token_tensor(centroids, fn, "centroids", 2, "[K, dim]")
    device = same_device(fn, {"tokens": t, "centroids": c})
    if c.shape[1] != t.shape[1]:
        raise ValueError(f"{fn}: tokens have dim {t.shape[1]} but centroids have dim {c.shape[1]}")
    if c.shape[0] == 0:
        raise ValueError(f"{fn}: centroids must have at least 1 row, got 0")
    if t.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int32, device=device)
    return centroid_search(t, c, 1)[1].reshape(-1)
