"""api.services.ledger_view.SharedFetch: concurrent reads of the head share a fetch, never an older one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.services.ledger_view import SharedFetch


class Gated:
    """A fetch returning 1, 2, 3... that holds each call until :meth:`release` lets it end."""

    def __init__(self, fail_on: int = 0) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self.entered = threading.Semaphore(0)
        self.gates: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.calls += 1
            number = self.calls
            gate = self.gates.setdefault(number, threading.Event())
        self.entered.release()
        assert gate.wait(10)
        if number == self.fail_on:
            raise RuntimeError(f"fetch {number} failed")
        return number

    def release(self, number: int) -> None:
        with self._lock:
            self.gates.setdefault(number, threading.Event()).set()

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=10)


def _waiting(shared: SharedFetch[int], count: int) -> None:
    """Until ``count`` callers wait on the shared fetch's condition."""
    deadline = time.monotonic() + 10
    while len(getattr(shared._changed, "_waiters", ())) < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_calls_one_after_another_each_fetch() -> None:
    fetch = Gated()
    for number in (1, 2, 3):
        fetch.release(number)
    shared = SharedFetch(fetch)
    assert [shared.get(), shared.get(), shared.get()] == [1, 2, 3]


def test_callers_during_a_fetch_share_the_next_one_not_that_one() -> None:
    fetch = Gated()
    shared = SharedFetch(fetch)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(shared.get)
        fetch.wait_entered()  # fetch 1 runs: it began before the callers below
        later = [pool.submit(shared.get) for _ in range(6)]
        _waiting(shared, 6)
        fetch.release(1)
        assert first.result(10) == 1
        fetch.wait_entered()  # one of the six started fetch 2 for all of them
        fetch.release(2)
        assert [f.result(10) for f in later] == [2] * 6
    assert fetch.calls == 2


def test_a_failed_fetch_is_not_shared_its_waiters_fetch_alone() -> None:
    fetch = Gated(fail_on=2)
    shared = SharedFetch(fetch)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(shared.get)
        fetch.wait_entered()
        later = [pool.submit(shared.get) for _ in range(2)]
        _waiting(shared, 2)
        fetch.release(1)
        assert first.result(10) == 1
        fetch.wait_entered()  # fetch 2, started by one of the two, fails
        for number in (2, 3):
            fetch.release(number)
        outcomes = []
        for future in later:
            try:
                outcomes.append(future.result(10))
            except RuntimeError as exc:
                outcomes.append(str(exc))
    assert sorted(map(str, outcomes)) == ["3", "fetch 2 failed"]
    assert fetch.calls == 3
    fetch.release(4)
    assert shared.get() == 4  # and sharing goes on after a failure


@pytest.mark.parametrize("callers", [2, 16])
def test_every_caller_gets_a_fetch_that_began_after_its_call(callers: int) -> None:
    """Many callers, free-running fetches: each result was fetched by a call that started after
    the caller's own call began (the fetch's number exceeds the count of fetches started before)."""
    started = 0
    lock = threading.Lock()

    def fetch() -> int:
        nonlocal started
        with lock:
            started += 1
            number = started
        time.sleep(0.002)
        return number

    shared = SharedFetch(fetch)

    def caller() -> None:
        for _ in range(20):
            with lock:
                before = started
            assert shared.get() > before

    with ThreadPoolExecutor(callers) as pool:
        for future in [pool.submit(caller) for _ in range(callers)]:
            future.result(30)
    assert started <= 20 * callers
