"""Reading corpora and query sets: JSONL (plain or gzip) with `id`, `text`, optional `title`; plain text
(one document a line); or a folder of .txt / .md files (one document a file, id = relative path)."""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from typing import Iterator

PYDOCS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "pydocs")


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
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_jsonl(path: str) -> bool:
    name = path[:-3] if path.endswith(".gz") else path
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return True
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def read_documents(path: str, *, field: str = "text") -> Iterator[Document]:
    """Documents from a JSONL(.gz) file, a plain-text file or a folder of .txt/.md files.

    Raises ValueError naming the file and line for a JSONL line without an id or the text field, and
    for duplicate ids; ValueError naming the file for truncated or corrupt gzip data."""
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
                if name.endswith((".txt", ".md")):
                    full = os.path.join(root, name)
                    with open(full, encoding="utf-8", errors="replace") as f:
                        text = f.read()
                    yield checked(Document(os.path.relpath(full, path), text), full)
        return
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus not found: {path}")
    if _is_jsonl(path):
        with _open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict) or "id" not in obj or field not in obj:
                    raise ValueError(f"{where}: each line needs an 'id' and a {field!r} field")
                meta = {k: v for k, v in obj.items() if k not in ("id", field)}
                yield checked(Document(str(obj["id"]), str(obj[field]), str(obj.get("title", "")), meta), where)
    else:
        with _open_text(path) as f:
            n = 0
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    yield Document(str(n), line)
                    n += 1


def read_queries(path: str) -> list[Query]:
    """Queries from JSONL(.gz) (`id`, `text`, optional `relevant` ids and `kind`) or plain text."""
    try:
        return _read_queries(path)
    except (EOFError, zlib.error) as e:
        raise ValueError(f"{path}: truncated or corrupt gzip data ({e})") from None


def _read_queries(path: str) -> list[Query]:
    if not _is_jsonl(path):
        with _open_text(path) as f:
            return [Query(str(i), line.strip()) for i, line in enumerate(l for l in f if l.strip())]
    out = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or "text" not in obj:
                raise ValueError(f"{path}:{lineno}: each query needs a 'text' field")
            rel = obj.get("relevant", [])
            if not isinstance(rel, list):
                raise ValueError(f"{path}:{lineno}: 'relevant' must be a list of document ids")
            out.append(Query(str(obj.get("id", lineno)), str(obj["text"]), [str(r) for r in rel], str(obj.get("kind", ""))))
    return out


def pydocs_paths() -> tuple[str, str]:
    """The pydocs corpus and dev queries shipped inside the package."""
    return os.path.join(PYDOCS_DIR, "corpus.jsonl.gz"), os.path.join(PYDOCS_DIR, "queries-dev.jsonl.gz")
