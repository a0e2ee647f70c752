"""``hxinfra import-ansible``: an Ansible inventory written as an environment of this project.

The inventory as :mod:`hxinfra.ansible` reads it becomes ``inventories/<name>.py`` with its
``inventory.yml`` (hosts in ansible-core's order, groups, inline vars), and its ``group_vars`` and
``host_vars`` files, variables renamed where a component takes them; vault files are copied as
they are. What only the operator can supply gets a marked placeholder, listed in the report.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hxinfra.ansible import CONNECTION_VARS, AnsibleInventory, encrypted, hosts_of, read_inventory, vars_files
from hxinfra.datafiles import load_yaml
from hxinfra.errors import InventoryError
from hxinfra.inventory import FILL_IN_PREFIX, PRIORITY_KEY, host_name_problem
from hxinfra.secrets import Vaulted


@dataclass
class ImportReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    mapped: list[tuple[str, str, str]] = field(default_factory=list)  # old name, new name, file
    kept: list[tuple[str, str, str]] = field(default_factory=list)  # name, file, why
    flagged: list[tuple[str, str, str]] = field(default_factory=list)  # name, file, defect
    # what only the operator can supply: key, the placeholder written, the hosts that need it
    placeholders: list[tuple[str, str, list[str]]] = field(default_factory=list)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml's emitter where there
    """YAML out, with ``!vault`` values written back as they came in (never decrypted)."""


def _represent_vaulted(dumper: Any, value: Vaulted) -> Any:
    return dumper.represent_scalar("!vault", value.vaulttext, style="|")


_Dumper.add_representer(Vaulted, _represent_vaulted)


def _dump(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _prefixes(table: Mapping[str, str]) -> tuple[str, ...]:
    """The old roles' variable prefixes (``litellm_`` of ``litellm_proxy_port``), from the table."""
    return tuple(sorted({old.split("_", 1)[0] + "_" for old in table if "_" in old}))


def map_vars(
    variables: Mapping[str, Any],
    source: str,
    table: Mapping[str, str],
    report: ImportReport,
    known: Collection[str] = (),
) -> dict[str, Any]:
    """Ansible variables as this project's keys: connection variables and the HX roles' variables
    (``table``) are renamed; a key of this project (``known``: ``hx_domain``...) stays as it is; what
    does not map is kept under its name and listed; known defects of the old values are flagged."""
    out: dict[str, Any] = {}
    for key, value in variables.items():
        new = CONNECTION_VARS.get(key) or table.get(key)
        if new:
            out[new] = value
            report.mapped.append((key, new, source))
        else:
            out[key] = value
            if key not in known and key.startswith(("hx_", "ansible_", *_prefixes(table))):
                report.kept.append((key, source, "no key of this project takes it (kept as it is)"))
        text = str(value) if not isinstance(value, Vaulted) else ""
        if "home" in key and (text.startswith("/tmp/") or text.rstrip("/") == "/tmp"):
            report.flagged.append(
                (key, source, "home directories under /tmp (the old SSSD defect): refused by the domain join")
            )
        if "hba" in key and re.search(r"\btrust\b", text):
            report.flagged.append((key, source, "a pg_hba rule with trust: hxinfra refuses trust"))
    return out


def _priority(variables: Mapping[str, Any]) -> dict[str, Any]:
    """A group's inventory vars with ``ansible_group_priority`` as this project's key: ansible-core
    reads it there alone (in a group_vars file it is an ordinary variable, read by nothing)."""
    out = {k: v for k, v in variables.items() if k != "ansible_group_priority"}
    if "ansible_group_priority" in variables:
        value = variables["ansible_group_priority"]
        try:  # ansible-core takes int(value): "10" from an INI file is 10
            out[PRIORITY_KEY] = int(value)
        except (TypeError, ValueError):
            raise InventoryError(f"ansible_group_priority: {str(value)[:40]!r} is not a whole number") from None
    return out


MARKER = "# written by hxinfra import-ansible"
SECRET = re.compile(r"password|secret|key|token")


def placeholder(key: str) -> str:
    """What the import writes for a required key it cannot derive: a reference that nothing defines.
    The environment loads (masked, as a missing vault value is); a deploy of a host that reads it
    refuses before connecting, naming it. A secret points at the vault, anything else at a value."""
    return "{{ " + (f"vault_{key}" if SECRET.search(key) else f"{FILL_IN_PREFIX}{key}") + " }}"


