"""``blixard schedules create|list|get|pause|resume|delete``: cron schedules."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from blixard.cli import output
from blixard.cli.job_input import job_payload, job_requirements
from blixard.cli.options import json_option, option, parse_pairs, server_option
from blixard.client import Client
from blixard.client.core import Calls, job_body, schedule_body


@click.group()
def schedules() -> None:
    """Cron schedules: jobs submitted at every slot of a cron expression."""


@schedules.command("create", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.argument("payload", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@option(
    "--cron",
    required=True,
    help="5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, "
    "or @yearly/@monthly/@weekly/@daily/@hourly.",
)
@option(
    "--timezone",
    "--tz",
    "timezone",
    default="UTC",
    show_default=True,
    help="IANA time zone the expression is read in (Europe/Paris...).",
)
@option(
    "--misfire",
    type=click.Choice(["skip", "catch_up"]),
    default="skip",
    show_default=True,
    help="Slots missed by more than 60 s: skip drops them; catch_up fires them all.",
)
@option("--no-overlap", is_flag=True, help="Drop slots while the previous job is not done.")
@option("--paused", is_flag=True, help="Create it paused (blixard schedules resume ID).")
@option("--tenant", default="default", show_default=True)
@option(
    "--type",
    "-t",
    "worker_types",
    multiple=True,
    help="Worker type(s) that may run its jobs (default: process for a command, else any).",
)
@option("--queue", "-q", default="default", show_default=True)
@option("--priority", "-p", type=int, default=0, show_default=True, help="Higher runs first.")
@option("--max-attempts", type=click.IntRange(1, 1000), default=3, show_default=True)
@option("--timeout", "timeout_s", type=click.FloatRange(0.001), help="Seconds per attempt.")
@option("--cpus", type=click.FloatRange(0), help="CPU cores each job needs.")
@option("--memory", "memory_mb", type=click.IntRange(0), help="Memory (MB) each job needs.")
@option("--gpus", type=click.IntRange(0), help="GPUs each job needs.")
@option("--label", "labels", multiple=True, help="KEY=VALUE the worker must carry.")
@option("--env", "env", multiple=True, help="KEY=VALUE for a command's environment.")
@option("--cwd", help="Working directory for a command.")
@option("--shell", is_flag=True, help="Run the command through /bin/sh -c.")
@server_option
@json_option
def create(
    name: str,
    payload: str | None,
    command: tuple[str, ...],
    cron: str,
    timezone: str,
    misfire: str,
    no_overlap: bool,
    paused: bool,
    tenant: str,
    worker_types: tuple[str, ...],
    queue: str,
    priority: int,
    max_attempts: int,
    timeout_s: float | None,
    cpus: float | None,
    memory_mb: int | None,
    gpus: int | None,
    labels: tuple[str, ...],
    env: tuple[str, ...],
    cwd: str | None,
    shell: bool,
    server: str,
    as_json: bool,
) -> None:
    """Create schedule NAME firing a JSON PAYLOAD, or a command after --; prints its id.

    \b
      blixard schedules create nightly --cron '0 3 * * *' --tz Europe/Paris -- ./backup.sh
      blixard schedules create ping --cron '*/5 * * * *' '{"url": "..."}' --type http
    """
    body_payload, is_command = job_payload(payload, command, shell=shell, env=env, cwd=cwd)
    requirements = job_requirements(
        cpus=cpus, memory_mb=memory_mb, gpus=gpus, labels=parse_pairs(labels, "--label")
    )
    job = job_body(
        body_payload,
        queue=queue,
        worker_types=list(worker_types) or (["process"] if is_command else []),
        requirements=requirements,
        priority=priority,
        max_attempts=max_attempts,
        timeout_s=timeout_s,
    )
    body = schedule_body(
        name,
        cron,
        job,
        tenant=tenant,
        timezone=timezone,
        misfire=misfire,
        no_overlap=no_overlap,
        paused=paused,
    )
    with Client(server) as client:
        created = client.call(Calls.create_schedule(body))
    if as_json:
        output.print_json(created)
    else:
        click.echo(created["id"])
        output.err.print(
            f"schedule {created['name']!r}: next slot {created['next_fire_at']} "
            f"({output.ago(created['next_fire_at'])})",
            highlight=False,
        )


@schedules.command("list")
@option("--tenant", help="Only this tenant's schedules.")
@server_option
@json_option
def list_schedules(tenant: str | None, server: str, as_json: bool) -> None:
    """Schedules, by tenant and name."""
    with Client(server) as client:
        found = client.schedules(tenant)
    if as_json:
        output.print_json(found)
        return
    table = Table(box=None, header_style="bold")
    for col in ("ID", "NAME", "TENANT", "CRON", "TIMEZONE", "STATE", "NEXT", "LAST FIRED"):
        table.add_column(col, no_wrap=True)
    for s in found:
        table.add_row(
            s["id"],
            s["name"],
            s["tenant"],
            s["cron"],
            s["timezone"],
            _state(s),
            "-" if s["paused"] else output.ago(s["next_fire_at"]),
            output.ago(s["last_fired_at"]),
        )
    output.console.print(table)


def _state(s: dict[str, Any]) -> str:
    if s["paused"]:
        return "[yellow]paused[/]"
    extra = ", no overlap" if s["no_overlap"] else ""
    return f"[green]active[/] ({s['misfire']}{extra})"


@schedules.command("get")
@click.argument("schedule_id")
@option("--upcoming", type=click.IntRange(0, 100), default=5, show_default=True)
@option("--jobs", type=click.IntRange(0, 100), default=10, show_default=True)
@server_option
@json_option
def get_schedule(schedule_id: str, upcoming: int, jobs: int, server: str, as_json: bool) -> None:
    """A schedule with its next slots and the latest jobs it fired."""
    with Client(server) as client:
        s = client.schedule(schedule_id, upcoming, jobs)
    if as_json:
        output.print_json(s)
        return
    output.console.print(f"[bold]schedule[/] {s['id']}  {_state(s)}")
    job = s["job"]
    rows = [
        ("name", s["name"]),
        ("tenant", s["tenant"]),
        ("cron", f"{s['cron']}  ({s['timezone']})"),
        ("misfire", s["misfire"]),
        ("no overlap", "yes" if s["no_overlap"] else "no"),
        ("queue", job["queue"]),
        ("worker types", ",".join(job["worker_types"]) or "any"),
        ("payload", output.short(job["payload"], 200)),
        ("last fired", f"{s['last_fired_at'] or '-'} (job {s['last_job_id'] or '-'})"),
        ("created", s["created_at"]),
    ]
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    output.console.print(table)
    if s.get("upcoming"):
        output.console.print("[bold]next slots[/]")
        for slot in s["upcoming"]:
            output.console.print(f"  {slot}  ({output.ago(slot)})", highlight=False)
    if s.get("recent_jobs"):
        output.console.print("[bold]latest jobs[/]")
        output.console.print(output.jobs_table(s["recent_jobs"]))


@schedules.command("pause")
@click.argument("schedule_id")
@server_option
@json_option
def pause(schedule_id: str, server: str, as_json: bool) -> None:
    """Stop firing until resumed."""
    with Client(server) as client:
        s = client.pause_schedule(schedule_id)
    _print_state(s, as_json)


@schedules.command("resume")
@click.argument("schedule_id")
@server_option
@json_option
def resume(schedule_id: str, server: str, as_json: bool) -> None:
    """Fire again, from the first slot after now (the paused slots never fire)."""
    with Client(server) as client:
        s = client.resume_schedule(schedule_id)
    _print_state(s, as_json)


def _print_state(s: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.print_json(s)
    else:
        output.console.print(f"{s['id']} {_state(s)}")


@schedules.command("delete")
@click.argument("schedule_id")
@server_option
def delete(schedule_id: str, server: str) -> None:
    """Delete a schedule; the jobs it fired stay."""
    with Client(server) as client:
        client.delete_schedule(schedule_id)
    click.echo(f"deleted {schedule_id}")
