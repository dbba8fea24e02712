"""The persistent PLAID-style index: build, open, search, add, delete, compact.

A committed state (see _storage) is: the codec (centroids, bucket cutoffs and weights), one or more
segments (what one ``build``, ``add`` or ``compact`` wrote: codes, residuals, IVF, doclens, ids; see
_segments, which writes them), and a tombstone array.

Documents are numbered internally by position (segment after segment); the tombstone array holds
the deleted positions. ``compact`` rewrites the live documents into one segment (codes and residuals
are copied, never recompressed) and rebuilds the IVF.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import numpy as np

from .._arrays import check_threads, to_numpy
from .._progress import progress_shown
from . import _colbert, _fast_plaid, _search
from ._docstore import DocumentStore, SegmentStore, check_documents, compact_stores, write_store
from ._segments import compact_segments, normalize_ids, ragged_ranges, write_segment
from ._sources import make_source
from ._storage import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    CorruptIndexError,
    WriterLock,
    begin_replace,
    collect_after_failure,
    collect_garbage,
    open_array,
    read_manifest,
    referenced_files,
    write_array,
    write_manifest,
)


# Lookups of at most this many ids, before anything sorted the index's ids, scan instead (_positions).
_FEW_IDS = 16


def _ec() -> Any:
    import edgecolbert_native as ec  # the codec/centroid API, resolved at call time

    return ec


def default_num_centroids(num_tokens: int) -> int:
    """PLAID's rule: 2^floor(log2(16·sqrt(T))), at most T."""
    k = 1 << int(np.floor(np.log2(max(16.0 * np.sqrt(max(num_tokens, 1)), 1.0))))
    return int(max(1, min(k, num_tokens)))


def default_codec_centroids(num_tokens: int, trained_tokens: int | None = None) -> int:
    """The centroid count a build uses when none is given: PLAID's rule for the collection's num_tokens, leaving
    room for the codec's 5 % held-out split of the trained_tokens (default: all of them) on tiny collections."""
    t = num_tokens if trained_tokens is None else trained_tokens
    return max(1, min(default_num_centroids(num_tokens), t - int(0.05 * t)))


def default_sample_tokens(num_tokens: int, k: int) -> int:
    """Tokens k-means trains on: 32 per centroid (k-means quality saturates well before that for
    ColBERT's residual coding), at least 2^14, at most the collection."""
    return int(min(num_tokens, max(1 << 14, 32 * k)))


def check_nbits(nbits: Any, fn: str) -> int:
    """nbits as a plain int (a numpy integer too, as the codec takes it; manifests are JSON), checked before
    anything is written."""
    if not isinstance(nbits, (int, np.integer)) or isinstance(nbits, bool) or int(nbits) not in (1, 2, 4, 8):
        raise ValueError(f"{fn}: nbits must be 1, 2, 4 or 8, got {nbits!r}")
    return int(nbits)


def _train_codec(src: Any, ns: int, k: int, nbits: int, niters: int, seed: int, num_threads: int | None,
                 progress: bool | None, buckets: str) -> Any:
    """``ResidualCodec.train`` on ``ns`` tokens drawn at random (seeded) from the source, with the sample
    read straight into the order that ``train`` would shuffle it to: the held-out and training rows are two
    views of the one array (the same codec as ``train(src.gather(positions))``, without its two copies)."""
    ResidualCodec = _ec().ResidualCodec
    T = src.num_tokens
    pos = np.sort(np.random.default_rng(seed).choice(T, size=ns, replace=False)) if ns < T else np.arange(T)
    perm, held = ResidualCodec.heldout_split(ns, seed)
    if not held:  # a tiny sample: train uses it unshuffled for both
        sample = src.gather(pos)
        return ResidualCodec.train_split(sample, sample, k, nbits, niters=niters, seed=seed, num_threads=num_threads,
                                         progress=progress, buckets=buckets)
    where = np.empty(ns, np.int64)
    where[perm] = np.arange(ns)  # sample row j lands where the shuffle puts it
    shuffled = src.gather(pos, rows=where)
    return ResidualCodec.train_split(shuffled[held:], shuffled[:held], k, nbits, niters=niters, seed=seed,
                                     num_threads=num_threads, progress=progress, buckets=buckets)


