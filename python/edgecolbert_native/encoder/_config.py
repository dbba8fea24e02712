"""Reading a checkpoint directory into plain settings: backbone shape, ColBERT head, tokenisation.

No torch here: this module only reads JSON, so that what a checkpoint asks for can be checked (and
reported) without the encoder's heavy imports. Every value is read from the checkpoint; the defaults
are the ones the reference libraries fall back to when a key is missing (named beside each).
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass, field
from typing import Any

# PyLate's default skiplist: the 32 ASCII punctuation characters.
PUNCTUATION = list(string.punctuation)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf8") as f:
        return json.load(f)


def _maybe_json(path: str) -> Any:
    return _read_json(path) if os.path.isfile(path) else None


@dataclass
class BackboneConfig:
    """The transformer's shape, read from config.json."""

    kind: str  # "modernbert" | "bert"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    activation: str
    norm_eps: float
    max_positions: int
    # ModernBERT only
    layer_is_global: list[bool] = field(default_factory=list)
    local_window: int = 0  # half window: |i - j| <= local_window on local layers
    global_rope_theta: float = 160000.0
    local_rope_theta: float = 10000.0
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    # BERT only
    type_vocab_size: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def _rope_theta(cfg: dict, layer_type: str, legacy_key: str, default: float) -> float:
    # transformers >= 5 writes rope_parameters per layer type; older configs (the mxbai checkpoints
    # among them) carry global_rope_theta / local_rope_theta. A missing local theta falls back to
    # 10000 in transformers: keep that, a checkpoint relying on it was trained with it.
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and isinstance(params.get(layer_type), dict):
        p = params[layer_type]
        rope_type = p.get("rope_type", p.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"config.json: rope_type {rope_type!r} for {layer_type} is not supported (only 'default')")
        if "rope_theta" in p:
            return float(p["rope_theta"])
    if cfg.get("rope_scaling"):
        raise ValueError(f"config.json: rope_scaling {cfg['rope_scaling']!r} is not supported")
    return float(cfg.get(legacy_key, default))


