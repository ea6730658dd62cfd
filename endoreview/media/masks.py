"""Telling mask images from video frames: a folder of black-and-white images is ground truth, not a procedure.

Datasets ship their masks next to their frames (CVC-ColonDB's ``GT/``, ClinicDB's ``Ground Truth``, masks-only
zips). Imported as a video, such a folder becomes a "video" whose frames are masks; :func:`mask_only_reason` says
so before anything is stored, naming the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

SAMPLE = 5  # images looked at (spread over the folder)


def looks_like_mask(img: np.ndarray) -> bool:
    """A binary image: one channel (or three equal ones), nearly every pixel black or white, some of each
    allowed to be absent (an empty mask); JPEG ringing near edges is tolerated."""
    a = np.asarray(img)
    if a.ndim == 3:
        if a.shape[2] == 4:
            a = a[..., :3]
        if a.shape[2] >= 3 and not (
            np.abs(a[..., 0].astype(np.int16) - a[..., 1]).max() <= 8
            and np.abs(a[..., 0].astype(np.int16) - a[..., 2]).max() <= 8
        ):
            return False
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = (a > 0).astype(np.uint8) * 255 if a.max() <= 1 else np.clip(a, 0, 255).astype(np.uint8)
    extreme = (a <= 16) | (a >= 239) | (a == 1)
    return bool(extreme.mean() >= 0.98)


def mask_only_reason(folder: Path, images: Sequence[Path] | None = None) -> str | None:
    """Why ``folder`` (an image-sequence folder) is not a video — it holds only masks — or None when it may be one."""
    import cv2

    files = (
        sorted(images)
        if images is not None
        else sorted(
            p
            for p in Path(folder).iterdir()
            if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
        )
    )
    if not files:
        return None
    picks = [files[round(k * (len(files) - 1) / max(1, SAMPLE - 1))] for k in range(min(SAMPLE, len(files)))]
    for p in dict.fromkeys(picks):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None or not looks_like_mask(img):
            return None
    return (
        f"{folder}: every sampled image is a black-and-white mask ({len(files)} images), not a video frame — "
        "this looks like a dataset's ground-truth folder (e.g. CVC-ColonDB GT/). Import the dataset's root folder "
        "(import dataset) so the masks become labels of their videos"
    )
