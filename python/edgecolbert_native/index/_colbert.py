"""Import of an index directory that colbert-ai (ColBERTv2 / PLAID, 0.2.x) wrote.

colbert-ai's layout: ``plan.json`` / ``metadata.json`` (``config.dim``, ``config.nbits``,
``num_chunks``), ``centroids.pt`` ``[K, dim]``, ``buckets.pt`` = ``(bucket_cutoffs, bucket_weights)``,
per chunk ``{i}.codes.pt`` (int ``[n_i]``), ``{i}.residuals.pt`` (uint8 ``[n_i, dim*nbits/8]``),
``doclens.{i}.json`` (list of ints), and ``ivf.pid.pt`` = ``(pids, lengths)`` grouped by centroid
(written by ``optimize_ivf``; when only the older embedding-id ``ivf.pt`` is there, the IVF is rebuilt
from the codes, which gives the same lists). A passage of length 0 is one colbert-ai's ``IndexUpdater``
removed (its encoder never makes an empty one): it is imported deleted (a tombstone), so its id is never
returned, as in colbert-ai. The residual bytes are copied as they are: this
package's codec is byte-compatible with colbert-ai's. Document ids are colbert's passage ids 0..n-1
unless ``doc_ids`` is given. Reading ``.pt`` files needs torch.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .._arrays import to_numpy
from ._docstore import check_documents, write_store
from ._segments import SegmentWriter, normalize_ids
from ._storage import FORMAT, FORMAT_VERSION, WriterLock, begin_replace, collect_after_failure, collect_garbage, \
    referenced_files, write_array, write_manifest


def _load_pt(path: str) -> Any:
    try:
        import torch
    except ImportError:
        raise RuntimeError(f"import_colbert: reading {path} needs torch (pip install torch)") from None
    if not os.path.exists(path):
        raise FileNotFoundError(f"import_colbert: {path} is missing; not a colbert-ai index directory?")
    # weights_only: colbert-ai saves plain tensors (and tuples of them); never unpickle arbitrary objects
    # from a directory that may come from anywhere.
    return torch.load(path, map_location="cpu", weights_only=True)


def _np(t: Any) -> np.ndarray:
    return np.asarray(to_numpy(t))


def write_colbert_import(colbert_dir: str | os.PathLike, path: str | os.PathLike, *, doc_ids: Any = None,
                         overwrite: bool = False) -> str:
    """Writes this library's index at ``path`` from colbert-ai's index at ``colbert_dir``; returns ``path``
    (``Index.import_colbert`` opens it)."""
    fn = "import_colbert"
    src = os.fspath(colbert_dir)
    meta_path = os.path.join(src, "metadata.json")
    if not os.path.exists(meta_path):
        meta_path = os.path.join(src, "plan.json")
    with open(meta_path) as f:
        meta = json.load(f)
    cfg = meta.get("config", {})
    dim, nbits, num_chunks = int(cfg["dim"]), int(cfg["nbits"]), int(meta["num_chunks"])
    centroids = _np(_load_pt(os.path.join(src, "centroids.pt"))).astype(np.float32)
    cutoffs, weights = (_np(b).astype(np.float32) for b in _load_pt(os.path.join(src, "buckets.pt")))
    if centroids.shape[1] != dim:
        raise ValueError(f"{fn}: centroids.pt has dim {centroids.shape[1]}, metadata says {dim}")

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, list[int]]]:
        for i in range(num_chunks):
            codes = _np(_load_pt(os.path.join(src, f"{i}.codes.pt"))).astype(np.int64)
            res = _np(_load_pt(os.path.join(src, f"{i}.residuals.pt"))).astype(np.uint8)
            with open(os.path.join(src, f"doclens.{i}.json")) as f:
                yield codes, res, [int(v) for v in json.load(f)]

    return write_import(path, fn, dim=dim, nbits=nbits, centroids=centroids, cutoffs=cutoffs, weights=weights,
                        chunks=chunks(), ivf=lambda n: _read_ivf(os.path.join(src, "ivf.pid.pt"), len(centroids), n, fn),
                        doc_ids=doc_ids, overwrite=overwrite, provenance={"colbert_dir": os.path.abspath(src)},
                        empty_deleted=True)


def write_import(path: str | os.PathLike, fn: str, *, dim: int, nbits: int, centroids: np.ndarray, cutoffs: np.ndarray,
                 weights: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray, list[int]]],
                 ivf: Callable[[int], tuple[np.ndarray, np.ndarray] | None], doc_ids: Any, overwrite: bool,
                 provenance: dict, texts: Any = None, metadata: Any = None, empty_deleted: bool = False) -> str:
    """Writes an index (one segment, generation 1) at ``path`` from another engine's ColBERTv2 codec and chunks
    of ``(codes, packed residuals, document lengths)`` (the residual bytes copied as they are), with the
    documents' texts and metadata when given; returns ``path``. ``empty_deleted``: documents of no tokens are
    written as deleted (the engine's way to mark a removed document). ``ivf(n)``: the engine's IVF for ``n``
    documents as (lists, offsets), checked, or None to build it from the codes (the same lists)."""
    path = os.fspath(path)
    K = len(centroids)
    if centroids.ndim != 2 or centroids.shape[1] != dim:
        raise ValueError(f"{fn}: the centroids have shape {centroids.shape}, the index dim {dim}")
    if cutoffs.shape != ((1 << nbits) - 1,) or weights.shape != (1 << nbits,):
        raise ValueError(f"{fn}: {len(cutoffs)} bucket cutoffs and {len(weights)} weights do not fit nbits {nbits}")
    rb = dim * nbits // 8
    os.makedirs(path, exist_ok=True)
    with WriterLock(path):
        # As Index.build: the index being replaced stays whole until the new manifest lands (its files kept,
        # the new ones under the next generation's names), and a failed import removes what it wrote.
        old = begin_replace(path, overwrite, fn)
        gen = int(old["generation"]) + 1 if old else 1
        try:
            _write_import_files(path, fn, gen, dim, nbits, K, rb, centroids, cutoffs, weights, chunks, ivf, doc_ids,
                                provenance, texts, metadata, empty_deleted)
        except BaseException:
            collect_after_failure(path)
            raise
    return path


def _write_import_files(path: str, fn: str, gen: int, dim: int, nbits: int, K: int, rb: int, centroids: np.ndarray,
                        cutoffs: np.ndarray, weights: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray, list[int]]],
                        ivf: Callable[[int], tuple[np.ndarray, np.ndarray] | None], doc_ids: Any, provenance: dict,
                        texts: Any, metadata: Any, empty_deleted: bool) -> None:
    """write_import's files and manifest, with the writer lock held."""
    with SegmentWriter(path, f"g{gen}-s0", K, rb) as seg:
        doclens: list[int] = []
        for i, (codes, res, dl) in enumerate(chunks):
            if res.shape != (len(codes), rb) or sum(dl) != len(codes):
                raise ValueError(f"{fn}: chunk {i}: {len(codes)} codes, residuals {res.shape}, "
                                 f"doclens summing to {sum(dl)} do not agree (dim {dim}, nbits {nbits})")
            if len(codes) and (codes.min() < 0 or codes.max() >= K):
                raise ValueError(f"{fn}: chunk {i}: code out of range [0, {K})")
            seg.write(codes, res, np.repeat(np.arange(len(doclens), len(doclens) + len(dl), dtype=np.int64), dl))
            doclens.extend(dl)
        n, T = len(doclens), int(sum(doclens))
        ids, kind = normalize_ids(doc_ids, n, None, 0, fn)
        check_documents(texts, metadata, n, fn)
        segment = seg.finish(np.asarray(doclens, np.int32), ids, ivf(n))
    deleted = np.flatnonzero(np.asarray(doclens, np.int64) == 0) if empty_deleted else np.empty(0, np.int64)
    store = write_store(path, f"g{gen}-s0-docs.db", texts, metadata, n, fn)
    if store is not None:
        segment["docs"] = store
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "generation": gen,
        "dim": dim, "nbits": nbits, "num_centroids": K, "id_kind": kind,
        "next_int_id": int(ids.max()) + 1 if kind == "int" and n else 0,
        "num_docs": n, "num_live": n - len(deleted), "num_tokens": T,
        "codec": {
            "centroids": write_array(path, f"g{gen}-centroids.bin", np.asarray(centroids, np.float32)),
            "bucket_cutoffs": write_array(path, f"g{gen}-bucket_cutoffs.bin", np.asarray(cutoffs, np.float32)),
            "bucket_weights": write_array(path, f"g{gen}-bucket_weights.bin", np.asarray(weights, np.float32)),
        },
        "segments": [segment],
        "tombstones": write_array(path, f"g{gen}-tombstones.bin", deleted.astype(np.int64)),
        "imported_from": provenance,
    }
    write_manifest(path, manifest)
    collect_garbage(path, referenced_files(manifest))


