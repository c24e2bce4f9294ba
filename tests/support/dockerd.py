"""A private dockerd for the container backend's tests, started as
/work/shared/notes/isolation-runtimes.md describes (Debian's ``docker.io``):

    dockerd --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
      --data-root DIR/data --exec-root DIR/exec -H unix://DIR/docker.sock --pidfile ...

under a fresh temp dir (short, for the unix socket path limit), with a ``busybox``
image imported from a root file system tarball built around ``/bin/busybox`` (Debian's
``busybox-static``): no registry is needed. ``running_dockerd`` stops dockerd (and the
containerd it started) and removes the temp dir afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE = "blixard-busybox:test"
INSTALL = "apt-get install docker.io busybox-static"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def busybox_path() -> str | None:
    """A statically linked busybox (the image has no libc), or None."""
    for candidate in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if candidate and os.path.isfile(candidate):
            with open(candidate, "rb") as binary:
                if b"/lib64/ld-linux" not in binary.read(1 << 16):  # no ELF interpreter
                    return candidate
    return None


def missing_reason() -> str | None:
    """Why the dockerd tests cannot run here (None: they can)."""
    if shutil.which("dockerd") is None:
        return f"dockerd is not installed ({INSTALL})"
    if busybox_path() is None:
        return f"a static busybox is not installed ({INSTALL})"
    return None


def busybox_rootfs_tar(busybox: str) -> bytes:
    """A root file system: /bin/busybox, a link per applet, and the usual empty dirs."""
    applets = subprocess.run(
        [busybox, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "dev", "etc", "proc", "sys", "tmp", "job", "root"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buffer.getvalue()


@dataclass(frozen=True)
class Dockerd:
    root: Path
    pid: int

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        """For ``docker_host`` / ``DOCKER_HOST``."""
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):  # containerd or shims it left, if any
        os.killpg(proc.pid, signal.SIGKILL)


def _docker_cgroups() -> set[Path]:
    return set(Path("/sys/fs/cgroup").glob("*/docker")) | set(Path("/sys/fs/cgroup").glob("docker"))


def _unmount_below(root: Path) -> None:
    """Unmount whatever dockerd left mounted under ``root`` (deepest first)."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@contextlib.contextmanager
def running_dockerd() -> Iterator[Dockerd]:
    """A private dockerd with the busybox image ``IMAGE``; stopped and removed afterwards."""
    import docker
    import docker.errors

    busybox = busybox_path()
    assert busybox is not None, missing_reason()
    cgroups_before = _docker_cgroups()
    root = Path(tempfile.mkdtemp(prefix="bx-dockerd-", dir="/tmp"))
    (root / "data").mkdir()
    (root / "exec").mkdir()
    argv = [
        "dockerd",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--bridge=none",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "-H",
        f"unix://{root / 'docker.sock'}",
        "--pidfile",
        str(root / "dockerd.pid"),
    ]
    with open(root / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    daemon = Dockerd(root, proc.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited ({proc.returncode}):\n{daemon.log_tail()}")
            try:  # version="auto" asks the engine: connecting is the readiness check
                client = docker.APIClient(base_url=daemon.host, version="auto", timeout=30)
                break
            except docker.errors.DockerException:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dockerd did not answer in time:\n{daemon.log_tail()}"
                    ) from None
                time.sleep(0.1)
        tarball = root / "busybox.tar"
        tarball.write_bytes(busybox_rootfs_tar(busybox))
        repository, tag = IMAGE.split(":")
        client.import_image_from_file(str(tarball), repository=repository, tag=tag)
        client.close()
        yield daemon
    finally:
        _stop(proc)
        _unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)
        for cgroup in _docker_cgroups() - cgroups_before:  # the empty ones dockerd made
            with contextlib.suppress(OSError):
                cgroup.rmdir()
