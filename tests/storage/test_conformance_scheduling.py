"""Conformance: the scheduling core on every driver. Fair share between tenants (weights,
quotas), queue limits (pause, max_running, rate), concurrency keys, resources and label
constraints, preferences, dependencies (``depends_on``), groups and idempotency under
concurrent submits.

Each test states one behaviour from the design (``domain.admission``, ``domain.constraints``,
``domain.dependencies``, ``Store`` docstrings) and checks it through the store alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from helpers import (
    add_job,
    add_jobs,
    add_worker,
    claim,
    claim_one,
    completed,
    failed,
    ids,
    new_job,
)

from blixard.clock import ManualClock
from blixard.domain.constraints import parse_constraints, parse_preferences
from blixard.domain.jobs import Job, Requirements
from blixard.domain.queues import RateLimit
from blixard.domain.states import JobStatus
from blixard.errors import ValidationError
from blixard.storage.base import JobQuery, Store

BIG = "alpha"  # the tenant with the backlog: sorts first, so name ties favour it
SMALL = "zulu"
RUNNING = (JobStatus.CLAIMED, JobStatus.IN_PROGRESS)


# -- helpers ---------------------------------------------------------------------------------
async def get(store: Store, job_id: str) -> Job:
    job = await store.get_job(job_id)
    assert job is not None, job_id
    return job


async def running_jobs(store: Store) -> list[Job]:
    page = await store.list_jobs(JobQuery(status=RUNNING, limit=1000))
    assert page.next_cursor is None
    return page.jobs


async def complete_all(store: Store, worker_id: str, jobs: Sequence[Job], now: float) -> None:
    results = await store.apply_reports(worker_id, [completed(j) for j in jobs], now)
    assert all(r.applied for r in results), results


def constraints(*items: Mapping[str, Any]) -> Requirements:
    return Requirements(constraints=parse_constraints("constraints", list(items)))


def error_kind(job: Job) -> str | None:
    return None if job.error is None else job.error.get("kind")


# -- fairness between tenants ------------------------------------------------------------------
async def test_claims_of_one_alternate_between_a_backlog_and_a_small_tenant(
    store: Store, clock: ManualClock
) -> None:
    """A tenant with 2,000 pending jobs submitted first and one that submits 10: claims of
    limit 1 alternate job by job (the jobs keep running), and the small tenant's first job
    comes out within the first 2 claims."""
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 2000, tenant=BIG)
    clock.advance(1)
    await add_jobs(store, clock.now(), 10, tenant=SMALL)
    order: list[str] = []
    for _ in range(20):
        clock.advance(0.01)
        order.append((await claim_one(store, "w1", clock.now())).tenant)
    assert SMALL in order[:2], order
    assert order == [BIG, SMALL] * 10, order


async def test_claims_of_one_alternate_when_each_job_ends_before_the_next_claim(
    store: Store, clock: ManualClock
) -> None:
    """With no running jobs to compare, the tenant served least recently goes first."""
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 500, tenant=BIG)
    await add_jobs(store, t + 1, 10, tenant=SMALL)
    order: list[str] = []
    for _ in range(12):
        clock.advance(1)
        job = await claim_one(store, "w1", clock.now())
        order.append(job.tenant)
        await complete_all(store, "w1", [job], clock.now())
    assert order == [BIG, SMALL] * 6, order


async def test_one_claim_of_ten_splits_evenly_between_two_tenants(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 2000, tenant=BIG)
    await add_jobs(store, t + 1, 10, tenant=SMALL)
    got = await claim(store, "w1", t + 2, limit=10)
    assert Counter(j.tenant for j in got) == {BIG: 5, SMALL: 5}
    # Within each tenant, claim order (submission order here).
    small = [j.payload["i"] for j in got if j.tenant == SMALL]
    assert small == [0, 1, 2, 3, 4]


async def test_a_new_tenant_is_served_first_when_the_backlog_tenant_already_runs_jobs(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 300, tenant=BIG)
    assert len(await claim(store, "w1", t, limit=20)) == 20
    await add_jobs(store, t + 1, 3, tenant=SMALL)
    got = await claim(store, "w1", t + 2, limit=5)
    assert [j.tenant for j in got][:3] == [SMALL] * 3
    assert Counter(j.tenant for j in got) == {SMALL: 3, BIG: 2}


async def test_weights_two_to_one_split_running_jobs_two_to_one(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await store.configure_tenant(SMALL, weight=2.0, now=t)  # the small one gets the weight
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 100, tenant=BIG)
    await add_jobs(store, t + 1, 100, tenant=SMALL)
    got = await claim(store, "w1", t + 2, limit=12)
    assert Counter(j.tenant for j in got) == {SMALL: 8, BIG: 4}
    # Claims of one, one after the other, keep the 2:1 split of running jobs.
    for _ in range(9):
        clock.advance(1)
        await claim_one(store, "w1", clock.now())
    running = Counter(j.tenant for j in await running_jobs(store))
    assert running == {SMALL: 14, BIG: 7}


async def test_a_tenant_at_its_quota_gets_nothing_until_one_of_its_jobs_ends(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await store.configure_tenant(BIG, max_running=2, now=t)
    await add_worker(store, t, "w1", concurrency=100)
    await add_worker(store, t, "w2", concurrency=100)
    await add_jobs(store, t, 50, tenant=BIG)
    await add_jobs(store, t, 5, tenant=SMALL)
    first = await claim(store, "w1", t + 1, limit=10)
    assert Counter(j.tenant for j in first) == {BIG: 2, SMALL: 5}
    # Fleet-wide: another worker gets nothing of BIG either.
    assert await claim(store, "w2", t + 2, limit=10) == []
    ended = next(j for j in first if j.tenant == BIG)
    await complete_all(store, "w1", [ended], t + 3)
    again = await claim(store, "w2", t + 4, limit=10)
    assert [j.tenant for j in again] == [BIG]
    assert await claim(store, "w1", t + 5, limit=10) == []


async def test_a_quota_of_zero_holds_a_tenant_back_and_lifting_it_releases_it(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await store.configure_tenant(BIG, max_running=0, now=t)
    await add_worker(store, t, "w1", concurrency=10)
    await add_jobs(store, t, 3, tenant=BIG)
    assert await claim(store, "w1", t + 1) == []
    await store.configure_tenant(BIG, max_running=None, now=t + 2)
    assert len(await claim(store, "w1", t + 3)) == 3


# -- queues ---------------------------------------------------------------------------------
async def test_a_paused_queue_hands_out_nothing_and_resumed_hands_out_again(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=100)
    held = await add_jobs(store, t, 3, queue="held", priority=10)
    other = await add_jobs(store, t, 2, queue="other")
    await store.configure_queue("held", paused=True, now=t)
    more = await add_job(store, t + 1, queue="held")  # a paused queue still accepts jobs
    got = await claim(store, "w1", t + 2)
    assert ids(got) == ids(other)
    assert await claim(store, "w1", t + 3) == []
    await store.configure_queue("held", paused=False, now=t + 4)
    assert ids(await claim(store, "w1", t + 5)) == [*ids(held), more.id]


async def test_queue_max_running_is_never_exceeded_across_two_workers(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await store.configure_queue("capped", max_running=3, now=t)
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    await add_jobs(store, t, 10, queue="capped")
    free = await add_job(store, t, queue="free")
    a = await claim(store, "w1", t + 1, limit=2)
    b = await claim(store, "w2", t + 1, limit=10)
    assert len(a) == 2
    assert sorted(j.queue for j in b) == ["capped", "free"]
    assert free.id in ids(b)
    assert await claim(store, "w1", t + 2) == []
    assert await claim(store, "w2", t + 2) == []
    await complete_all(store, "w1", a, t + 3)
    again = await claim(store, "w2", t + 4)
    assert [j.queue for j in again] == ["capped", "capped"]
    capped_running = [j for j in await running_jobs(store) if j.queue == "capped"]
    assert len(capped_running) == 3


async def test_rate_limit_hands_out_n_per_period_then_one_token_every_period_over_n(
    store: Store, clock: ManualClock
) -> None:
    """RateLimit(3, 6 s): 3 claims succeed at t, the 4th gets nothing, one more job every
    2 s (period / N) after that; the bucket never holds more than 3."""
    t = clock.now()
    await store.configure_queue("r", rate=RateLimit(3, 6.0), now=t)
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 20, queue="r")
    for _ in range(3):
        await claim_one(store, "w1", t)
    assert await claim(store, "w1", t) == []
    assert await claim(store, "w1", t + 1.9) == []
    assert len(await claim(store, "w1", t + 2.0, limit=10)) == 1
    assert await claim(store, "w1", t + 2.5) == []
    assert len(await claim(store, "w1", t + 4.0, limit=10)) == 1
    # A long idle time refills the bucket to its size, not more.
    assert len(await claim(store, "w1", t + 100, limit=10)) == 3
    assert await claim(store, "w1", t + 100) == []


async def test_rate_limited_queue_does_not_hold_back_other_queues(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await store.configure_queue("r", rate=RateLimit(1, 60.0), now=t)
    await add_worker(store, t, "w1", concurrency=100)
    await add_jobs(store, t, 5, queue="r", priority=5)
    others = await add_jobs(store, t, 3, queue="other")
    got = await claim(store, "w1", t, limit=10)
    assert Counter(j.queue for j in got) == {"r": 1, "other": 3}
    assert set(ids(others)) <= set(ids(got))


# -- concurrency keys ------------------------------------------------------------------------
async def test_concurrency_key_limit_one_across_two_workers(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    jobs = await add_jobs(store, t, 5, concurrency_key="repo-1")
    assert ids(await claim(store, "w1", t + 1)) == [jobs[0].id]
    assert await claim(store, "w2", t + 1) == []
    assert await claim(store, "w1", t + 1) == []
    running = await get(store, jobs[0].id)
    await complete_all(store, "w1", [running], t + 2)
    assert ids(await claim(store, "w2", t + 3)) == [jobs[1].id]


async def test_concurrency_key_limit_three(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    await add_jobs(store, t, 10, concurrency_key="customer-7", concurrency_limit=3)
    a = await claim(store, "w1", t + 1, limit=2)
    b = await claim(store, "w2", t + 1, limit=10)
    assert (len(a), len(b)) == (2, 1)
    assert await claim(store, "w1", t + 2) == []
    await complete_all(store, "w1", a, t + 3)
    assert len(await claim(store, "w2", t + 4)) == 2
    assert len([j for j in await running_jobs(store) if j.concurrency_key]) == 3


async def test_concurrency_keys_are_independent(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    k1 = await add_jobs(store, t, 3, concurrency_key="k1")
    k2 = await add_jobs(store, t, 3, concurrency_key="k2")
    plain = await add_jobs(store, t, 2)
    got = await claim(store, "w1", t + 1)
    assert sorted(ids(got)) == sorted([k1[0].id, k2[0].id, *ids(plain)])


async def test_a_full_key_does_not_block_jobs_behind_it(store: Store, clock: ManualClock) -> None:
    """100 jobs of key A (limit 1), then one of key B: two claims of limit 5 take A1 and
    B1, nothing else."""
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    a_jobs = await add_jobs(store, t, 100, concurrency_key="A")
    b1 = await add_job(store, t + 1, concurrency_key="B")
    first = await claim(store, "w1", t + 2, limit=5)
    second = await claim(store, "w2", t + 2, limit=5)
    assert sorted(ids(first + second)) == sorted([a_jobs[0].id, b1.id])


async def test_a_key_full_before_the_claim_does_not_block_jobs_behind_it(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    await add_jobs(store, t, 1, concurrency_key="A")
    await claim_one(store, "w1", t)  # key A is now full
    await add_jobs(store, t + 1, 100, concurrency_key="A")
    plain = await add_job(store, t + 2)
    assert ids(await claim(store, "w2", t + 3, limit=5)) == [plain.id]


async def test_many_full_keys_do_not_hide_a_claimable_job_behind_them(
    store: Store, clock: ManualClock
) -> None:
    """200 repositories each run one job (key limit 1) and have one more waiting; a job
    with no key submitted after them is still claimable."""
    t = clock.now()
    await add_worker(store, t, "busy", concurrency=1000)
    await add_worker(store, t, "w1", concurrency=10)
    await store.insert_jobs([new_job(t, {"r": r}, concurrency_key=f"repo-{r}") for r in range(200)])
    assert len(await claim(store, "busy", t, limit=1000)) == 200
    await store.insert_jobs(
        [new_job(t + 1, {"r": r}, concurrency_key=f"repo-{r}") for r in range(200)]
    )
    free = await add_job(store, t + 2)
    assert ids(await claim(store, "w1", t + 3, limit=5)) == [free.id]


async def test_a_job_is_held_to_its_own_concurrency_limit(store: Store, clock: ManualClock) -> None:
    """The key's running jobs are capped at the waiting job's ``concurrency_limit``: after
    the limit of a key was raised for new jobs, they may run beside an older job that was
    submitted with limit 1."""
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    await add_worker(store, t, "w2", concurrency=10)
    await add_job(store, t, concurrency_key="k", concurrency_limit=1)
    await claim_one(store, "w1", t)
    raised = await add_jobs(store, t + 1, 3, concurrency_key="k", concurrency_limit=3)
    assert ids(await claim(store, "w2", t + 2)) == ids(raised[:2])


# -- resources and label constraints -----------------------------------------------------------
async def test_a_job_needing_two_gpus_never_goes_to_a_worker_with_one(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "one-gpu", concurrency=10, gpu=1)
    await add_worker(store, t, "two-gpu", concurrency=10, gpu=2)
    big = await add_job(store, t, requirements=Requirements(gpu=2))
    second = await add_job(store, t, requirements=Requirements(gpu=2))
    small = await add_job(store, t, requirements=Requirements(gpu=1))
    assert ids(await claim(store, "one-gpu", t + 1)) == [small.id]
    assert await claim(store, "one-gpu", t + 2) == []
    # The two-GPU worker takes one two-GPU job; the second must wait for its GPUs.
    got = await claim(store, "two-gpu", t + 3)
    assert ids(got) == [big.id]
    assert await claim(store, "two-gpu", t + 4) == []
    await complete_all(store, "two-gpu", got, t + 5)
    assert await claim(store, "one-gpu", t + 6) == []
    assert ids(await claim(store, "two-gpu", t + 7)) == [second.id]


CONSTRAINT_JOBS: dict[str, dict[str, Any]] = {
    "eq": {"label": "zone", "op": "eq", "values": ["a"]},
    "ne": {"label": "zone", "op": "ne", "values": ["a"]},
    "in": {"label": "zone", "op": "in", "values": ["a", "b"]},
    "not_in": {"label": "zone", "op": "not_in", "values": ["a", "b"]},
    "exists": {"label": "gpu", "op": "exists"},
    "not_exists": {"label": "gpu", "op": "not_exists"},
}


@pytest.mark.parametrize(
    ("labels", "allowed"),
    [
        ({"zone": "a", "gpu": "t4"}, {"eq", "in", "exists"}),
        ({"zone": "b"}, {"ne", "in", "not_exists"}),
        ({"zone": "c", "gpu": ""}, {"ne", "not_in", "exists"}),
        ({}, {"ne", "not_in", "not_exists"}),
    ],
    ids=["zone-a-gpu", "zone-b", "zone-c-empty-gpu", "no-labels"],
)
async def test_label_constraint_operators(
    store: Store, clock: ManualClock, labels: dict[str, str], allowed: set[str]
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=20, labels=labels)
    by_id: dict[str, str] = {}
    for name, rule in CONSTRAINT_JOBS.items():
        job = await add_job(store, t, payload={"op": name}, requirements=constraints(rule))
        by_id[job.id] = name
    got = await claim(store, "w1", t + 1, limit=20)
    assert {by_id[j.id] for j in got} == allowed
    assert await claim(store, "w1", t + 2, limit=20) == []


async def test_constraints_combine_with_exact_labels_and_resources(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=20, gpu=1, labels={"zone": "a", "disk": "ssd"})
    rules = [{"label": "zone", "op": "in", "values": ["a", "b"]}]
    ok = await add_job(
        store,
        t,
        requirements=Requirements(
            gpu=1, labels={"disk": "ssd"}, constraints=parse_constraints("c", rules)
        ),
    )
    await add_job(
        store,
        t,
        requirements=Requirements(
            labels={"disk": "hdd"}, constraints=parse_constraints("c", rules)
        ),
    )
    await add_job(
        store, t, requirements=Requirements(gpu=2, constraints=parse_constraints("c", rules))
    )
    assert ids(await claim(store, "w1", t + 1)) == [ok.id]


@pytest.mark.parametrize("ahead", [16, 300, 5000])
async def test_unmet_constraints_do_not_hide_a_claimable_job_behind_them(
    store: Store, clock: ManualClock, ahead: int
) -> None:
    """Older jobs that only zone b may run; a worker in zone a still gets the job it may
    run behind them, however many they are."""
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, labels={"zone": "a"})
    rule = {"label": "zone", "op": "eq", "values": ["b"]}
    await store.insert_jobs(
        [new_job(t, {"i": i}, requirements=constraints(rule)) for i in range(ahead)]
    )
    mine = await add_job(store, t + 1)
    assert ids(await claim(store, "w1", t + 2, limit=5)) == [mine.id]


@pytest.mark.parametrize("ahead", [16, 300, 5000])
async def test_unmet_exact_labels_do_not_hide_a_claimable_job_behind_them(
    store: Store, clock: ManualClock, ahead: int
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, labels={"zone": "a"})
    await store.insert_jobs(
        [
            new_job(t, {"i": i}, requirements=Requirements(labels={"zone": "b"}))
            for i in range(ahead)
        ]
    )
    mine = await add_job(store, t + 1)
    assert ids(await claim(store, "w1", t + 2, limit=5)) == [mine.id]


async def test_a_preferred_worker_takes_the_job_it_is_preferred_for_first(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "in-a", concurrency=10, labels={"zone": "a"})
    await add_worker(store, t, "in-b", concurrency=10, labels={"zone": "b"})
    old = await add_jobs(store, t, 3)
    prefs = parse_preferences("p", [{"label": "zone", "values": ["a"], "weight": 5}])
    likes_a = await add_job(store, t + 1, preferences=prefs)
    assert likes_a.preferences == prefs
    assert (await claim_one(store, "in-a", t + 2)).id == likes_a.id
    # A worker that does not meet the preference takes jobs in submission order.
    assert [(await claim_one(store, "in-b", t + 3)).id for _ in range(3)] == ids(old)


async def test_a_worker_not_meeting_a_preference_takes_jobs_in_submission_order(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "in-b", concurrency=10, labels={"zone": "b"})
    prefs = parse_preferences("p", [{"label": "zone", "values": ["a"]}])
    first = await add_job(store, t, preferences=prefs)
    rest = await add_jobs(store, t + 1, 2)
    got = [(await claim_one(store, "in-b", t + 2)).id for _ in range(3)]
    assert got == [first.id, *ids(rest)]


async def test_preferences_rank_by_weight_and_never_beat_priority(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10, labels={"zone": "a", "disk": "ssd"})
    weak = parse_preferences("p", [{"label": "disk", "values": ["ssd"], "weight": 1}])
    strong = parse_preferences("p", [{"label": "zone", "values": ["a"], "weight": 10}])
    urgent = await add_job(store, t, priority=1)
    plain = await add_job(store, t)
    w = await add_job(store, t + 1, preferences=weak)
    s = await add_job(store, t + 2, preferences=strong)
    got = [(await claim_one(store, "w1", t + 3)).id for _ in range(4)]
    assert got == [urgent.id, s.id, w.id, plain.id]


async def test_a_preferred_job_behind_many_older_jobs_is_taken_first(
    store: Store, clock: ManualClock
) -> None:
    """Preferences order all claimable jobs of equal priority, not only the first few."""
    t = clock.now()
    await add_worker(store, t, "in-a", concurrency=10, labels={"zone": "a"})
    await add_jobs(store, t, 100)
    prefs = parse_preferences("p", [{"label": "zone", "values": ["a"], "weight": 5}])
    likes_a = await add_job(store, t + 1, preferences=prefs)
    assert (await claim_one(store, "in-a", t + 2)).id == likes_a.id


async def test_a_preferred_job_behind_many_jobs_preferring_other_workers_is_taken_first(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "in-a", concurrency=10, labels={"zone": "a"})
    likes_b = parse_preferences("p", [{"label": "zone", "values": ["b"], "weight": 5}])
    await store.insert_jobs([new_job(t, {"i": i}, preferences=likes_b) for i in range(100)])
    likes_a = parse_preferences("p", [{"label": "zone", "values": ["a"], "weight": 5}])
    mine = await add_job(store, t + 1, preferences=likes_a)
    assert (await claim_one(store, "in-a", t + 2)).id == mine.id


# -- dependencies --------------------------------------------------------------------------
async def test_a_child_is_blocked_until_every_parent_completes(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    p1 = await add_job(store, t, step="fetch")
    p2 = await add_job(store, t)
    child = await add_job(store, t + 1, depends_on=[p1.id, p2.id])
    assert child.status is JobStatus.BLOCKED
    assert child.deps_pending == 2
    assert child.depends_on == (p1.id, p2.id)
    assert await get(store, child.id) == child
    c1, c2 = await claim(store, "w1", t + 2)  # the blocked child is not claimable
    assert {c1.id, c2.id} == {p1.id, p2.id}
    assert await claim(store, "w1", t + 2) == []

    by_id = {c1.id: c1, c2.id: c2}
    await store.apply_reports("w1", [completed(by_id[p1.id], {"rows": 3})], t + 3)
    mid = await get(store, child.id)
    assert (mid.status, mid.deps_pending) == (JobStatus.BLOCKED, 1)
    assert await claim(store, "w1", t + 3) == []

    await store.apply_reports("w1", [completed(by_id[p2.id], [1, 2])], t + 4)
    ready = await get(store, child.id)
    assert (ready.status, ready.deps_pending) == (JobStatus.PENDING, 0)
    (claimed,) = await claim(store, "w1", t + 5)
    assert claimed.id == child.id
    # Parent results, keyed by the parent's step, or its id when it has none.
    assert claimed.parent_results == {"fetch": {"rows": 3}, p2.id: [1, 2]}


async def test_a_final_parent_failure_cancels_children_and_grandchildren(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, max_attempts=1)
    child = await add_job(store, t, depends_on=[parent.id])
    grandchild = await add_job(store, t, depends_on=[child.id])
    bystander = await add_job(store, t)
    assert grandchild.status is JobStatus.BLOCKED
    running = await claim_one(store, "w1", t + 1)
    assert running.id == parent.id
    await store.apply_reports("w1", [failed(running)], t + 2)
    assert (await get(store, parent.id)).status is JobStatus.FAILED
    c, g = await get(store, child.id), await get(store, grandchild.id)
    assert (c.status, error_kind(c)) == (JobStatus.CANCELLED, "dependency_failed")
    assert c.error is not None
    assert c.error["parent_id"] == parent.id
    assert c.finished_at == t + 2
    assert (g.status, error_kind(g)) == (JobStatus.CANCELLED, "dependency_failed")
    assert g.error is not None
    assert g.error["parent_id"] == child.id
    assert ids(await claim(store, "w1", t + 3)) == [bystander.id]


async def test_a_parent_failure_with_attempts_left_keeps_the_child_blocked(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, max_attempts=2)
    child = await add_job(store, t, depends_on=[parent.id])
    running = await claim_one(store, "w1", t + 1)
    await store.apply_reports("w1", [failed(running)], t + 2)
    assert (await get(store, parent.id)).status is JobStatus.PENDING
    assert (await get(store, child.id)).status is JobStatus.BLOCKED


async def test_on_parent_failure_run_releases_the_child(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, max_attempts=1)
    child = await add_job(store, t, depends_on=[parent.id], on_parent_failure="run")
    assert child.on_parent_failure == "run"
    running = await claim_one(store, "w1", t + 1)
    await store.apply_reports("w1", [failed(running)], t + 2)
    after = await get(store, child.id)
    assert (after.status, after.deps_pending, after.error) == (JobStatus.PENDING, 0, None)
    assert ids(await claim(store, "w1", t + 3)) == [child.id]


async def test_cancelling_a_parent_cancels_its_blocked_children(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    parent = await add_job(store, t)
    children = [await add_job(store, t, depends_on=[parent.id]) for _ in range(3)]
    runs_anyway = await add_job(store, t, depends_on=[parent.id], on_parent_failure="run")
    await store.cancel_job(parent.id, t + 1, "no longer needed")
    for child in children:
        after = await get(store, child.id)
        assert (after.status, error_kind(after)) == (JobStatus.CANCELLED, "dependency_failed")
    assert (await get(store, runs_anyway.id)).status is JobStatus.PENDING


async def test_cancelling_a_blocked_child_leaves_its_parent_alone(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    parent = await add_job(store, t)
    child = await add_job(store, t, depends_on=[parent.id])
    grandchild = await add_job(store, t, depends_on=[child.id])
    cancelled = await store.cancel_job(child.id, t + 1, "stop")
    assert cancelled.status is JobStatus.CANCELLED
    assert (await get(store, parent.id)).status is JobStatus.PENDING
    after = await get(store, grandchild.id)
    assert (after.status, error_kind(after)) == (JobStatus.CANCELLED, "dependency_failed")


@pytest.mark.parametrize(
    ("outcome", "on_failure", "expected"),
    [
        ("completed", "cancel", JobStatus.PENDING),
        ("failed", "cancel", JobStatus.CANCELLED),
        ("cancelled", "cancel", JobStatus.CANCELLED),
        ("failed", "run", JobStatus.PENDING),
    ],
)
async def test_a_parent_already_ended_at_submit_decides_the_first_status(
    store: Store, clock: ManualClock, outcome: str, on_failure: str, expected: JobStatus
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, max_attempts=1)
    if outcome == "cancelled":
        await store.cancel_job(parent.id, t + 1, "x")
    else:
        running = await claim_one(store, "w1", t + 1)
        report = completed(running) if outcome == "completed" else failed(running)
        await store.apply_reports("w1", [report], t + 1)
    child = await add_job(store, t + 2, depends_on=[parent.id], on_parent_failure=on_failure)
    assert child.status is expected
    assert child.deps_pending == 0
    assert await get(store, child.id) == child
    if expected is JobStatus.CANCELLED:
        assert error_kind(child) == "dependency_failed"
        assert child.finished_at == t + 2
    else:
        assert ids(await claim(store, "w1", t + 3)) == [child.id]


async def test_a_parent_still_pending_and_one_completed_leave_one_to_wait_for(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    done = await add_job(store, t, priority=1)
    waiting = await add_job(store, t)
    running = await claim_one(store, "w1", t)
    await store.apply_reports("w1", [completed(running)], t)
    child = await add_job(store, t + 1, depends_on=[done.id, waiting.id])
    assert (child.status, child.deps_pending) == (JobStatus.BLOCKED, 1)


async def test_an_unknown_parent_is_a_validation_error_naming_it(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    real = await add_job(store, t)
    with pytest.raises(ValidationError) as info:
        await add_job(store, t, depends_on=[real.id, "no-such-job"])
    assert info.value.field == "depends_on[1]"
    # Nothing was written.
    page = await store.list_jobs(JobQuery())
    assert ids(page.jobs) == [real.id]
    assert (await get(store, real.id)).status is JobStatus.PENDING


async def test_a_parent_in_another_tenant_is_a_validation_error(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    theirs = await add_job(store, t, tenant="other")
    with pytest.raises(ValidationError) as info:
        await add_job(store, t, tenant="mine", depends_on=[theirs.id])
    assert info.value.field == "depends_on[0]"
    assert [j.tenant for j in (await store.list_jobs(JobQuery())).jobs] == ["other"]


async def test_a_bad_parent_in_a_batch_names_the_job_and_refuses_the_batch(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    ok = new_job(t)
    bad = new_job(t, depends_on=[ok.id, "ghost"])
    with pytest.raises(ValidationError) as info:
        await store.insert_jobs([ok, bad])
    assert info.value.field == "jobs[1].depends_on[1]"
    assert (await store.list_jobs(JobQuery())).jobs == []


async def test_parents_earlier_in_the_same_batch(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    a = new_job(t, step="a")
    b = new_job(t, step="b", depends_on=[a.id])
    c = new_job(t, step="c", depends_on=[a.id, b.id])
    inserted = await store.insert_jobs([a, b, c])
    assert [(i.job.status, i.job.deps_pending) for i in inserted] == [
        (JobStatus.PENDING, 0),
        (JobStatus.BLOCKED, 1),
        (JobStatus.BLOCKED, 2),
    ]
    order: list[str] = []
    for step in range(3):
        (job,) = await claim(store, "w1", t + step + 1)
        order.append(job.step or "")
        await store.apply_reports("w1", [completed(job, {"step": job.step})], t + step + 1)
        if job.step == "c":
            assert job.parent_results == {"a": {"step": "a"}, "b": {"step": "b"}}
    assert order == ["a", "b", "c"]


async def test_a_parent_later_in_the_batch_is_refused(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    later = new_job(t)
    child = new_job(t, depends_on=[later.id])
    with pytest.raises(ValidationError) as info:
        await store.insert_jobs([child, later])
    assert info.value.field == "jobs[0].depends_on[0]"


async def test_ending_a_parent_from_the_same_batch_settles_its_children(
    store: Store, clock: ManualClock
) -> None:
    """A workflow submitted in one request: cancelling or failing its root reaches the
    steps that wait for it, as it does for a parent stored earlier."""
    t = clock.now()
    await add_worker(store, t, "w1")
    root = new_job(t, step="root", max_attempts=1)
    child = new_job(t, step="child", depends_on=[root.id])
    other_root = new_job(t, step="other-root")
    other_child = new_job(t, step="other-child", depends_on=[other_root.id])
    await store.insert_jobs([root, child, other_root, other_child])
    running = await claim_one(store, "w1", t + 1)
    assert running.id == root.id
    await store.apply_reports("w1", [failed(running)], t + 2)
    after = await get(store, child.id)
    assert (after.status, error_kind(after)) == (JobStatus.CANCELLED, "dependency_failed")
    await store.cancel_job(other_root.id, t + 3, "stop")
    after = await get(store, other_child.id)
    assert (after.status, error_kind(after)) == (JobStatus.CANCELLED, "dependency_failed")


async def test_the_reaper_failing_a_parent_settles_its_children(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, max_attempts=1)
    child = await add_job(store, t, depends_on=[parent.id])
    runs_anyway = await add_job(store, t, depends_on=[parent.id], on_parent_failure="run")
    await claim(store, "w1", t, ttl=5)
    reaped = await store.reap_expired(t + 10, 100)
    assert [(r.job.id, r.job.status) for r in reaped] == [(parent.id, JobStatus.FAILED)]
    after = await get(store, child.id)
    assert (after.status, error_kind(after)) == (JobStatus.CANCELLED, "dependency_failed")
    assert (await get(store, runs_anyway.id)).status is JobStatus.PENDING


async def test_retrying_a_cancelled_child_makes_it_pending(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    await add_worker(store, t, "w1")
    parent = await add_job(store, t, max_attempts=1)
    child = await add_job(store, t, depends_on=[parent.id])
    running = await claim_one(store, "w1", t + 1)
    assert running.id == parent.id
    await store.apply_reports("w1", [failed(running)], t + 2)
    assert (await get(store, child.id)).status is JobStatus.CANCELLED
    retried = await store.retry_job(child.id, t + 3, 1)
    assert (retried.status, retried.deps_pending, retried.error) == (JobStatus.PENDING, 0, None)
    assert retried.finished_at is None
    assert ids(await claim(store, "w1", t + 4)) == [child.id]


async def test_a_diamond_runs_in_dependency_order(store: Store, clock: ManualClock) -> None:
    t = clock.now()
    await add_worker(store, t, "w1", concurrency=10)
    a = new_job(t, step="a")
    b = new_job(t, step="b", depends_on=[a.id])
    c = new_job(t, step="c", depends_on=[a.id])
    d = new_job(t, step="d", depends_on=[b.id, c.id])
    await store.insert_jobs([a, b, c, d])
    waves: list[list[str]] = []
    for step in range(3):
        got = await claim(store, "w1", t + step + 1)
        waves.append(sorted(j.step or "" for j in got))
        await complete_all(store, "w1", got, t + step + 1)
    assert waves == [["a"], ["b", "c"], ["d"]]
    assert (await get(store, d.id)).status is JobStatus.COMPLETED


# -- groups ---------------------------------------------------------------------------------
# -- idempotency under concurrency --------------------------------------------------------------
async def test_concurrent_submits_with_one_idempotency_key_make_one_job(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    submits = [new_job(t, {"i": i}, tenant="acme", idempotency_key="once") for i in range(20)]
    results = await asyncio.gather(*(store.insert_jobs([s]) for s in submits))
    inserted = [r[0] for r in results]
    assert sum(i.created for i in inserted) == 1
    assert len({i.job.id for i in inserted}) == 1
    page = await store.list_jobs(JobQuery(tenant="acme"))
    assert len(page.jobs) == 1
    assert page.jobs[0].id == inserted[0].job.id


async def test_concurrent_batches_sharing_an_idempotency_key(
    store: Store, clock: ManualClock
) -> None:
    t = clock.now()
    batches = [
        [new_job(t, {"i": i}, idempotency_key="shared"), new_job(t, {"own": i})] for i in range(20)
    ]
    results = await asyncio.gather(*(store.insert_jobs(b) for b in batches))
    shared = {r[0].job.id for r in results}
    assert len(shared) == 1
    assert sum(r[0].created for r in results) == 1
    assert all(r[1].created for r in results)
    page = await store.list_jobs(JobQuery(limit=100))
    assert len(page.jobs) == 21