def _read_ivf(ivf_path: str, K: int, n: int, fn: str) -> tuple[np.ndarray, np.ndarray] | None:
    """colbert-ai's ``ivf.pid.pt`` as (ivf, ivf_offsets), checked; None when the file is absent (the IVF
    is then built from the codes, which gives the same lists)."""
    if not os.path.exists(ivf_path):
        return None
    pids, lengths = (_np(t).astype(np.int64) for t in _load_pt(ivf_path))
    # colbert-ai's optimize_ivf pads the pid list with max(lengths) zeros (StridedTensor padding, so the
    # last list can be read at full stride), and IndexUpdater's removals shorten the lists but keep that
    # padding: only the first sum(lengths) count, and the tail must be that padding.
    used = int(lengths.sum()) if len(lengths) else 0
    if len(lengths) != K:
        raise ValueError(f"{fn}: ivf.pid.pt has {len(lengths)} list lengths for {K} centroids")
    if (len(lengths) and lengths.min() < 0) or used > len(pids):
        raise ValueError(f"{fn}: ivf.pid.pt's list lengths (negative, or summing to {used}) do not fit its "
                         f"{len(pids)} pids")
    if np.any(pids[used:] != 0):
        raise ValueError(f"{fn}: ivf.pid.pt holds {len(pids) - used} pids past its lists that are not padding")
    pids = pids[:used]
    if len(pids) and (pids.min() < 0 or pids.max() >= n):
        raise ValueError(f"{fn}: ivf.pid.pt names pids outside the {n} passages")
    ivf_offsets = np.zeros(K + 1, np.int64)
    np.cumsum(lengths, out=ivf_offsets[1:])
    return pids.astype(np.int32), ivf_offsets
