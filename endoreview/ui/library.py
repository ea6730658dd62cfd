"""The library: a sortable, filterable table of videos with thumbnails, status and what the model found.

Rows are :class:`LibraryRow` view models made on a worker thread from service results; the widget only renders them.
A missing or moved file is shown as such (warning icon, "missing" status), never opened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from endoreview.ui.icons import icon
from endoreview.ui.player.timecode import format_time
from endoreview.ui.scale import em


@dataclass(frozen=True)
class VideoFacts:
    """What the UI shows of any video: its id and name, where its file is and whether it is there, its frames."""

    video_id: int
    name: str
    path: str
    exists: bool
    frame_count: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class LibraryRow(VideoFacts):
    review_status: str
    reviewer: str = ""
    finding: str = ""  # e.g. "polyp in 12% of frames"
    uncertainty: float | None = None  # mean normalised entropy, 0..1
    thumb: np.ndarray | None = None  # RGB strip
    finding_detail: str = ""  # the call explained, the out-of-domain verdict (the finding's tooltip)

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0

    @property
    def status_text(self) -> str:
        return "missing file" if not self.exists else self.review_status.replace("_", " ")


COLUMNS = ("Preview", "Name", "Duration", "Resolution", "Status", "Reviewer", "Model found", "Uncertainty")
NAME_COL, FOUND_COL = 1, 6
THUMB_H = 54
STRIP_TILES = 6  # frames per thumbnail strip (endoreview.ui.proxies makes them)
SHOWN_TILES = (
    3  # tiles of the strip shown per row (2 where the table is narrow: see LibraryWidget._fit_columns)
)
MAX_STRIP_W = int(THUMB_H * 16 / 9 * SHOWN_TILES)  # the strip of three 16:9 tiles


def strip_width(tiles: int) -> int:
    """The widest preview of ``tiles`` 16:9 tiles."""
    return int(THUMB_H * 16 / 9 * tiles)


def to_pixmap(rgb: np.ndarray, height: int | None = None) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    pm = QPixmap.fromImage(img)
    if height and h != height:
        pm = pm.scaledToHeight(height, Qt.TransformationMode.SmoothTransformation)
    return pm


class LibraryModel(QAbstractTableModel):
    #: thumbnails arriving within this many ms are shown together (one repaint and one column fit for the batch)
    THUMB_BATCH_MS = 100

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[LibraryRow] = []
        self._pixmaps: dict[int, QPixmap] = {}
        self.tiles = SHOWN_TILES
        self._pending_thumbs: dict[int, np.ndarray] = {}
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(self.THUMB_BATCH_MS)
        self._thumb_timer.timeout.connect(self._apply_thumbs)

    def set_tiles(self, tiles: int) -> None:
        """Show ``tiles`` frames of each strip (the preview column's width follows)."""
        if tiles != self.tiles and self.rows:
            self.tiles = tiles
            self._pixmaps.clear()
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, 0))
        self.tiles = tiles

    def set_rows(self, rows: list[LibraryRow]) -> None:
        self.beginResetModel()
        old = {r.video_id: r.thumb for r in self.rows}
        self.rows = [
            r if r.thumb is not None or old.get(r.video_id) is None else replace(r, thumb=old[r.video_id])
            for r in rows
        ]
        self._pixmaps = {k: v for k, v in self._pixmaps.items() if any(r.video_id == k for r in self.rows)}
        self.endResetModel()

    def set_thumb(self, video_id: int, strip: np.ndarray) -> None:
        """Show ``strip`` as the video's preview, with the others that arrive within :attr:`THUMB_BATCH_MS` (a
        library of hundreds of videos gets its thumbnails one by one from the media queue: one repaint each kept
        the GUI thread busy for seconds after start-up)."""
        self._pending_thumbs[video_id] = strip
        if not self._thumb_timer.isActive():
            self._thumb_timer.start()

    def _apply_thumbs(self) -> None:
        pending, self._pending_thumbs = self._pending_thumbs, {}
        changed = []
        for k, r in enumerate(self.rows):
            strip = pending.get(r.video_id)
            if strip is not None:
                self.rows[k] = replace(r, thumb=strip)
                self._pixmaps.pop(r.video_id, None)
                changed.append(k)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), 0))

    def row_for(self, video_id: int) -> LibraryRow | None:
        return next((r for r in self.rows if r.video_id == video_id), None)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def _pixmap(self, r: LibraryRow) -> QPixmap | None:
        if r.thumb is None:
            return None
        if r.video_id not in self._pixmaps:
            strip = r.thumb
            tile_w = max(1, strip.shape[1] // STRIP_TILES)
            pm = to_pixmap(strip[:, : tile_w * self.tiles], THUMB_H)
            if pm.width() > strip_width(
                self.tiles
            ):  # a very wide video (4:1): smaller tiles, never a wider column
                pm = pm.scaledToWidth(strip_width(self.tiles), Qt.TransformationMode.SmoothTransformation)
            self._pixmaps[r.video_id] = pm
        return self._pixmaps[r.video_id]

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r, col = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.UserRole:
            return r.video_id
        if role == Qt.ItemDataRole.UserRole + 1:  # sort key
            return (
                None,
                r.name.lower(),
                r.duration,
                r.width * r.height,
                r.status_text,
                r.reviewer,
                r.finding,
                r.uncertainty if r.uncertainty is not None else -1,
            )[col]
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 1:
                return r.name
            if col == 2:
                return format_time(r.duration).split(".")[0]
            if col == 3:
                return f"{r.width}×{r.height}" if r.width else "?"
            if col == 4:
                return r.status_text
            if col == 5:
                return r.reviewer or "—"
            if col == 6:
                return r.finding or "not analysed"
            if col == 7:
                return f"{r.uncertainty:.2f}" if r.uncertainty is not None else "—"
        if role == Qt.ItemDataRole.DecorationRole:
            if col == 0:
                return self._pixmap(r) if r.exists else icon("missing")
            if col == 4 and not r.exists:
                return icon("missing")
        if role == Qt.ItemDataRole.ForegroundRole and col == 4:
            return (
                QColor("#ffb74d")
                if not r.exists
                else QColor({"reviewed": "#81c784", "in_review": "#64b5f6"}.get(r.review_status, "#dddddd"))
            )
        if role == Qt.ItemDataRole.ToolTipRole and col == FOUND_COL and r.finding:
            return "\n".join(t for t in (r.finding, r.finding_detail) if t)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                r.path
                if r.exists
                else f"File not found: {r.path}\nIt is re-linked automatically if it is imported again from its new place."
            )
        if role == Qt.ItemDataRole.SizeHintRole and col == 0:
            from PySide6.QtCore import QSize

            pm = self._pixmap(r)
            width = pm.width() if pm is not None else strip_width(self.tiles)
            return QSize(width + 8, THUMB_H + 6)
        return None


