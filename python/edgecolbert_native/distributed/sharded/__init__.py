"""A sharded index (one codec, one ordinary index directory per shard), split by concern: ``layout`` (the
directory format), ``build`` (``build_sharded``), ``actor`` (one shard's searcher, the Ray actor's body),
``index`` (``ShardedIndex``: opening, fan-out, the PLAID stage driver over the shards), ``batching``
(``QueryBatcher``). docs/distributed.md."""

from __future__ import annotations

from .batching import QueryBatcher
from .build import build_sharded
from .index import ShardedIndex, ShardError

__all__ = ["build_sharded", "ShardedIndex", "ShardError", "QueryBatcher"]
