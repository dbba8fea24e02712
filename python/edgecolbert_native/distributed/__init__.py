"""A sharded index, built and searched one shard after another in one process or fanned out over Ray.

    from edgecolbert_native.distributed import build_sharded, ShardedIndex
    build_sharded("big.index", doc_tokens, doc_offsets, doc_ids, num_shards=4, nbits=4)   # ray_address=None
    sx = ShardedIndex.open("big.index", ray_address="local")       # one Ray actor per shard
    scores, ids = sx.search(queries, k=10)

Layout: ``path/sharded.json`` (format, version, the shared codec's file and checksum, and per shard its
directory, document count and the CRC-32 of its manifest) beside ``path/codec.bin`` and one ordinary
index directory per shard (``shard-00000`` ...), all built with the same codec. ``sharded.json`` is written
last, atomically: until it lands the sharded index does not exist; a shard is done when its own manifest
landed, so a re-run of ``build_sharded`` skips finished shards (resume after a crash).

Search takes ``Index.search``'s arguments and checks them before any shard is asked. It makes one index's
mode decision over all shards (an info round: allowed documents and tokens). The exhaustive modes merge the
shards' own top-k lists (higher score first, ties to the lower shard, then the shard's order); the PLAID mode
runs the one stage driver over the shards (candidates, approximate, exact: one fan-out round each, merged
by global position). Either way the result equals one index's over the same data with the same codec
(docs/distributed.md).

Ray is optional (the ``distributed`` extra) and imported only when ``ray_address`` is given.
"""

from __future__ import annotations

from .sharded import QueryBatcher, ShardedIndex, ShardError, build_sharded

__all__ = ["build_sharded", "ShardedIndex", "ShardError", "QueryBatcher"]
