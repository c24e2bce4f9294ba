"""Fixtures for the container backend's tests: one private dockerd for the whole session
(see ``support.dockerd``), and a ``ProcessGroup`` per acceptance test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.dockerd import Dockerd, missing_reason, running_dockerd
from support.processes import ProcessGroup


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A running private dockerd with the busybox image ``support.dockerd.IMAGE``."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_dockerd() as daemon:
        yield daemon


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """The test's ``blixard`` processes; all stopped at teardown, pass or fail."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
