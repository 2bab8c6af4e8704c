"""The heap of a long-running service process (`qcl serve`, `qcl dev`, `qcl worker`).

Three things keep a steady load's resident memory steady (measured with ``qcl bench soak``, see
BENCHMARKS.md):

- **The collector** (:func:`settle_heap`): the objects made at start-up are frozen out of the
  cyclic collector's reach, and young objects are collected less often.
- **Few malloc arenas** (:func:`limit_arenas`): glibc gives each new thread an arena of its own, up
  to eight per core. A service's threads (the API's worker threads, the relayers', the database
  pool's) each fragment their own arena, and the free chunks stay resident.
- **Free pages handed back** (:class:`HeapKeeper`): glibc returns only the top of a heap to the
  system by itself; ``malloc_trim(0)`` releases every whole free page inside the arenas too.

The last two are glibc's; on another C library (musl) they do nothing.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import threading
from typing import Any

from .settings import Settings

#: Young-generation threshold raised from CPython's 700 (a request allocates thousands of objects).
GC_THRESHOLDS = (20_000, 20, 20)
#: ``mallopt`` parameter of glibc's ``<malloc.h>``.
M_ARENA_MAX = -8


@functools.cache
def _glibc() -> Any | None:
    """This process's C library when it is glibc (it has ``malloc_trim``), else None (looked up
    once: the keeper trims every minute)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover - every Linux process has one
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(arenas: int) -> bool:
    """Let this process's threads share at most ``arenas`` malloc arenas (those that exist stay).
    Nothing is done (False) when ``MALLOC_ARENA_MAX`` is set (the operator's choice wins), when
    ``arenas`` is 0, or on a C library other than glibc."""
    libc = _glibc()
    if arenas <= 0 or libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Hand the free pages of every malloc arena back to the system (``malloc_trim(0)``): True when
    some memory was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class HeapKeeper:
    """A daemon thread that calls :func:`trim` every ``interval`` seconds (a few milliseconds each:
    2 ms measured on a 50 MiB heap)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.trims = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and self.interval > 0 and _glibc() is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="qcl-heap", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            trim()
            self.trims += 1


def settle_heap(settings: Settings) -> HeapKeeper | None:
    """After start-up: move every object made so far (modules, ABIs, compiled queries, the app)
    out of the cyclic garbage collector's reach (``gc.freeze``) and collect young objects less
    often (a service process holds a few hundred thousand long-lived objects that every full
    collection would walk again; the requests' own garbage is still collected); let the threads
    share at most ``settings.malloc_arenas`` arenas; start the :class:`HeapKeeper` (every
    ``settings.heap_trim_interval`` seconds) and return it.

    Nothing is done (None) when ``settings.env`` is ``test``: a test process builds many apps, and
    nothing of theirs is frozen."""
    if settings.env == "test":
        return None
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    limit_arenas(settings.malloc_arenas)
    keeper = HeapKeeper(settings.heap_trim_interval)
    keeper.start()
    return keeper
