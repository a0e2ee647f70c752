"""The lab's base image: a debootstrap tree from a Debian mirror, customised once and cached."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from pathlib import Path

from hxinfra.errors import LabError
from hxinfra.lab.host import LogFn, cache_dir
from hxinfra.lab.system import _run

SUITE = "bookworm"  # the lab's default Debian release (12); hosts may run another of SUITES
SUITES = ("bookworm", "trixie")
# Bump when the base customisation below changes: it keys the cached image.
BASE_RECIPE = "1"
BASE_INCLUDE = (
    "systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,iproute2,iputils-ping,procps,"
    "sudo,ca-certificates,python3-minimal,less,zstd"
)
# command -> Debian package that provides it


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


def recipe_hash(suite: str = SUITE) -> str:
    return hashlib.sha256(f"{suite}|{BASE_INCLUDE}|{BASE_RECIPE}".encode()).hexdigest()[:12]


def base_dir(lab_root: Path, suite: str = SUITE) -> Path:
    return lab_root / "base" / f"{suite}-{recipe_hash(suite)}"


def cache_tar(suite: str = SUITE) -> Path:
    return cache_dir() / f"lab-base-{suite}-{recipe_hash(suite)}.tar.zst"


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(f"Debian release {suite!r} is not one the lab boots ({', '.join(SUITES)})")
    return suite


def ensure_base(lab_root: Path, log: LogFn, suite: str = SUITE) -> Path:
    """Unpack the cached base image of ``suite``, or debootstrap it once and cache it (the mirror
    of this machine's apt sources serves every Debian release)."""
    check_suite(suite)
    base = base_dir(lab_root, suite)
    if (base / "etc" / "os-release").exists():
        return base
    tar = cache_tar(suite)
    tmp = base.with_name(base.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if tar.is_file():
        log(f"unpacking cached base image {tar.name}")
        _run(["tar", "--zstd", "-xpf", str(tar), "-C", str(tmp), "--numeric-owner", "--xattrs", "--xattrs-include=*"])
    else:
        mirror, _ = mirrors()
        log(f"building the base image with debootstrap ({suite} from {mirror}, about a minute)")
        keyring = [f"--keyring={DEBIAN_KEYRING}"] if DEBIAN_KEYRING.is_file() else []
        r = _run(
            ["debootstrap", "--variant=minbase", *keyring, f"--include={BASE_INCLUDE}", suite, str(tmp), mirror],
            check=False,
        )
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LabError(f"debootstrap failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
        customise_base(tmp)
        tar.parent.mkdir(parents=True, exist_ok=True)
        part = tar.with_name(tar.name + ".part")
        _run(
            [
                "tar",
                "--zstd",
                "-cpf",
                str(part),
                "-C",
                str(tmp),
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "--one-file-system",
                ".",
            ]
        )
        part.rename(tar)
        log(f"cached base image at {tar}")
    tmp.rename(base)
    return base


def customise_base(root: Path) -> None:
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
    units = [
        "systemd-timesyncd.service",
        "getty@tty1.service",
        "serial-getty@ttyS0.service",
        "console-getty.service",
        "systemd-networkd-wait-online.service",
    ]
    _run(["chroot", str(root), "systemctl", "mask", *units], check=False)
    (root / "etc/apt/apt.conf.d/90lab").write_text(
        'Acquire::Languages "none";\nAPT::Keep-Downloaded-Packages "false";\n'
    )
