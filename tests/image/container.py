"""Start an image as a container runtime would, where none can run.

``podman run`` fails on these machines (crun cannot set rlimits in the VM), so the image is
started from its own filesystem instead: ``podman image mount`` gives its root filesystem,
``unshare`` a mount and a PID namespace, and ``enter.py`` mounts the root read-only with the
declared volumes writable, chroots into it and execs the image's entrypoint and command as the
image's user, with the image's environment and working directory: what ``docker run
--read-only`` does, on the host's network. Needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENTER = Path(__file__).with_name("enter.py")


@dataclass(frozen=True)
class Image:
    """A built image, its filesystem mounted (read-only) at ``root``."""

    name: str
    root: Path
    config: dict[str, Any]  # the image's Config: User, Env, Entrypoint, Cmd, Volumes...
    healthcheck: list[str]  # the HEALTHCHECK's test (["CMD", ...]); empty: none

    @classmethod
    @contextlib.contextmanager
    def mounted(cls, name: str, podman: Sequence[str]) -> Iterator[Image]:
        info = json.loads(subprocess.run([*podman, "image", "inspect", name], check=True,
                                         capture_output=True, text=True).stdout)[0]
        root = subprocess.run([*podman, "image", "mount", name], check=True,
                              capture_output=True, text=True).stdout.strip()
        try:
            yield cls(name, Path(root), info["Config"],
                      list((info.get("Healthcheck") or {}).get("Test") or []))
        finally:
            subprocess.run([*podman, "image", "unmount", name], capture_output=True)

    def path(self, inside: str) -> Path:
        """A path of the image's filesystem, seen from the host."""
        return self.root / inside.lstrip("/")

    def user(self) -> tuple[int, int]:
        """USER as uid and gid (numbers, or names from the image's /etc/passwd and group)."""
        raw = self.config.get("User") or "0"
        name, _, group = raw.partition(":")

        def lookup(table: str, key: str) -> int:
            if key.isdigit():
                return int(key)
            for line in self.path(f"/etc/{table}").read_text().splitlines():
                fields = line.split(":")
                if fields[0] == key:
                    return int(fields[2])
            raise LookupError(f"{table}: no {key}")

        uid = lookup("passwd", name)
        if group:
            return uid, lookup("group", group)
        for line in self.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[2] == str(uid):
                return uid, int(fields[3])
        return uid, uid

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(e.split("=", 1) for e in self.config.get("Env") or [])
        return {**env, **extra}

    def volumes(self) -> list[str]:
        return sorted(self.config.get("Volumes") or {})


@dataclass
class Container:
    """One start of an image: ``args`` replace the image's command (CMD), as with ``docker run
    IMAGE ARGS``; ``volumes`` maps each declared volume to a host directory, made here (as a
    new Docker volume is: with the owner and mode of that path in the image) when missing."""

    image: Image
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] | None = None
    volumes: dict[str, Path] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def argv(self) -> list[str]:
        cmd = self.args if self.args is not None else list(self.image.config.get("Cmd") or [])
        return list(self.image.config.get("Entrypoint") or []) + cmd

    def _spec(self) -> str:
        rootfs = self.workdir / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        volumes = {}
        for path in self.image.volumes():
            host = self.volumes.setdefault(path, self.workdir / "volumes" / path.strip("/")
                                           .replace("/", "_"))
            if not host.exists():
                st = self.image.path(path).stat()
                host.mkdir(parents=True)
                os.chown(host, st.st_uid, st.st_gid)
                host.chmod(st.st_mode & 0o7777)
            volumes[path] = str(host)
        uid, gid = self.image.user()
        return json.dumps({
            "image_root": str(self.image.root), "rootfs": str(rootfs), "volumes": volumes,
            "workdir": self.image.config.get("WorkingDir") or "/", "uid": uid, "gid": gid,
            "env": self.image.env(self.env), "argv": self.argv()})

    def _command(self) -> list[str]:
        return ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation",
                "private", sys.executable, str(ENTER), self._spec()]

    def run(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run to the end (``docker run --rm IMAGE ARGS``)."""
        return subprocess.run(self._command(), capture_output=True, text=True, timeout=timeout)

    def start(self) -> Container:
        """Start in the background (``docker run -d``); its output goes to ``log_path``."""
        command = self._command()
        self.log_path = self.log_path or self.workdir / "container.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def pid(self) -> int:
        """The host's pid of the container's PID 1 (the entrypoint, exec'd into ``ige``)."""
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            with contextlib.suppress(OSError):
                if found := children.read_text().split():
                    return int(found[0])
            time.sleep(0.05)
        raise RuntimeError(f"the container has no process: {self.log()[-2000:]}")

    def processes(self) -> list[int]:
        """PID 1 of the container and every process under it (host pids)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                text = stat.read_text()
                parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2:].split()[1])
        found, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            found.append(p)
            todo += [c for c, pp in parents.items() if pp == p]
        return sorted(found)

    def exec(self, argv: Sequence[str], *, root: bool = False,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command beside the container's processes, in its namespaces and its root, as
        the image's user (``docker exec``) or as root."""
        uid, gid = (0, 0) if root else self.image.user()
        return subprocess.run(  # --wd: the working directory of PID 1, the image's WorkingDir
            ["nsenter", "--target", str(self.pid), "--mount", "--pid", "--root", "--wd",
             f"--setuid={uid}", f"--setgid={gid}", *argv],
            env=self.image.env(self.env), capture_output=True, text=True, timeout=timeout)

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's HEALTHCHECK, run as Docker runs it."""
        test = self.image.healthcheck
        if not test or test[0] == "NONE":
            raise LookupError(f"{self.image.name} has no health check")
        argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", " ".join(test[1:])]
        return self.exec(argv)

    def stop(self, timeout: float = 15) -> int:
        """``docker stop``: SIGTERM to PID 1, SIGKILL after ``timeout``; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, RuntimeError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # unshare --kill-child: the namespace's processes go with it
        return self.proc.wait()


def status_ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, filesystem) and Groups of a process."""
    out: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
    return out


def root_mount_options(pid: int) -> set[str]:
    """The mount options of ``/`` as the process sees it."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return set(fields[5].split(","))
    raise LookupError("no root mount")


def podman_command() -> list[str]:
    return shlex.split(os.environ.get("IGE_PODMAN", "podman"))


def cmdline(pid: int) -> str:
    return re.sub("\0", " ", Path(f"/proc/{pid}/cmdline").read_text()).strip()
