"""PyLate drop-in: an end-to-end index that ``pylate.retrieve.ColBERT(index=...)`` accepts, and a
``colbert_scores`` with PyLate's signature and results, both running on edgecolbert's kernels.

    from pylate import retrieve
    from edgecolbert_native.integrations.pylate import Index
    index = Index(index_folder="indexes", index_name="docs", override=True, nbits=4)
    index.add_documents(documents_ids=ids, documents_embeddings=model.encode(docs, is_query=False))
    results = retrieve.ColBERT(index=index).retrieve(queries_embeddings=model.encode(qs, is_query=True), k=10)

Results follow PyLate's format: one list per query of ``{"id": ..., "score": ...}`` dicts, best first.
The class subclasses ``pylate.indexes.base.Base`` when PyLate is installed (``is_end_to_end_index``
is True, so PyLate's retriever hands queries, k and subset straight to ``__call__``); without PyLate
it is the same class on ``object``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from typing import Any, Sequence

import numpy as np

from .._arrays import to_numpy

try:  # PyLate is optional: subclass its base when present so isinstance checks hold
    from pylate.indexes.base import Base as _PyLateBase
except Exception:  # noqa: BLE001 - any import failure means "no PyLate"
    _PyLateBase = object  # type: ignore[misc,assignment]


def _as_float32(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float32)


def _is_int(i: Any) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _pad_queries(queries_embeddings: Any) -> tuple[np.ndarray, np.ndarray]:
    """PyLate queries (an array/tensor [nq, Lq, dim], one [Lq, dim], or a ragged list) -> padded + mask."""
    if not isinstance(queries_embeddings, (list, tuple)):
        arr = _as_float32(queries_embeddings)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"queries_embeddings must be [nq, Lq, dim] or [Lq, dim], got shape {arr.shape}")
        return np.ascontiguousarray(arr), np.ones(arr.shape[:2], bool)
    items = [_as_float32(q) for q in queries_embeddings]
    # one query as [1, Lq, dim] in a list, as PyLate's encoder returns it and fast-plaid takes it
    items = [q[0] if q.ndim == 3 and len(q) == 1 else q for q in items]
    for q in items:
        if q.ndim != 2:
            raise ValueError(f"queries_embeddings: each query must be [Lq, dim], got shape {q.shape}")
    if not items:
        return np.zeros((0, 1, 1), np.float32), np.zeros((0, 1), bool)
    dim = items[0].shape[-1]
    lq = max(len(q) for q in items)
    out = np.zeros((len(items), lq, dim), np.float32)
    mask = np.zeros((len(items), lq), bool)
    for i, q in enumerate(items):
        out[i, : len(q)] = q
        mask[i, : len(q)] = True
    return out, mask


class Index(_PyLateBase):  # type: ignore[misc,valid-type]
    """An edgecolbert PLAID-style index with PyLate's index interface.

    Parameters mirror ``pylate.indexes.PLAID``: ``index_folder``/``index_name`` locate the index
    directory, ``override=True`` deletes an existing one. ``nbits`` (1, 2, 4, 8), ``num_centroids``
    and search parameters (``nprobe``, ``ndocs``, ``centroid_score_threshold``; defaults from the
    index size) go to :class:`edgecolbert_native.index.Index`. Document ids keep their type, as PyLate's
    do: integers (Python or numpy) stay integers when the first documents added have integer ids; any
    other id is stored as its ``str``.
    """

    def __init__(
        self,
        index_folder: str = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        nbits: int = 4,
        num_centroids: int | None = None,
        nprobe: int | None = None,
        ndocs: int | None = None,
        centroid_score_threshold: float | None = None,
        num_threads: int | None = None,
        show_progress: bool | None = None,
        **_: Any,
    ) -> None:
        self.path = os.path.join(index_folder, index_name)
        if override and os.path.exists(self.path):
            shutil.rmtree(self.path)
        self.nbits = nbits
        self.num_centroids = num_centroids
        self.search_params = {"nprobe": nprobe, "ndocs": ndocs, "centroid_score_threshold": centroid_score_threshold}
        self.num_threads = num_threads
        self.show_progress = show_progress
        self._index: Any = None
        # The first add builds the index: two threads making it at once would each build (the second
        # overwriting the first's documents), so it is made under this lock and later adds append.
        self._first_add = threading.Lock()
        from ..index import Index as NativeIndex

        self._native_cls = NativeIndex
        if os.path.exists(os.path.join(self.path, "manifest.json")):
            self._index = NativeIndex.open(self.path)

    @property
    def is_end_to_end_index(self) -> bool:
        return True

    @property
    def index(self) -> Any:
        """The underlying :class:`edgecolbert_native.index.Index` (None before the first add)."""
        return self._index

    def _ids(self, documents_ids: Any) -> list[Any]:
        """The caller's ids in the stored kind: ints for an index of integer ids (any other id is kept as
        it is there, and matches nothing), else strings. One str is one id, as in PyLate's add."""
        if isinstance(documents_ids, (str, bytes)) or not hasattr(documents_ids, "__iter__"):
            documents_ids = [documents_ids]
        ids = list(to_numpy(documents_ids))
        if self._index is not None:
            integer = self._index.id_kind == "int"
        else:
            integer = bool(ids) and all(_is_int(i) for i in ids)
        if integer:
            return [int(i) if _is_int(i) else i for i in ids]
        return [str(i) for i in ids]

    def add_documents(  # type: ignore[override]  # PyLate's indexes return self for chaining too
        self, documents_ids: Sequence[Any], documents_embeddings: Sequence[Any], batch_size: int = 2000, **_: Any
    ) -> "Index":
        """Adds documents (one ``[Ld, dim]`` array or tensor each). The first call trains the centroids
        and builds the index; later calls append with the same centroids. An id already in the index is
        an error (``update_documents`` replaces documents)."""
        return self._add(documents_ids, documents_embeddings, replace=False)

    def update_documents(
        self, documents_ids: Sequence[Any], documents_embeddings: Sequence[Any], **_: Any
    ) -> "Index":
        """Replaces the documents with these ids (ids not in the index are added) in one atomic commit:
        a crash leaves either the old documents or the new ones."""
        return self._add(documents_ids, documents_embeddings, replace=True)

    def _add(self, documents_ids: Any, documents_embeddings: Sequence[Any], replace: bool) -> "Index":
        embs = [_as_float32(e) for e in documents_embeddings]
        # Ids are read under the lock: their kind follows the index another thread may have just built.
        with self._first_add if self._index is None else contextlib.nullcontext():
            ids = self._ids(documents_ids)
            if len(ids) != len(embs):
                raise ValueError(f"add_documents: {len(ids)} ids for {len(embs)} documents")
            if not ids:
                return self
            if self._index is None:
                self._index = self._native_cls.build(self.path, embs, doc_ids=ids, nbits=self.nbits,
                                                     num_centroids=self.num_centroids, num_threads=self.num_threads,
                                                     progress=self.show_progress, overwrite=True)
                return self
        self._index.add(embs, doc_ids=ids, num_threads=self.num_threads, progress=self.show_progress, replace=replace)
        return self

    def remove_documents(self, documents_ids: Sequence[Any]) -> "Index":  # type: ignore[override]
        """Deletes the documents with these ids; ids not in the index are skipped, as PyLate does (also
        those another handle or process deleted after this one read the index)."""
        if self._index is not None:
            integer = self._index.id_kind == "int"
            ids = [i for i in self._ids(documents_ids) if _is_int(i) == integer]  # another kind is in no index
            if ids:
                self._index.delete(ids, missing_ok=True)
        return self

    def _known(self, ids: list[Any]) -> list[Any]:
        """The ids (of the stored kind) that are live in the index, in the index's order."""
        integer = self._index.id_kind == "int"
        index = self._index._snapshot()  # one generation for both reads (a writer thread may commit between)
        pos = index._positions([i for i in ids if _is_int(i) == integer], "Index", strict=False)
        return index._ids_all()[pos].tolist()

    def __call__(self, queries_embeddings: Any, k: int = 10, subset: Any = None, **_: Any) -> list[list[dict]]:
        """PyLate's end-to-end search: one list per query of ``{"id", "score"}`` dicts, best first.
        ``subset``: one list of ids for every query, or one list per query. An empty subset (or one of
        ids not in the index) finds nothing; PyLate 1.6's PLAID wrapper searches everything then."""
        q, mask = _pad_queries(queries_embeddings)
        if self._index is None or len(self._index) == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        k = min(int(k), len(self._index))
        groups: list[tuple[np.ndarray, Any]]
        if subset is not None and len(subset) and isinstance(subset[0], (list, tuple, np.ndarray)):
            if len(subset) != len(q):
                raise ValueError(f"subset has {len(subset)} lists for {len(q)} queries")
            groups = [(np.array([i]), self._known(self._ids(subset[i]))) for i in range(len(q))]
        else:
            groups = [(np.arange(len(q)), None if subset is None else self._known(self._ids(subset)))]
        results: list[list[dict]] = [[] for _ in range(len(q))]
        for rows, sub in groups:
            scores, ids = self._index.search(q[rows], k=k, subset=sub, query_mask=mask[rows],
                                             num_threads=self.num_threads, **self.search_params)
            for r, srow, irow in zip(rows, scores, ids):
                results[r] = [{"id": i, "score": float(s)} for s, i in zip(srow, irow.tolist())
                              if i is not None and np.isfinite(s)]
        return results

    def get_documents_embeddings(  # type: ignore[override]  # arrays, as PyLate's own PLAID returns
        self, documents_ids: Sequence[Sequence[Any]]
    ) -> list[list[np.ndarray]]:
        """Decompressed (unit-norm, float32) token embeddings, ``[query][document] -> [Ld, dim]``."""
        if self._index is None:
            raise KeyError("get_documents_embeddings: the index is empty")
        return [_embeddings(self._index, self._ids(row)) for row in documents_ids]


