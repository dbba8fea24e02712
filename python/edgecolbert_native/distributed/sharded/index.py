"""Opening and searching a sharded index: the fan-out to the shards and, for PLAID, the index's own stage
driver run over the shards (``_ShardStages``), so that every stage picks its survivors over the whole
collection exactly as one index over it does."""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import Any, Sequence

import numpy as np

from ... import _native
from ..._arrays import check_threads
from ...index import _search
from ...index._docstore import FilterError, check_where
from ...index.index import id_array
from .actor import FN, ShardSearcher, connect_ray
from .layout import CODEC, FORMAT, TOP, VERSION, crc_file


class _Refused(ValueError):
    """A check of sharded.json or a shard failed: a ValueError with its own message (not "malformed")."""


class ShardError(RuntimeError):
    """A shard failed or timed out during a search (the message names the shard)."""


class ShardedIndex:
    """The shards named by ``sharded.json``; ``search`` merges their top-k into the global top-k."""

    def __init__(self, path: str, top: dict, searchers: list[Any], ray: Any = None) -> None:
        self.path, self.top, self.searchers, self._ray = path, top, searchers, ray
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike, *, ray_address: str | None = None, verify: bool = True) -> "ShardedIndex":
        if ray_address is not None and not isinstance(ray_address, str):
            raise TypeError(f"ShardedIndex.open: ray_address must be None, \"local\", \"auto\" or an address, "
                            f"got {type(ray_address).__name__}")
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
            dirs = cls._read_top(path, top_path, top, verify)
        except _Refused:
            raise  # the checks' own messages (a mismatch, a corrupt file), naming their file
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError, ValueError) as e:
            raise ValueError(f"{top_path}: malformed manifest: {e!r}") from None
        if ray_address is None:
            return cls(path, top, [ShardSearcher(d, verify) for d in dirs])
        ray = connect_ray(ray_address)
        actor = ray.remote(ShardSearcher)
        searchers = [actor.remote(d, verify) for d in dirs]
        ray.get([s.ping.remote() for s in searchers])
        return cls(path, top, searchers, ray)

    @staticmethod
    def _read_top(path: str, top_path: str, top: dict, verify: bool) -> list[str]:
        """Checks ``sharded.json`` against the codec and the shards' manifests (adding the totals the search
        reads to ``top``); returns the shard directories. A shard named twice, a count that disagrees with
        the shards, or shards of other nbits, dims or id kinds would give wrong results: refused."""
        if verify and "codec_crc32" in top and crc_file(os.path.join(path, CODEC)) != top["codec_crc32"]:
            raise _Refused(f"{os.path.join(path, CODEC)} does not match {TOP} (changed or corrupt)")
        shards = top["shards"]
        if not isinstance(shards, list) or not shards:
            raise _Refused(f"{top_path}: no shards listed")
        if int(top["num_shards"]) != len(shards):
            raise _Refused(f"{top_path}: num_shards is {top['num_shards']} but {len(shards)} shards are listed")
        num_tokens, num_docs, num_live, kinds, dims, nbits, seen = 0, 0, 0, set(), set(), set(), set()
        for e in shards:
            d = os.path.normpath(os.path.join(path, e["dir"]))
            if os.path.dirname(d) != os.path.normpath(path):
                raise _Refused(f"{top_path}: shard directory {e['dir']!r} escapes the index directory")
            if os.path.realpath(d) in seen:
                raise _Refused(f"{top_path}: shard directory {e['dir']!r} is listed twice")
            seen.add(os.path.realpath(d))
            try:
                with open(os.path.join(d, "manifest.json"), "rb") as f:
                    raw = f.read()
            except OSError as err:
                raise _Refused(f"{top_path}: shard {e['dir']!r} has no readable manifest.json (missing or "
                                 f"incomplete: {err.strerror})") from None
            if verify and zlib.crc32(raw) != e["manifest_crc32"]:
                raise _Refused(f"{d}/manifest.json does not match {TOP} (changed or corrupt)")
            m = json.loads(raw)
            num_tokens += int(m["num_tokens"])
            num_docs += int(m["num_docs"])
            num_live += int(m["num_live"])
            kinds.add(m["id_kind"])
            dims.add(int(m["dim"]))
            nbits.add(int(m["nbits"]))
        if len(dims) != 1:
            raise _Refused(f"{top_path}: shards of different dims {sorted(dims)}")
        if nbits != {int(top["nbits"])}:
            raise _Refused(f"{top_path}: nbits {top['nbits']}, the shards' {sorted(nbits)}")
        if len(kinds) != 1:
            raise _Refused(f"{top_path}: shards with different id kinds {sorted(kinds)}")
        # Built, the shards hold num_docs documents; deletions on a shard (opened with verify=False) lower
        # the live count, which len() reports.
        if verify and num_docs != int(top["num_docs"]):
            raise _Refused(f"{top_path}: num_docs is {top['num_docs']} but the shards hold {num_docs}")
        top["num_tokens"], top["dim"], top["id_kind"], top["num_live"] = num_tokens, dims.pop(), kinds.pop(), num_live
        return [os.path.join(path, e["dir"]) for e in shards]

    def default_params(self, k: int = 10) -> dict:
        """The parameters one index over the whole collection would use (``Index.default_params`` on
        the total token count); ``search`` gives them to every shard unless the caller sets them."""
        return _search.default_params(self._whole(), k)

    def _whole(self) -> Any:
        """What ``_search``'s parameter rules read of one index over the whole collection."""
        from types import SimpleNamespace

        return SimpleNamespace(manifest={"num_tokens": int(self.top["num_tokens"])}, nbits=int(self.top["nbits"]))

    def __len__(self) -> int:
        """Live documents (a shard's deletions count, as in ``len(Index)``)."""
        return int(self.top["num_live"])

    @property
    def num_shards(self) -> int:
        return len(self.searchers)

    @property
    def dim(self) -> int:
        return int(self.top["dim"])

    def search(self, queries: Any, k: int = 10, *, nprobe: int | None = None, ndocs: int | None = None,
               centroid_score_threshold: float | None = None, subset: Any = None, query_mask: Any = None,
               exhaustive: bool | None = None, num_threads: int | None = None, rerank: int | None = None,
               where: str | None = None, params: Any = (), hybrid: bool | float = False, query_texts: Any = None,
               fusion: str | None = None, allow_partial: bool = False,
               timeout: float | None = None) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[int]]:
        """Global top-k: ``(scores [nq, k], ids [nq, k])`` like ``Index.search``, with its keywords and their
        checks (nprobe, ndocs, centroid_score_threshold, subset, query_mask, exhaustive, num_threads, rerank,
        ``where`` with its ``params``), except hybrid search, refused: BM25 and the fusion rank over the whole
        collection, which no shard holds. The result is the one an ``Index`` over the whole collection gives
        with the same parameters (PLAID's stages pick their survivors over all shards: a fan-out round per
        stage, and per widening of the probe). A shard that fails, or does not answer a round within
        ``timeout`` seconds, raises ShardError naming it; with ``allow_partial=True`` the result is merged from
        the shards that answered and a third value lists the failed shards (every shard failed: rows of
        padding, every shard listed). The caller's own errors (arguments, a ``where`` the shards' stores
        refuse) raise as on one index, with ``allow_partial`` too."""
        fn = FN
        if self._closed:
            raise RuntimeError(f"{fn}: the index is closed")
        nprobe, ndocs, threshold = self.check_options(
            k, nprobe=nprobe, ndocs=ndocs, centroid_score_threshold=centroid_score_threshold, subset=subset,
            exhaustive=exhaustive, num_threads=num_threads, rerank=rerank, where=where, params=params, hybrid=hybrid,
            query_texts=query_texts, fusion=fusion, allow_partial=allow_partial, timeout=timeout)
        q, mask = _search.query_batch(queries, query_mask, self.dim, fn)
        run = _Fanout(self, timeout, allow_partial)
        infos = run.call("info", lambda i: (subset, where, params))
        if not infos:  # no shard answered (allow_partial): the result of every shard failed
            scores, ids = _merge([], q.shape[0], k, self.top["id_kind"])
            return (scores, ids, sorted(run.failed)) if allow_partial else (scores, ids)
        n_allowed = sum(v["allowed"] for v in infos.values())
        tokens = sum(v["tokens"] for v in infos.values())
        num_centroids = infos[min(infos)]["num_centroids"]  # one codec: every shard's count
        filtered = subset is not None or where is not None
        # The path one index over the whole collection would take, taken by every shard.
        if exhaustive is None:
            exhaustive = tokens <= _search.EXHAUSTIVE_TOKENS
        mode = _search.choose_mode(bool(exhaustive), filtered, n_allowed, ndocs, num_centroids)
        if mode in ("plaid", "fill"):
            scores, ids = self._plaid(run, q, mask, k, nprobe, ndocs, threshold, rerank, subset, where, params,
                                      num_threads, infos, n_allowed, num_centroids, mode == "fill")
        else:
            # Exact on every shard (exhaustive, or every allowed document scored): merging top-k is exact.
            opts = {"nprobe": nprobe, "ndocs": ndocs, "subset": subset, "exhaustive": bool(exhaustive),
                    "num_threads": num_threads, "rerank": rerank, "where": where, "params": params,
                    # Index.search: -inf = no centroid pruning (None would be a shard's own default)
                    "centroid_score_threshold": -np.inf if threshold is None else threshold}
            results = run.call("search", lambda i: (q, k, mask, opts))
            scores, ids = _merge([results[i] for i in sorted(results)], q.shape[0], k, self.top["id_kind"])
        return (scores, ids, sorted(run.failed)) if allow_partial else (scores, ids)

    def check_options(self, k: int = 10, *, nprobe: int | None = None, ndocs: int | None = None,
                      centroid_score_threshold: float | None = None, subset: Any = None, exhaustive: bool | None = None,
                      num_threads: int | None = None, rerank: int | None = None, where: str | None = None,
                      params: Any = (), hybrid: bool | float = False, query_texts: Any = None,
                      fusion: str | None = None, allow_partial: bool = False,
                      timeout: float | None = None) -> tuple[int, int, float | None]:
        """``search``'s checks of everything but the queries, by Index.search's rules, before any shard is
        asked (with allow_partial, an error every shard raised alike would otherwise read as every shard
        lost; QueryBatcher runs them once, when it is made); returns (nprobe, ndocs, threshold) as every
        shard will use them: one index's over the whole collection (a shard's own defaults would follow
        its smaller token count and prune harder)."""
        fn = FN
        if not isinstance(allow_partial, (bool, np.bool_)):
            raise TypeError(f"{fn}: allow_partial must be a bool, got {type(allow_partial).__name__}")
        if timeout is not None and (isinstance(timeout, (bool, np.bool_)) or not isinstance(timeout, (int, float, np.number))
                                    or not np.isfinite(timeout) or timeout <= 0):
            raise ValueError(f"{fn}: timeout must be None or a positive number of seconds, got {timeout!r}")
        _search.check_k(k, fn)
        _search.check_exhaustive(exhaustive, fn)
        check_threads(num_threads, fn)
        if hybrid is not False and hybrid is not None:
            raise ValueError(f"{fn}: hybrid search is not available on a sharded index: BM25 and the fusion "
                             "rank over the whole collection, which no shard holds (search an Index)")
        _search.hybrid_options(None, False, fusion, fn)  # fusion checked as Index.search checks it
        nprobe, ndocs, threshold = _search.resolve_params(self._whole(), k, nprobe, ndocs, centroid_score_threshold, fn)
        if subset is not None:
            id_array(subset, self.top["id_kind"], fn)
        if where is not None:
            check_where(where, params, fn)
        _search.rerank_count(k, ndocs, rerank, fn)
        return nprobe, ndocs, threshold

    def _plaid(self, run: "_Fanout", q: np.ndarray, mask: np.ndarray | None, k: int, nprobe: int, ndocs: int,
               threshold: float | None, rerank: int | None, subset: Any, where: str | None, params: Any,
               num_threads: int | None, infos: dict, n_allowed: int, K: int,
               fill: bool) -> tuple[np.ndarray, np.ndarray]:
        """PLAID over the shards: the index's stage driver (``_search.drive``, native) asks ``_ShardStages``
        for each stage, which fans the request out and merges the answers; every stage is per document and
        the driver's selections break ties by global position, so the result is one index's over the same
        data."""
        threshold = None if threshold is None else float(threshold)
        n_rerank = _search.rerank_count(k, ndocs, rerank, FN)
        bounds, b = {}, 0
        for i in range(self.num_shards):  # global position = shard's first position + local position
            n = infos[i]["positions"] if i in infos else int(self.top["shards"][i].get("num_docs", 0))
            bounds[i] = (b, b + n)
            b += n
        stages = _ShardStages(run, q, mask, (subset, where, params), threshold, num_threads, bounds, fill)
        active = np.asarray(mask.any(axis=1) if mask is not None else np.full(q.shape[0], q.shape[1] > 0))
        filtered = subset is not None or where is not None
        scores, pos = _search.drive(stages, active, nprobe, ndocs, n_rerank, k, K, n_allowed, filtered)
        return stages.results(scores, pos, self.top["id_kind"] == "int")

    def close(self) -> None:
        """Stops the shards' Ray actors, or drops the in-process shards (their mappings and stores go with
        them); searches after it raise RuntimeError."""
        self._closed = True
        if self._ray is not None:
            for s in self.searchers:
                self._ray.kill(s)
        self.searchers = []


