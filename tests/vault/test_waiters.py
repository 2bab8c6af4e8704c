"""Waking the callers waiting for release intents (vault/releases.py ``Waiters``)."""

from __future__ import annotations

import asyncio
import threading

from vault.releases import Waiters


def test_notify_wakes_every_waiter_of_the_key_only() -> None:
    async def run() -> tuple[bool, bool, bool]:
        waiters = Waiters()
        a1, a2, b = waiters.register("a"), waiters.register("a"), waiters.register("b")
        threading.Thread(target=waiters.notify, args=(["a"],)).start()  # from the relayer's thread
        await asyncio.wait_for(asyncio.gather(a1, a2), 5)
        await asyncio.sleep(0.05)
        return a1.done(), a2.done(), b.done()

    assert asyncio.run(run()) == (True, True, False)


def test_a_key_notified_before_registering_wakes_at_once_only_when_asked() -> None:
    """A caller that skips reading the state after registering (it has just admitted the intent)
    must not miss a notification that came in between; others read the state instead."""

    async def run() -> tuple[bool, bool]:
        waiters = Waiters()
        waiters.notify(["a"])
        return waiters.register("a", recent=True).done(), waiters.register("a").done()

    assert asyncio.run(run()) == (True, False)


def test_remembered_keys_are_bounded() -> None:
    async def run() -> list[bool]:
        waiters = Waiters()
        waiters.RECENT = 4
        waiters.notify(["k0", "k1", "k2", "k3"])
        waiters.notify(["k4", "k5"])  # the older half goes
        return [waiters.register(f"k{i}", recent=True).done() for i in range(6)]

    assert asyncio.run(run()) == [False, False, True, True, True, True]
