"""Retrieval quality: MRR@10 and Recall@100 against known relevant ids."""

from __future__ import annotations

from typing import Sequence


def mrr_at(ranked: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int = 10) -> float:
    total = 0.0
    for ids, rel in zip(ranked, relevant):
        rs = set(rel)
        for rank, i in enumerate(ids[:k], 1):
            if i in rs:
                total += 1.0 / rank
                break
    return total / max(1, len(ranked))


def recall_at(ranked: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int = 100) -> float:
    total = 0.0
    n = 0
    for ids, rel in zip(ranked, relevant):
        if not rel:
            continue
        total += len(set(ids[:k]) & set(rel)) / len(set(rel))
        n += 1
    return total / max(1, n)
