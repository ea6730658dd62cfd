"""Store API for labels, predictions and the timeline summary.

Review rules (what a reviewer's action does to a label's ``state``):

* accept: ``suggested`` -> ``accepted`` (other states are left as they are, so a bulk accept is idempotent);
* reject: any -> ``rejected`` (a rejected model suggestion is a negative for training);
* edit (geometry, class, frames): ``suggested``/``accepted``/``rejected`` -> ``edited``; ``manual``/``edited`` stay;
* create: ``manual`` (origin drawn, keyframe, interpolated, propagated or imported) or ``suggested`` (origin
  predicted).

Each records who and when in ``reviewed_by``/``reviewed_at`` (accept, reject, edit) and the optional ``reason``.
Predictions are written in bulk, one ``frame_outputs`` row per frame (Core ``executemany``, one audit entry per batch);
their masks and boxes are read back as open suggestions with negative ids until a reviewer acts on one, which then
gets its own label row (:mod:`endoreview.store.frame_outputs`). Every read and write below takes both kinds of id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, text, update

from core_model.contract import RLEError, rle_normalise
from endoreview.store import convert
from endoreview.store import frame_outputs as fo
from endoreview.store import records as r
from endoreview.store import schema as s
from endoreview.store.catalog import _get
from endoreview.store.core import StoreBase, Tx
from endoreview.store.errors import InvalidInputError, NotFoundError, StaleWriteError, refuse_unknown

_LT = s.LabelRow.__table__


def _video_rows(
    video_id: int, frames: tuple[int, int] | None = None, run_id: int | None = None, alias: str = ""
) -> tuple[list[str], list[Any]]:
    """WHERE terms and their parameters for a video's rows, optionally on frames ``[a, b)`` and of one run
    (``alias``: the table's prefix in the query, ``"o."``)."""
    where, params = [f"{alias}video_id = ?"], [video_id]
    if frames is not None:
        where.append(f"{alias}frame >= ? AND {alias}frame < ?")
        params += [int(frames[0]), int(frames[1])]
    if run_id is not None:
        where.append(f"{alias}run_id = ?")
        params.append(run_id)
    return where, params


_EDITABLE = {"class_name", "frame", "start_frame", "end_frame", "rle", "bbox", "track_id", "reason"}


def _rle_columns(rle: dict[str, Any] | None) -> dict[str, Any]:
    if rle is None:
        return {"rle_counts": None, "rle_h": None, "rle_w": None}
    try:
        norm = rle_normalise(rle)  # validates: well-formed counts summing to h * w
    except RLEError as e:
        raise InvalidInputError(f"{e} (expected COCO RLE {{'size': [h, w], 'counts': str}})") from None
    h, w = norm["size"]
    return {"rle_counts": norm["counts"], "rle_h": h, "rle_w": w}


def _bbox_columns(bbox: Sequence[float] | None) -> dict[str, Any]:
    if bbox is None:
        return {"x0": None, "y0": None, "x1": None, "y1": None}
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x1 > x0 and y1 > y0):
        raise InvalidInputError(f"a box needs x1 > x0 and y1 > y0, got {list(bbox)}")
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1}


def _check_geometry(kind: str, v: dict[str, Any], frame_count: int) -> None:
    """``frame_count`` <= 0: the video's length is not checked (unknown, or frames not being changed)."""
    if kind in (r.LabelKind.MASK, r.LabelKind.BOX):
        f = v.get("frame")
        if f is None or f < 0 or (frame_count > 0 and f >= frame_count):
            raise InvalidInputError(f"a {kind} needs a frame in [0, {frame_count}), got {f}")
        if kind == r.LabelKind.MASK and v.get("rle_counts") is None:
            raise InvalidInputError("a mask label needs an RLE mask")
        if kind == r.LabelKind.BOX and v.get("x0") is None:
            raise InvalidInputError("a box label needs a bbox")
    elif kind == r.LabelKind.SEGMENT:
        a, b = v.get("start_frame"), v.get("end_frame")
        if a is None or b is None or not 0 <= a < b or (frame_count > 0 and b > frame_count):
            raise InvalidInputError(f"a segment needs 0 <= start < end <= {frame_count}, got [{a}, {b})")


def label_values(new: r.NewLabel, frame_count: int, actor: str, now: Any) -> dict[str, Any]:
    kind = r.LabelKind(new.kind)
    origin = r.LabelOrigin(new.origin)
    state = (
        r.ReviewState(new.state)
        if new.state
        else (r.ReviewState.SUGGESTED if origin == r.LabelOrigin.PREDICTED else r.ReviewState.MANUAL)
    )
    v: dict[str, Any] = {
        "video_id": new.video_id,
        "kind": str(kind),
        "class_name": new.class_name,
        "state": str(state),
        "origin": str(origin),
        "frame": new.frame,
        "start_frame": new.start_frame,
        "end_frame": new.end_frame,
        "track_id": new.track_id,
        "score": new.score,
        "model_version_id": new.model_version_id,
        "run_id": new.run_id,
        "reason": new.reason,
        "provenance": new.provenance,
        "created_by": actor,
        "created_at": now,
        "updated_by": actor,
        "updated_at": now,
        "version": 1,
        **_rle_columns(new.rle),
        **_bbox_columns(new.bbox),
    }
    _check_geometry(kind, v, frame_count)
    return v


