"""frame_outputs: masks zlib-compressed (masks -> masks_z) and boxes zlib-compressed in place.

The demo model's 1080p mask RLE is ~8.4 KB of text a frame on the procedure benchmark's texture and compresses to
~3.5 KB; its 20 boxes (float64) from 1,120 to ~600 bytes: a procedure's run ~2.5x smaller than schema 3 stored it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 10:55:00
"""

from __future__ import annotations

import json
import zlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("frame_outputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("masks_z", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    t = sa.table(
        "frame_outputs",
        sa.column("run_id", sa.Integer()),
        sa.column("frame", sa.Integer()),
        sa.column("masks", sa.JSON()),
        sa.column("boxes", sa.LargeBinary()),
        sa.column("masks_z", sa.LargeBinary()),
    )
    rows = conn.execute(sa.select(t.c.run_id, t.c.frame, t.c.masks, t.c.boxes)).all()
    updates = []
    for run_id, frame, masks, boxes in rows:
        if isinstance(masks, str | bytes):
            masks = json.loads(masks)
        updates.append(
            {
                "r": run_id,
                "f": frame,
                "mz": zlib.compress(json.dumps(masks).encode(), 6) if masks else None,
                "bz": zlib.compress(bytes(boxes), 6) if boxes else None,
            }
        )
    stmt = (
        t.update()
        .where(t.c.run_id == sa.bindparam("r"), t.c.frame == sa.bindparam("f"))
        .values(masks_z=sa.bindparam("mz"), boxes=sa.bindparam("bz"))
    )
    for a in range(0, len(updates), 500):
        conn.execute(stmt, updates[a : a + 500])
    with op.batch_alter_table("frame_outputs", schema=None) as batch_op:
        batch_op.drop_column("masks")


def downgrade() -> None:
    raise NotImplementedError("schema 0004 cannot be downgraded; restore the backup taken before the upgrade")
