"""The video library: import, list/filter/search, relink moved files, review status, reviewer, removal.

Paths: where the workstation has a *library root* (a folder setting, not stored in the database) a video under
it is stored relative to it, so a team sharing one PostgreSQL database can mount the videos anywhere. Videos are
recognised by content (:mod:`endoreview.services.hashing`): importing a file already in the project returns the
existing video; :meth:`LibraryService.relink` finds moved files by hash. Logs name videos by id, never by path
(file names often carry patient identifiers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endoreview.media.masks import mask_only_reason
from endoreview.services.hashing import IMAGE_SUFFIXES, content_hash, legacy_folder_hashes
from endoreview.store import Store, StoreError
from endoreview.store.records import ReviewStatus, Video

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class VideoImportError(Exception):
    """A file could not be imported; the message names the file and the reason."""


@dataclass(frozen=True)
class ImportResult:
    imported: tuple[Video, ...]
    already_present: tuple[Video, ...]
    failed: tuple[tuple[str, str], ...]  # (path, reason)


def read_metadata(path: Path) -> dict[str, Any]:
    """frame_count, fps, width, height, codec (+ duration, rotation …) via core_model's reader, else PyAV."""
    try:
        from core_model.video import VideoError, read_meta
    except ImportError:  # core_model.video missing: read the container header with PyAV
        return _pyav_metadata(path)
    try:
        m = read_meta(path)  # the reader's own metadata, without opening a decoder (import returns sooner)
    except VideoError as e:
        raise VideoImportError(str(e)) from e
    return {
        "frame_count": int(m.frame_count),
        "fps": float(m.fps),
        "width": int(m.width),
        "height": int(m.height),
        "codec": str(m.codec or ""),
        "meta": {
            "duration": float(m.duration),
            "rotation": int(getattr(m, "rotation", 0)),
            "is_image_sequence": bool(getattr(m, "is_image_sequence", False)),
            "variable_frame_rate": bool(getattr(m, "variable_frame_rate", False)),
            "name": path.name,
        },
    }


def _check_frame_size(path: Path, md: dict[str, Any]) -> None:
    """Refuse frames beyond the import limits (a 339 KB file can declare 12000 x 12000 frames, 2 GB decoded each)."""
    from endoreview.interchange.limits import InterchangeError, check_image_size

    try:
        check_image_size(path, md["width"], md["height"], field="frame size")
    except InterchangeError as e:
        raise VideoImportError(f"{e}; not imported") from None


def _pyav_metadata(path: Path) -> dict[str, Any]:
    import av

    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            fps = float(s.average_rate or 0) or 30.0
            n = s.frames or int(round(float(c.duration or 0) / 1e6 * fps))
            return {
                "frame_count": int(n),
                "fps": fps,
                "width": int(s.codec_context.width),
                "height": int(s.codec_context.height),
                "codec": s.codec_context.name,
                "meta": {"duration": float(c.duration or 0) / 1e6, "name": path.name},
            }
    except (av.FFmpegError, IndexError, OSError) as e:
        raise VideoImportError(f"{path}: not a readable video ({e})") from e


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES


def _is_image_folder(p: Path) -> bool:
    return p.is_dir() and any(x.suffix.lower() in IMAGE_SUFFIXES for x in p.iterdir())


