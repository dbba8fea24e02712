"""The torch path: device-agnostic torch ops (chunked matmul with a scatter max per document, gather-based
decode, stable sorts for top-k). Tested on CPU tensors against the CPU kernels and the scalar reference;
the default on CUDA tensors until the CUDA kernels are verified (see _backend).
"""

from __future__ import annotations

from typing import Any

from ._backend import require_torch

# Elements of a float32 similarity block the torch path materialises at once (CPU, CUDA).
CHUNK_ELEMS = {"cpu": 1 << 23, "cuda": 1 << 27}
# Row maxima [queries x Lq x documents] the torch path keeps at once: queries go in groups below this.
ROWMAX_ELEMS = {"cpu": 1 << 26, "cuda": 1 << 28}


def chunk_elems(device: Any) -> int:
    return CHUNK_ELEMS.get(device.type, CHUNK_ELEMS["cuda"])


def nan_to_neg_inf(s: Any):
    torch = require_torch()
    return torch.where(torch.isnan(s), torch.full_like(s, float("-inf")), s)


def sum_rows(rowmax: Any, mask: Any, q_index: Any = None):
    """rowmax [nq or P, Lq, ...] -> float32 scores: kept rows summed in float64 (masked rows add 0)."""
    torch = require_torch()
    if mask is not None:
        keep = mask if q_index is None else mask[q_index]
        keep = keep.reshape(keep.shape + (1,) * (rowmax.dim() - keep.dim()))
        rowmax = torch.where(keep, rowmax, torch.zeros((), dtype=rowmax.dtype, device=rowmax.device))
    return rowmax.double().sum(dim=1).float()


