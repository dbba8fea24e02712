"""Sharded index: build (shared codec, resumable), open, search with a merge of per-shard top-k."""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import Any, Sequence

import numpy as np

from .._arrays import to_numpy
from .._atomic import atomic_write
from ..index import Index, _search
from ..index._sources import make_source

FORMAT = "edgecolbert-sharded"
VERSION = 1
TOP = "sharded.json"
CODEC = "codec.bin"


class ShardError(RuntimeError):
    """A shard failed or timed out during a search (the message names the shard)."""


def _shard_dir(i: int) -> str:
    return f"shard-{i:05d}"


def _crc_file(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _atomic_json(path: str, obj: dict) -> None:
    atomic_write(path, json.dumps(obj, indent=1).encode())


def _shard_bounds(n: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous, balanced document ranges."""
    edges = np.linspace(0, n, num_shards + 1).round().astype(np.int64)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(num_shards)]


def _check_plan(path: str, plan: dict) -> None:
    """A resumed build must be the same build: ``build.json`` (written before the first shard) pins the
    shard count and the collection's size; a re-run with other inputs is refused instead of mixing shards."""
    p = os.path.join(path, "build.json")
    if os.path.exists(p):
        with open(p) as f:
            old = json.load(f)
        if old != plan:
            diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in plan.items() if old.get(k) != v)
            raise ValueError(f"{path}: holds (part of) a different sharded build ({diff}); "
                             "use a new directory or delete this one")
    else:
        _atomic_json(p, plan)


def _build_one(path: str, shard: int, tokens: Any, offsets: np.ndarray, ids: np.ndarray, codec_path: str,
               nbits: int, num_threads: int | None) -> dict:
    """Builds one shard directory with the shared codec; returns its entry for sharded.json."""
    from ..codec import ResidualCodec

    d = os.path.join(path, _shard_dir(shard))
    manifest = os.path.join(d, "manifest.json")
    if not os.path.exists(manifest):  # done shards are skipped: their manifest is the commit point
        codec = ResidualCodec.load(codec_path)
        Index.build(d, tokens, offsets, doc_ids=ids, nbits=nbits, codec=codec, num_threads=num_threads,
                    progress=False, overwrite=True)
    idx = Index.open(d, verify=False)
    return {"dir": _shard_dir(shard), "num_docs": len(idx), "num_tokens": int(idx.manifest["num_tokens"]),
            "manifest_crc32": _crc_file(manifest)}


def build_sharded(path: str | os.PathLike, doc_tokens: Any, doc_offsets: Any = None, doc_ids: Any = None, *,
                  num_shards: int, nbits: int = 4, num_centroids: int | None = None, sample_tokens: int | None = None,
                  seed: int = 0, ray_address: str | None = None, num_threads: int | None = None,
                  buckets: str = "lloyd") -> "ShardedIndex":
    """Trains one codec on a sample drawn across the whole collection, then builds ``num_shards``
    ordinary index directories with it (one after another, or as Ray tasks when ``ray_address`` is
    given: "local" starts a local cluster, "auto" or an address joins one). Inputs (``buckets`` too) as
    ``Index.build``.
    Re-running after an interruption skips the shards whose manifest landed."""
    from ..codec import ResidualCodec
    from ..index.index import default_num_centroids, default_sample_tokens

    fn = "build_sharded"
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"{fn}: num_shards must be a positive int, got {num_shards!r}")
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    src, ids = make_source(doc_tokens, doc_offsets, doc_ids, fn, path)
    try:
        n, T = src.num_docs, src.num_tokens
        if n < num_shards:
            raise ValueError(f"{fn}: {n} documents cannot fill {num_shards} shards")
        if ids is None:
            ids = np.arange(n, dtype=np.int64)
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        codec_path = os.path.join(path, CODEC)
        if not os.path.exists(codec_path):
            k = num_centroids or max(1, min(default_num_centroids(T), T - int(0.05 * T)))
            ns = min(T, sample_tokens or default_sample_tokens(T, k))
            rng = np.random.default_rng(seed)
            pos = np.sort(rng.choice(T, size=ns, replace=False)) if ns < T else np.arange(T)
            codec = ResidualCodec.train(src.gather(pos), k, nbits, seed=seed, num_threads=num_threads, buckets=buckets)
            codec.save(codec_path)
        offsets = np.asarray(src.offsets, np.int64)
        _check_plan(path, {"num_shards": num_shards, "num_docs": int(n), "num_tokens": int(T), "dim": int(src.dim),
                           "nbits": nbits})

        def job(i: int, a: int, b: int) -> tuple[Any, Any, Any]:
            """One shard's inputs, copied only when its turn comes; nothing for a shard already built."""
            if os.path.exists(os.path.join(path, _shard_dir(i), "manifest.json")):
                return None, None, None
            t0, t1 = int(offsets[a]), int(offsets[b])
            return np.ascontiguousarray(src.tokens(t0, t1)), offsets[a : b + 1] - t0, ids[a:b]

        bounds = _shard_bounds(n, num_shards)
        entries: list[Any] = []
        if ray_address is None:
            for i, (a, b) in enumerate(bounds):
                tokens, offs, sids = job(i, a, b)
                entries.append(_build_one(path, i, tokens, offs, sids, codec_path, nbits, num_threads))
                print(f"{fn}: shard {i + 1}/{num_shards} done", flush=True)
        else:
            ray = _ray(ray_address)
            remote = ray.remote(_build_one)
            futures = {}
            for i, (a, b) in enumerate(bounds):
                tokens, offs, sids = job(i, a, b)
                futures[remote.remote(path, i, tokens, offs, sids, codec_path, nbits, num_threads)] = i
            entries = [None] * num_shards
            pending = list(futures)
            while pending:  # progress as shards land, in whatever order the cluster finishes them
                ready, pending = ray.wait(pending, num_returns=1)
                i = futures[ready[0]]
                entries[i] = ray.get(ready[0])
                print(f"{fn}: shard {i} done ({num_shards - len(pending)}/{num_shards})", flush=True)
    finally:
        src.close()
    top = {"format": FORMAT, "version": VERSION, "nbits": nbits, "num_shards": num_shards,
           "num_docs": int(sum(e["num_docs"] for e in entries)), "codec": CODEC,
           "codec_crc32": _crc_file(os.path.join(path, CODEC)), "shards": entries}
    _atomic_json(os.path.join(path, TOP), top)
    return ShardedIndex.open(path, ray_address=ray_address)


