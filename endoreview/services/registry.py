"""The model registry: what a user can do with model versions, as plain Python (no Qt, no torch at import).

```python
reg = RegistryService(store)
mv = reg.register("runs/ft1/model", parent_id=1, activate=True)      # copies the files under the data dir
reg.activate(mv.id); reg.rollback(); reg.delete(mv.id)
cmp = reg.compare(a_id, b_id, "heldout/manifest.json", split="test")  # metric table + frames that disagree
mv = reg.import_official("endo_fm.pth")                               # through ``endofm convert``
```

* A version records its parent, data snapshot (manifest path, digest, videos, label counts), hyper-parameters,
  held-out metrics and date (``created_at``). ``register`` fills what it is not given from the model directory's
  ``model.json`` provenance (written by ``endofm finetune``).
* Files: ``register`` copies the model directory into ``<data dir>/models/<name>`` so the registry owns them
  (``copy=False`` keeps the directory where it is, e.g. the bundled demo model). ``delete`` removes copied files,
  never files the registry does not own; the active version cannot be deleted (activate another one first).
* ``rollback`` re-activates the parent of the active version.
* ``compare`` evaluates both versions on the same held-out videos (in this process; the UI runs it as a job) and
  lists the metric table and the frames where the two disagree (a detection on one side only, a mask on one side
  only or whose Dice differs by more than ``dice_gap``, a different video-level class).
* ``import_official`` runs the converter (``python -m core_model convert``) as a subprocess and says plainly when
  the file is not an Endo-FM checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core_model.contract import (
    MODEL_FORMAT,
    CheckpointError,
    ModelMeta,
    migrate_model_json,
    model_json_object,
)
from endoreview.paths import models_dir
from endoreview.services.jobs import core_model_command
from endoreview.store import Store
from endoreview.store.records import ModelVersion

log = logging.getLogger(__name__)


class RegistryError(Exception):
    """A registry action that cannot be done; the message says why, for the user."""


@dataclass(frozen=True)
class MetricRow:
    metric: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class Disagreement:
    video: str
    frame: int  # -1: the whole video (classification)
    a: dict[str, Any]
    b: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Comparison:
    a: ModelVersion
    b: ModelVersion
    manifest: str
    split: str
    rows: tuple[MetricRow, ...]
    disagreements: tuple[Disagreement, ...]
    frames_compared: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The comparison as the JSON that ``endoreview models compare --out`` and the compare job write."""
        from dataclasses import asdict

        def version(mv: ModelVersion) -> dict[str, Any]:
            d = asdict(mv)
            d["created_at"] = mv.created_at.isoformat(timespec="seconds") if mv.created_at else None
            return d

        return {
            "a": version(self.a),
            "b": version(self.b),
            "manifest": self.manifest,
            "split": self.split,
            "metrics": [{"metric": r.metric, "a": r.a, "b": r.b, "delta": r.delta} for r in self.rows],
            "disagreements": [asdict(d) for d in self.disagreements],
            "frames_compared": self.frames_compared,
        }

    def table(self) -> str:
        """The metric table as aligned text (for the CLI and logs)."""
        w = max([len(r.metric) for r in self.rows] + [6])
        lines = [f"{'metric':<{w}}  {self.a.name[:14]:>14}  {self.b.name[:14]:>14}  {'change':>8}"]
        for r in self.rows:
            fa = "-" if r.a is None else f"{r.a:.4f}"
            fb = "-" if r.b is None else f"{r.b:.4f}"
            d = "" if r.delta is None else f"{r.delta:+.4f}"
            lines.append(f"{r.metric:<{w}}  {fa:>14}  {fb:>14}  {d:>8}")
        return "\n".join(lines)


