"""The Encoder: checkpoint loading, length-sorted batching, queries and documents with PyLate's rules."""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _config
from ._modeling import Dense, Packed, backbone_state, build_backbone, check_shapes, load_backbone, onednn_ok
from ._tokenize import ColBERTTokenizer, TokenBatch

from . import DEFAULT_MODEL
from .._progress import progress_bar

# Files a checkpoint may need; the rest of a Hub repository (ONNX exports, READMEs' images) is skipped.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "artifact.metadata"]


def resolve_checkpoint(name_or_path: str, *, cache_dir: str | None = None, revision: str | None = None,
                       local_files_only: bool | None = None) -> str:
    """A local directory as it is; otherwise a Hub id, from huggingface_hub's cache first, then (unless
    offline) downloaded into it."""
    path = os.path.expanduser(str(name_or_path))
    if os.path.isdir(path):
        return path
    looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1 or os.sep != "/" and os.sep in path
    if looks_local:
        raise FileNotFoundError(f"Encoder.from_pretrained: {name_or_path!r} is not a directory")
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub is part of the encoder extra
        raise ImportError(
            f"Encoder.from_pretrained: {name_or_path!r} is not a local directory, and huggingface_hub (the "
            "`encoder` extra) is needed to find Hub models"
        ) from e
    cache = cache_dir or constants.HF_HUB_CACHE
    kwargs: dict[str, Any] = dict(repo_id=path, revision=revision, cache_dir=cache_dir, allow_patterns=_HUB_PATTERNS)
    try:
        return snapshot_download(local_files_only=True, **kwargs)
    except Exception as cached_error:  # noqa: BLE001 - any failure means: not (fully) cached
        reason = f"not in the cache ({type(cached_error).__name__})"
    offline = bool(local_files_only) or bool(constants.HF_HUB_OFFLINE)
    if not offline:
        try:
            return snapshot_download(**kwargs)
        except Exception as e:  # noqa: BLE001
            reason += f", and the download failed: {type(e).__name__}: {e}"
    else:
        reason += ", and downloads are off (HF_HUB_OFFLINE or local_files_only)"
    raise FileNotFoundError(
        f"Encoder.from_pretrained: cannot find the Hub model {path!r} in the Hugging Face cache {cache}: "
        f"{reason}. Fetch it where there is network (`hf download {path}`, with HF_HUB_CACHE pointing at "
        "the cache) or pass a local directory."
    )


def _load_weights(files: list[str] | str) -> dict[str, torch.Tensor]:
    """Every tensor of the files (one file, or a sharded checkpoint's shards)."""
    state: dict[str, torch.Tensor] = {}
    for file in [files] if isinstance(files, str) else files:  # one path is one file, not its characters
        if file.endswith(".safetensors"):
            from safetensors.torch import load_file

            state.update(load_file(file, device="cpu"))
        else:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def _device(fn: str, arg: str, value: Any) -> torch.device:
    """A CPU or CUDA device, checked before any work (torch's own errors name no argument, and a CUDA
    device without CUDA failed only after tokenising)."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{fn}: {arg} must be a device such as 'cpu' or 'cuda:0', got {value!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{fn}: {arg} must be a CPU or CUDA device, got {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{fn}: {arg} {str(device)!r} was asked for, but this torch ({torch.__version__}) "
                           "sees no CUDA device")
    return device


def _check_overrides(**settings: Any) -> None:
    """The checkpoint settings a caller overrides, by type (3.5 was read as 3, "no" as True, a str of
    skiplist words as its characters)."""
    fn = "Encoder.from_pretrained"
    for name, v in settings.items():
        if v is None:
            continue
        if name.endswith("_length"):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{fn}: {name} must be an int, got {v!r}")
        elif name == "skiplist_words":
            if isinstance(v, str) or not all(isinstance(w, str) for w in v):
                raise TypeError(f"{fn}: skiplist_words must be a list of str, got {v!r}")
        elif not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{fn}: {name} must be a bool, got {v!r}")


def _texts(fn: str, texts: Any) -> list[str]:
    """One str is one text; otherwise every item must be a str: str() would quietly encode a nested list
    as its repr and bytes as one text per byte value."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray, memoryview)) or not isinstance(texts, Iterable):
        raise TypeError(f"{fn}: texts must be a str or a list of str, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            hint = (f" (PyLate encodes a list of lists group by group: call {fn} once per group)"
                    if isinstance(t, (list, tuple)) else "")
            raise TypeError(f"{fn}: texts[{i}] has type {type(t).__name__}, not str{hint}")
    return out


