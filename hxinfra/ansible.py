"""Ansible inventories in and out: read an Ansible inventory (YAML or INI, with ``group_vars`` and
``host_vars``), and show an environment as ``ansible-inventory --list`` does.

Read as Ansible reads: ``children`` to any depth, ``vars`` at every level, host ranges
(``web[01:03].example.com``, ``db-[a:c]``, ``[1:9:2]``), INI values (inline and ``[group:vars]``)
as Python literals when they are one (as ansible-core parses them, checked side by side),
``group_vars``/``host_vars`` beside the inventory file as files or
directories. Vault files and ``!vault`` values are never decrypted here: they are copied as they are.
"""

from __future__ import annotations

import ast
import re
import shlex
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hxinfra.datafiles import load_yaml
from hxinfra.errors import InventoryError
from hxinfra.inventory import FILL_IN_PREFIX, PRIORITY_KEY, descendants, group_name_problem, host_name_problem
from hxinfra.secrets import Vaulted, is_encrypted

# Ansible's connection variables and the pyinfra connector keys they become
CONNECTION_VARS = {
    "ansible_port": "ssh_port",
    "ansible_user": "ssh_user",
    "ansible_ssh_user": "ssh_user",
    "ansible_password": "ssh_password",
    "ansible_ssh_pass": "ssh_password",
    "ansible_ssh_private_key_file": "ssh_key",
    "ansible_private_key_file": "ssh_key",
    "ansible_become": "_sudo",
    "ansible_become_user": "_sudo_user",
    "ansible_become_password": "_sudo_password",
}
HOST_FILES = ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts", "inventory.yml", "inventory.yaml", "inventory.ini")
_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")


@dataclass
class AnsibleInventory:
    """Hosts in file order, groups with their own hosts, vars and children, as Ansible holds them."""

    source: Path
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> inline vars
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # group -> {hosts, vars, children}

    def group(self, name: str) -> dict[str, Any]:
        if name not in self.groups and (problem := group_name_problem(name)):
            raise InventoryError(f"{self.source}: {problem}")
        return self.groups.setdefault(name, {"hosts": [], "vars": {}, "children": []})

    def add_host(self, group: str, host: str, variables: Mapping[str, Any]) -> None:
        self.hosts.setdefault(host, {}).update(variables)
        members = self.group(group)["hosts"]
        if host not in members:
            members.append(host)


def expand_range(pattern: str) -> list[str]:
    """``web[01:03]`` -> web01, web02, web03 (zero padding kept); ``[a:c]`` letters; ``[1:9:2]`` steps."""
    m = _RANGE.search(pattern)
    if not m:
        return [pattern]
    start, end, step = m.group(1), m.group(2), int(m.group(3) or 1)
    head, tail = pattern[: m.start()], pattern[m.end() :]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    elif len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
        letters = string.ascii_letters
        items = list(letters[letters.index(start) : letters.index(end) + 1 : step])
    else:
        raise InventoryError(f"host range {pattern!r}: give numbers or single letters, e.g. web[01:03]")
    if not items:
        raise InventoryError(f"host range {pattern!r} is empty")
    return [name for item in items for name in expand_range(head + item + tail)]


