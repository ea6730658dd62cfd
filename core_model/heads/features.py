"""What a task head receives from the backbone, and the token <-> feature-map reshapes every dense head needs.

The backbone runs once per clip (``EndoFMTaskModel``); its outputs are packed into one ``BackboneFeatures``:

- ``tokens``: all tokens after the final LayerNorm, ``[B, 1 + N*T, D]`` in the official ``(h w t)`` order
  (token ``1 + (h*Wp + w)*T + t``; index 0 is the CLS);
- ``intermediates``: block outputs *before* the final norm, ``{block_index: [B, 1 + N*T, D]}``, for the blocks the
  heads asked for (``head.required_blocks(depth)``);
- the geometry: ``num_frames`` T, patch ``grid`` (Hp, Wp), ``patch_size`` and the clip's ``image_size`` (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange

__all__ = ["BackboneFeatures", "evenly_spaced_blocks", "frame_maps"]


@dataclass
class BackboneFeatures:
    tokens: torch.Tensor  # [B, 1+N*T, D], final norm applied
    num_frames: int
    grid: tuple[int, int]  # (Hp, Wp)
    image_size: tuple[int, int]  # (H, W) of the clip fed to the backbone
    patch_size: int
    intermediates: dict[int, torch.Tensor] = field(default_factory=dict)  # block -> [B, 1+N*T, D], pre-norm

    def __post_init__(self) -> None:
        hp, wp = self.grid
        expected = 1 + hp * wp * self.num_frames
        if self.tokens.dim() != 3 or self.tokens.shape[1] != expected:
            raise ValueError(
                f"tokens have shape {tuple(self.tokens.shape)}; expected [B, {expected}, D] for "
                f"T={self.num_frames} and a {hp}x{wp} patch grid"
            )

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def embed_dim(self) -> int:
        return int(self.tokens.shape[2])

    @property
    def cls(self) -> torch.Tensor:
        """Final-norm CLS token, ``[B, D]`` (what the paper's linear classifier reads)."""
        return self.tokens[:, 0]

    def maps(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame feature maps ``[B*T, D, Hp, Wp]`` (row ``b*T + t``) from ``tokens`` (default: final tokens)."""
        return frame_maps(self.tokens if tokens is None else tokens, self.num_frames, self.grid)


def frame_maps(tokens: torch.Tensor, num_frames: int, grid: tuple[int, int]) -> torch.Tensor:
    """``[B, 1+N*T, D]`` tokens in ``(h w t)`` order -> ``[B*T, D, Hp, Wp]`` maps (CLS dropped), rows ``b*T + t``."""
    hp, wp = grid
    # tokens[:, 1:]: [B, (Hp Wp T), D] -> [(B T), D, Hp, Wp]
    return rearrange(tokens[:, 1:], "b (h w t) d -> (b t) d h w", h=hp, w=wp, t=num_frames).contiguous()


def evenly_spaced_blocks(depth: int, count: int) -> list[int]:
    """``count`` block indices spread over ``depth`` blocks, always ending with the last one.

    depth 12, count 4 -> [2, 5, 8, 11] (UNETR's 3/6/9/12 in 1-based terms); depth 6, count 4 -> [0, 2, 3, 5].
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    count = max(1, min(count, depth))
    picks = sorted({max(0, (depth * (k + 1)) // count - 1) for k in range(count)})
    # integer division can collide at small depths; fill from the top so the last block is always present
    candidate = depth - 1
    while len(picks) < count and candidate >= 0:
        if candidate not in picks:
            picks.append(candidate)
        candidate -= 1
    return sorted(picks)
