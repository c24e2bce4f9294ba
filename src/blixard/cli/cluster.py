"""``blixard workers list|drain`` and ``blixard stats [--tenant T]``."""

from __future__ import annotations

import click

from blixard.cli import output
from blixard.cli.options import json_option, option, server_option
from blixard.client import Client


@click.group()
def workers() -> None:
    """List and drain workers."""


@workers.command("list")
@option("--status", type=click.Choice(["online", "draining", "offline"]))
@server_option
@json_option
def list_workers(status: str | None, server: str, as_json: bool) -> None:
    """Registered workers with what they run and have free."""
    with Client(server) as client:
        found = client.workers(status)
    if as_json:
        output.print_json(found)
    else:
        output.console.print(output.workers_table(found))


@workers.command("drain")
@click.argument("worker_id")
@server_option
@json_option
def drain(worker_id: str, server: str, as_json: bool) -> None:
    """Stop a worker claiming; it exits once its running jobs are done."""
    with Client(server) as client:
        worker = client.drain(worker_id)
    if as_json:
        output.print_json(worker)
    else:
        output.console.print(f"{worker['id']} {output.status(worker['status'])}")


@click.command()
@option("--tenant", help="Count only this tenant's jobs.")
@server_option
@json_option
def stats(tenant: str | None, server: str, as_json: bool) -> None:
    """Jobs by status, queue and tenant, workers by status, unschedulable jobs."""
    with Client(server) as client:
        s = client.stats(tenant)
    if as_json:
        output.print_json(s)
        return
    from rich.table import Table

    title = "jobs" if tenant is None else f"jobs of tenant {tenant}"
    jobs = Table(title=title, box=None, header_style="bold", title_justify="left")
    statuses = list(s["jobs_by_status"])
    jobs.add_column("QUEUE")
    for name in statuses:
        jobs.add_column(name.upper(), justify="right")
    for queue, counts in sorted(s["jobs_by_queue"].items()):
        jobs.add_row(queue, *(str(counts.get(name, 0)) for name in statuses))
    jobs.add_row("[bold]all[/]", *(f"[bold]{s['jobs_by_status'][n]}[/]" for n in statuses))
    output.console.print(jobs)
    w = s["workers_by_status"]
    output.console.print(
        f"workers: {w['online']} online, {w['draining']} draining, {w['offline']} offline"
    )
    if s["oldest_pending_at"]:
        output.console.print(f"oldest pending job: {output.ago(s['oldest_pending_at'])}")
    if tenant is None and len(s["jobs_by_tenant"]) > 1:
        by_tenant = Table(title="tenants", box=None, header_style="bold", title_justify="left")
        by_tenant.add_column("TENANT")
        for name in statuses:
            by_tenant.add_column(name.upper(), justify="right")
        for who, counts in sorted(s["jobs_by_tenant"].items()):
            by_tenant.add_row(who, *(str(counts.get(name, 0)) for name in statuses))
        output.console.print(by_tenant)
    unschedulable = s["unschedulable"]
    if unschedulable["count"]:
        output.console.print(
            f"[yellow]unschedulable[/]: {unschedulable['count']} waiting job(s) fit no online "
            "worker",
            highlight=False,
        )
        for item in unschedulable["reasons"]:
            output.console.print(f"  {item['count']:>6}  {item['reason']}", highlight=False)
