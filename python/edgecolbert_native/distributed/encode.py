"""Distributed encoding and indexing of a corpus with Ray Data.

    from edgecolbert_native.distributed.encode import index_corpus
    index_corpus(["part-0.jsonl", "part-1.parquet"], "big.index", model="...", num_shards=8,
                 ray_address="auto")

1. The corpus (JSONL or Parquet files with `id` and the text field) is read with Ray Data.
2. Training once: a random sample of documents (across all files) is encoded and the codec is trained
   on their token vectors, then saved as the sharded index's `codec.bin`.
3. Every row gets a shard number (its position modulo num_shards); `map_batches` runs the encoder in a
   pool of actors (CPU, or GPU with `num_gpus`), each batch comes back as CSR arrays.
4. Each shard is built as an ordinary index directory with the shared codec from its encoded batches,
   as a Ray task; a shard whose manifest already landed is skipped (resume after a crash), and
   `sharded.json` is written last.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .sharded import CODEC, TOP, ShardedIndex, _atomic_json, _crc_file, _ray, _shard_dir, FORMAT, VERSION


class _EncodeBatch:
    """Ray Data actor: loads the encoder once, turns a batch of rows into CSR token arrays."""

    def __init__(self, model: str, field: str, batch_size: int) -> None:
        from ..encoder import Encoder

        self.encoder = Encoder.from_pretrained(model)
        self.field, self.batch_size = field, batch_size

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch[self.field]]
        tokens, offsets = self.encoder.encode_documents(texts, batch_size=self.batch_size)
        t = tokens.numpy().astype(np.float16)
        o = offsets.numpy()
        # One row per document: its tokens as a flat float16 list plus the row count.
        return {"id": [str(i) for i in batch["id"]], "shard": batch["shard"],
                "ntok": np.diff(o), "tokens": [t[o[i]:o[i + 1]].reshape(-1) for i in range(len(texts))]}


def _read(ray: Any, paths: Sequence[str]) -> Any:
    import ray.data  # noqa: F401 - the Data library

    jsonl = [p for p in paths if not p.endswith(".parquet")]
    parquet = [p for p in paths if p.endswith(".parquet")]
    parts = []
    if jsonl:
        parts.append(ray.data.read_json(jsonl))
    if parquet:
        parts.append(ray.data.read_parquet(parquet))
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


def _build_shard(path: str, shard: int, rows: list[dict], dim: int, nbits: int) -> dict:
    from ..codec import ResidualCodec
    from ..index import Index

    d = os.path.join(path, _shard_dir(shard))
    manifest = os.path.join(d, "manifest.json")
    if not os.path.exists(manifest):
        rows = sorted(rows, key=lambda r: r["id"])  # a deterministic document order per shard
        lens = np.array([int(r["ntok"]) for r in rows], np.int64)
        tokens = np.concatenate([np.asarray(r["tokens"], np.float16).reshape(-1, dim) for r in rows])
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        Index.build(d, tokens, offsets, doc_ids=[r["id"] for r in rows], nbits=nbits,
                    codec=ResidualCodec.load(os.path.join(path, CODEC)), progress=False, overwrite=True)
    idx = Index.open(d, verify=False)
    return {"dir": _shard_dir(shard), "num_docs": len(idx), "manifest_crc32": _crc_file(manifest)}


def index_corpus(paths: Sequence[str], out: str, *, model: str, num_shards: int, nbits: int = 4,
                 field: str = "text", ray_address: str = "local", sample_docs: int = 512, batch_size: int = 32,
                 concurrency: int = 1, num_gpus: float = 0, seed: int = 0) -> ShardedIndex:
    """Encodes and indexes JSONL/Parquet files on Ray into a sharded index at ``out`` (resumable)."""
    from ..codec import ResidualCodec
    from ..encoder import Encoder
    from ..index.index import default_num_centroids

    ray = _ray(ray_address)
    os.makedirs(out, exist_ok=True)
    ds = _read(ray, list(paths))
    n = ds.count()
    if n < num_shards:
        raise ValueError(f"index_corpus: {n} documents cannot fill {num_shards} shards")
    codec_path = os.path.join(out, CODEC)
    if not os.path.exists(codec_path):
        frac = min(1.0, sample_docs / n)
        sample = ds.random_sample(frac, seed=seed).take(sample_docs)
        enc = Encoder.from_pretrained(model)
        tokens, _ = enc.encode_documents([str(r[field]) for r in sample], batch_size=batch_size)
        t = tokens.numpy()
        k = max(1, min(default_num_centroids(len(t) * n // max(1, len(sample))), len(t) - int(0.05 * len(t))))
        ResidualCodec.train(t, k, nbits, seed=seed).save(codec_path)
    dim = ResidualCodec.load(codec_path).dim
    ds = ds.map_batches(_add_shard(num_shards), batch_format="numpy")
    done = {i for i in range(num_shards) if os.path.exists(os.path.join(out, _shard_dir(i), "manifest.json"))}
    if done:  # resume: rows of finished shards are not encoded again
        ds = ds.filter(lambda row: int(row["shard"]) not in done)
    encoded = ds.map_batches(_EncodeBatch, fn_constructor_kwargs={"model": model, "field": field,
                                                                   "batch_size": batch_size},
                             batch_size=batch_size * 4, concurrency=concurrency, num_gpus=num_gpus,
                             batch_format="numpy")
    by_shard: dict[int, list[dict]] = {i: [] for i in range(num_shards)}
    for row in encoded.iter_rows():
        by_shard[int(row["shard"])].append({"id": row["id"], "ntok": row["ntok"], "tokens": row["tokens"]})
    build = ray.remote(_build_shard)
    entries = ray.get([build.remote(out, i, by_shard[i], dim, nbits) for i in range(num_shards)])
    top = {"format": FORMAT, "version": VERSION, "nbits": nbits, "num_shards": num_shards,
           "num_docs": int(sum(e["num_docs"] for e in entries)), "codec": CODEC,
           "codec_crc32": _crc_file(codec_path), "shards": entries}
    _atomic_json(os.path.join(out, TOP), top)
    return ShardedIndex.open(out, ray_address=ray_address)


def _add_shard(num_shards: int) -> Any:
    def add(batch: dict) -> dict:
        ids = [str(i) for i in batch["id"]]
        # A stable shard from the id (not the row position, which Ray Data does not fix).
        import zlib

        batch["shard"] = np.array([zlib.crc32(i.encode()) % num_shards for i in ids], np.int64)
        return batch

    return add
