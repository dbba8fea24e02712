"""Turning user inputs (numpy arrays, CPU torch tensors, DLPack / buffer-protocol objects) into the
numpy views the native module reads, without copies where the memory is already usable."""

from __future__ import annotations

from typing import Any

import numpy as np

BF16 = "bfloat16"


def _torch_to_numpy(x: Any, fn: str, arg: str) -> tuple[np.ndarray, str]:
    if x.device.type != "cpu":
        raise ValueError(
            f"{fn}: {arg} is on device {x.device}; the CPU kernels take CPU tensors "
            "(move it with .cpu(), or use the CUDA module where one is built)"
        )
    x = x.detach()
    if x.is_conj() or x.is_neg():
        x = x.resolve_conj().resolve_neg()
    import torch  # only reached when a torch tensor was passed

    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(np.uint16), BF16
    return x.numpy(), ""


def as_array(x: Any, fn: str, arg: str, dtype: str | None = None) -> tuple[np.ndarray, str]:
    """Returns (array, declared dtype name) for a token array; bf16 is carried as uint16 storage."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        return _torch_to_numpy(x, fn, arg)
    if isinstance(x, np.ndarray):
        arr = x
    elif hasattr(x, "__dlpack__"):
        try:
            arr = np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError) as e:
            raise TypeError(f"{fn}: {arg} could not be read through DLPack: {e}") from None
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{fn}: {arg} must be an array or tensor, got {type(x).__name__}: {e}") from None
    declared = ""
    if arr.dtype.kind in "ui" and arr.dtype.itemsize == 2:
        if dtype not in (BF16, "bf16"):
            raise TypeError(
                f"{fn}: {arg} has dtype {arr.dtype}; pass dtype=\"bfloat16\" to read 2-byte integers as bfloat16"
            )
        declared = BF16
    elif arr.dtype.name == BF16:  # ml_dtypes.bfloat16
        arr, declared = arr.view(np.uint16), BF16
    elif dtype not in (None, BF16, "bf16", "float32", "float16"):
        raise TypeError(f"{fn}: unknown dtype {dtype!r} (float32, float16, bfloat16)")
    if arr.dtype.kind not in "fui" and declared == "":
        raise TypeError(f"{fn}: {arg} must be float32, float16 or bfloat16, got {arr.dtype}")
    return arr, declared


def as_index_array(x: Any, fn: str, arg: str) -> np.ndarray:
    """Integer array (offsets, candidates, ids) as int64; rejects floats and bools."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {arg} must hold integers, got {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{fn}: {arg} has values beyond the int64 range")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_mask(x: Any, fn: str, arg: str) -> np.ndarray | None:
    if x is None:
        return None
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {arg} must be boolean (or 0/1 numbers), got {arr.dtype}")
    if arr.dtype != np.bool_:
        arr = arr != 0
    return np.ascontiguousarray(arr)
