"""ModernBERT and BERT backbones and the ColBERT head, in plain torch, on packed (unpadded) tokens.

Layout. A batch is its sequences back to back: hidden states are [T, hidden] with T the number of real
tokens, so every linear layer, norm and activation costs exactly the real tokens, with no padding. On CPU in
float32, attention takes each sequence straight from the packed projections (`_per_sequence_attention`,
oneDNN GEMMs); otherwise `Packed` scatters q/k/v into a [B, heads, L, head_dim] grid for
`scaled_dot_product_attention` (SDPA) and gathers the result back. Batches are sorted by length (see
_encoder.py), so the grid wastes little, and a batch of equal lengths skips the scatter entirely.

CPU float32 speed comes from oneDNN rather than MKL (`OneDNNLinear`, `use_onednn`): see docs/encoder.md.

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


def onednn_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether oneDNN's float32 linear (torch.ops.mkldnn._linear_pointwise) can run here."""
    return (
        device.type == "cpu"
        and dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


ROW_BUCKET = 64  # OneDNNLinear's row count is rounded up to a multiple of this


class OneDNNLinear(nn.Module):
    """y = x W^T + b through oneDNN with W pre-packed once, optionally with an activation fused.

    Why: torch's float32 `addmm` on CPU calls MKL, which on AMD CPUs takes its AVX2 code path; oneDNN picks
    AVX-512 from the CPU's features and, on pre-packed (blocked) weights, runs these [tokens, hidden] GEMMs
    2.5 to 3x faster (measured ~80-110 vs ~240-260 GFLOP/s per core on this machine's EPYC). It is the same
    float32 arithmetic (no bf16/tf32 down-conversion), only summed in another order, well inside 1e-5.
    The parameters stay in the original nn.Linear (state_dict unchanged); this holds derived copies."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, act: str = "none", algorithm: str = ""):
        super().__init__()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), None)
        self.bias = None if bias is None else bias.detach().contiguous()
        self.act, self.algorithm = act, algorithm
        self.out_features = weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # oneDNN caches one compiled primitive per GEMM shape (up to 1,024 of them), and a packed batch's
        # token count is a new shape almost every batch: memory grew by hundreds of MiB over a long run.
        # Rows padded to a multiple of ROW_BUCKET keep the shapes few (the pad rows are dropped).
        n = x.shape[0]
        pad = -n % ROW_BUCKET
        if pad:
            x = torch.cat([x, x.new_zeros((pad, x.shape[1]))])
        y = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, self.act, [], self.algorithm)
        return y[:n] if pad else y


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
        self.spans = list(zip(starts.tolist(), lengths.tolist()))  # (start, length) per sequence
        self.attend_mask = attend is not None
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

    def additive_band(self, n: int, w: int, rows: slice, dtype: torch.dtype) -> torch.Tensor:
        """[rows, n] additive mask (0 inside |i - j| <= w, -inf outside) for one sequence of length n."""
        key = ("additive", n, w, rows.start, rows.stop)
        if key not in self._masks:
            i = torch.arange(rows.start, rows.stop, device=self.device)[:, None]
            j = torch.arange(n, device=self.device)[None, :]
            mask = torch.zeros((rows.stop - rows.start, n), dtype=dtype, device=self.device)
            self._masks[key] = mask.masked_fill_((i - j).abs() > w, float("-inf"))
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


def attention(qkv: torch.Tensor, packed: Packed, window: int | None, scale: float | None = None) -> torch.Tensor:
    """Self-attention of packed qkv [T, 3, heads, head_dim] -> [T, heads * head_dim].

    window: None for global attention, else w (keys with |i - j| <= w). scale: the factor on q . k,
    default 1/sqrt(head_dim); 1.0 when the model folded it into Wqkv's q rows (see `use_onednn`)."""
    L = packed.L
    if (
        L >= PER_SEQUENCE_FROM
        and not packed.attend_mask
        and (window is None or L < Packed.BLOCKED_FROM * window)
        and onednn_ok(qkv.device, qkv.dtype)
        and torch.get_num_threads() == 1
    ):
        return _per_sequence_attention(qkv, packed, window, scale)
    grid = packed.pad(qkv)  # [B, L, 3, heads, hd]
    q, k, v = grid.permute(2, 0, 3, 1, 4).unbind(0)  # [B, heads, L, hd] each
    if window is None or L <= window + 1:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=packed.global_mask(), scale=scale)
    elif L < Packed.BLOCKED_FROM * window:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=packed.band_mask(window), scale=scale)
    else:
        out = _blocked_local_attention(q, k, v, packed, window, scale)
    return packed.unpad_heads(out)


