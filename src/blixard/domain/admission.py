"""Which of the claimable jobs a claim takes: fairness between tenants and every limit.

Pure: no I/O. A driver fetches, per tenant, the due pending jobs the worker could run (type
and exact labels already filtered, in claim order: priority, then run_at, then id), plus the
state of the limits; ``Admission`` picks. The same code decides for SQLite and PostgreSQL.

Fairness (documented in the README): **weighted fair share of running jobs**. A claim serves
the tenant with the fewest running jobs per unit of weight first, one job at a time, and
re-ranks after each job; ties go to the tenant served least recently, then by name. So a
tenant with a backlog of 10,000 jobs and a tenant that submits 10 alternate job by job, and
with weights 2 and 1 the first holds twice the running jobs of the second under contention.
Within a tenant, jobs go by priority, then by the worker's affinity for them (preferences),
then in submission order.

Limits: a paused queue hands out nothing; a queue's ``max_running`` and a tenant's
``max_running`` cap the jobs claimed or running at once across the fleet; a queue's rate
limit caps starts through a token bucket; a job's ``concurrency_key`` caps the running jobs
that share the key at the job's ``concurrency_limit``. The driver makes the counts exact by
serialising claims that touch the same limit (row and advisory locks on PostgreSQL, the
single writer on SQLite).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from blixard.domain.constraints import Preference, affinity, allowed
from blixard.domain.jobs import Requirements
from blixard.domain.placement import Capacity
from blixard.domain.queues import Queue, Tenant


@dataclass(frozen=True, slots=True)
class Candidate:
    """A claimable job, as much of it as the choice needs."""

    id: str
    tenant: str
    queue: str
    priority: int
    requirements: Requirements
    run_at: float = 0.0
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    preferences: tuple[Preference, ...] = ()


@dataclass(slots=True)
class _QueueState:
    paused: bool
    room: float  # jobs that may still start: min(max_running - running, whole tokens)
    tokens_used: int = 0


@dataclass(slots=True)
class LimitState:
    """The limits as they stand when the claim starts.

    ``queues``: every restricted queue (paused, capped or rate-limited), with
    ``queue_running`` and ``tokens`` (refilled to now) for it. ``tenants``: every known
    tenant with its running count in ``tenant_running``. ``key_running``: running jobs per
    concurrency key, for the keys among the candidates.
    """

    queues: Mapping[str, Queue] = field(default_factory=dict)
    queue_running: Mapping[str, int] = field(default_factory=dict)
    tokens: Mapping[str, float] = field(default_factory=dict)
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    tenant_running: Mapping[str, int] = field(default_factory=dict)
    key_running: Mapping[str, int] = field(default_factory=dict)

    def blocked_queues(self) -> list[str]:
        """Queues a claim can skip outright: paused, full, or out of tokens."""
        return sorted(name for name, q in self.queues.items() if self._blocks(name, q))

    def _blocks(self, name: str, q: Queue) -> bool:
        full = q.max_running is not None and self.queue_running.get(name, 0) >= q.max_running
        dry = q.rate is not None and self.tokens.get(name, 0.0) < 1
        return q.paused or full or dry

    def tenants_at_quota(self) -> list[str]:
        return sorted(
            name
            for name, t in self.tenants.items()
            if t.max_running is not None and self.tenant_running.get(name, 0) >= t.max_running
        )


class Admission:
    """One claim's choice, possibly over several rounds of candidates (a driver fetches
    more for the tenants whose page ran out while the worker still has room)."""

    def __init__(
        self,
        capacity: Capacity,
        worker_labels: Mapping[str, str],
        limits: LimitState,
    ) -> None:
        self.capacity = capacity
        self._labels = worker_labels
        self._limits = limits
        self._queues: dict[str, _QueueState] = {}
        for name, q in limits.queues.items():
            room = float("inf")
            if q.max_running is not None:
                room = q.max_running - limits.queue_running.get(name, 0)
            if q.rate is not None:
                room = min(room, int(limits.tokens.get(name, 0.0)))
            self._queues[name] = _QueueState(q.paused, room)
        self._tenant_running = dict(limits.tenant_running)
        self._key_running = dict(limits.key_running)
        self.chosen: list[str] = []
        self.served: set[str] = set()  # tenants that got a job
        self.contended = False  # whether two or more tenants offered jobs
        # Running jobs per key as read without the key's lock: only to skip, in SQL, jobs
        # whose own limit the key already reaches (exact counts are in _key_running).
        self._key_hint: dict[str, int] = {}

    def add_key_hints(self, counts: Iterable[tuple[str, int]]) -> None:
        """Running jobs per key when the claim starts (read without locks)."""
        self._key_hint.update(counts)

    def busy_keys(self) -> dict[str, int]:
        """Running jobs per key, exact where counted under the key's lock, for a driver to
        skip the jobs whose own ``concurrency_limit`` the key already reaches."""
        return {**self._key_hint, **self._key_running}

    def add_key_counts(self, counts: Mapping[str, int]) -> None:
        """Running jobs of concurrency keys met for the first time in this claim."""
        for key, running in counts.items():
            self._key_running.setdefault(key, running)

    @property
    def done(self) -> bool:
        return self.capacity.slots <= 0

    def tokens_used(self) -> dict[str, int]:
        return {name: q.tokens_used for name, q in self._queues.items() if q.tokens_used}

    def blocked_queues(self) -> list[str]:
        return sorted(n for n, q in self._queues.items() if q.paused or q.room < 1)

    def _tenant_full(self, tenant: str) -> bool:
        t = self._limits.tenants.get(tenant)
        return (
            t is not None
            and t.max_running is not None
            and self._tenant_running.get(tenant, 0) >= t.max_running
        )

    def _rank(self, tenant: str) -> tuple[float, float, str]:
        t = self._limits.tenants.get(tenant)
        weight = t.weight if t is not None else 1.0
        served_at = t.served_at if t is not None else 0.0
        if tenant in self.served:
            served_at = float("inf")  # served in this claim: behind those not yet served
        return (self._tenant_running.get(tenant, 0) / weight, served_at, tenant)

    def _acceptable(self, c: Candidate) -> bool:
        q = self._queues.get(c.queue)
        if q is not None and (q.paused or q.room < 1):
            return False
        if c.concurrency_key is not None:
            limit = c.concurrency_limit or 1
            if self._key_running.get(c.concurrency_key, 0) >= limit:
                return False
        req = c.requirements
        if req.constraints and not allowed(req.constraints, self._labels):
            return False
        return self.capacity.fits(req)

    def _take(self, c: Candidate) -> None:
        self.capacity.take(c.requirements)
        self.chosen.append(c.id)
        self.served.add(c.tenant)
        self._tenant_running[c.tenant] = self._tenant_running.get(c.tenant, 0) + 1
        q = self._queues.get(c.queue)
        if q is not None:
            q.room -= 1
            q.tokens_used += 1
        if c.concurrency_key is not None:
            self._key_running[c.concurrency_key] = self._key_running.get(c.concurrency_key, 0) + 1

    def offer(self, pages: Mapping[str, Sequence[Candidate]]) -> set[str]:
        """Choose from one round of candidates (per tenant, in claim order). Returns the
        tenants whose candidates all went by without exhausting the worker's room: a
        driver fetches more of those (if their page was full) for another round."""
        if len([t for t, page in pages.items() if page]) > 1:
            self.contended = True
        cursors: dict[str, list[Candidate]] = {}
        for tenant, page in pages.items():
            if page and not self._tenant_full(tenant):
                cursors[tenant] = _by_preference(page, self._labels)
        positions = dict.fromkeys(cursors, 0)
        heap = [(self._rank(t), t) for t in cursors]
        heapq.heapify(heap)
        exhausted: set[str] = set()
        while heap and not self.done:
            _, tenant = heapq.heappop(heap)
            page, i = cursors[tenant], positions[tenant]
            while i < len(page) and not self._acceptable(page[i]):
                i += 1
            if i >= len(page):
                exhausted.add(tenant)
                continue
            self._take(page[i])
            positions[tenant] = i + 1
            if self._tenant_full(tenant):
                continue
            heapq.heappush(heap, (self._rank(tenant), tenant))
        return exhausted


MAX_ROUNDS = 10  # pages of 16 to 8192 rows per tenant: up to ~16,000 rows passed over

Position = tuple[Any, Any, Any]
"""Where a tenant's next page starts: the (priority, run_at, id) of its last row fetched,
or (None, None, None) before the first page."""


@dataclass(slots=True)
class Paging:
    """Which tenants a claim fetches claimable jobs for, from where, and how many a page.

    Fair shares split the worker's room between tenants: each tenant's first page covers
    its even share and a little more; tenants that need more (jobs passed over, a bigger
    share) get further pages, each twice as long. Tenants at their quota get none."""

    tenants: list[str]
    page_size: int
    after: dict[str, Position]

    @classmethod
    def start(cls, limits: LimitState, slots: int) -> Paging:
        at_quota = set(limits.tenants_at_quota())
        tenants = [t for t in sorted(limits.tenants) if t not in at_quota]
        share = -(-slots // max(1, len(tenants)))
        return cls(
            tenants=tenants,
            page_size=max(16, share + share // 4 + 8),
            after={t: (None, None, None) for t in tenants},
        )

    def next_round(
        self, full: set[str], exhausted: set[str], pages: Mapping[str, Sequence[Candidate]]
    ) -> None:
        """After ``Admission.offer``: keep the tenants whose page was full (``full``) and
        either went by without a fit (``exhausted``) or held only jobs already seen."""
        self.tenants = [t for t in self.tenants if t in full and (t in exhausted or not pages[t])]
        self.page_size *= 2


def merge_pages(page: Sequence[Candidate], preferring: Sequence[Candidate]) -> list[Candidate]:
    """A tenant's page of claimable jobs plus its jobs with preferences (fetched apart, so a
    preferred job far behind older ones still competes), in claim order, each once."""
    if not preferring:
        return list(page)
    known = {c.id for c in page}
    merged = [*page, *(c for c in preferring if c.id not in known)]
    merged.sort(key=lambda c: (-c.priority, c.run_at, c.id))
    return merged


def _by_preference(page: Sequence[Candidate], labels: Mapping[str, str]) -> list[Candidate]:
    """Claim order, except that among equal priorities the jobs this worker is preferred
    for come first (a stable sort keeps submission order otherwise)."""
    if not any(c.preferences for c in page):
        return list(page)
    return sorted(page, key=lambda c: (-c.priority, -affinity(c.preferences, labels)))


def served_under_contention(admission: Admission) -> Iterable[str]:
    """The tenants whose round-robin position moves (only when tenants competed)."""
    return sorted(admission.served) if admission.contended else ()
