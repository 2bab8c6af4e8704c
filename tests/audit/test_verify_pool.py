"""Check 2's pool: which chunks go to workers, what happens when a worker dies, the shared pool's life,
and a forked copy of a process that has a pool (it must start its own, not wait on the parent's).

Most tests run the pooled path on threads (``_start_pool`` replaced by an in-process executor that
records what it is given), so the same logic runs without worker processes; the last two start real
ones.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any, cast

import pytest

from audit import _sigcheck, synthetic, verify
from audit.verify import Verifier

RELEASES = 300


@pytest.fixture(scope="module")
def base() -> synthetic.SyntheticTrail:
    return synthetic.build(RELEASES, grantees=4, subjects=10, grants=20, checkpoint_every=100, texts=10, seed=11)


@pytest.fixture
def forged(base: synthetic.SyntheticTrail) -> synthetic.SyntheticTrail:
    """A copy of the trail with one forged signature in each chunk of 50 (jobs 7, 57, ..., 257)."""
    trail = replace(base, events_list=list(base.events_list))
    releases = [i for i, e in enumerate(trail.events_list) if e.name == "ReleaseRecorded"]
    for i in releases[7::50]:
        event = trail.events_list[i]
        signature = bytes.fromhex(event.args["signature"][2:])
        forged = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]
        trail.events_list[i] = replace(event, args=dict(event.args) | {"signature": "0x" + forged.hex()})
    return trail


class Recording(ThreadPoolExecutor):
    """A thread pool that records the chunks submitted to it and whether it was shut down."""

    def __init__(self, workers: int, fail: bool = False) -> None:
        super().__init__(max_workers=workers)
        self.workers = workers
        self.fail = fail
        self.chunks: list[int] = []  # the size of each chunk, in submission order
        self.closed: tuple[bool, bool] | None = None  # (wait, cancel_futures) of its shutdown

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        assert fn is _sigcheck.check_chunk
        self.chunks.append(len(args[1]))
        if self.fail:  # as a pool whose worker died
            future: Future[Any] = Future()
            future.set_exception(BrokenProcessPool("a worker died"))
            return future
        return super().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.closed = (wait, cancel_futures)
        super().shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Recording]]:
    """Every pool started during the test (in-process); no shared pool before it."""
    started: list[Recording] = []

    def start(workers: int) -> Recording:
        started.append(Recording(workers))
        return started[-1]

    monkeypatch.setattr(verify, "_POOL", None)
    monkeypatch.setattr(verify, "_POOL_WORKERS", 0)
    monkeypatch.setattr(verify, "_start_pool", start)
    monkeypatch.setattr(verify, "CHUNK", 50)
    yield started
    for pool in started:
        ThreadPoolExecutor.shutdown(pool)


def found(report: verify.Report) -> list[tuple[int, str, str | None]]:
    return [(v.check, v.code, v.tx_hash) for v in report.violations]


def expected(trail: synthetic.SyntheticTrail) -> list[tuple[int, str, str | None]]:
    releases = [e for e in trail.events_list if e.name == "ReleaseRecorded"]
    return [(2, _sigcheck.INVALID, e.tx_hash) for e in releases[7::50]]


def test_chunks_go_to_the_pool_once_there_are_enough_jobs(
    forged: synthetic.SyntheticTrail, pools: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "PARALLEL_MIN", 150)
    report = Verifier(forged, workers=3).verify()
    assert found(report) == expected(forged) and len(report.violations) == 6
    assert report.signatures_checked == RELEASES
    (pool,) = pools
    assert pool.workers == 3 and verify._POOL is pool and verify._POOL_WORKERS == 3
    # 50 jobs a chunk; the first two wait until the third makes 150, then all go to the workers
    assert pool.chunks == [50] * 6 and pool.closed is None


def test_the_rest_of_the_jobs_is_the_last_chunk(
    forged: synthetic.SyntheticTrail, pools: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "CHUNK", 70)
    monkeypatch.setattr(verify, "PARALLEL_MIN", 70)
    report = Verifier(forged, workers=2).verify()
    assert found(report) == expected(forged)
    assert pools[0].chunks == [70, 70, 70, 70, 20]


def test_fewer_jobs_than_the_threshold_are_checked_here(
    forged: synthetic.SyntheticTrail, pools: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "PARALLEL_MIN", RELEASES + 1)
    assert found(Verifier(forged, workers=2).verify()) == expected(forged)
    monkeypatch.setattr(verify, "PARALLEL_MIN", RELEASES)  # the last chunk reaches it
    assert found(Verifier(forged, workers=2).verify()) == expected(forged)
    assert len(pools) == 1 and pools[0].chunks == [50] * 6


def test_one_worker_means_no_pool(
    forged: synthetic.SyntheticTrail, pools: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "PARALLEL_MIN", 1)
    assert found(Verifier(forged, workers=1).verify()) == expected(forged)
    assert pools == [] and verify._POOL is None


def test_a_dead_worker_pool_is_discarded_and_its_chunks_checked_here(
    forged: synthetic.SyntheticTrail, pools: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "PARALLEL_MIN", 1)
    broken = Recording(2, fail=True)
    monkeypatch.setattr(verify, "_start_pool", lambda workers: broken)
    report = Verifier(forged, workers=2).verify()
    assert found(report) == expected(forged)
    assert broken.chunks == [50] * 6 and broken.closed == (False, True) and verify._POOL is None


def test_the_shared_pool_is_kept_for_the_same_number_of_workers(pools: list[Recording]) -> None:
    first = cast(Recording, verify._shared_pool(2))
    assert verify._shared_pool(2) is first and first.closed is None
    second = cast(Recording, verify._shared_pool(3))  # another size: the old pool goes, without waiting
    assert first.closed == (False, True) and second is not first and (second.workers, verify._POOL_WORKERS) == (3, 3)
    assert verify._shared_pool(3) is second and pools == [first, second]


def test_discarding_a_pool(pools: list[Recording]) -> None:
    verify._discard_pool(None)  # nothing to do
    current = cast(Recording, verify._shared_pool(2))
    old = Recording(2)
    verify._discard_pool(old)  # not the shared one: shut down, the shared one kept
    assert old.closed == (False, True) and verify._POOL is current and current.closed is None
    verify._discard_pool(current)
    assert current.closed == (False, True) and verify._POOL is None
    assert verify._shared_pool(2) is not current and len(pools) == 2


@pytest.mark.parametrize(("cpus", "workers"), [(3, None), (None, None), (1, None), (4, 2), (4, 1)])
def test_warm_up_starts_one_worker_per_cpu(
    pools: list[Recording], monkeypatch: pytest.MonkeyPatch, cpus: int | None, workers: int | None
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    verify.warm_up(workers)
    count = workers if workers is not None else (cpus or 1)
    if count > 1:
        (pool,) = pools
        assert pool.workers == count and pool.chunks == [0] * count and verify._POOL is pool
    else:
        assert pools == []


def test_the_verifier_defaults_to_one_worker_per_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert Verifier(synthetic.SyntheticTrail([], [], [])).workers == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert Verifier(synthetic.SyntheticTrail([], [], [])).workers == 1
    assert Verifier(synthetic.SyntheticTrail([], [], []), workers=3).workers == 3


@pytest.mark.parametrize(("forkserver", "method"), [(True, "spawn"), (False, "forkserver")])
def test_a_forked_child_forgets_the_pool(monkeypatch: pytest.MonkeyPatch, forkserver: bool, method: str) -> None:
    """What runs in the child of a fork (called here directly: the hook's own run is in the child)."""
    held = verify.threading.Lock()
    held.acquire()  # a lock another thread held at the fork stays held in the child
    monkeypatch.setattr(verify, "_POOL", Recording(2))
    monkeypatch.setattr(verify, "_POOL_WORKERS", 2)
    monkeypatch.setattr(verify, "_POOL_LOCK", held)
    monkeypatch.setattr(verify, "_START_METHOD", "forkserver")
    monkeypatch.setattr(verify, "_FORKSERVER_STARTED", forkserver)
    verify._forget_pool_after_fork()
    assert (verify._POOL, verify._POOL_WORKERS, verify._START_METHOD) == (None, 0, method)
    assert verify._POOL_LOCK is not held and verify._POOL_LOCK.acquire(blocking=False)


def test_the_report_as_a_dict() -> None:
    report = verify.Report(from_block=1, to_block=9, releases=2)
    assert report.as_dict()["ok"] is True and report.as_dict()["releases"] == 2
    report.violations.append(verify.Violation(3, "log_duplicate", "twice", "0xab", 4))
    body = report.as_dict()
    assert body["ok"] is False and body["from_block"] == 1 and body["to_block"] == 9
    assert body["violations"] == [
        {"check": 3, "code": "log_duplicate", "detail": "twice", "tx_hash": "0xab", "log_index": 4}
    ]


# ---- real worker processes --------------------------------------------------------------------


def test_worker_processes_after_a_fork(forged: synthetic.SyntheticTrail, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked copy of a process with a pool (and its forkserver) starts its own: the parent's
    queue threads did not come along, and work handed to that pool would wait forever."""
    monkeypatch.setattr(verify, "CHUNK", 50)
    monkeypatch.setattr(verify, "PARALLEL_MIN", 50)
    verify._discard_pool(verify._POOL)  # started here, whatever ran before
    parent = Verifier(forged, workers=2).verify()
    assert found(parent) == expected(forged)
    pool, method = verify._POOL, verify._START_METHOD
    assert pool is not None and (method == "spawn" or verify._FORKSERVER_STARTED)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it found, however it went
        try:
            inherited = verify._POOL
            report = Verifier(forged, workers=2).verify()
            outcome: Any = (found(report), verify._START_METHOD, inherited is None, verify._POOL is not None)
            if verify._POOL is not None:  # os._exit below skips the pool's own shutdown: its workers would stay
                verify._POOL.shutdown(wait=True)
        except BaseException as error:  # noqa: BLE001 - the parent reports it
            outcome = repr(error)
        os.write(write, pickle.dumps(outcome))
        os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 30)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        data = os.read(read, 1 << 20) if ready else b""
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert data, "the forked child hung"
    assert pickle.loads(data) == (expected(forged), "spawn", True, True)
    assert verify._POOL is pool and verify._START_METHOD == method  # the parent's own is untouched


def test_worker_processes_as_configured_ignore_interrupts(
    forged: synthetic.SyntheticTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C reaches the whole process group: the workers leave it to this process.

    The workers are spawned, from this process with Python's own SIGINT handler (a forkserver
    started earlier would pass on whatever disposition this process had then, e.g. ignored).
    """
    monkeypatch.setattr(verify, "CHUNK", 50)
    monkeypatch.setattr(verify, "PARALLEL_MIN", 50)
    monkeypatch.setattr(verify, "_START_METHOD", "spawn")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    verify._discard_pool(verify._POOL)  # started here, whatever ran before
    try:
        _interrupt_the_workers(forged)
    finally:
        spawned = verify._POOL
        verify._discard_pool(spawned)  # a spawned pool is not the process's usual one
        if spawned is not None:
            spawned.shutdown(wait=True)  # its workers gone before the test ends
        signal.signal(signal.SIGINT, previous)


def _interrupt_the_workers(forged: synthetic.SyntheticTrail) -> None:
    verify.warm_up(3)  # more than this machine's CPUs, to tell the count asked for from the default
    pool = verify._shared_pool(3)
    assert pool._mp_context.get_start_method() == verify._START_METHOD  # type: ignore[attr-defined]
    assert pool._max_workers == 3  # type: ignore[attr-defined]
    for future in [pool.submit(time.sleep, 0.5) for _ in range(3)]:  # each worker past its initializer
        future.result()
    workers = list(pool._processes.values())  # type: ignore[attr-defined]
    assert len(workers) == 3
    for process in workers:
        os.kill(process.pid, signal.SIGINT)
    time.sleep(0.3)
    assert all(process.is_alive() for process in workers)
    assert found(Verifier(forged, workers=3).verify()) == expected(forged)
    assert verify._POOL is pool
