"""Signal and JobWatchers: in-process wake-ups that never lose a notification."""

from __future__ import annotations

import asyncio
import time

from blixard.service.signals import JobWatchers, Signal


async def test_notify_before_wait_is_not_lost() -> None:
    s = Signal()
    epoch = s.epoch
    s.notify()  # between reading the epoch and waiting
    started = time.monotonic()
    assert await s.wait(epoch, 5.0) is True
    assert time.monotonic() - started < 0.5


async def test_wait_times_out_without_notify() -> None:
    s = Signal()
    started = time.monotonic()
    assert await s.wait(s.epoch, 0.05) is False
    assert time.monotonic() - started >= 0.04


async def test_zero_wait_returns_at_once() -> None:
    s = Signal()
    assert await s.wait(s.epoch, 0) is False
    assert await s.wait(s.epoch, -1) is False


async def test_notify_wakes_a_waiter() -> None:
    s = Signal()
    epoch = s.epoch
    waiter = asyncio.create_task(s.wait(epoch, 5.0))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    started = time.monotonic()
    s.notify()
    assert await asyncio.wait_for(waiter, 1.0) is True
    assert time.monotonic() - started < 0.5
    assert s.epoch == epoch + 1


async def test_notify_wakes_every_waiter() -> None:
    s = Signal()
    epoch = s.epoch
    waiters = [asyncio.create_task(s.wait(epoch, 5.0)) for _ in range(5)]
    await asyncio.sleep(0.01)
    s.notify()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1.0) == [True] * 5


async def test_a_waiter_that_timed_out_does_not_break_the_next() -> None:
    s = Signal()
    assert await s.wait(s.epoch, 0.01) is False
    epoch = s.epoch
    waiter = asyncio.create_task(s.wait(epoch, 5.0))
    await asyncio.sleep(0.01)
    s.notify()
    assert await asyncio.wait_for(waiter, 1.0) is True


async def test_cancelled_waiter_leaves_others_waiting() -> None:
    s = Signal()
    epoch = s.epoch
    first = asyncio.create_task(s.wait(epoch, 5.0))
    second = asyncio.create_task(s.wait(epoch, 5.0))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    s.notify()
    assert await asyncio.wait_for(second, 1.0) is True


async def test_old_epoch_returns_true_at_once() -> None:
    s = Signal()
    s.notify()
    s.notify()
    assert await s.wait(0, 5.0) is True
    assert await s.wait(1, 0) is True
    assert s.epoch == 2


def test_watchers_share_one_signal_per_job() -> None:
    w = JobWatchers()
    a1 = w.watch("a")
    a2 = w.watch("a")
    b = w.watch("b")
    assert a1 is a2
    assert a1 is not b


def test_watchers_notify_only_the_named_jobs() -> None:
    w = JobWatchers()
    a, b = w.watch("a"), w.watch("b")
    w.notify(["a", "unknown"])
    assert (a.epoch, b.epoch) == (1, 0)
    w.notify(iter(["b", "a"]))
    assert (a.epoch, b.epoch) == (2, 1)


def test_unwatch_drops_the_signal_when_the_last_user_leaves() -> None:
    w = JobWatchers()
    first = w.watch("a")
    w.watch("a")
    w.unwatch("a")
    w.notify(["a"])
    assert first.epoch == 1  # one user left: still notified
    assert w.watch("a") is first
    w.unwatch("a")
    w.unwatch("a")
    w.notify(["a"])
    assert first.epoch == 1  # dropped: no longer notified
    assert w.watch("a") is not first
    w.unwatch("never-watched")  # harmless


async def test_watcher_wakes_a_waiting_job_wait() -> None:
    w = JobWatchers()
    signal = w.watch("job")
    epoch = signal.epoch
    waiter = asyncio.create_task(signal.wait(epoch, 5.0))
    await asyncio.sleep(0.01)
    w.notify(["job"])
    assert await asyncio.wait_for(waiter, 1.0) is True
