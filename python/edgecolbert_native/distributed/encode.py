"""Distributed encoding and indexing of a corpus with Ray Data.

    from edgecolbert_native.distributed.encode import index_corpus
    index_corpus(["part-0.jsonl", "part-1.parquet"], "big.index", model="...", num_shards=8,
                 ray_address="auto")

1. The corpus (JSONL or Parquet files with `id` and the text field) is read with Ray Data.
2. Training once: a random sample of documents (across all files) is encoded and the codec is trained
   on their token vectors, then saved as the sharded index's `codec.bin`.
3. Every row gets a shard number (CRC-32 of its id modulo num_shards); `map_batches` runs the encoder
   in a pool of actors (CPU, or GPU with `num_gpus`); each actor writes its batch's token vectors as
   float16 part files per shard (``out/parts/shard-NNNNN/``) and returns only counts (progress).
4. Each shard is built as an ordinary index directory with the shared codec from its part files, as a
   Ray task; a shard whose manifest already landed is skipped (resume after a crash: its rows are not
   even encoded again), and `sharded.json` is written last. ``out`` must be a directory every node of
   the cluster sees (a shared file system), as the shard directories are written there.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Sequence

import numpy as np

from .._arrays import to_numpy
from .._atomic import atomic_write
from .sharded.actor import connect_ray
from .sharded.index import ShardedIndex
from .sharded.layout import CODEC, FORMAT, TOP, VERSION, atomic_json, check_plan, crc_file, shard_dir


def _actor_device(num_gpus: float) -> str:
    """Where an encoder actor runs: Ray gives an actor with num_gpus > 0 its GPU(s) through
    CUDA_VISIBLE_DEVICES, so "cuda" is that actor's own device."""
    return "cuda" if num_gpus > 0 else "cpu"


class _EncodeBatch:
    """Ray Data actor: loads the encoder once; encodes a batch of rows and writes each shard's share of it
    as one part file (float16 CSR + ids) under ``out/parts/shard-NNNNN/``; returns only counts, so no
    token vector passes through the driver."""

    def __init__(self, model: str, field: str, batch_size: int, parts: str, device: str = "cpu") -> None:
        from ..encoder import Encoder

        self.encoder = Encoder.from_pretrained(model, device=device)
        self.field, self.batch_size, self.parts = field, batch_size, parts

    def __call__(self, batch: dict) -> dict:
        import hashlib
        import io

        texts = [str(t) for t in batch[self.field]]
        ids = np.array([str(i) for i in batch["id"]])
        shard = np.asarray(batch["shard"], np.int64)
        tokens, offsets = self.encoder.encode_documents(texts, batch_size=self.batch_size)
        t = to_numpy(tokens).astype(np.float16)
        o = to_numpy(offsets).astype(np.int64)
        for s in np.unique(shard):
            rows = np.flatnonzero(shard == s)
            lens = o[rows + 1] - o[rows]
            keep = np.concatenate([np.arange(o[r], o[r + 1]) for r in rows])
            d = os.path.join(self.parts, shard_dir(int(s)))
            os.makedirs(d, exist_ok=True)
            # The part's name is a hash of its ids: the same batch written twice (a retried task) lands
            # on the same name instead of duplicating documents.
            name = hashlib.sha1("\0".join(ids[rows]).encode()).hexdigest()[:20]
            buf = io.BytesIO()
            np.savez(buf, tokens=t[keep], offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                     ids=ids[rows])
            atomic_write(os.path.join(d, f"part-{name}.npz"), buf.getvalue())
        return {"shard": shard, "ntok": np.diff(o)}


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


def _build_shard(path: str, shard: int, nbits: int) -> dict | None:
    """Builds one shard from its part files (streamed: Index.build spills the batches once, memory stays
    bounded) with the shared codec; skipped when its manifest already landed. None for an empty shard."""
    import shutil

    from ..codec import ResidualCodec
    from ..index import Index

    d = os.path.join(path, shard_dir(shard))
    manifest = os.path.join(d, "manifest.json")
    parts_dir = os.path.join(path, "parts", shard_dir(shard))
    if not os.path.exists(manifest):
        parts = sorted(p for p in os.listdir(parts_dir) if p.endswith(".npz")) if os.path.isdir(parts_dir) else []
        if not parts:
            return None

        def batches() -> Any:
            for p in parts:
                with np.load(os.path.join(parts_dir, p)) as z:
                    yield z["tokens"], z["offsets"], [str(i) for i in z["ids"]]

        Index.build(d, batches(), nbits=nbits, codec=ResidualCodec.load(os.path.join(path, CODEC)),
                    progress=False, overwrite=True)
    shutil.rmtree(parts_dir, ignore_errors=True)  # the shard holds them now
    idx = Index.open(d, verify=False)
    return {"dir": shard_dir(shard), "num_docs": len(idx), "num_tokens": int(idx.manifest["num_tokens"]),
            "manifest_crc32": crc_file(manifest)}


