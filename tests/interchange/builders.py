"""Builders for the small fixtures the interchange tests use: each reproduces a real dataset layout and its quirks."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np


def disk(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def frame_image(h: int, w: int, k: int) -> np.ndarray:
    """A frame whose pixels encode its index k (BGR for cv2)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 120 + (k * 7) % 100
    img[..., 1] = (k * 13) % 256
    img[..., 0] = k % 256
    return img


def write_img(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def grey_rim_mask(m: np.ndarray) -> np.ndarray:
    """A polyp mask as CVC/Kvasir ship it: 255 inside, dozens of grey levels on an anti-aliased rim."""
    blurred = cv2.GaussianBlur((m * 255).astype(np.uint8), (7, 7), 2.0)
    out = np.where(m > 0, np.clip(blurred, 128, 255), np.clip(blurred, 0, 127)).astype(np.uint8)
    return out


def make_cvc(
    root: Path, *, n: int = 612, size: int = 12, ext: str = ".tif", mask_ext: str | None = None
) -> dict[int, np.ndarray]:
    """CVC-ClinicDB: Original/{1..n} + Ground Truth/{1..n}; returns the binary truth per 1-based frame number."""
    truth = {}
    for i in range(1, n + 1):
        write_img(root / "Original" / f"{i}{ext}", frame_image(size, size, i))
        m = (
            disk(size, size, size / 2 + (i % 3), size / 2, size / 4)
            if i % 5
            else np.zeros((size, size), np.uint8)
        )
        truth[i] = m
        write_img(root / "Ground Truth" / f"{i}{mask_ext or ext}", grey_rim_mask(m))
    return truth


def zip_folder(folder: Path, zpath: Path, *, arc_root: str, macosx: bool = True) -> Path:
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                rel = p.relative_to(folder).as_posix()
                zf.write(p, f"{arc_root}/{rel}")
                if macosx:
                    zf.writestr(f"__MACOSX/{arc_root}/._{rel}", b"\x00\x05\x16\x07junk")
    return zpath


def voc(filename: str, w: int, h: int, objs: list[tuple[str, int, int, int, int]]) -> str:
    body = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in objs
    )
    return (
        f"<annotation>\n<filename>{filename}</filename>\n<size><width>{w}</width><height>{h}</height>"
        f"<depth>3</depth></size>\n{body}\n</annotation>\n"
    )


def make_kvasir(root: Path, n: int = 3) -> dict[str, tuple[np.ndarray, list]]:
    """Kvasir-SEG: images/*.jpg of varied sizes, JPEG masks (3-channel, compressed), kavsir_bboxes.json."""
    truth = {}
    doc = {}
    for k in range(n):
        h, w = 40 + 4 * k, 48 + 6 * k
        name = f"cju{k:04d}abc"
        write_img(root / "images" / f"{name}.jpg", frame_image(h, w, k))
        m = disk(h, w, w / 2, h / 2, 10 + k)
        write_img(root / "masks" / f"{name}.jpg", np.repeat((m * 255)[..., None], 3, axis=2).astype(np.uint8))
        ys, xs = np.nonzero(m)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        doc[name] = {
            "height": h,
            "width": w,
            "bbox": [{"label": "polyp", "xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3]}],
        }
        truth[name] = (m, box)
    (root / "kavsir_bboxes.json").write_text(json.dumps(doc))
    return truth


def h264_stream(frames: np.ndarray, fps: int = 25) -> bytes:
    """Raw H.264 Annex-B elementary stream (what DICOM MPEG-4 AVC objects encapsulate), B-frames included."""
    import io

    import av

    buf = io.BytesIO()
    out = av.open(buf, "w", format="h264")
    s = out.add_stream("libx264", rate=fps)
    s.height, s.width = frames.shape[1:3]
    s.pix_fmt = "yuv420p"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    return buf.getvalue()


def decode_stream(data: bytes) -> np.ndarray:
    import io

    import av

    with av.open(io.BytesIO(data), format="h264") as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def make_dicom_video(
    path: Path, frames: np.ndarray, *, fps: int = 25, patient: str = "DOE^JOHN", fragments: int = 1
) -> bytes:
    """A Video Endoscopic Image Storage object with an encapsulated H.264 stream, built with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG4HP41, generate_uid

    raw = h264_stream(frames, fps)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = MPEG4HP41
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient
    ds.PatientID = "MRN-0042-SECRET"
    ds.PatientBirthDate = "19500101"
    ds.InstitutionName = "St Example Hospital"
    ds.Modality = "ES"
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.NumberOfFrames = len(frames)
    ds.FrameTime = 1000.0 / fps
    ds.CineRate = fps
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    cuts = (
        np.linspace(0, len(raw), fragments + 1).astype(int) & ~1
    )  # even fragment lengths, as DICOM requires
    cuts[-1] = len(raw)
    ds.PixelData = (
        encapsulate([raw[a:b] for a, b in zip(cuts[:-1], cuts[1:])]) if fragments > 1 else encapsulate([raw])
    )
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return raw
