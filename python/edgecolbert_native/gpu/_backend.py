"""Which implementation runs on CUDA tensors: the CUDA kernels of ``edgecolbert_native._cuda`` or the torch
path. ``EDGECOLBERT_CUDA_KERNELS=1`` opts in, ``=0`` opts out, unset means "the kernels if
``cuda_verified.json`` (beside this file) records that they passed on real hardware". Also the plumbing
of a kernel launch: tensor descriptors, the current stream.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

VERIFIED_FILE = Path(__file__).with_name("cuda_verified.json")
ENV = "EDGECOLBERT_CUDA_KERNELS"


def require_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a test dependency
        raise RuntimeError("edgecolbert_native.gpu needs torch (pip install 'edgecolbert-native[encoder]')") from e
    return torch


# -- provenance and choice of implementation ----------------------------------------------------------
def kernels_verified() -> dict:
    """The repository's record of whether the CUDA kernels ever ran and passed on a real GPU."""
    try:
        return json.loads(VERIFIED_FILE.read_text())
    except (OSError, ValueError):
        return {"verified": False, "reason": f"{VERIFIED_FILE.name} missing or unreadable"}


_CUDA_MODULE: Any = None
_CUDA_IMPORT_ERROR: str | None = None


def cuda_module():
    """The compiled _cuda module or None (import is attempted once; never raises)."""
    global _CUDA_MODULE, _CUDA_IMPORT_ERROR
    if _CUDA_MODULE is None and _CUDA_IMPORT_ERROR is None:
        try:
            from .. import _cuda  # type: ignore[attr-defined]

            _CUDA_MODULE = _cuda
        except ImportError as e:
            _CUDA_IMPORT_ERROR = str(e) or "edgecolbert_native._cuda was not built (no nvcc at build time)"
    return _CUDA_MODULE


def kernel_choice() -> tuple[bool, str]:
    """(use the CUDA kernels on CUDA tensors?, why)."""
    env = os.environ.get(ENV, "").strip()
    if env == "1":
        return True, f"{ENV}=1"
    if env == "0":
        return False, f"{ENV}=0"
    if env:
        raise ValueError(f"{ENV} must be 0 or 1, got {env!r}")
    if kernels_verified().get("verified") is True:
        return True, "kernels verified on hardware (cuda_verified.json)"
    return False, "kernels not yet verified on hardware (cuda_verified.json); set EDGECOLBERT_CUDA_KERNELS=1 to opt in"


def use_kernels(device: Any) -> bool:
    if device.type != "cuda":
        return False
    want, why = kernel_choice()
    if not want:
        return False
    mod = cuda_module()
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
    torch = require_torch()
    record = kernels_verified()
    mod = cuda_module()
    want, why = kernel_choice()
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


# -- launching a kernel ----------------------------------------------------------------------------------
def desc(t: Any) -> tuple | None:
    if t is None:
        return None
    name = str(t.dtype).replace("torch.", "")
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), name, t.device.index)


def stream(device: Any) -> int:
    return require_torch().cuda.current_stream(device).cuda_stream


def contig(t: Any):
    return None if t is None else t.contiguous()
