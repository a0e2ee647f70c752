"""Lab: the HX topology on this machine's local lab hosts (``hxinfra lab up``).

Only running lab hosts are in the inventory; addresses and the SSH key come from the lab.
Pick another lab with ``HXINFRA_LAB=NAME``. Run:
    hxinfra lab up && hxinfra deploy site --env lab
    pyinfra inventories/lab.py deploys/site.py --dry --diff
"""

from deploys import components as _components
from hxinfra.lab.core import LAB_DOMAIN as _LAB_DOMAIN
from hxinfra.lab.core import net_prefix as _net_prefix
from hxinfra.lab.inventory import lab_environment as _lab_environment

_env = _lab_environment(
    __file__,
    topology={
        "hx-dc-01": ["domain_controllers"],
        "hx-ca-01": ["ca_servers", "domain_members"],
        "hx-api-01": ["api_servers", "domain_members"],
        "hx-db-01": ["database_servers", "primary_db", "domain_members"],
        "hx-app-01": ["application_servers", "domain_members"],
        "hx-web-01": ["web_servers", "domain_members"],
    },
    data={
        "hx_environment": "lab",
        "hx_realm": "LAB.HXINFRA.TEST",
        "hx_domain": _LAB_DOMAIN,
        "hx_subnet": f"{_net_prefix()}.0/24",
        # lab hosts are reached as root with the lab's own key
        "_sudo": False,
    },
    components=_components(),
)

globals().update(_env.pyinfra_groups())
