"""Coalescing concurrent single-query searches of a sharded index into one fan-out per window."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .index import ShardedIndex


class QueryBatcher:
    """Coalesces concurrent ``search`` calls (from many threads) into one fan-out per window: callers
    block until their rows of the batched result come back. Results equal separate calls."""

    def __init__(self, index: ShardedIndex, k: int = 10, max_batch: int = 64, max_wait_ms: float = 2.0,
                 **params: Any) -> None:
        import queue
        import threading

        self.index, self.k, self.params = index, k, params
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1e3
        self._q: "queue.Queue[tuple[np.ndarray, Any]]" = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def search(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One query ``[Lq, dim]`` -> (scores [k], ids [k])."""
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._q.put((np.asarray(query, np.float32), fut))
        return fut.result()

    def _loop(self) -> None:
        import queue

        while not self._stop:
            try:
                first = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            items = [first]
            deadline = time.monotonic() + self.max_wait
            while len(items) < self.max_batch:
                try:
                    items.append(self._q.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            lq = max(q.shape[0] for q, _ in items)
            batch = np.zeros((len(items), lq, items[0][0].shape[1]), np.float32)
            mask = np.zeros((len(items), lq), bool)
            for i, (q, _) in enumerate(items):
                batch[i, : len(q)], mask[i, : len(q)] = q, True
            try:
                res = self.index.search(batch, self.k, query_mask=mask, **self.params)
                s, ids = res[0], res[1]
                for i, (_, fut) in enumerate(items):
                    fut.set_result((s[i], ids[i]))
            except Exception as e:  # noqa: BLE001 - every waiting caller gets the error
                for _, fut in items:
                    fut.set_exception(e)

    def close(self) -> None:
        self._stop = True
        self._thread.join()

