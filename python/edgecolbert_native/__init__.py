"""edgecolbert-native: a native late-interaction (ColBERT) retrieval core.

Kernels (MaxSim, residual codec, centroid search) are compiled C++ with run-time ISA dispatch; the
encoder (torch) and the index are imported lazily so that ``import edgecolbert_native`` is cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_KERNELS = ("maxsim", "maxsim_topk", "maxsim_candidates", "maxsim_padded", "pool_tokens", "info")
_LAZY = {name: "kernels" for name in _KERNELS}
_LAZY["Index"] = "index"
_LAZY.update({
    "centroid_search": "centroids", "centroid_scores": "centroids", "assign": "centroids", "kmeans": "centroids",
    "ResidualCodec": "codec", "maxsim_compressed": "codec",
})

__all__ = list(_KERNELS) + ["Index"]
__all__ += ["centroid_search", "centroid_scores", "assign", "kmeans", "ResidualCodec", "maxsim_compressed"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecolbert_native' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
