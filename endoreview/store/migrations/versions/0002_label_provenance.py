"""labels.provenance (v2): where an imported label came from, per label.

Adds the nullable JSON column ``labels.provenance`` (``{"source", "line", "field", "format", "importer"}``) and
moves what schema 1 kept in each video's metadata under ``import_provenance``
(``{"sources": [...], "labels": {label_id: [source index, line, field]}}``) onto the labels themselves. Schema 1
did not record the format: it is read from the change set that inserted the label (``Import <format> ...``), and
the importer version is recorded as ``None`` (unknown). Labels deleted since are skipped.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 10:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_videos = sa.table("videos", sa.column("id", sa.Integer), sa.column("meta", sa.JSON))
_labels = sa.table("labels", sa.column("id", sa.Integer), sa.column("provenance", sa.JSON))
_audit = sa.table(
    "audit_log",
    sa.column("row_id", sa.Integer),
    sa.column("change_set_id", sa.Integer),
    sa.column("table_name", sa.String),
    sa.column("op", sa.String),
)
_change_sets = sa.table("change_sets", sa.column("id", sa.Integer), sa.column("summary", sa.Text))


def _format_of(summary: str | None) -> str | None:
    """'Import coco a.json from ...' / 'Import kvasir-seg: name from ...' -> 'coco' / 'kvasir-seg'."""
    words = (summary or "").split()
    if len(words) >= 2 and words[0] == "Import":
        return words[1].rstrip(":") or None
    return None


def _formats(conn: sa.Connection, ids: list[int]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k : k + 500]
        q = (
            sa.select(_audit.c.row_id, _change_sets.c.summary)
            .join(_change_sets, _change_sets.c.id == _audit.c.change_set_id)
            .where(_audit.c.table_name == "labels", _audit.c.op == "insert", _audit.c.row_id.in_(chunk))
        )
        for row_id, summary in conn.execute(q):
            out[int(row_id)] = _format_of(summary)
    return out


def upgrade() -> None:
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provenance", sa.JSON(), nullable=True))

    conn = op.get_bind()
    for vid, meta in conn.execute(sa.select(_videos.c.id, _videos.c.meta)).all():
        if not isinstance(meta, dict) or not isinstance(meta.get("import_provenance"), dict):
            continue
        old = meta["import_provenance"]
        sources = list(old.get("sources") or [])
        entries: dict[int, Any] = {}
        for key, entry in (old.get("labels") or {}).items():
            try:
                src, line, fld = entry
                entries[int(key)] = (sources[int(src)], line, fld)
            except (TypeError, ValueError, IndexError):
                continue  # a malformed entry is dropped, never guessed
        ids = sorted(entries)
        live: set[int] = set()
        for k in range(0, len(ids), 500):
            q = sa.select(_labels.c.id).where(_labels.c.id.in_(ids[k : k + 500]))
            live.update(int(i) for (i,) in conn.execute(q))
        fmts = _formats(conn, sorted(live))
        rows = []
        for lid in sorted(live):
            source, line, fld = entries[lid]
            prov: dict[str, Any] = {"source": source}
            if line is not None:
                prov["line"] = line
            if fld:
                prov["field"] = fld
            prov["format"] = fmts.get(lid)
            prov["importer"] = None  # schema 1 did not record the importer's version
            rows.append({"lid": lid, "prov": prov})
        if rows:
            conn.execute(
                _labels.update()
                .where(_labels.c.id == sa.bindparam("lid"))
                .values(provenance=sa.bindparam("prov")),
                rows,
            )
        # moved onto the labels: a re-import of the same files is recognised from them (Store.imported_sources)
        new_meta = {k: v for k, v in meta.items() if k != "import_provenance"}
        conn.execute(_videos.update().where(_videos.c.id == vid).values(meta=new_meta))


def downgrade() -> None:
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_column("provenance")
