"""The lab's network: a bridge, one namespace per host, and an apt proxy on the bridge."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from hxinfra.errors import LabError
from hxinfra.lab.host import CGROUP_PARENT, LabHost, gateway, net_prefix
from hxinfra.lab.system import _is_mount, _pid_alive, _run

BRIDGE = "hxlab0"
PROXY_PORT = 3142


def net_up(lab_root: Path) -> None:
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{gateway()}/24", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])
    # nspawn removes its propagation dir at exit only when it is on tmpfs
    prop = Path("/run/systemd/nspawn")
    prop.mkdir(parents=True, exist_ok=True)
    if not _is_mount(prop):
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(prop)])
        (lab_root / "net").mkdir(parents=True, exist_ok=True)
        (lab_root / "net" / "nspawn-tmpfs").touch()
    proxy_up(lab_root)


def proxy_up(lab_root: Path) -> None:
    net = lab_root / "net"
    net.mkdir(parents=True, exist_ok=True)
    pidfile = net / "proxy.pid"
    with contextlib.suppress(OSError, ValueError):
        if _pid_alive(int(pidfile.read_text())):
            return
    log = net / "proxy.log"
    log.touch()
    shutil.chown(log, "nobody", "nogroup")
    conf = net / "tinyproxy.conf"
    conf.write_text(
        "User nobody\nGroup nogroup\n"
        f"Listen {gateway()}\nPort {PROXY_PORT}\nAllow {net_prefix()}.0/24\n"
        "MaxClients 200\nTimeout 120\nConnectPort 443\n"
        f'PidFile "{pidfile}"\nLogFile "{log}"\nLogLevel Warning\nDisableViaHeader Yes\n'
    )
    _run(["tinyproxy", "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((gateway(), PROXY_PORT), 1):
            return
        time.sleep(0.1)
    raise LabError(f"the apt proxy did not come up on {gateway()}:{PROXY_PORT}")


def net_down(lab_root: Path) -> None:
    net = lab_root / "net"
    with contextlib.suppress(OSError, ValueError):
        pid = int((net / "proxy.pid").read_text())
        if _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not _pid_alive(pid):
                    break
                time.sleep(0.1)
    _run(["ip", "link", "del", BRIDGE], check=False)
    marker = net / "nspawn-tmpfs"
    if marker.exists():
        _run(["umount", "/run/systemd/nspawn"], check=False)
    shutil.rmtree(net, ignore_errors=True)
    # `ip netns add` bind-mounts /run/netns onto itself; undo it once no namespace is left
    if not _run(["ip", "netns", "list"], check=False).stdout.strip() and _is_mount(Path("/run/netns")):
        _run(["umount", "/run/netns"], check=False)
    for hierarchy in ("systemd", "unified"):
        with contextlib.suppress(OSError):
            (Path("/sys/fs/cgroup") / hierarchy / CGROUP_PARENT).rmdir()


def attach(host: LabHost) -> None:
    """The host's namespace, its veth pair on the bridge, its address and default route."""
    if _run(["ip", "netns", "pids", host.netns], check=False).returncode == 0:
        return
    ns = host.netns
    _run(["ip", "neigh", "flush", "to", host.ip, "dev", BRIDGE], check=False)
    _run(["ip", "link", "del", host.veth], check=False)
    _run(["ip", "netns", "add", ns])
    _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "address", host.mac, "netns", ns])
    _run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
    _run(["ip", "-n", ns, "addr", "add", f"{host.ip}/24", "dev", "eth0"])
    _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    _run(["ip", "-n", ns, "route", "add", "default", "via", gateway()])


def detach(host: LabHost) -> None:
    """Undo :func:`attach` (and a stale neighbour entry for the address)."""
    _run(["ip", "neigh", "flush", "to", host.ip, "dev", BRIDGE], check=False)
    _run(["ip", "netns", "del", host.netns], check=False)
    _run(["ip", "link", "del", host.veth], check=False)
