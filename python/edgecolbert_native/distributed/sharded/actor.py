"""One shard's searcher (in process, or the body of its Ray actor) and the connection to Ray."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...index import Index, _search

FN = "ShardedIndex.search"


def connect_ray(address: str) -> Any:
    """The ray module, initialised: "local" starts a local cluster, "auto" or an address joins one."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("ray_address needs Ray: pip install 'edgecolbert-native[distributed]'") from e
    if not ray.is_initialized():
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


class ShardSearcher:
    """One shard, memory-mapped, answering batches of queries: a whole search (the exact paths, merged by
    top-k), or one PLAID stage for the coordinator's stage driver (``stage_*``: the shard's native stages,
    ``Index``'s own; documents are the shard's local positions, queries indices into the batch)."""

    def __init__(self, directory: str, verify: bool = True) -> None:
        self.index = Index.open(directory, verify=verify)

    def search(self, queries: np.ndarray, k: int, query_mask: np.ndarray | None, params: dict) -> tuple:
        k = min(k, max(1, len(self.index)))
        return self.index.search(queries, k=k, query_mask=query_mask, **params)

    def info(self, subset: Any, where: str | None = None, params: Any = ()) -> dict:
        idx = self.index
        return {"positions": int(len(idx.live)),
                "allowed": int(np.count_nonzero(_search.allowed_mask(idx, subset, FN, where, params))),
                "tokens": int(sum(int(s.offsets[-1]) for s in idx.segments)),
                "num_centroids": int(idx.num_centroids)}

    def _stages(self, queries: np.ndarray, query_mask: np.ndarray | None, subset: Any, threshold: float | None,
                num_threads: int | None, fill: bool = False, where: str | None = None, params: Any = ()) -> Any:
        return _search.stage_source(self.index, queries, query_mask, subset, threshold, num_threads, FN, fill,
                                    where, params)

    def stage_candidates(self, queries: np.ndarray, query_mask: np.ndarray | None, subset: Any, num_threads: int | None,
                         which: np.ndarray, probes: np.ndarray, ndocs: int, fill: bool = False,
                         where: str | None = None, params: Any = ()) -> tuple:
        """Stage A (PlaidSource.candidates) over the shard's allowed documents (in ``subset`` and matching
        ``where``; ``fill``: every one of them)."""
        return self._stages(queries, query_mask, subset, None, num_threads, fill, where,
                            params).candidates(which, probes, ndocs)

    def stage_approximate(self, queries: np.ndarray, query_mask: np.ndarray | None, threshold: float | None,
                          num_threads: int | None, which: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Stage B scores (PlaidSource.approximate) of the shard's documents ``docs``."""
        return self._stages(queries, query_mask, None, threshold, num_threads).approximate(which, offsets, docs)

    def stage_exact(self, queries: np.ndarray, query_mask: np.ndarray | None, num_threads: int | None,
                    which: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(exact scores (PlaidSource.exact), the documents' ids)."""
        scores = self._stages(queries, query_mask, None, None, num_threads).exact(which, offsets, docs)
        return scores, _search.to_ids(self.index, np.asarray(docs, np.int64))

    def ping(self) -> int:
        return len(self.index)