def id_array(ids: Any, id_kind: str, fn: str) -> np.ndarray:
    """Ids to look up (a list, an array, one id) as an array whose dtype suits an index with ``id_kind``
    ids (TypeError otherwise; an empty one always suits): also the sharded search's check of a subset."""
    ids = to_numpy(ids)
    if isinstance(ids, (str, int, np.integer)) or (isinstance(ids, np.ndarray) and ids.ndim == 0):
        ids = [ids.item() if isinstance(ids, np.ndarray) else ids]
    seq = list(ids) if not isinstance(ids, np.ndarray) else None
    q = np.asarray(seq if seq is not None else ids)
    if q.ndim != 1:
        raise ValueError(f"{fn}: ids must be one id or a flat sequence of ids, got shape {q.shape}")
    if q.size and id_kind == "int" and q.dtype.kind not in "iu":
        raise TypeError(f"{fn}: this index has integer ids, got {q.dtype}")
    if q.size and id_kind == "str":
        # numpy turns ["x", 1] into strings, and an object array may hold anything: only str ids match
        values = seq if seq is not None else (q.tolist() if q.dtype.kind == "O" else None)
        if q.dtype.kind not in "UO" or (values is not None and not all(isinstance(x, str) for x in values)):
            raise TypeError(f"{fn}: this index has string ids, got {'a mix' if q.dtype.kind in 'UO' else q.dtype}")
        # As stored ids (normalize_ids): numpy's fixed-width strings drop a trailing NUL, so "a\x00" would
        # find the id "a".
        if values is not None and any("\x00" in x for x in values):
            raise ValueError(f"{fn}: string ids may not contain NUL characters")
    return q


class _Segment:
    __slots__ = ("codes", "residuals", "doclens", "offsets", "ivf", "ivf_offsets", "ids", "base", "n",
                 "_decoded", "_distinct")

    def __init__(self, arrays: dict, base: int) -> None:
        self.codes, self.residuals = arrays["codes"], arrays["residuals"]
        self.doclens, self.ivf, self.ivf_offsets, self.ids = (
            arrays["doclens"], arrays["ivf"], arrays["ivf_offsets"], arrays["ids"])
        self.n = len(self.doclens)
        self.offsets = np.zeros(self.n + 1, np.int64)
        np.cumsum(self.doclens, out=self.offsets[1:])
        self.base = base
        self._decoded = None
        self._distinct = None  # each document's distinct codes, stage B's input (index/_plaid.py, distinct_codes)


