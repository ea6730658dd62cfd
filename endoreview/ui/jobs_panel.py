"""The jobs panel: background jobs as subprocesses speaking JSON lines, read with ``QProcess``.

A job is ``python -m endoreview.jobs <kind> …`` (or any command printing one JSON object per line). Events the panel
understands: ``{"event": "progress", "done": n, "total": N, "message": ...}`` (or ``"fraction"``),
``{"event": "error", "message": ...}``, ``{"event": "done"}``; every event is also passed to the job's
``on_event`` callback so results (e.g. ``"frame"`` events) can reach the timeline as they arrive. Non-JSON output
and stderr go to the job's log, shown with the error when a job fails. The app never waits for a job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from endoreview.services.records import JobState
from endoreview.ui.icons import icon
from endoreview.ui.scale import fill_closable

log = logging.getLogger(__name__)

EventCallback = Callable[[dict], None]


@dataclass
class JobEntry:
    id: int
    title: str
    argv: list[str]
    state: str = "queued"  # queued | running | succeeded | failed | cancelled
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    log_lines: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    exit_code: int | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def log_text(self) -> str:
        return "\n".join(self.log_lines)


class Job(QObject):
    """One subprocess. Signals fire on the GUI thread (QProcess is event driven, nothing blocks)."""

    changed = Signal(object)  # JobEntry
    event = Signal(dict)
    finished = Signal(object)  # JobEntry

    _ids = 0

    def __init__(
        self,
        title: str,
        argv: list[str],
        on_event: EventCallback | None = None,
        env: dict | None = None,
        parent=None,
    ) -> None:
        super().__init__(parent)
        Job._ids += 1
        self.entry = JobEntry(Job._ids, title, list(argv))
        self._on_event = on_event
        self._buf = b""
        self._err_buf = b""
        self._cancel_requested = False
        self.low_priority = True
        self.proc = QProcess(self)
        penv = QProcessEnvironment.systemEnvironment()
        for k, v in (env or {}).items():
            penv.insert(k, v)
        penv.insert("PYTHONUNBUFFERED", "1")
        self.proc.setProcessEnvironment(penv)
        self.proc.readyReadStandardOutput.connect(self._read_stdout)
        self.proc.readyReadStandardError.connect(self._read_stderr)
        self.proc.finished.connect(self._on_finished)
        self.proc.errorOccurred.connect(self._on_error)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.proc.kill)

    def start(self) -> None:
        e = self.entry
        e.state, e.started = "running", time.time()
        argv = list(e.argv)
        if self.low_priority and os.name == "posix" and shutil.which("nice"):
            # a job may use every core (torch); at lower priority it never starves the player (``nice`` execs the
            # command, so the process, its pid and SIGTERM cancelling stay the job's own)
            argv = ["nice", "-n", "10", *argv]
        e.log_lines.append("$ " + " ".join(argv))
        self.proc.start(argv[0], argv[1:])
        self.changed.emit(e)

    def cancel(self, grace_ms: int = 3000) -> None:
        """Ask the job to stop (SIGTERM); kill it if it has not exited after ``grace_ms``."""
        if self.entry.state not in (JobState.RUNNING, JobState.QUEUED):
            return
        self._cancel_requested = True
        self.entry.message = "cancelling…"
        self.changed.emit(self.entry)
        self.proc.terminate()
        self._kill_timer.start(grace_ms)

    @property
    def running(self) -> bool:
        return self.entry.state in (JobState.QUEUED, JobState.RUNNING)

    def _read_stdout(self) -> None:
        self._buf += bytes(self.proc.readAllStandardOutput().data())
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            self._handle_line(raw.decode("utf-8", "replace").strip())

    def _read_stderr(self) -> None:
        # stderr arrives in arbitrary chunks: keep the unfinished last line until its newline (or the exit) arrives,
        # so an error message is never cut in two
        self._err_buf += bytes(self.proc.readAllStandardError().data())
        *lines, self._err_buf = self._err_buf.split(b"\n")
        self._log_stderr(lines)

    def _log_stderr(self, lines: list[bytes]) -> None:
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line.strip():
                self.entry.log_lines.append(line)

    def _handle_line(self, line: str) -> None:
        if not line:
            return
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            self.entry.log_lines.append(line)
            return
        if not isinstance(ev, dict):
            self.entry.log_lines.append(line)
            return
        e = self.entry
        kind = ev.get("event")
        if kind == "progress":
            if "total" in ev:
                e.total = int(ev.get("total") or 0)
                e.done = int(ev.get("done") or 0)
            elif "fraction" in ev:
                e.total, e.done = 1000, int(1000 * float(ev["fraction"]))
            if ev.get("message"):
                e.message = str(ev["message"])
            self.changed.emit(e)
        elif kind == "error":
            e.error = str(ev.get("message", "error"))
            e.log_lines.append("error: " + e.error)
            self.changed.emit(e)
        elif kind != "frame":
            e.log_lines.append(line[:500])
        self.event.emit(ev)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:  # a consumer bug must not kill the job reader
                log.exception("job %s: event handler failed", e.title)

    def _on_finished(self, code: int, status) -> None:
        self._kill_timer.stop()
        if self._buf:
            self._handle_line(self._buf.decode("utf-8", "replace").strip())
            self._buf = b""
        self._err_buf += bytes(self.proc.readAllStandardError().data())
        if self._err_buf:
            self._log_stderr(self._err_buf.split(b"\n"))
            self._err_buf = b""
        e = self.entry
        e.exit_code, e.finished = code, time.time()
        if self._cancel_requested:
            e.state, e.message = "cancelled", "cancelled"
        elif code == 0 and status == QProcess.ExitStatus.NormalExit and not e.error:
            e.state, e.message = "succeeded", "finished"
            if e.total:
                e.done = e.total
        else:
            e.state = "failed"
            if not e.error:
                tail = [ln for ln in e.log_lines[-5:] if not ln.startswith("$ ")]
                e.error = tail[-1] if tail else f"exited with code {code}"
            e.message = "failed"
        self.changed.emit(e)
        self.finished.emit(e)

    def _on_error(self, err) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            e = self.entry
            e.state, e.error, e.message = "failed", f"could not start {e.argv[0]}", "failed"
            e.log_lines.append(e.error)
            self.changed.emit(e)
            self.finished.emit(e)


_LONG_WORD = re.compile(r"\S{16,}")


def breakable(text: str) -> str:
    """``text`` with zero-width break opportunities inside long words (file names, paths, ids), so a wrapping label
    can be as narrow as the jobs panel instead of widening it to the longest word."""

    def soften(m: re.Match) -> str:
        word = re.sub(r"([_\-/\\.:])", "\\1\u200b", m.group(0))
        return re.sub(r"([^\u200b]{16})(?=[^\u200b])", "\\1\u200b", word)

    parts = re.split(r"(<[^>]*>)", text)  # markup stays as it is
    return "".join(x if x.startswith("<") else _LONG_WORD.sub(soften, x) for x in parts)


class JobRow(QFrame):
    def __init__(self, job: Job, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(f"<b>{breakable(job.entry.title)}</b>")
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setMinimumWidth(self.bar.fontMetrics().horizontalAdvance("1000 / 1000") + 12)
        self.status = QLabel()
        self.status.setWordWrap(True)
        for lab in (self.title, self.status):  # wrapped to the panel's width (breakable), never widening it
            lab.setMinimumWidth(1)
        self.btn_cancel = QPushButton(icon("cancel"), "Cancel")
        self.btn_cancel.clicked.connect(job.cancel)
        self.btn_log = QPushButton("Log…")
        self.btn_log.clicked.connect(self.show_log)
        # the title has the row's whole width (beside the buttons a 270 px panel cut "demo_model" to "demo_mod")
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.bar, 1)
        bar_row.addWidget(self.btn_log)
        bar_row.addWidget(self.btn_cancel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addWidget(self.title)
        lay.addLayout(bar_row)
        lay.addWidget(self.status)
        job.changed.connect(self.render)
        self.render(job.entry)

    def render(self, e: JobEntry) -> None:
        counted = bool(e.total) and e.total != 1000  # "done / total" items, else a fraction
        if e.state == JobState.SUCCEEDED:  # finished is 100 %, whatever progress the job reported on the way
            self.bar.setValue(1000)
            self.bar.setFormat(f"{e.total} / {e.total}" if counted else "100%")
        else:
            self.bar.setValue(int(1000 * e.fraction))
            self.bar.setFormat(f"{e.done} / {e.total}" if counted else f"{100 * e.fraction:.0f}%")
        text = {"queued": "waiting", "running": e.message or "running", "succeeded": "finished"}.get(
            e.state, e.message
        )
        if e.state == JobState.FAILED:
            text = f"<span style='color:#ef5350'><b>Failed:</b> {e.error}</span>"
        elif e.state == JobState.CANCELLED:
            text = "<span style='color:#bbb'>Cancelled</span>"
        self.status.setText(breakable(text))
        self.btn_cancel.setEnabled(e.state in (JobState.QUEUED, JobState.RUNNING))

    def show_log(self) -> None:
        dlg = QDialog(self)
        dlg.setWindowTitle(f"Log — {self.job.entry.title}")
        text = QPlainTextEdit(self.job.entry.log_text)
        text.setReadOnly(True)
        fill_closable(dlg, text, 720, 420)
        dlg.show()
        self._log_dialog = dlg


class JobsPanel(QWidget):
    """A list of job rows, newest on top. ``start`` launches a job; nothing here blocks."""

    jobFinished = Signal(object)  # JobEntry

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[Job] = []
        self.rows: dict[int, JobRow] = {}
        self._list = QVBoxLayout()
        self._list.addStretch(1)
        inner = QWidget()
        inner.setLayout(self._list)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # rows wrap to the panel's width (breakable); sideways scrolling would hide Cancel (seen at 1366x768)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        self.empty = QLabel("No jobs yet. “Analyse” a video to run the model in the background.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #999;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.empty)
        lay.addWidget(scroll, 1)

    def start(
        self,
        title: str,
        argv: list[str],
        on_event: EventCallback | None = None,
        env: dict[str, str] | None = None,
    ) -> Job:
        """Start ``argv`` (e.g. :meth:`JobService.command`) with extra environment ``env``."""
        job = Job(title, list(argv), on_event=on_event, env=env, parent=self)
        job.finished.connect(self.jobFinished.emit)
        row = JobRow(job)
        self.jobs.append(job)
        self.rows[job.entry.id] = row
        self._list.insertWidget(0, row)
        self.empty.setVisible(False)
        job.start()
        return job

    @property
    def running(self) -> list[Job]:
        return [j for j in self.jobs if j.running]

    def cancel_all(self) -> None:
        for j in self.running:
            j.cancel()

    def stop_all(self, grace_ms: int = 8000) -> None:
        """Stop every running job before the app quits: SIGTERM (each records ``cancelled`` after its current
        batch), wait up to ``grace_ms`` in all, then kill what is left. Blocks; used only when quitting."""
        running = self.running
        for j in running:
            j.cancel(grace_ms=grace_ms)
        deadline = time.monotonic() + grace_ms / 1000
        for j in running:
            left = max(0, int(1000 * (deadline - time.monotonic())))
            if j.proc.state() != QProcess.ProcessState.NotRunning and not j.proc.waitForFinished(left):
                j.proc.kill()
                j.proc.waitForFinished(2000)
