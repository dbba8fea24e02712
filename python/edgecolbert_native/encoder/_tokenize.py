"""Tokenisation with PyLate's conventions, on `tokenizers` alone (no transformers).

What PyLate does, step by step (pylate/models/colbert.py `tokenize`, sentence-transformers' Transformer
`tokenize`), and so what this does:
  1. each text is the prompt (config_sentence_transformers.json's prompts[default_prompt_name], or the
     one asked for) followed by the text, then `.strip()`-ed, lower-cased when sentence_bert_config.json
     says do_lower_case;
  2. the tokenizer adds its special tokens ([CLS] ... [SEP]) and truncates to `length - 1` when a prefix
     token will be inserted (`length` otherwise), longest-first, on the tokenizer's truncation side;
  3. the prefix token ("[Q] " / "[D] ", an added token) is inserted by id right after the first token,
     never written into the text;
  4. queries with [MASK] expansion are padded to the full query length with the pad id, which PyLate
     sets to [MASK] (else EOS, else the tokenizer's pad); the expansion tokens are attended to only when
     the checkpoint says attend_to_expansion_tokens;
  5. documents keep every token but those whose id is in the skiplist (the ids of the skiplist words;
     a word outside the vocabulary maps to [UNK], as transformers' convert_tokens_to_ids does).
Outputs are flat: ids [T] int64 and offsets [n+1] int64, the CSR layout the rest of the encoder uses.

The tokenizer is tokenizer.json; a BERT checkpoint with only a WordPiece vocab.txt gets the tokenizer
transformers builds from it (see _wordpiece_from_vocab).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._config import CheckpointSpec


@dataclass
class TokenBatch:
    ids: np.ndarray  # [T] int64, sequences back to back
    offsets: np.ndarray  # [n+1] int64
    attend: np.ndarray | None  # [T] bool: may other tokens attend to this one? None: all may


def _token_content(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


# tokenizer_class values that transformers (5.x) reads from a vocab.txt as its BertTokenizer.
_WORDPIECE_CLASSES = ("BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer")
_NAMED_SPECIAL = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# BertTokenizer's special tokens where the configuration names none.
BERT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                       "mask_token": "[MASK]"}
_ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


def _added_token(value: object, **defaults: bool) -> Any:
    from tokenizers import AddedToken

    if isinstance(value, dict):  # tokenizer_config.json's serialised AddedToken
        flags = {k: bool(value[k]) for k in _ADDED_TOKEN_FLAGS if k in value}
        return AddedToken(str(value["content"]), **{**defaults, **flags})
    return AddedToken(str(value), **defaults)


def _wordpiece_from_vocab(path: str, config: dict, vocab: dict | None = None,
                          json_added: list | None = None) -> Any:
    """The tokenizer transformers' BertTokenizer builds from vocab.txt, or from tokenizer.json's vocabulary
    (`vocab`, its added tokens `json_added`) when tokenizer_class resolves to BertTokenizer: WordPiece,
    BertNormalizer with tokenizer_config.json's do_lower_case / tokenize_chinese_chars / strip_accents
    (tokenizer.json's normaliser and template are not read), BertPreTokenizer, "[CLS] $A [SEP]", and the
    added and special tokens in transformers' order (added_tokens_decoder, else the legacy
    added_tokens.json and tokenizer.json's added_tokens; then the named special tokens not yet there).
    `config` has BERT_SPECIAL_TOKENS' defaults applied."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if vocab is None:
        cls_name = str(config.get("tokenizer_class") or "BertTokenizer").removesuffix("Fast")
        if cls_name not in _WORDPIECE_CLASSES:
            raise ValueError(f"{path}: no tokenizer.json, and vocab.txt is read only for BERT WordPiece tokenizers "
                             f"(tokenizer_class {', '.join(_WORDPIECE_CLASSES)}), not {cls_name}")
        # transformers 5 hands the file to tokenizers' reader (one token a line, trailing whitespace trimmed).
        vocab = models.WordPiece.read_file(os.path.join(path, "vocab.txt"))
    tok = Tokenizer(models.WordPiece(vocab, unk_token=_token_content(config["unk_token"])))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=config.get("strip_accents"), lowercase=bool(config.get("do_lower_case", True)))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")

    named = {k: config[k] for k in _NAMED_SPECIAL if config.get(k) is not None}
    named_contents = {_token_content(v) for v in named.values()}
    extra = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
    specials = list(named.values()) + (list(extra) if isinstance(extra, list) else [])
    by_id: dict[int, Any] = {}
    if isinstance(config.get("added_tokens_decoder"), dict):
        by_id = {int(i): _added_token(t) for i, t in config["added_tokens_decoder"].items()}
    else:
        if os.path.isfile(os.path.join(path, "added_tokens.json")):
            with open(os.path.join(path, "added_tokens.json"), encoding="utf-8") as fh:
                legacy = json.load(fh)
            special_contents = named_contents | {_token_content(t) for t in specials}
            by_id = {int(i): _added_token(t, normalized=t not in special_contents, special=t in special_contents)
                     for t, i in legacy.items()}
        for t in json_added or []:  # tokenizer.json's, read after added_tokens.json (same id: it wins)
            by_id[int(t["id"])] = _added_token(t)
    declared = sorted(by_id.items(), key=lambda it: it[0])
    tok.add_tokens([t for _, t in declared])
    present = {t.content for _, t in declared}
    tok.add_tokens([_added_token(t, normalized=False, special=True) for t in specials
                    if _token_content(t) not in present])
    for index, t in declared:
        if tok.token_to_id(t.content) != index:
            raise ValueError(f"{path}: the added token {t.content!r} should have id {index}, but the "
                             f"vocabulary gives it {tok.token_to_id(t.content)}")
    cls, sep = _token_content(config["cls_token"]), _token_content(config["sep_token"])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return tok


