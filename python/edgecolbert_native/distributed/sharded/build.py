"""Building a sharded index: one codec trained on a sample across the collection, then one ordinary index
directory per shard (one after another, or as Ray tasks), resumable shard by shard."""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from ...index import Index
from ...index._segments import normalize_ids
from ...index._sources import RangeSource, make_source, remove_stale_spills
from .actor import connect_ray
from .index import ShardedIndex
from .layout import CODEC, FORMAT, TOP, VERSION, atomic_json, check_plan, crc_file, shard_dir


def _shard_bounds(n: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous, balanced document ranges."""
    edges = np.linspace(0, n, num_shards + 1).round().astype(np.int64)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(num_shards)]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _fingerprint(src: Any, ids: np.ndarray, offsets: np.ndarray) -> int:
    """CRC-32 of the ids, the offsets and 16 runs of 64 token rows spread over the collection (a few
    small reads, whatever its size)."""
    crc = zlib.crc32(np.ascontiguousarray(ids).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(offsets, np.int64).tobytes(), crc)
    T = int(offsets[-1])
    for a in np.unique(np.linspace(0, max(T - 64, 0), 16).astype(np.int64)) if T else ():
        crc = zlib.crc32(np.ascontiguousarray(src.tokens(int(a), min(int(a) + 64, T)), np.float32).tobytes(), crc)
    return crc


def _build_one(path: str, shard: int, tokens: Any, offsets: np.ndarray | None, ids: np.ndarray, codec_path: str,
               nbits: int, num_threads: int | None) -> dict:
    """Builds one shard directory with the shared codec (tokens: an array with its offsets, or a source of
    the shard's documents read in chunks, offsets None); returns its entry for sharded.json."""
    from ...codec import ResidualCodec

    d = os.path.join(path, shard_dir(shard))
    manifest = os.path.join(d, "manifest.json")
    if not os.path.exists(manifest):  # done shards are skipped: their manifest is the commit point
        codec = ResidualCodec.load(codec_path)
        Index.build(d, tokens, offsets, doc_ids=ids, nbits=nbits, codec=codec, num_threads=num_threads,
                    progress=False, overwrite=True)
    idx = Index.open(d, verify=False)
    return {"dir": shard_dir(shard), "num_docs": len(idx), "num_tokens": int(idx.manifest["num_tokens"]),
            "manifest_crc32": crc_file(manifest)}


def build_sharded(path: str | os.PathLike, doc_tokens: Any, doc_offsets: Any = None, doc_ids: Any = None, *,
                  num_shards: int, nbits: int = 4, num_centroids: int | None = None, sample_tokens: int | None = None,
                  seed: int = 0, ray_address: str | None = None, num_threads: int | None = None,
                  buckets: str = "lloyd") -> "ShardedIndex":
    """Trains one codec on a sample drawn across the whole collection, then builds ``num_shards``
    ordinary index directories with it (one after another, or as Ray tasks when ``ray_address`` is
    given: "local" starts a local cluster, "auto" or an address joins one). Inputs (``buckets`` too) as
    ``Index.build``.
    Re-running after an interruption skips the shards whose manifest landed."""
    from ...index.index import _train_codec, check_nbits, default_codec_centroids, default_sample_tokens

    fn = "build_sharded"
    if not _is_int(num_shards) or num_shards < 1:
        raise ValueError(f"{fn}: num_shards must be a positive int, got {num_shards!r}")
    num_shards = int(num_shards)
    nbits = check_nbits(nbits, fn)
    if sample_tokens is not None and (not _is_int(sample_tokens) or sample_tokens < 1):
        raise ValueError(f"{fn}: sample_tokens must be a positive int or None (the default), got {sample_tokens!r}")
    if not _is_int(seed):
        raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__}")
    if ray_address is not None and not isinstance(ray_address, str):
        raise TypeError(f"{fn}: ray_address must be None, \"local\", \"auto\" or an address, got "
                        f"{type(ray_address).__name__}")
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    remove_stale_spills(path)  # a killed run's spill: nothing else collects this directory
    src, ids = make_source(doc_tokens, doc_offsets, doc_ids, fn, path)
    try:
        n, T = src.num_docs, src.num_tokens
        if n < num_shards:
            raise ValueError(f"{fn}: {n} documents cannot fill {num_shards} shards")
        # Index.build's rules over the whole collection (one per document, one kind, unique), before any
        # work: each shard's build would see only its own slice (a duplicate across shards, a short list).
        ids, _ = normalize_ids(ids, n, None, 0, fn)
        codec_path = os.path.join(path, CODEC)
        if not os.path.exists(codec_path):
            k = default_codec_centroids(T) if num_centroids is None else num_centroids
            if not 1 <= k <= T:  # as Index.build: 0 is an error, not the default
                raise ValueError(f"{fn}: num_centroids must be in [1, {T}] (the token count), got {k}")
            ns = min(T, sample_tokens or default_sample_tokens(T, k))
            # Index.build's sampler: the same codec as ResidualCodec.train on the sample, which it holds once
            # (train would copy it to shuffle it).
            codec = _train_codec(src, ns, k, nbits, 4, seed, num_threads, None, buckets)
            codec.save(codec_path)
        offsets = np.asarray(src.offsets, np.int64)
        # An explicit count is part of the plan: a re-run asking for another must not reuse the codec trained above.
        # The fingerprints (ids, offsets, a fixed sample of token rows) refuse a re-run on other inputs of the
        # same sizes, whose shards would mix with the first run's.
        check_plan(path, {"num_shards": num_shards, "num_docs": int(n), "num_tokens": int(T), "dim": int(src.dim),
                           "nbits": nbits, "num_centroids": None if num_centroids is None else int(num_centroids),
                           "inputs_crc32": _fingerprint(src, ids, offsets)})

        def built(i: int) -> bool:
            return os.path.exists(os.path.join(path, shard_dir(i), "manifest.json"))

        bounds = _shard_bounds(n, num_shards)
        entries: list[Any] = []
        if ray_address is None:
            # Each shard reads its documents from the collection's source chunk by chunk: nothing is copied.
            for i, (a, b) in enumerate(bounds):
                entries.append(_build_one(path, i, RangeSource(src, a, b), None, ids[a:b], codec_path, nbits,
                                          num_threads))
                print(f"{fn}: shard {i + 1}/{num_shards} done", flush=True)
        else:
            # A Ray task gets its shard's tokens as an argument (a worker may not see this machine's files): a
            # copy per shard, made when the shard is submitted, and at most `in_flight` shards submitted at a
            # time, so the object store never holds the whole collection.
            ray = connect_ray(ray_address)
            remote = ray.remote(_build_one)
            in_flight = max(1, min(num_shards - 1, int(ray.cluster_resources().get("CPU", 1))))
            entries = [None] * num_shards
            futures: dict[Any, int] = {}
            todo = list(enumerate(bounds))
            while todo or futures:
                while todo and len(futures) < in_flight:
                    i, (a, b) = todo.pop(0)
                    t0, t1 = int(offsets[a]), int(offsets[b])
                    tokens = None if built(i) else np.ascontiguousarray(src.tokens(t0, t1))
                    futures[remote.remote(path, i, tokens, offsets[a:b + 1] - t0, ids[a:b], codec_path, nbits,
                                          num_threads)] = i
                    del tokens
                ready, _ = ray.wait(list(futures), num_returns=1)
                i = futures.pop(ready[0])
                entries[i] = ray.get(ready[0])
                print(f"{fn}: shard {i} done ({num_shards - len(todo) - len(futures)}/{num_shards})", flush=True)
    finally:
        src.close()
    top = {"format": FORMAT, "version": VERSION, "nbits": nbits, "num_shards": num_shards,
           "num_docs": int(sum(e["num_docs"] for e in entries)), "codec": CODEC,
           "codec_crc32": crc_file(os.path.join(path, CODEC)), "shards": entries}
    atomic_json(os.path.join(path, TOP), top)
    return ShardedIndex.open(path, ray_address=ray_address)
