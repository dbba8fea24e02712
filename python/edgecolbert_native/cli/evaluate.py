"""Retrieval quality: MRR@10 and Recall@100 against known relevant ids. Both are means over the *judged*
queries (those with at least one relevant id): an unjudged query is neither a hit nor a miss."""

from __future__ import annotations

from typing import Sequence


def judged(relevant: Sequence[Sequence[str]]) -> int:
    """The queries that have relevant ids: the denominator of both measures."""
    return sum(1 for rel in relevant if rel)


def mrr_at(ranked: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int = 10) -> float:
    total = 0.0
    n = 0
    for ids, rel in zip(ranked, relevant):
        if not rel:  # unjudged: skipped, as recall_at skips it (it was counted as a miss here)
            continue
        rs = set(rel)
        for rank, i in enumerate(ids[:k], 1):
            if i in rs:
                total += 1.0 / rank
                break
        n += 1
    return total / max(1, n)


def recall_at(ranked: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int = 100) -> float:
    total = 0.0
    n = 0
    for ids, rel in zip(ranked, relevant):
        if not rel:
            continue
        total += len(set(ids[:k]) & set(rel)) / len(set(rel))
        n += 1
    return total / max(1, n)
