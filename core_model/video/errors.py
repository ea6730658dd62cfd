"""The one exception the video code raises for bad input."""

from __future__ import annotations

import os


class VideoError(Exception):
    """A video (file or image folder) that cannot be read; names the path and the reason.

    ``str(err)`` is ``"<path>: <reason>"`` so it can be shown to a user as is.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep picklable across worker processes
        return (type(self), (self.path, self.reason))


class FrameIndexError(VideoError, IndexError):
    """An out-of-range frame index. Also an ``IndexError`` so sequence idioms keep working."""
