"""The cache limit in Settings is enforced: what was used longest ago goes first, a proxy with its sidecar."""

from __future__ import annotations

import os
import time

MB = 2**20


def _file(path, mb: float, age_s: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(int(mb * MB))  # sparse: the size counts, the disk does not fill
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def _cache():
    from endoreview.paths import cache_dir

    root = cache_dir()
    return {
        "a": _file(root / "proxies" / "a.mp4", 40, age_s=3000),
        "a_side": _file(root / "proxies" / "a.proxy.json", 0.001, age_s=3000),
        "thumb": _file(root / "thumbnails" / "t.png", 20, age_s=2000),
        "b": _file(root / "proxies" / "b.mp4", 40, age_s=10),
        "b_side": _file(root / "proxies" / "b.proxy.json", 0.001, age_s=10),
    }


def test_trim_removes_the_least_recently_used_proxy_with_its_sidecar():
    from endoreview.services.app_settings import cache_size, trim_caches

    f = _cache()
    freed = trim_caches(limit_mb=64)
    assert not f["a"].exists() and not f["a_side"].exists()  # oldest, and its sidecar with it
    assert f["thumb"].exists() and f["b"].exists() and f["b_side"].exists()
    assert freed >= 40 * MB and cache_size() <= 64 * MB
    assert trim_caches(limit_mb=64) == 0  # under the limit: nothing more goes


def test_trim_keeps_the_proxy_on_screen_and_uses_the_saved_limit():
    from endoreview.services.app_settings import Settings, save_settings, trim_caches

    f = _cache()
    save_settings(Settings(cache_limit_mb=64))
    trim_caches(protect=(f["a"],))  # the oldest is on screen
    assert f["a"].exists() and f["a_side"].exists()
    assert not f["thumb"].exists() and not f["b"].exists()  # the next oldest go until it fits


def test_a_thumbnail_shown_again_counts_as_recently_used(tmp_path):
    import cv2
    import numpy as np

    from endoreview.media.thumbs import default_strip_path, load_or_make_strip
    from endoreview.services.app_settings import trim_caches

    f = _cache()
    video = tmp_path / "v.mp4"
    video.write_bytes(b"0")
    png = default_strip_path(video, 2, 8)
    cv2.imwrite(str(png), np.zeros((8, 16, 3), np.uint8))
    os.utime(png, (time.time() - 5000,) * 2)  # the oldest file of all ...
    load_or_make_strip(video, lambda: None, 4, n=2, height=8)  # ... until the library shows it again
    trim_caches(limit_mb=64)
    assert png.exists() and not f["a"].exists()
