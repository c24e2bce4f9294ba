"""Plans for agent reports and lease expiry: pure decisions that SQL drivers only execute.

A driver reads the current state of the jobs concerned inside its transaction, asks
``plan_reports`` / ``plan_expiry`` what to do, and applies the resulting writes, each still
guarded by a compare-and-set in SQL.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from blixard.domain.jobs import error_info
from blixard.domain.retry import Backoff, decide_after_failure
from blixard.domain.states import COMPLETE, START, JobStatus


class ReportKind(enum.StrEnum):
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Report:
    """What an agent says about one job it was given: started, completed or failed."""

    job_id: str
    attempt: int
    kind: ReportKind
    result: Any = None
    error: dict[str, Any] | None = None
    retryable: bool = True
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReportResult:
    job_id: str
    applied: bool
    status: JobStatus | None  # the job's status after the report (None: no such job)
    reason: str = ""


@dataclass(slots=True)
class JobState:
    """The part of a job a report or an expiry depends on."""

    id: str
    status: JobStatus
    claimed_by: str | None
    attempt: int
    max_attempts: int
    backoff: Backoff
    claimed_at: float | None
    started_at: float | None
    deadline_at: float | None = None
    has_dependants: bool = False  # some job depends on this one: its end settles them


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    job_id: str
    attempt: int
    worker_id: str | None
    claimed_at: float | None
    started_at: float | None
    finished_at: float
    outcome: str
    error: dict[str, Any] | None


@dataclass(slots=True)
class WritePlan:
    """Guarded writes, each carrying (job_id, worker_id, attempt) for the compare-and-set."""

    starts: list[tuple[str, float]] = field(default_factory=list)  # (job_id, started_at)
    completes: list[tuple[str, Any, float]] = field(default_factory=list)  # result, started_at
    requeues: list[tuple[str, float, dict[str, Any] | None]] = field(default_factory=list)
    fails: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    guard: dict[str, tuple[str, int]] = field(default_factory=dict)  # job -> (worker, attempt)
    # Jobs with dependants that this plan ends (completed or failed), and how.
    ended_parents: dict[str, JobStatus] = field(default_factory=dict)


def _rejection(state: JobState | None, worker_id: str, report: Report) -> str:
    if state is None:
        return "not_found"
    if report.kind is ReportKind.STARTED:
        allowed = START.allows(state.status)
    else:
        allowed = COMPLETE.allows(state.status)  # complete, requeue and fail share sources
    if not allowed:
        return f"invalid_transition: {state.status}"
    if state.claimed_by != worker_id:
        return "not_claimed_by_worker"
    if state.attempt != report.attempt:
        return "stale_attempt"
    return ""


def _end_attempt(
    plan: WritePlan,
    state: JobState,
    worker_id: str | None,
    *,
    now: float,
    u: float,
    error: dict[str, Any] | None,
    retryable: bool,
    outcome: str,
) -> JobStatus:
    plan.attempts.append(
        AttemptRecord(
            state.id,
            state.attempt,
            worker_id,
            state.claimed_at,
            state.started_at,
            now,
            outcome,
            error,
        )
    )
    decision = decide_after_failure(
        attempt=state.attempt,
        max_attempts=state.max_attempts,
        backoff=state.backoff,
        retryable=retryable,
        now=now,
        u=u,
    )
    if decision.requeue:
        assert decision.run_at is not None
        plan.requeues.append((state.id, decision.run_at, error))
        state.status, state.claimed_by = JobStatus.PENDING, None
    else:
        plan.fails.append((state.id, error))
        state.status = JobStatus.FAILED
        if state.has_dependants:
            plan.ended_parents[state.id] = JobStatus.FAILED
    return state.status


def plan_reports(
    worker_id: str,
    reports: Sequence[Report],
    states: dict[str, JobState],
    now: float,
    rng: random.Random,
) -> tuple[list[ReportResult], WritePlan]:
    """Decide every report in order; ``states`` is updated as the reports apply."""
    plan = WritePlan()
    results: list[ReportResult] = []
    for report in reports:
        state = states.get(report.job_id)
        reason = _rejection(state, worker_id, report)
        if reason:
            status = state.status if state else None
            results.append(ReportResult(report.job_id, False, status, reason))
            continue
        assert state is not None
        plan.guard.setdefault(state.id, (worker_id, state.attempt))
        if report.kind is ReportKind.STARTED:
            state.started_at = report.started_at or now
            state.status = JobStatus.IN_PROGRESS
            plan.starts.append((state.id, state.started_at))
        elif report.kind is ReportKind.COMPLETED:
            state.started_at = state.started_at or report.started_at or now
            state.status = JobStatus.COMPLETED
            plan.completes.append((state.id, report.result, state.started_at))
            if state.has_dependants:
                plan.ended_parents[state.id] = JobStatus.COMPLETED
            plan.attempts.append(
                AttemptRecord(
                    state.id,
                    state.attempt,
                    worker_id,
                    state.claimed_at,
                    state.started_at,
                    now,
                    "completed",
                    None,
                )
            )
        else:
            state.started_at = state.started_at or report.started_at
            _end_attempt(
                plan,
                state,
                worker_id,
                now=now,
                u=rng.random(),
                error=report.error,
                retryable=report.retryable,
                outcome="failed",
            )
        results.append(ReportResult(report.job_id, True, state.status))
    return results, plan


def expiry_reason(state: JobState, now: float) -> str:
    if state.deadline_at is not None and state.deadline_at <= now:
        return "timeout"
    return "lease_expired"


def plan_expiry(
    states: Sequence[JobState], now: float, rng: random.Random
) -> tuple[list[tuple[str, str]], WritePlan]:
    """Requeue or fail every job whose lease expired; (job_id, reason) for each."""
    plan = WritePlan()
    reasons: list[tuple[str, str]] = []
    for state in states:
        reason = expiry_reason(state, now)
        worker = state.claimed_by
        message = (
            f"attempt {state.attempt} exceeded its timeout"
            if reason == "timeout"
            else f"worker {worker} stopped renewing the lease of attempt {state.attempt}"
        )
        assert worker is not None
        plan.guard[state.id] = (worker, state.attempt)
        _end_attempt(
            plan,
            state,
            worker,
            now=now,
            u=rng.random(),
            error=error_info(reason, message, worker=worker),
            retryable=True,
            outcome=reason,
        )
        reasons.append((state.id, reason))
    return reasons, plan
