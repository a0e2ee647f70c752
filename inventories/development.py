"""Development: the dev-test fleet operators and developers work on.

The HX topology (inventories/fleet.yml) on 192.168.10.0/24, domain dev-test.hana-x.ai. Run:
    pyinfra inventories/development.py deploys/site.py --dry --diff
    hxinfra deploy site --env development --check --diff
"""

from deploys import components as _components
from hxinfra.inventory import environment as _environment
from hxinfra.inventory import topology_hosts as _topology_hosts

_env = _environment(
    __file__,
    data={
        "hx_environment": "development",
        "hx_domain": "dev-test.hana-x.ai",
        "hx_realm": "DEV-TEST.HANA-X.AI",
        "hx_subnet": "192.168.10.0/24",
    },
    hosts=_topology_hosts(__file__, "192.168.10.0/24"),
    components=_components(),
)

# pyinfra reads module-level lists as groups: export them
globals().update(_env.pyinfra_groups())