class _ShardStages(_native.PlaidSource):
    """The three PLAID stages (``PlaidSource``, csrc/include/edgecolbert/plaid_search.hpp) over the shards,
    for one query batch: each call is one fan-out round; a shard answers for its own documents (its native
    stages) and the answers are merged by position. Documents are global positions (a shard's first position
    plus its local one). The stage loop (widening, selections, top-k) is the driver's, not repeated here."""

    def __init__(self, run: "_Fanout", q: np.ndarray, mask: np.ndarray | None, allowed: tuple[Any, str | None, Any],
                 threshold: float | None, num_threads: int | None, bounds: dict[int, tuple[int, int]],
                 fill: bool = False) -> None:
        super().__init__()
        # allowed: (subset, where, params), what each shard's stage A turns into its allowed documents
        self.run, self.q, self.mask, self.allowed, self.fill = run, q, mask, allowed, fill
        self.threshold, self.num_threads, self.bounds = threshold, num_threads, bounds
        self._exact: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (positions, ids, answered) per round

    def candidates(self, queries: np.ndarray, probes: np.ndarray, ndocs: int) -> tuple:
        subset, where, params = self.allowed
        got = self.run.call("stage_candidates", lambda i: (self.q, self.mask, subset, self.num_threads, queries,
                                                           probes, ndocs, self.fill, where, params))
        n = len(queries)
        qid, docs, vals = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.float32)]
        count = np.zeros(n, np.int64)
        for i, (off, d, v, c) in got.items():
            qid.append(np.repeat(np.arange(n), np.diff(off)))
            docs.append(np.asarray(d, np.int64) + self.bounds[i][0])
            vals.append(np.asarray(v, np.float32))
            count += c
        order = np.argsort(np.concatenate(qid), kind="stable")  # by query; shards' order kept inside a query
        offsets = np.concatenate([[0], np.cumsum(np.bincount(np.concatenate(qid), minlength=n))]).astype(np.int64)
        return offsets, np.concatenate(docs)[order], np.concatenate(vals)[order], count

    def _split(self, queries: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> dict[int, tuple]:
        """Per shard: (which documents are its, its request: queries, offsets, local documents)."""
        qid = np.repeat(np.arange(len(queries)), np.diff(offsets))
        out = {}
        for i, (lo, hi) in self.bounds.items():
            sel = (docs >= lo) & (docs < hi)
            off = np.concatenate([[0], np.cumsum(np.bincount(qid[sel], minlength=len(queries)))]).astype(np.int64)
            out[i] = (sel, queries, off, docs[sel] - lo)
        return out

    def approximate(self, queries: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
        parts = self._split(queries, offsets, docs)
        got = self.run.call("stage_approximate", lambda i: (self.q, self.mask, self.threshold, self.num_threads,
                                                            *parts[i][1:]))
        out = np.full(len(docs), -np.inf, np.float32)  # a shard that failed: its documents rank last
        for i, v in got.items():
            out[parts[i][0]] = v
        return out

    def exact(self, queries: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
        parts = self._split(queries, offsets, docs)
        got = self.run.call("stage_exact", lambda i: (self.q, self.mask, self.num_threads, *parts[i][1:]))
        out = np.full(len(docs), -np.inf, np.float32)
        answered = np.zeros(len(docs), bool)
        ids = np.empty(len(docs), object)
        for i, (v, shard_ids) in got.items():
            sel = parts[i][0]
            out[sel], answered[sel] = v, True
            ids[sel] = np.asarray(shard_ids, object)
        self._exact.append((docs, ids, answered))
        return out

    def results(self, scores: np.ndarray, pos: np.ndarray, int_ids: bool) -> tuple[np.ndarray, np.ndarray]:
        """The driver's (scores, global positions) -> (scores, ids), hits of a shard that failed removed."""
        out_i = np.full(pos.shape, -1, np.int64) if int_ids else np.full(pos.shape, None, object)
        keep = pos >= 0
        if self._exact:
            known = np.concatenate([p for p, _, _ in self._exact])
            ids = np.concatenate([i for _, i, _ in self._exact])
            answered = np.concatenate([a for _, _, a in self._exact])
            order = np.argsort(known, kind="stable")
            at = order[np.searchsorted(known[order], pos[keep])]
            keep[keep] = answered[at]
            out_i[keep] = ids[at[answered[at]]]
        scores = np.where(keep, scores, -np.inf).astype(np.float32)
        # Dropped hits move to the end of their row, the others keep their order.
        order = np.argsort(~keep, axis=1, kind="stable")
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(out_i, order, axis=1)


class _Fanout:
    """Calls one method on every live shard (in process, or on Ray actors in parallel), each round waiting
    at most ``timeout`` seconds for all of them; a failing or late shard raises ShardError, or with
    ``allow_partial`` is dropped from this and every later round of the search and listed in ``failed``.
    (A per-round limit, so that the shards that answered still get the time for the later rounds.)"""

    def __init__(self, index: ShardedIndex, timeout: float | None, allow_partial: bool) -> None:
        self.index, self.allow_partial, self.timeout = index, allow_partial, timeout
        self.failed: set[int] = set()

    def _fail(self, i: int, e: BaseException) -> None:
        if isinstance(e, FilterError):  # the caller's filter, refused by a shard's store: not a lost shard
            cause = getattr(e, "cause", None)  # Ray's RayTaskError(FilterError): the shard's own error
            raise (cause if isinstance(cause, FilterError) else e) from None
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
