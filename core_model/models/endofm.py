"""The Endo-FM backbone: TimeSformer with divided space-time attention, official numerics, fast execution.

Numerics and state-dict keys are those of the official ``models/timesformer.py`` (reference §1, §2.1, §6.7):
token order ``(h w t)``, the CLS token has no time embedding and takes no part in temporal attention, its spatial
residual is the mean over frames; DropPath comes *before* ``temporal_fc`` and draws per spatial location (temporal
branch), per frame (spatial branch) and per clip (MLP); LayerNorm eps 1e-6; exact GELU; the positional and temporal
tables are resized with legacy ``nearest`` interpolation.

Speed (identical maths): ``F.scaled_dot_product_attention`` on strided q/k/v views of one fused qkv projection,
the CLS token kept apart from the patch tokens inside the blocks so the temporal attention reads the ``(h w t)``
patch tensor with a free reshape (no slicing copies), one transposing copy per block for the spatial attention
(made after norm1 and, under autocast, in bf16), in eval mode ``temporal_attn.proj`` and ``temporal_fc`` merged into
one linear map (nothing sits between them without DropPath), optional gradient checkpointing per block. Works under
bf16 autocast and ``torch.compile`` (no graph breaks).

Shapes: ``x`` [B, 3, T, H, W]; N = (H // 16) * (W // 16) patches per frame; D = embed_dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from core_model.models.config import EndoFMConfig
from core_model.models.layers import Mlp, drop_path, init_vit_weights, resize_pos_embed, resize_time_embed

__all__ = ["Attention", "Block", "EndoFM", "PatchEmbed"]


class PatchEmbed(nn.Module):
    """Per-frame Conv2d (kernel = stride = patch, with bias): [B, 3, T, H, W] -> [B*T, N, D] ((b t) rows)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        B, C, T, H, W = x.shape
        x = x.transpose(1, 2).reshape(B * T, C, H, W)  # (b t) c h w
        x = self.proj(x)  # [B*T, D, Hp, Wp]
        grid_h, grid_w = x.shape[-2], x.shape[-1]
        return x.flatten(2).transpose(1, 2), grid_h, grid_w  # [B*T, Hp*Wp, D], patch n = h*Wp + w


