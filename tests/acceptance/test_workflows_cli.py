"""``blixard workflows submit`` and ``blixard submit``'s scheduling flags with real
processes: a server, a process worker and the CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from blixard.client import Client
from support.postgres import pg_schema_url, start_pg_server
from support.processes import ProcessGroup, ServerProcess, describe_run, run_cli

pytestmark = pytest.mark.acceptance
__all__ = ["pg_schema_url"]  # the fixture, imported for pytest


@dataclass
class Cluster:
    procs: ProcessGroup
    server: ServerProcess
    client: Client
    tmp_path: Path

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env={"BLIXARD_SERVER": self.server.url}, timeout=60, input=input)
        assert "Traceback" not in result.stderr, self.describe(result)
        return result

    def json(self, *args: str) -> Any:
        """``blixard ARGS --json`` (before a command after ``--``), parsed."""
        cut = args.index("--") if "--" in args else len(args)
        result = self.cli(*args[:cut], "--json", *args[cut:])
        assert result.returncode == 0, self.describe(result)
        return json.loads(result.stdout)

    def describe(self, result: subprocess.CompletedProcess[str]) -> str:
        return f"{describe_run(result)}\n{self.procs.describe(20)}"

    def file(self, name: str, text: str) -> str:
        path = self.tmp_path / name
        path.write_text(text)
        return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp_path = tmp_path_factory.mktemp("workflows")
    procs = ProcessGroup(tmp_path)
    try:
        server = procs.start_server(lease_ttl=5)
        procs.start_worker(server.url, "process", concurrency=4)
        with Client(server.url) as client:
            yield Cluster(procs, server, client, tmp_path)
    finally:
        procs.stop_all()


def random_dag(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` process steps (``true``), each depending on up to 3 earlier ones, shuffled."""
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        parents = rng.sample(range(i), min(i, rng.randint(0, 3)))
        steps.append(
            {
                "name": f"s{i:02d}",
                "depends_on": [f"s{p:02d}" for p in parents],
                "worker_types": ["process"],
                "payload": {"command": ["true"]},
            }
        )
    rng.shuffle(steps)
    return steps


def t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_ran_in_dependency_order(client: Client, job_ids: list[str]) -> None:
    jobs = {job_id: client.get(job_id) for job_id in job_ids}
    for job in jobs.values():
        assert job["status"] == "completed", job
        (attempt,) = job["attempts"]
        for parent_id in job["depends_on"]:
            parent_end = t(jobs[parent_id]["attempts"][0]["finished_at"])
            assert t(attempt["claimed_at"]) >= parent_end, (job["step"], parent_id)
            assert t(attempt["started_at"]) >= parent_end, (job["step"], parent_id)


# -- blixard workflows submit ----------------------------------------------------------------

PIPELINE = {
    "steps": [
        {"name": "build", "payload": {"command": "echo v1.2"}},
        {
            "name": "test",
            "depends_on": ["build"],
            "payload": {"command": 'cat "$BLIXARD_PARENT_RESULTS"'},
        },
        {"name": "docs", "depends_on": ["build"], "payload": {"command": "true"}},
    ],
    "queue": "ci",
}


