"""Synthetic colonoscopy ("phantom") videos with exact ground truth, for tests, demos and domain-shift checks.

    frames, gt = render_video(seed=3, n_frames=64, size=256, site="default")
    generate_video(out_dir, "case3", seed=3)      # writes case3.mp4 + case3.json
    gt = load_ground_truth(out_dir / "case3.json")

See docs/phantom.md for what is drawn and the ground-truth file format.
"""

from core_model.phantom.generate import generate_video
from core_model.phantom.groundtruth import GroundTruthError, PhantomGroundTruth, Track, load_ground_truth
from core_model.phantom.render import PhantomStream, field_of_view, render_video
from core_model.phantom.sites import SITES, SiteStyle, get_site

__all__ = [
    "SITES",
    "GroundTruthError",
    "PhantomGroundTruth",
    "PhantomStream",
    "SiteStyle",
    "Track",
    "field_of_view",
    "generate_video",
    "get_site",
    "load_ground_truth",
    "render_video",
]
