"""``blixard schedules ...`` end to end: a real server (SQLite) and a real process worker
run the jobs a schedule fires; bad input exits 2 with a clear message."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from support.processes import ProcessGroup, ServerProcess, describe_run, run_cli, wait_until

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ProcessGroup, ServerProcess]]:
    procs = ProcessGroup(tmp_path_factory.mktemp("cli-schedules"))
    try:
        server = procs.start_server(scheduler_interval=0.2)
        procs.start_worker(server.url, "process", concurrency=2)
        yield procs, server
    finally:
        procs.stop_all()


def cli(
    server: tuple[ProcessGroup, ServerProcess], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"BLIXARD_SERVER": server[1].url, **(env or {})})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, describe_run(result)
    assert "Traceback" not in result.stderr, describe_run(result)
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def usage_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, describe_run(result)
    assert "Traceback" not in result.stderr + result.stdout, describe_run(result)
    for text in expected:
        assert text in result.stderr, describe_run(result)


def test_a_schedule_runs_a_command_every_second(
    server: tuple[ProcessGroup, ServerProcess],
) -> None:
    schedule_id = ok(
        cli(server, "schedules", "create", "tick", "--cron", "* * * * * *", "--", "echo", "tock")
    ).strip()
    listed = ok(cli(server, "schedules", "list"))
    assert schedule_id in listed
    assert "tick" in listed

    def two_completed() -> list[dict[str, Any]] | None:
        detail = as_json(cli(server, "schedules", "get", schedule_id, "--json"))
        done = [j for j in detail["recent_jobs"] if j["status"] == "completed"]
        return done if len(done) >= 2 else None

    done = wait_until(two_completed, 30, 0.3, message=lambda: server[0].describe(20))
    assert all(j["result"]["stdout"] == "tock\n" for j in done)
    assert all(j["worker_types"] == ["process"] for j in done)

    human = ok(cli(server, "schedules", "get", schedule_id))
    assert "next slots" in human
    assert "latest jobs" in human
    assert "* * * * * *" in human

    paused = ok(cli(server, "schedules", "pause", schedule_id))
    assert "paused" in paused
    assert as_json(cli(server, "schedules", "get", schedule_id, "--json"))["paused"] is True
    assert "active" in ok(cli(server, "schedules", "resume", schedule_id))

    assert ok(cli(server, "schedules", "delete", schedule_id)).strip() == f"deleted {schedule_id}"
    usage_error(
        cli(server, "schedules", "get", schedule_id), f"error: schedule {schedule_id} not found"
    )
    usage_error(cli(server, "schedules", "pause", schedule_id), "not found")


def test_options_env_vars_and_json(server: tuple[ProcessGroup, ServerProcess]) -> None:
    created = as_json(
        cli(
            server,
            "schedules",
            "create",
            "nightly",
            '{"function": "jobs:nightly"}',
            "--tz",
            "Europe/Paris",
            "--misfire",
            "catch_up",
            "--no-overlap",
            "--paused",
            "--type",
            "python",
            "--priority",
            "4",
            "--tenant",
            "acme",
            "--json",
            env={"BLIXARD_CRON": "30 2 * * *"},
        )
    )
    assert created["cron"] == "30 2 * * *"
    assert (created["timezone"], created["misfire"], created["no_overlap"]) == (
        "Europe/Paris",
        "catch_up",
        True,
    )
    assert (created["paused"], created["tenant"]) == (True, "acme")
    assert created["job"]["payload"] == {"function": "jobs:nightly"}
    assert (created["job"]["worker_types"], created["job"]["priority"]) == (["python"], 4)
    listed = as_json(cli(server, "schedules", "list", "--tenant", "acme", "--json"))
    assert [s["id"] for s in listed] == [created["id"]]
    usage_error(
        cli(server, "schedules", "create", "nightly", "--tenant", "acme", "--cron", "@daily", "{}"),
        "already has a schedule named 'nightly'",
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cron", "61 * * * *", "{}"], "error: cron: "),
        (["--cron", "* * *", "{}"], "error: cron: "),
        (["--cron", "@daily", "--tz", "Mars/Olympus", "{}"], "error: timezone: unknown time zone"),
        (["--cron", "@daily", "--misfire", "later", "{}"], "Invalid value for '--misfire'"),
        (["{}"], "Missing option '--cron'"),
        (["--cron", "@daily", "@/nonexistent/payload.json"], "cannot read /nonexistent"),
        (["--cron", "@daily", "{not json"], "not valid JSON"),
        (["--cron", "@daily", "--queue", "a b", "{}"], "error: job.queue: "),
    ],
)
def test_bad_input_exits_2(
    server: tuple[ProcessGroup, ServerProcess], args: list[str], expected: str
) -> None:
    usage_error(cli(server, "schedules", "create", "bad", *args), expected)