def test_submit_prints_the_group_and_the_steps_in_order(cluster: Cluster) -> None:
    path = cluster.file("pipeline.json", json.dumps(PIPELINE))
    result = cluster.cli("workflows", "submit", path)
    assert result.returncode == 0, cluster.describe(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("workflow group "), result.stdout
    assert lines[0].endswith(": 3 step(s)"), result.stdout
    group = lines[0].split()[2].rstrip(":")
    assert [line.split()[0] for line in lines[2:]] == ["build", "test", "docs"], result.stdout
    listed = cluster.json("jobs", "list", "--group", group)["jobs"]
    assert sorted(job["step"] for job in listed) == ["build", "docs", "test"]
    assert {job["queue"] for job in listed} == {"ci"}


def test_submit_wait_runs_the_workflow_and_steps_read_parent_results(cluster: Cluster) -> None:
    path = cluster.file("pipeline-wait.json", json.dumps(PIPELINE))
    done = cluster.json("workflows", "submit", path, "--wait")
    assert done["group"]["status"] == "completed", done
    jobs = {job["step"]: job for job in done["jobs"]}
    assert [job["step"] for job in done["jobs"]] == ["build", "test", "docs"]
    assert json.loads(jobs["test"]["result"]["stdout"]) == {"build": jobs["build"]["result"]}

    human = cluster.cli("workflows", "submit", path, "--wait")
    assert human.returncode == 0, cluster.describe(human)
    assert "completed  3 job(s): 3 completed" in human.stdout, cluster.describe(human)
    assert "submitted" in human.stderr, cluster.describe(human)


def test_submit_a_yaml_workflow_from_stdin_with_a_failing_step(cluster: Cluster) -> None:
    text = """
tenant: default
steps:
  - name: flaky
    max_attempts: 1
    payload: {command: "exit 3"}
  - name: after-flaky
    depends_on: [flaky]
    payload: {command: "true"}
  - name: cleanup
    depends_on: [flaky]
    on_parent_failure: run
    payload: {command: "true"}
"""
    result = cluster.cli("workflows", "submit", "-", "--wait", input=text)
    assert result.returncode == 1, cluster.describe(result)
    assert "failed  3 job(s)" in result.stdout, cluster.describe(result)
    assert "after-flaky: cancelled: dependency_failed" in result.stderr, cluster.describe(result)
    yaml_file = cluster.file("wf.yaml", text)
    done = cluster.cli("workflows", "submit", yaml_file, "--wait", "--json")
    assert done.returncode == 1, cluster.describe(done)
    statuses = {job["step"]: job["status"] for job in json.loads(done.stdout)["jobs"]}
    assert statuses == {"flaky": "failed", "after-flaky": "cancelled", "cleanup": "completed"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"steps": [{"name": "a", "depends_on": ["b"], "payload": {}},'
            ' {"name": "b", "depends_on": ["a"], "payload": {}}]}',
            "steps: cycle a -> b -> a",
        ),
        ('[{"name": "a", "depends_on": ["x"], "payload": {}}]', "steps.a.depends_on[0]"),
    ],
)
def test_a_bad_workflow_exits_2(cluster: Cluster, text: str, message: str) -> None:
    result = cluster.cli("workflows", "submit", "-", input=text)
    assert result.returncode == 2, cluster.describe(result)
    assert message in result.stderr, cluster.describe(result)
    assert result.stdout == "", cluster.describe(result)


# -- blixard submit's scheduling flags -------------------------------------------------------


def test_submit_with_every_scheduling_flag(cluster: Cluster) -> None:
    parent = cluster.client.submit({"command": ["true"]}, worker_types=["nobody"])
    job = cluster.json(
        "submit",
        *("--after", parent["id"], "--on-parent-failure", "run"),
        *("--queue", "flags", "--tenant", "default", "--priority", "5"),
        *("--cpus", "0.5", "--memory-mb", "64", "--gpus", "1"),
        *("--label", "zone=a", "--constraint", "zone in a,b", "--constraint", "ssd exists"),
        *("--prefer", "rack=r1,r2:7", "--concurrency-key", "repo-1", "--concurrency-limit", "2"),
        *("--delay", "1h", "--idempotency-key", "flags-1", "--group", "flagged"),
        "--",
        "true",
    )
    assert job["depends_on"] == [parent["id"]]
    assert (job["status"], job["deps_pending"], job["on_parent_failure"]) == ("blocked", 1, "run")
    assert (job["queue"], job["priority"], job["group_id"]) == ("flags", 5, "flagged")
    assert job["requirements"] == {
        "cpu": 0.5,
        "memory_mb": 64,
        "gpu": 1,
        "labels": {"zone": "a"},
        "constraints": [
            {"label": "zone", "op": "in", "values": ["a", "b"]},
            {"label": "ssd", "op": "exists"},
        ],
    }
    assert job["preferences"] == [{"label": "rack", "values": ["r1", "r2"], "weight": 7}]
    assert (job["concurrency_key"], job["concurrency_limit"]) == ("repo-1", 2)
    assert job["idempotency_key"] == "flags-1"
    delay = (t(job["run_at"]) - t(job["created_at"])).total_seconds()
    assert 3590 < delay <= 3600, job

    human = cluster.cli("jobs", "get", job["id"])
    assert human.returncode == 0, cluster.describe(human)
    for text in (
        "blocked",
        f"depends on         {parent['id']}",
        "parents pending    1 of 1",
        "on parent failure  run",
        "group              flagged",
        "concurrency        key repo-1, at most 2 running",
        "zone in a,b; ssd exists",
        "rack=r1,r2 (weight 7)",
    ):
        assert text in human.stdout, cluster.describe(human)
    blocked = cluster.json("jobs", "list", "--status", "blocked", "--group", "flagged")
    assert [j["id"] for j in blocked["jobs"]] == [job["id"]]


