"""Argument checks of the GPU entry points: tensors (or DLPack / CUDA-array-interface objects, wrapped
without a copy), dtypes, shapes, one device for all, CSR offsets and index ranges. An error names the
function and the argument. The value checks that need the data (offsets, ranges) read back one scalar;
``validate=False`` skips them.
"""

from __future__ import annotations

from typing import Any

from ._backend import require_torch

TOKEN_DTYPES = ("float32", "float16", "bfloat16")


def tensor(x: Any, fn: str, arg: str):
    torch = require_torch()
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


def dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def same_device(fn: str, named: dict[str, Any]) -> Any:
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


def token_tensor(x: Any, fn: str, arg: str, ndim: int, layout: str):
    t = tensor(x, fn, arg)
    if t.dim() != ndim:
        raise ValueError(f"{fn}: {arg} must have {ndim} dimensions {layout}, got shape {tuple(t.shape)}")
    if dtype_name(t) not in TOKEN_DTYPES:
        raise TypeError(f"{fn}: {arg} must be float32, float16 or bfloat16, got {dtype_name(t)}")
    return t


def index_tensor(x: Any, fn: str, arg: str, ndim: int, layout: str):
    torch = require_torch()
    t = tensor(x, fn, arg)
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{fn}: {arg} must hold integers, got {dtype_name(t)}")
    if t.dim() != ndim:
        raise ValueError(f"{fn}: {arg} must have {ndim} dimension{'s' if ndim > 1 else ''} {layout}, got shape {tuple(t.shape)}")
    return t.to(torch.int64)


def mask_tensor(x: Any, fn: str, nq: int, lq: int):
    if x is None:
        return None
    torch = require_torch()
    t = tensor(x, fn, "query_mask")
    if t.is_complex():
        raise TypeError(f"{fn}: query_mask must be boolean, got {dtype_name(t)}")
    if tuple(t.shape) != (nq, lq):
        raise ValueError(f"{fn}: query_mask must have shape ({nq}, {lq}) like queries, got {tuple(t.shape)}")
    return t != 0 if t.dtype != torch.bool else t


def check_offsets(offsets: Any, T: int, fn: str, validate: bool) -> None:
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


def check_range(idx: Any, hi: int, fn: str, arg: str, what: str, validate: bool) -> None:
    if validate and idx.numel() and bool(((idx < 0) | (idx >= hi)).any()):
        bad = idx.reshape(-1)[((idx < 0) | (idx >= hi)).reshape(-1)][0]
        raise ValueError(f"{fn}: {arg} holds {int(bad)}, which is not {what} in [0, {hi})")


def int_arg(v: Any, fn: str, arg: str) -> int:
    import numpy as np

    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{fn}: {arg} must be an int, got {type(v).__name__}")
    return int(v)


def maxsim_args(fn: str, queries: Any, doc_tokens: Any, doc_offsets: Any, query_mask: Any, validate: bool):
    q = token_tensor(queries, fn, "queries", 3, "[nq, Lq, dim]")
    d = token_tensor(doc_tokens, fn, "doc_tokens", 2, "[T, dim]")
    off = index_tensor(doc_offsets, fn, "doc_offsets", 1, "[n+1]")
    nq, lq, dim = q.shape
    if dim < 1:
        raise ValueError(f"{fn}: queries must have dim >= 1, got shape {tuple(q.shape)}")
    if d.shape[1] != dim:
        raise ValueError(f"{fn}: doc_tokens have dim {d.shape[1]} but queries have dim {dim}")
    m = mask_tensor(query_mask, fn, nq, lq)
    device = same_device(fn, {"queries": q, "doc_tokens": d, "doc_offsets": off, "query_mask": m})
    check_offsets(off, d.shape[0], fn, validate)
    return q, d, off, m, device


def codec_args(fn: str, codes: Any, residuals: Any, centroids: Any, bucket_weights: Any, nbits: Any, validate: bool):
    torch = require_torch()
    nbits = int_arg(nbits, fn, "nbits")
    if nbits not in (1, 2, 4, 8):
        raise ValueError(f"{fn}: nbits must be 1, 2, 4 or 8, got {nbits}")
    c = token_tensor(centroids, fn, "centroids", 2, "[K, dim]")
    K, dim = c.shape
    if (dim * nbits) % 8:
        raise ValueError(f"{fn}: dim * nbits must be a multiple of 8, got dim {dim}, nbits {nbits}")
    w = tensor(bucket_weights, fn, "bucket_weights")
    if tuple(w.shape) != (1 << nbits,):
        raise ValueError(f"{fn}: bucket_weights must have shape ({1 << nbits},) for nbits {nbits}, got {tuple(w.shape)}")
    if not w.is_floating_point():
        raise TypeError(f"{fn}: bucket_weights must be floating point, got {dtype_name(w)}")
    cd = tensor(codes, fn, "codes")
    if cd.is_floating_point() or cd.dtype == torch.bool or cd.dim() != 1:
        raise TypeError(f"{fn}: codes must be a 1-d integer tensor [T], got {dtype_name(cd)} {tuple(cd.shape)}")
    r = tensor(residuals, fn, "residuals")
    if r.dtype != torch.uint8:
        raise TypeError(f"{fn}: residuals must be uint8, got {dtype_name(r)}")
    if tuple(r.shape) != (cd.shape[0], dim * nbits // 8):
        raise ValueError(f"{fn}: residuals must have shape ({cd.shape[0]}, {dim * nbits // 8}), got {tuple(r.shape)}")
    device = same_device(fn, {"codes": cd, "residuals": r, "centroids": c, "bucket_weights": w})
    check_range(cd, K, fn, "codes", "a centroid id", validate)
    return cd, r, c.float(), w.float(), nbits, device
