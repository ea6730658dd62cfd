"""The one video-opening policy of the app: which reader opens a library video, and how.

* A reader the player keeps open for as long as a video is shown (:func:`long_lived_opener`, thumbnails too) uses
  the PyAV backend: decord's reader (``core_model``'s "auto" choice) goes on decoding in background threads after a
  seek and grows by ~400 MB/s while the player waits (measured on a 1080p file: 141 MB -> 1.9 GB in 4 s idle);
  PyAV decodes only what is asked and was faster here for sequential reads (10 vs 64 ms/frame).
* A video with a scrubbing proxy (:mod:`endoreview.media.proxy`) is read from the proxy
  (:func:`proxy_opener`), which is all-intra and seeks in constant time.
* One-off reads (:func:`read_frame`, :func:`open_video` for a batch) take ``core_model``'s default backend.
* A file's index (frame count, timestamps, keyframes, rotation: ``core_model.video.probe``) is kept in the cache
  folder once made (:func:`use_probe_cache`, at import), so opening a library video does not demux the whole file
  again: 0.5 s of CPU, under the interpreter lock, for 30 minutes of 1080p.

Every opener refuses to run on the GUI thread (:func:`endoreview.media.guard.check_off_gui_thread`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from endoreview.media.guard import check_off_gui_thread
from endoreview.media.proxy import ProxyInfo, ProxyReader

LONG_LIVED_BACKEND = "pyav"


def open_video(path: str | Path, *, long_lived: bool = False) -> Any:
    """A ``core_model.video.VideoReader`` on ``path`` (a context manager; ``len``, ``[i]``, ``get_batch``)."""
    from core_model.video import VideoReader

    check_off_gui_thread("open", str(path))
    return VideoReader(str(path), backend=LONG_LIVED_BACKEND) if long_lived else VideoReader(str(path))


def long_lived_opener(path: str | Path) -> Callable[[], Any]:
    """A factory of readers the player or the thumbnail maker keeps open (see the module docstring)."""
    return lambda: open_video(path, long_lived=True)


def proxy_opener(info: ProxyInfo) -> Callable[[], Any]:
    """A factory of readers on a video's scrubbing proxy."""
    return lambda: ProxyReader(info.path, info.fps)


def use_probe_cache() -> None:
    """Keep the index of every video this process opens in the app's cache folder (private: it names the files),
    for every later session (see the module docstring)."""
    from core_model.video.probe import set_probe_cache
    from endoreview.paths import cache_dir, private_dir

    set_probe_cache(private_dir(cache_dir() / "probes"))


def warm_up() -> None:
    """Import the decoders (PyAV, ``core_model.video``, OpenCV: ~0.6 s here) ahead of the first video the user opens; the
    app calls it on a worker thread once the library is listed.

    Any module imported after PySide6 passes through its import hook, which reads and tokenizes the module's
    source while holding the GIL (``numpy.ma``: ~60 ms here): done during an open, that starved the GUI thread."""
    import av
    import av.subtitles.stream  # noqa: F401  (imported lazily by the first container opened)
    import cv2  # noqa: F401  (the overlay's mask outlines: ~0.1 s, it was imported on the GUI thread at the first mask)
    import numpy.ma  # noqa: F401  (np.median's NaN check imports it lazily, in the reader's first open)

    import core_model.video  # noqa: F401


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """One frame (RGB ``uint8``) of ``path``."""
    with open_video(path) as reader:
        return reader[int(index)]
