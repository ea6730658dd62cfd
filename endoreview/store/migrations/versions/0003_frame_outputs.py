"""prediction output stored one row per frame (frame_outputs), open suggestions read from it; labels.pred_ref;
each run's per-frame summary on prediction_runs.

Moves every still-``suggested`` predicted mask and box label row of a run, with the run's ``frame_probs``, into one
``frame_outputs`` row per frame (masks as JSON ``[class, score, h, w, counts, track_id]``, boxes as float64
``[n, 7]``: x0 y0 x1 y1 score class-index track, NaN for none), then drops ``frame_probs``. Reviewed predictions
(accepted, rejected, edited) stay label rows. The packing is written out here (frozen with this revision), the
same as ``endoreview.store.frame_outputs`` of this version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 10:30:00
"""

from __future__ import annotations

import json
import math

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _loads(v):
    return json.loads(v) if isinstance(v, str | bytes) else v


def _pack(probs, masks, boxes):
    packed_masks = []
    best = None
    for cls, score, h, w, counts, track in masks:
        packed_masks.append([cls, score, h, w, counts, track])
        best = max(best or 0.0, 1.0 if score is None else score)
    classes: list[str] = []
    arr = np.full((len(boxes), 7), np.nan, np.float64)
    for i, (cls, score, x0, y0, x1, y1, track) in enumerate(boxes):
        if cls not in classes:
            classes.append(cls)
        arr[i] = (x0, y0, x1, y1, np.nan if score is None else score, classes.index(cls), np.nan)
        if track is not None and abs(track) < (1 << 24):
            arr[i, 6] = track
        best = max(best or 0.0, 1.0 if score is None else score)
    return {
        "probs": probs or {},
        "n_masks": len(packed_masks),
        "n_boxes": len(boxes),
        "best_score": best,
        "masks": packed_masks or None,
        "box_classes": classes or None,
        "boxes": arr.astype("<f8").tobytes() if len(boxes) else None,
    }


def upgrade() -> None:
    table = op.create_table(
        "frame_outputs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("probs", sa.JSON(), nullable=False),
        sa.Column("n_masks", sa.Integer(), nullable=False),
        sa.Column("n_boxes", sa.Integer(), nullable=False),
        sa.Column("best_score", sa.Float(), nullable=True),
        sa.Column("masks", sa.JSON(), nullable=True),
        sa.Column("box_classes", sa.JSON(), nullable=True),
        sa.Column("boxes", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["prediction_runs.id"],
            name=op.f("fk_frame_outputs_run_id_prediction_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name=op.f("fk_frame_outputs_video_id_videos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "frame", name=op.f("pk_frame_outputs")),
    )
    with op.batch_alter_table("frame_outputs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_frame_outputs_video_id_frame"), ["video_id", "frame"], unique=False
        )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pred_ref", sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f("ix_labels_pred_ref"), ["pred_ref"], unique=False)
    with op.batch_alter_table("prediction_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary_classes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("summary_probs", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("summary_best", sa.LargeBinary(), nullable=True))

    conn = op.get_bind()
    runs = conn.execute(sa.text("SELECT id, video_id FROM prediction_runs ORDER BY id")).all()
    for run_id, video_id in runs:
        frames: dict[int, list] = {}
        for frame, probs in conn.execute(
            sa.text("SELECT frame, probs FROM frame_probs WHERE run_id = :r"), {"r": run_id}
        ):
            frames.setdefault(int(frame), [None, [], []])[0] = _loads(probs)
        moved = []
        for row in conn.execute(
            sa.text(
                "SELECT id, kind, class_name, frame, rle_counts, rle_h, rle_w, x0, y0, x1, y1, track_id, score "
                "FROM labels WHERE run_id = :r AND state = 'suggested' AND kind IN ('mask', 'box') "
                "AND frame IS NOT NULL ORDER BY frame, id"
            ),
            {"r": run_id},
        ):
            lid, kind, cls, frame, counts, h, w, x0, y0, x1, y1, track, score = row
            if score is not None and not math.isfinite(score):
                score = None
            entry = frames.setdefault(int(frame), [None, [], []])
            if kind == "mask" and counts is not None:
                entry[1].append([cls, score, h, w, counts, track])
            elif kind == "box" and x0 is not None:
                entry[2].append([cls, score, x0, y0, x1, y1, track])
            else:
                continue
            moved.append(lid)
        rows = [
            {"run_id": run_id, "frame": f, "video_id": video_id, **_pack(p, m, b)}
            for f, (p, m, b) in sorted(frames.items())
            if len(m) <= 256 and len(b) <= 256
        ]
        for a in range(0, len(rows), 500):
            conn.execute(table.insert(), rows[a : a + 500])
        kept = {r["frame"] for r in rows}
        moved_ok = list(moved)
        if len(kept) != len(frames):  # a frame with more than 256 masks or boxes keeps its label rows
            too_big = set(frames) - kept
            moved_ok = [
                i
                for i in moved_ok
                if conn.execute(sa.text("SELECT frame FROM labels WHERE id = :i"), {"i": i}).scalar()
                not in too_big
            ]
        for a in range(0, len(moved_ok), 500):
            part = moved_ok[a : a + 500]
            conn.execute(sa.text(f"DELETE FROM labels WHERE id IN ({', '.join(str(int(i)) for i in part)})"))
    op.drop_table("frame_probs")


def downgrade() -> None:
    raise NotImplementedError("schema 0003 cannot be downgraded; restore the backup taken before the upgrade")
