"""Firewall (nftables), desired state: the openings are derived from the components a host runs
and from who uses them, never listed by hand per host.

| what | port | from |
| --- | --- | --- |
| every host | SSH (``ssh_port``, 22) | ``hx_admin_networks`` (the environment's subnet when empty) |
| domain controllers | DNS, Kerberos, LDAP(S), SMB, kpasswd, GC, NTP, RPC | the environment's subnet |
| each component it runs | its ``openings`` (``hxinfra.components.Opening``) | anywhere, a group's hosts, or networks |

plus ``firewall_rules`` (extra openings) and ``firewall_trusted_sources`` (monitoring hosts that reach
every port). The firewall names no other component: it collects their declarations, openings to
anywhere first (the public front ends), then the others in the site's order. The rules are one table,
``inet hxinfra``, replaced atomically by ``nft -f`` after ``nft -c`` accepted the file; other tables
(fail2ban's) are left alone. A change goes live under a rollback timer that only a fresh login from
the controller cancels.
"""

from __future__ import annotations

import ipaddress
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from deploys.common import admin_networks, templates_root
from hxinfra.components import Opening, declared
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.memo import IdentityCache, by_reads, lru
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


def _hosts(data: Mapping[str, Any], group: str) -> tuple[str, ...]:
    """A group's hosts as networks; worked out once per group of the shared members mapping (a fleet
    of N hosts asks it N times)."""
    members = data.get("hx_members") or {}
    return _GROUP_HOSTS.get(members, lambda: tuple(_cidr(str(m["address"])) for m in members.get(group, [])), group)


_GROUP_HOSTS: IdentityCache[tuple[str, ...]] = IdentityCache(limit=256)


@lru(65536)
def _cidr(address: str) -> str:
    """An address as a network (a host as /32 or /128); parsed once per address per run (a fleet's
    firewall lists the same addresses on many hosts)."""
    return str(ipaddress.ip_network(address, strict=False))


def openings(data: Mapping[str, Any], groups: set[str], host_data: Any = None) -> list[Opening]:
    """Every opening of the host: SSH, a DC's Active Directory, what the components it runs declare
    (read from ``host_data``: pyinfra's ``host.data`` in a deploy, else ``data``), then the data's own."""
    admins = admin_networks(data)  # none known: SSH stays open to all rather than lock everyone out
    out = [Opening(int(data.get("ssh_port") or 22), "SSH from the admin networks", "tcp", "", admins, not admins)]
    if "domain_controllers" in groups:  # Active Directory for the environment's hosts
        subnet = tuple(x for x in [str(data.get("hx_subnet") or "")] if x)
        for proto, ports in AD_PORTS.items():
            out += [Opening(p, f"Active Directory ({proto} {p}) from the subnet", proto, "", subnet) for p in ports]
    declarations = declared("openings", data if host_data is None else host_data, "", groups)
    theirs = [o for _component, found in declarations for o in found]
    for o in sorted(theirs, key=lambda o: not o.anywhere):  # the public front first, then in the site's order
        sources = _hosts(data, o.group) if o.group else tuple(sorted({_cidr(str(s)) for s in o.sources}))
        out.append(Opening(o.port, o.why, o.proto, "", sources, o.anywhere))
    for i, rule in enumerate(data["firewall_rules"]):
        r = fields(rule, f"firewall_rules[{i}]", ("port",), ("proto", "sources", "why"))
        sources = tuple(network(s, f"firewall_rules[{i}].sources") for s in r.get("sources", []))
        why = one_line(r.get("why", "extra rule"), f"firewall_rules[{i}].why").replace('"', "'")
        proto = choice(r.get("proto", "tcp"), f"firewall_rules[{i}].proto", ("tcp", "udp"))
        out.append(Opening(port(r["port"], f"firewall_rules[{i}].port"), why, proto, "", sources, not sources))
    return [o for o in out if o.sources or o.anywhere]


def ruleset(data: Mapping[str, Any], groups: set[str], host_data: Any = None) -> str:
    """The whole /etc/nftables.conf: the hxinfra table, recreated in one transaction."""
    rules = []
    for o in openings(data, groups, host_data):
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


def desired_config(data: Mapping[str, Any], groups: set[str], host_data: Any = None) -> list[ConfigItem]:
    return [ManagedFile(CONF, ruleset(data, groups, host_data), mode="0755")] if data["firewall_enabled"] else []


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    def rules(d: Mapping[str, Any]) -> None:
        # a view, not a copy: the check reads only the keys openings() reads (checked once per role)
        openings(ChainMap(d, DEFAULTS), set())  # type: ignore[arg-type]

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
