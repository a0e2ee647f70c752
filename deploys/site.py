"""The HX site: every component of the registry, in its order, on the hosts of its groups.

Run it with either CLI (``pyinfra inventories/development.py deploys/site.py --dry --diff``
or ``hxinfra deploy site --env development --check --diff``) or import it:
``from deploys.site import site``.

Each host runs its operations in the order called; across hosts, pyinfra orders operations only
where the hosts share one. So after each component every host takes one shared step (a barrier):
nothing of the next component starts on any host before the previous one is through on all of
them (the gateway answers before a web UI checks its health, the web UI's new colour answers
before nginx switches to it). pyinfra names an operation by the line numbers of its call stack,
so each component is called from its own line, in the registry's order (a test holds the two
equal): operations of two components never share a name.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys import component
from hxinfra.deploytools import is_deploy_file
from hxinfra.operations import barrier


def _apply(name: str) -> None:
    """Apply one component where its groups say (like an Ansible play's ``hosts:``), then wait
    for every host to be through it."""
    contract, apply = component(name)
    if contract.applies_to(host.groups):
        apply()
    barrier(name=f"Wait until every host is through {name}")


@deploy("HX site")
def site() -> None:
    """Every component, in the registry's order (deploys.COMPONENTS), one line each."""
    _apply("ca_trust")
    _apply("ad_join")
    _apply("users")
    _apply("pg_auth")
    _apply("litellm")
    _apply("webui")
    _apply("nginx")
    _apply("hardening")
    _apply("firewall")
    _apply("backup")


if is_deploy_file(globals()):
    site()
