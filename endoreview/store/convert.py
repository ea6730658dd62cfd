"""ORM rows -> frozen dataclasses, and rows <-> JSON-able dicts for the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import LargeBinary
from sqlalchemy import inspect as sa_inspect

from endoreview.store import records as r
from endoreview.store import schema as s


def row_dict(row: Any) -> dict[str, Any]:
    """Every column of a mapped row as JSON-able values (datetimes as ISO strings)."""
    out: dict[str, Any] = {}
    for attr in sa_inspect(row).mapper.column_attrs:
        if isinstance(attr.columns[0].type, LargeBinary):
            continue  # packed arrays (a run's summary) are derived data, not audited
        v = getattr(row, attr.key)
        out[attr.key] = v.isoformat() if isinstance(v, datetime) else v
    return out


def values_from_dict(model: type, data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`row_dict` for ``model`` (ISO strings back to datetimes where the column is a time)."""
    out: dict[str, Any] = {}
    for attr in sa_inspect(model).column_attrs:
        if attr.key not in data:
            continue
        v = data[attr.key]
        col = attr.columns[0]
        if v is not None and isinstance(col.type, s.UTCDateTime):
            v = datetime.fromisoformat(v)
        out[attr.key] = v
    return out


def label(row: s.LabelRow) -> r.Label:
    rle = {"size": [row.rle_h, row.rle_w], "counts": row.rle_counts} if row.rle_counts is not None else None
    bbox = (row.x0, row.y0, row.x1, row.y1) if row.x0 is not None else None
    return r.Label(
        id=row.id,
        video_id=row.video_id,
        kind=r.LabelKind(row.kind),
        class_name=row.class_name,
        state=r.ReviewState(row.state),
        origin=r.LabelOrigin(row.origin),
        frame=row.frame,
        start_frame=row.start_frame,
        end_frame=row.end_frame,
        rle=rle,
        bbox=bbox,  # type: ignore[arg-type]
        track_id=row.track_id,
        score=row.score,
        model_version_id=row.model_version_id,
        run_id=row.run_id,
        created_by=row.created_by,
        created_at=row.created_at,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        reason=row.reason,
        version=row.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        provenance=row.provenance,
    )


LABEL_COLUMNS = [
    c.key for c in s.LabelRow.__table__.columns if c.key != "pred_ref"
]  # pred_ref: store-internal
LABEL_SELECT = "SELECT " + ", ".join(LABEL_COLUMNS) + " FROM labels"
_UTC = s.UTCDateTime()


