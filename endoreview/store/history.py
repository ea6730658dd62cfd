"""Store API for history and machinery: change polling, undo/redo, removing videos, jobs.

Change polling (other workstations see new edits without restarting): every user action appends one row to
``change_sets``; its id only grows. A client remembers :meth:`change_cursor` and periodically asks
:meth:`changes_since` (cheap: an indexed range scan). On PostgreSQL ids are taken when a transaction *starts*
writing, so a slow transaction can commit an id below one already seen; ``changes_since`` therefore re-reads a
small window (``overlap``) below the cursor and the caller drops ids it has already handled.

Undo: :meth:`undo` reverts one change set from its audit entries (insert -> delete, update -> restore the
"before" columns, delete -> re-insert) as a *new* audited change set whose ``undoes_id`` names the original; redo
is an undo of that undo. A row changed by someone else since is refused (:class:`StaleWriteError`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from endoreview.store import convert
from endoreview.store import records as r
from endoreview.store import schema as s
from endoreview.store.annotations import _purge_run
from endoreview.store.catalog import _get
from endoreview.store.core import StoreBase, Tx
from endoreview.store.errors import InvalidInputError, NotFoundError, StaleWriteError, refuse_unknown

FINAL_JOB_STATES = (r.JobState.SUCCEEDED, r.JobState.FAILED, r.JobState.CANCELLED)

UNDOABLE: dict[str, type] = {
    "labels": s.LabelRow,
    "videos": s.VideoRow,
    "projects": s.ProjectRow,
    "model_versions": s.ModelVersionRow,
}
_SKIP_RESTORE = {"version", "updated_by", "updated_at"}


def _same_content(current: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a row (as ``convert.row_dict``) holds the values a change left, ignoring bookkeeping columns."""
    return all(current.get(k) == v for k, v in after.items() if k not in _SKIP_RESTORE and k != "id")


VERSIONED = {"labels", "videos", "projects"}  # tables with optimistic row versions


