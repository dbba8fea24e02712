"""Coalescing concurrent single-query searches of a sharded index into one fan-out per window."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...index import _search
from .index import ShardedIndex


class QueryBatcher:
    """Coalesces concurrent ``search`` calls (from many threads) into one fan-out per window: callers
    block until their rows of the batched result come back. Results equal separate calls."""

    def __init__(self, index: ShardedIndex, k: int = 10, max_batch: int = 64, max_wait_ms: float = 2.0,
                 **params: Any) -> None:
        import inspect
        import queue
        import threading

        fn = "QueryBatcher"
        if not isinstance(index, ShardedIndex):
            raise TypeError(f"{fn}: index must be a ShardedIndex, got {type(index).__name__}")
        # A misspelt keyword raises here (TypeError, as ShardedIndex.search would), not in every batch.
        inspect.signature(index.search).bind(None, k, **params)
        if "query_mask" in params:
            raise TypeError(f"{fn}: query_mask is not a batcher option (each query's own rows are its mask)")
        if params.get("allow_partial"):
            raise TypeError(f"{fn}: allow_partial=True is not a batcher option (a partial result would reach "
                            "callers as a complete one)")
        _search.check_k(k, fn)
        # Every other value as search() checks it: a bad one would fail every batch.
        index.check_options(k, **params)
        if isinstance(max_batch, (bool, np.bool_)) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
            raise ValueError(f"{fn}: max_batch must be a positive int, got {max_batch!r}")
        if (isinstance(max_wait_ms, (bool, np.bool_)) or not isinstance(max_wait_ms, (int, float, np.number))
                or not 0 <= max_wait_ms < float("inf")):
            raise ValueError(f"{fn}: max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
        self.index, self.k, self.params = index, k, params
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1e3
        self._q: "queue.Queue[tuple[np.ndarray, Any]]" = queue.Queue()
        self._stop = False
        self._closing = threading.Lock()  # a query is queued before close() starts, or refused
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def search(self, query: Any) -> tuple[np.ndarray, np.ndarray]:
        """One query ``[Lq, dim]`` -> (scores [k], ids [k])."""
        import concurrent.futures

        # Checked here, so that a malformed query fails its own caller, not the batch it would join.
        fn, dim = "QueryBatcher.search", self.index.dim
        q = _search.as_queries(query, fn, "query")
        if q.ndim != 2 or q.shape[1] != dim:
            raise ValueError(f"{fn}: one query [Lq, {dim}] per call, got shape {q.shape} "
                             "(a batch goes to ShardedIndex.search)")
        _search.check_finite(q[None], None, fn)  # a NaN would fail every query of its window
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._closing:
            if self._stop:
                raise RuntimeError(f"{fn}: the batcher is closed")
            self._q.put((q, fut))
        return fut.result()

    def _loop(self) -> None:
        import queue

        while not self._stop:
            try:
                first = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            items = [first]
            # Nothing may end this thread: every caller after it would wait for ever.
            try:
                deadline = time.monotonic() + self.max_wait
                while len(items) < self.max_batch:
                    try:
                        items.append(self._q.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                self._answer(items)
            except Exception as e:  # noqa: BLE001 - every caller still waiting gets the error
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)

    def _answer(self, items: list) -> None:
        """Searches the window's queries as one batch; a query that cannot join it fails alone."""
        dim = self.index.dim
        ok = []
        for q, fut in items:
            if q.ndim == 2 and q.shape[1] == dim:
                ok.append((q, fut))
            else:  # (search() refuses these: only a caller past its checks gets here)
                fut.set_exception(ValueError(f"QueryBatcher.search: one query [Lq, {dim}], got shape {q.shape}"))
        if not ok:
            return
        lq = max(q.shape[0] for q, _ in ok)
        batch = np.zeros((len(ok), lq, dim), np.float32)
        mask = np.zeros((len(ok), lq), bool)
        for i, (q, _) in enumerate(ok):
            batch[i, : len(q)], mask[i, : len(q)] = q, True
        res = self.index.search(batch, self.k, query_mask=mask, **self.params)
        s, ids = res[0], res[1]
        for i, (_, fut) in enumerate(ok):
            fut.set_result((s[i], ids[i]))

    def close(self) -> None:
        """Stops the batching thread; queries it had not taken fail with RuntimeError (never left waiting)."""
        import queue

        with self._closing:
            self._stop = True
        self._thread.join()
        while True:
            try:
                _, fut = self._q.get_nowait()
            except queue.Empty:
                break
            fut.set_exception(RuntimeError("QueryBatcher.search: the batcher was closed before this query ran"))

