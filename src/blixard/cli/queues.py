"""``blixard queues list|get|pause|resume|set`` and ``blixard tenants list|get|set``."""

from __future__ import annotations

import re
from typing import Any

import click
from rich.table import Table

from blixard.cli import output
from blixard.cli.options import json_option, option, server_option
from blixard.client import Client
from blixard.client.core import KEEP, Keep

WAITING_AND_DONE = ("pending", "blocked", "completed", "failed", "cancelled")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^(\d+)/(\d+(?:\.\d+)?)?(ms|s|m|h|d)?$")


def parse_max_running(value: str | None) -> int | Keep | None:
    """``--max-running``: a count, or ``none`` to remove the limit."""
    if value is None:
        return KEEP
    if value.strip().lower() == "none":
        return None
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise click.BadParameter(
            f"{value!r} is not a count: give a whole number >= 0, or none",
            param_hint="--max-running",
        )
    return count


def parse_rate(value: str | None) -> tuple[int, float] | Keep | None:
    """``--rate``: ``N/PERIOD`` (100/60s, 10/m, 5/1.5h; a bare number is seconds), or
    ``none`` to remove the limit."""
    if value is None:
        return KEEP
    text = value.strip().lower().replace(" ", "")
    if text == "none":
        return None
    match = _RATE.match(text)
    if match is None or (match.group(2) is None and match.group(3) is None):
        raise click.BadParameter(
            f"{value!r} is not N/PERIOD (e.g. 100/60s, 10/m, 5/1.5h) or none",
            param_hint="--rate",
        )
    limit = int(match.group(1))
    period_s = float(match.group(2) or 1) * _UNITS[match.group(3) or "s"]
    if limit < 1 or period_s <= 0:
        raise click.BadParameter(
            f"{value!r}: the count and the period must be positive", param_hint="--rate"
        )
    return (limit, period_s)


