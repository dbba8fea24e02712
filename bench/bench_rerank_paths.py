"""Re-rank paths of Index.search: fused maxsim_compressed vs decompress + maxsim on the survivors
(256 documents of 210 tokens, 32 query tokens, 1 thread, best of 7), over dims and nbits.

    .venv/bin/python bench/bench_rerank_paths.py
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    import edgecolbert_native as ec

    rng = np.random.default_rng(0)
    for dim, nbits in ((384, 4), (48, 4), (48, 2), (128, 2)):
        X = rng.standard_normal((60000, dim)).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        cod = ec.ResidualCodec.train(X[:20000], 1024, nbits, num_threads=2, progress=False)
        T = 256 * 210
        c, r = cod.compress(X[:T])
        off = np.arange(0, T + 1, 210, dtype=np.int64)
        q = X[T:T + 32][None].copy()

        def fused():
            return ec.maxsim_compressed(q, c, r, off, cod, num_threads=1)

        def decoded():
            return ec.maxsim(q, cod.decompress(c, r, num_threads=1), off, num_threads=1)

        ta = tb = 1e9
        for _ in range(7):  # alternate, so that load from other jobs falls on both
            t = time.perf_counter()
            fused()
            ta = min(ta, time.perf_counter() - t)
            t = time.perf_counter()
            decoded()
            tb = min(tb, time.perf_counter() - t)
        diff = float(np.abs(fused() - decoded()).max())
        print(f"dim {dim} nbits {nbits}: fused {ta * 1e3:.2f} ms, decode + maxsim {tb * 1e3:.2f} ms, "
              f"ratio {tb / ta:.2f}, max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
