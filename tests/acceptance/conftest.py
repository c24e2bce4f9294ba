"""Fixtures for acceptance tests: a ``ProcessGroup`` per test, and the processes' log tails
attached to the report of any test that fails."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.processes import ProcessGroup


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """The test's ``blixard`` processes; all stopped at teardown, pass or fail."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            group = value if isinstance(value, ProcessGroup) else getattr(value, "procs", None)
            if isinstance(group, ProcessGroup):
                report.sections.append(("blixard process logs", group.describe(60)))