def _read_json(path: str, name: str) -> dict:
    f = os.path.join(path, name)
    if not os.path.isfile(f):
        return {}
    with open(f, encoding="utf8") as fh:
        return json.load(fh)


def tokenizer_settings(path: str) -> dict:
    """tokenizer_config.json and special_tokens_map.json merged as transformers 5 merges them
    (PreTrainedTokenizerBase._from_pretrained): special_tokens_map.json is a legacy file, read only when
    tokenizer_config.json has no added_tokens_decoder, and then its keys override tokenizer_config.json's
    (a null there removes the token)."""
    config = _read_json(path, "tokenizer_config.json")
    if "added_tokens_decoder" not in config:
        config.update(_read_json(path, "special_tokens_map.json"))
    return {k: v for k, v in config.items() if v is not None}


# The tokenizer class transformers' AutoTokenizer picks from config.json's model_type (TOKENIZER_MAPPING_NAMES),
# for the WordPiece model types.
_MODEL_TYPE_TOKENIZER = {"bert": "BertTokenizer", "distilbert": "BertTokenizer", "electra": "BertTokenizer"}


def rebuilds_wordpiece(path: str, config: dict) -> bool:
    """Does transformers 5 rebuild this checkpoint's tokenizer as BertTokenizer (from tokenizer.json's
    vocabulary, ignoring its normaliser) rather than load tokenizer.json as is? AutoTokenizer: a
    tokenizer_class that differs from the one config.json's model_type maps to loads tokenizer.json as is
    (TokenizersBackend); else the named class, else the model type's."""
    named = str(config.get("tokenizer_class") or "").removesuffix("Fast")
    by_model = _MODEL_TYPE_TOKENIZER.get(str(_read_json(path, "config.json").get("model_type")))
    if named and by_model and named != by_model:
        return False
    return (named or by_model) in _WORDPIECE_CLASSES


def load_tokenizer(path: str, config: dict) -> Any:
    """tokenizer.json (rebuilt as BertTokenizer when transformers does so, see rebuilds_wordpiece), else
    the BERT tokenizer of vocab.txt; `config`: tokenizer_settings(path), BERT_SPECIAL_TOKENS' defaults
    applied where the tokenizer is BertTokenizer."""
    from tokenizers import Tokenizer

    tok_file = os.path.join(path, "tokenizer.json")
    if os.path.isfile(tok_file):
        if not rebuilds_wordpiece(path, config):
            return Tokenizer.from_file(tok_file)
        saved = _read_json(path, "tokenizer.json")
        vocab = saved.get("model", {}).get("vocab")
        if isinstance(vocab, list):  # a Unigram's [token, score] pairs: their order gives the ids
            vocab = {(t[0] if isinstance(t, list) else t): i for i, t in enumerate(vocab)}
        return _wordpiece_from_vocab(path, config, vocab, saved.get("added_tokens"))
    if os.path.isfile(os.path.join(path, "vocab.txt")):
        return _wordpiece_from_vocab(path, config)
    raise FileNotFoundError(f"Encoder.from_pretrained: no tokenizer in {path}: neither tokenizer.json nor a "
                            "WordPiece vocab.txt")