class HistoryMixin(StoreBase):
    # ------------------------------------------------------------------ change polling
    def change_cursor(self) -> int:
        """The id of the newest change set (0 for an empty database)."""
        return self._read(lambda ses: ses.scalar(select(func.coalesce(func.max(s.ChangeSetRow.id), 0))) or 0)

    def changes_since(
        self, cursor: int, *, video_id: int | None = None, overlap: int = 0, limit: int = 1000
    ) -> list[r.ChangeSet]:
        """Change sets with id > ``cursor - overlap``, oldest first (optionally only those touching a video)."""
        q = select(s.ChangeSetRow).where(s.ChangeSetRow.id > cursor - overlap)
        if video_id is not None:
            q = q.where(s.ChangeSetRow.video_id == video_id)
        q = q.order_by(s.ChangeSetRow.id).limit(limit)
        return self._read(lambda ses: [convert.change_set(x) for x in ses.scalars(q)])

    def get_change_set(self, change_set_id: int) -> r.ChangeSet:
        def fn(ses: Any) -> r.ChangeSet:
            cs = _get(ses, s.ChangeSetRow, change_set_id, "Change")
            entries = ses.scalars(
                select(s.AuditRow).where(s.AuditRow.change_set_id == cs.id).order_by(s.AuditRow.id)
            )
            return convert.change_set(cs, tuple(convert.audit_entry(e) for e in entries))

        return self._read(fn)

    def history(self, table: str, row_id: int) -> list[r.AuditEntry]:
        """Every audited change of one object, oldest first."""
        q = select(s.AuditRow).where(s.AuditRow.table_name == table, s.AuditRow.row_id == row_id)
        return self._read(
            lambda ses: [convert.audit_entry(e) for e in ses.scalars(q.order_by(s.AuditRow.id))]
        )

    # ------------------------------------------------------------------ undo / redo
    def undo(self, change_set_id: int, summary: str | None = None) -> r.ChangeSet:
        """Revert one change set as a new audited change set; returns the new one (undo it again to redo)."""
        original = self.get_change_set(change_set_id)
        if not original.entries:
            raise InvalidInputError(
                f"change {change_set_id} ({original.summary}) changed nothing that can be undone"
            )
        for e in original.entries:
            if e.table not in UNDOABLE and e.table != "reviewers":
                raise InvalidInputError(
                    f"{original.summary!r} cannot be undone ({e.table} changes are not undoable)"
                )

        def fn(tx: Tx) -> int:
            entries = [e for e in original.entries if e.table != "reviewers"]
            if (
                entries
                and all(e.op == "update" and e.table in VERSIONED for e in entries)
                and len({e.table for e in entries}) == 1
                and len({e.row_id for e in entries}) == len(entries)
            ):  # e.g. a bulk accept of a whole video: restore every row in a few statements
                model = UNDOABLE[entries[0].table]
                current = self._current_rows(tx, model, [e.row_id for e in entries])
                items = []
                for e in entries:
                    values = convert.values_from_dict(model, e.before or {})
                    changes = {k: v for k, v in values.items() if k not in _SKIP_RESTORE and k != "id"}
                    items.append((e.row_id, self._expected_version(current.get(e.row_id), e.after), changes))
                tx.bulk_update(model, items, f"This {entries[0].table[:-1]}")
                return tx.change_set_id()
            for e in reversed(original.entries):
                if e.table == "reviewers":
                    continue  # reviewers created on the way stay: harmless and referenced elsewhere
                model = UNDOABLE[e.table]
                row = tx.session.get(model, e.row_id)
                if e.op == "insert":
                    if row is None:
                        continue
                    self._check_unchanged(row, e.after)
                    tx.delete(row)
                elif e.op == "update":
                    if row is None:
                        raise StaleWriteError(f"This {e.table[:-1]}", None, None)
                    self._check_unchanged(row, e.after)
                    values = convert.values_from_dict(model, e.before or {})
                    changes = {k: v for k, v in values.items() if k not in _SKIP_RESTORE and k != "id"}
                    tx.update(row, None, e.table, **changes)
                elif e.op == "delete":
                    if row is not None:
                        continue
                    values = convert.values_from_dict(model, e.before or {})
                    values.pop("updated_by", None)
                    values.pop("updated_at", None)
                    tx.add(model(**values))
            return tx.change_set_id()

        video_id = original.video_id
        new_id = self._write(
            summary or f"Undo: {original.summary}", fn, video_id=video_id, undoes_id=change_set_id
        )
        return self.get_change_set(new_id)

    @staticmethod
    def _check_unchanged(row: Any, after: dict[str, Any] | None) -> None:
        if after is not None and "version" in after and getattr(row, "version", None) != after["version"]:
            if _same_content(convert.row_dict(row), after):
                return  # e.g. a later change to this row was itself undone: the row holds what ``after`` says
            raise StaleWriteError(f"This {row.__tablename__[:-1]}", row.updated_by, row.updated_at)

    @staticmethod
    def _current_rows(tx: Tx, model: type, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for a in range(0, len(ids), 500):
            for row in tx.session.scalars(select(model).where(model.id.in_(ids[a : a + 500]))):
                out[row.id] = convert.row_dict(row)
        return out

    @staticmethod
    def _expected_version(current: dict[str, Any] | None, after: dict[str, Any] | None) -> int | None:
        """The version an undo may overwrite: the one the change left, or the row's current one when the row still
        holds exactly what the change left (a later change to it was undone, which moved the version on)."""
        expected = (after or {}).get("version")
        if current is not None and expected is not None and current.get("version") != expected:
            if _same_content(current, after or {}):
                return current.get("version")
        return expected

    # ------------------------------------------------------------------ removing a video
    def remove_video(self, video_id: int, *, purge_labels: bool = False) -> dict[str, int]:
        """Remove a video from the library: its prediction runs, probabilities and unreviewed suggestions go.

        With ``purge_labels`` its labels and the video row go too; otherwise reviewed labels are kept and the
        video is only marked removed (it reappears, labels intact, if imported again). Returns counts.
        Derived files (proxies, thumbnails) are the caller's (the service's) to delete.
        """

        def fn(tx: Tx) -> dict[str, int]:
            video = _get(tx.session, s.VideoRow, video_id, "Video")
            runs = tx.session.scalars(
                select(s.PredictionRunRow).where(s.PredictionRunRow.video_id == video_id)
            )
            n_runs = 0
            for run in runs.all():
                _purge_run(tx, run)
                n_runs += 1
            n_labels = 0
            if purge_labels:
                for row in tx.session.scalars(
                    select(s.LabelRow).where(s.LabelRow.video_id == video_id)
                ).all():
                    tx.delete(row)
                    n_labels += 1
                tx.delete(video)
            else:
                tx.update(video, None, "video", removed_at=tx.now)
            return {"prediction_runs": n_runs, "labels": n_labels}

        return self._write(f"Remove video {video_id}", fn, video_id=video_id)

    def restore_video(self, video_id: int) -> r.Video:
        """Bring back a removed (not purged) video."""

        def fn(tx: Tx) -> None:
            tx.update(_get(tx.session, s.VideoRow, video_id, "Video"), None, "video", removed_at=None)

        self._write(f"Restore video {video_id}", fn, video_id=video_id)
        return self.get_video(video_id)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ jobs
    def create_job(self, kind: str, params: dict[str, Any], log_path: str | None = None) -> r.Job:
        def fn(tx: Tx) -> r.Job:
            row = s.JobRow(kind=kind, params=params, log_path=log_path, created_by=tx.actor, message="")
            tx.session.add(row)
            tx.session.flush()
            return convert.job(row)

        return self._write(f"Create {kind} job", fn)

    def update_job(self, job_id: int, **changes: Any) -> r.Job:
        """Record a job's ``state``, ``progress`` (0..1), ``message``, ``result``, ``pid`` or ``log_path``.

        Entering ``running`` stamps ``started_at``; a final state stamps ``finished_at``. Not audited (machinery).
        """
        refuse_unknown(changes, {"state", "progress", "message", "result", "pid", "log_path"}, "a job")
        if "state" in changes:
            changes["state"] = str(r.JobState(changes["state"]))

        def fn(tx: Tx) -> r.Job:
            row = _get(tx.session, s.JobRow, job_id, "Job")
            for k, v in changes.items():
                setattr(row, k, v)
            if changes.get("state") == r.JobState.RUNNING and row.started_at is None:
                row.started_at = tx.now
            if changes.get("state") in FINAL_JOB_STATES:
                row.finished_at = tx.now
            tx.session.flush()
            return convert.job(row)

        return self._write("Update job", fn)

    def get_job(self, job_id: int) -> r.Job:
        return self._read(lambda ses: convert.job(_get(ses, s.JobRow, job_id, "Job")))

    def list_jobs(
        self, *, state: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[r.Job]:
        """Newest first."""
        q = select(s.JobRow)
        if state is not None:
            q = q.where(s.JobRow.state == str(r.JobState(state)))
        if kind is not None:
            q = q.where(s.JobRow.kind == kind)
        q = q.order_by(s.JobRow.id.desc()).limit(limit)
        return self._read(lambda ses: [convert.job(x) for x in ses.scalars(q)])

    def delete_finished_jobs(self) -> int:
        def fn(tx: Tx) -> int:
            return tx.session.execute(
                delete(s.JobRow).where(s.JobRow.state.in_([x.value for x in FINAL_JOB_STATES]))
            ).rowcount

        return self._write("Clear finished jobs", fn)


__all__ = ["HistoryMixin", "NotFoundError"]