def _ray(address: str) -> Any:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("ray_address needs Ray: pip install 'edgecolbert-native[distributed]'") from e
    if not ray.is_initialized():
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


class _ShardSearcher:
    """One shard, memory-mapped, answering batches of queries (the Ray actor's body too). Besides a whole
    search, it answers the three PLAID stages separately (``plaid_*``), so that the coordinator can pick
    each stage's survivors over the whole collection, exactly as one index would."""

    def __init__(self, directory: str, verify: bool = True) -> None:
        self.index = Index.open(directory, verify=verify)

    def search(self, queries: np.ndarray, k: int, query_mask: np.ndarray | None, params: dict) -> tuple:
        k = min(k, max(1, len(self.index)))
        return self.index.search(queries, k=k, query_mask=query_mask, **params)

    def info(self, subset: Any) -> dict:
        idx = self.index
        return {"positions": int(len(idx.live)),
                "allowed": int(_search.allowed_mask(idx, subset, "ShardedIndex.search").sum()),
                "tokens": int(sum(int(s.offsets[-1]) for s in idx.segments)),
                "num_centroids": int(idx.num_centroids)}

    def plaid_candidates(self, queries: np.ndarray, query_mask: np.ndarray | None, probes: Sequence[int],
                         subset: Any, ndocs: int, num_threads: int | None, pool: bool = False) -> list:
        """Per query (probe 0: skipped -> None): (best ndocs local positions, their stage-A estimates,
        how many allowed documents the probed lists held, and with ``pool`` how many they held
        unfiltered: _search.candidates)."""
        idx = self.index
        allowed = _search.allowed_mask(idx, subset, "ShardedIndex.search")
        out: list = [None] * len(queries)
        wanted = [p > 0 for p in probes]
        for i, qi, S in _search.per_query(idx, queries, query_mask, num_threads, wanted):
            if len(qi):
                out[i] = _search.candidates(idx, S, int(probes[i]), allowed, ndocs, pool=pool)
        return out

    def plaid_approximate(self, queries: np.ndarray, query_mask: np.ndarray | None, positions: Sequence[Any],
                          threshold: float | None, num_threads: int | None) -> list:
        """Per query: stage-B scores of the given local positions (None: skipped)."""
        idx = self.index
        out: list = [None] * len(queries)
        wanted = [p is not None and len(p) > 0 for p in positions]
        for i, qi, S in _search.per_query(idx, queries, query_mask, num_threads, wanted):
            if len(qi):
                out[i] = _search.approximate(idx, S, np.asarray(positions[i], np.int64), threshold, num_threads)
        return out

    def plaid_exact(self, queries: np.ndarray, query_mask: np.ndarray | None, positions: Sequence[Any],
                    num_threads: int | None) -> list:
        """Per query: (MaxSim of the given local positions, their ids) (None: skipped)."""
        idx = self.index
        all_ids = idx._ids_all()
        out: list = [None] * len(queries)
        for i in range(len(queries)):
            pos = positions[i]
            if pos is None or not len(pos):
                continue
            qi = queries[i] if query_mask is None else queries[i][query_mask[i]]
            if len(qi):
                pos = np.asarray(pos, np.int64)
                out[i] = (_search.exact(idx, qi, pos, num_threads), all_ids[pos])
        return out

    def ping(self) -> int:
        return len(self.index)


