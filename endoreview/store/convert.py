"""ORM rows -> frozen dataclasses, and rows <-> JSON-able dicts for the audit log."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from functools import cache
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


@cache
def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _record(cls: type, row: Any, **given: Any) -> Any:
    """A ``cls`` record whose fields not ``given`` are the row's attributes of the same name (an ORM row or a Core
    result row)."""
    return cls(**{f: getattr(row, f) for f in _fields(cls) if f not in given}, **given)


def _label_parts(m: Any) -> dict[str, Any]:
    """A label's fields that are not its columns as they are: the enums, the RLE and the box."""
    return dict(
        kind=r.LabelKind(m.kind),
        state=r.ReviewState(m.state),
        origin=r.LabelOrigin(m.origin),
        rle={"size": [m.rle_h, m.rle_w], "counts": m.rle_counts} if m.rle_counts is not None else None,
        bbox=(m.x0, m.y0, m.x1, m.y1) if m.x0 is not None else None,
    )


def label(row: s.LabelRow) -> r.Label:
    return _record(r.Label, row, **_label_parts(row))


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

    times = {k: t(getattr(m, k)) for k in ("created_at", "reviewed_at", "updated_at")}
    return _record(r.Label, m, **_label_parts(m), **times, provenance=_json(m.provenance))


def video(row: s.VideoRow, reviewer_name: str | None) -> r.Video:
    return _record(
        r.Video,
        row,
        meta=dict(row.meta or {}),
        review_status=r.ReviewStatus(row.review_status),
        assigned_reviewer=reviewer_name,
    )


def project(row: s.ProjectRow) -> r.Project:
    return _record(r.Project, row)


def label_class(row: s.LabelClassRow) -> r.LabelClass:
    return _record(r.LabelClass, row, tasks=tuple(row.tasks or ()))


def model_version(row: s.ModelVersionRow) -> r.ModelVersion:
    return _record(
        r.ModelVersion,
        row,
        data_snapshot=dict(row.data_snapshot or {}),
        hyperparameters=dict(row.hyperparameters or {}),
        metrics=dict(row.metrics or {}),
    )


def prediction_run(row: s.PredictionRunRow) -> r.PredictionRun:
    return _record(r.PredictionRun, row, params=dict(row.params or {}))


def job(row: s.JobRow) -> r.Job:
    return _record(
        r.Job,
        row,
        params=dict(row.params or {}),
        state=r.JobState(row.state),
        result=dict(row.result) if row.result is not None else None,
    )


def change_set(row: s.ChangeSetRow, entries: tuple[r.AuditEntry, ...] = ()) -> r.ChangeSet:
    return _record(r.ChangeSet, row, entries=entries)


def audit_entry(row: s.AuditRow) -> r.AuditEntry:
    return _record(r.AuditEntry, row, table=row.table_name)
