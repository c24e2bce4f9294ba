"""Partial updates of queues and tenants, and which of them may let waiting work run."""

from __future__ import annotations

import dataclasses

import pytest

from blixard.domain.constraints import parse_constraints
from blixard.domain.jobs import Requirements
from blixard.domain.queues import Queue, RateLimit, Tenant
from blixard.storage.admin import (
    merge_shapes,
    queue_loosened,
    tenant_loosened,
    updated_queue,
    updated_tenant,
)
from blixard.storage.base import UNSET

BASE = Queue(
    "q",
    paused=True,
    max_running=5,
    rate=RateLimit(10, 60.0),
    rate_tokens=3.0,
    rate_updated_at=100.0,
    created_at=1.0,
    updated_at=1.0,
)


def test_only_the_given_settings_change() -> None:
    q = updated_queue(BASE, paused=None, max_running=UNSET, rate=UNSET, now=200.0)
    assert q == Queue("q", True, 5, RateLimit(10, 60.0), 3.0, 100.0, 1.0, 200.0)
    q = updated_queue(BASE, paused=False, max_running=None, rate=UNSET, now=200.0)
    assert (q.paused, q.max_running, q.rate, q.rate_tokens) == (False, None, BASE.rate, 3.0)


def test_a_rate_limit_set_starts_full_and_one_removed_empties() -> None:
    q = updated_queue(BASE, paused=None, max_running=UNSET, rate=RateLimit(7, 1.0), now=200.0)
    assert (q.rate, q.rate_tokens, q.rate_updated_at) == (RateLimit(7, 1.0), 7.0, 200.0)
    q = updated_queue(BASE, paused=None, max_running=UNSET, rate=None, now=200.0)
    assert (q.rate, q.rate_tokens, q.rate_updated_at) == (None, 0.0, 0.0)


OPEN = dataclasses.replace(BASE, paused=False)


def change(base: Queue = OPEN, **kwargs: object) -> Queue:
    settings: dict[str, object] = {"paused": None, "max_running": UNSET, "rate": UNSET}
    settings.update(kwargs)
    return updated_queue(base, now=300.0, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new", "loosened"),
    [
        (BASE, change(BASE), False),
        (BASE, change(BASE, paused=True), False),
        (BASE, change(BASE, paused=False), True),
        (BASE, change(BASE, max_running=6), False),  # still paused
        (BASE, change(BASE, rate=None), False),
        (OPEN, change(), False),
        (OPEN, change(paused=True), False),
        (OPEN, change(max_running=4), False),
        (OPEN, change(max_running=5), False),
        (OPEN, change(max_running=6), True),
        (OPEN, change(max_running=None), True),
        (OPEN, change(rate=None), True),
        (OPEN, change(rate=RateLimit(1, 600.0)), True),  # a fresh, full bucket
    ],
)
def test_queue_loosened(old: Queue, new: Queue, loosened: bool) -> None:
    assert queue_loosened(old, new) is loosened


def test_setting_limits_on_an_open_queue_never_loosens() -> None:
    open_queue = Queue("q")
    for new in (
        updated_queue(open_queue, paused=True, max_running=UNSET, rate=UNSET, now=1.0),
        updated_queue(open_queue, paused=None, max_running=3, rate=UNSET, now=1.0),
        updated_queue(open_queue, paused=None, max_running=UNSET, rate=RateLimit(1, 1), now=1.0),
    ):
        assert not queue_loosened(open_queue, new)


def test_tenants() -> None:
    t = Tenant("acme", weight=1.0, max_running=2)
    assert updated_tenant(t, weight=3.0, max_running=UNSET, now=5.0) == Tenant(
        "acme", 3.0, 2, 0.0, 0.0, 5.0
    )
    assert tenant_loosened(t, updated_tenant(t, weight=None, max_running=3, now=5.0))
    assert tenant_loosened(t, updated_tenant(t, weight=None, max_running=None, now=5.0))
    assert not tenant_loosened(t, updated_tenant(t, weight=None, max_running=1, now=5.0))
    assert not tenant_loosened(t, updated_tenant(t, weight=9.0, max_running=UNSET, now=5.0))


def test_merge_shapes_ignores_json_order() -> None:
    c1 = parse_constraints("c", [{"label": "a", "op": "exists"}, {"label": "b", "op": "exists"}])
    c2 = tuple(reversed(c1))
    shapes = merge_shapes(
        [
            (("x",), Requirements(labels={"k": "1", "j": "2"}), 2),
            (("x",), Requirements(labels={"j": "2", "k": "1"}), 3),
            ((), Requirements(constraints=c1), 1),
            ((), Requirements(constraints=c2), 7),
        ]
    )
    assert [(s.worker_types, s.count) for s in shapes] == [((), 8), (("x",), 5)]