def _period(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def rate_text(rate: dict[str, Any] | None) -> str:
    return "-" if rate is None else f"{rate['limit']}/{_period(rate['period_s'])}"


def _limit(running: int, cap: int | None) -> str:
    return f"{running}/{cap}" if cap is not None else str(running)


def queues_table(queues: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("QUEUE", "STATE", "RUNNING", "RATE", *map(str.upper, WAITING_AND_DONE)):
        table.add_column(col, no_wrap=True)
    table.add_column("OLDEST PENDING", no_wrap=True)
    for q in queues:
        counts = q["jobs_by_status"]
        table.add_row(
            q["name"],
            "[yellow]paused[/]" if q["paused"] else "[green]active[/]",
            _limit(q["running"], q["max_running"]),
            rate_text(q["rate_limit"]),
            *(str(counts.get(s, 0)) for s in WAITING_AND_DONE),
            output.ago(q["oldest_pending_at"]),
        )
    return table


def tenants_table(tenants: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("TENANT", "WEIGHT", "RUNNING", *map(str.upper, WAITING_AND_DONE)):
        table.add_column(col, no_wrap=True)
    table.add_column("OLDEST PENDING", no_wrap=True)
    for t in tenants:
        counts = t["jobs_by_status"]
        table.add_row(
            t["name"],
            f"{t['weight']:g}",
            _limit(t["running"], t["max_running"]),
            *(str(counts.get(s, 0)) for s in WAITING_AND_DONE),
            output.ago(t["oldest_pending_at"]),
        )
    return table


def _detail(rows: list[tuple[str, str]]) -> Table:
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs"


def queue_line(q: dict[str, Any]) -> str:
    state = "paused" if q["paused"] else "active"
    cap = "none" if q["max_running"] is None else str(q["max_running"])
    return f"queue {q['name']}: {state}, max running {cap}, rate {rate_text(q['rate_limit'])}"


def queue_detail(q: dict[str, Any]) -> None:
    output.console.print(queue_line(q), highlight=False)
    rows = [
        ("running", _limit(q["running"], q["max_running"])),
        ("rate limit", rate_text(q["rate_limit"])),
        ("jobs", _counts(q["jobs_by_status"])),
        ("oldest pending", output.ago(q["oldest_pending_at"])),
    ]
    if q["rate_tokens"] is not None:
        rows.insert(2, ("starts available", f"{q['rate_tokens']:g}"))
    output.console.print(_detail(rows))


def tenant_line(t: dict[str, Any]) -> str:
    cap = "none" if t["max_running"] is None else str(t["max_running"])
    return f"tenant {t['name']}: weight {t['weight']:g}, max running {cap}"


def tenant_detail(t: dict[str, Any]) -> None:
    output.console.print(tenant_line(t), highlight=False)
    rows = [
        ("running", _limit(t["running"], t["max_running"])),
        ("jobs", _counts(t["jobs_by_status"])),
        ("oldest pending", output.ago(t["oldest_pending_at"])),
    ]
    output.console.print(_detail(rows))


# queues ------------------------------------------------------------------------------------
@click.group()
def queues() -> None:
    """List, pause, resume and limit queues."""


@queues.command("list")
@server_option
@json_option
def list_queues(server: str, as_json: bool) -> None:
    """Every queue with its limits and job counts."""
    with Client(server) as client:
        found = client.queues()
    if as_json:
        output.print_json(found)
    else:
        output.console.print(queues_table(found))


@queues.command("get")
@click.argument("name")
@server_option
@json_option
def get_queue(name: str, server: str, as_json: bool) -> None:
    """One queue's settings and job counts."""
    with Client(server) as client:
        q = client.queue(name)
    if as_json:
        output.print_json(q)
    else:
        queue_detail(q)


def _show_queue(q: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.print_json(q)
    else:
        output.console.print(queue_line(q), highlight=False)


@queues.command("pause")
@click.argument("name")
@server_option
@json_option
def pause(name: str, server: str, as_json: bool) -> None:
    """Stop handing out the queue's jobs (it keeps accepting new ones)."""
    with Client(server) as client:
        _show_queue(client.pause_queue(name), as_json)


@queues.command("resume")
@click.argument("name")
@server_option
@json_option
def resume(name: str, server: str, as_json: bool) -> None:
    """Hand out the queue's jobs again."""
    with Client(server) as client:
        _show_queue(client.resume_queue(name), as_json)


@queues.command("set")
@click.argument("name")
@option("--max-running", help="Jobs of the queue running at once, fleet-wide; none: no limit.")
@option("--rate", help="At most N starts per PERIOD: 100/60s, 10/m, 5/1.5h; none: no limit.")
@server_option
@json_option
def set_queue(
    name: str, max_running: str | None, rate: str | None, server: str, as_json: bool
) -> None:
    """Change a queue's limits (creates the queue if it does not exist yet).

    \b
      blixard queues set emails --max-running 10 --rate 100/60s
      blixard queues set emails --rate none
    """
    cap = parse_max_running(max_running)
    limit = parse_rate(rate)
    if cap is KEEP and limit is KEEP:
        raise click.UsageError("nothing to change: give --max-running and/or --rate")
    with Client(server) as client:
        _show_queue(client.configure_queue(name, max_running=cap, rate_limit=limit), as_json)


# tenants -----------------------------------------------------------------------------------
@click.group()
def tenants() -> None:
    """List tenants and set their weight and quota."""


@tenants.command("list")
@server_option
@json_option
def list_tenants(server: str, as_json: bool) -> None:
    """Every tenant with its weight, quota and job counts."""
    with Client(server) as client:
        found = client.tenants()
    if as_json:
        output.print_json(found)
    else:
        output.console.print(tenants_table(found))


@tenants.command("get")
@click.argument("name")
@server_option
@json_option
def get_tenant(name: str, server: str, as_json: bool) -> None:
    """One tenant's settings and job counts."""
    with Client(server) as client:
        t = client.tenant(name)
    if as_json:
        output.print_json(t)
    else:
        tenant_detail(t)


@tenants.command("set")
@click.argument("name")
@option("--weight", type=float, help="Share of the fleet under contention (default 1).")
@option("--max-running", help="Jobs of the tenant running at once; none: no quota.")
@server_option
@json_option
def set_tenant(
    name: str, weight: float | None, max_running: str | None, server: str, as_json: bool
) -> None:
    """Change a tenant's weight or quota (creates the tenant if it does not exist yet)."""
    cap = parse_max_running(max_running)
    if weight is None and cap is KEEP:
        raise click.UsageError("nothing to change: give --weight and/or --max-running")
    with Client(server) as client:
        t = client.configure_tenant(name, weight=weight, max_running=cap)
    if as_json:
        output.print_json(t)
    else:
        output.console.print(tenant_line(t), highlight=False)
