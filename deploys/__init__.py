"""HX deploys: one module per component, each with one public ``@deploy`` function.

``FLEET`` holds the keys every HX host carries (environment, domain...); ``components()``
lists every component schema so inventories can validate data before anything connects.
"""

from __future__ import annotations

from pathlib import Path

from hxinfra.components import Component

FLEET = Component(
    "hx",
    defaults={
        # Kerberos realm of the environment's Active Directory ("" when none).
        "hx_realm": "",
        # The environment's host subnet in CIDR notation (documentation and firewall rules).
        "hx_subnet": "",
        # Step selection (hxinfra deploy --tags/--skip-tags, or pyinfra --data hx_tags=config):
        # component names and step tags such as packages, config, service, security.
        "hx_tags": [],
        "hx_skip_tags": [],
        # In a group's vars: its precedence among groups of the same depth (higher wins), like
        # ansible_group_priority.
        "hx_group_priority": 1,
        # Set by the inventory, never by hand: vault files this host's data could not open.
        "hx_sealed_vaults": [],
    },
    types={"hx_tags": (list, str), "hx_skip_tags": (list, str)},
    required={
        # Environment name: production, staging, development, testing or lab.
        "hx_environment": str,
        # DNS domain of the environment; a host's FQDN is <inventory name>.<hx_domain>.
        "hx_domain": str,
    },
)


def templates_root() -> Path:
    """The project's ``templates/`` tree (shipped inside the wheel as ``deploys/templates``)."""
    here = Path(__file__).resolve().parent
    packaged = here / "templates"
    return packaged if packaged.is_dir() else here.parent / "templates"


def components() -> tuple[Component, ...]:
    """Every component schema, the fleet keys first."""
    from deploys import ca_trust, domain_join, nginx, pg_auth

    return (FLEET, ca_trust.COMPONENT, domain_join.COMPONENT, nginx.COMPONENT, pg_auth.COMPONENT)
