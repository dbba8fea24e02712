"""The CLI's corpus and query readers where they were found to go wrong (review of 6b09e7d): files with a
byte-order mark, a text file whose first line starts with "{", JSONL nulls and non-strings, invalid UTF-8."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from edgecolbert_native.cli import main
from edgecolbert_native.cli.corpus import read_documents, read_queries

BOM = b"\xef\xbb\xbf"
JSONL = b'{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n'


def _docs(path) -> list[tuple[str, str]]:
    return [(d.id, d.text) for d in read_documents(str(path))]


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    for name, data in (("docs.jsonl", JSONL), ("docs.data", JSONL), ("lines.txt", b"alpha\nbeta\n")):
        (tmp_path / name).write_bytes(data)
        (tmp_path / ("bom-" + name)).write_bytes(BOM + data)
        assert _docs(tmp_path / ("bom-" + name)) == _docs(tmp_path / name)
    (tmp_path / "docs.jsonl.gz").write_bytes(gzip.compress(BOM + JSONL))
    assert _docs(tmp_path / "docs.jsonl.gz") == [("a", "alpha"), ("b", "beta")]  # sniffed as JSONL too
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.md").write_bytes(BOM + b"# alpha")
    assert _docs(tmp_path / "folder") == [("a.md", "# alpha")]
    (tmp_path / "q.jsonl").write_bytes(BOM + b'{"id": "q", "text": "hi"}\n')
    (tmp_path / "q.txt").write_bytes(BOM + b"hi\n")
    assert [(q.id, q.text) for q in read_queries(str(tmp_path / "q.jsonl"))] == [("q", "hi")]
    assert [(q.id, q.text) for q in read_queries(str(tmp_path / "q.txt"))] == [("0", "hi")]


def test_the_file_name_decides_the_form_where_it_says_something(tmp_path):
    lines = b"{x: 1} is a dict display in Python\nsets use braces too\n"
    for name in ("snippets.txt", "snippets.md", "snippets.TXT", "snippets.txt.gz"):
        (tmp_path / name).write_bytes(gzip.compress(lines) if name.endswith(".gz") else lines)
        assert _docs(tmp_path / name) == [("0", "{x: 1} is a dict display in Python"), ("1", "sets use braces too")]
    (tmp_path / "q.txt").write_bytes(b'{"text": "a query about braces"}\n')
    assert read_queries(str(tmp_path / "q.txt"))[0].text == '{"text": "a query about braces"}'
    # a name that says nothing: the first line decides
    (tmp_path / "docs").write_bytes(JSONL)
    (tmp_path / "plain").write_bytes(b"alpha\n")
    assert _docs(tmp_path / "docs") == [("a", "alpha"), ("b", "beta")] and _docs(tmp_path / "plain") == [("0", "alpha")]
    (tmp_path / "bad.jsonl").write_bytes(b"alpha\n")  # .jsonl is JSONL, whatever it holds
    with pytest.raises(ValueError, match="bad.jsonl:1: not valid JSON"):
        _docs(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("line,message", [
    ('{"id": "a", "text": null}', "'text' must be a string, not null"),
    ('{"id": "a", "text": ["x", "y"]}', "'text' must be a string, not list"),
    ('{"id": "a", "text": "x", "title": null}', "'title' must be a string, not null"),
    ('{"id": "a", "text": "x", "title": 3}', "'title' must be a string, not int"),
    ('{"id": null, "text": "x"}', "'id' must be a string or an integer, not null"),
    ('{"id": 7.5, "text": "x"}', "'id' must be a string or an integer, not float (write it quoted"),
    ('{"id": true, "text": "x"}', "'id' must be a string or an integer, not bool"),
])
def test_jsonl_nulls_and_non_strings_are_refused_not_stringified(tmp_path, line, message):
    p = tmp_path / "docs.jsonl"
    p.write_text('{"id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"docs.jsonl:2: {message}".replace("(", r"\(")):
        _docs(p)
    q = tmp_path / "q.jsonl"
    q.write_text('{"id": "ok", "text": "fine"}\n' + line.replace('"title"', '"kind"') + "\n")
    if "title" not in line:
        with pytest.raises(ValueError, match="q.jsonl:2: '(id|text)' must be a string"):  # (or an integer)
            read_queries(str(q))
    else:
        with pytest.raises(ValueError, match="q.jsonl:2: 'kind' must be a string"):
            read_queries(str(q))


def test_query_relevant_ids_are_strings(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text('{"text": "x", "relevant": ["a", null]}\n')
    with pytest.raises(ValueError, match="q.jsonl:1: 'relevant' must be a list of document ids"):
        read_queries(str(q))


def test_integer_ids_read_as_their_decimal_string(tmp_path):
    """Corpora often number their documents: {"id": 7} is the id "7" (and a duplicate of "7"), in the
    documents, the queries and their relevant lists alike."""
    p = tmp_path / "docs.jsonl"
    p.write_text('{"id": 7, "text": "seven"}\n{"id": "8", "text": "eight"}\n')
    assert _docs(p) == [("7", "seven"), ("8", "eight")]
    p.write_text('{"id": 7, "text": "seven"}\n{"id": "7", "text": "again"}\n')
    with pytest.raises(ValueError, match="duplicate document id '7'"):
        _docs(p)
    q = tmp_path / "q.jsonl"
    q.write_text('{"id": 1, "text": "x", "relevant": [7, "8"]}\n')
    got = read_queries(str(q))[0]
    assert got.id == "1" and got.relevant == ["7", "8"]


def test_invalid_utf8_names_the_file_and_line(tmp_path, capsys):
    # the bad byte far past the decoder's first block: the line is counted, not the block's first one
    good = "".join(json.dumps({"id": f"d{i}", "text": "x" * 80}) + "\n" for i in range(300)).encode()
    (tmp_path / "docs.jsonl").write_bytes(good + b'{"id": "caf\xe9", "text": "x"}\n')
    (tmp_path / "lines.txt").write_bytes(b"one\n\ntwo \xff\n")
    (tmp_path / "q.jsonl.gz").write_bytes(gzip.compress(b'{"text": "ok"}\n{"text": "caf\xe9"}\n'))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_bytes(b"first\nsecond \xe9\n")
    for reader, path, where in ((_docs, tmp_path / "docs.jsonl", "docs.jsonl:301"),
                                (_docs, tmp_path / "lines.txt", "lines.txt:3"),
                                (lambda p: read_queries(str(p)), tmp_path / "q.jsonl.gz", "q.jsonl.gz:2"),
                                (_docs, tmp_path / "folder", os.path.join("folder", "a.txt") + ":2")):
        with pytest.raises(ValueError, match=f"{where}: not valid UTF-8 \\(byte 0x(e9|ff)\\)"):
            reader(path)
    assert main(["index", str(tmp_path / "lines.txt"), "-o", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lines.txt:3: not valid UTF-8" in err[0]
