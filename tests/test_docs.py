"""Every ```python block of docs/guide.md runs, in order, in one namespace; what the docs say
``info()`` returns is what it returns."""

from __future__ import annotations

import pathlib
import re

import pytest

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md"


def test_guide_examples_run():
    pytest.importorskip("torch")
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{GUIDE.name}[block {i}]", "exec"), namespace)  # noqa: S102 - our own docs


def test_info_keys_are_documented():
    """The docstring of ``info()`` and docs/guide.md name exactly the keys it returns."""
    import edgecolbert_native as ec
    from edgecolbert_native import kernels

    keys = set(ec.info())
    doc = kernels.info.__doc__ or ""
    documented = set(re.findall(r"``([a-z0-9_]+)``", doc.split("Keys:", 1)[1]))
    documented -= {"os_ymm", "os_zmm"}  # values of ``features``, not keys
    assert documented == keys, f"info() returns {sorted(keys)}, its docstring names {sorted(documented)}"
    guide = GUIDE.read_text()
    paragraph = guide[guide.index("`ec.info()` returns"):]
    paragraph = paragraph[: paragraph.index("\n\n")] if "\n\n" in paragraph else paragraph
    missing = sorted(k for k in keys if f"`{k}`" not in paragraph)
    assert not missing, f"docs/guide.md does not describe info() keys {missing}"