class LibraryService:
    """``library_root``: this workstation's library folder (paths under it are stored relative)."""

    def __init__(self, store: Store, library_root: str | os.PathLike | None = None):
        self.store = store
        self.library_root = Path(library_root).resolve() if library_root else None

    # ------------------------------------------------------------------ paths
    def _stored_path(self, path: Path) -> tuple[str, bool]:
        path = path.resolve()
        if self.library_root is not None:
            try:
                return path.relative_to(self.library_root).as_posix(), True
            except ValueError:
                pass
        return str(path), False

    def resolve_path(self, video: Video) -> Path:
        """Where the video's file is on this workstation."""
        if video.path_is_relative:
            if self.library_root is None:
                raise VideoImportError(
                    f"video {video.id} is stored relative to a library root; set this workstation's library folder"
                )
            return self.library_root / video.path
        return Path(video.path)

    def is_missing(self, video: Video) -> bool:
        try:
            return not self.resolve_path(video).exists()
        except VideoImportError:
            return True

    # ------------------------------------------------------------------ import
    def import_video(self, project_id: int, path: str | os.PathLike) -> tuple[Video, bool]:
        """Import one video file or image-sequence folder. Returns (video, created); a file whose content is
        already in the project returns the existing video (relinked if it had moved, restored if removed)."""
        p = Path(path).expanduser()
        if not p.exists():
            raise VideoImportError(f"{p}: does not exist")
        if p.is_dir():
            md = read_metadata(
                p
            )  # the frame size (from image headers) is checked before any image is decoded
            _check_frame_size(p, md)
            if (why := mask_only_reason(p)) is not None:
                raise VideoImportError(why)
        digest = content_hash(p)
        for existing in self._with_hash(project_id, p, digest):
            video = existing
            if existing.removed_at is not None:
                video = self.store.restore_video(existing.id)
            if self.is_missing(video):
                video = self._relink(video, p)
            return video, False
        md = read_metadata(p)
        _check_frame_size(p, md)
        stored, relative = self._stored_path(p)
        video = self.store.add_video(
            project_id,
            path=stored,
            path_is_relative=relative,
            content_hash=digest,
            size_bytes=_size(p),
            frame_count=md["frame_count"],
            fps=md["fps"],
            width=md["width"],
            height=md["height"],
            codec=md["codec"],
            meta=md["meta"],
        )
        log.info("imported video %d (%d frames)", video.id, video.frame_count)
        return video, True

    def _with_hash(self, project_id: int, p: Path, digest: str) -> list[Video]:
        """Videos (removed ones too) of ``p``'s content: by its hash, or by a legacy ``f1`` folder hash, which is
        then rewritten to ``digest`` (see :mod:`endoreview.services.hashing`)."""
        found = self.store.list_videos(project_id, content_hash=digest, include_removed=True)
        if found or not p.is_dir():
            return found
        for old in sorted(legacy_folder_hashes(p)):
            for v in self.store.list_videos(project_id, content_hash=old, include_removed=True):
                found.append(self.store.update_video(v.id, v.version, content_hash=digest))
        return found

    def migrate_folder_hashes(self, project_id: int | None = None) -> int:
        """Rewrite the legacy ``f1`` hashes of image-sequence videos whose folder is reachable to the deterministic
        ``f2`` scheme; a folder whose content no longer matches keeps its hash. Returns how many were rewritten."""
        done = 0
        for v in self.store.list_videos(project_id, include_removed=True):
            if not v.content_hash.startswith("f1:"):
                continue
            try:
                p = self.resolve_path(v)
                if not p.is_dir() or v.content_hash not in legacy_folder_hashes(p):
                    continue
                self.store.update_video(v.id, v.version, content_hash=content_hash(p))
                done += 1
            except (VideoImportError, OSError, StoreError) as e:
                log.warning("video %d: folder hash not migrated (%s)", v.id, e)
        if done:
            log.info("migrated %d image-sequence folder hash(es) to the deterministic scheme", done)
        return done

    def import_paths(self, project_id: int, paths: Iterable[str | os.PathLike]) -> ImportResult:
        """Import files and folders (folders: every video inside, recursively; an image folder is one video).
        One bad file never stops the rest; each failure is reported with its reason."""
        imported, present, failed = [], [], []
        for p in self._expand(paths):
            try:
                video, created = self.import_video(project_id, p)
            except (VideoImportError, OSError) as e:
                failed.append((str(p), str(e)))
                continue
            (imported if created else present).append(video)
        return ImportResult(tuple(imported), tuple(present), tuple(failed))

    def _expand(self, paths: Iterable[str | os.PathLike]) -> list[Path]:
        out: list[Path] = []
        for raw in paths:
            p = Path(raw).expanduser()
            if p.is_dir() and not _is_image_folder(p):
                for root, dirs, files in os.walk(p):
                    dirs.sort()
                    r = Path(root)
                    out.extend(r / f for f in sorted(files) if _is_video(r / f))
                    out.extend(r / d for d in dirs if _is_image_folder(r / d))
            else:
                out.append(p)
        return out

    # ------------------------------------------------------------------ listing
    def list_videos(
        self,
        project_id: int | None = None,
        *,
        status: ReviewStatus | str | None = None,
        assigned_to: str | None = None,
        search: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Video]:
        """Filter by review status / assigned reviewer; ``search`` matches path, codec or metadata."""
        return self.store.list_videos(
            project_id, status=status, assigned_to=assigned_to, search=search, offset=offset, limit=limit
        )

    def missing_videos(self, project_id: int | None = None) -> list[Video]:
        return [v for v in self.store.list_videos(project_id) if self.is_missing(v)]

    # ------------------------------------------------------------------ relinking
    def _relink(self, video: Video, new_path: Path) -> Video:
        stored, relative = self._stored_path(new_path)
        log.info("relinked video %d", video.id)
        return self.store.update_video(video.id, video.version, path=stored, path_is_relative=relative)

    def relink_video(self, video_id: int, new_path: str | os.PathLike) -> Video:
        """Point a video at a new file; refused unless the file has the same content hash."""
        video = self.store.get_video(video_id)
        p = Path(new_path)
        if content_hash(p) != video.content_hash and video.content_hash not in legacy_folder_hashes(p):
            raise VideoImportError(f"{p}: not the same recording as video {video_id} (content differs)")
        if video.content_hash.startswith("f1:"):
            video = self.store.update_video(video.id, video.version, content_hash=content_hash(p))
        return self._relink(video, p)

    def relink(self, search_dirs: Sequence[str | os.PathLike], project_id: int | None = None) -> list[Video]:
        """Find the files of missing videos under ``search_dirs`` by content hash; returns the relinked videos."""
        missing = {v.content_hash: v for v in self.missing_videos(project_id)}
        if not missing:
            return []
        sizes = {v.size_bytes for v in missing.values()}
        done = []
        for p in self._expand(search_dirs):
            if not missing:
                break
            if p.is_file() and _size(p) not in sizes:
                continue  # cheap pre-filter: the size is part of the hash
            digest = content_hash(p)
            if digest in missing:
                done.append(self._relink(missing.pop(digest), p))
                continue
            legacy = next((h for h in legacy_folder_hashes(p) if h in missing), None)
            if legacy is not None:
                video = missing.pop(legacy)
                video = self.store.update_video(video.id, video.version, content_hash=digest)
                done.append(self._relink(video, p))
        return done

    # ------------------------------------------------------------------ review status and reviewer
    def set_review_status(
        self, video_id: int, status: ReviewStatus | str, expected_version: int | None = None
    ) -> Video:
        return self.store.update_video(video_id, expected_version, review_status=ReviewStatus(status))

    def assign_reviewer(
        self, video_id: int, reviewer: str | None, expected_version: int | None = None
    ) -> Video:
        return self.store.update_video(video_id, expected_version, assigned_reviewer=reviewer)

    # ------------------------------------------------------------------ removal
    def remove_video(self, video_id: int, *, purge_labels: bool = False) -> dict[str, int]:
        """Remove a video: predictions and derived cache files (proxies, thumbnails) go; labels only when
        ``purge_labels``. The video file itself is never deleted."""
        video = self.store.get_video(video_id)
        try:
            source = self.resolve_path(video)
        except VideoImportError:
            source = None
        counts = self.store.remove_video(video_id, purge_labels=purge_labels)
        counts["cache_files"] = purge_cache_files(source) if source is not None else 0
        log.info("removed video %d (%s)", video_id, counts)
        return counts


def purge_cache_files(source: Path) -> int:
    """Delete the proxy (+ side-car) and thumbnail strips derived from ``source``; returns how many files."""
    from endoreview.paths import cache_dir

    removed = 0
    candidates: list[Path] = []
    try:
        from endoreview.media.proxy import default_proxy_path

        proxy = default_proxy_path(source)
        candidates += [proxy, proxy.with_suffix(".proxy.json")]
    except ImportError:  # media package not installed (headless tools): nothing of it can exist
        pass
    thumbs = cache_dir() / "thumbnails"
    if thumbs.is_dir():
        # strips are named <stem[:40]>-<hash of path, size, mtime, layout>.png; the layout is not known here, so
        # every strip of that stem goes (a strip of another file with the same stem is only rebuilt, never lost)
        candidates += list(thumbs.glob(f"{_glob_escape(source.stem[:40])}-*.png"))
    for c in candidates:
        try:
            c.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _glob_escape(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in s)


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(x.stat().st_size for x in p.iterdir() if x.is_file())
    return p.stat().st_size
