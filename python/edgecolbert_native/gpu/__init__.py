"""The GPU path: MaxSim, decompression, compressed scoring and centroid search on torch tensors.

Every entry point takes torch tensors on any device (CPU or CUDA; objects with ``__dlpack__`` or
``__cuda_array_interface__`` are wrapped without a copy), keeps the work on the inputs' device and
returns torch tensors there. Two implementations sit behind each one:

* the **torch path**: device-agnostic torch ops (chunked matmul with a scatter max per document,
  gather-based decode, a stable sort for top-k). It is tested on CPU tensors in CI against the CPU
  kernels and the scalar reference, and it is the default on CUDA tensors;
* the **CUDA kernels** of ``edgecolbert_native._cuda`` (csrc/cuda). They run only on CUDA tensors and
  only when chosen: ``EDGECOLBERT_CUDA_KERNELS=1`` opts in, ``=0`` opts out, and unset means "use them
  if they were verified on real hardware" -- a fact recorded in ``gpu/cuda_verified.json``, not
  guessed. They have not been (see docs/gpu.md), so the torch path is what runs today.

``info()`` says which is in use. Mixing devices is a ``ValueError``; asking for the kernels where the
module or a driver is missing is a ``RuntimeError``. Launches use the current CUDA stream; nothing
synchronises except the argument validation (one scalar read back per call, ``validate=False`` skips
it for arrays that come from a trusted index) and ``maxsim_candidates`` on the torch path (one scalar:
the number of candidate tokens, to size a buffer).

Semantics are the CPU kernels' (edgecolbert_native.maxsim and friends): float32 accumulation and
scores; per query row the max over a document's tokens (a NaN dot product never wins), kept rows summed
in float64; an empty document scores 0; top-k best first, ties to the lower index, NaN last.

The package is split by concern: ``_backend`` (which implementation runs, kernel launches), ``_checks``
(argument checks), ``_torch_path`` (the torch implementation) and ``_api`` (the entry points below).
"""

from ._api import assign, centroid_search, decompress, maxsim, maxsim_candidates, maxsim_compressed, maxsim_topk
from ._backend import info, kernels_verified

__all__ = [
    "maxsim", "maxsim_topk", "maxsim_candidates", "decompress", "maxsim_compressed", "centroid_search", "assign",
    "info", "kernels_verified",
]
