"""Give the C heap's free pages back to the system after a config reload.

A reload builds a whole snapshot (ONNX session, token tables, policy engine) beside the
running one and frees the old one once its streams are done. glibc's allocator keeps the
freed pages in its arenas, so each reload can leave tens of MiB of resident memory that
nothing uses (``benchmarks/reload_memory.py``: after each of eight reloads a process
that started at 171 MiB held 197-238 MiB; with a trim after each, 171-174 MiB).
``malloc_trim(0)`` returns them. It exists only in glibc: elsewhere (musl, macOS) this
does nothing.
"""

from __future__ import annotations

import ctypes


def release_free_heap() -> bool:
    """Return free heap pages to the system; True when glibc's ``malloc_trim`` ran.

    It walks the arenas (milliseconds on a few hundred MiB), so callers run it off the
    event loop; ctypes releases the GIL during the call.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
