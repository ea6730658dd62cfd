"""DICOM video (Video Endoscopic Image Storage, as hospitals export from PACS): extract the encapsulated stream.

The pixel data of a DICOM video object is one encapsulated MPEG-2 / MPEG-4 AVC (H.264) / HEVC elementary stream
(PS3.5 §8.2.5–8.2.8), split over one or more fragments. We concatenate the fragments and **remux** the stream
losslessly into an MP4 file (no re-encoding): packets keep their bytes; timestamps come from the decode order and
one decoding pass that recovers the presentation order (B-frames), at the DICOM frame rate (Cine Rate, Frame Time or
Recommended Display Frame Rate; 30 fps when none is present, reported).

Privacy: nothing from the DICOM header is kept except a **pseudonymous id**, a SHA-256 of the study/series/instance
UIDs (salted with a fixed prefix), cut to 16 hex digits. The video file is named after that id; the original file
name (often the patient's name in PACS exports) is not recorded either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from core_model.atomic import atomic_write, atomic_write_bytes
from endoreview.interchange.model import InterchangeError

log = logging.getLogger(__name__)

VIDEO_ENDOSCOPIC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
VIDEO_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.100": "mpegvideo",  # MPEG2 Main Profile @ Main Level
    "1.2.840.10008.1.2.4.101": "mpegvideo",  # MPEG2 Main Profile @ High Level
    "1.2.840.10008.1.2.4.102": "h264",  # MPEG-4 AVC/H.264 High Profile / Level 4.1
    "1.2.840.10008.1.2.4.103": "h264",  # MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1
    "1.2.840.10008.1.2.4.104": "h264",  # MPEG-4 AVC/H.264 High Profile / Level 4.2 for 2D video
    "1.2.840.10008.1.2.4.105": "h264",  # ... Level 4.2 for 3D video
    "1.2.840.10008.1.2.4.106": "h264",  # MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2
    "1.2.840.10008.1.2.4.107": "hevc",  # HEVC/H.265 Main Profile / Level 5.1
    "1.2.840.10008.1.2.4.108": "hevc",  # HEVC/H.265 Main 10 Profile / Level 5.1
}
PSEUDO_SALT = "endoreview-dicom-v1:"


@dataclass(frozen=True)
class DicomVideo:
    path: Path  # the extracted MP4
    pseudo_id: str
    fps: float
    frame_count: int
    codec: str
    width: int
    height: int


def is_dicom(path: str | os.PathLike) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble (the suffix is often missing in PACS exports)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def pseudonymous_id(ds) -> str:
    uids = [
        str(getattr(ds, k, "") or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    ]
    if not any(uids):
        raise ValueError("no UIDs")
    return hashlib.sha256((PSEUDO_SALT + "/".join(uids)).encode()).hexdigest()[:16]


def _fps(ds) -> tuple[float, bool]:
    def num(key: str) -> float | None:
        try:
            v = float(getattr(ds, key, None))
        except (TypeError, ValueError):
            return None
        return v if 0 < v < 1e6 else None

    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        v = num(key)
        if v is not None:
            return v, True
    ft = num("FrameTime")  # milliseconds per frame
    if ft is not None:
        return 1000.0 / ft, True
    return 30.0, False


def extract_dicom_video(path: str | os.PathLike, out_dir: str | os.PathLike) -> DicomVideo:
    """Extract the video stream of a DICOM video object into ``out_dir/<pseudo_id>.mp4``."""
    import pydicom
    from pydicom.encaps import generate_fragments
    from pydicom.errors import InvalidDicomError

    path, out_dir = Path(path), Path(out_dir)
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as e:
        raise InterchangeError(path, f"not a DICOM file ({e})") from None
    except Exception as e:  # pydicom raises many types on truncated files
        raise InterchangeError(path, f"DICOM file cannot be read ({type(e).__name__}: {e})") from None
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if ts not in VIDEO_TRANSFER_SYNTAXES:
        raise InterchangeError(
            path,
            f"not an encapsulated video (transfer syntax {ts or 'missing'}); only MPEG-2/H.264/HEVC video objects are supported",
            field="TransferSyntaxUID",
        )
    sop = str(getattr(ds, "SOPClassUID", "") or "")
    if sop != VIDEO_ENDOSCOPIC_IMAGE_STORAGE:
        log.info(
            "%s: SOP class %s is not Video Endoscopic Image Storage; extracting its video anyway", path, sop
        )
    if "PixelData" not in ds:
        raise InterchangeError(path, "no pixel data", field="PixelData")
    try:
        stream = b"".join(generate_fragments(ds.PixelData))
    except Exception as e:
        raise InterchangeError(
            path, f"encapsulated pixel data is malformed ({e})", field="PixelData"
        ) from None
    if not stream:
        raise InterchangeError(path, "the encapsulated video stream is empty", field="PixelData")
    try:
        pid = pseudonymous_id(ds)
    except ValueError:
        pid = hashlib.sha256(PSEUDO_SALT.encode() + stream).hexdigest()[:16]
    fps, known = _fps(ds)
    if not known:
        log.warning("%s: no frame rate in the DICOM header; assuming 30 fps", pid)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{pid}.mp4"
    if target.exists():
        # a remux of this object (or another with its identifiers) may be the only playable copy of a stored
        # video: never overwrite or delete it; another stream gets its own name, the same stream reuses its file
        target = out_dir / f"{pid}-{hashlib.sha256(stream).hexdigest()[:12]}.mp4"
        if target.exists():
            return _probe(target, pid, created=False)
    if stream[4:8] == b"ftyp":  # some writers encapsulate a whole MP4 file
        atomic_write_bytes(target, stream)
        return _probe(target, pid)
    fmt = VIDEO_TRANSFER_SYNTAXES[ts]
    if fmt == "mpegvideo" and stream[:4] == b"\x00\x00\x01\xba":  # an MPEG-2 program stream, not elementary
        fmt = "mpeg"
    with tempfile.TemporaryDirectory(dir=out_dir) as td:
        raw = Path(td) / f"stream.{fmt}"
        raw.write_bytes(stream)
        try:
            _remux(raw, fmt, fps, target)
        except InterchangeError:
            raise
        except Exception as e:
            target.unlink(missing_ok=True)
            raise InterchangeError(
                path, f"the {fmt} video stream cannot be read ({e})", field="PixelData"
            ) from None
    return _probe(target, pid)


def _remux(raw: Path, fmt: str, fps: float, target: Path) -> None:
    import av

    rate = Fraction(fps).limit_denominator(1001)
    inp = av.open(str(raw), format=fmt, options={"framerate": str(float(rate))})
    try:
        ist = inp.streams.video[0]
        packets = [p for p in inp.demux(ist) if p.size]
        if not packets:
            raise InterchangeError(raw.name, "the video stream holds no frames", field="PixelData")
        tb = Fraction(1, 90000)
        step = round(90000 / float(rate))
        ctx = av.CodecContext.create(ist.codec_context.name, "r")
        if ist.codec_context.extradata:
            ctx.extradata = ist.codec_context.extradata
        order: list[int] = []
        for i, p in enumerate(packets):
            p.pts = p.dts = i
            p.time_base = tb
            order += [f.pts for f in ctx.decode(p)]
        order += [f.pts for f in ctx.decode(None)]
        rank = {p: r for r, p in enumerate(order) if p is not None}
        delay = max([0] + [i - r for i, r in rank.items()])

        def remux(tmp: Path) -> None:
            out = av.open(str(tmp), "w", format="mp4")
            try:
                ost = out.add_stream_from_template(ist)
                ost.time_base = tb
                for i, p in enumerate(packets):
                    p.stream = ost
                    p.time_base = tb
                    p.dts = i * step
                    p.pts = (rank.get(i, i) + delay) * step
                    p.duration = step
                    out.mux(p)
            finally:
                out.close()

        atomic_write(target, remux)
    finally:
        inp.close()


def _probe(target: Path, pid: str, *, created: bool = True) -> DicomVideo:
    from core_model.video import VideoError, VideoReader

    try:
        with VideoReader(target) as r:
            m = r.meta
    except VideoError as e:
        if created:  # only what this import wrote is removed
            target.unlink(missing_ok=True)
        raise InterchangeError(f"dicom:{pid}", f"extracted video does not open ({e})") from None
    return DicomVideo(
        target, pid, float(m.fps), int(m.frame_count), str(m.codec), int(m.width), int(m.height)
    )
