"""fast-plaid 1.4.7's metadata helper (``fast_plaid.filtering``) on this engine's document store.

fast-plaid keeps metadata in ``metadata.db`` next to its index, one row per document keyed by ``_subset_``
(the passage id), and its ``FastPlaid.create/update/delete`` keep that table in step with the documents.
Here the metadata live in the index's own store (index/_docstore.py), written with the documents, so:

- ``where(index, condition, parameters)``: the passage ids whose metadata match, ascending; the condition is
  evaluated by the index's filter (bound parameters; a condition can read nothing but one document's
  fields, where fast-plaid's runs as given on a writable connection);
- ``get(index, condition=None, parameters=(), subset=None)``: rows as dicts, ``_subset_`` first, then every
  field (None where a document lacks it), ordered by passage id, or in the order of ``subset``;
- ``create``, ``update``, ``delete``: fast-plaid's ``FastPlaid`` calls them to keep its separate table in
  step; here ``FastPlaid.create/update(metadata=...)`` and ``FastPlaid.delete`` store and drop metadata with
  their documents, so the three are not needed, and calling them raises a ``ValueError`` that says so rather
  than letting metadata drift from the documents.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...index import Index


def _open(index: str) -> Index:
    if not os.path.exists(os.path.join(os.fspath(index), "manifest.json")):
        raise FileNotFoundError("No metadata database found. Please create it first by\n"
                                "        adding metadata during index creation.")
    return Index.open(index, verify=False)


def where(index: str, condition: str, parameters: tuple | list = ()) -> list[int]:
    """The passage ids (ascending) whose metadata satisfy ``condition`` with ``parameters`` bound."""
    return np.flatnonzero(_match(_open(index), condition, parameters)).tolist()


def _match(idx: Index, condition: str, parameters: Any) -> np.ndarray:
    """One flag per live document (index order = passage order): does its metadata match?"""
    hit = np.zeros(len(idx.live), bool)
    hit[idx.docstore.filter(condition, parameters, "filtering.where")] = True
    return hit[idx.live]


def get(index: str, condition: str | None = None, parameters: tuple | list = (),
        subset: list[int] | None = None) -> list[dict[str, Any]]:
    """Metadata rows as dicts: every row, the rows matching ``condition``, or the rows of ``subset`` in its
    order (duplicates kept, unknown ids skipped)."""
    if condition is not None and subset is not None:
        raise ValueError("Please provide either a 'condition' or a 'subset', not both.")
    idx = _open(index)
    live = np.asarray(idx.ids, np.int64)
    if subset is not None:
        if not subset:
            return []
        pids = [int(p) for p in subset if 0 <= int(p) < len(live)]
    elif condition is not None:
        pids = np.flatnonzero(_match(idx, condition, parameters)).tolist()
    else:
        pids = list(range(len(live)))
    fields = list(idx.fields)
    docs = idx.get(live[pids]) if pids else []
    out = []
    for p, d in zip(pids, docs):
        rec = d["metadata"] or {}
        out.append({"_subset_": p, **{f: rec.get(f) for f in fields}})
    return out


def _not_here(name: str) -> ValueError:
    return ValueError(f"filtering.{name}: in this engine the metadata are stored with their documents: pass "
                      "metadata= to FastPlaid.create / FastPlaid.update, and FastPlaid.delete drops them "
                      "(docs/guide.md, \"fast-plaid users\")")


def create(index: str, metadata: list[dict[str, Any]]) -> None:
    """See the module docstring: use ``FastPlaid.create(..., metadata=...)``."""
    raise _not_here("create")


def update(index: str, metadata: list[dict[str, Any]]) -> None:
    """See the module docstring: use ``FastPlaid.update(..., metadata=...)``."""
    raise _not_here("update")


def delete(index: str, subset: list[int] | int) -> None:
    """See the module docstring: use ``FastPlaid.delete``."""
    raise _not_here("delete")
