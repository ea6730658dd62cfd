"""How much nicer than the GUI thread the app's background threads run (Linux: a thread's nice value is its own,
and threads it starts inherit it; elsewhere nothing changes).

On a 2-core machine, opening a 30-minute video ran the GUI thread beside two decoders, the track and label reads
and the proxy build: at one priority, each paint and callback of the open waited its turn for a core. The reads
the GUI waits on (tracks, labels, the library's rows) run a little nicer than it; the work nobody waits on (proxies,
thumbnails) as nice as it gets, so that it only takes what is left. The decoders stay at the GUI thread's
priority: playback is real time (at 5 nicer, 8 of 21 four-second plays beside the proxy build were late on 1-7
frames; at the GUI thread's priority, 1 of 24, on 2 frames).
"""

from __future__ import annotations

import os
import threading

#: reading tracks, labels and the library: what the screen waits on, after the GUI thread itself
READ_NICE = 5
#: proxies and thumbnails: minutes of work nobody waits on
BACKGROUND_NICE = 19


def lower_priority(nice: int) -> None:
    """Run the calling thread, and the threads and processes it starts from now on, ``nice`` steps nicer than it
    runs now. Where that is not permitted or not supported, it runs as before."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass
