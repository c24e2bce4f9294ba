"""``blixard up``: a server and its local workers in one command, and all of them gone after
one SIGTERM."""

from __future__ import annotations

import json
import signal

import pytest

from blixard.client import Client
from support.processes import ProcessGroup, describe_run, pid_alive, run_cli, wait_until

pytestmark = pytest.mark.acceptance


def test_up_runs_jobs_and_stops_everything_on_sigterm(procs: ProcessGroup) -> None:
    # The local workers inherit the environment: short claim long-polls for a quick stop.
    up = procs.start_server(
        command="up", name="up", workers=1, lease_ttl=2, env={"BLIXARD_CLAIM_WAIT": "1"}
    )
    client = Client(up.url)

    def two_workers_online() -> list[dict[str, object]] | None:
        online = [w for w in client.workers() if w["status"] == "online"]
        return online if len(online) == 2 else None

    workers = wait_until(
        two_workers_online, 30, 0.1, message=lambda: f"up's workers\n{procs.describe()}"
    )
    pids = [int(str(w["pid"])) for w in workers]
    procs.adopt(*pids)  # killed at teardown whatever happens here
    assert sorted(str(w["worker_type"]) for w in workers) == ["process", "python"], workers
    assert all(pid_alive(p) for p in pids), workers

    env = {"BLIXARD_SERVER": up.url}
    hello = run_cli("submit", "--wait", "--", "echo", "hello", env=env)
    assert hello.returncode == 0, f"{describe_run(hello)}\n{procs.describe()}"
    assert hello.stdout == "hello\n", describe_run(hello)
    sqrt = '{"function": "math:sqrt", "args": [16]}'
    python_job = run_cli("submit", sqrt, "--type", "python", "--wait", "--json", env=env)
    assert python_job.returncode == 0, f"{describe_run(python_job)}\n{procs.describe()}"
    assert json.loads(python_job.stdout)["result"] == 4.0, describe_run(python_job)

    up.kill(signal.SIGTERM)
    code = up.wait(30)
    assert code in (0, -signal.SIGTERM), f"exit code {code}\n{up.describe()}"
    wait_until(
        lambda: not any(pid_alive(p) for p in pids),
        15,
        0.1,
        message=lambda: (
            f"up's workers to exit: still running {[p for p in pids if pid_alive(p)]}\n"
            f"{procs.describe()}"
        ),
    )
    client.close()
