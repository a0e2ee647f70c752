"""What every HX component shares: the fleet keys every host carries, and the templates tree.

Kept apart from ``deploys/__init__.py`` (the registry) so that a component imports this module
and never the registry: the import graph has no loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hxinfra.components import Component

FLEET = Component(
    "hx",
    defaults={
        # Kerberos realm of the environment's Active Directory ("" when none).
        "hx_realm": "",
        # The environment's host subnet in CIDR notation (documentation and firewall rules).
        "hx_subnet": "",
        # Where operators and the controller come from (CIDR list): SSH is open to them, fail2ban never
        # bans them. [] = the environment's subnet.
        "hx_admin_networks": [],
        # The hosts' release, when the environment declares it: "debian 12", "debian 13",
        # "ubuntu 22.04" or "ubuntu 24.04" ("" = each host's own). Deploys always follow the host's
        # /etc/os-release; the offline plan renders what depends on the release (the PGDG suite,
        # sssd.conf's mode) from this, and otherwise says it comes from the host's release at deploy time.
        "hx_os_release": "",
    },
    required={
        # Environment name: production, staging, development, testing or lab.
        "hx_environment": str,
        # DNS domain of the environment; a host's FQDN is <inventory name>.<hx_domain>.
        "hx_domain": str,
    },
)


def admin_networks(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Where operators and the controller come from (SSH open to them in the firewall, never banned
    by fail2ban): hx_admin_networks, or the environment's subnet when none is listed."""
    nets = tuple(str(n) for n in data.get("hx_admin_networks") or [])
    return nets or ((str(data["hx_subnet"]),) if data.get("hx_subnet") else ())


@functools.cache
def templates_root() -> Path:
    """The project's ``templates/`` tree: beside ``deploys/`` in a checkout, ``deploys/templates``
    inside an installed wheel (one lookup for both)."""
    here = Path(__file__).resolve().parent
    packaged = here / "templates"
    return packaged if packaged.is_dir() else here.parent / "templates"


# the releases the fleet runs: "<ID> <VERSION_ID>" of /etc/os-release -> its VERSION_CODENAME
RELEASES = {"debian 12": "bookworm", "debian 13": "trixie", "ubuntu 22.04": "jammy", "ubuntu 24.04": "noble"}


OS_RELEASE = "/etc/os-release"


def os_release_fields(text: str) -> dict[str, str]:
    """/etc/os-release's fields (``KEY=value``, quotes removed)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return fields


def host_release(text: str) -> tuple[str, str]:
    """The distribution (``ID``, lower case; "debian" when the file says none) and its
    ``VERSION_ID`` ("" for testing and unstable) from /etc/os-release's text."""
    fields = os_release_fields(text)
    return (fields.get("ID") or "debian").lower(), fields.get("VERSION_ID", "")


def declared_release(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """The environment's declared release (``hx_os_release``) as (``ID``, ``VERSION_ID``), None
    when it declares none; an unknown release is an error naming the known ones."""
    release = " ".join(str(data.get("hx_os_release") or "").lower().split())
    if not release:
        return None
    if release not in RELEASES:
        raise ValueError(f"hx_os_release {release!r}: one of {', '.join(RELEASES)}")
    distro, _, version = release.partition(" ")
    return distro, version


def declared_codename(data: Mapping[str, Any]) -> str | None:
    """The codename of the environment's declared release (``hx_os_release``), None when it
    declares none."""
    release = declared_release(data)
    return RELEASES[" ".join(release)] if release else None


# a key of a per-release table: a distribution ("ubuntu") or one of its releases ("ubuntu 24.04")
RELEASE_KEY = re.compile(r"[a-z][a-z0-9-]*( [0-9][0-9.]*)?")


def for_release(table: Mapping[str, Any], distro: str, version: str) -> Any:
    """The entry of a per-release table (packages by release) for a host: its release's own
    (``"ubuntu 24.04"``) over its distribution's (``"ubuntu"``); None when the table has neither."""
    for key in (f"{distro} {version}", distro):
        if key in table:
            return table[key]
    return None