def test_submit_run_at_and_the_old_memory_flag(cluster: Cluster) -> None:
    job = cluster.json("submit", "--run-at", "2099-01-02T03:04:05Z", "--memory", "32", "--", "true")
    assert job["run_at"] == "2099-01-02T03:04:05.000000Z"
    assert job["requirements"]["memory_mb"] == 32
    cluster.client.cancel(job["id"])


def test_submit_after_waits_for_the_parent_and_reads_its_result(cluster: Cluster) -> None:
    parent = cluster.cli("submit", "--", "sh", "-c", "sleep 0.3; echo from-parent")
    assert parent.returncode == 0, cluster.describe(parent)
    parent_id = parent.stdout.strip()
    child = cluster.cli(
        "submit", "--after", parent_id, "--wait", "--shell", "--", 'cat "$BLIXARD_PARENT_RESULTS"'
    )
    assert child.returncode == 0, cluster.describe(child)
    assert json.loads(child.stdout)[parent_id]["stdout"] == "from-parent\n"
    parent_job = cluster.client.get(parent_id)
    assert parent_job["status"] == "completed"
    child_id = child.stderr.split()[1]
    started = t(cluster.client.get(child_id)["attempts"][0]["started_at"])
    assert started >= t(parent_job["finished_at"])


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--constraint", "zone like a"), "--constraint"),
        # Refused by the server, still named by flag.
        (("--after", "no-such-job"), "--after"),
        (("--queue", "bad queue"), "--queue"),
    ],
)
def test_a_bad_flag_value_exits_2_naming_the_flag(
    cluster: Cluster, args: tuple[str, ...], flag: str
) -> None:
    result = cluster.cli("submit", *args, "--", "true")
    assert result.returncode == 2, cluster.describe(result)
    assert flag in result.stderr, cluster.describe(result)
    assert result.stdout == "", cluster.describe(result)


# -- PostgreSQL --------------------------------------------------------------------------------


def test_a_dag_of_50_steps_runs_in_dependency_order_on_postgres(
    pg_schema_url: str, procs: ProcessGroup, tmp_path: Path
) -> None:
    server = start_pg_server(procs, pg_schema_url, name="pg-server")
    procs.start_worker(server.url, "process", concurrency=4)
    path = tmp_path / "dag.json"
    path.write_text(json.dumps({"steps": random_dag(50, seed=11)}))
    result = run_cli(
        "workflows",
        "submit",
        str(path),
        "--wait",
        "--json",
        "--wait-timeout",
        "60",
        env={"BLIXARD_SERVER": server.url},
        timeout=90,
    )
    assert result.returncode == 0, f"{describe_run(result)}\n{procs.describe(20)}"
    done = json.loads(result.stdout)
    assert done["group"]["status"] == "completed"
    assert done["group"]["total"] == 50
    ids = [job["id"] for job in done["jobs"]]
    position = {job_id: i for i, job_id in enumerate(ids)}
    assert all(position[p] < position[job["id"]] for job in done["jobs"] for p in job["depends_on"])
    with Client(server.url) as client:
        assert_ran_in_dependency_order(client, ids)
    assert datetime.now(UTC) > t(done["group"]["finished_at"])
