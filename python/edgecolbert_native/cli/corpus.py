"""Reading corpora and query sets: JSONL (plain or gzip) with `id`, `text`, optional `title`; plain text
(one document a line); or a folder of .txt / .md files (one document a file, id = relative path).

Which form a file is: its name decides where it says something (``.jsonl``/``.ndjson``/``.json`` is JSONL,
``.txt``/``.md`` is text, also under ``.gz``); only another name is sniffed (JSONL when the first non-blank
line starts with ``{``). Every file is UTF-8, a leading byte-order mark ignored; invalid UTF-8 is refused,
naming the file and line, in every form (a folder's files too)."""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator

PYDOCS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "pydocs")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class Document:
    id: str
    text: str
    title: str = ""
    # JSONL fields other than the id and the encoded field (the title included, so filters can use it)
    metadata: dict = field(default_factory=dict)


@dataclass
class Query:
    id: str
    text: str
    relevant: list[str] = field(default_factory=list)
    kind: str = ""


def _open_text(path: str) -> io.TextIOWrapper:
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first line. Invalid bytes
    # are kept as lone surrogates, so that _lines can name the line they are on (a strict decoder fails on
    # a whole buffered block, before the lines in it are counted).
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="surrogateescape")
    return open(path, encoding="utf-8-sig", errors="surrogateescape")


def _utf8(text: str, path: str, lineno: int | None = None) -> str:
    """``text`` (decoded with surrogateescape), or a ValueError naming the file, the line (``lineno``, else
    counted in ``text``) and the first invalid byte."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        line = lineno if lineno is not None else text.count("\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8 (byte 0x{ord(text[e.start]) - 0xDC00:02x}); convert "
                         "the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    return text


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text or JSONL file, every line checked to be valid UTF-8."""
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, _utf8(line, path, lineno)


def _is_jsonl(path: str) -> bool:
    name = (path[:-3] if path.endswith(".gz") else path).lower()
    if name.endswith(JSONL_SUFFIXES):
        return True
    if name.endswith(TEXT_SUFFIXES):  # a text line may well start with "{"
        return False
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _string(obj: dict, key: str, where: str, *, ids: bool = False) -> str:
    """``obj[key]`` when it is a string (an id may also be an integer, common in corpora, read as its
    decimal string: 7 and "7" are one id, and a duplicate); null, a float, a bool, a list... are refused,
    not turned into "None", "1.0" or "['x']"."""
    v = obj[key]
    if ids and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        kind = "null" if v is None else type(v).__name__
        hint = ' (write it quoted, "7.5")' if ids and isinstance(v, float) else ""
        raise ValueError(f"{where}: {key!r} must be {'a string or an integer' if ids else 'a string'}, not {kind}{hint}")
    return v


def read_documents(path: str, *, field: str = "text") -> Iterator[Document]:
    """Documents from a JSONL(.gz) file, a plain-text file or a folder of .txt/.md files.

    Raises ValueError naming the file and line for a JSONL line without an id or the text field, for an
    id, text or title that is not a string, for duplicate ids and for invalid UTF-8; ValueError naming the
    file for truncated or corrupt gzip data."""
    try:
        yield from _read_documents(path, field)
    except (EOFError, zlib.error) as e:
        raise ValueError(f"{path}: truncated or corrupt gzip data ({e})") from None


def _read_documents(path: str, field: str) -> Iterator[Document]:
    seen: set[str] = set()

    def checked(doc: Document, where: str) -> Document:
        if doc.id in seen:
            raise ValueError(f"{where}: duplicate document id {doc.id!r}")
        seen.add(doc.id)
        return doc

    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(TEXT_SUFFIXES):
                    full = os.path.join(root, name)
                    with open(full, encoding="utf-8-sig", errors="surrogateescape") as f:
                        text = f.read()
                    _utf8(text, full)  # refused as in the other forms, not replaced by U+FFFD
                    yield checked(Document(os.path.relpath(full, path), text), full)
        return
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus not found: {path}")
    if _is_jsonl(path):
        for lineno, line in _lines(path):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            obj = _json_object(line, where)
            if "id" not in obj or field not in obj:
                raise ValueError(f"{where}: each line needs an 'id' and a {field!r} field")
            doc_id, text = _string(obj, "id", where, ids=True), _string(obj, field, where)
            title = _string(obj, "title", where) if "title" in obj else ""
            meta = {k: v for k, v in obj.items() if k not in ("id", field)}
            yield checked(Document(doc_id, text, title, meta), where)
    else:
        n = 0
        for _, line in _lines(path):
            line = line.rstrip("\n")
            if line.strip():
                yield Document(str(n), line)
                n += 1


def _json_object(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: each line must be a JSON object")
    return obj


def read_queries(path: str) -> list[Query]:
    """Queries from JSONL(.gz) (`id`, `text`, optional `relevant` ids and `kind`, all strings) or plain text
    (the form is chosen as for corpora)."""
    try:
        return _read_queries(path)
    except (EOFError, zlib.error) as e:
        raise ValueError(f"{path}: truncated or corrupt gzip data ({e})") from None


def _read_queries(path: str) -> list[Query]:
    if not _is_jsonl(path):
        return [Query(str(i), line.strip()) for i, line in enumerate(l for _, l in _lines(path) if l.strip())]
    out = []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        obj = _json_object(line, where)
        if "text" not in obj:
            raise ValueError(f"{where}: each query needs a 'text' field")
        rel = obj.get("relevant", [])
        if not isinstance(rel, list):
            raise ValueError(f"{where}: 'relevant' must be a list of document ids")
        if not all(isinstance(r, str) or (isinstance(r, int) and not isinstance(r, bool)) for r in rel):
            raise ValueError(f"{where}: 'relevant' must be a list of document ids (strings or integers, as in "
                             "the corpus)")
        rel = [str(r) for r in rel]
        qid = _string(obj, "id", where, ids=True) if "id" in obj else str(lineno)
        kind = _string(obj, "kind", where) if "kind" in obj else ""
        out.append(Query(qid, _string(obj, "text", where), rel, kind))
    return out


def pydocs_paths() -> tuple[str, str]:
    """The pydocs corpus and dev queries shipped inside the package."""
    return os.path.join(PYDOCS_DIR, "corpus.jsonl.gz"), os.path.join(PYDOCS_DIR, "queries-dev.jsonl.gz")
