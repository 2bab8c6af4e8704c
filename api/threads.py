"""Blocking work (database, chain, sealing) handed from the event loop to threads, cheaply.

Starlette's ``run_in_threadpool`` goes through anyio's ``to_thread``: a cancel scope and a capacity
limiter's checkpoint per call, about a tenth of an API process's CPU per release under load
(py-spy, BENCHMARKS.md). The release path's hops use this executor instead: asyncio's own
``run_in_executor``, the caller's context variables carried over. The executor's threads
(:data:`THREADS`) bound what blocking work runs at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Threads of the executor: more than two cores need, and within each process's PostgreSQL pool
#: (db/store.py: 24 + 6), so a hop rarely waits for, or opens, a database connection.
THREADS = 24

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="qcl-io")
        return _executor


async def in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` on a worker thread, awaited."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)


def shutdown() -> None:
    """Let the idle threads end (a stopping process); threads still busy are not waited for. The
    next :func:`in_thread` starts a new executor (tests build many apps in one process)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
