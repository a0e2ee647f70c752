"""Per-host supervisor: keeps one lab host's systemd-nspawn running.

Started detached by :mod:`hxinfra.lab.core`. Why a supervisor instead of running nspawn
directly:

* On a machine without systemd as PID 1, nspawn (``--keep-unit --register=no``) puts its
  payload in the *caller's* cgroup. Each host therefore needs its own cgroup in the
  ``name=systemd`` and ``unified`` hierarchies, or all containers share one tree.
* ``systemctl reboot`` inside the host makes nspawn exit 133; like
  ``systemd-nspawn@.service`` we start it again.
* Each boot gets a fresh time namespace so ``/proc/uptime`` starts near zero, which is what
  pyinfra's ``server.reboot`` waits for.
* SIGTERM is forwarded to nspawn, which powers the host off cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

CGROUP_HIERARCHIES = ("systemd", "unified")
REBOOT_EXIT = 133


def join_cgroups(cgroup: str) -> None:
    """Move this process (and so everything it starts) into its own cgroups."""
    for hierarchy in CGROUP_HIERARCHIES:
        base = Path("/sys/fs/cgroup") / hierarchy
        if not base.is_dir():
            continue
        path = base / cgroup
        path.mkdir(parents=True, exist_ok=True)
        (path / "cgroup.procs").write_text(f"{os.getpid()}\n")


def time_namespace_prefix() -> list[str]:
    """``unshare`` arguments for a time namespace whose clocks start at ~0, if supported."""
    with open("/proc/uptime", encoding="ascii") as f:
        offset = max(int(float(f.read().split()[0])) - 1, 0)
    prefix = ["unshare", "--time", "--boottime", f"-{offset}", "--monotonic", f"-{offset}"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--cgroup", required=True)
    args = parser.parse_args(argv)

    join_cgroups(args.cgroup)
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    while True:
        command = [
            *time_namespace_prefix(),
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            f"--machine={args.name}",
            f"--directory={args.root}",
            f"--network-namespace-path=/run/netns/{args.netns}",
            # the host's own network namespace is its alone: it may manage its firewall (nftables) and
            # its network settings in it, as a machine does
            "--capability=CAP_NET_ADMIN",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--console=read-only",
        ]
        # /proc/sys/net writable: the host's sysctl settings of its own network namespace (as on a machine)
        env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
        rc = child.wait()
        print(f"supervisor: {args.name} exited rc={rc}", flush=True)
        if stopping:
            return 0
        if rc != REBOOT_EXIT:
            return rc
        print(f"supervisor: {args.name} rebooting", flush=True)


if __name__ == "__main__":
    sys.exit(main())