class ColBERTTokenizer:
    """Query and document tokenisation for one checkpoint."""

    def __init__(self, path: str, spec: CheckpointSpec):
        from tokenizers import Tokenizer

        config = tokenizer_settings(path)
        if not os.path.isfile(os.path.join(path, "tokenizer.json")) or rebuilds_wordpiece(path, config):
            config = {**BERT_SPECIAL_TOKENS, **config}  # read as BertTokenizer, with its defaults
        base = load_tokenizer(path, config).to_str()
        self.spec = spec
        self.lower = spec.do_lower_case
        # transformers: tokenizer_config.json's truncation_side, else the direction tokenizer.json's
        # truncation was saved with (TokenizersBackend.__init__), else right.
        saved = _read_json(path, "tokenizer.json")
        json_truncation = saved.get("truncation") or {}
        side = str(config.get("truncation_side") or json_truncation.get("direction") or "right").lower()
        # Left padding (tokenizer_config.json's padding_side, else tokenizer.json's padding direction) is not
        # copied: PyLate then inserts [Q]/[D] after the first pad of a padded sequence, so a document's
        # vectors depend on the batch it is encoded in. Right padding gives each text its batch-free tokens.
        padding = str(config.get("padding_side") or (saved.get("padding") or {}).get("direction") or "right")
        if padding.lower() == "left":
            warnings.warn(f"{path}: the tokenizer's padding side is left; this encoder pads queries and documents "
                          "on the right regardless (PyLate pads left, inserting the prefix token after a pad, "
                          "so its output differs for padded queries and depends on the batch for documents)",
                          UserWarning, stacklevel=3)
        self._tok = {}
        for kind, length, prefix in (
            ("query", spec.query_length, spec.query_prefix),
            ("document", spec.document_length, spec.document_prefix),
        ):
            tok = Tokenizer.from_str(base)  # one copy per kind: each has its own truncation
            tok.no_padding()
            tok.enable_truncation(max_length=length - 1 if prefix else length, strategy="longest_first",
                                  direction=side)
            self._tok[kind] = tok
        tok = self._tok["query"]

        def token_id(token: str | None) -> int | None:
            return None if token is None else tok.token_to_id(token)

        self.unk_id = token_id(_token_content(config.get("unk_token")))
        mask_id = token_id(_token_content(config.get("mask_token")))
        eos_id = token_id(_token_content(config.get("eos_token")))
        pad_id = token_id(_token_content(config.get("pad_token")))
        # PyLate pads with [MASK] for MLM encoders, with EOS for decoders. With none of the three it
        # refuses to load (NotImplementedError), expansion or not; only expansion needs the token, so
        # only then is it refused here (None otherwise: never used).
        self.pad_id = next((i for i in (mask_id, eos_id, pad_id) if i is not None), None)
        if self.pad_id is None and spec.do_query_expansion:
            raise ValueError(f"{path}: query expansion is on but the tokenizer has no [MASK], EOS or pad token "
                             "(tokenizer_config.json / special_tokens_map.json name none in the vocabulary) to "
                             "expand queries with; name one, or load with do_query_expansion=False")

        def prefix_id(prefix: str, what: str) -> int | None:
            if not prefix:
                return None
            i = tok.token_to_id(prefix)
            if i is None:
                raise ValueError(f"{path}: the {what} prefix {prefix!r} is not a token of the tokenizer")
            return i

        self.query_prefix_id = prefix_id(spec.query_prefix, "query")
        self.document_prefix_id = prefix_id(spec.document_prefix, "document")
        skip = (tok.token_to_id(w) for w in spec.skiplist_words)
        found: set[int] = {int(j) for j in (self.unk_id if i is None else i for i in skip) if j is not None}
        self.skiplist_ids = np.array(sorted(found), dtype=np.int64)

    def _prepare(self, texts: list[str], prompt: str | None) -> list[str]:
        # PyLate prepends the prompt before sentence-transformers strips: "p: " + "  x" is "p:   x".
        prompt = self.spec.default_prompt if prompt is None else prompt
        out = [(prompt + str(t)).strip() for t in texts]
        return [t.lower() for t in out] if self.lower else out

    def _encode(self, texts: list[str], kind: str, prefix: int | None,
                prompt: str | None) -> tuple[np.ndarray, np.ndarray]:
        encodings = self._tok[kind].encode_batch(self._prepare(texts, prompt), add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        if prefix is not None:
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
            # After the first token ([CLS]); an empty encoding gets the prefix alone.
            ids = np.insert(ids, np.minimum(starts + 1, starts + lengths), prefix)
            lengths = lengths + 1
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return ids, offsets

    def queries(self, texts: list[str], prompt: str | None = None) -> TokenBatch:
        """prompt: prepended to every text; None: the checkpoint's default prompt."""
        ids, offsets = self._encode(texts, "query", self.query_prefix_id, prompt)
        if not self.spec.do_query_expansion:
            return TokenBatch(ids, offsets, None)
        # Pad every query to query_length with the pad id ([MASK]): the expansion tokens.
        length = self.spec.query_length
        n = len(texts)
        lengths = np.diff(offsets)
        grid = np.full((n, length), self.pad_id, dtype=np.int64)
        real = np.arange(length)[None, :] < lengths[:, None]
        grid[real] = ids
        attend = None if self.spec.attend_to_expansion_tokens else real.reshape(-1)
        return TokenBatch(grid.reshape(-1), np.arange(n + 1, dtype=np.int64) * length, attend)

    def documents(self, texts: list[str], prompt: str | None = None) -> tuple[TokenBatch, np.ndarray]:
        """Token ids and the keep mask [T] (False for skiplist ids); prompt as for queries."""
        ids, offsets = self._encode(texts, "document", self.document_prefix_id, prompt)
        keep = ~np.isin(ids, self.skiplist_ids) if self.skiplist_ids.size else np.ones(ids.shape, dtype=bool)
        return TokenBatch(ids, offsets, None), keep
