"""The local lab: real Debian hosts (systemd-nspawn ``--boot``) on one machine.

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
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from hxinfra.errors import LabError

LogFn = Callable[[str], None]

SUITE = "bookworm"
# Bump when the base customisation below changes: it keys the cached image.
BASE_RECIPE = "1"
BASE_INCLUDE = (
    "systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,iproute2,iputils-ping,procps,"
    "sudo,ca-certificates,python3-minimal,less,zstd"
)
# command -> Debian package that provides it
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
BRIDGE = "hxlab0"
PROXY_PORT = 3142
LAB_DOMAIN = "lab.hxinfra.test"
NETNS_PREFIX = "hxlab-"
VETH_PREFIX = "hxv"
CGROUP_PARENT = "hxinfra-lab"
MAX_INDEX = 200
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
)  # fmt: skip
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def lab_root() -> Path:
    """Runtime state of all labs (hosts, overlays, proxy). Outside any checkout."""
    return Path(os.environ.get("HXINFRA_LAB_ROOT", "/var/lib/hxinfra/lab"))


def cache_dir() -> Path:
    """Where the packed base image is kept between runs (survives ``lab down``)."""
    return Path(os.environ.get("HXINFRA_LAB_CACHE", "/var/cache/hxinfra"))


def net_prefix() -> str:
    """First three octets of the lab's /24 (``HXINFRA_LAB_NET``)."""
    return os.environ.get("HXINFRA_LAB_NET", "10.231.0")


def gateway() -> str:
    return f"{net_prefix()}.1"


@dataclass
class LabHost:
    """One lab host as recorded in its ``host.json``."""

    lab: str
    name: str
    index: int
    ip: str
    mac: str
    state: str = "unknown"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{LAB_DOMAIN}"

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.lab}-{self.name}"

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.index}"

    @property
    def cgroup(self) -> str:
        return f"{CGROUP_PARENT}/{self.lab}-{self.name}"


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


