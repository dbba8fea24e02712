"""Checkpoints for the encoder tests, made on the spot by the reference libraries (nothing downloaded).

Tokenizers are trained here with `tokenizers`; transformers builds and saves the random-weight backbone;
PyLate wraps it (adding its Dense head and the "[Q] "/"[D] " tokens) and saves the ColBERT checkpoint,
which both PyLate and our encoder then load from disk.
"""

from __future__ import annotations

import json
import os
import pytest

# Text with what tokenisation must get right: punctuation (the skiplist), code, case, non-ASCII, spaces.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, World! (foo) [bar] {baz}; x = 1 + 2 * 3 / 4 - 5 ... ok?",
    "def f(x): return x ** 2  # a comment, with: punctuation!",
    "ColBERT scores a query against a document with MaxSim: for every query token, the best document token.",
    "Late interaction keeps one vector per token; PLAID compresses them with centroids and residuals.",
    "Ünïcödé text, naïve café — «quotes» and ‘apostrophes’ — 東京 2024.",
    "import numpy as np; np.linalg.norm(a - b, axis=-1) <= 1e-5 or raise ValueError('bad')",
    "Python's asyncio: await asyncio.gather(*tasks, return_exceptions=True) -> list[Any]",
    "URLs like https://example.com/a?b=c&d=e#frag and e-mails like someone@example.org.",
    "Numbers: 3.14159, 2,718, -42, 1e10, 0x1F, 50% off, $19.99, #1 (first)!",
]

QUERIES = [
    "what is late interaction?",
    "How do I compute a NORM in numpy",
    "",
    "!!!???...",
    "asyncio gather return_exceptions " * 12,  # longer than the query length: truncated
]


def documents() -> list[str]:
    long_doc = " ".join(CORPUS)  # well past the 128-token window of the edge models
    return [
        CORPUS[0],
        "",  # empty: [CLS] [D] [SEP] only
        ".,;:!?()[]{}<>\"'`~@#$%^&*-_=+|\\/",  # nothing but punctuation
        CORPUS[1],
        CORPUS[5],
        " ".join(CORPUS[:4]),  # between one and two windows long
        long_doc,
        long_doc * 4,  # truncated at the document length
        "   leading and trailing whitespace   ",
    ]


def import_pylate():
    """PyLate goes in with --no-deps (its fast-plaid would replace the pinned torch); its package __init__
    imports `datasets`, so `datasets` must be installed beside it (see the test extra)."""
    try:
        from pylate import models
    except ImportError as e:
        pytest.skip(f"pylate (test extra, installed with --no-deps) is not importable: {e}")
    return models


def _training_text() -> list[str]:
    return (CORPUS + QUERIES + [d.lower() for d in CORPUS]) * 20


def bpe_tokenizer(vocab_size: int, lowercase_normalizer: bool = False, training_text: list[str] | None = None,
                  trained_size: int = 1200):
    """A byte-level BPE like ModernBERT's, padded with never-produced filler tokens up to vocab_size so
    that the embedding matrix has the real checkpoints' shape."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=trained_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_text or _training_text(), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    for i in range(vocab_size - len(vocab)):
        vocab[f"<filler_{i}>"] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok.model = models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]")
    if lowercase_normalizer:
        tok.normalizer = normalizers.Lowercase()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    assert tok.get_vocab_size() == vocab_size
    return _wrap(tok)


def wordpiece_tokenizer():
    """A BERT-style WordPiece (lower-casing normaliser) with [unused0]/[unused1] for colbert-ai."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    # The vocabulary is built here, not by tokenizers' WordPieceTrainer, whose ties fall differently from
    # one process to the next (its hash maps are randomly seeded): a checkpoint made twice must be the same
    # checkpoint (the aarch64 run compares with outputs stored from an x86 run). Every character and its
    # "##" continuation, then the most frequent words (ties by spelling), up to 600 entries.
    counts: dict[str, int] = {}
    for text in _training_text():
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for w in counts for c in w})
    vocab = specials + chars + ["##" + c for c in chars]
    vocab += [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in set(vocab)]
    tok.model = models.WordPiece({t: i for i, t in enumerate(vocab[:600])}, unk_token="[UNK]")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return _wrap(tok)


def _wrap(tok):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", pad_token="[PAD]", unk_token="[UNK]")


# The edge models' shapes (config.json of mxbai-edge-colbert-v0-17m / -32m).
SHAPE_17M = dict(num_hidden_layers=7, hidden_size=256, intermediate_size=384, num_attention_heads=4, dim=48)
SHAPE_32M = dict(num_hidden_layers=10, hidden_size=384, intermediate_size=576, num_attention_heads=6, dim=64)
SHAPE_TINY = dict(num_hidden_layers=4, hidden_size=64, intermediate_size=96, num_attention_heads=2, dim=16)


