"""Testing: a full single-instance fleet for integration tests of the deploys.

The HX topology (inventories/fleet.yml) on 192.168.20.0/24, domain test.hana-x.ai. Run:
    pyinfra inventories/testing.py deploys/site.py --dry --diff
    hxinfra deploy site --env testing --check --diff
"""

from deploys import components as _components
from hxinfra.inventory import environment as _environment
from hxinfra.inventory import topology_hosts as _topology_hosts

_env = _environment(
    __file__,
    data={
        "hx_environment": "testing",
        "hx_domain": "test.hana-x.ai",
        "hx_realm": "TEST.HANA-X.AI",
        "hx_subnet": "192.168.20.0/24",
    },
    hosts=_topology_hosts(__file__, "192.168.20.0/24"),
    components=_components(),
)

# pyinfra reads module-level lists as groups: export them
globals().update(_env.pyinfra_groups())
