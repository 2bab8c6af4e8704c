"""The heap of a service process (api/heap.py): the collector settled after start-up, few malloc
arenas, free pages handed back. The malloc cases run in a process of their own (a fresh heap)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from api.heap import GC_THRESHOLDS, HeapKeeper, settle_heap
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(not hasattr(__import__("ctypes").CDLL(None), "malloc_trim"), reason="glibc's malloc only")


def _run(code: str) -> dict[str, int]:
    """Run ``code`` in a fresh Python with api.heap importable; it prints one JSON object."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


_HELPERS = """
import ctypes, json, threading
from api import heap

def anon_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

def heaps():
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    import tempfile, os
    fd, path = tempfile.mkstemp(); os.close(fd)
    f = libc.fopen(path.encode(), b"w"); libc.malloc_info(0, f); libc.fclose(f)
    text = open(path).read(); os.unlink(path)
    return text.count("<heap nr=")
"""


@glibc
@pytest.mark.parametrize("limit", [0, 2])
def test_threads_share_the_arenas_allowed(limit: int) -> None:
    """Eight threads allocating at once: with ``limit_arenas(2)`` the process has at most 2 malloc
    arenas; left to glibc, more (one per thread, up to 8 per core)."""
    out = _run(
        _HELPERS
        + f"""
limited = heap.limit_arenas({limit})
barrier = threading.Barrier(8)
kept = []
def work():
    barrier.wait()
    kept.append([bytes(1000) for _ in range(200)])
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({{"limited": limited, "heaps": heaps()}}))
"""
    )
    if limit:
        assert out["limited"] and 1 <= out["heaps"] <= limit
    else:
        assert not out["limited"] and out["heaps"] > 2


@glibc
def test_trim_hands_the_free_pages_back() -> None:
    """100 MiB allocated in a thread's arena, 99 of every 100 chunks freed: the freed pages stay
    resident until :func:`api.heap.trim`, which hands most of them back."""
    out = _run(
        _HELPERS
        + """
kept = []
def work():
    chunks = [bytes(2048) for _ in range(50_000)]
    kept.extend(chunks[::100])
t = threading.Thread(target=work); t.start(); t.join()
freed = anon_kib()
heap.trim()
print(json.dumps({"freed": freed, "trimmed": anon_kib()}))
"""
    )
    assert out["freed"] - out["trimmed"] > 60 * 1024, out  # of the ~97 MiB freed


def test_the_keeper_trims_at_its_interval_and_stops() -> None:
    keeper = HeapKeeper(0.05)
    keeper.start()
    try:
        threading.Event().wait(0.5)
        assert keeper.trims >= 3
        assert any(t.name == "qcl-heap" for t in threading.enumerate())
    finally:
        keeper.stop(5.0)
    assert not any(t.name == "qcl-heap" for t in threading.enumerate())
    stopped = keeper.trims
    threading.Event().wait(0.2)
    assert keeper.trims == stopped
    idle = HeapKeeper(0)  # QCL_HEAP_TRIM_INTERVAL=0: never
    idle.start()
    assert not any(t.name == "qcl-heap" for t in threading.enumerate())


def test_a_settled_heap_is_out_of_the_collectors_reach(tmp_path: Path) -> None:
    """What `qcl serve`, `qcl dev` and `qcl worker` do after start-up: the objects made so far are
    frozen, young objects are collected less often, the heap keeper runs at the configured
    interval; in a test process (``env=test``, many apps built) nothing is done."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    keeper = None
    try:
        assert settle_heap(Settings(env="test", data_dir=tmp_path)) is None
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == before
        keeper = settle_heap(Settings(env="dev", data_dir=tmp_path, heap_trim_interval=30, malloc_arenas=0))
        assert gc.get_freeze_count() > 10_000  # the modules, ABIs and app objects of this process
        assert gc.get_threshold() == GC_THRESHOLDS
        assert keeper is not None and keeper.interval == 30
    finally:
        if keeper is not None:
            keeper.stop(5.0)
        gc.unfreeze()
        gc.set_threshold(*before)
