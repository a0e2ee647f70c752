"""The HX site: every component, applied to the hosts of its groups.

Run it with either CLI (``pyinfra inventories/development.py deploys/site.py --dry --diff``
or ``hxinfra deploy site --env development --check --diff``) or import it:
``from deploys.site import site``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.ca_trust import COMPONENT as CA_TRUST
from deploys.ca_trust import ca_trust
from deploys.domain_join import COMPONENT as AD_JOIN
from deploys.domain_join import domain_join
from deploys.nginx import COMPONENT as NGINX
from deploys.nginx import nginx
from deploys.pg_auth import COMPONENT as PG_AUTH
from deploys.pg_auth import pg_auth
from hxinfra.deploytools import is_deploy_file


@deploy("HX site")
def site() -> None:
    """Apply each component where its groups say (like an Ansible play's ``hosts:``).

    CA trust comes first: services after it present certificates issued by that CA, and the
    domain join checks the domain controllers' certificates against it.
    """
    if CA_TRUST.applies_to(host.groups):
        ca_trust()
    if AD_JOIN.applies_to(host.groups):
        domain_join()
    if PG_AUTH.applies_to(host.groups):
        pg_auth()
    if NGINX.applies_to(host.groups):
        nginx()


if is_deploy_file(globals()):
    site()
