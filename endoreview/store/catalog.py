"""Store API for the catalogue: reviewers, label sets, projects, videos and model versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from endoreview.store import convert
from endoreview.store import records as r
from endoreview.store import schema as s
from endoreview.store.core import StoreBase, Tx
from endoreview.store.errors import InvalidInputError, NotFoundError, refuse_unknown

_VIDEO_FIELDS = {"path", "path_is_relative", "review_status", "meta", "content_hash", "size_bytes"}


def _get(session: Session, model: type, id_: int, what: str) -> Any:
    row = session.get(model, id_)
    if row is None:
        raise NotFoundError(f"{what} {id_} does not exist")
    return row


def reviewer_id(tx: Tx, name: str | None) -> int | None:
    if name is None:
        return None
    row = tx.session.scalar(select(s.ReviewerRow).where(s.ReviewerRow.name == name))
    if row is None:
        row = tx.add(s.ReviewerRow(name=name, role="reviewer"))
    return row.id


class CatalogMixin(StoreBase):
    # ------------------------------------------------------------------ reviewers
    def ensure_reviewer(self, name: str | None = None, role: str = "reviewer") -> r.Reviewer:
        """The reviewer row for ``name`` (default: this store's reviewer), created on first use."""
        name = name or self.reviewer

        def fn(tx: Tx) -> r.Reviewer:
            row = tx.session.scalar(select(s.ReviewerRow).where(s.ReviewerRow.name == name))
            if row is None:
                row = tx.add(s.ReviewerRow(name=name, role=role))
            return r.Reviewer(row.id, row.name, row.role, row.created_at)

        return self._write(f"Add reviewer {name}", fn)

    def list_reviewers(self) -> list[r.Reviewer]:
        return self._read(
            lambda ses: [
                r.Reviewer(x.id, x.name, x.role, x.created_at)
                for x in ses.scalars(select(s.ReviewerRow).order_by(s.ReviewerRow.name))
            ]
        )

    # ------------------------------------------------------------------ label sets
    def create_label_set(self, name: str, classes: Sequence[dict[str, Any]]) -> r.LabelSet:
        """``classes``: dicts with name, color ("#rrggbb"), shortcut (optional) and tasks (subset of TASKS)."""
        for c in classes:
            bad = set(c.get("tasks", ())) - set(r.TASKS)
            if bad:
                raise InvalidInputError(f"label class {c.get('name')!r}: unknown task(s) {sorted(bad)}")

        def fn(tx: Tx) -> int:
            ls = tx.add(s.LabelSetRow(name=name))
            for i, c in enumerate(classes):
                tx.add(
                    s.LabelClassRow(
                        label_set_id=ls.id,
                        name=c["name"],
                        color=c.get("color", "#ff0000"),
                        shortcut=c.get("shortcut"),
                        tasks=list(c.get("tasks", r.TASKS)),
                        sort_order=i,
                    )
                )
            return ls.id

        return self.get_label_set(self._write(f"Create label set {name}", fn))

    def get_label_set(self, label_set_id: int) -> r.LabelSet:
        def fn(ses: Session) -> r.LabelSet:
            ls = _get(ses, s.LabelSetRow, label_set_id, "Label set")
            rows = ses.scalars(
                select(s.LabelClassRow)
                .where(s.LabelClassRow.label_set_id == ls.id)
                .order_by(s.LabelClassRow.sort_order, s.LabelClassRow.id)
            )
            return r.LabelSet(ls.id, ls.name, tuple(convert.label_class(c) for c in rows))

        return self._read(fn)

    def find_label_set(self, name: str) -> r.LabelSet | None:
        id_ = self._read(lambda ses: ses.scalar(select(s.LabelSetRow.id).where(s.LabelSetRow.name == name)))
        return self.get_label_set(id_) if id_ is not None else None

    # ------------------------------------------------------------------ projects
    def create_project(self, name: str, label_set_id: int, description: str = "") -> r.Project:
        def fn(tx: Tx) -> r.Project:
            _get(tx.session, s.LabelSetRow, label_set_id, "Label set")
            return convert.project(
                tx.add(s.ProjectRow(name=name, label_set_id=label_set_id, description=description))
            )

        return self._write(f"Create project {name}", fn)

    def get_project(self, project_id: int) -> r.Project:
        return self._read(lambda ses: convert.project(_get(ses, s.ProjectRow, project_id, "Project")))

    def _first(self, model: type, to_record: Any, where: Any) -> Any:
        """The record of the first ``model`` row ``where`` holds for, or None."""

        def fn(ses: Session) -> Any:
            row = ses.scalar(select(model).where(where))
            return to_record(row) if row else None

        return self._read(fn)

    def _all(self, model: type, to_record: Any, order_by: Any) -> list[Any]:
        return self._read(lambda ses: [to_record(x) for x in ses.scalars(select(model).order_by(order_by))])

    def find_project(self, name: str) -> r.Project | None:
        return self._first(s.ProjectRow, convert.project, s.ProjectRow.name == name)

    def list_projects(self) -> list[r.Project]:
        return self._all(s.ProjectRow, convert.project, s.ProjectRow.name)

    def update_project(self, project_id: int, expected_version: int, **changes: Any) -> r.Project:
        refuse_unknown(changes, {"name", "description", "label_set_id"}, "a project")

        def fn(tx: Tx) -> r.Project:
            row = _get(tx.session, s.ProjectRow, project_id, "Project")
            return convert.project(tx.update(row, expected_version, f"Project {row.name!r}", **changes))

        return self._write("Edit project", fn)

    # ------------------------------------------------------------------ videos
    def add_video(
        self,
        project_id: int,
        *,
        path: str,
        path_is_relative: bool,
        content_hash: str,
        size_bytes: int,
        frame_count: int,
        fps: float,
        width: int,
        height: int,
        codec: str = "",
        meta: dict[str, Any] | None = None,
    ) -> r.Video:
        def fn(tx: Tx) -> r.Video:
            _get(tx.session, s.ProjectRow, project_id, "Project")
            row = s.VideoRow(
                project_id=project_id,
                path=path,
                path_is_relative=path_is_relative,
                content_hash=content_hash,
                size_bytes=size_bytes,
                frame_count=frame_count,
                fps=fps,
                width=width,
                height=height,
                codec=codec,
                meta=meta or {},
            )
            tx.add(row)
            return convert.video(row, None)

        return self._write("Import video", fn)

    def _video(self, ses: Session, row: s.VideoRow) -> r.Video:
        name = ses.get(s.ReviewerRow, row.assigned_reviewer_id).name if row.assigned_reviewer_id else None
        return convert.video(row, name)

    def get_video(self, video_id: int) -> r.Video:
        return self._read(lambda ses: self._video(ses, _get(ses, s.VideoRow, video_id, "Video")))

    def list_videos(
        self,
        project_id: int | None = None,
        *,
        status: r.ReviewStatus | str | None = None,
        assigned_to: str | None = None,
        search: str | None = None,
        content_hash: str | None = None,
        include_removed: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[r.Video]:
        """Videos in import order, filtered. ``search`` matches the path or any metadata text (case-insensitive)."""

        def fn(ses: Session) -> list[r.Video]:
            q = select(s.VideoRow, s.ReviewerRow.name).outerjoin(
                s.ReviewerRow, s.ReviewerRow.id == s.VideoRow.assigned_reviewer_id
            )
            if project_id is not None:
                q = q.where(s.VideoRow.project_id == project_id)
            if status is not None:
                q = q.where(s.VideoRow.review_status == str(r.ReviewStatus(status)))
            if assigned_to is not None:
                q = q.where(s.ReviewerRow.name == assigned_to)
            if content_hash is not None:
                q = q.where(s.VideoRow.content_hash == content_hash)
            if not include_removed:
                q = q.where(s.VideoRow.removed_at.is_(None))
            if search:
                like = f"%{search.lower()}%"
                q = q.where(
                    or_(
                        func.lower(s.VideoRow.path).like(like),
                        func.lower(s.VideoRow.codec).like(like),
                        func.lower(cast(s.VideoRow.meta, Text)).like(like),
                    )
                )
            q = q.order_by(s.VideoRow.id).offset(offset)
            if limit is not None:
                q = q.limit(limit)
            return [convert.video(v, name) for v, name in ses.execute(q)]

        return self._read(fn)

    def update_video(self, video_id: int, expected_version: int | None, **changes: Any) -> r.Video:
        """Change a video's review status, assigned reviewer (``assigned_reviewer=name|None``), path or meta.

        ``expected_version`` is the version the caller read; a newer row is refused (:class:`StaleWriteError`).
        """
        refuse_unknown(changes, _VIDEO_FIELDS | {"assigned_reviewer"}, "a video")
        if "review_status" in changes:
            changes["review_status"] = str(r.ReviewStatus(changes["review_status"]))

        def fn(tx: Tx) -> r.Video:
            row = _get(tx.session, s.VideoRow, video_id, "Video")
            if "assigned_reviewer" in changes:
                changes["assigned_reviewer_id"] = reviewer_id(tx, changes.pop("assigned_reviewer"))
            tx.update(row, expected_version, f"Video {video_id}", **changes)
            return self._video(tx.session, row)

        return self._write("Update video", fn, video_id=video_id)

    # ------------------------------------------------------------------ model versions
    def add_model_version(
        self,
        name: str,
        *,
        architecture: str,
        files_dir: str,
        parent_id: int | None = None,
        data_snapshot: dict[str, Any] | None = None,
        hyperparameters: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        notes: str = "",
        activate: bool = False,
    ) -> r.ModelVersion:
        """Register a model version (its files stay in ``files_dir``). ``activate`` makes it the only active one."""

        def fn(tx: Tx) -> int:
            if parent_id is not None:
                _get(tx.session, s.ModelVersionRow, parent_id, "Parent model version")
            row = tx.add(
                s.ModelVersionRow(
                    name=name,
                    architecture=architecture,
                    files_dir=files_dir,
                    parent_id=parent_id,
                    data_snapshot=data_snapshot or {},
                    hyperparameters=hyperparameters or {},
                    metrics=metrics or {},
                    notes=notes,
                    is_active=False,
                )
            )
            if activate:
                self._activate(tx, row.id)
            return row.id

        return self.get_model_version(self._write(f"Register model {name}", fn))

    def get_model_version(self, model_version_id: int) -> r.ModelVersion:
        return self._read(
            lambda ses: convert.model_version(_get(ses, s.ModelVersionRow, model_version_id, "Model version"))
        )

    def find_model_version(self, name: str) -> r.ModelVersion | None:
        return self._first(s.ModelVersionRow, convert.model_version, s.ModelVersionRow.name == name)

    def list_model_versions(self) -> list[r.ModelVersion]:
        """Oldest first."""
        return self._all(s.ModelVersionRow, convert.model_version, s.ModelVersionRow.id)

    def active_model_version(self) -> r.ModelVersion | None:
        return self._first(s.ModelVersionRow, convert.model_version, s.ModelVersionRow.is_active.is_(True))

    def _activate(self, tx: Tx, model_version_id: int) -> None:
        for row in tx.session.scalars(select(s.ModelVersionRow).where(s.ModelVersionRow.is_active.is_(True))):
            if row.id != model_version_id:
                tx.update(row, None, "model version", is_active=False)
        row = _get(tx.session, s.ModelVersionRow, model_version_id, "Model version")
        if not row.is_active:
            tx.update(row, None, "model version", is_active=True)

    def activate_model_version(self, model_version_id: int) -> r.ModelVersion:
        """Make this the one active model version (all others are deactivated in the same transaction)."""
        self._write(
            f"Activate model version {model_version_id}", lambda tx: self._activate(tx, model_version_id)
        )
        return self.get_model_version(model_version_id)

    def update_model_version(self, model_version_id: int, **changes: Any) -> r.ModelVersion:
        """Change ``metrics``, ``notes``, ``files_dir`` or ``data_snapshot`` (e.g. after an evaluation)."""
        refuse_unknown(
            changes, {"metrics", "notes", "files_dir", "data_snapshot", "hyperparameters"}, "a model version"
        )

        def fn(tx: Tx) -> None:
            row = _get(tx.session, s.ModelVersionRow, model_version_id, "Model version")
            tx.update(row, None, "model version", **changes)

        self._write(f"Update model version {model_version_id}", fn)
        return self.get_model_version(model_version_id)

    def delete_model_version(self, model_version_id: int) -> None:
        """Remove a model version from the registry (its labels keep their provenance id as NULL)."""

        def fn(tx: Tx) -> None:
            tx.delete(_get(tx.session, s.ModelVersionRow, model_version_id, "Model version"))

        self._write(f"Delete model version {model_version_id}", fn)
