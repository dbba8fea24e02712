"""Type stubs for the compiled module edgecolbert_native._native (csrc/bindings). The documented API is
edgecolbert_native.kernels / centroids / codec; these are the thin checked entry points behind it."""

from typing import Any

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[Any]
_F32 = npt.NDArray[np.float32]
_I32 = npt.NDArray[np.int32]
_I64 = npt.NDArray[np.int64]
_U8 = npt.NDArray[np.uint8]

def info() -> dict[str, Any]: ...
def maxsim(
    queries: _Array, doc_tokens: _Array, doc_offsets: Any, query_mask: Any = ..., num_threads: int | None = ...,
    queries_dtype: str = ..., docs_dtype: str = ..., isa: str = ...,
) -> _F32: ...
def maxsim_ranges(
    queries: _Array, doc_tokens: _Array, doc_begin: Any, doc_end: Any, floor_zero: Any = ..., query_mask: Any = ...,
    num_threads: int | None = ..., queries_dtype: str = ..., docs_dtype: str = ..., isa: str = ..., fn_name: str = ...,
) -> _F32: ...
def maxsim_topk(
    queries: _Array, doc_tokens: _Array, doc_offsets: Any, k: int, query_mask: Any = ..., num_threads: int | None = ...,
    queries_dtype: str = ..., docs_dtype: str = ..., isa: str = ...,
) -> tuple[_F32, _I64]: ...
def maxsim_candidates(
    queries: _Array, doc_tokens: _Array, doc_offsets: Any, candidates: Any, query_mask: Any = ...,
    num_threads: int | None = ..., queries_dtype: str = ..., docs_dtype: str = ..., isa: str = ...,
) -> _F32: ...
def centroid_scores(
    query_tokens: _Array, centroids: _Array, num_threads: int | None = ..., rows_dtype: str = ...,
    centroids_dtype: str = ..., isa: str = ...,
) -> _F32: ...
def centroid_scores_t(
    query_tokens: _Array, centroids: _Array, num_threads: int | None = ..., rows_dtype: str = ...,
    centroids_dtype: str = ..., isa: str = ...,
) -> _F32: ...
def pool_tokens(
    doc_tokens: _F32, doc_offsets: Any, pool_factor: int, protected_tokens: int = ..., num_threads: int | None = ...,
    return_rows: bool = ...,
) -> tuple[_Array, ...]: ...
def quantize_rows_i8(x: _F32) -> tuple[Any, _F32, _I32]: ...
def centroid_scores_t_i8(
    query_tokens: _F32, centroids_i8: tuple[Any, _F32, _I32], num_threads: int | None = ..., isa: str = ...,
) -> _F32: ...
def centroid_topk(
    rows: _Array, centroids: _Array, k: int, want_scores: bool = ..., num_threads: int | None = ...,
    rows_dtype: str = ..., centroids_dtype: str = ..., isa: str = ..., fn_name: str = ..., rows_name: str = ...,
) -> Any: ...
def codec_compress(
    centroids: _F32, bucket_cutoffs: _F32, bucket_weights: _F32, nbits: int, tokens: _Array, tokens_dtype: str = ...,
    num_threads: int | None = ..., isa: str = ...,
) -> tuple[_I32, _U8]: ...
def codec_decompress(
    centroids: _F32, bucket_weights: _F32, nbits: int, codes: Any, residuals: Any, dtype: str = ...,
    num_threads: int | None = ..., isa: str = ...,
) -> _Array: ...
def codec_token_norms(
    centroids: _F32, bucket_weights: _F32, nbits: int, codes: Any, residuals: Any,
    num_threads: int | None = ..., isa: str = ...,
) -> _F32: ...
def maxsim_compressed(
    queries: _Array, centroids: _F32, bucket_weights: _F32, nbits: int, codes: Any, residuals: Any, doc_offsets: Any,
    candidates: Any = ..., query_mask: Any = ..., num_threads: int | None = ..., queries_dtype: str = ...,
    isa: str = ..., *args: Any, **kwargs: Any,
) -> _F32: ...
def plaid_search(
    queries: _F32, query_mask: Any, centroids: _F32, bucket_weights: _F32, nbits: int, segments: Any,
    allowed: Any = ..., subset: bool = ..., nprobe: int = ..., ndocs: int = ..., rerank: int = ..., k: int = ...,
    threshold: float = ..., mode: str = ..., decoded: Any = ..., num_threads: int | None = ..., isa: str = ...,
    centroids_i8: Any = ...,
) -> tuple[_F32, _I64]: ...
def plaid_distinct_codes(codes: Any, doc_offsets: Any, num_threads: int | None = ...) -> tuple[_Array, _I64]: ...

class PlaidSource:
    """The three PLAID stages plaid_drive asks for; a subclass defines candidates, approximate and exact."""
    def __init__(self) -> None: ...

class PlaidIndexSource(PlaidSource):
    def __init__(
        self, queries: _F32, query_mask: Any, centroids: _F32, bucket_weights: _F32, nbits: int, segments: Any,
        allowed: Any = ..., subset: bool = ..., threshold: float = ..., num_threads: int | None = ..., isa: str = ...,
        centroids_i8: Any = ..., fill: bool = ...,
    ) -> None: ...
    def candidates(self, queries: Any, probes: Any, ndocs: int) -> tuple[_I64, _I64, _F32, _I64]: ...
    def approximate(self, queries: Any, offsets: Any, docs: Any) -> _F32: ...
    def exact(self, queries: Any, offsets: Any, docs: Any) -> _F32: ...

def plaid_drive(
    source: PlaidSource, active: Any, nprobe: int, ndocs: int, rerank: int, k: int, num_centroids: int,
    num_allowed: int, subset: bool,
) -> tuple[_F32, _I64]: ...

# peak probes (csrc/bindings/peaks.cpp; edgecolbert_native.peaks)
def compute_probes() -> list[dict[str, Any]]: ...
def read_probes() -> list[dict[str, Any]]: ...
def run_compute_probe(name: str, iters: int, one: int = ...) -> float: ...
def run_read_probe(name: str, buffer: Any, passes: int = ...) -> int: ...
def time_compute_probe(name: str, threads: int = ..., seconds: float = ..., repeats: int = ...) -> dict[str, Any]: ...
def time_read_probe(
    name: str, bytes_per_thread: int, threads: int = ..., seconds: float = ..., repeats: int = ...,
) -> dict[str, Any]: ...
def cache_sizes() -> dict[str, Any]: ...
def map_readonly(path: str, nbytes: int) -> _U8: ...
