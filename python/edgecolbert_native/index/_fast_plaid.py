"""Import of an index directory that fast-plaid (1.4.x, lightonai/fast-plaid) wrote.

fast-plaid's layout (its Rust ``create``/``update``/``delete`` and Python ``load.py``): ``metadata.json``
(``nbits``, ``num_chunks``, ``num_documents``, ``frozen`` after ``freeze()``), ``centroids.npy`` (float16
``[K, dim]``, normalised), ``bucket_cutoffs.npy`` / ``bucket_weights.npy`` (float32, ColBERTv2's residual
buckets), per chunk ``{i}.codes.npy`` (int64), ``{i}.residuals.npy`` (uint8 ``[n_i, dim*nbits/8]``) and
``doclens.{i}.json``; ``merged_codes.npy`` / ``merged_residuals.npy`` (the chunks concatenated, padded at
the end; the only copy in a frozen index); ``ivf.npy`` / ``ivf_lengths.npy``; and, when documents were
given metadata, ``metadata.db`` (SQLite, table ``METADATA``, one row per document keyed by ``_subset_``).
Other files (``embeddings.npy``, ``buffer.npy``: fast-plaid's raw-vector caches for its own updates,
``avg_residual.npy``, ``cluster_threshold.npy``) are not needed and not read.

The residuals are packed the way colbert-ai packs them (bucket bits least significant first, bytes
big-endian) and decoded the same way (centroid + bucket weights, renormalised), so the bytes are copied
as they are. Document ids are fast-plaid's: positions 0..n-1 in its current order (after its deletions).
The IVF is rebuilt from the codes (one entry per (centroid, document) pair, which is what fast-plaid's
``optimize_ivf`` writes). The metadata rows become the documents' metadata (NULL columns left out).
No torch is needed: every file is ``.npy``, JSON or SQLite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from typing import Any, Iterator

import numpy as np

from ._colbert import write_import


def _load_npy(src: str, name: str, fn: str) -> np.ndarray:
    path = os.path.join(src, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{fn}: {path} is missing; not a fast-plaid index directory?")
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: the directory may come from anywhere
    except ValueError as e:
        raise ValueError(f"{fn}: {path} is not a plain .npy array ({e})") from None


def _read_json(path: str, fn: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{fn}: {path} is missing; not a fast-plaid index directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{fn}: {path} is not valid JSON ({e})") from None


def read_fast_plaid_metadata(src: str, n: int, fn: str) -> list[dict | None] | None:
    """The rows of fast-plaid's ``metadata.db`` as one dict per document (None where it has no row), or
    None when there is no database. Opened read-only."""
    path = os.path.join(src, "metadata.db")
    if not os.path.exists(path):
        return None
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            cur = conn.execute("SELECT * FROM METADATA ORDER BY _subset_")
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{fn}: {path} is not a fast-plaid metadata database ({e})") from None
    if "_subset_" not in cols:
        raise ValueError(f"{fn}: {path} has no _subset_ column")
    key = cols.index("_subset_")
    out: list[dict | None] = [None] * n
    for row in rows:
        pos = row[key]
        if not isinstance(pos, int) or not 0 <= pos < n:
            raise ValueError(f"{fn}: {path}: _subset_ {pos!r} is not a document of this index (0..{n - 1})")
        rec = {}
        for c, v in zip(cols, row):
            if c == "_subset_" or v is None:
                continue
            if isinstance(v, bytes):
                raise ValueError(f"{fn}: {path}: column {c!r} of document {pos} holds a BLOB, which is not JSON")
            rec[c] = v
        out[pos] = rec
    return out


def write_fast_plaid_import(fast_plaid_dir: str | os.PathLike, path: str | os.PathLike, *, doc_ids: Any = None,
                            overwrite: bool = False) -> str:
    """Writes this library's index at ``path`` from fast-plaid's index at ``fast_plaid_dir`` (vectors as
    codes and residuals, document order, metadata); returns ``path`` (``Index.import_fast_plaid`` opens it)."""

    fn = "import_fast_plaid"
    src = os.fspath(fast_plaid_dir)
    meta = _read_json(os.path.join(src, "metadata.json"), fn)
    if not isinstance(meta, dict):
        raise ValueError(f"{fn}: {src}/metadata.json is not a JSON object")
    try:
        nbits, num_chunks = int(meta["nbits"]), int(meta["num_chunks"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{fn}: {src}/metadata.json lacks nbits/num_chunks ({e!r})") from None
    if nbits not in (1, 2, 4, 8):
        raise ValueError(f"{fn}: nbits {nbits} in {src}/metadata.json; this library reads 1, 2, 4 or 8")
    centroids = _load_npy(src, "centroids.npy", fn).astype(np.float32)
    cutoffs = _load_npy(src, "bucket_cutoffs.npy", fn).astype(np.float32).reshape(-1)
    weights = _load_npy(src, "bucket_weights.npy", fn).astype(np.float32).reshape(-1)
    if centroids.ndim != 2:
        raise ValueError(f"{fn}: centroids.npy has shape {centroids.shape}, expected [K, dim]")
    dim = int(centroids.shape[1])
    doclens = []
    for i in range(num_chunks):
        dl = _read_json(os.path.join(src, f"doclens.{i}.json"), fn)
        if not isinstance(dl, list) or not all(isinstance(v, int) and v >= 0 for v in dl):
            raise ValueError(f"{fn}: {src}/doclens.{i}.json is not a list of document lengths")
        doclens.append(dl)
    n = sum(len(d) for d in doclens)
    frozen = bool(meta.get("frozen", False))

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, list[int]]]:
        if frozen:  # freeze() dropped the chunks: the merged arrays (padded at the end) are the only copy
            codes = _load_npy(src, "merged_codes.npy", fn)
            res = _load_npy(src, "merged_residuals.npy", fn)
            start = 0
            for dl in doclens:
                end = start + sum(dl)
                if end > len(codes) or end > len(res):
                    raise ValueError(f"{fn}: merged_codes.npy/merged_residuals.npy hold fewer tokens than doclens")
                yield codes[start:end].astype(np.int64), res[start:end].astype(np.uint8), dl
                start = end
            return
        for i, dl in enumerate(doclens):
            yield (_load_npy(src, f"{i}.codes.npy", fn).astype(np.int64).reshape(-1),
                   _load_npy(src, f"{i}.residuals.npy", fn).astype(np.uint8), dl)

    metadata = read_fast_plaid_metadata(src, n, fn)
    return write_import(path, fn, dim=dim, nbits=nbits, centroids=centroids, cutoffs=cutoffs, weights=weights,
                        chunks=chunks(), ivf=lambda n: None, doc_ids=doc_ids, overwrite=overwrite,
                        provenance={"fast_plaid_dir": os.path.abspath(src)}, metadata=metadata)
