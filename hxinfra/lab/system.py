"""What the lab asks of this machine: commands, processes, mounts and cgroups, and its prerequisites."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hxinfra.errors import LabError

REQUIRED_COMMANDS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "tinyproxy": "tinyproxy-bin",
    "zstd": "zstd",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "unshare": "util-linux",
}


def _run(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(cmd[:3])} failed (rc={result.returncode}): {result.stderr.strip()}")
    return result  # type: ignore[no-any-return]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_mount(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == target for line in f)


# what one booted host (systemd, journald, logind, sshd...) takes of the kernel's per-user inotify
# limits, measured: 32 hosts stopped at the 23rd with the default of 128 instances (~5.5 each)
INOTIFY_PER_HOST = {"max_user_instances": 8, "max_user_watches": 4096}


def ensure_inotify_limits(hosts: int, log: Callable[[str], None]) -> None:
    """Raise ``fs.inotify.max_user_*`` up front when ``hosts`` booted hosts would exceed them, and say so
    (a host past the limit fails to boot with "Too many open files" from systemd)."""
    for name, per_host in INOTIFY_PER_HOST.items():
        path = Path("/proc/sys/fs/inotify") / name
        try:
            current = int(path.read_text())
        except (OSError, ValueError):
            continue
        needed = per_host * hosts + (32 if name == "max_user_instances" else 8192)  # and room for this machine
        if current >= needed:
            continue
        try:
            path.write_text(f"{needed}\n")
        except OSError as e:
            raise LabError(
                f"{hosts} lab hosts need fs.inotify.{name} >= {needed} (now {current}) and it cannot be "
                f"raised here ({e.strerror}): sysctl -w fs.inotify.{name}={needed}"
            ) from None
        log(f"raised fs.inotify.{name} from {current} to {needed} for {hosts} host(s)")


def check_prerequisites() -> None:
    """Fail with exactly what is missing: root, and the Debian packages the lab needs."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the lab needs root (run as root, as CI does)")
    missing = sorted({pkg for cmd, pkg in REQUIRED_COMMANDS.items() if shutil.which(cmd) is None})
    if missing:
        problems.append("missing Debian packages: " + " ".join(missing) + f" (apt-get install {' '.join(missing)})")
    if problems:
        raise LabError("; ".join(problems))


def kill_cgroup(cgroup: str) -> None:
    """SIGKILL every process left in a host's cgroups, then remove them."""
    for hierarchy in ("systemd", "unified"):
        top = Path("/sys/fs/cgroup") / hierarchy / cgroup
        if not top.is_dir():
            continue
        for _ in range(50):
            pids = {int(p) for f in top.rglob("cgroup.procs") for p in f.read_text().split()}
            if not pids:
                break
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.1)
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