#: Most frames of model output one transaction writes (about 20 ms of write lock here; a reviewer's save waits for at
#: most one such transaction, see StoreBase._writer_turn).
PREDICTION_TX_FRAMES = 32


class AnnotationsMixin(StoreBase):
    # ------------------------------------------------------------------ reading labels
    def get_label(self, label_id: int) -> r.Label:
        if fo.is_virtual(label_id):  # an open suggestion, or the label a reviewer's action made of it
            found = self.labels_by_id([label_id])
            if not found:
                raise NotFoundError(f"Label {label_id} does not exist (its prediction run was removed)")
            return found[0]
        return self._read(lambda ses: convert.label(_get(ses, s.LabelRow, label_id, "Label")))

    def labels_for_frame(self, video_id: int, frame: int) -> list[r.Label]:
        """Masks and boxes on ``frame``, open suggestions first (the viewer's hot path: indexed queries, no ORM)."""
        rows = self._fetch(
            convert.LABEL_SELECT + " WHERE video_id = ? AND frame = ? ORDER BY id", (video_id, frame)
        )
        return self.suggestions(video_id, frames=(frame, frame + 1)) + [
            convert.label_from_tuple(t) for t in rows
        ]

    def suggestions(
        self,
        video_id: int,
        *,
        frames: tuple[int, int] | None = None,
        run_id: int | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[r.Label]:
        """The open suggestions (model masks and boxes no reviewer has acted on) of a video, optionally on frames
        ``[a, b)``, of one run, of some kinds; ordered by frame, run and the model's order."""
        ks = None if kinds is None else {str(r.LabelKind(k)) for k in kinds}
        rows, consumed = self.suggestion_rows(video_id, frames=frames, run_id=run_id, kinds=kinds)
        return fo.suggestions_from_rows(rows, consumed, ks) if rows else []

    def suggestion_rows(
        self,
        video_id: int,
        *,
        frames: tuple[int, int] | None = None,
        run_id: int | None = None,
        kinds: Iterable[str] | None = None,
    ) -> tuple[list[tuple[Any, ...]], set[int]]:
        """What :meth:`suggestions` is built from, for readers of a whole procedure (exports) that unpack the rows
        themselves (:func:`frame_outputs.unpack_raw`): the ``frame_outputs.ROW_SELECT`` rows with masks or boxes
        (by frame, then run) and the refs (:func:`frame_outputs.make_ref`) of the items a label row stands for."""
        ks = None if kinds is None else {str(r.LabelKind(k)) for k in kinds}
        if ks is not None and not ks & {"mask", "box"}:
            return [], set()
        where, params = _video_rows(video_id, frames, run_id, "o.")
        if ks == {"mask"}:
            where.append("o.n_masks > 0")
        elif ks == {"box"}:
            where.append("o.n_boxes > 0")
        else:
            where.append("(o.n_masks > 0 OR o.n_boxes > 0)")
        rows = self._fetch(
            f"{fo.ROW_SELECT} WHERE {' AND '.join(where)} ORDER BY o.frame, o.run_id", tuple(params)
        )
        if not rows:
            return [], set()
        cw, cp = _video_rows(video_id, frames)
        cw.append("pred_ref IS NOT NULL")
        consumed = {
            x for (x,) in self._fetch(f"SELECT pred_ref FROM labels WHERE {' AND '.join(cw)}", tuple(cp))
        }
        return list(rows), consumed

    def frames_with_model_output(self, video_id: int) -> list[int]:
        """Frames on which any prediction run of the video listed a mask or box (from the runs' summaries: one row
        each, not a scan of a procedure's frames)."""
        runs = self._fetch("SELECT id FROM prediction_runs WHERE video_id = ?", (video_id,))
        found: set[int] = set()
        for (run_id,) in runs:
            best = self.run_summary(run_id).best
            found.update(np.flatnonzero(best > 0).tolist())  # NaN (no output) and 0 (none listed) are not
        return sorted(found)

    def run_summary(self, run_id: int) -> fo.RunSummary:
        """A run's per-frame class probabilities and best detection score (what the timeline lanes and the library
        draw): one row once the run has finished, else built from its frames so far."""
        found = self._fetch(
            "SELECT v.frame_count, p.summary_classes, p.summary_probs, p.summary_best FROM prediction_runs p "
            "JOIN videos v ON v.id = p.video_id WHERE p.id = ?",
            (run_id,),
        )
        if not found:
            raise NotFoundError(f"Prediction run {run_id} does not exist")
        n, classes, probs, best = found[0]
        if probs is not None and best is not None:
            got = fo.summary_from_columns(run_id, int(n), classes, probs, best)
            if got is not None:
                return got
        rows = self._fetch(
            "SELECT frame, probs, best_score FROM frame_outputs WHERE run_id = ? ORDER BY frame", (run_id,)
        )
        return fo.build_summary(run_id, int(n), rows)

    def labels_for_video(
        self,
        video_id: int,
        *,
        kinds: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        frames: tuple[int, int] | None = None,
        run_id: int | None = None,
        suggestions: bool = True,
    ) -> list[r.Label]:
        """Labels of a video, optionally of some kinds/states, per-frame ones within ``frames`` = [a, b), with the
        open suggestions of its prediction runs (``suggestions=False``: only label rows, e.g. what reviewers made
        or judged)."""
        where, params = _video_rows(video_id, frames, run_id)
        st: list[str] = []
        if kinds is not None:
            kinds = [str(r.LabelKind(k)) for k in kinds]
            ks = list(kinds)
            where.append(f"kind IN ({', '.join('?' * len(ks))})")
            params += ks
        if states is not None:
            st = [str(r.ReviewState(x)) for x in states]
            where.append(f"state IN ({', '.join('?' * len(st))})")
            params += st
        sql = f"{convert.LABEL_SELECT} WHERE {' AND '.join(where)} ORDER BY frame, id"
        rows = [convert.label_from_tuple(t) for t in self._fetch(sql, tuple(params))]
        if not suggestions or (states is not None and r.ReviewState.SUGGESTED not in st):
            return rows
        sug = self.suggestions(video_id, frames=frames, run_id=run_id, kinds=kinds)
        if not sug:
            return rows
        # merged in frame order (segments and video classes first, as SQL orders NULL frames), suggestions first
        keyed = [((x.frame is not None, x.frame or 0, 1), x) for x in rows]
        keyed += [((True, x.frame or 0, 0), x) for x in sug]
        keyed.sort(key=lambda kx: kx[0])
        return [x for _, x in keyed]

    def count_labels(self, video_id: int | None = None) -> dict[tuple[str, str], int]:
        q = select(_LT.c.kind, _LT.c.state, func.count()).group_by(_LT.c.kind, _LT.c.state)
        if video_id is not None:
            q = q.where(_LT.c.video_id == video_id)
        with self._read_conn() as conn:
            out = {(k, st): n for k, st, n in conn.execute(q)}
        # open suggestions: every item of the runs' output less those a label row stands for
        where = "" if video_id is None else f" WHERE video_id = {int(video_id)}"
        total = self._fetch(
            f"SELECT coalesce(sum(n_masks), 0), coalesce(sum(n_boxes), 0) FROM frame_outputs{where}", ()
        )
        used = dict(
            self._fetch(
                "SELECT kind, count(*) FROM labels"
                + (where + " AND" if where else " WHERE")
                + " pred_ref IS NOT NULL AND run_id IS NOT NULL GROUP BY kind",
                (),
            )
        )
        for kind, n in (("mask", total[0][0]), ("box", total[0][1])):
            left = int(n) - int(used.get(kind, 0))
            if left > 0:
                out[(kind, "suggested")] = out.get((kind, "suggested"), 0) + left
        return out

    def imported_sources(self, video_id: int) -> set[str]:
        """The source files a video's imported labels came from (their ``provenance.source``)."""
        src = _LT.c.provenance["source"].as_string()
        q = (
            select(src)
            .where(_LT.c.video_id == video_id, _LT.c.origin == str(r.LabelOrigin.IMPORTED))
            .distinct()
        )
        with self._read_conn() as conn:
            return {x for (x,) in conn.execute(q) if x is not None}

    def timeline_summary(self, video_id: int) -> r.TimelineSummary:
        """Per-frame label counts by (kind, state) plus segments: one aggregate over the covering
        ``(video_id, frame, kind, state)`` index, no masks loaded."""
        found = self._fetch("SELECT frame_count FROM videos WHERE id = ?", (video_id,))
        if not found:
            raise NotFoundError(f"Video {video_id} does not exist")
        n = int(found[0][0])
        rows = self._fetch(
            "SELECT frame, kind, state, count(*) FROM labels WHERE video_id = ? AND frame IS NOT NULL "
            "GROUP BY frame, kind, state",
            (video_id,),
        )
        segs = self._fetch(
            convert.LABEL_SELECT + " WHERE video_id = ? AND frame IS NULL ORDER BY start_frame, id",
            (video_id,),
        )
        rows = list(rows)
        outs = self._fetch(
            "SELECT frame, sum(n_masks), sum(n_boxes) FROM frame_outputs WHERE video_id = ? "
            "AND (n_masks > 0 OR n_boxes > 0) GROUP BY frame",
            (video_id,),
        )
        if outs:  # open suggestions per frame: the runs' items less those a label row stands for
            used: dict[tuple[int, str], int] = {}
            for f, kind, k in self._fetch(
                "SELECT frame, kind, count(*) FROM labels WHERE video_id = ? AND pred_ref IS NOT NULL "
                "AND run_id IS NOT NULL GROUP BY frame, kind",
                (video_id,),
            ):
                used[(f, kind)] = k
            for f, nm, nb in outs:
                for kind, k in (("mask", nm), ("box", nb)):
                    left = int(k) - used.get((f, kind), 0)
                    if left > 0:
                        rows.append((f, kind, "suggested", left))
        counts: dict[tuple[str, str], np.ndarray] = {}
        if rows:
            frames = np.fromiter((t[0] for t in rows), np.int64, len(rows))
            cnt = np.fromiter((t[3] for t in rows), np.int32, len(rows))
            keys = [(t[1], t[2]) for t in rows]
            size = max(n, int(frames.max()) + 1)
            index: dict[tuple[str, str], list[int]] = {}
            for i, k in enumerate(keys):
                index.setdefault(k, []).append(i)
            for k, idx in index.items():
                a = np.zeros(size, np.int32)
                sel = np.asarray(idx)
                np.add.at(a, frames[sel], cnt[sel])
                counts[k] = a
        return r.TimelineSummary(
            video_id=video_id,
            frame_count=n,
            counts=counts,
            segments=tuple(convert.label_from_tuple(t) for t in segs),
        )

    # ------------------------------------------------------------------ writing labels
    def add_labels(
        self,
        labels: Sequence[r.NewLabel],
        summary: str = "Add labels",
        *,
        update_meta: Callable[[int, dict[str, Any], list[r.Label]], dict[str, Any]] | None = None,
    ) -> list[r.Label]:
        """Create labels in one action (each audited). Returns them with their ids.

        ``update_meta(video_id, meta, new_labels_of_that_video) -> new meta`` rewrites each touched video's
        metadata in the same transaction (an import records where its labels came from atomically with them)."""
        if not labels:
            return []

        # validated and converted before the write transaction, which then holds the write lock only to insert
        counts = {
            vid: self._read(lambda ses, vid=vid: _get(ses, s.VideoRow, vid, "Video").frame_count)
            for vid in dict.fromkeys(new.video_id for new in labels)
        }
        now = s.utcnow()
        rows = [label_values(new, counts[new.video_id], self.reviewer, now) for new in labels]

        def fn(tx: Tx) -> list[r.Label]:
            for vid in counts:
                _get(tx.session, s.VideoRow, vid, "Video")  # still there
            for v in rows:
                v["created_at"] = v["updated_at"] = tx.now
            ids = tx.insert_many(s.LabelRow, rows)
            out = [
                convert.label_from_tuple(tuple(i if c == "id" else v.get(c) for c in convert.LABEL_COLUMNS))
                for i, v in zip(ids, rows)
            ]
            if update_meta is not None:
                for vid in counts:
                    cur = tx.row(s.VideoRow, vid, "Video")
                    meta = update_meta(
                        vid, dict(cur["meta"] or {}), [lab for lab in out if lab.video_id == vid]
                    )
                    tx.update_row(s.VideoRow, cur, None, f"Video {vid}", {"meta": meta})
            return out

        return self._write(summary, fn, video_id=labels[0].video_id)

    def edit_label(self, label_id: int, expected_version: int, **changes: Any) -> r.Label:
        """Change a label's class, frame(s), mask, box, track id or reason; the state becomes ``edited``
        (``manual`` stays ``manual``). Refused with :class:`StaleWriteError` if someone changed it since
        ``expected_version``."""
        refuse_unknown(changes, _EDITABLE, "a label", verb="edit")
        values = dict(changes)
        if "rle" in values:
            values.update(_rle_columns(values.pop("rle")))
        if "bbox" in values:
            values.update(_bbox_columns(values.pop("bbox")))

        def fn(tx: Tx) -> r.Label:
            # Core statements, not the ORM: an edit is the reviewer's most frequent write
            real_id = label_id
            if fo.is_virtual(label_id):  # an open suggestion gets its own row first, in this action
                real_id = self._materialise(tx, [label_id], {})[label_id]
            cur = tx.row(s.LabelRow, real_id, "Label")
            merged = {**cur, **values}
            frame_count = 0
            if {"frame", "start_frame", "end_frame"} & set(values):
                frame_count = tx.row(s.VideoRow, cur["video_id"], "Video")["frame_count"]
            _check_geometry(cur["kind"], merged, frame_count)
            tx.video_id = cur["video_id"]
            new_state = str(r.ReviewState(cur["state"]).after_edit())  # the rule lives in the domain record
            after = tx.update_row(
                s.LabelRow,
                cur,
                expected_version,
                f"This {cur['kind']} label",
                {**values, "state": new_state, "reviewed_by": tx.actor, "reviewed_at": tx.now},
            )
            return convert.label_from_tuple(tuple(after[c] for c in convert.LABEL_COLUMNS))

        return self._write("Edit label", fn)

    def set_label_states(
        self,
        label_ids: Sequence[int],
        state: r.ReviewState | str,
        *,
        expected_versions: dict[int, int] | None = None,
        reason: str | None = None,
        summary: str | None = None,
    ) -> list[r.Label]:
        """Accept or reject labels in one action; labels the review-state table (``ReviewState.can_become``) does not
        let move are left as they are."""
        state = r.ReviewState(state)
        if state not in (r.ReviewState.ACCEPTED, r.ReviewState.REJECTED):
            raise InvalidInputError("a review sets a label to accepted or rejected (edit it to change it)")
        expected_versions = expected_versions or {}

        def fn(tx: Tx) -> list[int]:
            t = s.LabelRow.__table__
            made = self._materialise(
                tx,
                [i for i in label_ids if fo.is_virtual(i)],
                {"state": str(state), "reviewed_by": tx.actor, "reviewed_at": tx.now, "reason": reason},
            )
            real_ids = [i for i in label_ids if not fo.is_virtual(i)]
            rows = []
            for a in range(0, len(real_ids), 500):
                chunk = list(real_ids[a : a + 500])
                rows += tx.session.execute(
                    select(t.c.id, t.c.state, t.c.video_id).where(t.c.id.in_(chunk))
                ).all()
            missing = set(real_ids) - {x.id for x in rows}
            if missing:
                raise InvalidInputError(
                    f"labels {sorted(missing)[:10]} do not exist (removed by someone else?) — reload"
                )
            changes: dict[str, Any] = {"state": str(state), "reviewed_by": tx.actor, "reviewed_at": tx.now}
            if reason is not None:
                changes["reason"] = reason
            todo = [x for x in rows if r.ReviewState(x.state).can_become(state)]
            if todo:
                tx.video_id = todo[0].video_id
            tx.bulk_update(
                s.LabelRow, [(x.id, expected_versions.get(x.id), changes) for x in todo], "This label"
            )
            return list(made.values()) + [x.id for x in todo]

        verb = "Accept" if state == r.ReviewState.ACCEPTED else "Reject"
        return self.labels_by_id(self._write(summary or f"{verb} {len(label_ids)} label(s)", fn))

    def labels_by_id(self, label_ids: Sequence[int]) -> list[r.Label]:
        """The labels with these ids (missing ones are left out), in id order."""
        out: list[r.Label] = []
        ids = [i for i in label_ids if not fo.is_virtual(i)]
        virtual = [i for i in label_ids if fo.is_virtual(i)]
        if virtual:  # an open suggestion, or the label row a reviewer's action made of it
            found = self._open_suggestions_by_id(virtual)
            out += found
            rest = [-i for i in set(virtual) - {x.id for x in found}]
            for a in range(0, len(rest), 500):
                chunk = rest[a : a + 500]
                sql = f"{convert.LABEL_SELECT} WHERE pred_ref IN ({', '.join('?' * len(chunk))}) ORDER BY id"
                out += [convert.label_from_tuple(t) for t in self._fetch(sql, tuple(chunk))]
        for a in range(0, len(ids), 500):
            chunk = ids[a : a + 500]
            sql = f"{convert.LABEL_SELECT} WHERE id IN ({', '.join('?' * len(chunk))}) ORDER BY id"
            out += [convert.label_from_tuple(t) for t in self._fetch(sql, tuple(chunk))]
        return sorted(out, key=lambda x: x.id)

    def accept_suggestions(
        self,
        video_id: int,
        *,
        kinds: Iterable[str] | None = None,
        frames: tuple[int, int] | None = None,
        min_score: float | None = None,
    ) -> int:
        """Bulk accept: every ``suggested`` label of a video (optionally by kind, frame range, minimum score)."""
        q = select(s.LabelRow).where(
            s.LabelRow.video_id == video_id, s.LabelRow.state == r.ReviewState.SUGGESTED.value
        )
        if kinds is not None:
            q = q.where(s.LabelRow.kind.in_([str(r.LabelKind(k)) for k in kinds]))
        if frames is not None:
            q = q.where(
                ((s.LabelRow.frame >= frames[0]) & (s.LabelRow.frame < frames[1]))
                | ((s.LabelRow.start_frame < frames[1]) & (s.LabelRow.end_frame > frames[0]))
            )
        if min_score is not None:
            q = q.where(s.LabelRow.score >= min_score)

        open_ids = [
            x.id
            for x in self.suggestions(video_id, frames=frames, kinds=kinds)
            if min_score is None or (x.score if x.score is not None else 1.0) >= min_score
        ]

        def fn(tx: Tx) -> int:
            ids = tx.session.scalars(q.with_only_columns(s.LabelRow.id)).all()
            changes = {"state": "accepted", "reviewed_by": tx.actor, "reviewed_at": tx.now}
            made = self._materialise(tx, open_ids, changes)
            return len(made) + tx.bulk_update(s.LabelRow, [(i, None, changes) for i in ids], "label")

        return self._write("Accept all suggestions", fn, video_id=video_id)

    def delete_labels(self, label_ids: Sequence[int], expected_versions: dict[int, int] | None = None) -> int:
        """Delete labels (audited with their full content, so undo brings them back)."""
        expected_versions = expected_versions or {}

        def fn(tx: Tx) -> int:
            # an open suggestion the reviewer removes is recorded as rejected (the model's output stays stored)
            made = self._materialise(
                tx,
                [i for i in label_ids if fo.is_virtual(i)],
                {"state": str(r.ReviewState.REJECTED), "reviewed_by": tx.actor, "reviewed_at": tx.now},
            )
            ids = [i for i in label_ids if not fo.is_virtual(i)]
            rows = tx.session.scalars(select(s.LabelRow).where(s.LabelRow.id.in_(ids))).all()
            for row in rows:
                exp = expected_versions.get(row.id)
                if exp is not None and row.version != exp:
                    raise StaleWriteError(f"This {row.kind} label", row.updated_by, row.updated_at)
                tx.video_id = row.video_id
                tx.delete(row)
            return len(rows) + len(made)

        return self._write(f"Delete {len(label_ids)} label(s)", fn)

    def replace_labels(
        self,
        remove: Sequence[int],
        add: Sequence[r.NewLabel],
        *,
        expected_versions: dict[int, int] | None = None,
        summary: str = "Replace labels",
    ) -> list[r.Label]:
        """Delete ``remove`` and create ``add`` as one action (one transaction, one undo step)."""
        expected_versions = expected_versions or {}

        def fn(tx: Tx) -> list[r.Label]:
            # an open suggestion replaced by a label of the same kind on the same frame is what that label now
            # stands for (pred_ref); one replaced by nothing like it is recorded as rejected
            takes: dict[int, int] = {}
            virtual = [i for i in remove if fo.is_virtual(i)]
            leftover = []
            for vid in virtual:
                sug = self._open_suggestions_by_id([vid], tx)
                k = next(
                    (
                        k
                        for k, new in enumerate(add)
                        if k not in takes.values()
                        and sug
                        and str(new.kind) == str(sug[0].kind)
                        and new.frame == sug[0].frame
                    ),
                    None,
                )
                if k is None or not sug:
                    leftover.append(vid)
                else:
                    takes[vid] = k
            self._materialise(
                tx,
                leftover,
                {"state": str(r.ReviewState.REJECTED), "reviewed_by": tx.actor, "reviewed_at": tx.now},
            )
            if takes:
                self._check_open(tx, list(takes))
            pred_ref = {k: -vid for vid, k in takes.items()}
            real_remove = [i for i in remove if not fo.is_virtual(i)]
            for row in tx.session.scalars(select(s.LabelRow).where(s.LabelRow.id.in_(real_remove))).all():
                exp = expected_versions.get(row.id)
                if exp is not None and row.version != exp:
                    raise StaleWriteError(f"This {row.kind} label", row.updated_by, row.updated_at)
                tx.video_id = row.video_id
                tx.delete(row)
            out = []
            counts: dict[int, int] = {}
            for k, new in enumerate(add):
                if new.video_id not in counts:
                    counts[new.video_id] = _get(tx.session, s.VideoRow, new.video_id, "Video").frame_count
                tx.video_id = tx.video_id or new.video_id
                values = label_values(new, counts[new.video_id], tx.actor, tx.now)
                if k in pred_ref:
                    values["pred_ref"] = pred_ref[k]
                out.append(convert.label(tx.add(s.LabelRow(**values))))
            return out

        return self._write(summary, fn)

    # ------------------------------------------------------------------ open suggestions -> label rows
    def _open_suggestions_by_id(self, label_ids: Sequence[int], tx: Tx | None = None) -> list[r.Label]:
        """The open suggestions with these (negative) ids; ids reviewed or removed meanwhile are left out. In a
        write transaction (``tx``) it reads through that transaction."""
        refs = [-int(i) for i in label_ids]
        by_run: dict[int, set[int]] = {}
        for ref in refs:
            run, frame, _ = fo.split_ref(ref)
            by_run.setdefault(run, set()).add(frame)
        rows: list[tuple[Any, ...]] = []
        consumed: set[int] = set()
        for run, fs in by_run.items():
            frames = sorted(fs)
            for a in range(0, len(frames), 500):
                part = frames[a : a + 500]
                marks = ", ".join(str(int(f)) for f in part)
                sql = f"{fo.ROW_SELECT} WHERE o.run_id = {int(run)} AND o.frame IN ({marks})"
                used = f"SELECT pred_ref FROM labels WHERE run_id = {int(run)} AND frame IN ({marks}) AND pred_ref IS NOT NULL"
                if tx is None:
                    rows += self._fetch(sql, ())
                    consumed.update(x for (x,) in self._fetch(used, ()))
                else:
                    rows += [tuple(x) for x in tx.session.execute(text(sql))]
                    consumed.update(x for (x,) in tx.session.execute(text(used)))
        wanted = set(refs)
        return [x for x in fo.suggestions_from_rows(rows, consumed) if -x.id in wanted]

    def _check_open(self, tx: Tx, label_ids: Sequence[int]) -> list[r.Label]:
        found = self._open_suggestions_by_id(label_ids, tx)
        if len(found) != len(set(label_ids)):
            raise StaleWriteError("This suggestion", None, None)  # accepted, rejected or removed meanwhile
        return found

    def _materialise(self, tx: Tx, label_ids: Sequence[int], values: dict[str, Any]) -> dict[int, int]:
        """Give open suggestions their own label rows (with ``values``, e.g. the review state) in ``tx``; returns
        {suggestion id: new row id}. Refused (:class:`StaleWriteError`) when one was reviewed meanwhile."""
        if not label_ids:
            return {}
        found = self._check_open(tx, label_ids)
        rows = []
        for lab in found:
            v = fo.item_label_values(lab, -lab.id)
            v.update(
                created_by=tx.actor, created_at=tx.now, updated_by=tx.actor, updated_at=tx.now, version=1
            )
            v.update(values)
            rows.append(v)
        tx.video_id = tx.video_id or found[0].video_id
        ids = tx.insert_many(s.LabelRow, rows)
        return {lab.id: i for lab, i in zip(found, ids)}

    # ------------------------------------------------------------------ predictions
    def start_prediction_run(
        self, video_id: int, model_version_id: int | None, params: dict[str, Any] | None = None
    ) -> r.PredictionRun:
        def fn(tx: Tx) -> r.PredictionRun:
            _get(tx.session, s.VideoRow, video_id, "Video")
            row = tx.add(
                s.PredictionRunRow(video_id=video_id, model_version_id=model_version_id, params=params or {})
            )
            return convert.prediction_run(row)

        return self._write("Start prediction run", fn, video_id=video_id)

    def add_frame_predictions(
        self, run_id: int, frames: Sequence[r.FramePrediction], *, min_score: float = 0.0
    ) -> int:
        """Store a batch of frames of model output, one ``frame_outputs`` row per frame: class probabilities, and
        the masks and boxes (score >= ``min_score``), packed; they read back as open suggestions. Returns the number
        of masks and boxes stored."""
        if not frames:
            return 0
        if len(frames) > PREDICTION_TX_FRAMES:
            # in parts, each its own short transaction (frames_done counts exactly the committed frames), so a
            # reviewer's save never waits behind a long job commit
            return sum(
                self.add_frame_predictions(run_id, frames[i : i + PREDICTION_TX_FRAMES], min_score=min_score)
                for i in range(0, len(frames), PREDICTION_TX_FRAMES)
            )

        # converted and validated (every RLE decoded) before the write lock is taken, so the job's transaction only
        # inserts: a reviewer's save waits for at most that (see StoreBase._writer_turn)
        def read_run(ses: Any) -> tuple[int, int | None, int]:
            run = _get(ses, s.PredictionRunRow, run_id, "Prediction run")
            return (
                run.video_id,
                run.model_version_id,
                _get(ses, s.VideoRow, run.video_id, "Video").frame_count,
            )

        video_id, model_version_id, frame_count = self._read(read_run)
        merged: dict[int, tuple[dict[str, float], list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for f in frames:
            if not 0 <= f.frame < frame_count and (f.masks or f.boxes):
                raise InvalidInputError(
                    f"a mask or box on frame {f.frame} of run {run_id} is outside the video [0, {frame_count})"
                )
            p, ms, bs = merged.setdefault(int(f.frame), ({}, [], []))  # a frame sent twice: both outputs kept
            p.update(f.probs)
            ms += [m for m in f.masks if m.get("score") is None or float(m["score"]) >= min_score]
            bs += [b for b in f.boxes if b.get("score") is None or float(b["score"]) >= min_score]
        rows: list[dict[str, Any]] = []
        for frame, (p, ms, bs) in merged.items():
            v = fo.pack_frame(frame, p, ms, bs)
            v.update(run_id=run_id, video_id=video_id)
            rows.append(v)
        n_items = sum(v["n_masks"] + v["n_boxes"] for v in rows)

        def fn(tx: Tx) -> int:
            run = _get(tx.session, s.PredictionRunRow, run_id, "Prediction run")
            ft = s.FrameOutputRow.__table__
            stored = {
                x.frame: x
                for x in tx.session.execute(
                    select(ft.c.frame, ft.c.probs, ft.c.masks_z, ft.c.box_classes, ft.c.boxes).where(
                        ft.c.run_id == run_id, ft.c.frame.in_([v["frame"] for v in rows])
                    )
                )
            }
            fresh = [v for v in rows if v["frame"] not in stored]
            if fresh:
                tx.session.execute(insert(s.FrameOutputRow), fresh)
            for v in rows:  # more output for a frame already stored: appended (earlier items keep their ids)
                old = stored.get(v["frame"])
                if old is None:
                    continue
                f = v["frame"]
                ms, bs = [], []
                for it in fo.unpack_items(old.masks_z, old.box_classes, old.boxes):
                    d = {"label": it.class_name, "score": it.score, "track_id": it.track_id}
                    if it.rle is not None:
                        ms.append({**d, "rle": it.rle})
                    else:
                        bs.append({**d, "bbox": it.bbox})
                new = merged[f]
                both = fo.pack_frame(f, {**dict(old.probs or {}), **new[0]}, ms + new[1], bs + new[2])
                tx.session.execute(ft.update().where(ft.c.run_id == run_id, ft.c.frame == f).values(both))
            run.frames_done = run.frames_done + len(frames)
            tx.audit(
                "prediction_runs",
                run_id,
                "predict",
                None,
                {
                    "frames": [frames[0].frame, frames[-1].frame + 1],
                    "n_frames": len(frames),
                    "labels": n_items,
                },
            )
            return n_items

        return self._write("Record predictions", fn, bulk=True)

    def finish_prediction_run(
        self,
        run_id: int,
        state: str = r.RunState.FINISHED,
        suggestions: Sequence[r.NewLabel] = (),
        summary: dict[str, Any] | None = None,
    ) -> r.PredictionRun:
        """Close a run (``finished``, ``failed`` or ``cancelled``), adding run-level suggestions (segments,
        video class) derived from its per-frame output. ``summary`` (the whole-video decision, the out-of-domain
        verdict) is kept in the run's ``params["summary"]``."""
        if state not in (r.RunState.FINISHED, r.RunState.FAILED, r.RunState.CANCELLED):
            raise InvalidInputError(f"a prediction run ends finished, failed or cancelled, not {state!r}")

        def fn(tx: Tx) -> r.PredictionRun:
            run = _get(tx.session, s.PredictionRunRow, run_id, "Prediction run")
            tx.video_id = run.video_id
            n = _get(tx.session, s.VideoRow, run.video_id, "Video").frame_count
            for new in suggestions:
                tx.add(s.LabelRow(**label_values(new, n, tx.actor, tx.now)))
            extra: dict[str, Any] = (
                {"params": {**dict(run.params or {}), "summary": dict(summary)}} if summary else {}
            )
            rows = tx.session.execute(
                select(s.FrameOutputRow.frame, s.FrameOutputRow.probs, s.FrameOutputRow.best_score)
                .where(s.FrameOutputRow.run_id == run_id)
                .order_by(s.FrameOutputRow.frame)
            )
            cols = fo.summary_columns(fo.build_summary(run_id, n, rows))
            tx.update(run, None, "prediction run", state=state, finished_at=tx.now, **extra)
            # derived from the frames (not audited: a copy of what the frames hold, rebuilt when missing)
            t = s.PredictionRunRow.__table__
            tx.session.execute(t.update().where(t.c.id == run_id).values(cols))
            tx.session.expire(run)
            return convert.prediction_run(run)

        return self._write("Finish prediction run", fn)

    def list_prediction_runs(self, video_id: int) -> list[r.PredictionRun]:
        return self._read(
            lambda ses: [
                convert.prediction_run(x)
                for x in ses.scalars(
                    select(s.PredictionRunRow)
                    .where(s.PredictionRunRow.video_id == video_id)
                    .order_by(s.PredictionRunRow.id)
                )
            ]
        )

    def latest_prediction_runs(self, project_id: int) -> dict[int, r.PredictionRun]:
        """video id -> its newest prediction run, for every video of ``project_id`` that has one (one query: the
        library lists hundreds of videos)."""

        def fn(ses: Any) -> dict[int, r.PredictionRun]:
            q = (
                select(s.PredictionRunRow)
                .join(s.VideoRow, s.VideoRow.id == s.PredictionRunRow.video_id)
                .where(s.VideoRow.project_id == project_id)
                .order_by(s.PredictionRunRow.id)
            )
            return {x.video_id: convert.prediction_run(x) for x in ses.scalars(q)}

        return self._read(fn)

    def frame_probs(self, run_id: int) -> dict[int, dict[str, float]]:
        """frame -> {class: probability} of one run."""
        with self._read_conn() as conn:
            t = s.FrameOutputRow.__table__
            rows = conn.execute(select(t.c.frame, t.c.probs).where(t.c.run_id == run_id).order_by(t.c.frame))
            return {f: dict(p) for f, p in rows if p}

    def delete_prediction_run(self, run_id: int) -> None:
        """Remove a run, its per-frame probabilities and its still-``suggested`` labels (reviewed ones stay)."""

        def fn(tx: Tx) -> None:
            run = _get(tx.session, s.PredictionRunRow, run_id, "Prediction run")
            tx.video_id = run.video_id
            _purge_run(tx, run)

        self._write("Delete prediction run", fn)


def _purge_run(tx: Tx, run: s.PredictionRunRow) -> None:
    n = tx.session.execute(
        delete(s.LabelRow).where(
            s.LabelRow.run_id == run.id, s.LabelRow.state == r.ReviewState.SUGGESTED.value
        )
    ).rowcount
    n += int(
        tx.session.execute(
            select(func.coalesce(func.sum(s.FrameOutputRow.n_masks + s.FrameOutputRow.n_boxes), 0)).where(
                s.FrameOutputRow.run_id == run.id
            )
        ).scalar()
        or 0
    )
    tx.session.execute(delete(s.FrameOutputRow).where(s.FrameOutputRow.run_id == run.id))
    tx.session.execute(update(s.LabelRow).where(s.LabelRow.run_id == run.id).values(run_id=None))
    tx.audit("prediction_runs", run.id, "delete", {**convert.row_dict(run), "suggested_labels": n}, None)
    tx.session.delete(run)
    tx.session.flush()
