"""Frame-exact video reading and writing.

``VideoReader`` opens video files (MP4/MOV/MKV/AVI/WebM; decord when installed, PyAV otherwise or where decord
cannot serve) and image-sequence folders (JPEG/PNG/TIFF/BMP, natural sort order) behind one interface;
``write_video`` encodes frames with PyAV. Bad input raises ``VideoError(path, reason)``.
Decoders are imported lazily, so importing this package costs only numpy.
"""

from core_model.video.errors import FrameIndexError, VideoError
from core_model.video.meta import VideoMeta, natural_key
from core_model.video.reader import VideoReader, decord_available, read_meta
from core_model.video.writer import default_codec, write_video

__all__ = [
    "FrameIndexError",
    "VideoError",
    "VideoMeta",
    "VideoReader",
    "decord_available",
    "default_codec",
    "natural_key",
    "read_meta",
    "write_video",
]