class Index:
    """A PLAID-style late-interaction index on disk. Use ``Index.build`` or ``Index.open``."""

    def __init__(self, path: str, manifest: dict, codec: Any, segments: list[_Segment],
                 tombstones: np.ndarray, docstore: DocumentStore | None = None) -> None:
        self.path = path
        # Texts and metadata (index/_docstore.py): one read-only SQLite store per segment that has any.
        self.docstore = docstore if docstore is not None else DocumentStore([(s.base, s.n, None) for s in segments])
        self.manifest = manifest
        self.codec = codec
        self.segments = segments
        self.tombstones = tombstones
        self.nbits = int(manifest["nbits"])
        self.dim = int(manifest["dim"])
        self.num_centroids = int(manifest["num_centroids"])
        self.id_kind = manifest["id_kind"]
        total = sum(s.n for s in segments)
        self.live = np.ones(total, bool)
        self.live[np.asarray(tombstones, np.int64)] = False
        # This state's lazily built id tables ("all_ids"; "id_index": live ids sorted with their positions;
        # "id_dense": integer ids in a dense range, id - lo -> position). A dict that belongs to the state: a
        # snapshot shares it, and a commit or reload installs the new state's own (no table of one generation
        # can land on another).
        self._cache: dict[str, Any] = {}
        # Taken to install a new state and to copy one (_snapshot), so that a reader in another thread sees
        # one generation whole; it is the object's, kept across installs.
        self._swap = threading.Lock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: bool = True) -> "Index":
        """Opens the committed state. ``verify`` checks every file's CRC-32 (0.15 s per GB here);
        sizes, dtypes and counts are always checked. A corrupt, truncated or mismatched index raises
        CorruptIndexError naming the file."""
        path = os.fspath(path)
        last: Exception | None = None
        for _ in range(5):
            manifest = read_manifest(path)
            try:
                return cls._from_manifest(path, manifest, verify)
            except FileNotFoundError as e:
                # A writer may have committed and garbage-collected between our manifest read and the
                # file opens: read the newer manifest and try again; a missing file twice is corruption.
                last = e
                if read_manifest(path).get("generation") == manifest.get("generation"):
                    raise CorruptIndexError(getattr(e, "filename", None) or path, "file named by the manifest is missing") from None
        raise CorruptIndexError(path, f"manifest keeps changing while opening: {last}")

    @classmethod
    def _from_manifest(cls, path: str, m: dict, verify: bool) -> "Index":
        mpath = os.path.join(path, MANIFEST)
        try:
            dim, nbits, K = int(m["dim"]), int(m["nbits"]), int(m["num_centroids"])
            rb = dim * nbits // 8
            c = m["codec"]
            centroids = open_array(path, c["centroids"], verify)
            cutoffs = open_array(path, c["bucket_cutoffs"], verify)
            weights = open_array(path, c["bucket_weights"], verify)
            if centroids.shape != (K, dim) or cutoffs.shape != ((1 << nbits) - 1,) or weights.shape != (1 << nbits,):
                raise CorruptIndexError(os.path.join(path, c["centroids"]["file"]), "codec arrays do not match the manifest's dim/nbits/num_centroids")
            segments, stores, base = [], [], 0
            for si, s in enumerate(m["segments"]):
                arrays = {name: open_array(path, s["files"][name], verify)
                          for name in ("codes", "residuals", "doclens", "ivf", "ivf_offsets", "ids")}
                n, T = int(s["num_docs"]), int(s["num_tokens"])
                f = s["files"]

                def bad(name: str, why: str) -> CorruptIndexError:
                    return CorruptIndexError(os.path.join(path, f[name]["file"]), f"segment {si}: {why}")

                if arrays["codes"].shape != (T,):
                    raise bad("codes", f"{arrays['codes'].shape[0]} codes, manifest says {T} tokens")
                if arrays["residuals"].shape != (T, rb):
                    raise bad("residuals", f"shape {arrays['residuals'].shape}, expected {(T, rb)}")
                if arrays["doclens"].shape != (n,) or int(np.sum(arrays["doclens"], dtype=np.int64)) != T:
                    raise bad("doclens", "document lengths do not add up to the segment's token count")
                if arrays["ids"].shape != (n,):
                    raise bad("ids", f"{arrays['ids'].shape[0]} ids for {n} documents")
                io = arrays["ivf_offsets"]
                if io.shape != (K + 1,) or io[0] != 0 or io[-1] != len(arrays["ivf"]) or np.any(np.diff(io) < 0):
                    raise bad("ivf_offsets", "not a valid offsets array for the IVF")
                if verify and len(arrays["ivf"]) and (arrays["ivf"].min() < 0 or arrays["ivf"].max() >= n):
                    raise bad("ivf", "document number out of range")
                if verify and T and int(arrays["codes"].max()) >= K:
                    raise bad("codes", "centroid number out of range")
                segments.append(_Segment(arrays, base))
                stores.append((base, n, SegmentStore(path, s["docs"], n, verify) if s.get("docs") else None))
                base += n
            tomb = open_array(path, m["tombstones"], verify)
            if tomb.ndim != 1 or (len(tomb) and (tomb.min() < 0 or tomb.max() >= base)):
                raise CorruptIndexError(os.path.join(path, m["tombstones"]["file"]), "tombstone out of range")
            if int(m["num_docs"]) != base or int(m["num_live"]) != base - len(np.unique(tomb)):
                raise CorruptIndexError(mpath, "document counts do not match the segments and tombstones")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
            # Any structural surprise in the JSON (a list where an object belongs, a missing key, a
            # number out of range) is a corrupt manifest, reported as such.
            raise CorruptIndexError(mpath, f"malformed manifest: {e!r}") from None
        codec = _ec().ResidualCodec(np.ascontiguousarray(centroids, np.float32), np.asarray(cutoffs, np.float32),
                                    np.asarray(weights, np.float32), nbits)
        return cls(path, m, codec, segments, np.asarray(tomb, np.int64), DocumentStore(stores))

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        path: str | os.PathLike,
        doc_tokens: Any,
        doc_offsets: Any = None,
        doc_ids: Any = None,
        *,
        nbits: int = 4,
        num_centroids: int | None = None,
        sample_tokens: int | None = None,
        niters: int = 4,
        seed: int = 0,
        num_threads: int | None = None,
        progress: bool | None = None,
        overwrite: bool = False,
        codec: Any = None,
        buckets: str = "lloyd",
        texts: Any = None,
        metadata: Any = None,
    ) -> "Index":
        """Builds an index in directory ``path`` (created if needed; an existing index there is
        replaced only with ``overwrite=True``, atomically).

        Documents: a CSR pair ``doc_tokens [T, dim]`` + ``doc_offsets [n+1]``, a list of per-document
        arrays/tensors, or an iterator of batches (see _sources). ``doc_ids``: unique ints (int64) or
        strings, default 0..n-1 (an id -1 is allowed; ``search`` pads with -1 too, at score -inf).
        Centroids: ``num_centroids`` (default 2^floor(log2(16·sqrt(T)))) trained by
        k-means on ``sample_tokens`` random tokens (default 32 per centroid, at least 16,384).
        Memory stays bounded (docs/index.md, "Memory"): the k-means sample, one chunk of tokens (32 MiB of
        float32, at most 2^17 tokens) and the IVF's (centroid, document) pairs. ``codec``: a trained
        ``ResidualCodec`` to use instead of training one (the shards of one collection share a codec).
        ``buckets``: how the codec's residual buckets are placed (``ResidualCodec.train``): ``"lloyd"``
        (default; Lloyd-Max refinement of ColBERTv2's quantiles, lower quantisation error, same format)
        or ``"quantile"`` (ColBERTv2's indexer exactly). ``texts`` (one str or None per document) and
        ``metadata`` (one dict or None per document; values strings, finite numbers, booleans, null or
        lists of those; sequences or iterators, read once while the store is written) are kept in the
        index's document store: ``get`` returns them, ``search(where=...)``
        filters on the metadata, ``search(hybrid=...)`` ranks the texts with BM25 too.
        """
        fn = "Index.build"
        nbits = check_nbits(nbits, fn)
        check_threads(num_threads, fn)
        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        with WriterLock(path):
            old = begin_replace(path, overwrite, fn)
            src, ids = make_source(doc_tokens, doc_offsets, doc_ids, fn, path)
            try:
                ids, kind = normalize_ids(ids, src.num_docs, None, 0, fn)
                check_documents(texts, metadata, src.num_docs, fn)
                T, dim = src.num_tokens, src.dim
                if T == 0:
                    raise ValueError(f"{fn}: the documents hold no tokens; centroids cannot be trained")
                if dim * nbits % 8:
                    raise ValueError(f"{fn}: dim*nbits must be a multiple of 8, got {dim}*{nbits}")
                if codec is not None:  # a codec trained elsewhere (shards of one collection share it)
                    if codec.dim != dim or codec.nbits != nbits:
                        raise ValueError(f"{fn}: the codec has dim {codec.dim} and nbits {codec.nbits}, "
                                         f"the documents dim {dim} and nbits {nbits} was asked")
                    num_centroids = codec.num_centroids
                k = int(num_centroids) if num_centroids is not None else default_codec_centroids(T)
                if codec is None and not 1 <= k <= T:  # a given codec may have more centroids than tokens here
                    raise ValueError(f"{fn}: num_centroids must be in [1, {T}] (the token count), got {k}")
                if codec is None:
                    ns = int(sample_tokens) if sample_tokens is not None else default_sample_tokens(T, k)
                    ns = max(k, min(ns, T))
                    if progress_shown(progress):
                        sys.stderr.write(f"{fn}: k-means, {k} centroids on {ns:,} sampled tokens\n")
                    codec = _train_codec(src, ns, k, nbits, niters, seed, num_threads, progress, buckets)
                gen = (int(old["generation"]) + 1) if old else 1
                cfiles = {
                    "centroids": write_array(path, f"g{gen}-centroids.bin", np.asarray(codec.centroids, np.float32)),
                    "bucket_cutoffs": write_array(path, f"g{gen}-bucket_cutoffs.bin", np.asarray(codec.bucket_cutoffs, np.float32)),
                    "bucket_weights": write_array(path, f"g{gen}-bucket_weights.bin", np.asarray(codec.bucket_weights, np.float32)),
                }
                seg = write_segment(path, f"g{gen}-s0", src, ids, codec, k, nbits, num_threads, progress, fn)
                store = write_store(path, f"g{gen}-s0-docs.db", texts, metadata, src.num_docs, fn)
                if store is not None:
                    seg["docs"] = store
                tomb = write_array(path, f"g{gen}-tombstones.bin", np.empty(0, np.int64))
                manifest = {
                    "format": FORMAT, "format_version": FORMAT_VERSION, "generation": gen,
                    "dim": dim, "nbits": nbits, "num_centroids": k, "id_kind": kind,
                    "next_int_id": int(ids.max()) + 1 if kind == "int" and len(ids) else 0,
                    "num_docs": src.num_docs, "num_live": src.num_docs, "num_tokens": T,
                    "codec": cfiles, "segments": [seg], "tombstones": tomb,
                }
                write_manifest(path, manifest)
                collect_garbage(path, referenced_files(manifest))
            except BaseException:
                collect_after_failure(path)
                raise
            finally:
                src.close()
        return cls.open(path, verify=False)

    @classmethod
    def import_colbert(cls, colbert_dir: str | os.PathLike, path: str | os.PathLike, **kwargs: Any) -> "Index":
        """Imports a colbert-ai (PLAID) index directory; see ``_colbert.write_colbert_import``."""
        return cls.open(_colbert.write_colbert_import(colbert_dir, path, **kwargs))

    @classmethod
    def import_fast_plaid(cls, fast_plaid_dir: str | os.PathLike, path: str | os.PathLike, **kwargs: Any) -> "Index":
        """Imports an index directory fast-plaid 1.4 wrote (with its metadata); see
        ``_fast_plaid.write_fast_plaid_import``."""
        return cls.open(_fast_plaid.write_fast_plaid_import(fast_plaid_dir, path, **kwargs))

    # ------------------------------------------------------------------ updates
    def _begin_write(self) -> tuple[WriterLock, dict]:
        lock = WriterLock(self.path).__enter__()
        try:
            m = read_manifest(self.path)
            if m.get("generation") != self.manifest.get("generation"):
                self._reload(m)  # another writer committed since we opened: apply on top of that
            collect_garbage(self.path, referenced_files(m))
            return lock, m
        except BaseException:
            lock.__exit__()
            raise

    def _reload(self, m: dict | None = None) -> None:
        self._install(Index._from_manifest(self.path, m or read_manifest(self.path), False))

    def _install(self, other: "Index") -> None:
        """Takes ``other``'s state (a commit's or a reload's), all of it at once for a reader in another thread."""
        state = dict(other.__dict__)
        state["_swap"] = self._swap
        with self._swap:
            self.__dict__.update(state)

    def _snapshot(self) -> "Index":
        """This object's current state as an Index of its own: a reader (search, get, ...) works on one
        generation from start to end while another thread commits or reloads through this object."""
        snap = object.__new__(type(self))
        with self._swap:
            snap.__dict__.update(self.__dict__)
        return snap

    def _commit(self, m: dict) -> None:
        m["generation"] = int(self.manifest["generation"]) + 1
        m["format_version"] = FORMAT_VERSION  # a version-1 index is version 2 from its first write on
        write_manifest(self.path, m)
        collect_garbage(self.path, referenced_files(m))
        self._reload(m)

    def reload(self) -> None:
        """Re-reads the committed state (a reader's view is otherwise fixed at open), as ``open`` reads it:
        retried when a writer commits between the manifest read and the file opens."""
        self._install(Index.open(self.path, verify=False))

    def add(self, doc_tokens: Any, doc_offsets: Any = None, doc_ids: Any = None, *,
            num_threads: int | None = None, progress: bool | None = None, texts: Any = None,
            metadata: Any = None, replace: bool = False) -> None:
        """Appends documents (same input forms as ``build``, with their ``texts`` and ``metadata`` as there)
        as a new segment, compressed with the existing centroids (no re-training). Ids must be new among
        the live documents, or with ``replace=True`` the live documents that have them are deleted in the
        same commit (an update). Atomic: the vectors, ids and documents land together or not at all."""
        fn = "Index.add"
        check_threads(num_threads, fn)
        lock, m = self._begin_write()
        try:
            src, ids = make_source(doc_tokens, doc_offsets, doc_ids, fn, self.path)
            try:
                if src.dim != self.dim:
                    raise ValueError(f"{fn}: documents have dim {src.dim}, the index has dim {self.dim}")
                ids, _ = normalize_ids(ids, src.num_docs, self.id_kind, int(m["next_int_id"]), fn)
                check_documents(texts, metadata, src.num_docs, fn)
                replaced = np.empty(0, np.int64)
                if len(ids) and self.live.any():
                    sorted_ids, positions = self._id_lookup()
                    pos = np.searchsorted(sorted_ids, ids)
                    pos = np.minimum(pos, len(sorted_ids) - 1)
                    clash = sorted_ids[pos] == ids
                    if clash.any() and not replace:
                        raise ValueError(f"{fn}: ids already in the index: {ids[clash][:5].tolist()} "
                                         "(replace=True updates them)")
                    replaced = np.unique(positions[pos[clash]])
                gen = int(m["generation"]) + 1
                prefix = f"g{gen}-s{len(m['segments'])}"
                seg = write_segment(self.path, prefix, src, ids, self.codec, self.num_centroids, self.nbits,
                                    num_threads, progress, fn)
                store = write_store(self.path, f"{prefix}-docs.db", texts, metadata, src.num_docs, fn,
                                    self.docstore.fields)
                if store is not None:
                    seg["docs"] = store
            finally:
                src.close()
            m = dict(m)
            m["segments"] = list(m["segments"]) + [seg]
            m["num_docs"] = int(m["num_docs"]) + src.num_docs
            m["num_live"] = int(m["num_live"]) + src.num_docs - len(replaced)
            m["num_tokens"] = int(m["num_tokens"]) + src.num_tokens
            if len(replaced):
                tomb = np.union1d(self.tombstones, replaced).astype(np.int64)
                m["tombstones"] = write_array(self.path, f"g{gen}-tombstones.bin", tomb)
            if self.id_kind == "int" and len(ids):
                m["next_int_id"] = max(int(m["next_int_id"]), int(ids.max()) + 1)
            self._commit(m)
        except BaseException:
            collect_after_failure(self.path)  # (with the lock held) no segment left behind
            raise
        finally:
            lock.__exit__()

    def delete(self, ids: Any, *, missing_ok: bool = False) -> int:
        """Tombstones the live documents with these ids; returns how many were deleted. Unknown
        (or already deleted) ids raise KeyError and nothing is deleted, or with ``missing_ok=True`` are
        skipped (judged against the index as committed when the delete runs, which may be newer than
        this object's view: another writer may have deleted them meanwhile). Atomic."""
        if not isinstance(missing_ok, (bool, np.bool_)):
            raise TypeError(f"Index.delete: missing_ok must be a bool, got {type(missing_ok).__name__}")
        lock, m = self._begin_write()
        try:
            pos = self._positions(ids, "Index.delete", strict=not missing_ok)
            if len(pos) == 0:
                return 0
            tomb = np.union1d(self.tombstones, pos).astype(np.int64)
            m = dict(m)
            gen = int(m["generation"]) + 1
            m["tombstones"] = write_array(self.path, f"g{gen}-tombstones.bin", tomb)
            m["num_live"] = int(m["num_docs"]) - len(tomb)
            self._commit(m)
            return int(len(pos))
        except BaseException:
            collect_after_failure(self.path)  # (with the lock held) no segment left behind
            raise
        finally:
            lock.__exit__()

    def compact(self, *, progress: bool | None = None) -> None:
        """Rewrites the live documents into one segment without tombstones (codes and residuals
        copied, IVF rebuilt); the centroids stay. Atomic."""
        lock, m = self._begin_write()
        try:
            gen = int(m["generation"]) + 1
            seg = compact_segments(self.path, f"g{gen}-s0", self.segments, self.live, self.num_centroids,
                                    self.dim * self.nbits // 8, progress)
            store = compact_stores(self.path, f"g{gen}-s0-docs.db",
                                   [(st, np.flatnonzero(self.live[b:b + n])) for b, n, st in self.docstore.parts])
            if store is not None:
                seg["docs"] = store
            m = dict(m)
            m["segments"] = [seg]
            m["tombstones"] = write_array(self.path, f"g{gen}-tombstones.bin", np.empty(0, np.int64))
            m["num_docs"] = m["num_live"] = int(seg["num_docs"])
            m["num_tokens"] = int(seg["num_tokens"])
            self._commit(m)
        except BaseException:
            collect_after_failure(self.path)  # (with the lock held) no segment left behind
            raise
        finally:
            lock.__exit__()

    # ------------------------------------------------------------------ ids
    def _ids_all(self) -> np.ndarray:
        all_ids = self._cache.get("all_ids")
        if all_ids is None:
            parts = [np.asarray(s.ids) for s in self.segments]
            # one segment: its mapped ids as they are (a copy of 10^6 string ids costs more than the lookup)
            all_ids = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, np.int64)
            self._cache["all_ids"] = all_ids
        return all_ids

    def _id_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Live ids sorted, with their internal positions; integer ids spanning at most twice their count
        (the default ids 0..n-1 among them) also get a direct table (a subset per query is looked up in
        O(len(subset)), not by binary search)."""
        id_index = self._cache.get("id_index")
        if id_index is None:
            live_pos = np.flatnonzero(self.live)
            ids = self._ids_all()[live_pos]
            order = np.argsort(ids, kind="stable")
            id_index = (ids[order], live_pos[order])
            sorted_ids = id_index[0]
            # The span in Python ints: int64 ids spread over more than 2^63 (64-bit hashes) wrap in numpy.
            if self.id_kind == "int" and len(sorted_ids) and int(sorted_ids[-1]) - int(sorted_ids[0]) < 2 * len(sorted_ids):
                lo = int(sorted_ids[0])
                table = np.full(int(sorted_ids[-1]) - lo + 1, -1, np.int64)
                table[(sorted_ids - lo)[::-1]] = live_pos[order][::-1]  # a repeated id: its first position
                self._cache["id_dense"] = (lo, table)
            self._cache["id_index"] = id_index  # last: a reader that finds it finds id_dense too
        return id_index

    def _positions(self, ids: Any, fn: str, strict: bool, ordered: bool = False, unique: bool = True) -> np.ndarray:
        """Internal positions of the live documents with these ids: sorted and unique (with ``unique=False``
        in no particular order, repeats kept: a mask's input), or with ``ordered`` one per id in the order
        given (then every id must be found)."""
        q = id_array(ids, self.id_kind, fn)
        if q.size == 0:
            return np.empty(0, np.int64)
        asked, beyond = q, None
        if self.id_kind == "int" and q.dtype.kind == "u":
            # Ids are stored as int64: one past its range is in no index (cast, it would wrap to a negative id).
            beyond = q > np.iinfo(np.int64).max
            q = np.where(beyond, 0, q)
        q = q.astype(np.int64) if self.id_kind == "int" else q.astype(str)
        if "id_index" not in self._cache and len(q) <= _FEW_IDS:
            # A few ids looked up once (the CLI reads the 10 documents it shows, in a fresh process): scan
            # the ids, O(n) each, rather than sort every id first (about a second at 10^6 string ids).
            all_ids, wanted = self._ids_all(), q.tolist()
            pos = np.full(len(q), -1, np.int64)
            for a in range(0, len(all_ids), 1 << 16):  # one pass, a block at a time (it stays in cache)
                block = all_ids[a:a + (1 << 16)]
                for j, x in enumerate(wanted):
                    if pos[j] < 0:
                        hit = np.flatnonzero(block == x) + a
                        hit = hit[self.live[hit]]
                        if len(hit):
                            pos[j] = hit[0]
                if (pos >= 0).all():
                    break
            found = pos >= 0
        else:
            sorted_ids, positions = self._id_lookup()
            dense = self._cache.get("id_dense")
            if dense is not None:
                lo, table = dense
                inside = (q >= lo) & (q <= sorted_ids[-1])
                pos = np.full(len(q), -1, np.int64)
                pos[inside] = table[q[inside] - lo]
                found = pos >= 0
            elif len(sorted_ids) == 0:
                found = np.zeros(len(q), bool)
                pos = np.full(len(q), -1, np.int64)
            else:
                at = np.minimum(np.searchsorted(sorted_ids, q), len(sorted_ids) - 1)
                found = sorted_ids[at] == q
                pos = positions[at]
        if beyond is not None:
            found &= ~beyond
            pos = np.where(beyond, -1, pos)
        if (strict or ordered) and not found.all():
            raise KeyError(f"{fn}: ids not in the index (or deleted): {asked[~found][:5].tolist()}")
        if ordered:
            return pos
        return np.unique(pos[found]) if unique else pos[found]

    def __len__(self) -> int:
        return int(self.live.sum())

    # ------------------------------------------------------------------ documents
    def get(self, ids: Any) -> list[dict]:
        """The stored documents with these ids, in the order given: ``{"id", "text", "metadata"}`` each
        (``text``/``metadata`` None where none was stored). An id not in the index (or deleted) raises
        KeyError. Reads only these rows of the document store."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        s = self._snapshot()
        pos = s._positions(ids, "Index.get", strict=True, ordered=True)
        all_ids = s._ids_all()
        return [{"id": all_ids[p].item(), "text": t, "metadata": md}
                for p, (t, md) in zip(pos.tolist(), s.docstore.get(pos))]

    def decode(self, ids: Any) -> list[np.ndarray]:
        """The token vectors of the documents with these ids, in the order given, decoded from their codes
        and residuals (float32 ``[len, dim]``, unit norm: what the re-rank scores)."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        snap = self._snapshot()
        pos = snap._positions(ids, "Index.decode", strict=True, ordered=True)
        out: list[np.ndarray] = [np.empty((0, self.dim), np.float32)] * len(pos)
        for s in snap.segments:
            sel = np.flatnonzero((pos >= s.base) & (pos < s.base + s.n))
            if len(sel) == 0:
                continue
            local = pos[sel] - s.base
            tok = ragged_ranges(s.offsets[local], s.offsets[local + 1])
            flat = np.asarray(snap.codec.decompress(np.asarray(s.codes[tok], np.int32), np.asarray(s.residuals[tok])),
                              np.float32)
            ends = np.cumsum(s.offsets[local + 1] - s.offsets[local])
            for i, lo, hi in zip(sel.tolist(), (ends - (s.offsets[local + 1] - s.offsets[local])).tolist(), ends.tolist()):
                out[i] = flat[lo:hi]
        return out

    @property
    def fields(self) -> dict[str, str]:
        """The metadata fields a ``where`` filter may name, with their SQL column types."""
        return dict(self.docstore.fields)

    @property
    def ids(self) -> np.ndarray:
        """The live documents' ids, in internal order."""
        s = self._snapshot()
        return s._ids_all()[s.live]

    def __contains__(self, doc_id: Any) -> bool:
        try:
            return len(self._snapshot()._positions([doc_id], "in", strict=False)) == 1
        except (TypeError, ValueError):  # an id of another kind, or one no index holds (a NUL in it)
            return False

    def __repr__(self) -> str:
        return (f"Index({self.path!r}, docs={len(self)}, tokens={self.manifest['num_tokens']}, dim={self.dim}, "
                f"nbits={self.nbits}, centroids={self.num_centroids}, segments={len(self.segments)})")

    # ------------------------------------------------------------------ search
    def default_params(self, k: int = 10) -> dict:
        return _search.default_params(self, k)

    def search(self, queries: Any, k: int = 10, *, nprobe: int | None = None, ndocs: int | None = None,
               centroid_score_threshold: float | None = None, subset: Any = None, query_mask: Any = None,
               exhaustive: bool | None = None, num_threads: int | None = None,
               rerank: int | None = None, where: str | None = None, params: Any = (),
               hybrid: bool | float = False, query_texts: Any = None,
               fusion: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query: ``(scores float32 [nq, k], ids [nq, k])``, best first.

        queries ``[nq, Lq, dim]`` (or ``[Lq, dim]`` for one, its ``query_mask`` ``[Lq]``). ``ids`` are the
        caller's ids (int64, or an object array of str); when fewer than k documents qualify the row is
        padded with score -inf and id -1 (int ids) or None (str ids). A query whose every token is masked
        matches nothing (a row of padding); a document of no tokens scores 0 where it is scored exactly,
        but no centroid lists it, so the plaid mode never returns it (docs/index.md). ``subset``: only
        these ids may be returned; a subset of at most ``4 * ndocs`` documents is scored exhaustively, a
        larger one is applied before candidate pruning, so no recall is lost to the filter. ``nprobe``
        centroids are probed per query token; the probe widens (4x at a time) only while a subset leaves
        fewer than ndocs allowed candidates (deletions never widen it). Defaults
        for nprobe, ndocs and the threshold follow ``default_params`` (documented in docs/index.md);
        ndocs is never less than k.
        ``rerank``: how many of stage B's best documents are scored exactly (default
        ``max(k, ndocs // 4)``, PLAID's rule; fewer is faster, at some recall: docs/index.md). The
        centroid scores that choose candidates are int8 where the CPU makes that faster (docs/index.md,
        "int8 centroid scores"); the returned scores are the exact MaxSim of the decoded tokens either way.

        ``where``: an SQL expression over the metadata fields (``"lang = ? AND year >= ?"``) with ``params``
        bound to its placeholders; only matching documents may be returned. It becomes the same set of
        allowed documents as ``subset`` (and is intersected with it when both are given), so a filter costs
        no recall inside it. A filter may read nothing but one document's fields (docs/guide.md).

        ``hybrid``: True, or the weight in [0, 1] of the lexical side, ranks by a fusion of this late
        interaction ranking and BM25 over the stored texts (``query_texts``: one string per query);
        ``fusion`` ``"rrf"`` (reciprocal rank) or ``"normalized"`` (min-max scores), default
        ``_search.HYBRID_FUSION``. Hybrid rows carry fused scores, not MaxSim.
        """
        return _search.search(self._snapshot(), queries, k, nprobe, ndocs, centroid_score_threshold, subset, query_mask,
                              exhaustive, num_threads, rerank, where=where, params=params, hybrid=hybrid,
                              query_texts=query_texts, fusion=fusion)


def import_colbert(colbert_dir: str | os.PathLike, path: str | os.PathLike, *, doc_ids: Any = None,
                   overwrite: bool = False) -> Index:
    """Writes this library's index at ``path`` from colbert-ai's index at ``colbert_dir`` and opens it
    (``_colbert.write_colbert_import``)."""
    return Index.import_colbert(colbert_dir, path, doc_ids=doc_ids, overwrite=overwrite)


def import_fast_plaid(fast_plaid_dir: str | os.PathLike, path: str | os.PathLike, *, doc_ids: Any = None,
                      overwrite: bool = False) -> Index:
    """Writes this library's index at ``path`` from fast-plaid's index at ``fast_plaid_dir`` and opens it
    (``_fast_plaid.write_fast_plaid_import``)."""
    return Index.import_fast_plaid(fast_plaid_dir, path, doc_ids=doc_ids, overwrite=overwrite)
