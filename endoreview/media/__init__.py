"""Qt-free, database-free media layer for the player.

* :mod:`endoreview.media.guard` — refuses (or records) blocking work on the GUI thread.
* :mod:`endoreview.media.cache` — a byte-bounded LRU frame cache.
* :mod:`endoreview.media.frameserver` — background decode threads with read-ahead around the playhead.
* :mod:`endoreview.media.proxy` — a seek-friendly, display-resolution proxy (short GOP H.264 via PyAV) and its reader.
* :mod:`endoreview.media.thumbs` — thumbnail strips.

Nothing here imports Qt, SQLAlchemy or torch.
"""