def _ancestors(inv: AnsibleInventory) -> dict[str, set[str]]:
    """Each group and the groups it is a child of, to any depth ("all" holds every group)."""
    parents: dict[str, set[str]] = {}
    for group, body in inv.groups.items():
        for child in body["children"]:
            parents.setdefault(child, set()).add(group)

    def up(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out = {group}
        for parent in parents.get(group, set()) - seen:
            out |= up(parent, seen | {group})
        return out

    return {g: up(g) | {"all"} for g in inv.groups}


def _missing_required(
    inv: AnsibleInventory,
    hosts: Mapping[str, Mapping[str, Any]],
    defined: Mapping[tuple[str, str], set[str]],
    components: Iterable[Any],
    fleet: Mapping[tuple[str, str], set[str]],
) -> dict[str, list[str]]:
    """Required keys (of the fleet and of each component a host runs) that no layer of the host
    defines: key -> the hosts that need it. ``defined``/``fleet``: (kind, target) -> keys, of the
    imported files and of the project's own group_vars."""
    ancestors = _ancestors(inv)
    out: dict[str, list[str]] = {}
    for host, entry in hosts.items():
        groups = set().union(*(ancestors.get(g, {g, "all"}) for g in entry["groups"])) | {"all"}
        have = set(entry.get("data", {})) | set(inv.groups.get("all", {}).get("vars", {}))
        for g in groups:
            have |= set(inv.groups.get(g, {}).get("vars", {}))
            have |= defined.get(("group_vars", g), set()) | fleet.get(("group_vars", g), set())
        have |= defined.get(("host_vars", host), set())
        for comp in components:
            if comp.applies_to(groups - {"all"}):
                for key in comp.required:
                    if key not in have:
                        out.setdefault(key, []).append(host)
    return out


def _placeholders(
    inv: AnsibleInventory,
    name: str,
    hosts: Mapping[str, Mapping[str, Any]],
    defined: Mapping[tuple[str, str], set[str]],
    components: Iterable[Any],
    fleet: Mapping[tuple[str, str], set[str]],
    report: ImportReport,
) -> dict[str, str]:
    """``<name>/group_vars/all.yml`` where a required key has no value: ``hx_environment`` = the name,
    a marked placeholder for every other (listed in the report); nothing when none is missing."""
    out: dict[str, str] = {}
    required = _missing_required(inv, hosts, defined, components, fleet)
    if required:
        # below every imported layer (group_vars/all/*.yml are read after it): only what is missing
        lines = [
            f"{MARKER.removeprefix('# ')}: what only the operator can supply.",
            "Replace each {{ fill_in_... }} with its value, and put each {{ vault_... }} secret into the",
            f"vault (hxinfra vault edit inventories/{name}/group_vars/all/vault.yml); a deploy refuses to",
            "run until then, naming them.",
        ]
        values = {}
        for key, needing in sorted(required.items()):
            values[key] = name if key == "hx_environment" else placeholder(key)
            if key != "hx_environment":
                report.placeholders.append((key, values[key], needing))
        out[f"{name}/group_vars/all.yml"] = "".join(f"# {line}\n" for line in lines) + _dump(values)
    return out


def _plan_outputs(
    inv: AnsibleInventory,
    name: str,
    table: Mapping[str, str],
    report: ImportReport,
    components: Iterable[Any] = (),
    fleet: Mapping[tuple[str, str], set[str]] | None = None,
) -> dict[str, str | bytes]:
    """Every file the import writes (path relative to ``inventories/``) and its content: the inventory,
    its vars files, and where a required key has no value (of the fleet, of a component one of its
    hosts runs), ``<name>/group_vars/all.yml`` with ``hx_environment`` = the name and a marked
    placeholder for each of the others."""
    fleet = fleet or {}
    components = tuple(components)
    known = {k for comp in components for k in comp.all_keys()}
    base = inv.source.parent
    out: dict[str, str | bytes] = {}
    hosts: dict[str, dict[str, Any]] = {}
    for host in hosts_of(inv, "all"):  # the hosts of all in ansible-core's order
        problem = host_name_problem(host)
        if problem:  # a host name names files on the controller: refused before anything is written
            raise InventoryError(f"{inv.source}: {problem}")
        variables = dict(inv.hosts[host])
        entry: dict[str, Any] = {"groups": [g for g in inv.groups_of(host) if g != "all"]}
        address = variables.pop("ansible_host", None)
        if address is not None:
            entry["address"] = str(address)
        mapped = map_vars(variables, f"{inv.source.name} (host {host})", table, report, known)
        if mapped:
            entry["data"] = mapped
        hosts[host] = entry
    children = {g: list(body["children"]) for g, body in inv.groups.items() if g != "all" and body["children"]}
    group_vars = {
        g: map_vars(_priority(body["vars"]), f"{inv.source.name} (group {g})", table, report, known)
        for g, body in inv.groups.items()
        if body["vars"]
    }
    # a group whose own hosts are listed in another order than all's keeps its order (group[0])
    rank = {h: i for i, h in enumerate(hosts)}
    order = {
        g: list(body["hosts"])
        for g, body in inv.groups.items()
        if g != "all" and body["hosts"] != sorted(body["hosts"], key=rank.__getitem__)
    }
    # the inventory's own hosts, children and inline vars, as YAML (a !vault value stays one)
    out[f"{name}/inventory.yml"] = f"{MARKER} from {inv.source}\n" + _dump(
        {"hosts": hosts, "children": children, "group_vars": group_vars, **({"order": order} if order else {})}
    )
    defined: dict[tuple[str, str], set[str]] = {}
    for kind in ("group_vars", "host_vars"):
        folder = base / kind
        if not folder.is_dir():
            continue
        targets = sorted(
            {
                item.name.removesuffix(item.suffix)
                if item.is_file() and item.suffix in (".yml", ".yaml", ".json")
                else item.name
                for item in folder.iterdir()
            }
        )
        for target in targets:
            for f in vars_files(folder / target):
                rel = f.relative_to(folder)
                # group_vars/web.yml -> group_vars/web/web.yml, beside 00-inventory.yml (read after it)
                inner = f.name if f.parent == folder else "/".join(rel.parts[1:])
                inner = inner if Path(inner).suffix else f"{inner}.yml"  # our layers read *.yml
                dest = f"{name}/{kind}/{target}/{inner}"
                if encrypted(f):
                    defined.setdefault((kind, target), set())  # its keys are unknown until opened
                    out[dest] = f.read_bytes()  # a vault file, as it is: the same passwords open it
                    report.kept.append(("(whole file)", str(f), "a vault file: copied as it is, never decrypted"))
                    continue
                data = load_yaml(f.read_text(encoding="utf-8"), str(f)) or {}
                if not isinstance(data, dict):
                    raise InventoryError(f"{f}: a vars file is a mapping of names to values")
                mapped_file = map_vars(data, str(f), table, report, known)
                defined.setdefault((kind, target), set()).update(mapped_file)
                out[dest] = _dump(mapped_file)
    out.update(_placeholders(inv, name, hosts, defined, components, fleet, report))
    py = f'''"""{name}: an environment imported from an Ansible inventory ({inv.source.name}).

{MARKER}: run it again to refresh. The inventory's hosts, groups and inline vars are in
inventories/{name}/inventory.yml, its group_vars and host_vars in inventories/{name}/.
"""

from pathlib import Path as _Path

from deploys import components as _components
from hxinfra.datafiles import load_yaml_mapping as _load_yaml_mapping
from hxinfra.inventory import environment as _environment

_inventory = _load_yaml_mapping(_Path(__file__).resolve().parent / "{name}" / "inventory.yml")
_env = _environment(
    __file__,
    hosts=_inventory["hosts"],
    children=_inventory["children"],
    group_vars=_inventory["group_vars"],
    order=_inventory.get("order"),
    components=_components(),
)

globals().update(_env.pyinfra_groups())
'''
    out[f"{name}.py"] = py
    return out


def _fleet_keys(inventories: Path) -> dict[tuple[str, str], set[str]]:
    """The keys the project's own ``inventories/group_vars/`` gives each group (every environment
    reads them: what they define needs no placeholder)."""
    out: dict[tuple[str, str], set[str]] = {}
    folder = inventories / "group_vars"
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix in (".yml", ".yaml") and not encrypted(f):
                data = load_yaml(f.read_text(encoding="utf-8"), str(f)) or {}
                if isinstance(data, dict):
                    out.setdefault(("group_vars", f.stem), set()).update(data)
    return out


def import_inventory(
    path: Path,
    name: str,
    inventories: Path,
    table: Mapping[str, str],
    force: bool = False,
    components: Iterable[Any] = (),
) -> ImportReport:
    """Write ``inventories/<name>.py`` and its data files from an Ansible inventory.

    An unchanged source changes nothing; a file that exists with other content is replaced only with
    ``force`` (an environment is never overwritten by accident).
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise InventoryError(f"environment name {name!r}: lower-case letters, digits, '_' and '-'")
    report = ImportReport()
    outputs = _plan_outputs(read_inventory(path), name, table, report, components, _fleet_keys(inventories))
    conflicts = []
    for rel, content in outputs.items():
        target = inventories / rel
        data = content.encode() if isinstance(content, str) else content
        if target.is_file() and target.read_bytes() != data:
            conflicts.append(rel)
    if conflicts and not force:
        raise InventoryError(
            f"environment {name} exists and differs ({', '.join(conflicts[:5])}"
            f"{'...' if len(conflicts) > 5 else ''}): give --force to replace it"
        )
    for rel, content in outputs.items():
        target = inventories / rel
        data = content.encode() if isinstance(content, str) else content
        if target.is_file() and target.read_bytes() == data:
            report.unchanged.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        report.written.append(rel)
    return report
