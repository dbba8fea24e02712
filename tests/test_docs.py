"""Every ```python block of docs/guide.md runs, in order, in one namespace."""

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
