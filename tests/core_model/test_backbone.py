"""The Endo-FM backbone: official key names and sizes, shapes at every input size, the fast path equal to the
naive official code path (eval and train mode), table resizing quirks, gradient checkpointing, bf16."""

from __future__ import annotations

import pytest
import torch

from core_model.models import EndoFM, EndoFMConfig, create_model, get_config
from core_model.models.layers import drop_path, resize_pos_embed, resize_time_embed
from core_model.models.reference import ReferenceEndoFM

SMALL = EndoFMConfig(embed_dim=48, depth=2, num_heads=3, img_size=64, drop_path_rate=0.0)

BLOCK_SUFFIXES = [
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "temporal_norm1.weight", "temporal_norm1.bias", "temporal_attn.qkv.weight", "temporal_attn.qkv.bias",
    "temporal_attn.proj.weight", "temporal_attn.proj.bias", "temporal_fc.weight", "temporal_fc.bias",
    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
]  # fmt: skip


def official_keys(depth: int) -> set[str]:
    keys = {"cls_token", "pos_embed", "time_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"}
    keys |= {"norm.weight", "norm.bias"}
    keys |= {f"blocks.{i}.{s}" for i in range(depth) for s in BLOCK_SUFFIXES}
    return keys


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random values everywhere (incl. temporal_fc and time_embed, which init to zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_official_base_size_and_keys():
    m = create_model("endofm_base")
    assert sum(p.numel() for p in m.parameters()) == 121_258_752
    sd = m.state_dict()
    assert set(sd) == official_keys(12) and len(sd) == 247
    assert sd["pos_embed"].shape == (1, 197, 768) and sd["time_embed"].shape == (1, 8, 768)
    assert sd["blocks.0.attn.qkv.weight"].shape == (2304, 768)
    # official init: temporal_fc zero in all blocks, time_embed zero, LayerNorm eps 1e-6
    assert all(sd[f"blocks.{i}.temporal_fc.weight"].abs().sum() == 0 for i in range(12))
    assert sd["time_embed"].abs().sum() == 0
    assert m.norm.eps == 1e-6 and m.blocks[0].norm1.eps == 1e-6
    assert m.blocks[0].mlp.act.approximate == "none"  # exact (erf) GELU
    assert [round(b.drop_path, 6) for b in m.blocks][:2] == [0.0, round(0.1 / 11, 6)]
    assert m.no_weight_decay() == {"pos_embed", "cls_token", "time_embed"}


def test_named_sizes_and_overrides():
    small = get_config("endofm_small")
    assert (small.embed_dim, small.depth, small.num_heads) == (384, 12, 6)
    tiny = create_model("endofm_tiny")
    assert (tiny.embed_dim, len(tiny.blocks), tiny.cfg.num_heads, tiny.cfg.img_size) == (192, 6, 3, 112)
    assert set(tiny.state_dict()) == official_keys(6)
    m = create_model("endofm_tiny", depth=2, embed_dim=96, num_frames=4)
    assert (len(m.blocks), m.embed_dim, m.time_embed.shape[1]) == (2, 96, 4)
    with pytest.raises(ValueError, match="unknown EndoFMConfig field.*'dpeth'"):
        create_model("endofm_tiny", dpeth=3)
    with pytest.raises(ValueError, match="unknown model 'endofm_huge'"):
        create_model("endofm_huge")
    with pytest.raises(ValueError, match="not divisible"):
        create_model("endofm_tiny", num_heads=5)


@pytest.mark.parametrize(
    "shape",
    [
        (2, 3, 8, 64, 64),
        (2, 3, 16, 64, 64),
        (2, 3, 2, 32, 32),
        (1, 3, 3, 80, 96),
        (1, 3, 1, 64, 96),
        (1, 3, 8, 16, 64),
        (1, 3, 2, 32, 128),  # a 2x8 grid has 16 patches = the 4x4 table: the official code uses it unchanged
    ],
)
def test_fast_path_equals_naive_official_path(shape):
    """Every token at every size/frame count (incl. T=1, non-square, 1-row grids) equals the official code path."""
    torch.manual_seed(0)
    fast, ref = EndoFM(SMALL).eval(), ReferenceEndoFM(SMALL).eval()
    randomize(fast)
    ref.load_state_dict(fast.state_dict(), strict=True)
    x = torch.randn(shape)
    with torch.no_grad():
        tokens = fast.forward_features(x)
        B, _, T, H, W = shape
        assert tokens.shape == (B, 1 + (H // 16) * (W // 16) * T, 48)
        torch.testing.assert_close(tokens, ref.forward_features(x), atol=2e-5, rtol=0)
        torch.testing.assert_close(fast(x), ref(x), atol=2e-5, rtol=0)
        torch.testing.assert_close(fast(x), tokens[:, 0])
        for a, b in zip(fast.forward_intermediates(x, [0, 1]), ref.forward_intermediates(x), strict=True):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
        attn = fast.forward_spatial_attention(x)
        assert attn.shape == (B * T, 3, 1 + (H // 16) * (W // 16), 1 + (H // 16) * (W // 16))
        torch.testing.assert_close(attn, ref.forward_spatial_attention(x), atol=1e-6, rtol=0)
        torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:-1]))


def test_train_mode_drop_path_matches_official_semantics():
    """With stochastic depth on, fast and naive paths draw the same masks in the same order: per spatial location
    (temporal branch), per frame (spatial branch), per clip (MLP); outputs and gradients agree."""
    cfg = EndoFMConfig(embed_dim=48, depth=3, num_heads=3, img_size=64, drop_path_rate=0.6)
    fast, ref = EndoFM(cfg).train(), ReferenceEndoFM(cfg).train()
    randomize(fast, 1)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(3, 3, 4, 64, 64)
    torch.manual_seed(7)
    a = fast.forward_features(x)
    torch.manual_seed(7)
    b = ref.forward_features(x)
    torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    a.square().mean().backward()
    b.square().mean().backward()
    for (n, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=n)
    # different seeds give different outputs: the drop really happens in train mode, never in eval
    torch.manual_seed(8)
    assert not torch.allclose(fast.forward_features(x), a)
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast.forward_features(x), fast.forward_features(x))


def test_drop_path_draws_once_per_leading_index():
    torch.manual_seed(0)
    x = torch.ones(64, 5, 7)
    y = drop_path(x, 0.5, training=True)
    per_sample = y.flatten(1)
    assert torch.all(per_sample.amin(1) == per_sample.amax(1))  # one decision per sample
    assert set(per_sample[:, 0].tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/keep
    assert drop_path(x, 0.5, training=False) is x


def test_table_resizing_is_legacy_nearest():
    te = torch.arange(8.0).view(1, 8, 1)
    for n, idx in {
        16: [i // 2 for i in range(16)],
        4: [0, 2, 4, 6],
        3: [0, 2, 5],
        2: [0, 4],
        1: [0],
        8: list(range(8)),
    }.items():
        assert resize_time_embed(te, n).flatten().tolist() == idx
    pos = torch.arange(197.0).view(1, 197, 1)
    # 196-token quirk: a 7x28 grid uses the 14x14 table unchanged, in flattened order
    assert resize_pos_embed(pos, 7, 28) is pos
    # 14x14 -> 6x6: src = floor(dst * 14 / 6) = [0, 2, 4, 7, 9, 11]
    got = resize_pos_embed(pos, 6, 6).flatten().tolist()
    rows = [0, 2, 4, 7, 9, 11]
    assert got == [0.0] + [1.0 + r * 14 + c for r in rows for c in rows]


def test_cls_has_no_time_embedding_and_token_order_is_h_w_t():
    m = EndoFM(SMALL).eval()
    randomize(m, 2)
    x = torch.randn(1, 3, 4, 64, 64)
    c, p, T = m._embed(x)
    with torch.no_grad():
        m.time_embed.add_(5.0)
    c2, p2, _ = m._embed(x)
    torch.testing.assert_close(c, c2)  # CLS unaffected by the time table
    torch.testing.assert_close(p2 - p, torch.full_like(p, 5.0))
    # token 1 + (h*Wp + w)*T + t holds frame t's patch (h, w): move one frame's pixels, only its tokens change
    x2 = x.clone()
    x2[:, :, 2, 16:32, 32:48] += 1.0  # frame 2, patch (h=1, w=2) of a 4x4 grid
    _, p3, _ = m._embed(x2)
    changed = ((p3 - p2).abs().sum(-1)[0] > 1e-3).nonzero().flatten().tolist()
    assert changed == [(1 * 4 + 2) * 4 + 2]


def test_gradient_checkpointing_same_numbers():
    m = EndoFM(SMALL.replace(drop_path_rate=0.0)).train()
    randomize(m, 3)
    x = torch.randn(2, 3, 2, 32, 32)
    m(x).sum().backward()
    g1 = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.set_grad_checkpointing(True)
    m(x).sum().backward()
    for a, p in zip(g1, m.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, atol=1e-6, rtol=1e-5)


def test_bf16_autocast_runs_close_to_fp32():
    m = EndoFM(SMALL).eval()
    randomize(m, 4)
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        ref = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(x)
    assert low.dtype in (torch.bfloat16, torch.float32)
    assert (low.float() - ref).abs().max() < 0.15


def test_head_contract():
    m = EndoFM(SMALL)
    x = torch.randn(2, 3, 2, 32, 32)
    assert m(x).shape == (2, 48)
    m.reset_head(5)
    logits = m(x)
    assert logits.shape == (2, 5)
    torch.testing.assert_close(
        m.forward_head(m.forward_features(x), pre_logits=True), m.forward_features(x)[:, 0]
    )
    assert "head.weight" in m.state_dict()
    m.reset_head(0)
    assert "head.weight" not in m.state_dict()
    outs = m.forward_intermediates(x, indices=1)
    assert len(outs) == 1 and outs[0].shape == (2, 1 + 4 * 2, 48)
    assert len(m.forward_intermediates(x, indices=[-1, 0])) == 2
    with pytest.raises(ValueError, match="out of range"):
        m.forward_intermediates(x, indices=[5])
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        m(torch.randn(2, 3, 32, 32))


@pytest.mark.slow
def test_torch_compile_matches_eager():
    m = EndoFM(SMALL).eval()
    randomize(m, 5)
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(m)(x), m(x), atol=1e-4, rtol=1e-4)
