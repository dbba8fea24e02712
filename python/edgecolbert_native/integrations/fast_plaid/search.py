"""``FastPlaid``: fast-plaid 1.4.7's index class (``fast_plaid.search.FastPlaid``) on this engine.

The directory ``index`` holds an ``edgecolbert_native.Index`` (its manifest, arrays and document store);
the documents' metadata live in that store, so ``filtering.where`` / ``filtering.get`` read them there.
Passage ids are fast-plaid's: positions 0..n-1 in insertion order, renumbered after a ``delete`` (document
k deleted, every later id drops by one). Underneath, the index keeps int ids that only grow (``create``
numbers from 0, ``update`` continues), so the live ids in index order are sorted and a passage id is a
position in them.

Mapping of fast-plaid's arguments (what fast-plaid computes with them, and what this engine does):

- ``search``: ``n_ivf_probe`` centroids probed per query token -> ``nprobe``; ``n_full_scores`` documents
  scored exactly -> ``rerank`` (and at least that many candidates: ``ndocs``); scores are exact MaxSim of the
  decoded vectors (fast-plaid casts queries to float16 first; this engine scores in float32, so scores agree
  to about 1e-3 relative). ``n_processes`` -> ``num_threads``; ``batch_size``, ``show_progress``: accepted,
  no effect (one native call per batch of queries, no progress bar).
- ``create``: ``nbits``, ``seed``, ``kmeans_niters`` -> ``Index.build``'s ``nbits``, ``seed``, ``niters``;
  ``n_samples_kmeans`` (documents sampled for k-means) -> as many tokens as those documents hold on average;
  ``max_points_per_centroid``, ``batch_size``, ``use_triton_kmeans``, ``start_from_scratch``,
  ``compress_only``: accepted, no effect (the k-means sample is 32 tokens per centroid, compression streams
  in chunks, there is no Triton, and the index is always complete).
- ``update``: appends a segment compressed with the existing centroids (``Index.add``). fast-plaid rebuilds
  indexes under ``start_from_scratch`` documents and grows its centroids from ``buffer_size`` outliers; here
  an index under 2^17 tokens is searched exhaustively (centroids do not matter there) and ``compact`` /
  a rebuild is the answer to a drifted collection. Those arguments are accepted, with no effect.
- ``device`` (a device or list of devices, ``cuda`` included) and ``low_memory``: accepted and kept in
  ``devices`` / ``low_memory``; this engine searches with its CPU kernels. ``freeze``/``unfreeze``: fast-plaid
  keeps two copies of the codes to drop one; this engine keeps one, so both only return ``self``.
- metadata values: ``date``/``datetime`` are stored as ISO text, as fast-plaid's SQLite stores them;
  booleans come back from ``filtering.get`` as True/False where fast-plaid returns 1/0 (equal in Python).
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Sequence

import numpy as np

from ...index import Index

# Deleted documents are compacted away once they are this share of the index (fast-plaid removes them at
# once; tombstones keep a delete cheap, compaction keeps searches from carrying dead documents).
COMPACT_FRACTION = 0.25


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _documents(embeddings: Any) -> list[np.ndarray]:
    """fast-plaid's document inputs (a list of ``[len, dim]`` or ``[1, len, dim]``, or one ``[n, len, dim]``)
    as a list of ``[len, dim]`` arrays."""
    if isinstance(embeddings, (list, tuple)):
        docs = [_to_numpy(e) for e in embeddings]
        docs = [d[0] if d.ndim == 3 and d.shape[0] == 1 else d for d in docs]
    else:
        arr = _to_numpy(embeddings)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"documents_embeddings must be [n, tokens, dim] or a list of [tokens, dim], got {arr.shape}")
        docs = list(arr)
    for i, d in enumerate(docs):
        if d.ndim != 2:
            raise ValueError(f"documents_embeddings[{i}] must be [tokens, dim], got shape {d.shape}")
    return docs


def _queries(queries: Any) -> tuple[np.ndarray, np.ndarray]:
    """Queries padded with zero rows, as fast-plaid pads them (a zero row adds 0 to MaxSim), and a mask."""
    if isinstance(queries, (list, tuple)):
        items = [_to_numpy(q) for q in queries]
        items = [q[0] if q.ndim == 3 else q for q in items]
        if not items:
            return np.zeros((0, 1, 1), np.float32), np.zeros((0, 1), bool)
        lq = max(len(q) for q in items)
        out = np.zeros((len(items), lq, items[0].shape[-1]), np.float32)
        mask = np.zeros((len(items), lq), bool)
        for i, q in enumerate(items):
            out[i, :len(q)], mask[i, :len(q)] = q, True
        return out, mask
    arr = np.asarray(_to_numpy(queries), np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"queries_embeddings must be [queries, tokens, dim] or a list of [tokens, dim], got {arr.shape}")
    return np.ascontiguousarray(arr), np.ones(arr.shape[:2], bool)


def _metadata_value(v: Any) -> Any:
    # sqlite3's default adapters, which fast-plaid's database relies on
    if isinstance(v, _dt.datetime):
        return v.isoformat(" ")
    if isinstance(v, _dt.date):
        return v.isoformat()
    return v


def _metadata(metadata: Sequence[dict] | None, n: int) -> list[dict] | None:
    if metadata is None:
        return None
    if len(metadata) != n:
        raise ValueError(f"The length of metadata ({len(metadata)}) must match the number of "
                         f"documents_embeddings ({n}).")
    return [None if m is None else {k: _metadata_value(v) for k, v in m.items()} for m in metadata]


def _as_tensor(a: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return a
    return torch.from_numpy(np.ascontiguousarray(a))


class FastPlaid:
    """fast-plaid's ``FastPlaid`` (1.4.7): create, update, delete, search an index in directory ``index``.
    See the module docstring for what each argument does here."""

    def __init__(self, index: str, device: str | list[str] | None = None, low_memory: bool = True,
                 **kwargs: Any) -> None:
        if isinstance(device, str):
            devices = [device]
        elif isinstance(device, list):
            devices = list(device)
        else:
            devices = ["cpu"]  # this engine's kernels; fast-plaid picks every visible GPU here
        self.devices = list(dict.fromkeys("cuda:0" if d == "cuda" else d for d in devices))
        self.index = os.fspath(index)
        self.low_memory = low_memory
        os.makedirs(self.index, exist_ok=True)
        self._index: Index | None = None
        self._reload()

    # ------------------------------------------------------------------ state
    def _reload(self) -> None:
        if os.path.exists(os.path.join(self.index, "manifest.json")):
            if self._index is None:
                self._index = Index.open(self.index, verify=False)
            else:
                self._index.reload()
        else:
            self._index = None

    def _require(self) -> Index:
        self._reload()
        if self._index is None:
            raise FileNotFoundError(f"Index metadata not found in '{self.index}'. Please create the index before searching.")
        return self._index

    def _live_ids(self) -> np.ndarray:
        return np.asarray(self._require().ids, np.int64)

    def close(self) -> None:
        """Drops the open index (fast-plaid unmaps its files here)."""
        self._index = None

    def __enter__(self) -> "FastPlaid":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def create(self, documents_embeddings: Any, kmeans_niters: int = 4, max_points_per_centroid: int = 256,
               nbits: int = 4, n_samples_kmeans: int | None = None, batch_size: int = 25_000, seed: int = 42,
               use_triton_kmeans: bool | None = None, metadata: list[dict[str, Any]] | None = None,
               start_from_scratch: int = 1000, compress_only: bool = False) -> "FastPlaid":
        """Builds the index from ``documents_embeddings`` (replacing any index in the directory)."""
        docs = _documents(documents_embeddings)
        records = _metadata(metadata, len(docs))
        sample_tokens = None
        if n_samples_kmeans is not None:
            avg = sum(len(d) for d in docs) / max(1, len(docs))
            sample_tokens = max(1, int(n_samples_kmeans * avg))
        Index.build(self.index, docs, nbits=nbits, seed=seed, niters=kmeans_niters, sample_tokens=sample_tokens,
                    metadata=records, overwrite=True, progress=False)
        self._index = None
        self._reload()
        return self

    def update(self, documents_embeddings: Any, metadata: list[dict[str, Any]] | None = None,
               batch_size: int = 25_000, kmeans_niters: int = 4, max_points_per_centroid: int = 256,
               n_samples_kmeans: int | None = None, seed: int = 42, start_from_scratch: int = 999,
               buffer_size: int = 100, use_triton_kmeans: bool | None = False) -> "FastPlaid":
        """Adds documents (passage ids continue after the last); creates the index when there is none."""
        self._reload()
        if self._index is None:
            return self.create(documents_embeddings, kmeans_niters=kmeans_niters, n_samples_kmeans=n_samples_kmeans,
                               seed=seed, metadata=metadata)
        docs = _documents(documents_embeddings)
        self._index.add(docs, metadata=_metadata(metadata, len(docs)), progress=False)
        return self

    def delete(self, subset: list[int], _delete_metadata: bool = True, _delete_buffer: bool = True) -> "FastPlaid":
        """Deletes the documents with these passage ids; later passage ids move down to close the gaps."""
        idx = self._require()
        live = self._live_ids()
        pids = np.unique(np.asarray(list(subset), np.int64))
        if len(pids) and (pids.min() < 0 or pids.max() >= len(live)):
            raise ValueError(f"delete: passage ids must be in [0, {len(live)}), got {pids[(pids < 0) | (pids >= len(live))][:5].tolist()}")
        if len(pids):
            idx.delete(live[pids])
            if len(idx.tombstones) > COMPACT_FRACTION * int(idx.manifest["num_docs"]):
                idx.compact(progress=False)
        return self

    def freeze(self) -> "FastPlaid":
        """fast-plaid drops its second copy of the codes here; this engine keeps one."""
        return self

    def unfreeze(self) -> "FastPlaid":
        return self

    # ------------------------------------------------------------------ reads
    def _subsets(self, subset: Any, nq: int) -> list[np.ndarray | None]:
        """fast-plaid's ``subset`` rules: an int or one list applies to every query, a list of lists gives
        one list per query, an empty list means no filter."""
        if subset is None:
            return [None] * nq
        if isinstance(subset, (int, np.integer)):
            subset = [int(subset)]
        subset = list(subset)
        if len(subset) == 0:
            return [None] * nq
        if isinstance(subset[0], (int, np.integer)):
            subset = [subset] * nq
        if len(subset) != nq:
            raise ValueError("Subset length must match number of queries.")
        return [np.asarray(list(s), np.int64) for s in subset]

    def _search(self, queries_embeddings: Any, top_k: int, n_full_scores: int, n_ivf_probe: int, subset: Any,
                n_processes: int | None) -> tuple[list[list[tuple[int, float]]], np.ndarray, np.ndarray]:
        idx = self._require()
        q, mask = _queries(queries_embeddings)
        live = self._live_ids()
        subsets = self._subsets(subset, len(q))
        ndocs = max(idx.default_params(top_k)["ndocs"], n_full_scores)
        out: list[list[tuple[int, float]]] = [[] for _ in range(len(q))]
        # queries that share a subset (all of them, usually) go to the index in one call
        groups: dict[bytes | None, list[int]] = {}
        for i, s in enumerate(subsets):
            groups.setdefault(None if s is None else s.tobytes(), []).append(i)
        for key, rows in groups.items():
            s = subsets[rows[0]]
            allowed = None
            if s is not None:
                s = s[(s >= 0) & (s < len(live))]
                allowed = live[s]
                if len(allowed) == 0:
                    continue
            scores, ids = idx.search(q[rows], k=top_k, nprobe=n_ivf_probe, ndocs=ndocs, rerank=n_full_scores,
                                     subset=allowed, query_mask=mask[rows], num_threads=n_processes)
            for r, sc, di in zip(rows, scores, ids):
                ok = di >= 0
                pids = np.searchsorted(live, di[ok])
                out[r] = [(int(p), float(v)) for p, v in zip(pids, sc[ok])]
        return out, q, mask

    def search(self, queries_embeddings: Any, top_k: int = 10, batch_size: int = 2000, n_full_scores: int = 4096,
               n_ivf_probe: int = 8, show_progress: bool = True, subset: list[list[int]] | list[int] | None = None,
               n_processes: int | None = None) -> list[list[tuple[int, float]]]:
        """Per query, up to ``top_k`` ``(passage_id, score)`` pairs, best first."""
        return self._search(queries_embeddings, top_k, n_full_scores, n_ivf_probe, subset, n_processes)[0]

    def search_token_scores(self, queries_embeddings: Any, top_k: int = 10, batch_size: int = 2000,
                            n_full_scores: int = 4096, n_ivf_probe: int = 8, show_progress: bool = True,
                            subset: list[list[int]] | list[int] | None = None,
                            n_processes: int | None = None) -> list[list[tuple[int, float, Any]]]:
        """As ``search``, with a third element per result: the ``[query_tokens, doc_tokens]`` dot products of
        the (padded) query with the document's decoded vectors (a torch tensor when torch is installed)."""
        results, q, _ = self._search(queries_embeddings, top_k, n_full_scores, n_ivf_probe, subset, n_processes)
        live = self._live_ids()
        idx = self._require()
        out = []
        for qi, row in enumerate(results):
            vecs = idx.decode(live[[p for p, _ in row]]) if row else []
            out.append([(p, s, _as_tensor(q[qi] @ v.T)) for (p, s), v in zip(row, vecs)])
        return out

    def get_embeddings(self, subset: list[int]) -> list[Any]:
        """The decoded vectors of these passages (torch tensors when torch is installed, else numpy)."""
        pids = np.asarray(_to_numpy(subset), np.int64).reshape(-1)  # a list, tuple, array or tensor
        if len(pids) == 0:
            return []
        live = self._live_ids()
        if pids.min() < 0 or pids.max() >= len(live):
            raise ValueError(f"get_embeddings: passage ids must be in [0, {len(live)})")
        return [_as_tensor(v) for v in self._require().decode(live[pids])]
