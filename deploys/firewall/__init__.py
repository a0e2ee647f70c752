"""The host firewall (nftables): openings derived from the components the host runs and who uses
them; one table replaced atomically after ``nft -c``; a change goes live under a rollback timer
that only a fresh login from the controller cancels."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.common import FLEET
from deploys.firewall.config import (
    APPLY,
    CONF,
    DEFAULTS,
    ROLLBACK_UNIT,
    UNDO,
    audit,
    check_data,
    desired_config,
    health,
    plan,
    rollback,
)
from deploys.firewall.facts import TableLoaded
from hxinfra.components import Component
from hxinfra.deploytools import component_data, guarded, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "firewall",
    DEFAULTS,
    check=check_data,
    plan=plan,
    health=health,
    rollback=rollback,
    audit=audit,
    tags=("packages", "rules"),
)

# what the firewall's own rules read besides its keys (the other components' openings read the host's
# data themselves, through their declarations)
USED = ("ssh_port", "hx_members")


@deploy("Firewall", data_defaults=DEFAULTS)
def firewall() -> None:
    """Install nftables, write the derived rule set (nft -c), load it; the controller must log in anew."""
    data = component_data(COMPONENT, host.data, extra_keys=(*FLEET.all_keys(), *USED))
    if step(COMPONENT, host.data, "packages"):
        system.packages(name="Install nftables", packages=["nftables"], update=True, cache_time=24 * 3600)
    if step(COMPONENT, host.data, "rules"):
        rules = config_set(
            name="Write the firewall rule set derived from the host's components, checked by nft -c",
            items=desired_config(data, set(host.groups), host.data),
            validate=f"nft -c -f {CONF}",
            validate_label="nft -c",
        )
        loaded = host.get_fact(TableLoaded) if data["firewall_enabled"] else True
        live = rules.did_change if loaded else (lambda: True)
        guarded("firewall rule set", ROLLBACK_UNIT, [CONF], APPLY, UNDO, data["firewall_rollback_seconds"], live)
        system.service(
            name="Enable nftables.service (the rule set at boot)",
            service="nftables.service",
            enabled=data["firewall_enabled"],
        )
