"""The unschedulable diagnosis: why no online worker could ever run a job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from blixard.domain.constraints import parse_constraints
from blixard.domain.jobs import Requirements
from blixard.domain.placement import could_ever_run, unschedulable_reason
from blixard.domain.workers import Resources, Worker, WorkerStatus


def worker(
    worker_type: str = "process",
    *,
    cpu: float = 4,
    memory_mb: int = 4096,
    gpu: int = 0,
    labels: Mapping[str, str] | None = None,
    status: WorkerStatus = WorkerStatus.ONLINE,
    running: int = 0,
) -> Worker:
    return Worker(
        id=f"{worker_type}-{cpu}-{gpu}",
        worker_type=worker_type,
        name="w",
        concurrency=1,
        resources=Resources(cpu=cpu, memory_mb=memory_mb, gpu=gpu),
        labels=dict(labels or {}),
        capabilities={},
        host="",
        pid=0,
        version="",
        status=status,
        registered_at=0.0,
        last_seen_at=0.0,
        running=running,
        used=Resources(cpu=cpu, memory_mb=memory_mb, gpu=gpu) if running else Resources(),
    )


def constraints(*items: dict[str, Any]) -> Requirements:
    return Requirements(constraints=parse_constraints("c", list(items)))


FLEET = [
    worker("process", cpu=8, memory_mb=16_384, labels={"zone": "a"}),
    worker("gpu", cpu=16, memory_mb=65_536, gpu=1, labels={"zone": "b", "disk": "ssd"}),
]


@pytest.mark.parametrize(
    ("types", "req", "reason"),
    [
        ((), Requirements(), None),
        (("gpu",), Requirements(gpu=1), None),
        (("wasm",), Requirements(), "no online worker of type wasm"),
        (("wasm", "sandbox"), Requirements(), "no online worker of type wasm or sandbox"),
        (
            ("gpu",),
            Requirements(gpu=2),
            "needs 2 gpu; the largest online worker of a matching type has 1",
        ),
        ((), Requirements(gpu=4), "needs 4 gpu; the largest online worker has 1"),
        ((), Requirements(cpu=32), "needs 32 cpu; the largest online worker has 16"),
        (
            ("process",),
            Requirements(memory_mb=20_000),
            "needs 20000 MB of memory; the largest online worker of a matching type has 16384 MB",
        ),
        (
            ("process",),
            Requirements(labels={"zone": "b"}),
            "no online worker of type process has label zone=b",
        ),
        ((), Requirements(labels={"zone": "c"}), "no online worker has label zone=c"),
        (
            (),
            constraints({"label": "zone", "op": "in", "values": ["c", "d"]}),
            "no online worker has label zone in c,d",
        ),
        ((), constraints({"label": "zone", "op": "eq", "values": ["b"]}), None),
        (
            (),
            constraints({"label": "rack", "op": "exists"}),
            "no online worker has label rack",
        ),
        (
            (),
            constraints({"label": "zone", "op": "not_exists"}),
            "every online worker has label zone",
        ),
        (
            ("process",),
            constraints({"label": "zone", "op": "ne", "values": ["a"]}),
            "every online worker of type process has label zone=a",
        ),
        (
            (),
            Requirements(labels={"zone": "a", "disk": "ssd"}),
            "no online worker meets all of: disk=ssd; zone=a",
        ),
        (
            (),
            Requirements(cpu=10, labels={"zone": "a"}),
            "needs 10 cpu; the largest online worker with matching labels has 8",
        ),
        (
            ("gpu",),
            Requirements(cpu=32, labels={"disk": "ssd"}),
            "needs 32 cpu; the largest online worker of a matching type and labels has 16",
        ),
    ],
)
def test_reasons(types: tuple[str, ...], req: Requirements, reason: str | None) -> None:
    assert unschedulable_reason(types, req, FLEET) == reason


def test_resources_that_fit_only_on_different_workers() -> None:
    fleet = [worker(cpu=16, memory_mb=1024), worker(cpu=2, memory_mb=65_536)]
    reason = unschedulable_reason((), Requirements(cpu=8, memory_mb=8192), fleet)
    assert reason == (
        "needs 8 cpu, 8192 MB of memory and 0 gpu together; no online worker has them all"
    )


def test_no_worker_online() -> None:
    assert unschedulable_reason((), Requirements(), []) == "no worker is online"
    offline = [worker(status=WorkerStatus.OFFLINE), worker(status=WorkerStatus.DRAINING)]
    assert unschedulable_reason((), Requirements(), offline) == "no worker is online"


def test_a_busy_worker_still_counts() -> None:
    """What a worker runs now only makes a job wait; it does not make it unschedulable."""
    busy = worker(cpu=4, running=1)
    assert could_ever_run((), Requirements(cpu=4), busy)
    assert unschedulable_reason((), Requirements(cpu=4), [busy]) is None


def test_fractional_cpu_rounding() -> None:
    assert unschedulable_reason((), Requirements(cpu=0.1 + 0.2), [worker(cpu=0.3)]) is None
