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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hxinfra.datafiles import load_yaml
from hxinfra.errors import InventoryError
from hxinfra.inventory import descendants, group_name_problem
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
    # host -> the groups that list it, in the order they did (kept beside the groups' own lists: a
    # fleet of ten thousand hosts is never searched list by list)
    memberships: dict[str, dict[str, None]] = field(default_factory=dict)

    def group(self, name: str) -> dict[str, Any]:
        if name not in self.groups and (problem := group_name_problem(name)):
            raise InventoryError(f"{self.source}: {problem}")
        return self.groups.setdefault(name, {"hosts": [], "vars": {}, "children": []})

    def add_host(self, group: str, host: str, variables: Mapping[str, Any]) -> None:
        self.hosts.setdefault(host, {}).update(variables)
        member_of = self.memberships.setdefault(host, {})
        if group not in member_of:
            member_of[group] = None
            self.group(group)["hosts"].append(host)

    def remove_host(self, group: str, host: str) -> None:
        member_of = self.memberships.get(host, {})
        if group in member_of:
            del member_of[group]
            self.groups[group]["hosts"].remove(host)

    def groups_of(self, host: str) -> list[str]:
        """The groups that list ``host`` itself (not their parents), in inventory order."""
        return [g for g in self.groups if g in self.memberships.get(host, {})]


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
    for host in inv.hosts:
        member = set(inv.memberships.get(host, {}))
        if "ungrouped" in member and member - {"all", "ungrouped"}:
            inv.remove_host("ungrouped", host)
        elif not member - {"all"}:
            inv.add_host("ungrouped", host, {})


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