def _apt_sources() -> tuple[str, str]:
    """The main and security mirror URLs of this machine's own apt configuration."""
    main = security = ""
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    files += [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix == ".sources":
            for block in text.split("\n\n"):
                if not re.search(rf"^Suites:.*\b{SUITE}\b", block, re.M):
                    continue
                m = re.search(r"^URIs:\s*(\S+)", block, re.M)
                if not m:
                    continue
                url = m.group(1)
                if "-security" in url or re.search(rf"^Suites:.*{SUITE}-security", block, re.M):
                    security = security or url
                else:
                    main = main or url
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb":
                    url = next((p for p in parts[1:] if p.startswith("http")), "")
                    if not url or SUITE not in line:
                        continue
                    if "security" in line:
                        security = security or url
                    else:
                        main = main or url
    return main, security


DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def _debootstrap_default() -> str:
    """The Debian archive debootstrap itself uses when given no mirror (its ``DEF_MIRROR``)."""
    script = shutil.which("debootstrap")
    if script:
        with contextlib.suppress(OSError):
            m = re.search(r'^DEF_MIRROR="([^"]+)"', Path(script).read_text(errors="replace"), re.M)
            if m:
                return m.group(1)
    raise LabError("no Debian mirror: set HXINFRA_LAB_MIRROR (this machine's apt sources name none)")


def mirrors() -> tuple[str, str]:
    """The Debian mirror (and security mirror) the lab builds its image from and its hosts use.

    ``HXINFRA_LAB_MIRROR`` (and ``HXINFRA_LAB_SECURITY_MIRROR``) first; else the Debian mirror in
    this machine's apt sources (a Debian machine); else debootstrap's own default archive (an Ubuntu
    CI runner names no Debian mirror), its security archive beside it.
    """
    main = os.environ.get("HXINFRA_LAB_MIRROR", "")
    security = os.environ.get("HXINFRA_LAB_SECURITY_MIRROR", "")
    if not main:
        main, found_security = _apt_sources()
        security = security or found_security
    if not main:
        main = _debootstrap_default()
    if not security and main.rstrip("/").endswith("/debian"):
        security = main.rstrip("/") + "-security"
    return main, security


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
            for pub in sorted((self.host_dir(h.name) / "upper" / "etc" / "ssh").glob("ssh_host_*_key.pub")):
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
    def _base_dir(self) -> Path:
        return self.root / "base" / f"{SUITE}-{self._recipe_hash()}"

    @staticmethod
    def _recipe_hash() -> str:
        return hashlib.sha256(f"{SUITE}|{BASE_INCLUDE}|{BASE_RECIPE}".encode()).hexdigest()[:12]

    def _cache_tar(self) -> Path:
        return cache_dir() / f"lab-base-{SUITE}-{self._recipe_hash()}.tar.zst"

    def ensure_base(self, log: LogFn) -> Path:
        """Unpack the cached base image, or debootstrap it once and cache it."""
        base = self._base_dir()
        if (base / "etc" / "os-release").exists():
            return base
        tar = self._cache_tar()
        tmp = base.with_name(base.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if tar.is_file():
            log(f"unpacking cached base image {tar.name}")
            _run(["tar", "--zstd", "-xpf", str(tar), "-C", str(tmp), "--numeric-owner",
                  "--xattrs", "--xattrs-include=*"])  # fmt: skip
        else:
            mirror, _ = mirrors()
            log(f"building the base image with debootstrap ({SUITE} from {mirror}, about a minute)")
            keyring = [f"--keyring={DEBIAN_KEYRING}"] if DEBIAN_KEYRING.is_file() else []
            r = _run(["debootstrap", "--variant=minbase", *keyring, f"--include={BASE_INCLUDE}", SUITE,
                      str(tmp), mirror], check=False)  # fmt: skip
            if r.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise LabError(f"debootstrap failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
            self._customise_base(tmp)
            tar.parent.mkdir(parents=True, exist_ok=True)
            part = tar.with_name(tar.name + ".part")
            _run(["tar", "--zstd", "-cpf", str(part), "-C", str(tmp), "--numeric-owner",
                  "--xattrs", "--xattrs-include=*", "--one-file-system", "."])  # fmt: skip
            part.rename(tar)
            log(f"cached base image at {tar}")
        tmp.rename(base)
        return base

    @staticmethod
    def _customise_base(root: Path) -> None:
        """Make the debootstrap tree a neutral server image: no mirror, keys or ids baked in."""
        (root / "etc/apt/sources.list").write_text("")
        (root / "var/log/bootstrap.log").unlink(missing_ok=True)
        for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
            for p in root.glob(pattern):
                if p.is_file():
                    p.unlink()
        (root / "etc/machine-id").write_text("")
        dbus_id = root / "var/lib/dbus/machine-id"
        dbus_id.unlink(missing_ok=True)
        dbus_id.symlink_to("/etc/machine-id")
        (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
        (root / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
        (root / "etc/ssh/sshd_config.d/10-lab.conf").write_text(
            "# lab host: root logs in with the lab key only\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
        )
        for key in root.glob("etc/ssh/ssh_host_*"):
            key.unlink()
        units = ["systemd-timesyncd.service", "getty@tty1.service", "serial-getty@ttyS0.service",
                 "console-getty.service", "systemd-networkd-wait-online.service"]  # fmt: skip
        _run(["chroot", str(root), "systemctl", "mask", *units], check=False)
        (root / "etc/apt/apt.conf.d/90lab").write_text(
            'Acquire::Languages "none";\nAPT::Keep-Downloaded-Packages "false";\n'
        )

    # ----------------------------------------------------------------- network
    def _net_up(self) -> None:
        if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
            _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
            _run(["ip", "addr", "add", f"{gateway()}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        # nspawn removes its propagation dir at exit only when it is on tmpfs
        prop = Path("/run/systemd/nspawn")
        prop.mkdir(parents=True, exist_ok=True)
        if not _is_mount(prop):
            _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(prop)])
            (self.root / "net").mkdir(parents=True, exist_ok=True)
            (self.root / "net" / "nspawn-tmpfs").touch()
        self._proxy_up()

    def _proxy_up(self) -> None:
        net = self.root / "net"
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

    def _net_down(self) -> None:
        net = self.root / "net"
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
        return LabHost(self.name, name, index, f"{net_prefix()}.{10 + index}",
                       f"02:68:78:00:{index // 256:02x}:{index % 256:02x}")  # fmt: skip

    def _create(self, name: str, base: Path) -> LabHost:
        host = self._allocate(name)
        hdir = self.host_dir(name)
        for sub in ("upper", "work", "root"):
            (hdir / sub).mkdir(parents=True, exist_ok=True)
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
        sources = [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]
        if security:
            sources.append(f"deb {security} {SUITE}-security main")
        (root / "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
        (root / "etc/apt/apt.conf.d/01lab-proxy").write_text(
            f'Acquire::http::Proxy "http://{gateway()}:{PROXY_PORT}/";\n'
            'Acquire::Retries "3";\nAcquire::http::Timeout "30";\n'
        )
        return host

    def _mount(self, host: LabHost) -> None:
        hdir = self.host_dir(host.name)
        root = hdir / "root"
        if _is_mount(root):
            return
        base = (hdir / "base").read_text().strip()
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={base},upperdir={hdir / 'upper'},workdir={hdir / 'work'}", str(root)])  # fmt: skip

    def _attach_network(self, host: LabHost) -> None:
        if _run(["ip", "netns", "pids", host.netns], check=False).returncode == 0:
            return
        ns = host.netns
        _run(["ip", "neigh", "flush", "to", host.ip, "dev", BRIDGE], check=False)
        _run(["ip", "link", "del", host.veth], check=False)
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
              "address", host.mac, "netns", ns])  # fmt: skip
        _run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
        _run(["ip", "-n", ns, "addr", "add", f"{host.ip}/24", "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", ns, "route", "add", "default", "via", gateway()])

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
                ],  # fmt: skip
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
        self._kill_cgroup(host.cgroup)
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        (hdir / "supervisor.pid").unlink(missing_ok=True)

    @staticmethod
    def _kill_cgroup(cgroup: str) -> None:
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

    def _release(self, host: LabHost, remove: bool) -> None:
        """Undo a host's runtime state; with ``remove`` also delete its disk."""
        self._stop(host)
        hdir = self.host_dir(host.name)
        root = hdir / "root"
        if _is_mount(root) and _run(["umount", str(root)], check=False).returncode != 0:
            _run(["umount", "-l", str(root)], check=False)
        (hdir / ".#root.lck").unlink(missing_ok=True)
        _run(["ip", "neigh", "flush", "to", host.ip, "dev", BRIDGE], check=False)
        _run(["ip", "netns", "del", host.netns], check=False)
        _run(["ip", "link", "del", host.veth], check=False)
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
                    self._kill_cgroup(f"{CGROUP_PARENT}/{d.name}")

    # ----------------------------------------------------------------- public API
    def up(self, names: list[str], log: LogFn = print) -> list[LabHost]:
        """Ensure the named hosts exist and run; return them. Idempotent."""
        check_prerequisites()
        for n in names:
            if not NAME_RE.match(n):
                raise LabError(f"invalid host name {n!r}: lower-case letters, digits and '-'")
        with self._locked():
            self._ensure_key()
            base = self.ensure_base(log)
            self._reap_orphans()
            self._net_up()
            existing = {h.name: h for h in self.hosts()}
            started = []
            for n in names:
                host = existing.get(n)
                if host is not None and host.state == "running":
                    continue
                if host is not None:
                    log(f"recovering {n} (its supervisor is gone)")
                    self._release(host, remove=False)
                    self._mount(host)
                else:
                    host = self._create(n, base)
                self._attach_network(host)
                self._start(host)
                started.append(host)
            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=max(len(started), 1)) as pool:
                list(pool.map(self._wait_ready, started))
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
                self._net_down()
            return [h.name for h in hosts]

    def ssh_command(self, name: str, command: str | None = None) -> list[str]:
        host = self.get(name)
        cmd = ["ssh", "-i", str(self.key), *SSH_OPTIONS, "-o", f"UserKnownHostsFile={self.known_hosts}",
               f"root@{host.ip}"]  # fmt: skip
        return [*cmd, command] if command else cmd

    def ssh(
        self, name: str, command: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on a lab host as root (``input`` on its stdin); never raises on a non-zero exit."""
        try:
            if input is not None:
                return subprocess.run(self.ssh_command(name, command), capture_output=True, text=True,
                                      timeout=timeout, input=input, check=False)  # fmt: skip
            return subprocess.run(self.ssh_command(name, command), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
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