def find_hosts_file(path: Path) -> Path:
    """The inventory file: ``path`` itself, or the hosts file of an inventory directory."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in HOST_FILES:
            if (path / name).is_file():
                return path / name
        raise InventoryError(f"{path}: no inventory file in it (looked for {', '.join(HOST_FILES)})")
    raise InventoryError(f"{path}: no such inventory file or directory")


def read_inventory(path: Path) -> AnsibleInventory:
    """Parse an Ansible inventory file (YAML or INI); plugins and scripts are refused, clearly."""
    hosts_file = find_hosts_file(path)
    if hosts_file.stat().st_mode & 0o111 and hosts_file.read_bytes()[:2] == b"#!":
        raise InventoryError(f"{hosts_file}: an inventory script; import a static inventory (ansible-inventory --list)")
    text = hosts_file.read_text(encoding="utf-8")
    inv = AnsibleInventory(hosts_file)
    inv.group("all")
    inv.group("ungrouped")
    if hosts_file.suffix in (".yml", ".yaml") or re.match(r"\s*(all|[A-Za-z_][\w-]*)\s*:\s*$", text, re.M):
        data = load_yaml(text, str(hosts_file))
        if isinstance(data, dict) and "plugin" in data:
            raise InventoryError(f"{hosts_file}: an inventory plugin ({data['plugin']}); import a static inventory")
        if not isinstance(data, dict):
            raise InventoryError(f"{hosts_file}: a YAML inventory is a mapping of groups (all:, webservers:...)")
        for name, body in data.items():
            _yaml_group(inv, str(name), body, hosts_file)
    else:
        _ini(inv, text, hosts_file)
    _reconcile(inv)
    _check_cycles(inv)
    return inv


def _reconcile(inv: AnsibleInventory) -> None:
    """What ansible-core does once every source is read: a group that is nobody's child becomes a
    child of ``all`` (in the order the groups were first named); a host in no group but ``all`` is
    ``ungrouped``, and a host that is in another group is not."""
    top = inv.groups["all"]["children"]
    for name in inv.groups:
        if name != "all" and name not in top and not any(name in other["children"] for other in inv.groups.values()):
            top.append(name)
    ungrouped = inv.groups["ungrouped"]["hosts"]
    for host in inv.hosts:
        member = {g for g, body in inv.groups.items() if host in body["hosts"]}
        if "ungrouped" in member and member - {"all", "ungrouped"}:
            ungrouped.remove(host)
        elif not member - {"all"}:
            ungrouped.append(host)


def hosts_of(inv: AnsibleInventory, group: str) -> list[str]:
    """The hosts of ``group`` in ansible-core's order (``Group.get_hosts``): its own hosts, then the
    hosts of its children, of their children..., level by level, each host once."""
    children = {g: body["children"] for g, body in inv.groups.items()}
    return list(dict.fromkeys(h for g in descendants(group, children) for h in inv.groups[g]["hosts"]))


def _yaml_group(inv: AnsibleInventory, name: str, body: Any, source: Path) -> None:
    group = inv.group(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(f"{source}: group {name}: expected hosts:, vars: and children:, got {type(body).__name__}")
    unknown = set(body) - {"hosts", "vars", "children"}
    if unknown:
        raise InventoryError(f"{source}: group {name}: unknown section(s) {', '.join(sorted(unknown))}")
    for key, section in body.items():  # in the file's order, as ansible-core reads them
        if section is None:
            continue
        if isinstance(section, str):  # "hosts: web01" is allowed, as in ansible-core
            section = {section: None}
        if not isinstance(section, dict):
            raise InventoryError(f"{source}: group {name}: {key}: expected a mapping, got {type(section).__name__}")
        if key == "vars":
            group["vars"].update(section)
        elif key == "hosts":
            _yaml_hosts(inv, name, section, source)
        else:
            for child, child_body in section.items():
                _yaml_group(inv, str(child), child_body, source)
                if str(child) not in group["children"]:
                    group["children"].append(str(child))


def _yaml_hosts(inv: AnsibleInventory, group: str, section: Mapping[Any, Any], source: Path) -> None:
    for pattern, variables in section.items():
        if variables is not None and not isinstance(variables, dict):
            raise InventoryError(f"{source}: group {group}: host {pattern}: its vars must be a mapping")
        for host in expand_range(str(pattern)):
            inv.add_host(group, host, variables or {})


def _literal(value: str) -> Any:
    """An INI inline host var: a Python literal when it is one, else the string (as Ansible)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _ini(inv: AnsibleInventory, text: str, source: Path) -> None:
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[([^\]:]+)(?::(vars|children))?\]", line)
        if header:
            section, kind = header.group(1), header.group(2) or "hosts"
            inv.group(section)
            continue
        if line.startswith("["):
            raise InventoryError(f"{source}: line {number}: malformed section header {line!r}")
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise InventoryError(f"{source}: line {number}: expected key=value in [{section}:vars]")
            inv.group(section)["vars"][key.strip()] = _literal(value.strip())  # as ansible-core parses it
        elif kind == "children":
            inv.group(line)
            if line not in inv.group(section)["children"]:
                inv.group(section)["children"].append(line)
        else:
            _ini_host(inv, section, line, f"{source}: line {number}")


