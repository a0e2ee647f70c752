"""Staging: production's shape at smaller scale; the last stop before production.

Addresses: 192.168.30.0/24, same last octet per role in every environment
(dc .10, ca .15, api .20, db .30, app .40, web .50). Run:
    pyinfra inventories/staging.py deploys/site.py --dry --diff
    hxinfra deploy site --env staging --check --diff
"""

from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={
        "hx_environment": "staging",
        "hx_domain": "stg.hana-x.ai",
        "hx_realm": "STG.HANA-X.AI",
        "hx_subnet": "192.168.30.0/24",
    },
    hosts={
        "hx-dc-01": {"address": "192.168.30.10", "groups": ["domain_controllers"]},
        "hx-ca-01": {"address": "192.168.30.15", "groups": ["ca_servers", "domain_members"]},
        "hx-api-01": {"address": "192.168.30.20", "groups": ["api_servers", "domain_members"]},
        "hx-db-01": {"address": "192.168.30.30", "groups": ["database_servers", "primary_db", "domain_members"]},
        "hx-db-02": {"address": "192.168.30.31", "groups": ["database_servers", "domain_members"]},
        "hx-app-01": {"address": "192.168.30.40", "groups": ["application_servers", "domain_members"]},
        "hx-web-01": {"address": "192.168.30.50", "groups": ["web_servers", "domain_members"]},
        "hx-web-02": {"address": "192.168.30.51", "groups": ["web_servers", "domain_members"]},
    },
    components=_components(),
)

# pyinfra reads module-level lists as groups: export them
globals().update(_env.pyinfra_groups())
