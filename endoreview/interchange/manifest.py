"""The training manifest (``core_model.data.manifest``) as an interchange format.

Reading turns each manifest video into a :class:`VideoItem` (name = the manifest's ``id``, source = its resolved
``path``, split kept) with its video label, segments, masks and boxes; ``negative`` frames carry no label and are
listed in ``metadata["negative_frames"]``. Manifest errors (``ManifestError``) become :class:`InterchangeError` with
the same file and field. Writing is :func:`endoreview.services.manifest.snapshot_manifest` (see the exporter).
"""

from __future__ import annotations

import os
from pathlib import Path

from endoreview.interchange.model import (
    BoxAnn,
    Collection,
    InterchangeError,
    MaskAnn,
    Provenance,
    SegmentAnn,
    VideoItem,
    VideoLabelAnn,
)


def read_manifest_collection(path: str | os.PathLike) -> Collection:
    from core_model.data.manifest import ManifestError, load_manifest

    path = Path(path)
    try:
        m = load_manifest(path)
    except ManifestError as e:
        raise InterchangeError(e.path, e.reason, field=e.where) from None
    col = Collection(layout="manifest", root=path.parent)
    src = str(path)
    for vi, v in enumerate(m.videos):
        w = f"videos[{vi}]"
        item = VideoItem(
            name=v.id,
            source=m.resolve_path(v),
            width=v.width,
            height=v.height,
            num_frames=v.num_frames,
            fps=v.fps,
            split=v.split,
            metadata={"site": v.site} if v.site else {},
        )
        if v.video_label is not None:
            item.video_labels.append(VideoLabelAnn(v.video_label, Provenance(src, field=f"{w}.video_label")))
        for si, s in enumerate(v.segments):
            item.segments.append(
                SegmentAnn(s.start, s.end, s.label, Provenance(src, field=f"{w}.segments[{si}]"))
            )
        negatives = []
        for fi, f in enumerate(v.frames):
            if f.negative:
                negatives.append(f.frame)
            for mi, mk in enumerate(f.masks):
                prov = Provenance(src, field=f"{w}.frames[{fi}].masks[{mi}]")
                item.masks.append(MaskAnn(f.frame, mk.label, dict(mk.rle), prov, mk.track_id))
            for bi, b in enumerate(f.boxes):
                prov = Provenance(src, field=f"{w}.frames[{fi}].boxes[{bi}]")
                item.boxes.append(BoxAnn(f.frame, b.label, tuple(b.bbox), prov, b.track_id))
        if negatives:
            item.metadata["negative_frames"] = negatives
        if v.dense:
            item.metadata["dense"] = True
        col.videos.append(item)
    return col
