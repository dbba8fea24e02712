"""ModernBERT and BERT backbones and the ColBERT head, in plain torch, on packed (unpadded) tokens.

Layout. A batch is its sequences back to back: hidden states are [T, hidden] with T the number of real
tokens, so every linear layer, norm and activation costs exactly the real tokens, with no padding. Only
attention needs sequences apart; `Packed` scatters q/k/v into a [B, heads, L, head_dim] grid for
`scaled_dot_product_attention` (SDPA) and gathers the result back. Batches are sorted by length (see
_encoder.py), so the grid wastes little, and a batch of equal lengths skips the scatter entirely.

Local attention (ModernBERT's sliding window: |i - j| <= w, with w = local_attention // 2) costs O(n * w)
for long sequences: queries go in blocks of w, each block attends to its own and its two neighbouring key
blocks (3w keys) under a fixed band mask, the block-sparse scheme of Longformer/BigBird. Short sequences
(L <= w + 1) need no window at all, and middling ones a band mask over the full grid.

Numerics follow transformers 5.3's ModernBertModel / BertModel (RoPE angles and rotation in float32, exact
erf GELU, LayerNorm without bias where the config says so); parity is tested to 1e-5 in float32.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ._config import BackboneConfig, DenseSpec


def activation(name: str):
    if name == "gelu":
        return F.gelu  # exact (erf), transformers' "gelu"
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    if name in ("silu", "swish"):
        return F.silu
    raise ValueError(f"config.json: activation {name!r} is not supported")


class Packed:
    """Where each token of a packed batch sits: its sequence, its position, who may attend to it."""

    # Below this length a local layer is a band mask over the full grid; above, blocked attention.
    # 3w keys per query is what the blocked path reads, so beyond ~4w it does less work.
    BLOCKED_FROM = 4

    def __init__(self, lengths: torch.Tensor, attend: torch.Tensor | None, device: torch.device):
        lengths = lengths.to(torch.int64).cpu()
        self.B = int(lengths.numel())
        self.L = int(lengths.max()) if self.B else 0
        self.T = int(lengths.sum())
        self.device = device
        self.uniform = bool((lengths == self.L).all())
        starts = torch.cumsum(lengths, 0) - lengths
        seq = torch.repeat_interleave(torch.arange(self.B), lengths)
        pos = torch.arange(self.T) - torch.repeat_interleave(starts, lengths)
        self.positions = pos.to(device)
        self.seq = None if self.uniform else seq.to(device)
        self.flat: torch.Tensor | None = None if self.uniform else (seq * self.L + pos).to(device)
        self._grid: torch.Tensor | None = None
        self.has_key_mask = attend is not None or not self.uniform
        if self.has_key_mask:
            valid = torch.zeros(self.B * self.L, dtype=torch.bool)
            valid[seq * self.L + pos] = True if attend is None else attend.cpu()
            self.key_valid: torch.Tensor | None = valid.view(self.B, self.L).to(device)
        else:
            self.key_valid = None
        self._masks: dict = {}

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """[T, ...] -> [B, L, ...], zeros where there is no token. The grid is made (and zeroed) once per
        batch: every layer writes the same token slots, so the padding slots stay zero."""
        if self.uniform:
            return x.view(self.B, self.L, *x.shape[1:])
        shape = (self.B * self.L, *x.shape[1:])
        if self._grid is None or self._grid.shape != shape or self._grid.dtype != x.dtype:
            self._grid = x.new_zeros(shape)
        self._grid.index_copy_(0, self.flat, x)  # type: ignore[arg-type]  # not uniform: flat is set
        return self._grid.view(self.B, self.L, *x.shape[1:])

    def unpad_heads(self, y: torch.Tensor) -> torch.Tensor:
        """Attention output [B, heads, L, hd] -> [T, heads * hd], one gather."""
        if self.uniform:
            return y.transpose(1, 2).reshape(self.T, -1)
        return y.transpose(1, 2)[self.seq, self.positions].view(self.T, -1)

    def global_mask(self) -> torch.Tensor | None:
        if not self.has_key_mask:
            return None
        if "global" not in self._masks:
            self._masks["global"] = cast(torch.Tensor, self.key_valid)[:, None, None, :]
        return self._masks["global"]

    def band_mask(self, w: int) -> torch.Tensor:
        key = ("band", w)
        if key not in self._masks:
            i = torch.arange(self.L, device=self.device)
            band = (i[:, None] - i[None, :]).abs() <= w
            mask = band[None, None]
            if self.has_key_mask:
                mask = mask & cast(torch.Tensor, self.key_valid)[:, None, None, :]
            self._masks[key] = mask
        return self._masks[key]

    def block_mask(self, w: int, nblk: int) -> torch.Tensor:
        """[B * nblk, 1, w, 3w]: query s of block b sees key t of keys [(b-1)w, (b+2)w) iff |s + w - t| <= w."""
        key = ("block", w)
        if key not in self._masks:
            s = torch.arange(w, device=self.device)[:, None]
            t = torch.arange(3 * w, device=self.device)[None, :]
            band = (t >= s) & (t <= s + 2 * w)
            valid = self.key_valid
            if valid is None:
                valid = torch.ones(self.B, self.L, dtype=torch.bool, device=self.device)
            padded = F.pad(valid, (w, nblk * w - self.L + w), value=False)  # [B, (nblk + 2) w]
            keys = padded.unfold(1, 3 * w, w)  # [B, nblk, 3w]
            self._masks[key] = (band[None, None] & keys[:, :, None, :]).reshape(self.B * nblk, 1, w, 3 * w)
        return self._masks[key]


def attention(qkv: torch.Tensor, packed: Packed, window: int | None) -> torch.Tensor:
    """Self-attention of packed qkv [T, 3, heads, head_dim] -> [T, heads * head_dim].

    window: None for global attention, else w (keys with |i - j| <= w)."""
    L = packed.L
    grid = packed.pad(qkv)  # [B, L, 3, heads, hd]
    q, k, v = grid.permute(2, 0, 3, 1, 4).unbind(0)  # [B, heads, L, hd] each
    if window is None or L <= window + 1:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=packed.global_mask())
    elif L < Packed.BLOCKED_FROM * window:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=packed.band_mask(window))
    else:
        out = _blocked_local_attention(q, k, v, packed, window)
    return packed.unpad_heads(out)


def _blocked_local_attention(q, k, v, packed: Packed, w: int) -> torch.Tensor:
    B, heads, L, hd = q.shape
    nblk = -(-L // w)
    lp = nblk * w
    q = F.pad(q, (0, 0, 0, lp - L)).view(B, heads, nblk, w, hd)
    q = q.transpose(1, 2).reshape(B * nblk, heads, w, hd)

    def blocks(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, w, lp - L + w))  # [B, heads, (nblk + 2) w, hd]
        x = x.unfold(2, 3 * w, w)  # [B, heads, nblk, hd, 3w], a view
        return x.permute(0, 2, 1, 4, 3).reshape(B * nblk, heads, 3 * w, hd)

    out = F.scaled_dot_product_attention(q, blocks(k), blocks(v), attn_mask=packed.block_mask(w, nblk))
    out = out.view(B, nblk, heads, w, hd).transpose(1, 2).reshape(B, heads, lp, hd)
    return out[:, :, :L]


class Rotary(nn.Module):
    """RoPE (half-split, as transformers' rotate_half), applied as one complex multiplication.

    The checkpoint pairs dimension i with i + hd/2 of each head. At load, the q and k rows of Wqkv are
    permuted so that each pair sits side by side (see `interleave_qk`); q . k is unchanged by a permutation
    applied to both, and a side-by-side pair is a complex number, so the rotation
    (x_i cos - x_{i+hd/2} sin, x_i sin + x_{i+hd/2} cos) is x * e^{i angle}, done in place on the
    projection's output. Angles in float32, as transformers computes them."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        # Not a buffer: Module.to(bfloat16) would round the frequencies; they stay float32.
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        inv = self._on_device.get(positions.device)
        if inv is None:
            inv = self._on_device[positions.device] = self.inv_freq.to(positions.device)
        freqs = positions.float()[:, None] * inv[None, :]
        return torch.complex(freqs.cos(), freqs.sin())[:, None, None, :]  # [T, 1, 1, hd/2]


def apply_rotary(qkv: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotates q and k of qkv [T, 3, heads, hd] (pairs interleaved) in place."""
    qk = qkv[:, :2].unflatten(-1, (-1, 2))
    if torch.compiler.is_compiling():
        # Inductor generates no code for complex arithmetic; in real arithmetic it fuses the rotation.
        a, b = qk[..., 0].float(), qk[..., 1].float()
        c, s = rot.real, rot.imag
        qk.copy_(torch.stack((a * c - b * s, a * s + b * c), dim=-1))
    elif qkv.dtype == torch.float32:
        torch.view_as_complex(qk).mul_(rot)
    else:  # half types: rotate in float32, as transformers does
        qk.copy_(torch.view_as_real(torch.view_as_complex(qk.float()) * rot))
    return qkv


def interleave_qk(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Wqkv's rows (or bias) with each head's q and k dims reordered 0, hd/2, 1, hd/2 + 1, ..."""
    hidden = weight.shape[0] // 3
    hd = hidden // heads
    order = torch.arange(hd).view(2, hd // 2).t().reshape(-1)
    head_rows = (torch.arange(heads)[:, None] * hd + order[None, :]).reshape(-1)
    rows = torch.cat((head_rows, hidden + head_rows, torch.arange(2 * hidden, 3 * hidden)))
    return weight[rows].contiguous()


def _norm(cfg: BackboneConfig, bias: bool) -> nn.LayerNorm:
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=bias)


def add_linear(h: torch.Tensor, x: torch.Tensor, linear: nn.Module) -> torch.Tensor:
    """h + linear(x): one GEMM that accumulates onto h (addmm) for a bias-free float Linear."""
    if type(linear) is nn.Linear and linear.bias is None and h.dim() == 2:
        return torch.addmm(h, x, linear.weight.t())
    return h + linear(x)


class _Box(nn.Module):
    """A named container, so that parameter names match the checkpoint's."""

    def __getattr__(self, name: str) -> Any:  # children are set by name; type them as Any for mypy
        return super().__getattr__(name)


class ModernBertLayer(nn.Module):
    def __init__(self, cfg: BackboneConfig, index: int):
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.window = None if cfg.layer_is_global[index] else cfg.local_window
        # Layer 0's attention norm is the identity: the embeddings were just normalised.
        self.attn_norm = _norm(cfg, cfg.norm_bias) if index else None
        self.attn = _Box()
        self.attn.Wqkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.attention_bias)
        self.attn.Wo = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.attention_bias)
        self.mlp_norm = _norm(cfg, cfg.norm_bias)
        self.mlp = _Box()
        self.mlp.Wi = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=cfg.mlp_bias)
        self.mlp.Wo = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.act = activation(cfg.activation)
        self.project = self._project
        self.finish = self._finish

    def _project(self, h: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        x = h if self.attn_norm is None else self.attn_norm(h)
        qkv = self.attn.Wqkv(x).view(h.shape[0], 3, self.heads, self.head_dim)
        return apply_rotary(qkv, rot)

    def _finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = add_linear(h, attn, self.attn.Wo)
        x, gate = self.mlp.Wi(self.mlp_norm(h)).chunk(2, dim=-1)
        return add_linear(h, self.act(x).mul_(gate), self.mlp.Wo)

    def forward(self, h: torch.Tensor, packed: Packed, rot: torch.Tensor) -> torch.Tensor:
        qkv = self.project(h, rot)
        return self.finish(h, attention(qkv, packed, self.window))


class ModernBert(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = _Box()
        self.embeddings.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.embeddings.norm = _norm(cfg, cfg.norm_bias)
        self.layers = nn.ModuleList(ModernBertLayer(cfg, i) for i in range(cfg.num_layers))
        self.final_norm = _norm(cfg, cfg.norm_bias)
        self.rope_global = Rotary(cfg.head_dim, cfg.global_rope_theta)
        self.rope_local = Rotary(cfg.head_dim, cfg.local_rope_theta)

    def forward(self, ids: torch.Tensor, packed: Packed) -> torch.Tensor:
        h = self.embeddings.norm(self.embeddings.tok_embeddings(ids))
        rope_g = self.rope_global(packed.positions)
        same = self.cfg.local_rope_theta == self.cfg.global_rope_theta
        rope_l = rope_g if same else self.rope_local(packed.positions)
        for layer in self.layers:
            h = layer(h, packed, rope_g if layer.window is None else rope_l)
        return self.final_norm(h)

    @staticmethod
    def convert(state: dict[str, torch.Tensor], cfg: BackboneConfig) -> dict[str, torch.Tensor]:
        # Parameter names are the checkpoint's; Wqkv's q and k rows are reordered for `Rotary`.
        out = {k: v for k, v in state.items() if k.startswith(("embeddings.", "layers.", "final_norm."))}
        for k in list(out):
            if k.endswith(("attn.Wqkv.weight", "attn.Wqkv.bias")):
                out[k] = interleave_qk(out[k], cfg.num_heads)
        return out


class BertLayer(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.qkv = nn.Linear(h, 3 * h)  # query, key and value fused into one GEMM
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.norm_eps)
        self.inter = nn.Linear(h, i)
        self.out = nn.Linear(i, h)
        self.out_norm = nn.LayerNorm(h, eps=cfg.norm_eps)
        self.act = activation(cfg.activation)
        self.project = self._project
        self.finish = self._finish

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        return self.qkv(h).view(h.shape[0], 3, self.heads, self.head_dim)

    def _finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = self.attn_norm(self.attn_out(attn) + h)
        return self.out_norm(self.out(self.act(self.inter(h))) + h)

    def forward(self, h: torch.Tensor, packed: Packed) -> torch.Tensor:
        return self.finish(h, attention(self.project(h), packed, None))


class Bert(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_layers))

    def forward(self, ids: torch.Tensor, packed: Packed) -> torch.Tensor:
        # Single segments: token type 0 everywhere (PyLate gives the prefix token type 0 too).
        h = self.word(ids) + self.token_type.weight[0]
        h = self.norm(h + self.position(packed.positions))
        for layer in self.layers:
            h = layer(h, packed)
        return h

    @staticmethod
    def convert(state: dict[str, torch.Tensor], cfg: BackboneConfig) -> dict[str, torch.Tensor]:
        out = {}
        take = state.pop
        for ours, theirs in (("word", "word_embeddings"), ("position", "position_embeddings"),
                             ("token_type", "token_type_embeddings")):
            out[f"{ours}.weight"] = take(f"embeddings.{theirs}.weight")
        for p in ("weight", "bias"):
            out[f"norm.{p}"] = take(f"embeddings.LayerNorm.{p}")
        for i in range(cfg.num_layers):
            src, dst = f"encoder.layer.{i}.", f"layers.{i}."
            for p in ("weight", "bias"):
                out[dst + f"qkv.{p}"] = torch.cat(
                    [take(src + f"attention.self.{n}.{p}") for n in ("query", "key", "value")]
                )
                out[dst + f"attn_out.{p}"] = take(src + f"attention.output.dense.{p}")
                out[dst + f"attn_norm.{p}"] = take(src + f"attention.output.LayerNorm.{p}")
                out[dst + f"inter.{p}"] = take(src + f"intermediate.dense.{p}")
                out[dst + f"out.{p}"] = take(src + f"output.dense.{p}")
                out[dst + f"out_norm.{p}"] = take(src + f"output.LayerNorm.{p}")
        # What is left (pooler, position_ids buffers, MLM heads) is not part of the encoder.
        return out


_ACTIVATIONS = {"Identity", "Tanh", "ReLU", "GELU", "SiLU", "Sigmoid", "LeakyReLU", "ELU", "Softplus"}


def _head_activation(path: str) -> nn.Module:
    name = path.rsplit(".", 1)[-1]
    if not path.startswith("torch.nn.") or name not in _ACTIVATIONS:
        raise ValueError(f"Dense activation_function {path!r} is not supported (torch.nn {sorted(_ACTIVATIONS)})")
    return getattr(nn, name)()


class Dense(nn.Module):
    """PyLate's Dense: activation(linear(x)), plus x (or residual(x)) when use_residual."""

    def __init__(self, spec: DenseSpec):
        super().__init__()
        self.linear = nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.activation = _head_activation(spec.activation)
        self.use_residual = spec.use_residual
        self.residual = (
            nn.Linear(spec.in_features, spec.out_features, bias=False)
            if spec.use_residual and spec.in_features != spec.out_features
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if self.use_residual:
            y = y + (x if self.residual is None else self.residual(x))
        return y


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    return ModernBert(cfg) if cfg.kind == "modernbert" else Bert(cfg)


def _rename_legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Old TF-converted BERT checkpoints name LayerNorm parameters gamma / beta.
    out = {}
    for k, v in state.items():
        if k.endswith(".gamma"):
            k = k[: -len("gamma")] + "weight"
        elif k.endswith(".beta"):
            k = k[: -len("beta")] + "bias"
        out[k] = v
    return out


def backbone_state(state: dict[str, torch.Tensor], cfg: BackboneConfig) -> dict[str, torch.Tensor]:
    """The backbone's parameters from a checkpoint's state dict, whatever prefix it was saved under
    (none for ModernBertModel/BertModel, "model." for ModernBertForMaskedLM, "bert." for colbert-ai)."""
    state = _rename_legacy(state)
    anchor = "embeddings.tok_embeddings.weight" if cfg.kind == "modernbert" else "embeddings.word_embeddings.weight"
    prefixes = sorted((k[: -len(anchor)] for k in state if k.endswith(anchor)), key=len)
    if not prefixes:
        raise ValueError(f"checkpoint: no {anchor} among the weights")
    prefix = prefixes[0]
    stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return (ModernBert if cfg.kind == "modernbert" else Bert).convert(stripped, cfg)


def load_backbone(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint weights do not match the config: missing {sorted(missing)[:8]}, "
            f"unexpected {sorted(unexpected)[:8]}"
        )
    emb: Any = module.embeddings.tok_embeddings if isinstance(module, ModernBert) else module.word
    cfg: Any = module.cfg
    if emb.weight.shape[0] != cfg.vocab_size:
        raise ValueError("checkpoint: embedding rows differ from config.json's vocab_size")


def check_shapes(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = module.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise ValueError(f"checkpoint: {k} has shape {tuple(v.shape)}, config.json implies {tuple(own[k].shape)}")


__all__ = [
    "Packed", "attention", "ModernBert", "Bert", "Dense", "build_backbone", "backbone_state",
    "load_backbone", "check_shapes",
]
