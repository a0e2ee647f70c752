"""Testing: a full single-instance fleet for integration tests of the deploys.

Addresses: 192.168.20.0/24, same last octet per role in every environment
(dc .10, ca .15, api .20, db .30, app .40, web .50). Run:
    pyinfra inventories/testing.py deploys/site.py --dry --diff
    hxinfra deploy site --env testing --check --diff
"""

from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={
        "hx_environment": "testing",
        "hx_domain": "test.hana-x.ai",
        "hx_realm": "TEST.HANA-X.AI",
        "hx_subnet": "192.168.20.0/24",
    },
    hosts={
        "hx-dc-01": {"address": "192.168.20.10", "groups": ["domain_controllers"]},
        "hx-ca-01": {"address": "192.168.20.15", "groups": ["ca_servers", "domain_members"]},
        "hx-api-01": {"address": "192.168.20.20", "groups": ["api_servers", "domain_members"]},
        "hx-db-01": {"address": "192.168.20.30", "groups": ["database_servers", "primary_db", "domain_members"]},
        "hx-app-01": {"address": "192.168.20.40", "groups": ["application_servers", "domain_members"]},
        "hx-web-01": {"address": "192.168.20.50", "groups": ["web_servers", "domain_members"]},
    },
    components=_components(),
)

# pyinfra reads module-level lists as groups: export them
globals().update(_env.pyinfra_groups())
