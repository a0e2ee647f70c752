"""Firewall (nftables), desired state: the openings are derived from the components a host runs
and from who uses them, never listed by hand per host.

| component (group) | port | from |
| --- | --- | --- |
| every host | SSH (``ssh_port``, 22) | ``hx_admin_networks`` (the environment's subnet when empty) |
| domain controllers | DNS, Kerberos, LDAP(S), SMB, kpasswd, GC, NTP, RPC | the environment's subnet |
| nginx (web_servers) | ``nginx_http_port``, ``nginx_https_port`` | anywhere |
| pg_auth (database_servers) | ``pg_auth_port`` | the addresses of its ``pg_auth_hba`` rules only |
| litellm (api_servers) | ``litellm_port`` | the application servers |
| webui (application_servers) | ``webui_ports`` (both colours) | the web servers |

plus ``firewall_rules`` (extra openings) and ``firewall_trusted_sources`` (monitoring hosts that reach
every port). The rules are one table, ``inet hxinfra``, replaced atomically by ``nft -f`` after
``nft -c`` accepted the file; other tables (fail2ban's) are left alone. A change goes live under a
rollback timer that only a fresh login from the controller cancels.
"""

from __future__ import annotations

import ipaddress
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploys.common import admin_networks, templates_root
from hxinfra.memo import IdentityCache, by_reads, lru
from hxinfra.operations import ConfigItem, ManagedFile
from hxinfra.render import render, template_context
from hxinfra.validate import DataError, choice, collect, fields, network, one_line, port

DEFAULTS: dict[str, Any] = {
    # Manage the host's firewall (false: leave it alone).
    "firewall_enabled": True,
    # Extra openings: {port, proto: tcp|udp, sources: [CIDR...] ([] = anywhere), why}.
    "firewall_rules": [],
    # Addresses that reach every port of the host (monitoring, the lab's controller).
    "firewall_trusted_sources": [],
    # Log dropped packets (rate-limited) with this prefix in the kernel log.
    "firewall_log_drops": True,
    # Seconds after which a change puts the previous rules back unless the controller logged in anew.
    "firewall_rollback_seconds": 120,
}

CONF = "/etc/nftables.conf"
ROLLBACK_UNIT = "hxinfra-rollback-firewall"
APPLY = f"nft -f {CONF}"
# the previous file back, or (none before: the table was ours alone) the table gone
UNDO = f"{APPLY} || nft delete table inet hxinfra"


# DNS, Kerberos, RPC endpoint mapper, LDAP, SMB, kpasswd, LDAPS, global catalog, NTP, dynamic RPC
AD_PORTS: dict[str, tuple[int | str, ...]] = {
    "tcp": (53, 88, 135, 389, 445, 464, 636, 3268, 3269, "49152-65535"),
    "udp": (53, 88, 123, 389, 464),
}


@dataclass(frozen=True)
class Opening:
    """One port open to ``sources`` (empty: anywhere), and the component it is for."""

    port: int | str  # a port, or a range "49152-65535"
    proto: str
    sources: tuple[str, ...]
    why: str
    anywhere: bool = False  # no sources means anywhere (else: nobody yet, nothing opened)


def _hosts(data: Mapping[str, Any], group: str) -> tuple[str, ...]:
    """A group's hosts as networks; worked out once per group of the shared members mapping (a fleet
    of N hosts asks it N times)."""
    members = data.get("hx_members") or {}
    return _GROUP_HOSTS.get(members, lambda: tuple(_cidr(str(m["address"])) for m in members.get(group, [])), group)


_GROUP_HOSTS: IdentityCache[tuple[str, ...]] = IdentityCache(limit=256)
_CLIENTS: IdentityCache[tuple[str, ...]] = IdentityCache(limit=256)


def _pg_clients(rules: list[dict[str, str]]) -> tuple[str, ...]:
    """The networks of pg_hba's clients, once per rules list (hba_rules keeps one per fleet)."""
    return _CLIENTS.get(
        rules,
        lambda: tuple(
            sorted(
                {
                    _cidr(r["address"])
                    for r in rules
                    if r.get("type", "hostssl") != "local"
                    and r.get("address") not in (None, "", "all", "samehost", "samenet")
                }
            )
        ),
    )


@lru(65536)
def _cidr(address: str) -> str:
    """An address as a network (a host as /32 or /128); parsed once per address per run (a fleet's
    firewall lists the same addresses on many hosts)."""
    return str(ipaddress.ip_network(address, strict=False))