# Below this longest length the grid + SDPA path is used: single queries and short texts are few and small,
# and one SDPA call has less Python overhead than the per-(sequence, head) loop. The loop is also used only
# with one intra-op thread: its many small GEMMs and softmaxes, each a parallel region, ran 8x slower at
# 2 threads on the shared 2-core test machine (pydocs passages, 17m: 808 tok/s against 6,863 for the grid
# path in the same run), while at 1 thread it beat the grid path 6,051 to 3,700 tok/s.
PER_SEQUENCE_FROM = 64
# Query rows per chunk of the materialised scores (a chunk is rows x length floats).
SCORE_CHUNK_ELEMENTS = 1 << 21


def _per_sequence_attention(qkv: torch.Tensor, packed: Packed, window: int | None,
                            scale: float | None) -> torch.Tensor:
    """Attention one sequence and one head at a time, as two oneDNN GEMMs around a softmax.

    Why: on CPU, float32 `scaled_dot_product_attention` runs its flash kernel on small MKL GEMMs (query
    blocks of 32), which on this class of CPU (AMD, where MKL takes its AVX2 path) reaches ~40 GFLOP/s;
    oneDNN's AVX-512 GEMM on the whole [n, hd] x [hd, n] product reaches ~200. For the lengths this path
    takes (global layers, and local layers below 4w) materialising the n x n scores is cheap, and working
    per sequence needs neither padding, nor a grid, nor a key mask. Local layers add a band mask."""
    T, _, heads, hd = qkv.shape
    if scale is None:
        scale = hd ** -0.5
    out = qkv.new_empty(T, heads * hd)
    linear = torch.ops.mkldnn._linear_pointwise
    for start, n in packed.spans:
        if n == 0:
            continue
        x = qkv[start:start + n]
        qk = x[:, :2].permute(1, 2, 0, 3).contiguous()  # [2, heads, n, hd]
        vt = x[:, 2].permute(1, 2, 0).contiguous()  # [heads, hd, n]: v as a linear layer's weight
        chunk = max(1, min(n, SCORE_CHUNK_ELEMENTS // n))
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            band = None
            if window is not None and n > window + 1:
                band = packed.additive_band(n, window, slice(r0, r1), qkv.dtype)
            outs = []
            for h in range(heads):
                scores = linear(qk[0, h, r0:r1], qk[1, h], None, "none", [], "")  # q k^T, [rows, n]
                if scale != 1.0:
                    scores.mul_(scale)
                if band is not None:
                    scores.add_(band)
                outs.append(linear(torch.softmax(scores, -1), vt[h], None, "none", [], ""))  # [rows, hd]
            torch.cat(outs, 1, out=out[start + r0:start + r1])
    return out


def _blocked_local_attention(q, k, v, packed: Packed, w: int, scale: float | None = None) -> torch.Tensor:
    B, heads, L, hd = q.shape
    nblk = -(-L // w)
    lp = nblk * w
    q = F.pad(q, (0, 0, 0, lp - L)).view(B, heads, nblk, w, hd)
    q = q.transpose(1, 2).reshape(B * nblk, heads, w, hd)

    def blocks(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, w, lp - L + w))  # [B, heads, (nblk + 2) w, hd]
        x = x.unfold(2, 3 * w, w)  # [B, heads, nblk, hd, 3w], a view
        return x.permute(0, 2, 1, 4, 3).reshape(B * nblk, heads, 3 * w, hd)

    out = F.scaled_dot_product_attention(q, blocks(k), blocks(v), attn_mask=packed.block_mask(w, nblk),
                                         scale=scale)
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
    if isinstance(linear, OneDNNLinear):
        # oneDNN's fused "add" post-op measured slower than a separate in-place add on this machine.
        return linear(x).add_(h)
    return h + linear(x)


def _gelu_post_op(act) -> tuple[str, str] | None:
    """oneDNN post-op (attr, algorithm) computing `act` exactly as torch does, else None."""
    if act is F.gelu:
        return "gelu", "none"  # erf GELU
    if act is F.relu:
        return "relu", ""
    return None


def _scaled_q(weight: torch.Tensor, hidden: int, scale: float) -> torch.Tensor:
    """Wqkv's weight (or bias) with the q rows multiplied by `scale` (1/sqrt(hd): a power of two for
    hd = 64, hence exact; otherwise one rounding, ~1e-7 relative)."""
    w = weight.detach().clone()
    w[:hidden] *= scale
    return w


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
        self.fast: dict[str, OneDNNLinear] | None = None  # set by use_onednn
        self.q_scale: float | None = None  # 1.0 once 1/sqrt(hd) is folded into the q rows

    def use_onednn(self) -> None:
        """Run the linear layers through oneDNN (see OneDNNLinear), with 1/sqrt(hd) folded into Wqkv's q rows
        (so attention skips a pass over the scores) and GeGLU's input GEMM split in two: the GELU half gets
        the activation as a fused post-op, which saves a pass over [T, intermediate]."""
        hidden = self.heads * self.head_dim
        scale = self.head_dim ** -0.5
        Wqkv, Wi, inter = self.attn.Wqkv, self.mlp.Wi, self.mlp.Wo.in_features
        fast = {
            "Wqkv": OneDNNLinear(_scaled_q(Wqkv.weight, hidden, scale),
                                 None if Wqkv.bias is None else _scaled_q(Wqkv.bias, hidden, scale)),
            "Wo": OneDNNLinear(self.attn.Wo.weight, self.attn.Wo.bias),
            "mlp_Wo": OneDNNLinear(self.mlp.Wo.weight, self.mlp.Wo.bias),
        }
        post = _gelu_post_op(self.act)
        bias = (None, None) if Wi.bias is None else (Wi.bias[:inter], Wi.bias[inter:])
        if post is not None:
            fast["Wi_act"] = OneDNNLinear(Wi.weight[:inter], bias[0], *post)
            fast["Wi_gate"] = OneDNNLinear(Wi.weight[inter:], bias[1])
        else:
            fast["Wi"] = OneDNNLinear(Wi.weight, Wi.bias)
        self.fast, self.q_scale = fast, 1.0
        self.project, self.finish = self._project_fast, self._finish_fast

    def _project(self, h: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        x = h if self.attn_norm is None else self.attn_norm(h)
        qkv = self.attn.Wqkv(x).view(h.shape[0], 3, self.heads, self.head_dim)
        return apply_rotary(qkv, rot)

    def _finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = add_linear(h, attn, self.attn.Wo)
        x, gate = self.mlp.Wi(self.mlp_norm(h)).chunk(2, dim=-1)
        return add_linear(h, self.act(x).mul_(gate), self.mlp.Wo)

    def _project_fast(self, h: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        fast = cast(dict, self.fast)
        x = h if self.attn_norm is None else self.attn_norm(h)
        qkv = fast["Wqkv"](x).view(h.shape[0], 3, self.heads, self.head_dim)
        return apply_rotary(qkv, rot)

    def _finish_fast(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        fast = cast(dict, self.fast)
        h = add_linear(h, attn, fast["Wo"])
        x = self.mlp_norm(h)
        if "Wi_act" in fast:
            y = fast["Wi_act"](x).mul_(fast["Wi_gate"](x))
        else:
            a, gate = fast["Wi"](x).chunk(2, dim=-1)
            y = self.act(a).mul_(gate)
        return add_linear(h, y, fast["mlp_Wo"])

    def forward(self, h: torch.Tensor, packed: Packed, rot: torch.Tensor) -> torch.Tensor:
        qkv = self.project(h, rot)
        return self.finish(h, attention(qkv, packed, self.window, self.q_scale))


class _Backbone(nn.Module):
    """What both backbones share: a ``layers`` list, each of which can switch to oneDNN linears."""

    layers: nn.ModuleList

    def use_onednn(self) -> None:
        layers: Any = self.layers
        for layer in layers:
            layer.use_onednn()


class ModernBert(_Backbone):
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
        self.q_scale: float | None = None

    def use_onednn(self) -> None:
        """oneDNN linears (see ModernBertLayer.use_onednn): scale folded into q, activation fused if exact."""
        hidden = self.heads * self.head_dim
        scale = self.head_dim ** -0.5
        post = _gelu_post_op(self.act)
        self.qkv_fast = OneDNNLinear(_scaled_q(self.qkv.weight, hidden, scale),
                                     _scaled_q(self.qkv.bias, hidden, scale))
        self.attn_out_fast = OneDNNLinear(self.attn_out.weight, self.attn_out.bias)
        self.inter_fast = OneDNNLinear(self.inter.weight, self.inter.bias, *(post or ("none", "")))
        self.out_fast = OneDNNLinear(self.out.weight, self.out.bias)
        self.inter_fused = post is not None
        self.q_scale = 1.0
        self.project, self.finish = self._project_fast, self._finish_fast

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        return self.qkv(h).view(h.shape[0], 3, self.heads, self.head_dim)

    def _finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = self.attn_norm(self.attn_out(attn) + h)
        return self.out_norm(self.out(self.act(self.inter(h))) + h)

    def _project_fast(self, h: torch.Tensor) -> torch.Tensor:
        return self.qkv_fast(h).view(h.shape[0], 3, self.heads, self.head_dim)

    def _finish_fast(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = self.attn_norm(self.attn_out_fast(attn).add_(h))
        x = self.inter_fast(h)
        if not self.inter_fused:
            x = self.act(x)
        return self.out_norm(self.out_fast(x).add_(h))

    def forward(self, h: torch.Tensor, packed: Packed) -> torch.Tensor:
        return self.finish(h, attention(self.project(h), packed, None, self.q_scale))


class Bert(_Backbone):
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
        self.fast: OneDNNLinear | None = None

    def use_onednn(self) -> None:
        self.fast = OneDNNLinear(self.linear.weight, self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation((self.fast or self.linear)(x))
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
    "Packed", "attention", "onednn_ok", "OneDNNLinear", "ModernBert", "Bert", "Dense", "build_backbone",
    "backbone_state", "load_backbone", "check_shapes",
]
