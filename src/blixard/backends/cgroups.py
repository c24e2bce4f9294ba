"""Per-job cgroups for the ``sandbox`` backend: cgroup v1 (one directory per memory, pids and
cpu hierarchy) or v2 (one directory, when ``cgroup.controllers`` is at the root).

``CgroupTree.detect`` finds the usable controllers (creating ``<root>[/<controller>]/<parent>``
and a probe cgroup); ``create`` makes a job's cgroup with its limits; the job joins it by
writing its pid to each ``Cgroup.procs_files``; ``remove_cgroup`` deletes it once the job's
processes are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

log = logging.getLogger(__name__)

MB: Final = 1024 * 1024
HELPER_PROCESSES: Final = 2
"""bwrap's own processes in the job's pids cgroup (the outer bwrap and the namespace init)."""
RETRY_S: Final = 0.05
RETRIES: Final = 100


class Cgroup:
    """One job's cgroup: a directory per controller (v1) or one directory (v2)."""

    def __init__(self, dirs: Mapping[str, Path]) -> None:
        self.dirs = dict(dirs)

    @property
    def procs_files(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def _counter(self, controller: str, file: str, key: str) -> int:
        directory = self.dirs.get(controller)
        if directory is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (directory / file).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    def oom_killed(self) -> bool:
        return (
            self._counter("memory", "memory.oom_control", "oom_kill") > 0
            or self._counter("memory", "memory.events", "oom_kill") > 0
        )

    def pids_limited(self) -> bool:
        return self._counter("pids", "pids.events", "max") > 0

    def remove(self) -> bool:
        """Remove the directories; True when none is left (a dying job may still hold one)."""
        for directory in set(self.dirs.values()):
            with contextlib.suppress(OSError):
                directory.rmdir()
        return not any(d.exists() for d in self.dirs.values())


class CgroupTree:
    """Where job cgroups go: ``root`` as cgroup v2 (``cgroup.controllers`` there) or v1."""

    V1_CONTROLLERS: ClassVar[tuple[str, ...]] = ("memory", "pids", "cpu")

    def __init__(self, root: Path, parent: str) -> None:
        self.root = root
        self.parent = parent
        self.version: str | None = None
        self.controllers: tuple[str, ...] = ()

    def detect(self) -> str:
        """Find which controllers can be used; returns why none can (empty when some can)."""
        self.version, self.controllers = None, ()
        try:
            if (self.root / "cgroup.controllers").is_file():
                available = (self.root / "cgroup.controllers").read_text().split()
                wanted = [c for c in self.V1_CONTROLLERS if c in available]
                parent = self.root / self.parent
                parent.mkdir(exist_ok=True)
                for directory in (self.root, parent):
                    for c in wanted:
                        with contextlib.suppress(OSError):
                            (directory / "cgroup.subtree_control").write_text(f"+{c}")
                enabled = (parent / "cgroup.subtree_control").read_text().split()
                self.version, self.controllers = "v2", tuple(c for c in wanted if c in enabled)
            else:
                usable = []
                for c in self.V1_CONTROLLERS:
                    if (self.root / c / "cgroup.procs").is_file():
                        (self.root / c / self.parent).mkdir(exist_ok=True)
                        usable.append(c)
                self.version, self.controllers = "v1", tuple(usable)
            probe = self.create(f"probe-{uuid.uuid4().hex[:8]}", {})
            probe.remove()
        except OSError as exc:
            self.version, self.controllers = None, ()
            return f"cgroups unusable under {self.root}: {exc.strerror or exc}"
        return "" if self.controllers else f"no memory/pids/cpu cgroup controller at {self.root}"

    def create(self, name: str, settings: Mapping[str, Mapping[str, str]]) -> Cgroup:
        """A cgroup with ``settings`` ({controller: {file: value}}); raises OSError."""
        if self.version == "v2":
            directory = self.root / self.parent / name
            dirs = dict.fromkeys(self.controllers, directory)
        else:
            dirs = {c: self.root / c / self.parent / name for c in self.controllers}
        cgroup = Cgroup(dirs)
        try:
            for directory in set(dirs.values()):
                directory.mkdir()
            for controller, files in settings.items():
                if controller in dirs:
                    for file, value in files.items():
                        if (dirs[controller] / file).exists():
                            (dirs[controller] / file).write_text(value)
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def settings(self, memory_mb: int, max_processes: int, cpus: float | None) -> dict[str, Any]:
        memory, pids = str(memory_mb * MB), str(max_processes + HELPER_PROCESSES)
        period = 100_000
        quota = None if cpus is None else str(max(1000, int(cpus * period)))
        if self.version == "v2":
            return {
                "memory": {"memory.max": memory, "memory.swap.max": "0"},
                "pids": {"pids.max": pids},
                "cpu": {} if quota is None else {"cpu.max": f"{quota} {period}"},
            }
        cpu = {} if quota is None else {"cpu.cfs_period_us": str(period), "cpu.cfs_quota_us": quota}
        return {
            "memory": {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory},
            "pids": {"pids.max": pids},
            "cpu": cpu,
        }


async def remove_cgroup(cgroup: Cgroup) -> None:
    """Remove ``cgroup``, retrying while the kernel still tears the job's processes down."""
    for _ in range(RETRIES):
        if cgroup.remove():
            return
        await asyncio.sleep(RETRY_S)
    log.warning("cannot remove the cgroup %s", sorted(map(str, cgroup.dirs.values())))
