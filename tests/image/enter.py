"""Enter an image's filesystem and exec a command there, as a container runtime would.

Run by ``container.py`` as root in a mount and PID namespace of its own (``unshare``), so every
mount made here disappears with the last process inside; run on the host's Python, it needs
nothing from the image before the ``exec``. One argument: a JSON object with ``image_root`` (the
``podman image mount`` directory), ``rootfs`` (an empty directory to mount it on), ``volumes``
(path in the image -> host directory), ``workdir``, ``uid``, ``gid``, ``env`` and ``argv``.

What the process sees: the image's root filesystem read-only, a fresh ``/proc`` of its PID
namespace, a minimal ``/dev`` (null, zero, full, random, urandom, a tmpfs ``/dev/shm``), the
declared volumes writable; the host's network. It is PID 1 there, as in ``docker run`` without
``--init``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main() -> None:
    spec = json.loads(sys.argv[1])
    root = spec["rootfs"]
    mount("--bind", spec["image_root"], root)
    mount("-o", "remount,bind,ro,nosuid,nodev", root)
    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", f"{root}/proc")
    mount("-t", "tmpfs", "-o", "mode=0755,nosuid,size=1m", "tmpfs", f"{root}/dev")
    for dev in ("null", "zero", "full", "random", "urandom"):
        open(f"{root}/dev/{dev}", "w").close()
        mount("--bind", f"/dev/{dev}", f"{root}/dev/{dev}")
    os.mkdir(f"{root}/dev/shm")
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,size=64m", "tmpfs", f"{root}/dev/shm")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    for path, host in spec["volumes"].items():
        mount("--bind", host, root + path)
    os.chroot(root)
    os.chdir(spec["workdir"])
    os.setgroups([])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main()
