"""Human output (rich tables) and JSON output for the CLI."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

# Piped output keeps whole lines (ids, payloads) instead of wrapping at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

STATUS_STYLE = {
    "blocked": "bright_black",
    "pending": "yellow",
    "claimed": "cyan",
    "in_progress": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "online": "green",
    "draining": "yellow",
    "offline": "red",
    "running": "blue",
}


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def status(value: str | None) -> str:
    if value is None:
        return "-"
    return f"[{STATUS_STYLE.get(value, 'white')}]{value}[/]"


def ago(iso: str | None) -> str:
    if not iso:
        return "-"
    then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    seconds = (datetime.now(UTC) - then).total_seconds()
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def short(value: Any, width: int = 50) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ID", "STATUS", "QUEUE", "TYPES", "ATTEMPT", "CREATED", "PAYLOAD"):
        table.add_column(col, no_wrap=col != "PAYLOAD")
    for job in jobs:
        table.add_row(
            job["id"],
            status(job["status"]),
            job["queue"],
            ",".join(job["worker_types"]) or "any",
            f"{job['attempt']}/{job['max_attempts']}",
            ago(job["created_at"]),
            short(job["payload"]),
        )
    return table


def job_detail(job: dict[str, Any]) -> None:
    console.print(f"[bold]job[/] {job['id']}  {status(job['status'])}")
    rows = [
        ("queue", job["queue"]),
        ("tenant", job["tenant"]),
        ("worker types", ",".join(job["worker_types"]) or "any"),
        ("priority", job["priority"]),
        ("attempt", f"{job['attempt']} of {job['max_attempts']}"),
        ("timeout", f"{job['timeout_s']}s" if job["timeout_s"] else "none"),
        ("created", f"{job['created_at']} ({ago(job['created_at'])})"),
        ("run at", job["run_at"]),
        ("claimed by", job["claimed_by"] or "-"),
        ("started", job["started_at"] or "-"),
        ("finished", job["finished_at"] or "-"),
        ("payload", short(job["payload"], 200)),
        *scheduling_rows(job),
    ]
    if job.get("result") is not None:
        rows.append(("result", short(job["result"], 400)))
    if job.get("error"):
        rows.append(("error", f"{job['error'].get('kind')}: {job['error'].get('message')}"))
    if job.get("unschedulable"):
        rows.append(("unschedulable", job["unschedulable"]))
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    attempts = job.get("attempts") or []
    if attempts:
        t = Table(title="attempts", box=None, header_style="bold", title_justify="left")
        for col in ("#", "WORKER", "STARTED", "FINISHED", "OUTCOME", "ERROR"):
            t.add_column(col)
        for a in attempts:
            error = a.get("error") or {}
            t.add_row(
                str(a["attempt"]),
                a["worker_id"] or "-",
                a["started_at"] or "-",
                a["finished_at"],
                status(a["outcome"]) if a["outcome"] in STATUS_STYLE else a["outcome"],
                short(error.get("message", ""), 60) if error else "",
            )
        console.print(t)


def scheduling_rows(job: dict[str, Any]) -> list[tuple[str, Any]]:
    """The rows of ``job_detail`` for what a job waits on and needs, when it has them."""
    rows: list[tuple[str, Any]] = []
    if job.get("group_id"):
        rows.append(("group", job["group_id"]))
    if job.get("step"):
        rows.append(("step", job["step"]))
    parents = job.get("depends_on") or []
    if parents:
        rows.append(("depends on", ", ".join(parents)))
        rows.append(("parents pending", f"{job.get('deps_pending', 0)} of {len(parents)}"))
        rows.append(("on parent failure", job.get("on_parent_failure", "cancel")))
    if job.get("concurrency_key"):
        limit = job.get("concurrency_limit") or 1
        rows.append(("concurrency", f"key {job['concurrency_key']}, at most {limit} running"))
    req = job.get("requirements") or {}
    resources = (("cpu", "cpu", ""), ("memory_mb", "memory", "MB"), ("gpu", "gpu", ""))
    needs = [f"{name} {req[key]:g}{unit}" for key, name, unit in resources if req.get(key)]
    needs += [f"{k}={v}" for k, v in (req.get("labels") or {}).items()]
    for c in req.get("constraints") or []:
        values = ",".join(c.get("values") or [])
        needs.append(f"{c['label']} {c['op'].replace('_', ' ')}{' ' + values if values else ''}")
    if needs:
        rows.append(("requires", "; ".join(needs)))
    prefers = [
        f"{p['label']}={','.join(p['values'])} (weight {p['weight']})"
        for p in job.get("preferences") or []
    ]
    if prefers:
        rows.append(("prefers", "; ".join(prefers)))
    return rows


def workers_table(workers: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ID", "NAME", "TYPE", "STATUS", "RUNNING", "CPU", "MEMORY", "LABELS", "SEEN"):
        table.add_column(col, no_wrap=True)
    for w in workers:
        res, used = w["resources"], w["used"]
        table.add_row(
            w["id"],
            w["name"],
            w["worker_type"],
            status(w["status"]),
            f"{w['running']}/{w['concurrency']}",
            f"{used['cpu']:g}/{res['cpu']:g}",
            f"{used['memory_mb']}/{res['memory_mb']}MB",
            ",".join(f"{k}={v}" for k, v in w["labels"].items()) or "-",
            ago(w["last_seen_at"]),
        )
    return table
