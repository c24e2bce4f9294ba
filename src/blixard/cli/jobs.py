"""``blixard submit`` and ``blixard jobs list|get|cancel|retry|wait``."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

import click

from blixard.cli import output
from blixard.cli.job_input import job_payload, job_requirements
from blixard.cli.job_options import DURATION, LABEL, PREFERENCE, RULE, TIME, flag_error
from blixard.cli.options import json_option, option, server_option
from blixard.client import Client
from blixard.client.core import Calls, job_body
from blixard.errors import ValidationError

STATUSES = ("blocked", "pending", "claimed", "in_progress", "completed", "failed", "cancelled")


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("payload", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@option(
    "--type",
    "-t",
    "worker_types",
    multiple=True,
    help="Worker type(s) that may run it (default: process for a command, else any).",
)
@option("--queue", "-q", default="default", show_default=True)
@option("--tenant", default="default", show_default=True)
@option("--priority", "-p", type=int, default=0, show_default=True, help="Higher runs first.")
@option("--max-attempts", type=click.IntRange(1, 1000), default=3, show_default=True)
@option("--timeout", "timeout_s", type=click.FloatRange(0.001), help="Seconds per attempt.")
@option(
    "--delay", "delay_s", type=DURATION, help="Not before this long from now: 30, 30s, 5m, 1h30m."
)
@option("--run-at", type=TIME, help="Not before this ISO 8601 time (no offset: local time).")
@option("--idempotency-key", help="A second submit with this key returns the first job.")
@option(
    "--after",
    "after",
    multiple=True,
    metavar="JOB_ID",
    help="Run once this job ended (repeatable; same tenant). See --on-parent-failure.",
)
@option(
    "--on-parent-failure",
    type=click.Choice(["cancel", "run"]),
    help="When a parent fails or is cancelled: cancel this job (default) or run it anyway.",
)
@option("--group", "group_id", help="Join this group of jobs.")
@option("--cpus", type=click.FloatRange(0), help="CPU cores the job needs.")
@option(
    "--memory-mb",
    "--memory",
    "memory_mb",
    type=click.IntRange(0),
    envvar=["BLIXARD_MEMORY_MB", "BLIXARD_MEMORY"],
    help="Memory (MB) the job needs.",
)
@option("--gpus", type=click.IntRange(0), help="GPUs the job needs.")
@option("--label", "labels", multiple=True, type=LABEL, help="KEY=VALUE the worker must carry.")
@option(
    "--constraint",
    "constraints",
    multiple=True,
    type=RULE,
    help="A label rule the worker must meet: 'zone != us', 'zone in a,b', 'zone not in c', "
    "'gpu exists', 'gpu not exists' (repeatable).",
)
@option(
    "--prefer",
    "preferences",
    multiple=True,
    type=PREFERENCE,
    help="Rather a worker with this label: zone=a or zone=a,b:WEIGHT (1-1000; repeatable).",
)
@option("--concurrency-key", help="At most --concurrency-limit jobs with this key run at once.")
@option(
    "--concurrency-limit",
    type=click.IntRange(1),
    help="With --concurrency-key (default 1): running jobs with the key, fleet-wide.",
)
@option("--env", "env", multiple=True, help="KEY=VALUE for a command's environment.")
@option("--cwd", help="Working directory for a command.")
@option("--shell", is_flag=True, help="Run the command through /bin/sh -c.")
@option("--wait", "-w", is_flag=True, help="Follow the job; exit with its outcome.")
@option(
    "--wait-timeout", type=click.FloatRange(0), help="Give up waiting after N seconds (exit 124)."
)
@server_option
@json_option
def submit(
    payload: str | None,
    command: tuple[str, ...],
    worker_types: tuple[str, ...],
    queue: str,
    tenant: str,
    priority: int,
    max_attempts: int,
    timeout_s: float | None,
    delay_s: float | None,
    run_at: datetime | None,
    idempotency_key: str | None,
    after: tuple[str, ...],
    on_parent_failure: str | None,
    group_id: str | None,
    cpus: float | None,
    memory_mb: int | None,
    gpus: int | None,
    labels: tuple[tuple[str, str], ...],
    constraints: tuple[dict[str, Any], ...],
    preferences: tuple[dict[str, Any], ...],
    concurrency_key: str | None,
    concurrency_limit: int | None,
    env: tuple[str, ...],
    cwd: str | None,
    shell: bool,
    wait: bool,
    wait_timeout: float | None,
    server: str,
    as_json: bool,
) -> None:
    """Submit a job: a JSON PAYLOAD, or a command after -- (a process job).

    \b
      blixard submit --wait -- echo hello
      blixard submit '{"function": "mymod:run", "kwargs": {"n": 3}}' --type python
      blixard submit --after JOB_ID --cpus 2 --label gpu=a100 --delay 5m -- ./train.sh
    """
    if delay_s is not None and run_at is not None:
        raise click.UsageError("give --delay or --run-at, not both")
    if concurrency_limit is not None and concurrency_key is None:
        raise click.BadParameter("needs --concurrency-key", param_hint="--concurrency-limit")
    body_payload, is_command = job_payload(payload, command, shell=shell, env=env, cwd=cwd)
    requirements = job_requirements(
        cpus=cpus, memory_mb=memory_mb, gpus=gpus, labels=dict(labels), constraints=constraints
    )
    body = job_body(
        body_payload,
        queue=queue,
        tenant=tenant,
        worker_types=list(worker_types) or (["process"] if is_command else []),
        requirements=requirements,
        priority=priority,
        delay_s=delay_s,
        run_at=run_at,
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        idempotency_key=idempotency_key,
        depends_on=after,
        on_parent_failure=on_parent_failure,
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
        group_id=group_id,
        preferences=preferences,
    )
    with Client(server) as client:
        try:
            job = client.call(Calls.submit(body))
        except ValidationError as exc:
            raise flag_error(exc) or exc from None
        if not wait:
            if as_json:
                output.print_json(job)
            else:
                click.echo(job["id"])
            return
        if not as_json:
            output.err.print(f"job {job['id']} submitted", highlight=False)
        final = _follow(client, job["id"], wait_timeout, quiet=as_json)
    sys.exit(_finish(final, as_json))


def _follow(client: Client, job_id: str, timeout_s: float | None, *, quiet: bool) -> dict[str, Any]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = (None, 0)
    while True:
        step = 2.0 if deadline is None else max(0.0, min(2.0, deadline - time.monotonic()))
        job = client.wait(job_id, step)
        state = (job["status"], job["attempt"])
        if state != seen and not quiet:
            _narrate(job)
        seen = state
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        if deadline is not None and time.monotonic() >= deadline:
            return job


def _narrate(job: dict[str, Any]) -> None:
    status = job["status"]
    if status == "pending" and job["attempt"] > 0 and job.get("error"):
        error = job["error"]
        output.err.print(
            f"attempt {job['attempt']} failed ({error.get('kind')}: "
            f"{error.get('message')}); retrying {output.ago(job['run_at'])}",
            highlight=False,
        )
    elif status == "blocked":
        output.err.print(f"waiting for {job.get('deps_pending', 0)} parent job(s)", highlight=False)
    elif status in ("claimed", "in_progress"):
        output.err.print(
            f"attempt {job['attempt']} {status.replace('_', ' ')} on {job['claimed_by']}",
            highlight=False,
        )


def _finish(job: dict[str, Any], as_json: bool) -> int:
    status = job["status"]
    if as_json:
        output.print_json(job)
    else:
        result = job.get("result")
        if isinstance(result, dict) and "stdout" in result and "exit_code" in result:
            sys.stdout.write(result.get("stdout") or "")
            sys.stderr.write(result.get("stderr") or "")
        elif status == "completed":
            output.print_json(result)
        error = job.get("error") or {}
        if status == "failed":
            sys.stdout.write(error.get("stdout") or "")
            sys.stderr.write(error.get("stderr") or "")
            output.err.print(
                f"[red]failed[/] after {job['attempt']} attempt(s): "
                f"{error.get('kind')}: {error.get('message')}",
                highlight=False,
            )
        elif status == "cancelled":
            output.err.print(f"[magenta]cancelled[/]: {error.get('message', '')}", highlight=False)
    if status == "completed":
        return 0
    if status in ("failed", "cancelled"):
        code = (job.get("error") or {}).get("exit_code")
        return code if isinstance(code, int) and 0 < code < 124 else 1
    return 124  # still running when the wait ran out


@click.group()
def jobs() -> None:
    """List, inspect, cancel, retry and wait for jobs."""


@jobs.command("list")
@option("--status", "statuses", multiple=True, type=click.Choice(STATUSES))
@option("--queue", "-q")
@option("--tenant")
@option("--type", "worker_type", help="Jobs that name this worker type.")
@option("--group", "group_id", help="Jobs of this group (a bulk submit or a workflow).")
@option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@option("--cursor", help="Continue from a previous page's next_cursor.")
@server_option
@json_option
def list_jobs(
    statuses: tuple[str, ...],
    queue: str | None,
    tenant: str | None,
    worker_type: str | None,
    group_id: str | None,
    limit: int,
    cursor: str | None,
    server: str,
    as_json: bool,
) -> None:
    """Jobs, newest first."""
    with Client(server) as client:
        page = client.list_jobs(
            status=statuses,
            queue=queue,
            tenant=tenant,
            worker_type=worker_type,
            group_id=group_id,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        output.print_json(page)
        return
    output.console.print(output.jobs_table(page["jobs"]))
    if page["next_cursor"]:
        output.err.print(f"more: --cursor {page['next_cursor']}", highlight=False)


@jobs.command("get")
@click.argument("job_id")
@server_option
@json_option
def get_job(job_id: str, server: str, as_json: bool) -> None:
    """A job with every attempt."""
    with Client(server) as client:
        job = client.get(job_id)
    if as_json:
        output.print_json(job)
    else:
        output.job_detail(job)


@jobs.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@option("--reason", default="cancelled by request", show_default=True)
@server_option
@json_option
def cancel(job_ids: tuple[str, ...], reason: str, server: str, as_json: bool) -> None:
    """Cancel pending or running jobs (running ones are killed on their worker)."""
    with Client(server) as client:
        done = [client.cancel(job_id, reason) for job_id in job_ids]
    if as_json:
        output.print_json(done if len(done) > 1 else done[0])
    else:
        for job in done:
            output.console.print(f"{job['id']} {output.status(job['status'])}")


@jobs.command("retry")
@click.argument("job_id")
@option(
    "--attempts",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Attempts added to the job's budget.",
)
@server_option
@json_option
def retry(job_id: str, attempts: int, server: str, as_json: bool) -> None:
    """Run a failed or cancelled job again."""
    with Client(server) as client:
        job = client.retry(job_id, attempts)
    if as_json:
        output.print_json(job)
    else:
        output.console.print(f"{job['id']} {output.status(job['status'])}")


@jobs.command("wait")
@click.argument("job_id")
@option(
    "--timeout", "timeout_s", type=click.FloatRange(0), help="Give up after N seconds (exit 124)."
)
@server_option
@json_option
def wait_job(job_id: str, timeout_s: float | None, server: str, as_json: bool) -> None:
    """Wait until a job is terminal; exit 0 if it completed."""
    with Client(server) as client:
        job = client.wait(job_id, timeout_s)
    sys.exit(_finish(job, as_json))
