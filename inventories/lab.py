"""Lab: the HX topology on this machine's local lab hosts (``hxinfra lab up``).

Only running lab hosts are in the inventory; addresses and the SSH key come from the lab.
Pick another lab with ``HXINFRA_LAB=NAME``. Run:
    hxinfra lab up && hxinfra deploy site --env lab
    pyinfra inventories/lab.py deploys/site.py --dry --diff
"""

from deploys import components as _components
from hxinfra.lab.core import LAB_DOMAIN as _LAB_DOMAIN
from hxinfra.lab.core import net_prefix as _net_prefix
from hxinfra.lab.inventory import lab_ca as _lab_ca
from hxinfra.lab.inventory import lab_environment as _lab_environment

_ca = _lab_ca()


def _host_data(name, ip, groups):
    """Web front ends serve HTTPS with a certificate from the lab CA (issued on first use)."""
    if "web_servers" not in groups:
        return {}
    crt, key = _ca.ensure_issued(name, [f"{name}.{_LAB_DOMAIN}", name], [ip])
    return {"nginx_tls": True, "ca_trust_host_certs": [{"name": "webui", "cert": str(crt), "key": str(key)}]}


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
        # every lab host trusts the lab's own CA (hxinfra pki, created with the lab)
        "ca_trust_certificates": [{"name": "hx-lab-root-ca", "file": str(_ca.cert_path)}],
    },
    components=_components(),
    host_data=_host_data,
)

globals().update(_env.pyinfra_groups())
