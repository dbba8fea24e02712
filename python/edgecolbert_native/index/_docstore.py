"""Documents and metadata of an index: per segment, one immutable SQLite file (Python's ``sqlite3``).

Why SQLite: an embedded, serverless store that ships with Python; it reads one document by key without
parsing the rest (a CLI search on 10^6 documents reads 10 rows), evaluates metadata filters written in SQL
with bound parameters, and has a full-text index with BM25 ranking (FTS5). Why one file per segment,
written like the array files (temporary name, fsync, rename, named by the manifest with its size and
CRC-32, never modified): the all-or-nothing guarantee of the index then covers the documents with no
second mechanism. A killed writer leaves the old manifest, which names the old stores; the new manifest
names stores that were complete on disk before it was written. ``add`` writes a store for the new
segment only, ``delete`` touches no store (tombstones hide the documents), ``compact`` copies the live
rows into one new store. Readers open the files read-only and immutable, so an open index keeps
reading its snapshot after a writer replaced and unlinked them, as it does with the mapped arrays.

Layout of one store (every rowid is the segment's local document number, 0..n-1, one row per document):

    info(key TEXT PRIMARY KEY, value)    format, format_version, num_docs
    docs(text TEXT, metadata TEXT)       the text (or NULL) and the metadata record as JSON (or NULL): what
                                         ``get`` returns; written as the documents stream in, once
    metadata("<field>" <type>, ...)      one column per metadata field, for filters, filled from the JSON by
                                         SQLite once every record was seen: TEXT for strings, INTEGER for ints
                                         and booleans, REAL for floats, TEXT (JSON) for lists, no type where a
                                         field mixes kinds; NULL where absent
    fts(text)                            FTS5 over docs.text (external content: the text is stored once),
                                         when the segment has texts

Filters (``where``) are one SQL expression over the metadata fields, run as
``SELECT rowid, ... FROM <view> WHERE (<where>)`` with the parameters bound by SQLite, on a read-only
connection with an authorizer that allows nothing but reading the fields through that view (whose name is
random, so a filter cannot name it), SQL functions other than ``load_extension``/``random``/``randomblob``,
and ``json_each``/``json_tree`` over a field: no write, no ATTACH, no PRAGMA, no table (``sqlite_master``,
the texts, the metadata table itself: no subquery over other documents), no recursive CTE. A filter is thus
a deterministic function of one document's fields, which is what makes it exact on an index of several
segments (each segment is filtered on its own) and on segments written without metadata (their fields are
all NULL: the filter is evaluated once, on one row of NULLs).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import sqlite3
import threading
import unicodedata
import urllib.parse
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ._storage import CorruptIndexError, check_file, file_crc32

STORE_FORMAT = "edgecolbert-docstore"
STORE_VERSION = 1
# Filters longer than this are refused before SQLite parses them (a filter is an expression, not data:
# long IN lists belong in the parameters).
MAX_WHERE_CHARS = 1 << 16
# Values a filter may build while it runs (SQLite's limit is 1e9 bytes): zeroblob(1e9) and printf with a
# huge width stop here.
_FILTER_MAX_LENGTH = 1 << 26
# Filters run on a TEMP VIEW of the metadata table with a random name (per connection): reads through it are
# the only reads the authorizer allows, and a filter cannot name it, so it cannot read other documents'
# rows through it either. (Counting the view's expansions instead breaks on SQLite's re-preparation of a
# statement whose LIKE pattern is a bound parameter, which authorizes the statement a second time.)
_VIEW_PREFIX = "doc_fields_"
_RESERVED = "rowid"  # the view exposes the document number under this name; no field may take it
# The filter query also reads one real column of the table through the view under this name: a query that
# reads no column makes SQLite authorize a bare table scan, which the authorizer must refuse to users.
_READ_COLUMN = "_ec_read_"
_DENIED_FUNCTIONS = frozenset({"load_extension", "random", "randomblob"})
_TABLE_FUNCTIONS = frozenset({"json_each", "json_tree"})
# The FTS5 tokenizer of the full-text index (docs/guide.md, "Hybrid search", says why).
FTS_TOKENIZE = "porter unicode61"
# The query's words as unicode61 separates them: letters and digits (an underscore is a separator there, and
# "foo_bar" quoted as one phrase would ask for "foo" directly followed by "bar").
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class FilterError(ValueError):
    """A ``where`` filter that is not valid SQL, names an unknown field, or does what filters may not."""


# --------------------------------------------------------------------------- validation
def _string(v: str) -> str:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{v[:40]!r} is not valid Unicode ({e.reason})") from None
    return v


def _scalar(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, int):
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError(f"integer {v} does not fit in 64 bits")
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v} is not a finite number (not JSON)")
        return v
    raise TypeError(f"{type(v).__name__} is not a string, number, boolean or null")


def _value(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_scalar(x) for x in v]
    if isinstance(v, np.ndarray) and v.ndim == 1:
        return [_scalar(x) for x in v.tolist()]
    return _scalar(v)


def _kind(v: Any) -> str:
    if isinstance(v, (bool, int)):
        return "INTEGER"
    if isinstance(v, float):
        return "REAL"
    if isinstance(v, str):
        return "TEXT"
    return "TEXT"  # a list, stored as JSON text


def merge_types(a: str | None, b: str) -> str:
    """The column type of a field holding values of both kinds (None: nothing seen yet)."""
    if a is None or a == b:
        return b
    if {a, b} == {"INTEGER", "REAL"}:
        return "REAL"
    return ""  # mixed kinds: no type affinity, values kept as given


def union_fields(field_types: Iterable[dict[str, str]]) -> dict[str, str]:
    """Every field of several stores, in first-seen order, with one column type for all of them."""
    out: dict[str, str] = {}
    for d in field_types:
        for k, t in d.items():
            out[k] = merge_types(out.get(k), t)
    return out


def check_documents(texts: Any, metadata: Any, n: int, fn: str) -> None:
    """The checks that need no pass over the documents (done before any vector is compressed): the
    containers' types and, where they have one, their lengths. The values are checked as they are
    written (``texts`` and ``metadata`` may be iterators, read once)."""
    for arg, v, one in (("texts", texts, str), ("metadata", metadata, dict)):
        if v is None:
            continue
        if isinstance(v, one):
            raise TypeError(f"{fn}: {arg} must be a sequence (one entry per document), got one {one.__name__}")
        if hasattr(v, "__len__") and len(v) != n:
            raise ValueError(f"{fn}: {arg} has {len(v)} entries for {n} documents")


# Characters JSON escapes in a key: the columns are filled by json_extract with the key as a quoted path
# label, which SQLite compares with the stored (escaped) key text, so such a field would read NULL everywhere.
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


class DocumentChecker:
    """Validates texts and metadata records one document at a time, and learns each field's column type.
    Field names are SQL column names, which ignore case: two spellings of one name (in these documents or
    against the index's ``known_fields``) and the reserved names are refused; so are the characters JSON
    escapes (field names are JSON paths when the metadata table is filled)."""

    def __init__(self, fn: str, known_fields: Iterable[str]) -> None:
        self.fn = fn
        self.spelling = {f.lower(): f for f in known_fields}
        self.kinds: dict[str, str | None] = {}
        self.any_text = False

    def text(self, t: Any, i: int) -> str | None:
        if t is None:
            return None
        if not isinstance(t, str):
            raise TypeError(f"{self.fn}: texts[{i}] is {type(t).__name__}, expected str or None")
        try:
            _string(t)
        except ValueError as e:
            raise ValueError(f"{self.fn}: texts[{i}]: {e}") from None
        self.any_text = True
        return t

    def record(self, rec: Any, i: int) -> str | None:
        """The record as JSON text (None for no record)."""
        if rec is None:
            return None
        if not isinstance(rec, dict):
            raise TypeError(f"{self.fn}: metadata[{i}] is {type(rec).__name__}, expected a dict or None")
        clean = {}
        for key, v in rec.items():
            if not isinstance(key, str) or not key or _JSON_ESCAPED.search(key):
                raise ValueError(f"{self.fn}: metadata[{i}] has the key {key!r}; keys are non-empty strings "
                                 "without double quotes, backslashes or control characters")
            low = key.lower()
            if low in (_RESERVED, _READ_COLUMN):
                raise ValueError(f"{self.fn}: metadata[{i}]: the field name {key!r} is reserved")
            if self.spelling.setdefault(low, key) != key:
                raise ValueError(f"{self.fn}: metadata[{i}]: the field {key!r} differs from {self.spelling[low]!r} "
                                 "only in case; field names are SQL column names, which ignore case")
            try:
                val = _value(v)
                _string(key)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{self.fn}: metadata[{i}][{key!r}]: {e}") from None
            clean[key] = val
            if val is None:
                self.kinds.setdefault(key, None)
            else:
                self.kinds[key] = merge_types(self.kinds.get(key), _kind(val))
        return json.dumps(clean, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def types(self) -> dict[str, str]:
        # a field that only ever held null gets no type affinity
        return {k: t or "" for k, t in self.kinds.items()}


def _typed(column: str, own: str, merged: str) -> str:
    """A segment's column read with its field's index-wide type: SQLite compares and divides by a column's
    type affinity, so a filter would otherwise depend on the segment (and change when ``compact`` writes
    one store with the merged types). ``+column`` has no affinity, as a column that mixes kinds."""
    if own == merged:
        return column
    return f"+{column}" if merged == "" else f"CAST({column} AS {merged})"


def _q(name: str) -> str:
    """A field name as an SQL identifier (quoted, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _uri(path: str, mode: str) -> str:
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?" + mode


# --------------------------------------------------------------------------- writing
class _StoreWriter:
    """Writes one store at ``dirpath/name`` via ``name.tmp``: document rows first (``append``, ``copy_from``),
    then ``finish(fields, with_text)`` fills the metadata table from the rows' JSON in SQLite (so the
    records stream through once, and a field's type is known before its column is made), builds the
    full-text index, makes the file durable and returns the manifest entry. SQLite's own journal is off:
    the file is renamed into place complete, or never."""

    def __init__(self, dirpath: str, name: str) -> None:
        self.dirpath, self.name = dirpath, name
        self.tmp = os.path.join(dirpath, name + ".tmp")
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
        self.n = 0
        self.conn = sqlite3.connect(_uri(self.tmp, "mode=rwc"), uri=True, isolation_level=None)
        try:
            c = self.conn
            c.execute("PRAGMA journal_mode=OFF")
            c.execute("PRAGMA synchronous=OFF")
            c.execute("BEGIN")
            c.execute("CREATE TABLE info(key TEXT PRIMARY KEY, value)")
            c.execute("CREATE TABLE docs(text TEXT, metadata TEXT)")
        except sqlite3.OperationalError as e:
            self.abort()
            raise _disk_error(e, self.tmp) from e

    def append(self, texts: Iterable | None, records: Iterable | None, count: int, check: DocumentChecker) -> None:
        """Appends ``count`` documents, numbered on from the last; each iterable must hold exactly ``count``."""
        base = self.n
        fn = check.fn
        t_it = iter(texts) if texts is not None else None
        r_it = iter(records) if records is not None else None
        missing = object()

        def rows() -> Iterator[tuple[int, str | None, str | None]]:
            for i in range(count):
                t = next(t_it, missing) if t_it is not None else None
                r = next(r_it, missing) if r_it is not None else None
                if t is missing or r is missing:
                    raise ValueError(f"{fn}: {'texts' if t is missing else 'metadata'} has {i} entries for "
                                     f"{count} documents")
                yield base + i, check.text(t, i), check.record(r, i)
            for it, arg in ((t_it, "texts"), (r_it, "metadata")):
                if it is not None and next(it, missing) is not missing:
                    raise ValueError(f"{fn}: {arg} has more entries than the {count} documents")

        self.conn.executemany("INSERT INTO docs(rowid, text, metadata) VALUES (?, ?, ?)", rows())
        self.n += count

    def copy_from(self, src_path: str, old_local: np.ndarray) -> None:
        """Appends the rows ``old_local`` (in that order) of another store, renumbered."""
        c = self.conn
        c.execute("COMMIT")  # SQLite attaches and detaches only between transactions
        c.execute("ATTACH DATABASE ? AS src", (_uri(src_path, "mode=ro&immutable=1"),))
        c.execute("BEGIN")
        try:
            c.execute("CREATE TEMP TABLE renumber(old INTEGER PRIMARY KEY, new INTEGER)")
            c.executemany("INSERT INTO renumber(old, new) VALUES (?, ?)",
                          zip(old_local.tolist(), range(self.n, self.n + len(old_local))))
            c.execute("INSERT INTO docs(rowid, text, metadata) SELECT r.new, d.text, d.metadata "
                      "FROM src.docs AS d JOIN renumber AS r ON d.rowid = r.old ORDER BY r.new")
            c.execute("DROP TABLE renumber")
        finally:
            c.execute("COMMIT")
            c.execute("DETACH DATABASE src")
            c.execute("BEGIN")
        self.n += len(old_local)

    def finish(self, fields: dict[str, str], with_text: bool) -> dict:
        c = self.conn
        cols = ", ".join(f"{_q(k)} {t}".rstrip() for k, t in fields.items())
        c.execute(f"CREATE TABLE metadata({cols or '_unused_ INTEGER'})")
        # json_extract gives a JSON string as TEXT, a number as INTEGER/REAL, true/false as 1/0 and a list as
        # its JSON text: the values filters compare with
        keys = list(fields)
        c.execute(f"INSERT INTO metadata(rowid{''.join(', ' + _q(k) for k in keys)}) SELECT rowid"
                  f"{', json_extract(metadata, ?)' * len(keys)} FROM docs ORDER BY rowid",
                  [f'$."{k}"' for k in keys])
        c.executemany("INSERT INTO info(key, value) VALUES (?, ?)",
                      [("format", STORE_FORMAT), ("format_version", STORE_VERSION), ("num_docs", self.n)])
        if with_text:
            c.execute(f"CREATE VIRTUAL TABLE fts USING fts5(text, content='docs', tokenize='{FTS_TOKENIZE}')")
            c.execute("INSERT INTO fts(fts) VALUES('rebuild')")
        c.execute("COMMIT")
        c.close()
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = os.path.join(self.dirpath, self.name)
        os.replace(self.tmp, final)
        crc, size = file_crc32(final)
        return {"file": self.name, "bytes": size, "crc32": f"{crc:08x}", "num_docs": self.n,
                "fields": fields, "text": with_text}

    def abort(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
        for p in (self.tmp, self.tmp + "-journal"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def _disk_error(e: sqlite3.Error, path: str) -> OSError:
    """SQLite reports a failed write (a full disk, a file size limit) as its own error, without the
    system's errno: raised as the OSError every other failed write of an index is."""
    name = getattr(e, "sqlite_errorname", "")
    code = errno.ENOSPC if name == "SQLITE_FULL" else errno.EIO
    return OSError(code, f"writing the document store failed ({name or 'SQLite'}: {e}; is the disk full?)", path)


@contextlib.contextmanager
def _writing(w: _StoreWriter) -> Iterator[_StoreWriter]:
    """Removes the partial store on any error; a failed SQLite write surfaces as an OSError."""
    try:
        yield w
    except sqlite3.OperationalError as e:
        w.abort()
        raise _disk_error(e, w.tmp) from e
    except BaseException:
        w.abort()
        raise


def write_store(dirpath: str, name: str, texts: Any, metadata: Any, n: int, fn: str,
                known_fields: Iterable[str] = ()) -> dict | None:
    """The store of a new segment of ``n`` documents (``texts``: str or None each; ``metadata``: dict or None
    each; sequences or iterators, read once), or None when neither is given."""
    if texts is None and metadata is None:
        return None
    check_documents(texts, metadata, n, fn)
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    with _writing(_StoreWriter(dirpath, name)) as w:
        check = DocumentChecker(fn, known_fields)
        w.append(texts, metadata, n, check)
        return w.finish(check.types(), check.any_text)


def compact_stores(dirpath: str, name: str, parts: list[tuple[Any, np.ndarray]]) -> dict | None:
    """One store holding, in order, the documents ``keep`` of each ``(SegmentStore or None, keep)``; None when no
    part has a store. Parts without a store contribute documents with no text and no metadata."""
    stores = [s for s, _ in parts if s is not None]
    if not stores:
        return None
    with _writing(_StoreWriter(dirpath, name)) as w:
        for s, keep in parts:
            if s is None:
                w.append(None, (None for _ in range(len(keep))), len(keep), DocumentChecker("Index.compact", ()))
            elif len(keep):
                w.copy_from(s.path, np.asarray(keep, np.int64))
        return w.finish(union_fields(s.fields for s in stores), any(s.with_text for s in stores))


# --------------------------------------------------------------------------- reading
class SegmentStore:
    """A segment's store, opened read-only and immutable (checked against its manifest entry)."""

    def __init__(self, dirpath: str, entry: dict, num_docs: int, verify: bool) -> None:
        try:
            name, nbytes = entry["file"], int(entry["bytes"])
            self.fields = {str(k): str(v) for k, v in dict(entry.get("fields", {})).items()}
            self.with_text = bool(entry.get("text", False))
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptIndexError(os.path.join(dirpath, "manifest.json"), f"malformed store entry {entry!r}: {e}") from None
        self.path = path = check_file(dirpath, name, nbytes, entry.get("crc32"), verify)
        self.n = num_docs
        self.lock = threading.Lock()
        self.view: str | None = None
        try:
            self.conn = sqlite3.connect(_uri(path, "mode=ro&immutable=1"), uri=True, check_same_thread=False)
            info = dict(self.conn.execute("SELECT key, value FROM info").fetchall())
            cols = [r[1] for r in self.conn.execute("PRAGMA main.table_info(metadata)").fetchall()]
            self.first_column = cols[0]
            # min and max, each on its own, come from the b-tree's ends (count(*), or both in one SELECT,
            # read every page: 0.5 s for 10^6 documents); with unique rowids in [0, n) all n rows are there
            n_rows = (self.conn.execute("SELECT min(rowid) FROM docs").fetchone()[0],
                      self.conn.execute("SELECT max(rowid) FROM docs").fetchone()[0])
        except sqlite3.DatabaseError as e:
            raise CorruptIndexError(path, f"not a readable document store: {e}") from None
        if info.get("format") != STORE_FORMAT or info.get("format_version") != STORE_VERSION:
            raise CorruptIndexError(path, f"not a {STORE_FORMAT} version {STORE_VERSION} file")
        if info.get("num_docs") != num_docs or (num_docs and tuple(n_rows) != (0, num_docs - 1)) or (
                not num_docs and n_rows[0] is not None):
            raise CorruptIndexError(path, f"holds documents {n_rows[0]}..{n_rows[1]}, the segment {num_docs}")
        if set(self.fields) - set(cols):
            raise CorruptIndexError(path, "metadata columns do not match the manifest")
        # json_each/json_tree register themselves in the schema on first use, a write the filters'
        # authorizer would refuse: use them once here.
        self.conn.execute("SELECT * FROM json_each('[]'), json_tree('[]')").fetchall()

    def rows(self, local: np.ndarray) -> list[tuple[str | None, dict | None]]:
        out: dict[int, tuple] = {}
        ids = np.unique(local).tolist()
        with self.lock:
            for i in range(0, len(ids), 900):  # SQLite's default limit on bound parameters is 32,766
                part = ids[i:i + 900]
                q = f"SELECT rowid, text, metadata FROM docs WHERE rowid IN ({','.join('?' * len(part))})"
                for rowid, text, meta in self.conn.execute(q, part):
                    out[rowid] = (text, json.loads(meta) if meta is not None else None)
        return [out[int(i)] for i in local]

    def close(self) -> None:
        self.conn.close()

    def __del__(self) -> None:
        # A sqlite3 connection sits in a reference cycle of its own, so without this its file descriptor
        # and page cache outlived a replaced state until the cyclic GC ran: every commit or reload opens
        # each segment's store again (1,600 fds after 60 adds and reloads). A state a reader's snapshot
        # still holds keeps its stores referenced, so this runs only when nothing can use them.
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()


class _Authorizer:
    """Allows a filter to read the metadata fields through the view and nothing else (see the module
    docstring); remembers why it refused, for the error message."""

    def __init__(self, view: str) -> None:
        self.view = view
        self.denied: str | None = None

    def __call__(self, action: int, a1: str | None, a2: str | None, db: str | None, src: str | None) -> int:
        ok = sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_SELECT:
            return ok
        if action == sqlite3.SQLITE_READ:
            # through the view only; a1 == "metadata" with a2 == "" is a bare scan of the table (count(*))
            if (a1 == "metadata" and db == "main" and src == self.view and a2) or (
                    a1 == self.view and db == "temp" and src is None):
                return ok
            if a1 in _TABLE_FUNCTIONS:
                return ok
            return self._deny(f"reading {a1!r}" + (f".{a2!r}" if a2 else "") + " (filters read only the metadata fields)")
        if action == sqlite3.SQLITE_FUNCTION:
            if (a2 or "").lower() in _DENIED_FUNCTIONS:
                return self._deny(f"calling {a2}()")
            return ok
        if action == sqlite3.SQLITE_RECURSIVE:
            return self._deny("a recursive common table expression")
        names = {getattr(sqlite3, n): n for n in dir(sqlite3) if n.startswith("SQLITE_")}
        return self._deny(f"{names.get(action, action)} {a1 or ''} {a2 or ''}".strip())

    def _deny(self, what: str) -> int:
        if self.denied is None:
            self.denied = what
        return sqlite3.SQLITE_DENY


def _filter_error(e: Exception, where: str, fields: Sequence[str], auth: _Authorizer, fn: str) -> FilterError:
    msg = str(e)
    if auth.denied is not None:
        return FilterError(f"{fn}: where {where!r} is not allowed: {auth.denied}")
    m = re.match(r"no such column: (.*)", msg)
    if m:
        known = ", ".join(fields) if fields else "none: this index has no metadata"
        return FilterError(f"{fn}: where {where!r} names an unknown field {m.group(1)!r} (fields: {known})")
    m = re.match(r"no such function: (.*)", msg)
    if m:
        return FilterError(f"{fn}: where {where!r} calls an unknown SQL function {m.group(1)!r}")
    if "syntax error" in msg or "incomplete input" in msg or "unrecognized token" in msg:
        return FilterError(f"{fn}: where {where!r} is not a valid SQL expression ({msg})")
    if "one statement" in msg:
        return FilterError(f"{fn}: where {where!r} must be one SQL expression, not several statements")
    if "binding" in msg.lower() or "bindings" in msg.lower():
        return FilterError(f"{fn}: where {where!r}: the parameters do not fit its placeholders ({msg})")
    return FilterError(f"{fn}: where {where!r} failed: {msg}")


def _outside_expression(where: str) -> str | None:
    """Why ``where`` could reach past the parentheses it is run in (``WHERE (<where>)``), or None: a closing
    parenthesis that matches none of its own, or a block comment left open (SQLite ends it at the end of
    the input, so it would swallow the closing parenthesis), either of which would let LIMIT, UNION or
    GROUP BY act on the whole query. Literals, quoted names and comments are skipped as SQLite reads them."""
    closers = {"'": "'", '"': '"', "`": "`", "[": "]"}
    depth, i, n = 0, 0, len(where)
    while i < n:
        c = where[i]
        if c in closers:
            end = where.find(closers[c], i + 1)
            # a doubled quote inside a literal or quoted name is one quote ([...] has no escape)
            while end >= 0 and c != "[" and where.startswith(c, end + 1):
                end = where.find(c, end + 2)
            if end < 0:
                return None  # unterminated: SQLite refuses it
            i = end + 1
            continue
        if where.startswith("--", i):
            end = where.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if where.startswith("/*", i):
            end = where.find("*/", i + 2)
            if end < 0:
                return "a block comment (/*) that is never closed"
            i = end + 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return "a closing parenthesis without its opening one"
        i += 1
    return None


def check_where(where: Any, params: Any, fn: str) -> Any:
    """The checks a filter passes before any store reads it (the sharded search makes them before its
    fan-out); -> ``params`` as bound."""
    if not isinstance(where, str):
        raise TypeError(f"{fn}: where must be a string (an SQL expression over the metadata fields), got {type(where).__name__}")
    if len(where) > MAX_WHERE_CHARS:
        raise FilterError(f"{fn}: where is {len(where):,} characters long; at most {MAX_WHERE_CHARS:,} "
                          "(pass long lists as parameters)")
    if "\x00" in where:
        raise FilterError(f"{fn}: where contains a NUL character")
    why = _outside_expression(where)
    if why is not None:
        raise FilterError(f"{fn}: where {where!r} must be one SQL expression; it has {why}")
    return _bindable(params, fn)


def _bindable(params: Any, fn: str) -> Any:
    if params is None:
        return ()
    if isinstance(params, dict):
        return {k: _param(v, fn) for k, v in params.items()}
    if isinstance(params, (str, bytes)):
        raise TypeError(f"{fn}: params must be a sequence (or a dict for :named placeholders), got {type(params).__name__}")
    return tuple(_param(v, fn) for v in params)


def _param(v: Any, fn: str) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (int, float, str, bytes)):
        return v
    raise TypeError(f"{fn}: a filter parameter must be a string, number, boolean, bytes or None, got {type(v).__name__}")


class DocumentStore:
    """The stores of an index's segments, addressed by global document position."""

    def __init__(self, parts: list[tuple[int, int, SegmentStore | None]]) -> None:
        self.parts = parts  # (base, n, store) per segment, in order
        self.total = sum(n for _, n, _ in parts)
        self.fields = union_fields(s.fields for _, _, s in parts if s is not None)
        self._null_conn: sqlite3.Connection | None = None
        self._null_view = ""
        self.lock = threading.Lock()

    @property
    def has_text(self) -> bool:
        return any(s is not None and s.with_text for _, _, s in self.parts)

    def close(self) -> None:
        for _, _, s in self.parts:
            if s is not None:
                s.close()

    # ------------------------------------------------------------------ get
    def get(self, positions: np.ndarray) -> list[tuple[str | None, dict | None]]:
        out: list[tuple[str | None, dict | None]] = [(None, None)] * len(positions)
        for base, n, s in self.parts:
            sel = np.flatnonzero((positions >= base) & (positions < base + n))
            if len(sel) and s is not None:
                for i, row in zip(sel.tolist(), s.rows(positions[sel] - base)):
                    out[i] = row
        return out

    # ------------------------------------------------------------------ filters
    def _make_view(self, conn: sqlite3.Connection, own: dict[str, str], first_column: str) -> str:
        view = _VIEW_PREFIX + secrets.token_hex(8)
        cols = "".join(f", {_typed('m.' + _q(k), own[k], t)} AS {_q(k)}" if k in own else f", NULL AS {_q(k)}"
                       for k, t in self.fields.items())
        conn.execute(f"CREATE TEMP VIEW {view} AS SELECT m.rowid AS {_RESERVED}, m.{_q(first_column)} AS "
                     f"{_READ_COLUMN}{cols} FROM main.metadata AS m")
        return view

    def _null_connection(self) -> tuple[sqlite3.Connection, str]:
        """One document with every field NULL: the filter's value on segments written without metadata."""
        if self._null_conn is None:
            c = sqlite3.connect(":memory:", check_same_thread=False)
            cols = [_q(k) for k in self.fields] or ["_unused_"]
            c.execute(f"CREATE TABLE metadata({', '.join(cols)})")
            c.execute("INSERT INTO metadata(rowid) VALUES (0)")
            self._null_view = self._make_view(c, self.fields, next(iter(self.fields), "_unused_"))
            c.execute("SELECT * FROM json_each('[]'), json_tree('[]')").fetchall()
            self._null_conn = c
        return self._null_conn, self._null_view

    def _run(self, conn: sqlite3.Connection, view: str, where: str, params: Any, fn: str) -> list[int]:
        auth = _Authorizer(view)
        old_len = conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _FILTER_MAX_LENGTH)
        conn.set_authorizer(auth)
        try:
            sql = f"SELECT {_RESERVED}, {_READ_COLUMN} FROM {view} WHERE (\n{where}\n)"
            return [r[0] for r in conn.execute(sql, params)]
        except (sqlite3.Error, OverflowError) as e:
            raise _filter_error(e, where, list(self.fields), auth, fn) from None
        finally:
            conn.set_authorizer(None)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, old_len)

    def filter(self, where: str, params: Any, fn: str) -> np.ndarray:
        """The positions (sorted) whose metadata satisfy ``where`` with ``params`` bound."""
        bound = check_where(where, params, fn)
        hits = []
        null_result: bool | None = None
        for base, n, s in self.parts:
            if s is None:
                if null_result is None:
                    with self.lock:
                        null_result = bool(self._run(*self._null_connection(), where, bound, fn))
                if null_result:
                    hits.append(np.arange(base, base + n, dtype=np.int64))
                continue
            with s.lock:
                if s.view is None:
                    s.view = self._make_view(s.conn, s.fields, s.first_column)
                local = self._run(s.conn, s.view, where, bound, fn)
            hits.append(np.asarray(local, np.int64) + base)
        return np.sort(np.concatenate(hits)) if hits else np.empty(0, np.int64)

    # ------------------------------------------------------------------ full text
    def lexical(self, text: str, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BM25 top-k (FTS5's ``bm25()``, k1 1.2, b 0.75; statistics per segment) among the allowed
        positions: (positions, scores), best first. Words of ``text`` are OR-ed, each quoted, so no query
        text is read as FTS5 syntax."""
        # NFC first: a decomposed "é" (e + a combining accent, not a letter to the pattern) would split the word
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(unicodedata.normalize("NFC", text))))
        if not words or k < 1:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        pos_all, score_all = [], []
        for base, n, s in self.parts:
            if s is None or not s.with_text:
                continue
            ok = allowed[base:base + n]
            limit = max(4 * k, 64)
            while True:
                with s.lock:
                    rows = s.conn.execute("SELECT rowid, -bm25(fts) FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?",
                                          (match, limit)).fetchall()
                if not rows:
                    break
                local = np.fromiter((r[0] for r in rows), np.int64, len(rows))
                scores = np.fromiter((r[1] for r in rows), np.float64, len(rows))
                keep = ok[local]
                if int(keep.sum()) >= k or len(rows) < limit:
                    pos_all.append(local[keep] + base)
                    score_all.append(scores[keep])
                    break
                limit *= 4
        if not pos_all:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        pos, scores = np.concatenate(pos_all), np.concatenate(score_all)
        order = np.lexsort((pos, -scores))[:k]
        return pos[order], scores[order].astype(np.float32)