def _positive_int(fn: str, name: str, value: Any) -> int:
    # Checked before any work: a float batch_size failed deep in the batching with numpy's slice error,
    # and max_tokens <= 0 quietly meant one text per batch.
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be >= 1, got {value}")
    return int(value)


def _load_dense(spec: _config.DenseSpec, backbone_weights: dict[str, torch.Tensor] | None) -> Dense:
    dense = Dense(spec)
    if spec.path:
        state = _load_weights(_config.weights_files(spec.path))
    else:  # colbert-ai: `linear` beside the BERT weights
        if backbone_weights is None:
            raise ValueError("colbert-ai checkpoint: the `linear` layer needs the backbone's weights")
        state = {"linear.weight": backbone_weights["linear.weight"]}
    missing, unexpected = dense.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{spec.path or 'linear'}: missing {missing}, unexpected {unexpected} weights")
    return dense


class Encoder:
    """ColBERT encoding: `encode_queries` -> ([nq, Lq, dim], mask [nq, Lq]) and `encode_documents` ->
    (tokens [T, dim], offsets int64 [n+1]), every kept token vector L2-normalised.

    Build one with `Encoder.from_pretrained`."""

    def __init__(self, spec: _config.CheckpointSpec, tokenizer: ColBERTTokenizer, backbone: nn.Module,
                 head: nn.Sequential, device: torch.device, dtype: torch.dtype):
        self.spec = spec
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.head = head
        self.device = device
        self.dtype = dtype
        self.quantized = False
        self.compiled = False
        self.onednn = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str = DEFAULT_MODEL,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        quantize: str | None = None,
        compile: bool = False,
        cache_dir: str | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        do_query_expansion: bool | None = None,
        attend_to_expansion_tokens: bool | None = None,
        skiplist_words: list[str] | None = None,
        do_lower_case: bool | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
    ) -> "Encoder":
        """Loads a checkpoint: a local directory (PyLate / sentence-transformers / transformers layout,
        or a colbert-ai checkpoint), or a Hub id found in huggingface_hub's cache.

        dtype: float32, float16 or bfloat16 (the half types are for GPUs; on CPU they are slow).
        quantize: "int8" for dynamic int8 quantisation of the backbone's linear layers (CPU only).
        compile: torch.compile the per-token parts of every layer (projections, MLP, norms).
        The keyword settings override the checkpoint's, as PyLate's constructor arguments do; prompts
        and default_prompt_name combine with config_sentence_transformers.json's as in
        sentence-transformers (a name the caller leaves empty takes the checkpoint's prompt)."""
        if isinstance(dtype, str) and dtype in ("float32", "float16", "bfloat16"):
            dtype = getattr(torch, dtype)
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError("Encoder.from_pretrained: dtype must be torch.float32, torch.float16 or torch.bfloat16 "
                            f"(or their names), got {dtype!r}")
        if quantize not in (None, "int8"):
            raise ValueError(f"Encoder.from_pretrained: quantize must be None or 'int8', got {quantize!r}")
        if not isinstance(compile, (bool, np.bool_)):
            raise TypeError(f"Encoder.from_pretrained: compile must be a bool, got {compile!r}")
        device = _device("Encoder.from_pretrained", "device", device)
        if skiplist_words is not None and not isinstance(skiplist_words, str):
            try:  # read once here: a generator checked, then passed on, would arrive empty
                skiplist_words = list(skiplist_words)
            except TypeError:
                raise TypeError("Encoder.from_pretrained: skiplist_words must be a list of str, got "
                                f"{skiplist_words!r}") from None
        _check_overrides(query_length=query_length, document_length=document_length,
                         do_query_expansion=do_query_expansion, attend_to_expansion_tokens=attend_to_expansion_tokens,
                         do_lower_case=do_lower_case, skiplist_words=skiplist_words)
        if quantize and (device.type != "cpu" or dtype != torch.float32):
            raise ValueError("Encoder.from_pretrained: quantize='int8' needs device='cpu' and dtype=float32")
        path = resolve_checkpoint(name_or_path, cache_dir=cache_dir, revision=revision,
                                  local_files_only=local_files_only)
        overrides = dict(query_prefix=query_prefix, document_prefix=document_prefix, query_length=query_length,
                         document_length=document_length, do_query_expansion=do_query_expansion,
                         attend_to_expansion_tokens=attend_to_expansion_tokens, skiplist_words=skiplist_words,
                         do_lower_case=do_lower_case, prompts=prompts, default_prompt_name=default_prompt_name)
        spec = _config.read_checkpoint(path, overrides)
        # BERT's absolute positions end at its position table: PyLate loads a longer query/document length
        # but fails on any text (or expanded query) that long; cap the length instead, with a warning.
        for what in ("query_length", "document_length"):
            length, cap = getattr(spec, what), spec.backbone.max_positions
            if spec.backbone.kind == "bert" and length > cap:
                warnings.warn(f"{path}: {what} {length} exceeds BERT's {cap} positions; texts are truncated "
                              f"to {cap} tokens", UserWarning, stacklevel=2)
                setattr(spec, what, cap)
        tokenizer = ColBERTTokenizer(path, spec)

        weights = _load_weights(_config.weights_files(path))
        backbone = build_backbone(spec.backbone)
        state = backbone_state(dict(weights), spec.backbone)
        check_shapes(backbone, state)
        load_backbone(backbone, state)
        head = nn.Sequential(*(_load_dense(d, weights) for d in spec.dense))
        del weights, state

        backbone.eval().to(device=device, dtype=dtype)
        head.eval().to(device=device, dtype=dtype)
        for p in list(backbone.parameters()) + list(head.parameters()):
            p.requires_grad_(False)
        enc = cls(spec, tokenizer, backbone, head, device, dtype)
        if quantize is None and not compile and onednn_ok(device, dtype):
            enc._use_onednn()
        if quantize == "int8":
            enc._quantize_int8()
        if compile:
            enc._compile()
        return enc

    def _use_onednn(self) -> None:
        # float32 on CPU: linear layers through oneDNN with pre-packed weights, attention per sequence on
        # oneDNN GEMMs (see OneDNNLinear and _per_sequence_attention for why and how much).
        backbone: Any = self.backbone
        backbone.use_onednn()
        head: Any = self.head
        for dense in head:
            dense.use_onednn()
        self.onednn = True

    def _quantize_int8(self) -> None:
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated in favour of torchao, which is not a dependency here.
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            self.backbone = quantize_dynamic(self.backbone, {nn.Linear}, dtype=torch.qint8)
        layers: Any = self.backbone.layers
        for layer in layers:  # the bound methods still point at the float layers' modules
            layer.project, layer.finish = layer._project, layer._finish
        self.quantized = True

    def _compile(self) -> None:
        # Attention stays eager (its shapes and masks change per batch); what is compiled is per-token
        # work on [T, hidden] with T dynamic, where fusing norms, GELU-gating and RoPE saves passes.
        layers: Any = self.backbone.layers
        for layer in layers:
            layer.project = torch.compile(layer._project, dynamic=True)
            layer.finish = torch.compile(layer._finish, dynamic=True)
        self.compiled = True

    # ------------------------------------------------------------------ facts
    @property
    def dim(self) -> int:
        return self.spec.dense[-1].out_features if self.spec.dense else self.spec.backbone.hidden_size

    @property
    def query_length(self) -> int:
        return self.spec.query_length

    @property
    def document_length(self) -> int:
        return self.spec.document_length

    def __repr__(self) -> str:
        b = self.spec.backbone
        return (f"Encoder({self.spec.path!r}, {b.kind}, layers={b.num_layers}, hidden={b.hidden_size}, "
                f"dim={self.dim}, device={self.device}, dtype={self.dtype}, flavour={self.spec.flavour})")

    # ------------------------------------------------------------------ running
    def _batches(self, lengths: np.ndarray, batch_size: int, max_tokens: int) -> Iterable[np.ndarray]:
        """Sequences sorted by length, longest first, cut so that a batch's grid (count x longest) stays
        within max_tokens: attention's padding is then small and memory bounded for long documents."""
        order = np.argsort(-lengths, kind="stable")
        i, n = 0, len(order)
        while i < n:
            longest = max(int(lengths[order[i]]), 1)
            k = max(1, min(batch_size, max_tokens // longest))
            yield order[i:i + k]
            i += k

    @torch.inference_mode()
    def _embed(self, batch: TokenBatch, *, batch_size: int, max_tokens: int | None, normalize: bool,
               progress: bool, desc: str, output_device: torch.device) -> torch.Tensor:
        """Projected (and normalised) vectors for every token, [T, dim], in the input's order."""
        lengths = np.diff(batch.offsets)
        total = int(batch.offsets[-1])
        out = torch.empty((total, self.dim), dtype=self.dtype, device=output_device)
        if max_tokens is None:
            max_tokens = batch_size * max(self.spec.document_length, self.spec.query_length)
        bar = progress_bar(len(lengths), desc, enabled=True, unit="text") if progress else None
        for sel in self._batches(lengths, batch_size, max_tokens):
            lens = lengths[sel]
            # Token indices of the selected sequences in the flat input: each start, then consecutive.
            within = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
            idx = np.repeat(batch.offsets[sel], lens) + within
            ids = torch.from_numpy(batch.ids[idx]).to(self.device, non_blocking=True)
            attend = None if batch.attend is None else torch.from_numpy(batch.attend[idx])
            packed = Packed(torch.from_numpy(lens), attend, self.device)
            y = self.head(self.backbone(ids, packed))
            if normalize:
                y = F.normalize(y.float(), p=2, dim=-1).to(self.dtype)
            out.index_copy_(0, torch.from_numpy(idx).to(output_device), y.to(output_device))
            if bar is not None:
                bar.update(len(sel))
        if bar is not None:
            bar.close()
        return out

    def _prompt(self, fn: str, prompt: str | None, prompt_name: str | None) -> str | None:
        """The text to prepend, PyLate's encode rules: `prompt` if given (prompt_name then ignored, with a
        warning), else prompts[prompt_name], else None (the tokenizer applies the default prompt)."""
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"{fn}: prompt must be a str, got {type(prompt).__name__}")
            if prompt_name is not None:
                warnings.warn(f"{fn}: both prompt and prompt_name were given; prompt_name is ignored (as in "
                              "PyLate)", stacklevel=3)
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.spec.prompts:
                raise ValueError(f"{fn}: prompt name {prompt_name!r} is not one of the configured prompts; "
                                 f"available keys are {list(self.spec.prompts)!r}")
            return self.spec.prompts[prompt_name]
        return None

    def encode_queries(self, texts: str | list[str], *, batch_size: int = 32, normalize: bool = True,
                       show_progress_bar: bool = False, output_device: str | torch.device = "cpu",
                       prompt: str | None = None,
                       prompt_name: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries -> (embeddings [nq, Lq, dim], mask bool [nq, Lq]).

        With [MASK] expansion (when the checkpoint asks for it) every query has query_length tokens and
        all are kept, as in PyLate; without, Lq is the longest query here and the mask marks real tokens
        (padding rows are zero). prompt / prompt_name as in PyLate's encode: the text prepended to every
        query (default: the checkpoint's default prompt, usually none)."""
        batch_size = _positive_int("encode_queries", "batch_size", batch_size)
        out_device = _device("encode_queries", "output_device", output_device)
        text = self._prompt("encode_queries", prompt, prompt_name)
        texts = _texts("encode_queries", texts)
        batch = self.tokenizer.queries(texts, text)
        vecs = self._embed(batch, batch_size=batch_size, max_tokens=None, normalize=normalize,
                           progress=show_progress_bar, desc="Encoding queries",
                           output_device=out_device)
        n = len(texts)
        lengths = np.diff(batch.offsets)
        # No queries: [0, query_length, dim] with expansion (every query has that length), else [0, 0, dim].
        lq = int(lengths.max()) if n else (self.spec.query_length if self.spec.do_query_expansion else 0)
        if n and (lengths == lq).all():
            return vecs.view(n, lq, self.dim), torch.ones((n, lq), dtype=torch.bool, device=vecs.device)
        pos = np.arange(vecs.shape[0]) - np.repeat(batch.offsets[:-1], lengths)
        flat = torch.from_numpy(np.repeat(np.arange(n) * lq, lengths) + pos).to(vecs.device)
        emb = vecs.new_zeros((n * lq, self.dim))
        emb.index_copy_(0, flat, vecs)
        mask = torch.zeros(n * lq, dtype=torch.bool, device=vecs.device)
        mask[flat] = True
        return emb.view(n, lq, self.dim), mask.view(n, lq)

    def encode_documents(self, texts: str | list[str], *, batch_size: int = 32, max_tokens: int | None = None,
                         normalize: bool = True, show_progress_bar: bool = False,
                         output_device: str | torch.device = "cpu", pool_factor: int = 1,
                         protected_tokens: int = 1, prompt: str | None = None,
                         prompt_name: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Documents -> (tokens [T, dim], offsets int64 [n+1]): document i is tokens[offsets[i]:offsets[i+1]],
        its kept tokens (skiplist ids dropped) in order, the CSR layout of the kernels and the index.

        max_tokens bounds a batch's padded grid (count x longest); default batch_size x document_length.
        pool_factor > 1 pools each document's kept tokens as PyLate's ``pool_factor`` does: the first
        ``protected_tokens`` stay, the others become the means of max(m // pool_factor, 1) Ward clusters
        (``edgecolbert_native.pool_tokens``; float32 on the CPU, then back to the model's dtype).
        prompt / prompt_name: as for encode_queries."""
        for name, value in (("pool_factor", pool_factor), ("protected_tokens", protected_tokens)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"encode_documents: {name} must be an int, got {type(value).__name__}")
        batch_size = _positive_int("encode_documents", "batch_size", batch_size)
        out_device = _device("encode_documents", "output_device", output_device)
        if max_tokens is not None:
            max_tokens = _positive_int("encode_documents", "max_tokens", max_tokens)
        if pool_factor < 1 or protected_tokens < 0:
            raise ValueError(f"encode_documents: pool_factor must be >= 1 and protected_tokens >= 0, got "
                             f"{pool_factor} and {protected_tokens}")
        text = self._prompt("encode_documents", prompt, prompt_name)
        texts = _texts("encode_documents", texts)
        batch, keep = self.tokenizer.documents(texts, text)
        vecs = self._embed(batch, batch_size=batch_size, max_tokens=max_tokens, normalize=normalize,
                           progress=show_progress_bar, desc="Encoding documents",
                           output_device=out_device)
        kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        offsets = torch.from_numpy(np.ascontiguousarray(kept[batch.offsets]))
        if not keep.all():
            vecs = vecs[torch.from_numpy(keep).to(vecs.device)].contiguous()
        if pool_factor > 1:
            return self._pool(vecs, offsets, int(pool_factor), int(protected_tokens))
        return vecs, offsets

    def _pool(self, vecs: torch.Tensor, offsets: torch.Tensor, pool_factor: int,
              protected_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        from ..kernels import pool_tokens

        # PyLate clusters on the CPU too (scipy); float32 whatever the model's dtype.
        rows = vecs.detach().to("cpu", torch.float32).contiguous().numpy()
        pooled, pooled_offsets = pool_tokens(rows, offsets.numpy(), pool_factor, protected_tokens=protected_tokens)
        out = torch.from_numpy(np.ascontiguousarray(pooled)).to(device=vecs.device, dtype=self.dtype)
        return out, torch.from_numpy(pooled_offsets)

    def token_ids(self, texts: str | list[str], *, is_query: bool, prompt: str | None = None,
                  prompt_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ids the model sees (prompt, prefix and expansion included) as CSR (ids, offsets): for
        inspection."""
        text = self._prompt("token_ids", prompt, prompt_name)
        if is_query:
            b = self.tokenizer.queries(_texts("token_ids", texts), text)
        else:
            b, _ = self.tokenizer.documents(_texts("token_ids", texts), text)
        return b.ids, b.offsets

