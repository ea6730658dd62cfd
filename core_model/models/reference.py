"""The naive reference: the official Endo-FM TimeSformer code path written the straightforward way.

Explicit softmax attention, einops rearranges, the CLS token concatenated into every token tensor, exactly as the
official ``models/timesformer.py`` (commit 206427e) computes it. It exists to (1) prove the maths twice, since it
must match the official parity fixtures as the fast ``EndoFM`` does, and (2) be the baseline of
``benchmarks/backbone_throughput.py``. Same state-dict keys as ``EndoFM``; not used for real work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from core_model.models.config import EndoFMConfig
from core_model.models.layers import DropPath, Mlp, init_vit_weights

__all__ = ["ReferenceEndoFM"]


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        if return_attention:
            return attn
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class _Block(nn.Module):
    def __init__(self, cfg: EndoFMConfig, drop_path: float) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = _Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.temporal_attn = _Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.temporal_fc = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(
        self, x: torch.Tensor, B: int, T: int, W: int, return_attention: bool = False
    ) -> torch.Tensor:
        num_spatial_tokens = (x.size(1) - 1) // T
        H = num_spatial_tokens // W
        # temporal
        xt = x[:, 1:, :]
        xt = rearrange(xt, "b (h w t) m -> (b h w) t m", b=B, h=H, w=W, t=T)
        res_temporal = self.drop_path(self.temporal_attn(self.temporal_norm1(xt)))
        res_temporal = rearrange(res_temporal, "(b h w) t m -> b (h w t) m", b=B, h=H, w=W, t=T)
        res_temporal = self.temporal_fc(res_temporal)
        xt = x[:, 1:, :] + res_temporal
        # spatial
        init_cls_token = x[:, 0, :].unsqueeze(1)
        cls_token = init_cls_token.repeat(1, T, 1)
        cls_token = rearrange(cls_token, "b t m -> (b t) m", b=B, t=T).unsqueeze(1)
        xs = rearrange(xt, "b (h w t) m -> (b t) (h w) m", b=B, h=H, w=W, t=T)
        xs = torch.cat((cls_token, xs), 1)
        if return_attention:
            return self.attn(self.norm1(xs), return_attention=True)
        res_spatial = self.drop_path(self.attn(self.norm1(xs)))
        cls_token = res_spatial[:, 0, :]
        cls_token = rearrange(cls_token, "(b t) m -> b t m", b=B, t=T)
        cls_token = torch.mean(cls_token, 1, True)
        res_spatial = res_spatial[:, 1:, :]
        res_spatial = rearrange(res_spatial, "(b t) (h w) m -> b (h w t) m", b=B, h=H, w=W, t=T)
        # mlp
        x = torch.cat((init_cls_token, xt), 1) + torch.cat((cls_token, res_spatial), 1)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class ReferenceEndoFM(nn.Module):
    """Official-structure backbone. ``forward`` -> final-norm CLS [B, D]; ``forward_features`` -> all tokens."""

    def __init__(self, cfg: EndoFMConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or EndoFMConfig()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.grid_size**2, cfg.embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, cfg.embed_dim))
        dpr = [x.item() for x in torch.linspace(0, cfg.drop_path_rate, cfg.depth)]
        self.blocks = nn.ModuleList([_Block(cfg, dpr[i]) for i in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-2.0, b=2.0)
        init_vit_weights(self)

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int, int]:
        B, T = x.shape[0], x.shape[2]
        x = rearrange(x, "b c t h w -> (b t) c h w")
        x = self.patch_embed.proj(x)
        W = x.size(-1)
        x = x.flatten(2).transpose(1, 2)
        cls_tokens = self.cls_token.expand(x.size(0), -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        if x.size(1) != self.pos_embed.size(1):
            pos_embed = self.pos_embed
            cls_pos_embed = pos_embed[0, 0, :].unsqueeze(0).unsqueeze(1)
            other_pos_embed = pos_embed[0, 1:, :].unsqueeze(0).transpose(1, 2)
            P = int(other_pos_embed.size(2) ** 0.5)
            H = x.size(1) // W
            other_pos_embed = other_pos_embed.reshape(1, x.size(2), P, P)
            new_pos_embed = F.interpolate(other_pos_embed, size=(H, W), mode="nearest")
            new_pos_embed = new_pos_embed.flatten(2).transpose(1, 2)
            new_pos_embed = torch.cat((cls_pos_embed, new_pos_embed), 1)
            x = x + new_pos_embed
        else:
            x = x + self.pos_embed
        cls_tokens = x[:B, 0, :].unsqueeze(1)
        x = x[:, 1:]
        x = rearrange(x, "(b t) n m -> (b n) t m", b=B, t=T)
        if T != self.time_embed.size(1):
            time_embed = self.time_embed.transpose(1, 2)
            new_time_embed = F.interpolate(time_embed, size=(T), mode="nearest")
            x = x + new_time_embed.transpose(1, 2)
        else:
            x = x + self.time_embed
        x = rearrange(x, "(b n) t m -> b (n t) m", b=B, t=T)
        x = torch.cat((cls_tokens, x), dim=1)
        return x, B, T, W

    def forward_intermediates(self, x: torch.Tensor, indices: list[int] | None = None) -> list[torch.Tensor]:
        x, B, T, W = self._tokens(x)
        outs = []
        for blk in self.blocks:
            x = blk(x, B, T, W)
            outs.append(x)
        return outs if indices is None else [outs[i] for i in indices]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, B, T, W = self._tokens(x)
        for blk in self.blocks:
            x = blk(x, B, T, W)
        return self.norm(x)

    def forward_spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        x, B, T, W = self._tokens(x)
        for blk in self.blocks[:-1]:
            x = blk(x, B, T, W)
        return self.blocks[-1](x, B, T, W, return_attention=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[:, 0]
