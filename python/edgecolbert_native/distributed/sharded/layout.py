"""The sharded index's directory: ``sharded.json`` (written last), ``codec.bin``, ``build.json`` (the plan a
resumed build must match) and one ordinary index directory per shard (``shard-NNNNN``); what the builds
(``build_sharded``, ``encode.index_corpus``) write and the index opens."""

from __future__ import annotations

import json
import os
import zlib

from ..._atomic import atomic_write

FORMAT = "edgecolbert-sharded"
VERSION = 1
TOP = "sharded.json"
CODEC = "codec.bin"


def shard_dir(i: int) -> str:
    return f"shard-{i:05d}"


def crc_file(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def atomic_json(path: str, obj: dict) -> None:
    atomic_write(path, json.dumps(obj, indent=1).encode())


def check_plan(path: str, plan: dict) -> None:
    """A resumed build must be the same build: ``build.json`` (written before the first shard) pins the
    shard count and the collection's size; a re-run with other inputs is refused instead of mixing shards.
    Options left unset (None) are left out, so the plans of builds made before an option existed stay valid."""
    plan = {k: v for k, v in plan.items() if v is not None}
    p = os.path.join(path, "build.json")
    if os.path.exists(p):
        with open(p) as f:
            old = json.load(f)
        # A plan written before the inputs' fingerprint existed has none to compare.
        mine = plan if "inputs_crc32" in old else {k: v for k, v in plan.items() if k != "inputs_crc32"}
        if old != mine:
            diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in mine.items() if old.get(k) != v)
            if not diff:
                diff = ", ".join(f"{k} {v!r} -> unset" for k, v in old.items() if k not in mine)
            raise ValueError(f"{path}: holds (part of) a different sharded build ({diff}); "
                             "use a new directory or delete this one")
    else:
        atomic_json(p, plan)
