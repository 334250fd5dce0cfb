"""Make freed weight matrices go back to the operating system (glibc's malloc ``mmap`` threshold).

glibc serves an allocation above ``M_MMAP_THRESHOLD`` (128 KiB) with its own ``mmap`` and returns
it to the OS when it is freed; anything smaller comes from the heap, which keeps freed memory for
reuse. By default the threshold is *dynamic*: each time a mapped block is freed, the threshold
rises to that block's size, up to 32 MiB. After the first few weight matrices are freed, every
matrix, Gram block and stored-dtype read buffer below 32 MiB (a 2048×2048 float32 attention matrix
is 16 MiB) lands in the heap, and the heaps of the solve threads fragment and hold on to them: the
in-process analysis of the 1.1B benchmark model grew from 1.19 to 1.99 GB resident between its
first and last batch of the same size, and peaked at 2.27 GB. Setting the threshold explicitly
turns the dynamic rise off (glibc's ``mallopt(3)``); with it pinned at 128 KiB the same run stayed
at 1.20–1.35 GB between batches and peaked at 1.66 GB, in the same time (an RSS probe per batch, one
run each; ``benchmarks/large_model.py`` measures the resulting peaks: in-process 2.02 → 1.41 GB with
this pin and ``api._batches``' cut, docs/design.md).

``pin_mmap_threshold()`` is what the analysing code calls (``api.analyze_weights`` and the Ray load
and spectral workers); elsewhere it is a no-op (musl, macOS, Windows: no ``mallopt``), and
``WW_RAY_KEEP_MALLOC=1`` leaves the allocator as the process set it (e.g. a user's own
``MALLOC_MMAP_THRESHOLD_``). Written by hand because no library pins it: the environment variable
``MALLOC_MMAP_THRESHOLD_`` only works when set before the process starts, which a library called
inside a user's notebook cannot do.

    >>> pin_mmap_threshold() in (True, False)
    True
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

# glibc's initial (and documented default) threshold; mallopt's parameter number for it.
MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD = -3

_lock = threading.Lock()
_pinned: bool | None = None


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold at ``MMAP_THRESHOLD_BYTES`` once per process; True when it is pinned."""
    global _pinned
    with _lock:
        if _pinned is None:
            _pinned = _pin()
        return _pinned


def _pin() -> bool:
    if os.environ.get("WW_RAY_KEEP_MALLOC") == "1":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