def index_corpus(paths: Sequence[str], out: str, *, model: str, num_shards: int, nbits: int = 4,
                 field: str = "text", ray_address: str = "local", sample_docs: int = 512, batch_size: int = 32,
                 concurrency: int | None = None, num_gpus: float = 0, seed: int = 0,
                 num_centroids: int | None = None) -> ShardedIndex:
    """Encodes and indexes JSONL/Parquet files on Ray into a sharded index at ``out`` (resumable).
    ``concurrency``: encoder actors (default one per live node of the cluster); ``num_gpus`` per actor (with
    ``num_gpus > 0`` each actor encodes on its GPU, ``device="cuda"``). ``num_centroids``: the codec's
    centroid count (default PLAID's rule for the collection's estimated tokens; docs/index.md, "The centroid
    count"); the codec is trained on the tokens of ``sample_docs`` documents, which must hold at least that many."""
    from ..codec import ResidualCodec
    from ..encoder import Encoder
    from ..index.index import check_nbits, default_codec_centroids

    nbits = check_nbits(nbits, "index_corpus")
    ray = connect_ray(ray_address)
    if concurrency is None:
        concurrency = max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
    os.makedirs(out, exist_ok=True)
    ds = _read(ray, list(paths))
    n = ds.count()
    if n < num_shards:
        raise ValueError(f"index_corpus: {n} documents cannot fill {num_shards} shards")
    # An explicit count is part of the plan: a re-run asking for another must not reuse the codec trained here.
    check_plan(out, {"num_shards": num_shards, "num_docs": int(n), "nbits": nbits, "model": str(model),
                      "field": field, "num_centroids": None if num_centroids is None else int(num_centroids)})
    codec_path = os.path.join(out, CODEC)
    if not os.path.exists(codec_path):
        frac = min(1.0, sample_docs / n)
        sample = ds.random_sample(frac, seed=seed).take(sample_docs)
        enc = Encoder.from_pretrained(model)
        tokens, _ = enc.encode_documents([str(r[field]) for r in sample], batch_size=batch_size)
        t = to_numpy(tokens)
        if num_centroids is None:
            k = default_codec_centroids(len(t) * n // max(1, len(sample)), len(t))
        elif not 1 <= num_centroids <= len(t):
            raise ValueError(f"index_corpus: num_centroids must be in [1, {len(t)}] (the tokens of the "
                             f"{len(sample)} sampled documents the codec is trained on; raise sample_docs), "
                             f"got {num_centroids}")
        else:
            k = int(num_centroids)
        ResidualCodec.train(t, k, nbits, seed=seed, buckets="lloyd").save(codec_path)
    ds = ds.map_batches(_add_shard(num_shards), batch_format="numpy")
    done = {i for i in range(num_shards) if os.path.exists(os.path.join(out, shard_dir(i), "manifest.json"))}
    parts = os.path.join(out, "parts")
    for i in set(range(num_shards)) - done:  # parts of an interrupted run: encoded again below
        shutil.rmtree(os.path.join(parts, shard_dir(i)), ignore_errors=True)
    if done:  # resume: rows of finished shards are not encoded again
        ds = ds.filter(lambda row: int(row["shard"]) not in done)
        print(f"index_corpus: resuming, {len(done)} of {num_shards} shards already built", flush=True)
    encoded = ds.map_batches(_EncodeBatch, fn_constructor_kwargs={"model": model, "field": field,
                                                                   "batch_size": batch_size, "parts": parts,
                                                                   "device": _actor_device(num_gpus)},
                             batch_size=batch_size * 4, concurrency=concurrency, num_gpus=num_gpus,
                             batch_format="numpy")
    ndocs = ntok = 0
    last = time.monotonic()
    for b in encoded.iter_batches(batch_format="numpy"):  # counts only; the vectors went to part files
        ndocs += len(b["ntok"])
        ntok += int(np.sum(b["ntok"]))
        if time.monotonic() - last > 10:
            print(f"index_corpus: encoded {ndocs:,} of {n:,} documents ({ntok:,} tokens)", flush=True)
            last = time.monotonic()
    print(f"index_corpus: encoded {ndocs:,} documents ({ntok:,} tokens); building {num_shards} shards", flush=True)
    build = ray.remote(_build_shard)
    futures = {build.remote(out, i, nbits): i for i in range(num_shards)}
    results: list[dict | None] = [None] * num_shards
    pending = list(futures)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        results[futures[ready[0]]] = ray.get(ready[0])
        print(f"index_corpus: shard {futures[ready[0]]} done ({num_shards - len(pending)}/{num_shards})", flush=True)
    entries = [e for e in results if e is not None]  # a shard no id hashed to is left out
    top = {"format": FORMAT, "version": VERSION, "nbits": nbits, "num_shards": len(entries),
           "num_docs": int(sum(e["num_docs"] for e in entries)), "codec": CODEC,
           "codec_crc32": crc_file(codec_path), "shards": entries}
    atomic_json(os.path.join(out, TOP), top)
    return ShardedIndex.open(out, ray_address=ray_address)


def _add_shard(num_shards: int) -> Any:
    def add(batch: dict) -> dict:
        ids = [str(i) for i in batch["id"]]
        # A stable shard from the id (not the row position, which Ray Data does not fix).
        import zlib

        batch["shard"] = np.array([zlib.crc32(i.encode()) % num_shards for i in ids], np.int64)
        return batch

    return add
