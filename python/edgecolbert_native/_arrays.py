"""Turning user inputs (numpy arrays, CPU torch tensors, DLPack / buffer-protocol objects) into the
numpy views the native module reads, without copies where the memory is already usable."""

from __future__ import annotations

from typing import Any

import numpy as np

BF16 = "bfloat16"


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def to_numpy(x: Any, *, bf16_bits: bool = False) -> Any:
    """The package's one torch -> numpy conversion. A torch tensor is detached, its lazy conj/neg views
    resolved, moved to the host if it is elsewhere, and viewed as numpy (no copy for a CPU tensor);
    bfloat16, which numpy lacks, becomes float32 exactly, or with ``bf16_bits`` stays its uint16 storage
    (no copy: the kernels read it as bf16). Anything else is returned as it is."""
    if not is_torch(x) or not hasattr(x, "detach"):
        return x
    import torch  # only reached when a torch tensor was passed

    t = x.detach()
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16) if bf16_bits else t.float().numpy()
    return t.numpy()


def _torch_to_numpy(x: Any, fn: str, arg: str) -> tuple[np.ndarray, str]:
    """A CPU tensor read in place (bf16 as its uint16 storage); a tensor elsewhere is refused, not copied."""
    if x.device.type != "cpu":
        raise ValueError(
            f"{fn}: {arg} is on device {x.device}; the CPU kernels take CPU tensors "
            "(move it with .cpu(), or use the CUDA module where one is built)"
        )
    return to_numpy(x, bf16_bits=True), BF16 if str(x.dtype) == "torch.bfloat16" else ""


def _from_dlpack(x: Any, fn: str, arg: str) -> np.ndarray:
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError) as e:
        raise TypeError(f"{fn}: {arg} could not be read through DLPack: {e}") from None


def as_array(x: Any, fn: str, arg: str, dtype: str | None = None) -> tuple[np.ndarray, str]:
    """Returns (array, declared dtype name) for a token array; bf16 is carried as uint16 storage."""
    if type(x) is np.ndarray and x.dtype.char in "fde" and dtype in (None, "float32", "float16"):
        return x, ""  # the common case, decided in a few dtype reads (a search pays this per call)
    if is_torch(x):
        return _torch_to_numpy(x, fn, arg)
    if isinstance(x, np.ndarray):
        arr = x
    elif hasattr(x, "__dlpack__"):
        arr = _from_dlpack(x, fn, arg)
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{fn}: {arg} must be an array or tensor, got {type(x).__name__}: {e}") from None
    declared = ""
    if arr.dtype.kind in "ui" and arr.dtype.itemsize == 2:
        if dtype not in (BF16, "bf16"):
            raise TypeError(
                f"{fn}: {arg} has dtype {arr.dtype}; 2-byte integers are read as bfloat16 only when declared: "
                "dtype=\"bfloat16\" where the function takes it, or a torch or ml_dtypes bfloat16 array"
            )
        declared = BF16
    elif arr.dtype.name == BF16:  # ml_dtypes.bfloat16
        arr, declared = arr.view(np.uint16), BF16
    elif dtype not in (None, BF16, "bf16", "float32", "float16"):
        raise TypeError(f"{fn}: unknown dtype {dtype!r} (float32, float16, bfloat16)")
    if arr.dtype.kind not in "fui" and declared == "":
        raise TypeError(f"{fn}: {arg} must be float32, float16 or bfloat16, got {arr.dtype}")
    return arr, declared


def _plain_array(x: Any, fn: str, arg: str) -> np.ndarray:
    """numpy arrays, torch tensors, DLPack exporters (np.asarray would make an array of one object) and
    anything np.asarray reads, as a numpy array."""
    x = to_numpy(x)
    if not isinstance(x, np.ndarray) and hasattr(x, "__dlpack__"):
        return _from_dlpack(x, fn, arg)
    return np.asarray(x)


def as_index_array(x: Any, fn: str, arg: str) -> np.ndarray:
    """Integer array (offsets, candidates, ids) as int64; rejects floats and bools."""
    arr = _plain_array(x, fn, arg)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {arg} must hold integers, got {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{fn}: {arg} has values beyond the int64 range")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_mask(x: Any, fn: str, arg: str) -> np.ndarray | None:
    if x is None:
        return None
    arr = _plain_array(x, fn, arg)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {arg} must be boolean (or 0/1 numbers), got {arr.dtype}")
    if arr.dtype != np.bool_:
        arr = arr != 0
    return np.ascontiguousarray(arr)


def check_threads(n: Any, fn: str) -> None:
    """The native entry points' rule for num_threads (None, or an integer in [1, 4096]), checked where a
    public Python function takes it, so that its error names that function and not a native one."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{fn}: num_threads must be an int or None, got {type(n).__name__}")
    if not 1 <= int(n) <= 4096:
        raise ValueError(f"{fn}: num_threads must be in [1, 4096], got {int(n)}")
