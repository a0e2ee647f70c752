"""The firewall's pure parts: openings derived from the components and their users, the rule set
checked by nft itself where it can run."""

from __future__ import annotations

import subprocess

import pytest

from deploys.firewall.config import DEFAULTS, check_data, openings, ruleset
from deploys.litellm.config import DEFAULTS as LITELLM
from deploys.nginx.config import DEFAULTS as NGINX
from deploys.pg_auth.config import DEFAULTS as PG
from deploys.webui.config import DEFAULTS as WEBUI

MEMBERS = {
    "application_servers": [
        {"name": "hx-app-01", "address": "10.1.0.40"},
        {"name": "hx-app-02", "address": "10.1.0.41"},
    ],
    "web_servers": [{"name": "hx-web-01", "address": "10.1.0.50"}],
    "api_servers": [{"name": "hx-api-01", "address": "10.1.0.20"}],
}


def data(**kw):
    return {
        **PG,
        **WEBUI,
        **LITELLM,
        **NGINX,
        **DEFAULTS,
        "hx_subnet": "10.1.0.0/24",
        "hx_members": MEMBERS,
        "pg_auth_hba": [{"database": "hx_webui", "user": "hx_webui", "group": "application_servers"}],
        **kw,
    }


def by_port(d, groups):
    return {o.port: o for o in openings(d, set(groups))}


def test_each_component_opens_its_port_to_its_users_only():
    db = by_port(data(), ["database_servers", "domain_members"])
    assert set(db) == {22, 5432}
    assert db[5432].sources == ("10.1.0.40/32", "10.1.0.41/32") and db[22].sources == ("10.1.0.0/24",)
    api = by_port(data(), ["api_servers"])
    assert api[4000].sources == ("10.1.0.40/32", "10.1.0.41/32")
    app = by_port(data(), ["application_servers"])
    assert app[3000].sources == app[3001].sources == ("10.1.0.50/32",)
    web = by_port(data(nginx_tls=True), ["web_servers"])
    assert web[80].anywhere and web[443].anywhere and not web[22].anywhere
    ssh = by_port(data(hx_admin_networks=["192.168.99.0/24"]), [])
    assert ssh[22].sources == ("192.168.99.0/24",)
    assert by_port(data(pg_auth_hba=[]), ["database_servers"]).keys() == {22}  # no client: nothing opened
    dc = [o for o in openings(data(), {"domain_controllers"}) if o.port != 22]
    assert {(o.proto, o.port) for o in dc} >= {("tcp", 88), ("udp", 88), ("tcp", 636), ("tcp", "49152-65535")}
    assert all(o.sources == ("10.1.0.0/24",) for o in dc)


def test_without_any_admin_network_ssh_stays_open_rather_than_locked():
    ssh = by_port(data(hx_subnet=""), [])[22]
    assert ssh.anywhere and ssh.sources == ()


def test_rule_set_replaces_only_its_own_table_and_nft_accepts_it(tmp_path):
    text = ruleset(
        data(firewall_trusted_sources=["10.1.0.1/32"], nginx_tls=True), {"web_servers", "domain_controllers"}
    )
    assert "ip saddr { 10.1.0.0/24 } tcp dport 49152-65535 accept" in text and "udp dport 88 accept" in text
    assert text.index("table inet hxinfra\ndelete table inet hxinfra\n") < text.index("policy drop")
    assert "flush ruleset" not in text  # fail2ban's table stays
    assert 'ip saddr { 10.1.0.1/32 } accept comment "trusted sources' in text
    assert "tcp dport 443 accept" in text and "ip saddr { 10.1.0.0/24 } tcp dport 22 accept" in text
    f = tmp_path / "nftables.conf"
    f.write_text(text)
    r = subprocess.run(["unshare", "-n", "nft", "-c", "-f", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"firewall_rules": [{"port": 99999}]}, "port"),
        ({"firewall_rules": [{"port": 8080, "proto": "icmp"}]}, "tcp, udp"),
        ({"firewall_rules": [{"port": 8080, "sources": ["10.0.0.0/8; flush ruleset"]}]}, "firewall_rules[0].sources"),
        ({"firewall_rules": [{"port": 8080, "why": "a\nb"}]}, "newline"),
        ({"firewall_trusted_sources": ["everyone"]}, "firewall_trusted_sources"),
        ({"firewall_rollback_seconds": 5}, "30 to 3600"),
    ],
)
def test_malformed_rules_are_refused(values, message):
    problems = check_data(data(**values))
    assert problems and any(message in p for _, p in problems), problems
