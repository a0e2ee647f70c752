"""The fleet's topology (``inventories/fleet.yml``): the hosts of each role, written once for every environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hxinfra.datafiles import load_yaml_mapping
from hxinfra.errors import InventoryError


def topology_hosts(
    file: str | Path, subnet: str | None = None, counts: Mapping[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """Host entries from the topology file beside the inventory (``fleet.yml``): ``<role>-01``...
    per role, ``counts`` of each (else the file's ``counts:`` for this inventory; 1 by default), at
    ``<subnet prefix>.<octet + i>`` when a /24 ``subnet`` is given. One description of the fleet
    for every environment and the lab."""
    path = Path(file).resolve().parent / "fleet.yml"
    topology = load_yaml_mapping(path)
    roles = topology.get("roles")
    if counts is None:
        counts = (topology.get("counts") or {}).get(Path(file).stem)
    if not isinstance(roles, dict) or not roles:
        raise InventoryError(f"{path}: needs 'roles:' mapping each role to its octet and groups")
    prefix = None
    if subnet is not None:
        network = ipaddress.ip_network(subnet)
        if network.version != 4 or network.prefixlen != 24:
            raise InventoryError(f"{file}: subnet {subnet} must be an IPv4 /24 (the topology gives last octets)")
        prefix = str(network.network_address).rsplit(".", 1)[0]
    unknown = set(counts or {}) - set(roles)
    if unknown:
        raise InventoryError(f"{file}: counts for unknown role(s) {', '.join(sorted(unknown))} (see {path})")
    hosts: dict[str, dict[str, Any]] = {}
    for role, spec in roles.items():
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("octet"), int)
            or not isinstance(spec.get("groups"), list)
        ):
            raise InventoryError(f"{path}: role {role}: needs octet (a number) and groups (a list)")
        for i in range(1, (counts or {}).get(role, 1) + 1):
            groups = [*spec["groups"], *(spec.get("first", []) if i == 1 else [])]
            entry: dict[str, Any] = {"groups": groups}
            if prefix is not None:
                entry["address"] = f"{prefix}.{spec['octet'] + i - 1}"
            hosts[f"{role}-{i:02d}"] = entry
    return hosts


def topology_suites(file: str | Path) -> dict[str, str]:
    """Host -> Debian release, where the topology file's ``suites:`` gives this inventory's hosts
    another release than the default (the lab boots them so)."""
    path = Path(file).resolve().parent / "fleet.yml"
    suites = (load_yaml_mapping(path).get("suites") or {}).get(Path(file).stem) or {}
    if not isinstance(suites, dict) or not all(isinstance(v, str) for v in suites.values()):
        raise InventoryError(f"{path}: suites: {Path(file).stem}: must map host names to Debian releases")
    return dict(suites)