def rowmax_all(qf: Any, T: int, offsets: Any, fetch, nq: int, lq: int):
    """Row maxima [nq, Lq, n] over every document: token blocks of the CSR, one matmul each, folded into
    the documents by a scatter max (no document boundaries are needed on the host)."""
    torch = require_torch()
    n = offsets.numel() - 1
    dev = qf.device
    R = nq * lq
    rowmax = torch.full((R, n), float("-inf"), dtype=torch.float32, device=dev)
    if T == 0 or n == 0 or R == 0:
        return rowmax.view(nq, lq, n)
    ends = offsets[1:].contiguous()
    step = max(1, chunk_elems(dev) // max(R, 1))
    q2 = qf.reshape(R, -1)
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        doc = torch.searchsorted(ends, torch.arange(t0, t1, device=dev), right=True)
        sims = nan_to_neg_inf(q2 @ fetch(t0, t1).T)
        rowmax.scatter_reduce_(1, doc.unsqueeze(0).expand(R, t1 - t0), sims, reduce="amax", include_self=True)
    return rowmax.view(nq, lq, n)


def rowmax_pairs(qf: Any, offsets: Any, cand: Any, fetch_idx, lq: int):
    """Row maxima [P, Lq] of (query, candidate) pairs: their tokens gathered, dotted with their query."""
    torch = require_torch()
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
    step = max(1, chunk_elems(dev) // max(lq * qf.shape[-1], 1))
    for s0 in range(0, S, step):
        s1 = min(S, s0 + step)
        p = pair[s0:s1]
        sims = nan_to_neg_inf(torch.einsum("cld,cd->cl", qf[p // nc], fetch_idx(tok[s0:s1])))
        rowmax.scatter_reduce_(0, p.unsqueeze(1).expand(s1 - s0, lq), sims, reduce="amax", include_self=True)
    return rowmax, valid, lens


def pair_scores(rowmax: Any, valid: Any, lens: Any, mask: Any, nq: int, nc: int):
    torch = require_torch()
    q_index = torch.arange(nq, device=rowmax.device).repeat_interleave(nc)
    s = sum_rows(rowmax, mask, q_index)
    s = torch.where(lens == 0, torch.zeros_like(s), s)
    s = torch.where(valid, s, torch.full_like(s, float("nan")))
    return s.view(nq, nc)


def grouped_all_scores(qf: Any, T: int, offsets: Any, fetch, mask: Any):
    """Scores [nq, n] over every document, queries in groups whose row maxima fit ROWMAX_ELEMS."""
    torch = require_torch()
    nq, lq, _ = qf.shape
    n = offsets.numel() - 1
    budget = ROWMAX_ELEMS.get(qf.device.type, ROWMAX_ELEMS["cuda"])
    group = max(1, budget // max(lq * n, 1))
    parts = []
    for g0 in range(0, nq, group):
        g1 = min(nq, g0 + group)
        rowmax = rowmax_all(qf[g0:g1], T, offsets, fetch, g1 - g0, lq)
        parts.append(all_scores(rowmax, offsets, None if mask is None else mask[g0:g1]))
    return torch.cat(parts, 0) if parts else torch.zeros((0, n), dtype=torch.float32, device=qf.device)


def all_scores(rowmax: Any, offsets: Any, mask: Any):
    torch = require_torch()
    s = sum_rows(rowmax, mask)
    empty = (offsets[1:] - offsets[:-1]) == 0
    return torch.where(empty.unsqueeze(0), torch.zeros_like(s), s)


def topk_total_order(scores: Any, k: int, ids: Any = None):
    """Best k per row under the total order: score descending, NaN last, ties to the lower id."""
    torch = require_torch()
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


def decode(codes: Any, residuals: Any, cents: Any, weights: Any, nbits: int):
    """float32 unit vectors [t, dim] for codes [t] and residual rows [t, W] (the torch path)."""
    torch = require_torch()
    t, W = residuals.shape
    dim = cents.shape[1]
    shifts = torch.arange(7, -1, -1, device=residuals.device, dtype=torch.int32)
    bits = (residuals.to(torch.int32).unsqueeze(-1) >> shifts) & 1  # [t, W, 8], MSB first
    bits = bits.reshape(t, dim, nbits)  # dim after dim, each's bits least significant first
    bucket = (bits << torch.arange(nbits, device=residuals.device, dtype=torch.int32)).sum(-1)
    v = cents[codes.long()] + weights[bucket.long()]
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)


def decompress_blocks(codes: Any, residuals: Any, cents: Any, weights: Any, nbits: int, dtype: Any):
    """``decode`` over blocks of tokens into one ``[T, dim]`` tensor of ``dtype``."""
    torch = require_torch()
    T, dim = codes.shape[0], cents.shape[1]
    out = torch.empty((T, dim), dtype=dtype, device=codes.device)
    step = max(1, chunk_elems(codes.device) // max(dim * 8, 1))
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        out[t0:t1] = decode(codes[t0:t1], residuals[t0:t1], cents, weights, nbits).to(dtype)
    return out


def centroid_topk(q: Any, c: Any, nprobe: int):
    """Top-``nprobe`` centroids per row of ``q`` over blocks of centroids (no ``[m, K]`` matrix)."""
    torch = require_torch()
    device = q.device
    m, K = q.shape[0], c.shape[0]
    qf = q.float()
    best_s = best_i = None
    step = max(nprobe, chunk_elems(device) // max(m, 1))
    for c0 in range(0, K, step):
        c1 = min(K, c0 + step)
        s = qf @ c[c0:c1].float().T
        ids = torch.arange(c0, c1, device=device).expand(m, c1 - c0)
        s, ids = topk_total_order(s, min(nprobe, c1 - c0), ids)
        if best_s is not None:  # earlier blocks first: equal scores keep the lower id
            s, ids = topk_total_order(torch.cat([best_s, s], 1), min(nprobe, best_s.shape[1] + s.shape[1]),
                                       torch.cat([best_i, ids], 1))
        best_s, best_i = s, ids
    if best_s is None or best_i is None:  # K >= 1 is checked by the caller: the loop ran
        raise ValueError("centroid_search: no centroids")
    return best_s, best_i.to(torch.int32)