def modernbert_colbert(root: str, shape: dict, *, vocab_size: int = 50368, local_attention: int = 128,
                       query_length: int = 48, document_length: int = 512, do_query_expansion: bool = False,
                       attend_to_expansion_tokens: bool = False, dense_dims: tuple[int, ...] | None = None,
                       do_lower_case: bool = True, seed: int = 0, training_text: list[str] | None = None) -> str:
    """Saves a random-weight ModernBERT ColBERT checkpoint made by transformers + PyLate; returns its path."""
    import torch
    from transformers import ModernBertConfig, ModernBertModel

    pm = import_pylate()
    torch.manual_seed(seed)
    if training_text is None:
        tokenizer = bpe_tokenizer(vocab_size)
    else:  # a realistic tokenizer (benchmarks): trained on the corpus it will encode
        tokenizer = bpe_tokenizer(vocab_size, training_text=training_text, trained_size=min(vocab_size, 32000))
    base = os.path.join(root, "base")
    shape = dict(shape)
    dim = shape.pop("dim")
    cfg = ModernBertConfig(
        vocab_size=len(tokenizer), **shape, global_attn_every_n_layers=3, local_attention=local_attention,
        global_rope_theta=160000.0, local_rope_theta=160000.0, max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, norm_eps=1e-5, norm_bias=False, hidden_activation="gelu",
    )
    ModernBertModel(cfg).save_pretrained(base)
    tokenizer.save_pretrained(base)
    modules = None
    if dense_dims is not None:
        # A chain of Dense modules (e.g. hidden -> 512 -> dim), as some PyLate checkpoints carry.
        from sentence_transformers.models import Transformer

        first = Transformer(base)
        dims = (shape["hidden_size"], *dense_dims)
        modules = [first] + [
            pm.Dense(dims[i], dims[i + 1], bias=i == 0, activation_function=torch.nn.Tanh() if i == 0 else torch.nn.Identity())
            for i in range(len(dims) - 1)
        ]
        dim = dims[-1]
        base_arg = dict(modules=modules)
    else:
        base_arg = dict(model_name_or_path=base, embedding_size=dim)
    model = pm.ColBERT(**base_arg, query_length=query_length, document_length=document_length,
                       do_query_expansion=do_query_expansion,
                       attend_to_expansion_tokens=attend_to_expansion_tokens, device="cpu")
    model[0].do_lower_case = do_lower_case
    out = os.path.join(root, "colbert")
    model.save(out)
    return out


def bert_config(vocab_size: int, **kw):
    from transformers import BertConfig

    args = dict(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=128, max_position_embeddings=512, hidden_act="gelu", layer_norm_eps=1e-12)
    args.update(kw)
    return BertConfig(**args)


def bert_colbert(root: str, *, dim: int = 24, seed: int = 1) -> str:
    """A PyLate ColBERT checkpoint on a random BERT (ColBERTv2 / answerai-colbert-small layout)."""
    import torch
    from transformers import BertModel

    pm = import_pylate()
    torch.manual_seed(seed)
    tokenizer = wordpiece_tokenizer()
    base = os.path.join(root, "bert-base")
    BertModel(bert_config(len(tokenizer)), add_pooling_layer=False).save_pretrained(base)
    tokenizer.save_pretrained(base)
    model = pm.ColBERT(model_name_or_path=base, embedding_size=dim, query_length=20, document_length=64,
                       device="cpu")
    out = os.path.join(root, "bert-colbert")
    model.save(out)
    return out


def colbert_ai_checkpoint(root: str, *, dim: int = 32, seed: int = 2) -> str:
    """A Stanford colbert-ai checkpoint: HF_ColBERT config, BERT weights under `bert.`, `linear.weight`,
    and artifact.metadata with the prefixes and lengths."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertModel

    torch.manual_seed(seed)
    tokenizer = wordpiece_tokenizer()
    out = os.path.join(root, "colbert-ai")
    cfg = bert_config(len(tokenizer))
    bert = BertModel(cfg, add_pooling_layer=True)
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = torch.randn(dim, cfg.hidden_size) * 0.1
    os.makedirs(out)
    save_file(state, os.path.join(out, "model.safetensors"))
    cfg.architectures = ["HF_ColBERT"]
    cfg.save_pretrained(out)
    tokenizer.save_pretrained(out)
    with open(os.path.join(out, "artifact.metadata"), "w") as f:
        json.dump({"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 24,
                   "doc_maxlen": 60, "attend_to_mask_tokens": False, "dim": dim}, f)
    return out


def vocab_only_copy(src: str, dst: str) -> str:
    """src without tokenizer.json (the rest linked, not copied): the tokenizer is vocab.txt's."""
    os.makedirs(dst)
    for name in os.listdir(src):
        if name != "tokenizer.json":
            os.symlink(os.path.join(src, name), os.path.join(dst, name))
    return dst


def synthetic_texts(n_docs: int, words_per_doc: int = 40, seed: int = 0) -> list[str]:
    """Seeded random documents over a vocabulary of 2,000 made-up words (3 to 9 letters), for corpora whose
    size matters more than their meaning (memory tests and benchmarks)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=int(rng.integers(3, 10)))) for _ in range(2000)]
    words = rng.integers(0, len(vocab), size=(n_docs, words_per_doc))
    return [" ".join(vocab[w] for w in row) for row in words]


def edited_copy(src: str, dst: str, config: dict | None = None, drop: tuple[str, ...] = (),
                special_tokens_map: dict | None = None, tokenizer_json=None) -> str:
    """A copy of checkpoint src with its tokenizer files edited: tokenizer_config.json updated with config
    and without the keys in drop, special_tokens_map.json written when given, tokenizer_json(dict) applied
    to tokenizer.json's content."""
    import shutil

    shutil.copytree(src, dst)
    f = os.path.join(dst, "tokenizer_config.json")
    with open(f) as fh:
        cfg = json.load(fh)
    cfg = {k: v for k, v in {**cfg, **(config or {})}.items() if k not in drop}
    with open(f, "w") as fh:
        json.dump(cfg, fh)
    if special_tokens_map is not None:
        with open(os.path.join(dst, "special_tokens_map.json"), "w") as fh:
            json.dump(special_tokens_map, fh)
    if tokenizer_json is not None:
        f = os.path.join(dst, "tokenizer.json")
        with open(f) as fh:
            tok = json.load(fh)
        tokenizer_json(tok)
        with open(f, "w") as fh:
            json.dump(tok, fh)
    return dst
