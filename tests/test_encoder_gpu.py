"""The encoder on an NVIDIA GPU (issue 6's "bf16/fp16 on GPU"): skipped without CUDA, run as is on a machine
with one. A random-weight ModernBERT ColBERT checkpoint (the 17m shape's structure at test size, local and
global layers, a sequence longer than the sliding window) encoded on the GPU in float32, float16 and
bfloat16 against the CPU float32 encoder: identical kept-token masks and offsets, per-token cosine close to 1.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the encoder needs torch (the `encoder` extra)")
pytest.importorskip("transformers", reason="the test checkpoint is made by transformers (the `test` extra)")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the GPU encoder paths run only where one is present", allow_module_level=True)

import encoder_helpers as H  # noqa: E402
from edgecolbert_native.encoder import Encoder  # noqa: E402

# Minimum per-token cosine against CPU float32: float32 on the GPU (TF32 off) and the half types.
MIN_COSINE = {torch.float32: 0.99999, torch.float16: 0.999, torch.bfloat16: 0.99}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    shape = dict(H.SHAPE_TINY, num_hidden_layers=6)
    return H.modernbert_colbert(str(tmp_path_factory.mktemp("gpu-ckpt")), shape, local_attention=16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gpu_encoder_matches_cpu(checkpoint, dtype):
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu = Encoder.from_pretrained(checkpoint)
    gpu = Encoder.from_pretrained(checkpoint, device="cuda", dtype=dtype)
    docs = H.documents() + [" ".join(["long document text"] * 200)]
    want_t, want_o = cpu.encode_documents(docs)
    got_t, got_o = gpu.encode_documents(docs)
    assert got_t.device.type == "cuda" and got_t.dtype == dtype
    assert torch.equal(got_o.cpu(), want_o)
    cos = torch.nn.functional.cosine_similarity(got_t.float().cpu(), want_t, dim=-1)
    assert float(cos.min()) >= MIN_COSINE[dtype], float(cos.min())
    want_q, want_m = cpu.encode_queries(H.QUERIES)
    got_q, got_m = gpu.encode_queries(H.QUERIES)
    assert torch.equal(got_m.cpu(), want_m)
    cos = torch.nn.functional.cosine_similarity(got_q.float().cpu()[want_m], want_q[want_m], dim=-1)
    assert float(cos.min()) >= MIN_COSINE[dtype], float(cos.min())
