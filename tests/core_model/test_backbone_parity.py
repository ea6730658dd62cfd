"""Official parity: the fixture checkpoint (official layout, made by the official code) loaded THROUGH THE CONVERTER
reproduces every official output array within 1e-4, for the fast backbone and for the naive reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.checkpoint import load_backbone_state_dict
from core_model.models import EndoFM, EndoFMConfig, create_model
from core_model.models.reference import ReferenceEndoFM

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "endofm-parity"
CKPT = FIXTURES / "official_small_checkpoint.pth"
OUTPUTS = FIXTURES / "official_outputs.npz"
SHAPES = [
    (2, 3, 8, 224, 224),
    (2, 3, 16, 224, 224),
    (2, 3, 2, 96, 96),
    (1, 3, 3, 640, 640),
    (1, 3, 1, 224, 320),
]
CFG = EndoFMConfig(embed_dim=96, depth=3, num_heads=3)

pytestmark = pytest.mark.skipif(
    not (CKPT.is_file() and OUTPUTS.is_file()),
    reason=f"official parity fixtures not found at {FIXTURES} (the ../shared checkout is absent)",
)


def clip(i: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(100 + i).standard_normal(SHAPES[i], dtype=np.float32))


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    with np.load(OUTPUTS) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def fast() -> EndoFM:
    # the converter: teacher dict, backbone. prefix stripped, stray DINO head key set aside, exact key check
    return create_model("endofm_small", checkpoint=CKPT, embed_dim=96, depth=3, num_heads=3).eval()


@pytest.fixture(scope="module")
def naive() -> ReferenceEndoFM:
    m = ReferenceEndoFM(CFG).eval()
    m.load_state_dict(load_backbone_state_dict(CKPT, expected_keys=m.state_dict().keys()), strict=True)
    return m


def test_converter_reads_the_official_layout():
    sd = load_backbone_state_dict(CKPT)
    assert sd.source == "official-pretrain"
    assert len(sd) == 5 + 3 * 20 + 2
    assert list(sd.extra) == ["head.last_layer.weight_v"]  # the stray DINO head key was dropped, not loaded


def max_err(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape
    return float((a - torch.from_numpy(b)).abs().max())


@pytest.mark.parametrize("i", range(len(SHAPES)))
def test_fast_backbone_matches_official(i, fast, official):
    x = clip(i)
    with torch.no_grad():
        tokens = fast.forward_features(x)
        cls = fast(x)
    assert max_err(cls, official[f"cls_{i}"]) <= 1e-4
    assert max_err(tokens, official[f"tokens_{i}"]) <= 1e-4


def test_fast_block_outputs_match_official(fast, official):
    with torch.no_grad():
        blocks = fast.forward_intermediates(clip(0), indices=[0, 1, 2])
    for j, b in enumerate(blocks):
        assert max_err(b, official[f"block{j}_0"]) <= 1e-4


@pytest.mark.parametrize("i", range(len(SHAPES)))
def test_naive_reference_matches_official(i, naive, official):
    x = clip(i)
    with torch.no_grad():
        tokens = naive.forward_features(x)
    assert max_err(tokens[:, 0], official[f"cls_{i}"]) <= 1e-4
    assert max_err(tokens, official[f"tokens_{i}"]) <= 1e-4
    if i == 0:
        with torch.no_grad():
            blocks = naive.forward_intermediates(x)
        for j, b in enumerate(blocks):
            assert max_err(b, official[f"block{j}_0"]) <= 1e-4


def test_spatial_attention_matches_naive_official_path(fast, naive):
    """``forward_spatial_attention`` (official ``get_attn``): the last block's spatial attention probabilities."""
    x = clip(2)
    with torch.no_grad():
        a, b = fast.forward_spatial_attention(x), naive.forward_spatial_attention(x)
    assert a.shape == (2 * 2, 3, 1 + 36, 1 + 36)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