def _embeddings(index: Any, ids: list[Any]) -> list[np.ndarray]:
    """Decompressed token embeddings of the live documents ``ids``, in the order given."""
    from ..index._plaid import gather_positions

    if not ids:
        return []
    index = index._snapshot()  # positions and segments of one generation
    positions = index._positions(ids, "get_documents_embeddings", strict=True, ordered=True)
    codes, residuals, offsets = gather_positions(index.segments, positions, index.dim * index.nbits // 8)
    tokens = index.codec.decompress(codes, residuals)
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(ids))]


def colbert_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                   documents_mask: Any = None, **_: Any) -> Any:
    """``pylate.scores.colbert_scores`` on edgecolbert's kernels: ``[nq, nd]`` (a torch tensor when torch
    is installed, like PyLate's). Masked entries count as 0 exactly as PyLate computes them."""
    from ..kernels import maxsim_padded

    q = _as_float32(queries_embeddings)
    d = _as_float32(documents_embeddings)
    qm = None if queries_mask is None else np.asarray(_as_float32(queries_mask)) != 0
    dm = None if documents_mask is None else np.asarray(_as_float32(documents_mask)) != 0
    out = maxsim_padded(np.ascontiguousarray(q), np.ascontiguousarray(d), dm, query_mask=qm)
    try:
        import torch
    except ImportError:
        return out
    return torch.from_numpy(out)
