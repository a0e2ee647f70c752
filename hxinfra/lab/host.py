"""A lab host as recorded on disk, where labs live, and the addresses they use."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LogFn = Callable[[str], None]

LAB_DOMAIN = "lab.hxinfra.test"
NETNS_PREFIX = "hxlab-"
VETH_PREFIX = "hxv"
CGROUP_PARENT = "hxinfra-lab"
MAX_INDEX = 200
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
@dataclass
class LabHost:
    """One lab host as recorded in its ``host.json``."""

    lab: str
    name: str
    index: int
    ip: str
    mac: str
    # a disk of its own of this many MiB (a loop-mounted ext4 under the overlay's writable layer),
    # so a test can fill it; 0: the writable layer shares the lab's filesystem
    disk_mb: int = 0
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