def backbone_config(cfg: dict) -> BackboneConfig:
    model_type = cfg.get("model_type", "")
    if model_type == "modernbert":
        n = int(cfg["num_hidden_layers"])
        if cfg.get("layer_types") is not None:
            types = list(cfg["layer_types"])
            if len(types) != n or any(t not in ("full_attention", "sliding_attention") for t in types):
                raise ValueError(f"config.json: layer_types {types!r} do not describe {n} layers")
            is_global = [t == "full_attention" for t in types]
        else:
            every = int(cfg.get("global_attn_every_n_layers", 3))
            is_global = [i % every == 0 for i in range(n)]
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        if hidden % heads:
            raise ValueError(f"config.json: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        if cfg.get("head_dim") not in (None, hidden // heads):
            raise ValueError(f"config.json: head_dim {cfg['head_dim']} != hidden_size / num_attention_heads")
        return BackboneConfig(
            kind="modernbert",
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            num_layers=n,
            num_heads=heads,
            intermediate_size=int(cfg["intermediate_size"]),
            activation=str(cfg.get("hidden_activation", "gelu")),
            norm_eps=float(cfg.get("norm_eps", 1e-5)),
            max_positions=int(cfg.get("max_position_embeddings", 8192)),
            layer_is_global=is_global,
            local_window=int(cfg.get("local_attention", 128)) // 2,
            global_rope_theta=_rope_theta(cfg, "full_attention", "global_rope_theta", 160000.0),
            local_rope_theta=_rope_theta(cfg, "sliding_attention", "local_rope_theta", 10000.0),
            norm_bias=bool(cfg.get("norm_bias", False)),
            attention_bias=bool(cfg.get("attention_bias", False)),
            mlp_bias=bool(cfg.get("mlp_bias", False)),
        )
    if model_type == "bert" or "BertModel" in (cfg.get("architectures") or []):
        pet = cfg.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise ValueError(f"config.json: position_embedding_type {pet!r} is not supported (only 'absolute')")
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        if hidden % heads:
            raise ValueError(f"config.json: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        return BackboneConfig(
            kind="bert",
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            num_layers=int(cfg["num_hidden_layers"]),
            num_heads=heads,
            intermediate_size=int(cfg["intermediate_size"]),
            activation=str(cfg.get("hidden_act", "gelu")),
            norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
            max_positions=int(cfg.get("max_position_embeddings", 512)),
            type_vocab_size=int(cfg.get("type_vocab_size", 2)),
        )
    raise ValueError(
        f"config.json: model_type {model_type!r} is not supported; the encoder implements 'modernbert' and 'bert'"
    )


@dataclass
class DenseSpec:
    """One PyLate / sentence-transformers Dense module (or colbert-ai's `linear`)."""

    path: str  # folder holding config.json + weights; "" for colbert-ai's linear inside the backbone file
    in_features: int
    out_features: int
    bias: bool
    activation: str  # dotted torch.nn class path
    use_residual: bool = False


@dataclass
class CheckpointSpec:
    """Everything the encoder needs to know about a checkpoint directory."""

    path: str
    flavour: str  # "pylate" | "colbert-ai" | "plain"
    backbone: BackboneConfig
    dense: list[DenseSpec]
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool
    attend_to_expansion_tokens: bool
    skiplist_words: list[str]
    do_lower_case: bool
    # sentence-transformers' prompts: {"query": "", "document": ""} plus the checkpoint's (and the caller's);
    # PyLate prepends prompts[default_prompt_name] to every text, queries and documents alike.
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None

    @property
    def default_prompt(self) -> str:
        return self.prompts.get(self.default_prompt_name, "") if self.default_prompt_name else ""


_DENSE_TYPES = ("pylate.models.Dense.Dense", "sentence_transformers.models.Dense", "pylate.models.Dense")
_IGNORED_TYPES = ("sentence_transformers.models.Pooling", "sentence_transformers.models.Normalize")


def _dense_spec(folder: str) -> DenseSpec:
    cfg = _read_json(os.path.join(folder, "config.json"))
    return DenseSpec(
        path=folder,
        in_features=int(cfg["in_features"]),
        out_features=int(cfg["out_features"]),
        bias=bool(cfg.get("bias", True)),
        activation=str(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")),
        use_residual=bool(cfg.get("use_residual", False)),
    )


def read_checkpoint(path: str, overrides: dict[str, Any] | None = None) -> CheckpointSpec:
    """Describes the checkpoint in `path` (see _read_checkpoint). A configuration file whose JSON has the
    wrong structure (a list where an object belongs, a string where a number does) is a ValueError naming
    the directory, never a stray TypeError or AttributeError."""
    try:
        return _read_checkpoint(path, overrides)
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
        raise ValueError(f"{path}: malformed checkpoint configuration ({e!r})") from None


def _read_checkpoint(path: str, overrides: dict[str, Any] | None = None) -> CheckpointSpec:
    """Describes the checkpoint in `path`.

    Three flavours, decided by what the directory holds:
      - "pylate": modules.json lists Dense modules, or config_sentence_transformers.json says
        model_type ColBERT. PyLate's conventions and defaults apply (prefixes "[Q] "/"[D] ", query
        length 32, document length 180, [MASK] expansion on, punctuation skiplist).
      - "colbert-ai": config.json's architectures is HF_ColBERT (Stanford checkpoints); the projection is
        the `linear` weight beside the BERT weights and artifact.metadata gives prefixes and lengths, as
        PyLate reads them.
      - "plain": any other sentence-transformers or transformers model (all-MiniLM-L6-v2, say): token
        embeddings of the backbone, no projection, no prefixes, no skiplist, no expansion; both lengths
        are sentence_bert_config.json's max_seq_length (else the tokenizer's, else the position table's).
    Keyword overrides (query_prefix, document_prefix, query_length, document_length, do_query_expansion,
    attend_to_expansion_tokens, skiplist_words, do_lower_case) win over the checkpoint, as in PyLate;
    prompts and default_prompt_name combine with config_sentence_transformers.json's as in
    sentence-transformers (see _prompts).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"Encoder.from_pretrained: no config.json in {path}")
    cfg = _read_json(cfg_path)
    backbone = backbone_config(cfg)
    modules = _maybe_json(os.path.join(path, "modules.json")) or []
    st_cfg = _maybe_json(os.path.join(path, "config_sentence_transformers.json")) or {}
    sbert_cfg = _maybe_json(os.path.join(path, "sentence_bert_config.json")) or {}
    meta = _maybe_json(os.path.join(path, "artifact.metadata")) or {}

    dense: list[DenseSpec] = []
    for module in modules:
        mtype = module.get("type", "")
        if mtype in _DENSE_TYPES or mtype.endswith(".Dense"):
            dense.append(_dense_spec(os.path.join(path, module.get("path", ""))))
        elif mtype.endswith(".Transformer") or mtype in _IGNORED_TYPES:
            continue
        else:
            raise ValueError(f"modules.json: module type {mtype!r} is not supported by the encoder")

    architectures = cfg.get("architectures") or []
    if dense or st_cfg.get("model_type") == "ColBERT":
        flavour = "pylate"
    elif architectures and architectures[0] == "HF_ColBERT":
        flavour = "colbert-ai"
    else:
        flavour = "plain"

    if flavour == "pylate" and not dense:
        # PyLate would add a randomly initialised projection here: an untrained checkpoint.
        raise ValueError(f"{path}: a ColBERT model without Dense modules has no trained projection")

    def pick(key: str, *sources: tuple[dict, str], default: Any) -> Any:
        if key in overrides:
            return overrides[key]
        for src, name in sources:
            if name in src and src[name] is not None:
                return src[name]
        return default

    if flavour == "pylate":
        query_prefix = pick("query_prefix", (st_cfg, "query_prefix"), default="[Q] ")
        document_prefix = pick("document_prefix", (st_cfg, "document_prefix"), default="[D] ")
        query_length = pick("query_length", (st_cfg, "query_length"), default=32)
        document_length = pick("document_length", (st_cfg, "document_length"), default=180)
        expansion = pick("do_query_expansion", (st_cfg, "do_query_expansion"), default=True)
        attend = pick("attend_to_expansion_tokens", (st_cfg, "attend_to_expansion_tokens"), default=False)
        skiplist = pick("skiplist_words", (st_cfg, "skiplist_words"), default=PUNCTUATION)
    elif flavour == "colbert-ai":
        # PyLate: prefixes from artifact.metadata's query_token_id / doc_token_id, else [unused0]/[unused1].
        query_prefix = pick("query_prefix", (meta, "query_token_id"), default="[unused0]")
        document_prefix = pick("document_prefix", (meta, "doc_token_id"), default="[unused1]")
        query_length = pick("query_length", (meta, "query_maxlen"), default=32)
        document_length = pick("document_length", (meta, "doc_maxlen"), default=180)
        expansion = pick("do_query_expansion", default=True)
        attend = pick("attend_to_expansion_tokens", (meta, "attend_to_mask_tokens"), default=False)
        skiplist = pick("skiplist_words", default=PUNCTUATION)
        w = _colbert_ai_linear_shape(path)
        dense = [DenseSpec(path="", in_features=w[1], out_features=w[0], bias=False,
                           activation="torch.nn.modules.linear.Identity")]
    else:
        tok_cfg = _maybe_json(os.path.join(path, "tokenizer_config.json")) or {}
        tok_max = tok_cfg.get("model_max_length")
        if not isinstance(tok_max, int) or tok_max > backbone.max_positions:
            tok_max = None
        max_len = sbert_cfg.get("max_seq_length") or tok_max or backbone.max_positions
        query_prefix = pick("query_prefix", default="")
        document_prefix = pick("document_prefix", default="")
        query_length = pick("query_length", default=max_len)
        document_length = pick("document_length", default=max_len)
        expansion = pick("do_query_expansion", default=False)
        attend = pick("attend_to_expansion_tokens", default=False)
        skiplist = pick("skiplist_words", default=[])

    if not expansion:
        attend = False  # PyLate: no expansion tokens, nothing to attend to
    for name, length in (("query_length", query_length), ("document_length", document_length)):
        if int(length) < 2 + (1 if (query_prefix if name == "query_length" else document_prefix) else 0):
            raise ValueError(f"{name} {length} leaves no room for the special tokens")
    do_lower_case = pick("do_lower_case", (sbert_cfg, "do_lower_case"), default=False)

    prompts, default_prompt_name = _prompts(st_cfg, overrides.get("prompts"), overrides.get("default_prompt_name"))

    dims = backbone.hidden_size
    for d in dense:
        if d.in_features != dims:
            raise ValueError(f"{d.path or 'linear'}: in_features {d.in_features} != previous output {dims}")
        dims = d.out_features

    return CheckpointSpec(
        path=path,
        flavour=flavour,
        backbone=backbone,
        dense=dense,
        query_prefix=str(query_prefix),
        document_prefix=str(document_prefix),
        query_length=int(query_length),
        document_length=int(document_length),
        do_query_expansion=bool(expansion),
        attend_to_expansion_tokens=bool(attend),
        skiplist_words=[str(w) for w in skiplist],
        do_lower_case=bool(do_lower_case),
        prompts=prompts,
        default_prompt_name=default_prompt_name,
    )


def _prompts(st_cfg: dict, given: dict[str, str] | None,
             given_default: str | None) -> tuple[dict[str, str], str | None]:
    """sentence-transformers' rules (SentenceTransformer.__init__ and _load_sbert_model), which PyLate
    inherits: "query" and "document" always exist (empty); the caller's prompts, then the checkpoint's
    for every name the caller left unset or empty; the caller's default_prompt_name unless empty, else
    the checkpoint's; a default naming no prompt is an error."""
    prompts = {"query": "", "document": ""}
    prompts.update(given or {})
    for name, text in (st_cfg.get("prompts") or {}).items():
        if not prompts.get(name):
            prompts[name] = text
    for name, text in prompts.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ValueError(f"prompts must map names to strings, got {name!r}: {text!r}")
    default = given_default or st_cfg.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ValueError(f"default prompt name {default!r} is not one of the prompts {list(prompts)!r}")
    return prompts, default


# transformers' order: one safetensors file, its shards, one .bin file, its shards.
_WEIGHT_NAMES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def weights_files(folder: str, tensor: str | None = None) -> list[str]:
    """The files holding a folder's weights: model.safetensors or pytorch_model.bin, or the shards named
    by the `.index.json` beside them (save_pretrained(max_shard_size=...) writes large models so). With
    `tensor`, only the file holding it (by the index's weight_map; none if the index lacks it)."""
    for name in _WEIGHT_NAMES:
        candidate = os.path.join(folder, name)
        if not os.path.isfile(candidate):
            continue
        if not name.endswith(".index.json"):
            return [candidate]
        index = _read_json(candidate)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{candidate}: no weight_map of tensor names to shard files")
        if tensor is None:
            shards = sorted(set(weight_map.values()))
        else:
            shards = [weight_map[tensor]] if tensor in weight_map else []
        files = [os.path.join(folder, shard) for shard in shards]
        for f in files:
            if not os.path.isfile(f):
                raise FileNotFoundError(f"{candidate} names the shard {os.path.basename(f)}, which is missing")
        return files
    raise FileNotFoundError(f"{folder}: no weights (model.safetensors, pytorch_model.bin, or the index of their "
                            "shards: model.safetensors.index.json, pytorch_model.bin.index.json)")


def _colbert_ai_linear_shape(path: str) -> tuple[int, int]:
    for f in weights_files(path, "linear.weight"):
        if f.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(f, framework="numpy") as s:
                if "linear.weight" in s.keys():
                    shape = s.get_slice("linear.weight").get_shape()
                    return int(shape[0]), int(shape[1])
        else:
            import torch

            state = torch.load(f, map_location="cpu", weights_only=True)
            if "linear.weight" in state:
                return int(state["linear.weight"].shape[0]), int(state["linear.weight"].shape[1])
    raise ValueError(f"{path}: a HF_ColBERT checkpoint without linear.weight")
