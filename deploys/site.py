"""The HX site: every component of the registry, in its order, on the hosts of its groups.

Run it with either CLI (``pyinfra inventories/development.py deploys/site.py --dry --diff``
or ``hxinfra deploy site --env development --check --diff``) or import it:
``from deploys.site import site``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys import COMPONENTS, component
from hxinfra.deploytools import is_deploy_file


@deploy("HX site")
def site() -> None:
    """Apply each component where its groups say (like an Ansible play's ``hosts:``)."""
    for name in COMPONENTS:
        contract, apply = component(name)
        if contract.applies_to(host.groups):
            apply()


if is_deploy_file(globals()):
    site()
