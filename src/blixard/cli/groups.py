"""``blixard groups get|cancel``: a group of jobs as one."""

from __future__ import annotations

from typing import Any

import click

from blixard.cli import output
from blixard.cli.options import json_option, option, server_option
from blixard.client import Client


def group_line(group: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in group["jobs_by_status"].items() if n)
    return (
        f"group {group['id']}  {output.status(group['status'])}  {group['total']} job(s): {counts}"
    )


@click.group()
def groups() -> None:
    """Inspect and cancel groups of jobs (jobs submitted together)."""


@groups.command("get")
@click.argument("group_id")
@option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@option("--cursor", help="Continue from a previous page's next_cursor.")
@server_option
@json_option
def get_group(group_id: str, limit: int, cursor: str | None, server: str, as_json: bool) -> None:
    """A group's aggregate status and counts, and its jobs (newest first)."""
    with Client(server) as client:
        found = client.group(group_id, limit, cursor)
    if as_json:
        output.print_json(found)
        return
    output.console.print(group_line(found["group"]), highlight=False)
    output.console.print(output.jobs_table(found["jobs"]))
    for job in found["jobs"]:
        if job.get("unschedulable"):
            output.console.print(
                f"[yellow]unschedulable[/] {job['id']}: {job['unschedulable']}", highlight=False
            )
    if found["next_cursor"]:
        output.err.print(f"more: --cursor {found['next_cursor']}", highlight=False)


@groups.command("cancel")
@click.argument("group_id")
@option("--reason", default="group cancelled by request", show_default=True)
@server_option
@json_option
def cancel_group(group_id: str, reason: str, server: str, as_json: bool) -> None:
    """Cancel every job of the group that has not ended (running ones are killed)."""
    with Client(server) as client:
        done = client.cancel_group(group_id, reason)
    if as_json:
        output.print_json(done)
        return
    output.console.print(f"cancelled {len(done['cancelled'])} job(s)", highlight=False)
    output.console.print(group_line(done["group"]), highlight=False)
