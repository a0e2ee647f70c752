"""What every HX component shares: the fleet keys every host carries, and the templates tree.

Kept apart from ``deploys/__init__.py`` (the registry) so that a component imports this module
and never the registry: the import graph has no loop.
"""

from __future__ import annotations

import functools
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