class ShardedIndex:
    """The shards named by ``sharded.json``; ``search`` merges their top-k into the global top-k."""

    def __init__(self, path: str, top: dict, searchers: list[Any], ray: Any = None) -> None:
        self.path, self.top, self.searchers, self._ray = path, top, searchers, ray

    @classmethod
    def open(cls, path: str | os.PathLike, *, ray_address: str | None = None, verify: bool = True) -> "ShardedIndex":
        path = os.fspath(path)
        top_path = os.path.join(path, TOP)
        if not os.path.exists(top_path):
            raise FileNotFoundError(f"{path}: no {TOP}: not a complete sharded index (re-run build_sharded to resume)")
        with open(top_path, "rb") as f:
            raw_top = f.read()
        try:
            top = json.loads(raw_top.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{top_path}: not valid JSON ({e})") from None
        if not isinstance(top, dict) or top.get("format") != FORMAT or top.get("version") != VERSION:
            raise ValueError(f"{top_path}: not an {FORMAT} v{VERSION} manifest")
        try:
            return cls._open_checked(path, top_path, top, ray_address, verify)
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
            raise ValueError(f"{top_path}: malformed manifest: {e!r}") from None

    @classmethod
    def _open_checked(cls, path: str, top_path: str, top: dict, ray_address: str | None,
                      verify: bool) -> "ShardedIndex":
        if verify and "codec_crc32" in top and _crc_file(os.path.join(path, CODEC)) != top["codec_crc32"]:
            raise ValueError(f"{os.path.join(path, CODEC)} does not match {TOP} (changed or corrupt)")
        num_tokens, id_kinds = 0, set()
        for e in top["shards"]:
            d = os.path.normpath(os.path.join(path, e["dir"]))
            if os.path.dirname(d) != os.path.normpath(path):
                raise ValueError(f"{top_path}: shard directory {e['dir']!r} escapes the index directory")
            with open(os.path.join(d, "manifest.json"), "rb") as f:
                raw = f.read()
            if verify and zlib.crc32(raw) != e["manifest_crc32"]:
                raise ValueError(f"{d}/manifest.json does not match {TOP} (changed or corrupt)")
            m = json.loads(raw)
            num_tokens += int(m["num_tokens"])
            id_kinds.add(m["id_kind"])
        top["num_tokens"] = num_tokens
        top["id_kind"] = id_kinds.pop() if len(id_kinds) == 1 else "str"
        dirs = [os.path.join(path, e["dir"]) for e in top["shards"]]
        if ray_address is None:
            return cls(path, top, [_ShardSearcher(d, verify) for d in dirs])
        ray = _ray(ray_address)
        actor = ray.remote(_ShardSearcher)
        searchers = [actor.remote(d, verify) for d in dirs]
        ray.get([s.ping.remote() for s in searchers])
        return cls(path, top, searchers, ray)

    def default_params(self, k: int = 10) -> dict:
        """The parameters one index over the whole collection would use (``Index.default_params`` on
        the total token count); ``search`` gives them to every shard unless the caller sets them."""
        from types import SimpleNamespace

        from ..index import _search

        whole = SimpleNamespace(manifest={"num_tokens": int(self.top["num_tokens"])}, nbits=int(self.top["nbits"]))
        return _search.default_params(whole, k)

    def __len__(self) -> int:
        return int(self.top["num_docs"])

    @property
    def num_shards(self) -> int:
        return len(self.searchers)

    def search(self, queries: Any, k: int = 10, *, query_mask: Any = None, allow_partial: bool = False,
               timeout: float | None = None, **params: Any) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[int]]:
        """Global top-k: ``(scores [nq, k], ids [nq, k])`` like ``Index.search`` (``params`` go to every
        shard: nprobe, ndocs, centroid_score_threshold, rerank, subset, exhaustive, num_threads). The result is the one
        an ``Index`` over the whole collection gives with the same parameters (PLAID's stages pick their
        survivors over all shards: up to four fan-out rounds). A shard that fails, or does not answer a
        round within ``timeout`` seconds, raises ShardError naming it; with ``allow_partial=True`` the
        result is merged from the shards that answered and a third value lists the failed shards."""
        q = np.asarray(to_numpy(queries), dtype=np.float32)
        if q.ndim == 2:
            q = q[None]
        mask = None if query_mask is None else np.asarray(query_mask, bool).reshape(q.shape[:2])
        # Every shard searches with the parameters one index over the whole collection would use (a
        # shard's own defaults would follow its smaller token count and prune harder).
        d = self.default_params(k)
        for key in ("nprobe", "ndocs", "centroid_score_threshold"):
            if params.get(key) is None:
                params[key] = d[key]
        if params["centroid_score_threshold"] is None:
            params["centroid_score_threshold"] = -np.inf  # Index.search: -inf = no centroid pruning
        run = _Fanout(self, timeout, allow_partial)
        subset = params.get("subset")
        infos = run.call("info", lambda i: (subset,))
        n_allowed = sum(v["allowed"] for v in infos.values())
        tokens = sum(v["tokens"] for v in infos.values())
        # The path one index over the whole collection would take, taken by every shard.
        if params.get("exhaustive") is None:
            params["exhaustive"] = tokens <= _search.EXHAUSTIVE_TOKENS
        ndocs = int(params["ndocs"])
        if n_allowed == 0 or params["exhaustive"] or (subset is not None and n_allowed <= 4 * ndocs):
            # Exact on every shard (exhaustive, or every allowed document scored): merging top-k is exact.
            results = run.call("search", lambda i: (q, k, mask, params))
            scores, ids = _merge([results[i] for i in sorted(results)], q.shape[0], k, self.top["id_kind"])
        else:
            scores, ids = self._plaid(run, q, mask, k, params, infos, n_allowed)
        return (scores, ids, sorted(run.failed)) if allow_partial else (scores, ids)

    def _plaid(self, run: "_Fanout", q: np.ndarray, mask: np.ndarray | None, k: int, params: dict,
               infos: dict, n_allowed: int) -> tuple[np.ndarray, np.ndarray]:
        """PLAID over the shards with each stage's survivors chosen over the whole collection: the
        documents, estimates and scores are those one index over the same data computes (every stage is
        per document, and selections break ties by global position), so the result is that index's."""
        nq = q.shape[0]
        nprobe, ndocs, threshold = int(params["nprobe"]), int(params["ndocs"]), params["centroid_score_threshold"]
        threshold = None if threshold is None or threshold <= -np.inf else float(threshold)
        nt = params.get("num_threads")
        subset = params.get("subset")
        K = next(iter(infos.values()))["num_centroids"]
        base, b = {}, 0
        for i in range(self.num_shards):  # global position = shard's first position + local position
            base[i] = b
            b += infos[i]["positions"] if i in infos else int(self.top["shards"][i].get("num_docs", 0))
        rerank = _search.rerank_count(k, ndocs, params.get("rerank"), "ShardedIndex.search")
        # Stage A, widening the probe for the queries whose pool is short (as Index.search does).
        probes = np.full(nq, nprobe, np.int64)
        pools: list = [None] * nq
        targets = np.zeros(nq, np.int64)
        todo = np.ones(nq, bool)
        first = True
        while todo.any():
            got = run.call("plaid_candidates",
                           lambda i: (q, mask, np.where(todo, probes, 0), subset, ndocs, nt, first and subset is None))
            for j in np.flatnonzero(todo):
                parts = [(base[i] + r[j][0], r[j][1], r[j][2], r[j][3]) for i, r in got.items() if r[j] is not None]
                count = sum(p[2] for p in parts)
                if first:  # the global unfiltered pool at nprobe (_search.pool_target)
                    targets[j] = _search.pool_target(ndocs, n_allowed, sum(p[3] for p in parts), subset is not None)
                pos = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
                est = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.float32)
                if count < targets[j] and probes[j] < K and parts:
                    probes[j] = min(probes[j] * 4, K)
                    continue
                todo[j] = False
                pools[j] = _search._select(est, pos, ndocs)[1]
            first = False
        # Stage B on the global pool, then the re-rank of the global survivors.
        need = [p is not None and len(p) > rerank for p in pools]
        if any(need):
            got = run.call("plaid_approximate",
                           lambda i: (q, mask, [self._local(pools[j], base, i) if need[j] else None for j in range(nq)],
                                      threshold, nt))
            for j in np.flatnonzero(need):
                pos = np.concatenate([base[i] + self._local(pools[j], base, i) for i in sorted(got)])
                approx = np.concatenate([got[i][j] if got[i][j] is not None else np.empty(0, np.float32)
                                         for i in sorted(got)])
                pools[j] = _search._select(approx, pos, rerank)[1]
        got = run.call("plaid_exact", lambda i: (q, mask, [None if p is None else self._local(p, base, i) for p in pools], nt))
        int_ids = self.top["id_kind"] == "int"
        out_s = np.full((nq, k), -np.inf, np.float32)
        out_i = np.full((nq, k), -1, np.int64) if int_ids else np.full((nq, k), None, object)
        for qn in range(nq):
            hits = [(base[i] + np.sort(self._local(pools[qn], base, i)), got[i][qn]) for i in sorted(got)
                    if pools[qn] is not None and got[i][qn] is not None]
            if not hits:
                continue
            pos = np.concatenate([h[0] for h in hits])
            sc = np.concatenate([h[1][0] for h in hits])
            ids = np.concatenate([np.asarray(h[1][1], object if not int_ids else np.int64) for h in hits])
            order = np.lexsort((pos, -sc))[:k]
            out_s[qn, :len(order)], out_i[qn, :len(order)] = sc[order], ids[order]
        return out_s, out_i

    def _local(self, pos: np.ndarray, base: dict, shard: int) -> np.ndarray:
        """The positions of ``pos`` (global) that fall in ``shard``, as its local positions, sorted."""
        lo = base[shard]
        hi = base[shard + 1] if shard + 1 in base else np.iinfo(np.int64).max
        sel = np.sort(pos[(pos >= lo) & (pos < hi)])
        return sel - lo

    def close(self) -> None:
        if self._ray is not None:
            for s in self.searchers:
                self._ray.kill(s)
            self.searchers = []


