"""``blixard workflows submit FILE``: a DAG of named steps, submitted as one group.

The file (JSON, or YAML when PyYAML is installed, as it is with ``uvicorn[standard]``) is
the body of ``POST /api/v1/workflows``: ``{"steps": [...], "tenant": ..., "queue": ...}``,
or just the list of steps. A step is a job submission (``payload``, ``worker_types``,
``queue``, ``requirements``...) with a ``name``, ``depends_on`` (names of other steps) and
optionally ``after`` (ids of existing jobs).
"""

from __future__ import annotations

import importlib
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import click
import orjson
from rich.table import Table

from blixard.cli import output
from blixard.cli.groups import group_line
from blixard.cli.options import json_option, option, server_option
from blixard.client import Client
from blixard.client.core import Calls

TERMINAL = ("completed", "failed", "cancelled")
POLL_S = (0.2, 0.5, 1.0)
"""Poll intervals while waiting: quick at first, then once a second."""
PAGE = 1000


def _plain(value: Any) -> Any:
    """YAML's dates and times as ISO 8601 text, as the API takes them."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parse_yaml(text: str) -> Any:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise click.BadParameter(
            "YAML needs PyYAML (pip install pyyaml); or give the workflow as JSON",
            param_hint="FILE",
        ) from None
    try:
        return _plain(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"not valid YAML: {exc}", param_hint="FILE") from None


def load_workflow(path: str) -> dict[str, Any]:
    """The request body from a file (``-``: stdin): JSON, or YAML for ``.yaml``/``.yml``
    files and for any text that is not JSON. A bare list is the list of steps."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="FILE") from None
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        value = _parse_yaml(text)
    else:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if Path(path).suffix.lower() == ".json":
                raise click.BadParameter(f"not valid JSON: {exc}", param_hint="FILE") from None
            value = _parse_yaml(text)
    if isinstance(value, list):
        value = {"steps": value}
    if not isinstance(value, dict) or not isinstance(value.get("steps"), list):
        raise click.BadParameter(
            'expected an object with a list of steps ({"steps": [...]}) or a list of steps',
            param_hint="FILE",
        )
    return value


def _steps_table(jobs: list[dict[str, Any]]) -> Table:
    step_of = {job["id"]: job.get("step") or job["id"] for job in jobs}
    table = Table(box=None, header_style="bold")
    for col in ("STEP", "ID", "STATUS", "DEPENDS ON"):
        table.add_column(col, no_wrap=col != "DEPENDS ON")
    for job in jobs:
        parents = [step_of.get(p, p) for p in job.get("depends_on") or []]
        table.add_row(
            job.get("step") or "-", job["id"], output.status(job["status"]), ", ".join(parents)
        )
    return table


def _group_jobs(client: Client, group_id: str, order: list[str]) -> dict[str, Any]:
    """The group's summary and every job, in ``order`` (the workflow's topological order)."""
    found: dict[str, Any] = client.group(group_id, PAGE)
    jobs = list(found["jobs"])
    while found["next_cursor"]:
        found = client.group(group_id, PAGE, found["next_cursor"])
        jobs += found["jobs"]
    rank = {job_id: i for i, job_id in enumerate(order)}
    jobs.sort(key=lambda job: rank.get(job["id"], len(rank)))
    return {"group": found["group"], "jobs": jobs}


def _wait(client: Client, group_id: str, timeout_s: float | None, *, quiet: bool) -> dict[str, Any]:
    """Poll the group until every job ended (or ``timeout_s`` passed); its last summary."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    polls = 0
    seen: Any = None
    while True:
        group: dict[str, Any] = client.group(group_id, 1)["group"]
        state = (group["status"], tuple(sorted(group["jobs_by_status"].items())))
        if state != seen and not quiet:
            output.err.print(group_line(group), highlight=False)
        seen = state
        if group["status"] in TERMINAL:
            return group
        pause = POLL_S[min(polls, len(POLL_S) - 1)]
        polls += 1
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return group
            pause = min(pause, remaining)
        time.sleep(pause)


@click.group()
def workflows() -> None:
    """Submit workflows: DAGs of named steps that run as one group of jobs."""


@workflows.command("submit")
@click.argument("file", metavar="FILE")
@option("--tenant", help="The workflow's tenant (overrides the file's).")
@option("--queue", "-q", help="The queue of steps that name none (overrides the file's).")
@option("--group", "group_id", help="The steps' group id (default: a new one).")
@option("--wait", "-w", is_flag=True, help="Wait until every step ended; exit 0 if all completed.")
@option(
    "--wait-timeout", type=click.FloatRange(0), help="Give up waiting after N seconds (exit 124)."
)
@server_option
@json_option
def submit_workflow(
    file: str,
    tenant: str | None,
    queue: str | None,
    group_id: str | None,
    wait: bool,
    wait_timeout: float | None,
    server: str,
    as_json: bool,
) -> None:
    """Submit the workflow in FILE (JSON or YAML; - for stdin) and print its group and steps.

    \b
      {"steps": [
        {"name": "build", "payload": {"command": "make"}, "worker_types": ["process"]},
        {"name": "test", "depends_on": ["build"], "payload": {"command": "make test"}},
        {"name": "notify", "depends_on": ["test"], "on_parent_failure": "run",
         "payload": {"command": "echo done"}}
      ]}

    A step starts once its parents ended; if one failed or was cancelled, the step is
    cancelled too unless its on_parent_failure is "run". Each step's job gets its parents'
    results (parent_results; $BLIXARD_PARENT_RESULTS for process and python jobs).
    """
    body = load_workflow(file)
    for key, value in (("tenant", tenant), ("queue", queue), ("group_id", group_id)):
        if value is not None:
            body[key] = value
    with Client(server) as client:
        submitted: dict[str, Any] = client.call(Calls.submit_workflow(body))
        group = submitted["group_id"]
        order = [job["id"] for job in submitted["jobs"]]
        if not wait:
            if as_json:
                output.print_json(submitted)
            else:
                output.console.print(
                    f"workflow group {group}: {len(order)} step(s)", highlight=False
                )
                output.console.print(_steps_table(submitted["jobs"]))
            return
        if not as_json:
            output.err.print(f"workflow group {group} submitted", highlight=False)
        summary = _wait(client, group, wait_timeout, quiet=as_json)
        final = _group_jobs(client, group, order)
    if as_json:
        output.print_json({"group_id": group, **final})
    else:
        output.console.print(group_line(final["group"]), highlight=False)
        output.console.print(_steps_table(final["jobs"]))
        for job in final["jobs"]:
            error = job.get("error") or {}
            if job["status"] in ("failed", "cancelled") and error:
                output.err.print(
                    f"{job.get('step')}: {job['status']}: {error.get('kind')}: "
                    f"{error.get('message')}",
                    highlight=False,
                )
    status = summary["status"]
    sys.exit(0 if status == "completed" else 1 if status in TERMINAL else 124)