def read_model_json(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``model.json`` of a model directory, checked to be one of ours; ``RegistryError`` says what is wrong."""
    d = Path(model_dir)
    if not d.is_dir():
        raise RegistryError(f"{d}: no such model directory")
    try:
        meta_path, meta = model_json_object(d)
    except CheckpointError as exc:
        raise RegistryError(str(exc)) from None
    if meta.get("format") != MODEL_FORMAT:
        raise RegistryError(f"{meta_path}: not an EndoReview model (format {meta.get('format')!r})")
    try:  # the model contract's checks (and the migration of format-1 files), without torch
        meta = migrate_model_json(meta, str(meta_path))
        ModelMeta.from_dict(meta, str(meta_path))
    except CheckpointError as exc:
        raise RegistryError(str(exc)) from None
    weights = (meta.get("weights") or {}).get("file", "model.safetensors")
    if not (d / weights).is_file():
        raise RegistryError(f"{d}: weights file {weights} is missing")
    return meta


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s[:60] or "model"


class RegistryService:
    def __init__(self, store: Store, root: str | os.PathLike | None = None):
        self.store = store
        self.root = Path(root) if root is not None else models_dir()

    # ------------------------------------------------------------------ queries
    def list(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        return self.store.list_model_versions()

    def get(self, ref: int | str) -> ModelVersion:
        """A version by id or name."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.store.get_model_version(int(ref))
        mv = self.store.find_model_version(str(ref))
        if mv is None:
            raise RegistryError(f"no model version named {ref!r}")
        return mv

    def active(self) -> ModelVersion | None:
        return self.store.active_model_version()

    def lineage(self, ref: int | str) -> list[ModelVersion]:
        """The version and its ancestors, newest first."""
        out = [self.get(ref)]
        seen = {out[0].id}
        while out[-1].parent_id is not None and out[-1].parent_id not in seen:
            out.append(self.store.get_model_version(out[-1].parent_id))
            seen.add(out[-1].id)
        return out

    def owns(self, mv: ModelVersion) -> bool:
        try:
            return Path(mv.files_dir).resolve().is_relative_to(self.root.resolve())
        except OSError:
            return False

    # ------------------------------------------------------------------ changes
    def register(
        self,
        model_dir: str | os.PathLike,
        *,
        name: str | None = None,
        parent_id: int | None = None,
        data_snapshot: Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        notes: str = "",
        activate: bool = False,
        copy: bool = True,
    ) -> ModelVersion:
        """Register ``model_dir`` as a new version. Unset fields come from its ``model.json`` provenance."""
        meta = read_model_json(model_dir)
        prov = meta.get("provenance") or {}
        arch = meta.get("arch") or {}
        architecture = str(arch.get("name", "unknown"))[:100]
        taken = {mv.name for mv in self.store.list_model_versions()}
        base = name or _slug(f"{architecture}-{prov.get('kind', 'model')}-{datetime.now(UTC):%Y%m%d-%H%M%S}")
        if name and name in taken:
            raise RegistryError(f"a model version named {name!r} already exists")
        final, i = base, 2
        while final in taken:
            final, i = f"{base}-{i}", i + 1
        if data_snapshot is None:
            data_snapshot = {
                k: prov[k] for k in ("manifest", "manifest_sha256_16", "manifest_source") if k in prov
            }
        if hyperparameters is None:
            hyperparameters = prov.get("config") or {}
        if metrics is None:
            metrics = prov.get("metrics") or {}
        files_dir = Path(model_dir).resolve()
        _refuse_links(files_dir)
        if copy:
            dest = self.root / _slug(final)
            if dest.exists():
                raise RegistryError(f"{dest} already exists; choose another name")
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".partial", dir=self.root))
            try:
                # symlinks=True: a link that appeared after the check is copied as a link, never followed
                shutil.copytree(files_dir, tmp, symlinks=True, dirs_exist_ok=True)
                os.replace(tmp, dest)
            except BaseException as e:
                shutil.rmtree(tmp, ignore_errors=True)  # no .partial folder stays behind
                if isinstance(e, OSError):
                    raise RegistryError(f"copying {files_dir} into the registry failed: {e}") from e
                raise
            files_dir = dest
        try:
            mv = self.store.add_model_version(
                final,
                architecture=architecture,
                files_dir=str(files_dir),
                parent_id=parent_id,
                data_snapshot=dict(data_snapshot),
                hyperparameters=dict(hyperparameters),
                metrics=dict(metrics),
                notes=notes,
                activate=activate,
            )
        except Exception:
            if copy:
                shutil.rmtree(files_dir, ignore_errors=True)  # nothing half-registered stays behind
            raise
        log.info("registered model version %d (%s) from %s", mv.id, mv.name, model_dir)
        return mv

    def activate(self, ref: int | str) -> ModelVersion:
        mv = self.get(ref)
        read_model_json(mv.files_dir)  # never activate a version whose files are gone
        return self.store.activate_model_version(mv.id)

    def rollback(self) -> ModelVersion:
        """Activate the parent of the active version."""
        cur = self.active()
        if cur is None:
            raise RegistryError("no active model version to roll back from")
        if cur.parent_id is None:
            raise RegistryError(f"{cur.name} has no parent version to roll back to")
        return self.activate(cur.parent_id)

    def delete(self, ref: int | str, delete_files: bool = True) -> None:
        mv = self.get(ref)
        if mv.is_active:
            raise RegistryError(f"{mv.name} is the active model; activate another version before deleting it")
        children = [c.name for c in self.list() if c.parent_id == mv.id]
        self.store.delete_model_version(mv.id)
        if delete_files and self.owns(mv):
            shutil.rmtree(mv.files_dir, ignore_errors=True)
        log.info("deleted model version %d (%s); children %s keep their files", mv.id, mv.name, children)

    def import_official(
        self,
        checkpoint: str | os.PathLike,
        *,
        name: str | None = None,
        activate: bool = False,
        fp16: bool = False,
        runner: Callable[[list[str]], subprocess.CompletedProcess] | None = None,
    ) -> ModelVersion:
        """Convert an official Endo-FM checkpoint (``endo_fm.pth``, the fine-tuned PolypDiag file, ...) and register
        it. A file that is not one raises ``RegistryError`` with the converter's reason."""
        src = Path(checkpoint)
        if not src.exists():
            raise RegistryError(f"{src}: no such file")
        final = name or _slug(src.stem)
        if self.store.find_model_version(final) is not None:
            raise RegistryError(f"a model version named {final!r} already exists")
        dest = self.root / _slug(final)
        if dest.exists():
            raise RegistryError(f"{dest} already exists; choose another name")
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = core_model_command("convert", str(src), "-o", str(tmp), "--force")
        if fp16:
            cmd.append("--fp16")
        run = runner or (lambda c: subprocess.run(c, capture_output=True, text=True, check=False))
        try:
            proc = run(cmd)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            reason = (proc.stderr or proc.stdout or "").strip().splitlines()
            msg = reason[-1] if reason else f"converter exited with {proc.returncode}"
            msg = msg.removeprefix("endofm convert: ")
            raise RegistryError(f"{src.name} is not a usable Endo-FM checkpoint: {msg}")
        try:
            _refuse_links(tmp)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            meta = read_model_json(dest)
            prov = meta.get("provenance") or {}
            return self.store.add_model_version(
                final,
                architecture=str((meta.get("arch") or {}).get("name", "unknown"))[:100],
                files_dir=str(dest),
                data_snapshot={"source_file": str(src.resolve())},
                hyperparameters={},
                metrics={},
                notes=f"imported from {src.name} ({prov.get('source', 'official checkpoint')})",
                activate=activate,
            )
        except Exception:
            shutil.rmtree(dest, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ comparison
    def evaluate(self, ref: int | str, manifest: str | os.PathLike, split: str = "test", **kw: Any) -> dict:
        """Held-out metrics and per-frame outcomes of one version (``core_model``, loaded lazily)."""
        from core_model.finetune.evaluation import evaluate_model_dir

        mv = self.get(ref)
        read_model_json(mv.files_dir)
        return evaluate_model_dir(mv.files_dir, manifest, split, **kw).to_json()

    def compare(
        self,
        a_ref: int | str,
        b_ref: int | str,
        manifest: str | os.PathLike,
        split: str = "test",
        dice_gap: float = 0.3,
        evaluator: Callable[[ModelVersion, str, str], dict] | None = None,
        record: bool = False,
    ) -> Comparison:
        """Both versions on the same videos. ``record`` stores each side's metrics on its version."""
        a, b = self.get(a_ref), self.get(b_ref)
        ev = evaluator or (lambda mv, m, s: self.evaluate(mv.id, m, s))
        ra, rb = ev(a, str(manifest), split), ev(b, str(manifest), split)
        ma, mb = ra["metrics"], rb["metrics"]
        keys = sorted(set(ma) | set(mb), key=lambda k: (k.split("/")[0], k))
        rows = tuple(MetricRow(k, ma.get(k), mb.get(k)) for k in keys)
        dis: list[Disagreement] = []
        n = 0
        for video in sorted(set(ra["frames"]) | set(rb["frames"])):
            fa, fb = ra["frames"].get(video, {}), rb["frames"].get(video, {})
            for fr in sorted(set(fa) | set(fb), key=int):
                x, y = fa.get(fr, {}), fb.get(fr, {})
                n += 1
                reason = _disagree(x, y, dice_gap)
                if reason:
                    dis.append(Disagreement(video, int(fr), x, y, reason))
        if record:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            for mv, m in ((a, ma), (b, mb)):
                metrics = dict(mv.metrics)
                metrics.setdefault("evaluations", []).append(
                    {"manifest": str(manifest), "split": split, "at": stamp, "metrics": m}
                )
                self.store.update_model_version(mv.id, metrics=metrics)
        return Comparison(a, b, str(manifest), split, rows, tuple(dis), n)


def _disagree(x: dict[str, Any], y: dict[str, Any], dice_gap: float) -> str:
    if "video_pred" in x or "video_pred" in y:
        if x.get("video_pred") != y.get("video_pred"):
            return "video class"
        return ""
    if "det_hit" in x or "det_hit" in y:
        if bool(x.get("det_hit")) != bool(y.get("det_hit")):
            return "detection on one side only"
    if "mask_pixels" in x or "mask_pixels" in y:
        pa, pb = int(x.get("mask_pixels", 0)), int(y.get("mask_pixels", 0))
        if (pa > 0) != (pb > 0):
            return "mask on one side only"
        if abs(float(x.get("dice", 0.0)) - float(y.get("dice", 0.0))) > dice_gap:
            return "mask Dice differs"
    return ""


def _refuse_links(folder: Path) -> None:
    """A model folder holds regular files and folders only: a symbolic link (which could pull ``/etc`` or a home
    folder into the registry) or a device/FIFO is refused, naming it."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise RegistryError(f"{p}: is a symbolic link; model folders must hold plain files only")
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise RegistryError(f"{p}: is not a regular file; model folders must hold plain files only")
