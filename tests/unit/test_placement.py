"""Placement: capacity, worker types and labels."""

from __future__ import annotations

import pytest

from blixard.domain.jobs import Requirements
from blixard.domain.placement import Capacity, free_capacity, labels_match, type_matches


def cap(slots: int = 2, cpu: float = 4.0, memory_mb: int = 1024, gpu: int = 1) -> Capacity:
    return Capacity(slots=slots, cpu=cpu, memory_mb=memory_mb, gpu=gpu)


def test_empty_requirements_fit_while_a_slot_is_free() -> None:
    assert cap().fits(Requirements())
    assert not cap(slots=0).fits(Requirements())


@pytest.mark.parametrize(
    ("req", "fits"),
    [
        (Requirements(cpu=4.0), True),
        (Requirements(cpu=4.01), False),
        (Requirements(memory_mb=1024), True),
        (Requirements(memory_mb=1025), False),
        (Requirements(gpu=1), True),
        (Requirements(gpu=2), False),
        (Requirements(cpu=4.0, memory_mb=1024, gpu=1), True),
        (Requirements(cpu=1, memory_mb=2048), False),
    ],
)
def test_fits_each_resource(req: Requirements, fits: bool) -> None:
    assert cap().fits(req) is fits


def test_fits_tolerates_float_rounding() -> None:
    c = cap(slots=10, cpu=0.3)
    for _ in range(3):
        assert c.fits(Requirements(cpu=0.1))
        c.take(Requirements(cpu=0.1))
    assert not c.fits(Requirements(cpu=0.1))
    assert c.fits(Requirements())


def test_take_books_the_share() -> None:
    c = cap(slots=2, cpu=4, memory_mb=1024, gpu=1)
    c.take(Requirements(cpu=1.5, memory_mb=512, gpu=1))
    assert c == Capacity(slots=1, cpu=2.5, memory_mb=512, gpu=0)
    assert not c.fits(Requirements(gpu=1))
    assert c.fits(Requirements(cpu=2.5, memory_mb=512))
    c.take(Requirements(cpu=2.5, memory_mb=512))
    assert c.slots == 0
    assert not c.fits(Requirements())


def test_type_matches() -> None:
    assert type_matches([], "anything")
    assert type_matches((), "process")
    assert type_matches(["process", "wasm"], "wasm")
    assert not type_matches(["process", "wasm"], "python")
    assert not type_matches(["Process"], "process")  # exact, case-sensitive


def test_labels_match() -> None:
    worker = {"zone": "eu", "disk": "ssd"}
    assert labels_match({}, worker)
    assert labels_match({}, {})
    assert labels_match({"zone": "eu"}, worker)
    assert labels_match({"zone": "eu", "disk": "ssd"}, worker)
    assert not labels_match({"zone": "us"}, worker)
    assert not labels_match({"gpu": "a100"}, worker)
    assert not labels_match({"zone": "eu"}, {})
    assert not labels_match({"zone": ""}, {})  # a missing label is not an empty one


def test_free_capacity() -> None:
    c = free_capacity(
        concurrency=4,
        cpu=8,
        memory_mb=4096,
        gpu=2,
        running=1,
        used_cpu=2,
        used_memory_mb=1000,
        used_gpu=1,
        limit=10,
    )
    assert c == Capacity(slots=3, cpu=6, memory_mb=3096, gpu=1)


def test_free_capacity_slots_limited_by_request_and_never_negative() -> None:
    args = {"cpu": 1.0, "memory_mb": 1, "gpu": 0, "used_cpu": 0.0, "used_memory_mb": 0}
    assert free_capacity(concurrency=4, running=0, used_gpu=0, limit=2, **args).slots == 2
    assert free_capacity(concurrency=4, running=6, used_gpu=0, limit=2, **args).slots == 0