def _time(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v


def _json(v: Any) -> Any:
    """A JSON column from a plain row: SQLite's driver gives the text, PostgreSQL's the value."""
    return json.loads(v) if isinstance(v, str | bytes) else v


_KIND = {str(k): k for k in r.LabelKind}
_STATE = {str(k): k for k in r.ReviewState}
_ORIGIN = {str(k): k for k in r.LabelOrigin}


def label_from_tuple(t: tuple[Any, ...]) -> r.Label:
    """A label from a plain row of ``LABEL_SELECT`` (the fast path: no SQLAlchemy result processing)."""
    (id_, video_id, kind, class_name, state, origin, frame, start_frame, end_frame, rle_counts, rle_h, rle_w,
     x0, y0, x1, y1, track_id, score, model_version_id, run_id, created_by, created_at, reviewed_by, reviewed_at,
     reason, provenance, version, updated_by, updated_at) = t  # fmt: skip
    return r.Label(
        id_,
        video_id,
        _KIND[kind],
        class_name,
        _STATE[state],
        _ORIGIN[origin],
        frame,
        start_frame,
        end_frame,
        {"size": [rle_h, rle_w], "counts": rle_counts} if rle_counts is not None else None,
        (x0, y0, x1, y1) if x0 is not None else None,
        track_id,
        score,
        model_version_id,
        run_id,
        created_by,
        _time(created_at),
        reviewed_by,
        _time(reviewed_at),
        reason,
        version,
        updated_by,
        _time(updated_at),
        _json(provenance),
    )


def label_from_mapping(m: Any) -> r.Label:
    """A label from a Core result row (the fast path for frame lookups: no ORM identity map)."""

    def t(v: Any) -> datetime | None:
        return _UTC.process_result_value(v, None) if v is not None else None

    return r.Label(
        id=m.id,
        video_id=m.video_id,
        kind=r.LabelKind(m.kind),
        class_name=m.class_name,
        state=r.ReviewState(m.state),
        origin=r.LabelOrigin(m.origin),
        frame=m.frame,
        start_frame=m.start_frame,
        end_frame=m.end_frame,
        rle={"size": [m.rle_h, m.rle_w], "counts": m.rle_counts} if m.rle_counts is not None else None,
        bbox=(m.x0, m.y0, m.x1, m.y1) if m.x0 is not None else None,
        track_id=m.track_id,
        score=m.score,
        model_version_id=m.model_version_id,
        run_id=m.run_id,
        created_by=m.created_by,
        created_at=t(m.created_at),
        reviewed_by=m.reviewed_by,
        reviewed_at=t(m.reviewed_at),
        reason=m.reason,
        version=m.version,
        updated_by=m.updated_by,
        updated_at=t(m.updated_at),
        provenance=_json(m.provenance),
    )


def video(row: s.VideoRow, reviewer_name: str | None) -> r.Video:
    return r.Video(
        id=row.id,
        project_id=row.project_id,
        path=row.path,
        path_is_relative=row.path_is_relative,
        content_hash=row.content_hash,
        size_bytes=row.size_bytes,
        frame_count=row.frame_count,
        fps=row.fps,
        width=row.width,
        height=row.height,
        codec=row.codec,
        meta=dict(row.meta or {}),
        review_status=r.ReviewStatus(row.review_status),
        assigned_reviewer=reviewer_name,
        imported_at=row.imported_at,
        removed_at=row.removed_at,
        version=row.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def project(row: s.ProjectRow) -> r.Project:
    return r.Project(
        id=row.id,
        name=row.name,
        description=row.description,
        label_set_id=row.label_set_id,
        created_at=row.created_at,
        version=row.version,
    )


def label_class(row: s.LabelClassRow) -> r.LabelClass:
    return r.LabelClass(
        id=row.id, name=row.name, color=row.color, shortcut=row.shortcut, tasks=tuple(row.tasks or ())
    )


def model_version(row: s.ModelVersionRow) -> r.ModelVersion:
    return r.ModelVersion(
        id=row.id,
        name=row.name,
        architecture=row.architecture,
        files_dir=row.files_dir,
        parent_id=row.parent_id,
        data_snapshot=dict(row.data_snapshot or {}),
        hyperparameters=dict(row.hyperparameters or {}),
        metrics=dict(row.metrics or {}),
        created_at=row.created_at,
        is_active=row.is_active,
        notes=row.notes,
    )


def prediction_run(row: s.PredictionRunRow) -> r.PredictionRun:
    return r.PredictionRun(
        id=row.id,
        video_id=row.video_id,
        model_version_id=row.model_version_id,
        state=row.state,
        params=dict(row.params or {}),
        started_at=row.started_at,
        finished_at=row.finished_at,
        frames_done=row.frames_done,
    )


def job(row: s.JobRow) -> r.Job:
    return r.Job(
        id=row.id,
        kind=row.kind,
        params=dict(row.params or {}),
        state=r.JobState(row.state),
        progress=row.progress,
        message=row.message,
        log_path=row.log_path,
        result=dict(row.result) if row.result is not None else None,
        pid=row.pid,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def change_set(row: s.ChangeSetRow, entries: tuple[r.AuditEntry, ...] = ()) -> r.ChangeSet:
    return r.ChangeSet(
        id=row.id,
        actor=row.actor,
        host=row.host,
        at=row.at,
        summary=row.summary,
        video_id=row.video_id,
        undoes_id=row.undoes_id,
        entries=entries,
    )


def audit_entry(row: s.AuditRow) -> r.AuditEntry:
    return r.AuditEntry(
        id=row.id,
        change_set_id=row.change_set_id,
        table=row.table_name,
        row_id=row.row_id,
        op=row.op,
        before=row.before,
        after=row.after,
    )
