"""Lab: the HX topology on this machine's local lab hosts (``hxinfra lab up``).

Only running lab hosts are in the inventory; addresses and the SSH key come from the lab.
Pick another lab with ``HXINFRA_LAB=NAME``. Run:
    hxinfra lab up && hxinfra deploy site --env lab
    pyinfra inventories/lab.py deploys/site.py --dry --diff
"""

from deploys import components as _components
from hxinfra.lab.core import LAB_DOMAIN as _LAB_DOMAIN
from hxinfra.lab.core import net_prefix as _net_prefix
from hxinfra.lab.inventory import existing_lab as _existing_lab
from hxinfra.lab.inventory import lab_ca as _lab_ca
from hxinfra.lab.inventory import lab_environment as _lab_environment
from hxinfra.lab.inventory import lab_vault as _lab_vault
from hxinfra.lab.samba import marker as _samba_marker

_lab = _existing_lab()  # reading the inventory never creates a lab
_ca = _lab_ca(_lab)
_secrets = _lab_vault(_lab)
_ips = {h.name: h.ip for h in _lab.hosts() if h.state == "running"}
_DC = "hx-dc-01"
# domain members join only once the lab's DC is provisioned (hxinfra lab up does it)
_dc_ready = _DC in _ips and _samba_marker(_lab, _DC).exists()


def _host_data(name, ip, groups):
    """Service certificates from the lab CA (issued on first use) and per-host service data."""
    data = {}
    names = [f"{name}.{_LAB_DOMAIN}", name]
    if "web_servers" in groups:
        crt, key = _ca.ensure_issued(name, names, [ip])
        data["nginx_tls"] = True
        data["ca_trust_host_certs"] = [{"name": "webui", "cert": str(crt), "key": str(key)}]
    if "database_servers" in groups:
        crt, key = _ca.ensure_issued(f"{name}-postgresql", names, [ip])
        data["ca_trust_host_certs"] = [
            {"name": "postgresql", "cert": str(crt), "key": str(key), "key_group": "ssl-cert", "key_mode": "0640"}
        ]
        data.update(
            pg_auth_ssl_cert="/etc/ssl/hx/postgresql.crt",
            pg_auth_ssl_key="/etc/ssl/hx/private/postgresql.key",
            pg_auth_roles=[{"name": "hx_app", "password": _secrets["vault_lab_pg_app_password"]}],
            pg_auth_databases=[{"name": "hxapp", "owner": "hx_app"}],
            # the web UI's database role, from the application server only
            pg_auth_hba=[
                {"database": "hxapp", "user": "hx_app", "address": f"{_ips[a]}/32"} for a in ("hx-app-01",) if a in _ips
            ],
        )
    if "domain_members" in groups:
        data.update(
            ad_join_dns_servers=[_ips[_DC]],
            ad_join_admin_password=_secrets["vault_lab_dc_admin_password"],
            ad_join_sudo_rules=[{"group": "domain admins", "commands": "ALL"}],
        )
    return data


_topology = {
    "hx-dc-01": ["domain_controllers"],
    "hx-ca-01": ["ca_servers", "domain_members"],
    "hx-api-01": ["api_servers", "domain_members"],
    "hx-db-01": ["database_servers", "primary_db", "domain_members"],
    "hx-app-01": ["application_servers", "domain_members"],
    "hx-web-01": ["web_servers", "domain_members"],
}
if not _dc_ready:
    _topology = {name: [g for g in groups if g != "domain_members"] for name, groups in _topology.items()}

_env = _lab_environment(
    __file__,
    topology=_topology,
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