class _Filter(QSortFilterProxyModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""
        self.status = ""
        self.setSortRole(Qt.ItemDataRole.UserRole + 1)

    def filterAcceptsRow(self, source_row: int, parent: QModelIndex) -> bool:  # noqa: N802
        r: LibraryRow = self.sourceModel().rows[source_row]
        if self.text and self.text.lower() not in f"{r.name} {r.path} {r.reviewer} {r.finding}".lower():
            return False
        if self.status == "missing":
            return not r.exists
        return not self.status or r.review_status == self.status

    def lessThan(self, a: QModelIndex, b: QModelIndex) -> bool:  # noqa: N802
        va, vb = a.data(self.sortRole()), b.data(self.sortRole())
        try:
            return va < vb
        except TypeError:
            return str(va) < str(vb)


class LibraryWidget(QWidget):
    openRequested = Signal(int)  # video id
    filesDropped = Signal(list)  # paths
    demoRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = LibraryModel(self)
        self.proxy = _Filter(self)
        self.proxy.setSourceModel(self.model)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name, path, reviewer, finding…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter_changed)
        self.status_filter = QComboBox()
        for text, value in (
            ("All videos", ""),
            ("Unreviewed", "unreviewed"),
            ("In review", "in_review"),
            ("Reviewed", "reviewed"),
            ("Missing files", "missing"),
        ):
            self.status_filter.addItem(text, value)
        self.status_filter.currentIndexChanged.connect(self._filter_changed)
        self.count = QLabel()
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(self.status_filter)
        bar.addWidget(self.count)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB_H + 8)
        self.table.setIconSize(
            self.model.data(self.model.index(0, 0), Qt.ItemDataRole.SizeHintRole) or self.table.iconSize()
        )
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long name keeps its start and its end
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # the preview fits its widest strip too, but measured by _fit_preview over its own column only: with
        # ResizeToContents every thumbnail that arrived re-measured every cell of every column (O(videos) each)
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        hh.setSectionResizeMode(NAME_COL, QHeaderView.ResizeMode.Interactive)  # sized by _fit_columns
        hh.setSectionResizeMode(FOUND_COL, QHeaderView.ResizeMode.Stretch)
        hh.setMinimumSectionSize(em(self, 4))
        self._fit_pending = False  # the columns are to be fitted once the (hidden) library is shown
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self._fit_columns)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(0)
        self._preview_timer.timeout.connect(self._fit_preview)
        self.model.dataChanged.connect(lambda *_: self._preview_timer.start())
        self.model.modelReset.connect(self._preview_timer.start)
        # the previews (column 0) changing leaves the text columns' widths as they are: a thumbnail batch re-measured
        # the names and findings of every row (~0.1 s for 200 videos, while the first video was opening)
        self.model.dataChanged.connect(lambda tl, br, *_: br.column() > 0 and self._fit_timer.start())
        self.model.modelReset.connect(self._fit_timer.start)
        hh.sectionResized.connect(
            lambda col, *_: col not in (NAME_COL, FOUND_COL) and self._fit_timer.start()
        )
        self.table.viewport().installEventFilter(self)  # a scroll bar appearing narrows it
        self.table.doubleClicked.connect(self._open)
        self.notice = QLabel()
        self.notice.setObjectName("libraryNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color:#ffb74d; padding: 4px;")
        self.notice.setVisible(False)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color:#bbb; font-size: 13pt; padding: 24px;")
        self.demo_button = QPushButton(icon("demo"), "Open the demo (synthetic endoscopy videos)")
        self.demo_button.clicked.connect(self.demoRequested.emit)
        self.demo_button.setVisible(False)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.notice)
        lay.addWidget(self.table, 1)
        self.empty_box = QWidget()
        box = QVBoxLayout(self.empty_box)
        box.addStretch(1)
        box.addWidget(self.empty)
        box.addWidget(self.demo_button, 0, Qt.AlignmentFlag.AlignHCenter)
        box.addStretch(2)
        lay.addWidget(self.empty_box, 1)
        self.setAcceptDrops(True)
        self.set_empty_text("Loading library…")
        self._preview_timer.start()

    def set_notice(self, text: str) -> None:
        """A persistent line above the table (e.g. "demo model not installed", the research-use notice)."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def set_empty_text(self, text: str, offer_demo: bool = False) -> None:
        self.empty.setText(text)
        self.empty.setVisible(bool(text) and not self.model.rows)
        self.table.setVisible(bool(self.model.rows))  # an empty grid of headers only distracts
        self.empty_box.setVisible(not self.model.rows)
        self.demo_button.setVisible(offer_demo and not self.model.rows)

    def set_rows(self, rows: list[LibraryRow]) -> None:
        from PySide6.QtCore import QSize

        self.model.set_rows(rows)
        self.table.setIconSize(QSize(strip_width(SHOWN_TILES), THUMB_H))
        self.empty.setVisible(not rows)
        self.table.setVisible(bool(rows))
        self.empty_box.setVisible(not rows)
        self.demo_button.setVisible(False)
        if not rows:
            self.empty.setText(
                "The library is empty. Import videos (Ctrl+I), drop files here, or open the built-in demo."
            )
        self._update_count()

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        if self._fit_pending:
            self._fit_timer.start()

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802
        if ev.type() == QEvent.Type.Resize and obj is self.table.viewport():
            self._fit_timer.start()
        return super().eventFilter(obj, ev)

    def _fit_preview(self) -> None:
        """The preview column as wide as its header and its widest strip (what ResizeToContents measures, for
        this column alone)."""
        hh = self.table.horizontalHeader()
        want = max(hh.minimumSectionSize(), hh.sectionSizeHint(0), self.table.sizeHintForColumn(0))
        if want != hh.sectionSize(0):
            hh.resizeSection(0, want)

    def _fit_columns(self) -> None:
        """The name gets what the other columns leave: long names are elided in the middle (the tooltip has the
        path) so that "Model found" and "Uncertainty" always stay in view (issue 22.7: at 1366 px with the jobs panel
        open they were pushed off-screen); where even a short name would not fit, the previews show two frames."""
        if not self.isVisible():  # measured when the library is shown again (showEvent)
            self._fit_pending = True
            return
        self._fit_pending = False
        hh = self.table.horizontalHeader()
        fm = hh.fontMetrics()

        def need(col: int) -> int:
            head = fm.horizontalAdvance(COLUMNS[col]) + em(self, 2)  # the header's text and sort arrow
            return max(head, self.table.sizeHintForColumn(col))

        fixed = [c for c in range(len(COLUMNS)) if c not in (0, NAME_COL, FOUND_COL)]
        rest = self.table.viewport().width() - sum(hh.sectionSize(c) for c in fixed) - need(FOUND_COL)
        preview = hh.sectionSize(0) * SHOWN_TILES // self.model.tiles  # the preview's width at three tiles
        tiles = SHOWN_TILES if rest - preview >= em(self, 12) else SHOWN_TILES - 1
        if tiles != self.model.tiles:
            self.model.set_tiles(tiles)  # the preview column resizes to its contents, then this runs again
            return
        room = rest - hh.sectionSize(0)
        hh.resizeSection(NAME_COL, max(em(self, 8), min(need(NAME_COL), room)))

    def _update_count(self) -> None:
        missing = sum(1 for r in self.model.rows if not r.exists)
        text = f"{self.proxy.rowCount()} of {len(self.model.rows)} videos"
        self.count.setText(text + (f" · {missing} missing" if missing else ""))

    def _filter_changed(self) -> None:
        self.proxy.text = self.search.text().strip()
        self.proxy.status = self.status_filter.currentData() or ""
        self.proxy.invalidate()
        self._update_count()

    def selected_ids(self) -> list[int]:
        rows = {ix.row() for ix in self.table.selectionModel().selectedRows()}
        return [self.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole) for r in sorted(rows)]

    def _open(self, index: QModelIndex) -> None:
        self.openRequested.emit(int(index.data(Qt.ItemDataRole.UserRole)))

    def dragEnterEvent(self, ev) -> None:  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.filesDropped.emit(paths)
            ev.acceptProposedAction()