class Attention(nn.Module):
    """Multi-head self-attention with the official layout: qkv = [q | k | v], heads are contiguous slices."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        S, L, _ = x.shape
        # [S, L, 3D] -> [3, S, heads, L, hd]: strided views, no copy (SDPA reads them in place)
        qkv = self.qkv(x).view(S, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attend(x))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Attention before the output projection: x [S, L, D] (S sequences of L tokens) -> [S, L, D]."""
        S, L, D = x.shape
        q, k, v = self._qkv(x)
        drop = self.attn_drop if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # [S, heads, L, hd]
        return o.transpose(1, 2).reshape(S, L, D)

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T * scale): [S, heads, L, L] (the official ``get_attn`` output)."""
        q, k, _ = self._qkv(x)
        return ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


class Block(nn.Module):
    """Divided space-time block (reference §1.3) on a separate CLS ``c`` [B, 1, D] and patches ``p`` [B, N*T, D]."""

    def __init__(self, cfg: EndoFMConfig, drop_path_rate: float) -> None:
        super().__init__()
        dim, eps = cfg.embed_dim, cfg.norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias, cfg.attn_drop_rate)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=eps)
        self.temporal_attn = Attention(dim, cfg.num_heads, cfg.qkv_bias, cfg.attn_drop_rate)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), cfg.drop_rate)
        self.drop_path = float(drop_path_rate)
        self.proj_drop = nn.Dropout(cfg.drop_rate) if cfg.drop_rate > 0 else nn.Identity()

    def _temporal(self, p: torch.Tensor, T: int) -> torch.Tensor:
        B, NT, D = p.shape
        # (h w t) order: [B, N*T, D] -> [B*N, T, D] is a free view
        xt = self.temporal_norm1(p).view(B * (NT // T), T, D)
        if not self.training:
            # eval: nothing sits between temporal_attn.proj and temporal_fc, so they are one linear map
            # fc(proj(o)) = o @ (Wfc Wproj)^T + (Wfc bproj + bfc): one GEMM fewer per block (exact up to rounding)
            w, b = self._merged_temporal_out()
            return p + F.linear(self.temporal_attn.attend(xt).view(B, NT, D), w, b)
        r = self.proj_drop(self.temporal_attn(xt))
        r = drop_path(r, self.drop_path, self.training)  # per spatial location, before temporal_fc
        return p + self.temporal_fc(r.view(B, NT, D))

    def _merged_temporal_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        fc, proj = self.temporal_fc, self.temporal_attn.proj
        with torch.autocast(fc.weight.device.type, enabled=False):  # merge in the weights' own precision
            w = fc.weight @ proj.weight
            b = torch.addmv(fc.bias, fc.weight, proj.bias)
        return w, b

    def _spatial_input(self, c: torch.Tensor, p: torch.Tensor, T: int) -> torch.Tensor:
        """norm1 of [CLS repeated per frame ; frame t's patches]: [B*T, 1+N, D].

        LayerNorm is per token, so it runs before the regrouping; under autocast its output is cast to the autocast
        dtype first, so the one transposing copy moves half the bytes and the qkv GEMM needs no cast of its own."""
        B, NT, D = p.shape
        N = NT // T
        nc, np_ = self.norm1(c), self.norm1(p)
        if torch.is_autocast_enabled(p.device.type):
            dt = torch.get_autocast_dtype(p.device.type)
            nc, np_ = nc.to(dt), np_.to(dt)
        # [B, 1, D] + [B, (n t), D] -> [B, T, 1+N, D]
        s = torch.cat([nc.unsqueeze(1).expand(B, T, 1, D), np_.view(B, N, T, D).transpose(1, 2)], dim=2)
        return s.view(B * T, 1 + N, D)

    def _spatial(self, c: torch.Tensor, p: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        B, NT, D = p.shape
        N = NT // T
        y = self.proj_drop(self.attn(self._spatial_input(c, p, T)))
        y = drop_path(y, self.drop_path, self.training).view(B, T, 1 + N, D)  # per frame
        c = c + y[:, :, 0].mean(dim=1, keepdim=True)  # CLS residual: mean over frames
        p = (p.view(B, N, T, D) + y[:, :, 1:].transpose(1, 2)).reshape(B, NT, D)
        return c, p

    def forward(self, c: torch.Tensor, p: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self._temporal(p, T)
        c, p = self._spatial(c, p, T)
        # MLP on CLS and patches separately (no concatenation copy); DropPath draws once per clip for both,
        # as the official module does on the concatenated [B, 1+N*T, D] tensor.
        mc, mp = self.mlp(self.norm2(c)), self.mlp(self.norm2(p))
        if self.drop_path > 0.0 and self.training:
            keep = 1.0 - self.drop_path
            mask = c.new_empty(c.shape[0], 1, 1).bernoulli_(keep).div_(keep)
            mc, mp = mc * mask, mp * mask
        return c + mc, p + mp

    def spatial_attention(self, c: torch.Tensor, p: torch.Tensor, T: int) -> torch.Tensor:
        """Spatial attention probabilities of this block: [B*T, heads, 1+N, 1+N]."""
        p = self._temporal(p, T)
        return self.attn.attention_probs(self._spatial_input(c, p, T))


class EndoFM(nn.Module):
    """Endo-FM video backbone. ``forward(x)`` returns the final-norm CLS feature [B, D] (what PolypDiag uses).

    Constructors do no I/O: load weights with ``core_model.models.create_model(name, checkpoint=...)``.
    """

    def __init__(self, cfg: EndoFMConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or EndoFMConfig()
        self.cfg = cfg
        self.embed_dim = self.num_features = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.grid_size**2, cfg.embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, cfg.embed_dim))
        self.pos_drop = nn.Dropout(cfg.drop_rate) if cfg.drop_rate > 0 else nn.Identity()
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist()
        self.blocks = nn.ModuleList([Block(cfg, r) for r in rates])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.head: nn.Module = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.grad_checkpointing = cfg.grad_checkpointing
        self.init_weights()

    # ------------------------------------------------------------------ contract
    def init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-2.0, b=2.0)
        nn.init.zeros_(self.time_embed)
        init_vit_weights(self)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "time_embed"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = bool(enable)

    def reset_head(self, num_classes: int) -> None:
        """Replace the built-in linear head (0 removes it; task heads normally live outside the backbone)."""
        self.cfg = self.cfg.replace(num_classes=num_classes)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes else nn.Identity()
        if num_classes:
            nn.init.trunc_normal_(self.head.weight, std=0.02, a=-2.0, b=2.0)
            nn.init.zeros_(self.head.bias)

    # ------------------------------------------------------------------ tokens
    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """x [B, 3, T, H, W] -> CLS [B, 1, D], patches [B, N*T, D] in (h w t) order, T."""
        if x.ndim != 5:
            raise ValueError(f"expected a clip batch [B, C, T, H, W], got shape {tuple(x.shape)}")
        B, _, T, _, _ = x.shape
        p, grid_h, grid_w = self.patch_embed(x)  # [B*T, N, D]
        N, D = p.shape[1], p.shape[2]
        pos = resize_pos_embed(self.pos_embed, grid_h, grid_w)  # [1, 1+N, D]
        p = self.pos_drop(p + pos[:, 1:])
        c = (self.cls_token + pos[:, :1]).expand(B, 1, D)  # no time embedding on the CLS
        # [(b t), n, d] -> [b, n, t, d] + time table -> [b, (n t), d]
        p = p.view(B, T, N, D).transpose(1, 2) + resize_time_embed(self.time_embed, T).unsqueeze(1)
        p = self.pos_drop(p.reshape(B, N * T, D))
        return c, p, T

    def _run_block(
        self, i: int, c: torch.Tensor, p: torch.Tensor, T: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        blk = self.blocks[i]
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(blk, c, p, T, use_reentrant=False)
        return blk(c, p, T)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final norm: [B, 1 + N*T, D], CLS first, then (h w t) order."""
        c, p, T = self._embed(x)
        for i in range(len(self.blocks)):
            c, p = self._run_block(i, c, p, T)
        return self.norm(torch.cat([c, p], dim=1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens [B, 1+N*T, D] -> final-norm CLS [B, D] (or the built-in head's logits)."""
        cls = x[:, 0]
        return cls if pre_logits else self.head(cls)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.head, nn.Identity):  # norm only the CLS: same numbers, skips norming N*T tokens
            c, p, T = self._embed(x)
            for i in range(len(self.blocks)):
                c, p = self._run_block(i, c, p, T)
            return self.norm(c[:, 0])
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False
    ) -> list[torch.Tensor]:
        """Outputs of the requested blocks (before the final norm unless ``norm``), each [B, 1+N*T, D].

        ``indices``: block indices (negative counts from the end) or an int n for the last n blocks; None: all.
        Blocks after the deepest requested one are not run.
        """
        depth = len(self.blocks)
        if indices is None:
            wanted = list(range(depth))
        elif isinstance(indices, int):
            if not 1 <= indices <= depth:
                raise ValueError(f"indices={indices}: ask for 1..{depth} last blocks")
            wanted = list(range(depth - indices, depth))
        else:
            wanted = []
            for i in indices:
                j = i + depth if i < 0 else i
                if not 0 <= j < depth:
                    raise ValueError(f"block index {i} out of range for depth {depth}")
                wanted.append(j)
        take = set(wanted)
        found: dict[int, torch.Tensor] = {}
        c, p, T = self._embed(x)
        for i in range(max(wanted) + 1):
            c, p = self._run_block(i, c, p, T)
            if i in take:
                t = torch.cat([c, p], dim=1)
                found[i] = self.norm(t) if norm else t
        return [found[i] for i in wanted]

    @torch.no_grad()
    def forward_spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial attention probabilities of the last block, [B*T, heads, 1+N, 1+N] (official ``get_attn``)."""
        c, p, T = self._embed(x)
        for i in range(len(self.blocks) - 1):
            c, p = self.blocks[i](c, p, T)
        return self.blocks[-1].spatial_attention(c, p, T)
