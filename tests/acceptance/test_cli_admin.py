"""``blixard queues|tenants|groups`` and ``blixard stats --tenant`` against a real server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from blixard.client import Client
from blixard.client.core import Calls
from support.processes import ProcessGroup, ServerProcess, describe_run, run_cli

pytestmark = pytest.mark.acceptance


@dataclass
class Server:
    procs: ProcessGroup
    server: ServerProcess
    client: Client

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env={"BLIXARD_SERVER": self.server.url}, timeout=60)
        assert "Traceback" not in result.stderr, describe_run(result)
        return result

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, describe_run(result)
        return json.loads(result.stdout)

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, describe_run(result)
        return result.stdout


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    procs = ProcessGroup(tmp_path_factory.mktemp("admin"))
    try:
        server = procs.start_server(lease_ttl=30)
        with Client(server.url) as client:
            yield Server(procs, server, client)
    finally:
        procs.stop_all()


def test_queues(srv: Server) -> None:
    q = srv.json("queues", "set", "emails", "--max-running", "3", "--rate", "100/60s")
    assert (q["name"], q["max_running"], q["rate_limit"]) == (
        "emails",
        3,
        {"limit": 100, "period_s": 60.0},
    )
    got = srv.json("queues", "get", "emails")
    assert (got["max_running"], got["rate_limit"]) == (3, q["rate_limit"])
    human = srv.ok("queues", "get", "emails")
    assert "queue emails: active, max running 3, rate 100/1m" in human, human
    assert "paused" in srv.ok("queues", "pause", "emails")
    assert srv.client.queue("emails")["paused"] is True
    srv.client.submit({}, queue="emails")
    listed = srv.ok("queues", "list")
    assert "emails" in listed
    assert "paused" in listed
    assert srv.json("queues", "resume", "emails")["paused"] is False
    q = srv.json("queues", "set", "emails", "--max-running", "none", "--rate", "none")
    assert (q["max_running"], q["rate_limit"], q["jobs_by_status"]["pending"]) == (None, None, 1)
    names = [q["name"] for q in srv.json("queues", "list")]
    assert "emails" in names


def test_tenants(srv: Server) -> None:
    t = srv.json("tenants", "set", "acme", "--weight", "2.5", "--max-running", "4")
    assert (t["name"], t["weight"], t["max_running"]) == ("acme", 2.5, 4)
    assert "tenant acme: weight 2.5, max running 4" in srv.ok("tenants", "get", "acme")
    srv.ok("tenants", "set", "acme", "--max-running", "none")
    assert srv.client.tenant("acme")["max_running"] is None
    assert "acme" in srv.ok("tenants", "list")


def test_groups(srv: Server) -> None:
    bodies = [
        {"payload": {"i": i}, "group_id": "nightly", "worker_types": ["nobody"]} for i in range(3)
    ]
    ids = [j["id"] for j in srv.client.submit_many(bodies)]
    found = srv.json("groups", "get", "nightly")
    assert found["group"]["status"] == "pending"
    assert sorted(j["id"] for j in found["jobs"]) == sorted(ids)
    human = srv.ok("groups", "get", "nightly")
    assert "group nightly" in human, human
    assert "3 job(s): 3 pending" in human, human

    done = srv.json("groups", "cancel", "nightly", "--reason", "not tonight")
    assert sorted(j["id"] for j in done["cancelled"]) == sorted(ids)
    assert done["group"]["status"] == "cancelled"
    assert "cancelled 0 job(s)" in srv.ok("groups", "cancel", "nightly")


def test_stats_by_tenant_with_unschedulable_jobs(srv: Server) -> None:
    srv.client.call(
        Calls.register({"id": "w-cpu", "worker_type": "process", "resources": {"cpu": 2}})
    )
    srv.client.submit({}, tenant="initech", worker_types=["tpu"])
    s = srv.json("stats", "--tenant", "initech")
    assert s["tenant"] == "initech"
    assert s["jobs_by_status"]["pending"] == 1
    assert s["jobs_by_tenant"] == {"initech": {"pending": 1}}
    assert s["unschedulable"] == {
        "count": 1,
        "reasons": [{"reason": "no online worker of type tpu", "count": 1}],
    }
    human = srv.ok("stats", "--tenant", "initech")
    assert "jobs of tenant initech" in human, human
    assert "unschedulable" in human, human
    assert "no online worker of type tpu" in human, human


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("queues", "set", "q", "--rate", "100"), "--rate"),
        (("queues", "set", "q", "--rate", "0/60s"), "--rate"),
        (("queues", "set", "q", "--max-running", "lots"), "--max-running"),
        (("queues", "set", "q"), "nothing to change"),
        (("queues", "set", "bad queue!", "--max-running", "1"), "queue"),
        (("queues", "get", "no-such-queue"), "not found"),
        (("tenants", "set", "t", "--weight", "0"), "weight"),
        (("tenants", "set", "t", "--weight", "heavy"), "--weight"),
        (("tenants", "get", "no-such-tenant"), "not found"),
        (("groups", "get", "no-such-group"), "not found"),
        (("groups", "cancel", "no-such-group"), "not found"),
    ],
)
def test_bad_input_exits_2_with_a_message(srv: Server, args: tuple[str, ...], message: str) -> None:
    result = srv.cli(*args)
    assert result.returncode == 2, describe_run(result)
    assert message in result.stderr, describe_run(result)
    assert result.stdout == "", describe_run(result)