def openings(data: Mapping[str, Any], groups: set[str]) -> list[Opening]:
    """Every opening of the host, from its groups (the components it runs) and the data."""
    admins = admin_networks(data)  # none known: SSH stays open to all rather than lock everyone out
    out = [Opening(int(data.get("ssh_port") or 22), "tcp", admins, "SSH from the admin networks", not admins)]
    if "domain_controllers" in groups:  # Active Directory for the environment's hosts
        subnet = tuple(x for x in [str(data.get("hx_subnet") or "")] if x)
        for proto, ports in AD_PORTS.items():
            out += [Opening(p, proto, subnet, f"Active Directory ({proto} {p}) from the subnet") for p in ports]
    if "web_servers" in groups:
        out.append(Opening(int(data["nginx_http_port"]), "tcp", (), "nginx (HTTP, redirects to HTTPS)", True))
        if data.get("nginx_tls"):
            out.append(Opening(int(data["nginx_https_port"]), "tcp", (), "nginx (HTTPS)", True))
    if "database_servers" in groups:
        from deploys.pg_auth.config import hba_rules

        out.append(
            Opening(
                int(data["pg_auth_port"]), "tcp", _pg_clients(hba_rules(data)), "PostgreSQL from its pg_hba clients"
            )
        )
    if "api_servers" in groups:
        out.append(
            Opening(
                int(data["litellm_port"]),
                "tcp",
                _hosts(data, "application_servers"),
                "LiteLLM from the application servers",
            )
        )
    if "application_servers" in groups:
        for colour, p in sorted(dict(data["webui_ports"]).items()):
            out.append(Opening(int(p), "tcp", _hosts(data, "web_servers"), f"web UI ({colour}) from the web servers"))
    for i, rule in enumerate(data["firewall_rules"]):
        r = fields(rule, f"firewall_rules[{i}]", ("port",), ("proto", "sources", "why"))
        sources = tuple(network(s, f"firewall_rules[{i}].sources") for s in r.get("sources", []))
        why = one_line(r.get("why", "extra rule"), f"firewall_rules[{i}].why").replace('"', "'")
        out.append(
            Opening(
                port(r["port"], f"firewall_rules[{i}].port"),
                choice(r.get("proto", "tcp"), f"firewall_rules[{i}].proto", ("tcp", "udp")),
                sources,
                why,
                not sources,
            )
        )
    return [o for o in out if o.sources or o.anywhere]


def ruleset(data: Mapping[str, Any], groups: set[str]) -> str:
    """The whole /etc/nftables.conf: the hxinfra table, recreated in one transaction."""
    rules = []
    for o in openings(data, groups):
        v4 = [s for s in o.sources if ":" not in s]  # sources are normalised networks: ':' only in IPv6
        v6 = [s for s in o.sources if ":" in s]
        if o.anywhere:
            rules.append((f"{o.proto} dport {o.port} accept", o.why))
        if v4:
            rules.append((f"ip saddr {{ {', '.join(v4)} }} {o.proto} dport {o.port} accept", o.why))
        if v6:
            rules.append((f"ip6 saddr {{ {', '.join(v6)} }} {o.proto} dport {o.port} accept", o.why))
    trusted = [_cidr(str(s)) for s in data["firewall_trusted_sources"]]
    context = template_context(
        data,
        {
            "rules": rules,
            "trusted4": [s for s in trusted if ":" not in s],
            "trusted6": [s for s in trusted if ":" in s],
        },
    )
    return render(templates_root(), "firewall/etc/nftables.conf.j2", context)


def desired_config(data: Mapping[str, Any], groups: set[str]) -> list[ConfigItem]:
    return [ManagedFile(CONF, ruleset(data, groups), mode="0755")] if data["firewall_enabled"] else []


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    def rules(d: Mapping[str, Any]) -> None:
        # a view, not a copy: the check reads only the keys openings() reads (checked once per role)
        openings(ChainMap({"nginx_http_port": 80, "webui_ports": {}}, d, DEFAULTS), set())  # type: ignore[arg-type]

    def trusted(d: Mapping[str, Any]) -> None:
        for s in d["firewall_trusted_sources"]:
            network(s, "firewall_trusted_sources")

    def seconds(d: Mapping[str, Any]) -> None:
        v = d["firewall_rollback_seconds"]
        if not isinstance(v, int) or isinstance(v, bool) or not 30 <= v <= 3600:
            raise DataError("firewall_rollback_seconds: a whole number from 30 to 3600")

    return collect(
        data, {"firewall_rules": rules, "firewall_trusted_sources": trusted, "firewall_rollback_seconds": seconds}
    )


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    return list(_planned(data, frozenset(data.get("hx_groups") or ())))


@by_reads  # one rule set per role: planned once for all its hosts
def _planned(data: Mapping[str, Any], groups: frozenset[str]) -> tuple[ConfigItem, ...]:
    return tuple(desired_config(data, set(groups)))


def rollback(data: Mapping[str, Any], host_name: str) -> tuple[str, str]:
    """A restored previous rule set (hxinfra restore --config firewall): nft -c, then loaded."""
    return f"nft -c -f {CONF}", APPLY


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The hxinfra table is loaded and drops what is not opened."""
    from hxinfra.health import Check

    if not data["firewall_enabled"]:
        return []
    return [
        Check(
            "the firewall's table is loaded (input policy drop)",
            "nft list chain inet hxinfra input | grep -q 'policy drop' && echo 'inet hxinfra: policy drop'",
            "firewall",
        )
    ]


def audit(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The firewall is loaded, drops by default, and its rules are the ones derived from the host's
    components (the file on disk is what hxinfra would write, and it is what the kernel runs)."""
    import hashlib

    from hxinfra.audit import Control

    want = hashlib.sha256(ruleset(data, set(data.get("hx_groups") or ())).encode()).hexdigest()
    return (
        [
            Control(
                "firewall-default-deny",
                "Inbound traffic is dropped unless a rule opens it",
                "nft list chain inet hxinfra input 2>&1 | grep -m1 'policy'",
                {"cis_basic": "4.3", "pci_dss": "1.3.1", "soc2": "CC6.6"},
            ),
            Control(
                "firewall-rules-as-derived",
                "Open ports are exactly those derived from the host's components",
                f"echo 'rules:'; nft list chain inet hxinfra input 2>/dev/null | grep -o 'comment \"[^\"]*\"' | sort -u; "  # noqa: E501
                f"sha256sum {CONF} | grep -q '^{want} '",
                {"pci_dss": "1.2.5", "soc2": "CC6.6"},
            ),
        ]
        if data["firewall_enabled"]
        else []
    )
