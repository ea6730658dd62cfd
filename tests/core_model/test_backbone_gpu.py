"""On a CUDA GPU: the fast path (fused SDPA kernels) still equals the naive official path, in fp32 and under bf16
autocast, and a bf16 training step of ``endofm_base`` needs no more memory than the naive one. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from core_model.models import EndoFM, EndoFMConfig, get_config
from core_model.models.reference import ReferenceEndoFM

pytestmark = pytest.mark.gpu

CFG = EndoFMConfig(embed_dim=192, depth=4, num_heads=3, img_size=224)


def pair(cfg: EndoFMConfig) -> tuple[EndoFM, ReferenceEndoFM]:
    torch.manual_seed(0)
    fast = EndoFM(cfg)
    with torch.no_grad():
        for p in fast.parameters():
            p.normal_(0, 0.05)
    ref = ReferenceEndoFM(cfg)
    ref.load_state_dict(fast.state_dict())
    return fast.cuda().eval(), ref.cuda().eval()


def test_cuda_fp32_and_bf16_match_the_naive_path():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    fast, ref = pair(CFG)
    x = torch.randn(2, 3, 8, 224, 224, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(fast.forward_features(x), ref.forward_features(x), atol=1e-4, rtol=0)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            a, b = fast.forward_features(x).float(), ref.forward_features(x).float()
    assert (a - b).abs().max() < 0.1  # bf16 rounding only
    assert torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).min() > 0.999


def test_cuda_training_step_memory_not_above_naive():
    cfg = get_config("endofm_base")
    x = torch.randn(2, 3, 8, 224, 224, device="cuda")
    peaks = {}
    for name, cls in (("ours", EndoFM), ("reference", ReferenceEndoFM)):
        torch.cuda.empty_cache()
        model = cls(cfg).cuda().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(x).float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated()
        del model, opt
    assert peaks["ours"] <= peaks["reference"], peaks


def test_cuda_compile_bf16_matches_eager():
    fast, _ = pair(CFG)
    x = torch.randn(2, 3, 8, 224, 224, device="cuda")
    compiled = torch.compile(fast)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        torch.testing.assert_close(compiled(x).float(), fast(x).float(), atol=5e-2, rtol=0)
