"""A thread-safe LRU cache of decoded frames, bounded in bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


class FrameCache:
    """``(source_key, frame_index) -> np.ndarray``; evicts least recently used frames beyond ``max_bytes``."""

    def __init__(self, max_bytes: int = 768 * 1024 * 1024) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[tuple[Hashable, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, source: Hashable, index: int) -> np.ndarray | None:
        key = (source, int(index))
        with self._lock:
            frame = self._data.get(key)
            if frame is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return frame

    def peek(self, source: Hashable, index: int) -> bool:
        """True when the frame is cached (does not count as a hit or refresh recency)."""
        with self._lock:
            return (source, int(index)) in self._data

    def put(self, source: Hashable, index: int, frame: np.ndarray) -> None:
        key = (source, int(index))
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._data[key] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= evicted.nbytes

    def drop_source(self, source: Hashable) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == source]:
                self._bytes -= self._data.pop(key).nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)
