"""HX deploys: the ordered registry of components (each a package ``deploys/<name>/``).

``COMPONENTS`` is the one order ``site`` follows: CA trust first (services after it present
certificates issued by that CA, and the domain join checks the DCs' certificates against it),
then the AD join, local users, PostgreSQL, the gateway, the web UI, nginx; then hardening (the AD
admins' groups exist when sshd's AllowGroups names them, nginx's logs when fail2ban watches them)
and the firewall (derived from all of them); backups last. Each component package exports ``COMPONENT`` (its data
contract) and a ``@deploy`` function of the same name. Modules are imported on use, so that a
component never imports this registry (no import loop).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hxinfra.components import Component

COMPONENTS = (
    "ca_trust",
    "ad_join",
    "users",
    "pg_auth",
    "litellm",
    "webui",
    "nginx",
    "hardening",
    "node_exporter",
    "firewall",
    "backup",
)
# Operational deploys: their data is part of every environment's schema, but only an operator runs
# them (hxinfra deploy patching --serial 1), never site.
OPERATIONS = ("patching",)


def component(name: str) -> tuple[Component, Callable[..., Any]]:
    """A component's data contract and its ``@deploy`` function."""
    module = importlib.import_module(f"deploys.{name}")
    return module.COMPONENT, getattr(module, name)


def components() -> tuple[Component, ...]:
    """Every component schema, the fleet keys first (inventories validate data against them)."""
    from deploys.common import FLEET

    return (FLEET, *(component(name)[0] for name in (*COMPONENTS, *OPERATIONS)))
