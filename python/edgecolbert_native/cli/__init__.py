"""The `edgecolbert` application (also `python -m edgecolbert_native`), built on the library:

    main.py       argument parsing and the commands (index, search, rerank, demo, bench, info)
    index_dir.py  a CLI index directory: the corpus encoded chunk by chunk (resumable), the index, the
                  documents for snippets, meta.json; opening one and searching it
    corpus.py     reading corpora and query sets (JSONL(.gz), plain text, a folder of .txt/.md)
    demo.py       `edgecolbert demo`: pydocs indexed, searched, and compared with bm25.py's baseline
    bm25.py       the BM25 baseline;  evaluate.py: MRR@k and Recall@k
    bench.py      `edgecolbert bench`: this machine's limits (edgecolbert_native.peaks) and every kernel
                  against them; bench_report.py: its roofline arithmetic, schema v2, --compare, --plot

The library modules (kernels, codec, centroids, index/, encoder/, gpu/, distributed/, integrations/)
never import this package (tests/test_layout.py checks it).
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
