"""Contact sheets: a grid of frames from several phantom videos and sites, optionally with ground-truth outlines,
for looking at the generator's output (``endofm phantom OUT --sheet sheet.png``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.phantom.render import render_video


def contact_sheet(
    seeds: Sequence[int],
    sites: Sequence[str] = ("default", "site_b"),
    n_frames: int = 64,
    size: int = 256,
    columns: int = 4,
    outline: bool = False,
) -> np.ndarray:
    """RGB uint8 grid: for each site a row block of ``len(seeds)`` videos, ``columns`` frames each (preferring
    frames that show a polyp). With ``outline`` each polyp's ground-truth mask is outlined in green."""
    import cv2

    rows = []
    for site in sites:
        for seed in seeds:
            frames, gt = render_video(seed, n_frames=n_frames, size=size, site=site)
            has = np.flatnonzero(gt.frame_has_polyp)
            pool = has if len(has) >= columns else np.arange(n_frames)
            pick = pool[np.linspace(0, len(pool) - 1, columns).round().astype(int)]
            tiles = []
            for i in pick:
                tile = frames[i].copy()
                if outline:
                    m = (gt.instance_mask(int(i)) > 0).astype(np.uint8)
                    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                    cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
                label = f"{site} seed {seed} f{int(i)}" + (" polyp" if gt.frame_has_polyp[i] else "")
                scale = 0.3 * size / 256
                (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
                # top-right corner: free of the burned-in overlay in every site layout
                cv2.putText(
                    tile,
                    label,
                    (size - tw - 3, th + 3),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    scale,
                    (120, 200, 255),
                    1,
                    cv2.LINE_AA,
                )
                tiles.append(tile)
            rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def save_contact_sheet(path: str | os.PathLike, sheet: np.ndarray) -> Path:
    import cv2

    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: cannot write the contact sheet")
    return path
