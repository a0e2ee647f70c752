"""Staging: production's shape at smaller scale; the last stop before production.

The HX topology (inventories/fleet.yml) on 192.168.30.0/24, domain stg.hana-x.ai. Run:
    pyinfra inventories/staging.py deploys/site.py --dry --diff
    hxinfra deploy site --env staging --check --diff
"""

from deploys import components as _components
from hxinfra.inventory import environment as _environment
from hxinfra.inventory import topology_hosts as _topology_hosts

_env = _environment(
    __file__,
    protected=True,  # every change needs a confirmation (hxinfra.guard)
    data={
        "hx_environment": "staging",
        "hx_domain": "stg.hana-x.ai",
        "hx_realm": "STG.HANA-X.AI",
        "hx_subnet": "192.168.30.0/24",
    },
    hosts=_topology_hosts(__file__, "192.168.30.0/24", {"hx-db": 2, "hx-web": 2}),
    components=_components(),
)

# pyinfra reads module-level lists as groups: export them
globals().update(_env.pyinfra_groups())
