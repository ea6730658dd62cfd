"""The database schema: every table, typed with SQLAlchemy 2.0 ``Mapped[]``, in this one module.

Changing anything here needs a new Alembic migration in ``endoreview/store/migrations/versions/`` (the schema
of a released version is frozen in its migration, never in this file) and a new file in
``tests/data/db_versions/``.

Conventions: ids are never reused (``AUTOINCREMENT`` on SQLite), so the audit log's ``row_id`` always means one
row; times are UTC (:class:`UTCDateTime`); every row a user can edit has ``version`` (optimistic
concurrency, bumped by SQLAlchemy's ``version_id_col``), ``updated_by`` and ``updated_at``. Masks are stored as
COCO RLE counts strings, never pixels. ``audit_log`` and ``change_sets`` are append-only (triggers refuse UPDATE
and DELETE on them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from endoreview.store.records import JobState, LabelKind, LabelOrigin, ReviewState, ReviewStatus, RunState

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC (SQLite has no time zones; PostgreSQL gets the same values)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(col: str, enum: type) -> str:
    return f"{col} IN ({', '.join(repr(str(e.value)) for e in enum)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Editable:
    """Mixin for rows a user edits: optimistic version plus who changed it last and when."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime | None]


class ReviewerRow(Base):
    __tablename__ = "reviewers"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(50), default="reviewer")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelSetRow(Base):
    __tablename__ = "label_sets"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelClassRow(Base):
    __tablename__ = "label_classes"
    __table_args__ = (
        UniqueConstraint("label_set_id", "name"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(String(9))
    shortcut: Mapped[str | None] = mapped_column(String(20))
    tasks: Mapped[list[Any]]
    sort_order: Mapped[int] = mapped_column(default=0)


class ProjectRow(Editable, Base):
    __tablename__ = "projects"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __mapper_args__ = {"version_id_col": Editable.version}


class VideoRow(Editable, Base):
    __tablename__ = "videos"
    __table_args__ = (
        CheckConstraint(_in("review_status", ReviewStatus), name="review_status"),
        Index(None, "project_id", "review_status"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    path: Mapped[str] = mapped_column(Text)
    path_is_relative: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str] = mapped_column(String(80), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    frame_count: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(50), default="")
    meta: Mapped[dict[str, Any]]
    review_status: Mapped[str] = mapped_column(String(20), default=ReviewStatus.UNREVIEWED.value)
    assigned_reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("reviewers.id"))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    __mapper_args__ = {"version_id_col": Editable.version}


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    architecture: Mapped[str] = mapped_column(String(100))
    files_dir: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    data_snapshot: Mapped[dict[str, Any]]
    hyperparameters: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(Text, default="")


class PredictionRunRow(Base):
    __tablename__ = "prediction_runs"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(20), default=RunState.RUNNING.value)
    params: Mapped[dict[str, Any]]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    # the run's per-frame summary, written once when it finishes (what the timeline and the library draw):
    # class names, float32 [frame_count, classes] probabilities and float32 [frame_count] best detection score
    # (NaN: no output on that frame); see endoreview.store.frame_outputs
    summary_classes: Mapped[list[Any] | None] = mapped_column(JSON)
    summary_probs: Mapped[bytes | None] = mapped_column(LargeBinary)
    summary_best: Mapped[bytes | None] = mapped_column(LargeBinary)


class FrameOutputRow(Base):
    """One frame of one prediction run's output: class probabilities, and every mask and box the model listed,
    packed (see :mod:`endoreview.store.frame_outputs`). A reviewer's accept / reject / edit of one of them creates
    its own ``labels`` row naming it (``labels.pred_ref``); until then it is an open suggestion."""

    __tablename__ = "frame_outputs"
    __table_args__ = (Index(None, "video_id", "frame"),)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("prediction_runs.id", ondelete="CASCADE"), primary_key=True
    )
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    probs: Mapped[dict[str, Any]]
    n_masks: Mapped[int] = mapped_column(Integer, default=0)
    n_boxes: Mapped[int] = mapped_column(Integer, default=0)
    best_score: Mapped[float | None] = mapped_column(Float)
    box_classes: Mapped[list[Any] | None] = mapped_column(JSON)  # class names the boxes' class column indexes
    boxes: Mapped[bytes | None] = mapped_column(
        LargeBinary
    )  # zlib: float64 [n, 7]: x0 y0 x1 y1 score class track
    masks_z: Mapped[bytes | None] = mapped_column(
        LargeBinary
    )  # zlib: JSON [[class, score, h, w, counts, track]]


class LabelRow(Editable, Base):
    """Every label: video class, segment, mask or box; suggested by a model or made by a reviewer."""

    __tablename__ = "labels"
    __table_args__ = (
        CheckConstraint(_in("kind", LabelKind), name="kind"),
        CheckConstraint(_in("state", ReviewState), name="state"),
        CheckConstraint(_in("origin", LabelOrigin), name="origin"),
        CheckConstraint("end_frame IS NULL OR end_frame > start_frame", name="segment_order"),
        Index(None, "video_id", "frame", "kind", "state"),  # frame lookup + covering index for the timeline
        Index(None, "video_id", "kind", "start_frame"),
        Index(None, "run_id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    class_name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    frame: Mapped[int | None] = mapped_column(Integer)
    start_frame: Mapped[int | None] = mapped_column(Integer)
    end_frame: Mapped[int | None] = mapped_column(Integer)
    rle_counts: Mapped[str | None] = mapped_column(Text)
    rle_h: Mapped[int | None] = mapped_column(Integer)
    rle_w: Mapped[int | None] = mapped_column(Integer)
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("prediction_runs.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    # where an imported label came from: {"source", "line", "field", "format", "importer"} (NULL for others)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the model output this label was made from (a frame_outputs item, see endoreview.store.frame_outputs)
    pred_ref: Mapped[int | None] = mapped_column(BigInteger, index=True)
    __mapper_args__ = {"version_id_col": Editable.version}


class ChangeSetRow(Base):
    """One user action (append-only). Its id is the change counter other workstations poll."""

    __tablename__ = "change_sets"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    summary: Mapped[str] = mapped_column(Text)
    video_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no FK: survives the video
    undoes_id: Mapped[int | None] = mapped_column(Integer)


class AuditRow(Base):
    """Append-only audit log: which object, before and after (JSON), grouped by change set."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    table_name: Mapped[str] = mapped_column(String(50))
    row_id: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(10))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    __table_args__ = (
        Index(None, "table_name", "row_id"),
        {"sqlite_autoincrement": True},
    )


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JobState), name="state"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    log_path: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pid: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