def _ini_host(inv: AnsibleInventory, group: str, line: str, where: str) -> None:
    """``web[1:3] ansible_port=2222 role='a b'``: words as ansible-core splits them (shell-like)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as e:
        raise InventoryError(f"{where}: {e}") from None
    variables = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise InventoryError(f"{where}: expected key=value after the host, got {word!r}")
        variables[key] = _literal(value)
    for host in expand_range(words[0]):
        inv.add_host(group, host, variables)


def _check_cycles(inv: AnsibleInventory) -> None:
    def walk(group: str, path: tuple[str, ...]) -> None:
        if group in path:
            raise InventoryError(f"{inv.source}: group cycle in children: {' -> '.join([*path, group])}")
        for child in inv.groups.get(group, {}).get("children", []):
            walk(child, (*path, group))

    for name in inv.groups:
        walk(name, ())


def vars_files(base: Path) -> Iterator[Path]:
    """``base.yml``/``base.yaml``/``base`` (no extension) and the files of directory ``base/``, in order."""
    # a host name has dots (web01.example.com): add the extension, never replace the "suffix"
    for p in (
        base.parent / f"{base.name}.yml",
        base.parent / f"{base.name}.yaml",
        base.parent / f"{base.name}.json",
        base,
    ):
        if p.is_file():
            yield p
    if base.is_dir():
        yield from sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".json", ""))


def encrypted(path: Path) -> bool:
    return is_encrypted(path.read_bytes()[:64])


# ------------------------------------------------------------------------------ out
def to_ansible(value: Any) -> Any:
    """A data value as ``ansible-inventory --list`` prints it: vault values stay encrypted."""
    if isinstance(value, Vaulted):
        if value.vaulttext:
            return {"__ansible_vault": value.vaulttext}
        return "********"  # a value of a whole-file vault: decrypted to load it, never printed
    if isinstance(value, dict):
        return {k: to_ansible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_ansible(v) for v in value]
    return value


BACK = {
    "ssh_hostname": "ansible_host",
    "ssh_port": "ansible_port",
    "ssh_user": "ansible_user",
    "ssh_password": "ansible_password",
    "ssh_key": "ansible_ssh_private_key_file",
    "_sudo": "ansible_become",
    "_sudo_user": "ansible_become_user",
    "_sudo_password": "ansible_become_password",
}


def host_vars(data: Mapping[str, Any], skip: set[str]) -> dict[str, Any]:
    """A host's data with Ansible's names for connection variables, engine-only keys left out."""
    return {BACK.get(k, k): to_ansible(v) for k, v in sorted(data.items()) if k not in skip}


# ------------------------------------------------------------------------------ import
@dataclass
class ImportReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    mapped: list[tuple[str, str, str]] = field(default_factory=list)  # old name, new name, file
    kept: list[tuple[str, str, str]] = field(default_factory=list)  # name, file, why
    flagged: list[tuple[str, str, str]] = field(default_factory=list)  # name, file, defect
    # what only the operator can supply: key, the placeholder written, the hosts that need it
    placeholders: list[tuple[str, str, list[str]]] = field(default_factory=list)


class _Dumper(yaml.SafeDumper):
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
    variables: Mapping[str, Any], source: str, table: Mapping[str, str], report: ImportReport
) -> dict[str, Any]:
    """Ansible variables as this project's keys: connection variables and the HX roles' variables
    (``table``) are renamed; what does not map is kept under its name and listed; known defects of
    the old values are flagged."""
    out: dict[str, Any] = {}
    for key, value in variables.items():
        new = CONNECTION_VARS.get(key) or table.get(key)
        if new:
            out[new] = value
            report.mapped.append((key, new, source))
        else:
            out[key] = value
            if key.startswith(("hx_", "ansible_", *_prefixes(table))):
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
    base = inv.source.parent
    out: dict[str, str | bytes] = {}
    hosts: dict[str, dict[str, Any]] = {}
    for host in hosts_of(inv, "all"):  # the hosts of all in ansible-core's order
        problem = host_name_problem(host)
        if problem:  # a host name names files on the controller: refused before anything is written
            raise InventoryError(f"{inv.source}: {problem}")
        variables = dict(inv.hosts[host])
        entry: dict[str, Any] = {
            "groups": [g for g, body in inv.groups.items() if g != "all" and host in body["hosts"]]
        }
        address = variables.pop("ansible_host", None)
        if address is not None:
            entry["address"] = str(address)
        mapped = map_vars(variables, f"{inv.source.name} (host {host})", table, report)
        if mapped:
            entry["data"] = mapped
        hosts[host] = entry
    children = {g: list(body["children"]) for g, body in inv.groups.items() if g != "all" and body["children"]}
    group_vars = {
        g: map_vars(_priority(body["vars"]), f"{inv.source.name} (group {g})", table, report)
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
                mapped_file = map_vars(data, str(f), table, report)
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
