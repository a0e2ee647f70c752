"""The HX site: every component of the registry, in its order, on the hosts of its groups.

Run it with either CLI (``pyinfra inventories/development.py deploys/site.py --dry --diff``
or ``hxinfra deploy site --env development --check --diff``) or import it:
``from deploys.site import site``.

pyinfra orders operations by the line numbers of their call stack, not by call time: components
called from one line of a loop would interleave (nginx's site written before ca_trust installed
its certificate). So each component is called from its own line, in the registry's order (a test
holds the two equal).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys import component
from hxinfra.deploytools import is_deploy_file


def _apply(name: str) -> None:
    """Apply one component where its groups say (like an Ansible play's ``hosts:``)."""
    contract, apply = component(name)
    if contract.applies_to(host.groups):
        apply()


@deploy("HX site")
def site() -> None:
    """Every component, in the registry's order (deploys.COMPONENTS), one line each."""
    _apply("ca_trust")
    _apply("ad_join")
    _apply("pg_auth")
    _apply("litellm")
    _apply("webui")
    _apply("nginx")


if is_deploy_file(globals()):
    site()
