"""The local lab: real Debian hosts (systemd-nspawn ``--boot``) on one machine.

This module is the :class:`Lab` (hosts' lifecycle, SSH); the host model and paths are in
``host``, the base image in ``image``, the bridge, namespaces and apt proxy in ``network``, and
commands, processes, mounts and cgroups in ``system``.

Each host is an overlayfs copy of a cached debootstrap base, runs real systemd and sshd,
has its own network namespace and address on a bridge, and reaches the Debian mirror only
through a forwarding proxy on that bridge. Several labs (``--lab NAME``) can coexist: each
owns its hosts, and the shared bridge and proxy are removed only with the last host.

Everything that a killed run can leave behind (supervisors, overlay mounts, namespaces,
image locks, cgroups, neighbour-cache entries) is reaped by the next ``up`` or ``down``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from hxinfra.errors import LabError
from hxinfra.lab.host import (  # noqa: F401 - the lab's public names, importable from here too
    CGROUP_PARENT,
    LAB_DOMAIN,
    MAX_INDEX,
    NAME_RE,
    NETNS_PREFIX,
    LabHost,
    LogFn,
    cache_dir,
    gateway,
    lab_root,
    net_prefix,
)
from hxinfra.lab.image import SUITE, check_suite, ensure_base, mirrors
from hxinfra.lab.network import BRIDGE, PROXY_PORT, attach, detach, net_down, net_up  # noqa: F401
from hxinfra.lab.system import (  # noqa: F401
    _is_mount,
    _pid_alive,
    _run,
    check_prerequisites,
    ensure_inotify_limits,
    kill_cgroup,
)

SSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
)


class Lab:
    """All hosts of one named lab, plus the shared network they sit on."""

    def __init__(self, name: str = "default") -> None:
        if not NAME_RE.match(name):
            raise LabError(f"invalid lab name {name!r}: lower-case letters, digits and '-'")
        self.name = name
        self.root = lab_root()
        self.dir = self.root / "labs" / name

    # ----------------------------------------------------------------- paths and state
    @property
    def key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """The host keys of this lab's hosts, recorded when each is created (never learned over the wire)."""
        return self.dir / "known_hosts"

    def _record_keys(self) -> None:
        """Rewrite :attr:`known_hosts` from the host keys each host was given at creation."""
        lines = []
        for h in self.hosts():
            upper = self.host_dir(h.name) / ("disk" if h.disk_mb else "") / "upper"
            for pub in sorted((upper / "etc" / "ssh").glob("ssh_host_*_key.pub")):
                kind, key = pub.read_text().split()[:2]
                lines.append(f"{h.ip},{h.name},{h.fqdn} {kind} {key}\n")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.known_hosts.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.replace(self.known_hosts)

    def host_dir(self, name: str) -> Path:
        return self.dir / name

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One lab operation at a time on this machine (they share indexes and the bridge)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w", encoding="ascii") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_host(self, hdir: Path) -> LabHost | None:
        try:
            data = json.loads((hdir / "host.json").read_text())
        except (OSError, ValueError):
            return None
        data.pop("state", None)
        host = LabHost(**data)
        host.state = "running" if self._supervisor_alive(hdir) else "stopped"
        return host

    @staticmethod
    def _supervisor_pid(hdir: Path) -> int | None:
        try:
            return int((hdir / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None

    def _supervisor_alive(self, hdir: Path) -> bool:
        pid = self._supervisor_pid(hdir)
        return pid is not None and _pid_alive(pid)

    def hosts(self) -> list[LabHost]:
        """Hosts of this lab, in index order."""
        if not self.dir.is_dir():
            return []
        found = [self._read_host(d) for d in sorted(self.dir.iterdir()) if d.is_dir()]
        return sorted((h for h in found if h), key=lambda h: h.index)

    def _all_hosts(self) -> list[LabHost]:
        labs = self.root / "labs"
        if not labs.is_dir():
            return []
        return [h for d in sorted(labs.iterdir()) if d.is_dir() for h in Lab(d.name).hosts()]

    def get(self, name: str) -> LabHost:
        for h in self.hosts():
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in lab {self.name!r} (see: hxinfra lab status)")

    # ----------------------------------------------------------------- base image
    # ----------------------------------------------------------------- network
    # ----------------------------------------------------------------- host lifecycle
    def _ensure_key(self) -> None:
        if self.key.exists():
            return
        self.key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hxinfra-lab", "-f", str(self.key)])

    def _allocate(self, name: str) -> LabHost:
        used = {h.index for h in self._all_hosts()}
        index = next((i for i in range(1, MAX_INDEX) if i not in used), None)
        if index is None:
            raise LabError("no free lab address left")
        return LabHost(
            self.name, name, index, f"{net_prefix()}.{10 + index}", f"02:68:78:00:{index // 256:02x}:{index % 256:02x}"
        )

    def _create(self, name: str, base: Path, suite: str = SUITE, disk_mb: int = 0) -> LabHost:
        host = self._allocate(name)
        host.disk_mb = disk_mb
        hdir = self.host_dir(name)
        (hdir / "root").mkdir(parents=True, exist_ok=True)
        if disk_mb:
            image = hdir / "disk.img"
            with open(image, "wb") as fh:  # sparse: only what the host writes takes space here
                fh.truncate(disk_mb * 1024 * 1024)
            _run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
        (hdir / "host.json").write_text(json.dumps({k: v for k, v in asdict(host).items() if k != "state"}))
        (hdir / "base").write_text(str(base))
        self._mount(host)
        root = hdir / "root"
        (root / "etc/hostname").write_text(f"{name}\n")
        (root / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n{host.ip} {host.fqdn} {name}\n::1 localhost ip6-localhost ip6-loopback\n"
        )
        (root / "etc/machine-id").write_text(_run(["systemd-id128", "new"]).stdout)
        _run(["ssh-keygen", "-q", "-A", "-f", str(root)])
        self._record_keys()
        auth = root / "root/.ssh/authorized_keys"
        auth.write_text(Path(f"{self.key}.pub").read_text())
        auth.chmod(0o600)
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text("")  # no DNS: apt goes through the proxy
        mirror, security = mirrors()
        sources = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
        if security:
            sources.append(f"deb {security} {suite}-security main")
        (root / "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
        (root / "etc/apt/apt.conf.d/01lab-proxy").write_text(
            f'Acquire::http::Proxy "http://{gateway()}:{PROXY_PORT}/";\n'
            'Acquire::Retries "3";\nAcquire::http::Timeout "30";\n'
        )
        return host

    def _layer(self, host: LabHost) -> Path:
        """Where the host's writable layer lives: its own disk when it has one, mounted first."""
        hdir = self.host_dir(host.name)
        if not host.disk_mb:
            layer = hdir
        else:
            layer = hdir / "disk"
            layer.mkdir(exist_ok=True)
            if not _is_mount(layer):
                _run(["mount", "-o", "loop", str(hdir / "disk.img"), str(layer)])
        for sub in ("upper", "work"):
            (layer / sub).mkdir(exist_ok=True)
        return layer

    def _mount(self, host: LabHost) -> None:
        hdir = self.host_dir(host.name)
        root = hdir / "root"
        if _is_mount(root):
            return
        layer = self._layer(host)
        base = (hdir / "base").read_text().strip()
        _run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={base},upperdir={layer / 'upper'},workdir={layer / 'work'}",
                str(root),
            ]
        )

    def _start(self, host: LabHost) -> None:
        hdir = self.host_dir(host.name)
        (hdir / f".#{'root'}.lck").unlink(missing_ok=True)
        with open(hdir / "console.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("supervisor.py")),
                    "--name",
                    host.name,
                    "--root",
                    str(hdir / "root"),
                    "--netns",
                    host.netns,
                    "--cgroup",
                    host.cgroup,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        (hdir / "supervisor.pid").write_text(str(proc.pid))

    def _wait_ready(self, host: LabHost, timeout: float = 90) -> None:
        """Wait until root can log in over SSH and systemd has finished booting."""
        hdir = self.host_dir(host.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._supervisor_alive(hdir):
                tail = (hdir / "console.log").read_text(errors="replace")[-1500:]
                raise LabError(f"{host.name} died while booting:\n{tail}")
            ok = False
            with contextlib.suppress(OSError), socket.create_connection((host.ip, 22), 2):
                ok = True
            if ok:
                r = self.ssh(host.name, "systemctl is-system-running --wait", timeout=60)
                if r.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.2)
        raise LabError(f"{host.name} ({host.ip}) was not reachable over SSH within {timeout:.0f} s")

    def _stop(self, host: LabHost) -> None:
        """Power the host off (SIGTERM to its supervisor); kill its cgroup if it hangs."""
        hdir = self.host_dir(host.name)
        pid = self._supervisor_pid(hdir)
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.1)
        kill_cgroup(host.cgroup)
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        (hdir / "supervisor.pid").unlink(missing_ok=True)

    def _release(self, host: LabHost, remove: bool) -> None:
        """Undo a host's runtime state; with ``remove`` also delete its disk."""
        self._stop(host)
        hdir = self.host_dir(host.name)
        root = hdir / "root"
        for mount in (root, hdir / "disk"):  # the overlay, then the disk under its writable layer
            if _is_mount(mount) and _run(["umount", str(mount)], check=False).returncode != 0:
                _run(["umount", "-l", str(mount)], check=False)
        (hdir / ".#root.lck").unlink(missing_ok=True)
        detach(host)
        if remove:
            shutil.rmtree(hdir, ignore_errors=True)

    def _reap_orphans(self) -> None:
        """Remove namespaces and cgroups whose host no longer exists (after a killed run)."""
        known = {h.netns for h in self._all_hosts()}
        for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
            ns = line.split()[0] if line.split() else ""
            if ns.startswith(NETNS_PREFIX) and ns not in known:
                _run(["ip", "netns", "del", ns], check=False)
        live_cgroups = {h.cgroup.split("/", 1)[1] for h in self._all_hosts() if h.state == "running"}
        top = Path("/sys/fs/cgroup/systemd") / CGROUP_PARENT
        if top.is_dir():
            for d in top.iterdir():
                if d.is_dir() and d.name not in live_cgroups:
                    kill_cgroup(f"{CGROUP_PARENT}/{d.name}")

    # ----------------------------------------------------------------- public API
    def up(
        self,
        names: list[str],
        log: LogFn = print,
        suites: Mapping[str, str] | None = None,
        disks: Mapping[str, int] | None = None,
    ) -> list[LabHost]:
        """Ensure the named hosts exist and run; return them. Idempotent. ``suites`` gives a host
        another Debian release than the default (``trixie``: Debian 13) when it is created, ``disks``
        a disk of its own of that many MiB (a test fills it to see a deploy meet a full disk)."""
        check_prerequisites()
        suites = {n: check_suite(s) for n, s in (suites or {}).items()}
        for n in names:
            if not NAME_RE.match(n):
                raise LabError(f"invalid host name {n!r}: lower-case letters, digits and '-'")
        with self._locked():
            self._ensure_key()
            bases = {s: ensure_base(self.root, log, s) for s in sorted({suites.get(n, SUITE) for n in names})}
            self._reap_orphans()
            net_up(self.root)
            existing = {h.name: h for h in self.hosts()}
            running = sum(1 for h in self._all_hosts() if h.state == "running")
            ensure_inotify_limits(running + len([n for n in names if n not in existing]), log)
            started: list[LabHost] = []
            created: set[str] = set()
            try:
                for n in names:
                    host = existing.get(n)
                    if host is not None and host.state == "running":
                        continue
                    if host is not None:
                        log(f"recovering {n} (its supervisor is gone)")
                        self._release(host, remove=False)
                        self._mount(host)
                    else:
                        suite = suites.get(n, SUITE)
                        host = self._create(n, bases[suite], suite, int((disks or {}).get(n, 0)))
                        created.add(n)
                    attach(host)
                    self._start(host)
                    started.append(host)
                t0 = time.monotonic()
                with ThreadPoolExecutor(max_workers=max(len(started), 1)) as pool:
                    list(pool.map(self._wait_ready, started))
            except BaseException:
                # a partial boot leaves nothing behind: what this call started is stopped, what it created removed
                log(f"boot failed: cleaning up {', '.join(h.name for h in started) or 'nothing'}")
                for h in started:
                    self._release(h, remove=h.name in created)
                if self.dir.is_dir() and created:
                    self._record_keys()
                raise
            if started:
                log(f"booted {', '.join(h.name for h in started)} in {time.monotonic() - t0:.1f} s")
            return [h for h in self.hosts() if h.name in names]

    def down(self, names: list[str] | None = None, log: LogFn = print) -> list[str]:
        """Destroy hosts (all of this lab by default); drop the network with the last host."""
        check_prerequisites()
        with self._locked():
            hosts = self.hosts()
            if names:
                unknown = set(names) - {h.name for h in hosts}
                if unknown:
                    raise LabError(f"no such host in lab {self.name!r}: {', '.join(sorted(unknown))}")
                hosts = [h for h in hosts if h.name in names]
            with ThreadPoolExecutor(max_workers=max(len(hosts), 1)) as pool:
                list(pool.map(lambda h: self._release(h, remove=True), hosts))
            if self.dir.is_dir() and self.hosts():
                self._record_keys()
            if self.dir.is_dir() and not self.hosts():  # the lab CA, vault and host keys go with the lab
                shutil.rmtree(self.dir / "pki", ignore_errors=True)
                for name in ("vault-pass", "vault.yml", "known_hosts"):
                    (self.dir / name).unlink(missing_ok=True)
            if self.dir.is_dir() and not any(self.dir.iterdir()):
                self.dir.rmdir()
            self._reap_orphans()
            if not self._all_hosts():
                net_down(self.root)
            return [h.name for h in hosts]

    def ssh_command(self, name: str, command: str | None = None) -> list[str]:
        host = self.get(name)
        cmd = [
            "ssh",
            "-i",
            str(self.key),
            *SSH_OPTIONS,
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            f"root@{host.ip}",
        ]
        return [*cmd, command] if command else cmd

    def ssh(
        self, name: str, command: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on a lab host as root (``input`` on its stdin); never raises on a non-zero exit."""
        try:
            if input is not None:
                return subprocess.run(
                    self.ssh_command(name, command),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    input=input,
                    check=False,
                )
            return subprocess.run(
                self.ssh_command(name, command),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, 124, "", f"timed out after {timeout} s")

    def ssh_data(self) -> dict[str, object]:
        """pyinfra connector data for this lab's hosts: strict host key checking against the keys
        recorded when the hosts were created (a host recreated gets new keys, recorded anew)."""
        return {
            "ssh_user": "root",
            "ssh_key": str(self.key),
            "ssh_strict_host_key_checking": "yes",
            "ssh_known_hosts_file": str(self.known_hosts),
        }