class _Fanout:
    """Calls one method on every live shard (in process, or on Ray actors in parallel), each round waiting
    at most ``timeout`` seconds for all of them; a failing or late shard raises ShardError, or with
    ``allow_partial`` is dropped from this and every later round of the search and listed in ``failed``.
    (A per-round limit, so that the shards that answered still get the time for the later rounds.)"""

    def __init__(self, index: "ShardedIndex", timeout: float | None, allow_partial: bool) -> None:
        self.index, self.allow_partial, self.timeout = index, allow_partial, timeout
        self.failed: set[int] = set()

    def _fail(self, i: int, e: BaseException) -> None:
        if not self.allow_partial:
            raise ShardError(f"shard {i} ({self.index.top['shards'][i]['dir']}): {type(e).__name__}: {e}") from e
        self.failed.add(i)

    def call(self, method: str, args: Any) -> dict:
        """{shard: result} for the shards that answered; ``args(shard)`` gives the call's arguments."""
        live = [i for i in range(self.index.num_shards) if i not in self.failed]
        out: dict = {}
        ray = self.index._ray
        if ray is None:
            for i in live:
                try:
                    out[i] = getattr(self.index.searchers[i], method)(*args(i))
                except Exception as e:  # noqa: BLE001 - reported per shard
                    self._fail(i, e)
            return out
        futures = {i: getattr(self.index.searchers[i], method).remote(*args(i)) for i in live}
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        for i, f in futures.items():
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                out[i] = ray.get(f, timeout=left)
            except Exception as e:  # noqa: BLE001 - actor died, task error or timeout
                self._fail(i, e)
        return out


