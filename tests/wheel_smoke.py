"""Smoke test of an installed wheel (`make test-wheels`): run by a clean venv's python that holds only the
wheel and numpy, outside the source tree, on the wheel's own architecture (aarch64 under qemu).

Checks: the package imports from the venv (not from the checkout); the core pulled in numpy and nothing
else (no torch); no CUDA module is shipped; info() lists every compiled path of the architecture and runs
the best one this CPU has; MaxSim on every runnable path matches float64 numpy; a small Index builds,
reopens and finds each document with its own tokens as the query.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
import tempfile

import numpy as np

import edgecolbert_native as ec
from isa_variants import COMPILED


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"wheel smoke test FAILED: {what}")


def maxsim_f64(q: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = np.zeros((q.shape[0], len(offsets) - 1))
    for j in range(len(offsets) - 1):
        d = tokens[offsets[j]:offsets[j + 1]].astype(np.float64)
        if len(d):
            out[:, j] = (q.astype(np.float64) @ d.T).max(axis=2).sum(axis=1)
    return out


def main() -> None:
    where = os.path.dirname(os.path.abspath(ec.__file__))
    check(where.startswith(os.path.abspath(sys.prefix)), f"edgecolbert_native imported from {where}, not the venv")
    dist = importlib.metadata.distribution("edgecolbert-native")
    requires = [r for r in (dist.requires or []) if "extra ==" not in r]
    # numpy for the arrays and nothing else: no torch version baked in, progress bars without tqdm
    check(sorted(r.split(">")[0].split("=")[0].strip() for r in requires) == ["numpy"], f"core requirements {requires}")
    check(importlib.util.find_spec("tqdm") is None, "tqdm is installed: the clean venv must hold the core alone")
    check(importlib.util.find_spec("torch") is None, "torch is installed: the core wheel must not pull it")
    check(not [f for f in os.listdir(where) if f.startswith("_cuda")], "the wheel ships a CUDA module")

    info = ec.info()
    machine = platform.machine()
    check(info["compiled"] == COMPILED[machine], f"compiled paths {info['compiled']}, want {COMPILED[machine]}")
    check(info["variant"] == info["variants"][-1], f"chose {info['variant']} of the runnable {info['variants']}")

    rng = np.random.default_rng(0)
    offsets = np.array([0, 13, 13, 40, 41, 100], np.int64)  # an empty document, a one-token one
    tokens = rng.standard_normal((100, 37)).astype(np.float32)
    q = rng.standard_normal((3, 9, 37)).astype(np.float32)
    ref = maxsim_f64(q, tokens, offsets)
    for variant in info["variants"]:
        out = ec.maxsim(q, tokens, offsets, _isa=variant)
        err = float(np.abs(out - ref).max() / np.abs(ref).max())
        check(out.shape == ref.shape and err < 1e-5, f"maxsim on {variant}: relative error {err}")

    lens = rng.integers(5, 30, 300)
    doffsets = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    centres = rng.standard_normal((300, 48)).astype(np.float32)
    dtokens = np.repeat(centres, lens, axis=0) + 0.1 * rng.standard_normal((int(doffsets[-1]), 48)).astype(np.float32)
    dtokens /= np.linalg.norm(dtokens, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "idx")
        ec.Index.build(path, dtokens, doffsets, nbits=2, progress=True)  # the bars without tqdm
        index = ec.Index.open(path)
        probe = np.arange(0, 300, 30)
        queries = np.stack([dtokens[doffsets[i]:doffsets[i] + 5] for i in probe])
        _, ids = index.search(queries, k=3)
        check(np.array_equal(ids[:, 0], probe), f"Index search: top hits {ids[:, 0]}, want {probe}")
    print(f"wheel smoke test passed: {dist.metadata['Name']} {dist.version} on {machine}, "
          f"paths {info['compiled']}, chosen {info['variant']}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