class QueryBatcher:
    """Coalesces concurrent ``search`` calls (from many threads) into one fan-out per window: callers
    block until their rows of the batched result come back. Results equal separate calls."""

    def __init__(self, index: ShardedIndex, k: int = 10, max_batch: int = 64, max_wait_ms: float = 2.0,
                 **params: Any) -> None:
        import queue
        import threading

        self.index, self.k, self.params = index, k, params
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1e3
        self._q: "queue.Queue[tuple[np.ndarray, Any]]" = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def search(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One query ``[Lq, dim]`` -> (scores [k], ids [k])."""
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._q.put((np.asarray(query, np.float32), fut))
        return fut.result()

    def _loop(self) -> None:
        import queue

        while not self._stop:
            try:
                first = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            items = [first]
            deadline = time.monotonic() + self.max_wait
            while len(items) < self.max_batch:
                try:
                    items.append(self._q.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            lq = max(q.shape[0] for q, _ in items)
            batch = np.zeros((len(items), lq, items[0][0].shape[1]), np.float32)
            mask = np.zeros((len(items), lq), bool)
            for i, (q, _) in enumerate(items):
                batch[i, : len(q)], mask[i, : len(q)] = q, True
            try:
                res = self.index.search(batch, self.k, query_mask=mask, **self.params)
                s, ids = res[0], res[1]
                for i, (_, fut) in enumerate(items):
                    fut.set_result((s[i], ids[i]))
            except Exception as e:  # noqa: BLE001 - every waiting caller gets the error
                for _, fut in items:
                    fut.set_exception(e)

    def close(self) -> None:
        self._stop = True
        self._thread.join()


def _merge(results: Sequence[tuple[np.ndarray, np.ndarray]], nq: int, k: int,
           id_kind: str = "int") -> tuple[np.ndarray, np.ndarray]:
    """Per-shard top-k lists (in shard order) -> global top-k; ties keep the earlier shard first (shards
    hold contiguous document ranges, so ties break by document order, as in one index)."""
    if not results:
        empty = np.full((nq, k), -1, np.int64) if id_kind == "int" else np.full((nq, k), None, object)
        return np.full((nq, k), -np.inf, np.float32), empty
    s = np.concatenate([r[0] for r in results], axis=1)
    ids = np.concatenate([np.asarray(r[1]) for r in results], axis=1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    out_s = np.take_along_axis(s, order, axis=1)
    out_i = np.take_along_axis(ids, order, axis=1)
    if out_s.shape[1] < k:
        pad = k - out_s.shape[1]
        out_s = np.concatenate([out_s, np.full((nq, pad), -np.inf, np.float32)], axis=1)
        out_i = np.concatenate([out_i, np.full((nq, pad), -1 if out_i.dtype.kind in "iu" else None, out_i.dtype)], axis=1)
    return out_s.astype(np.float32), out_i
