"""Environments: one Python inventory per environment, with Ansible-style data layers.

An inventory file calls :func:`environment` and exports its groups for pyinfra::

    _env = environment(__file__, data={...}, hosts={...}, components=...)
    globals().update(_env.pyinfra_groups())

Data layers, lowest first (the same under ``pyinfra`` and ``hxinfra``):

1. deploy defaults (each component's ``DEFAULTS``, pyinfra ``data_defaults``)
2. ``all``: ``inventories/group_vars/all.yml``
3. environment: ``data=`` of the inventory file, then ``inventories/<env>/group_vars/all.yml``
4. group, for each of the host's groups (with their parent groups) in Ansible's order: shallower
   groups first, deeper (child) groups later, then ``hx_group_priority`` (default 1; higher wins, like
   ``ansible_group_priority``), then name: ``inventories/group_vars/<group>.yml`` then
   ``inventories/<env>/group_vars/<group>.yml``
5. host: ``data`` of the host entry, then ``inventories/<env>/host_vars/<host>.yml``
6. extra vars (``hxinfra -e``, the top layer of the environment ``hxinfra deploy`` hands to pyinfra;
   ``-e`` arguments in ``HXINFRA_EXTRA_VARS`` for the plain pyinfra CLI; pyinfra's ``--data`` sits
   above everything as well)

A ``<name>.yml`` file may also be a directory ``<name>/`` of YAML files (e.g. ``vault.yml``
beside ``main.yml``), read in name order. Merging replaces whole values, as Ansible's default
``hash_behaviour = replace`` does.

The merged result is handed to pyinfra as host data, so pyinfra's own group precedence (the
file-name group last) cannot reorder the layers.

A string value may reference another key as Ansible layouts do (``db_password: "{{ vault_db_password }}"``):
a whole-value reference takes the referenced value as it is (a vault value stays one), a reference
inside a longer string builds a string (masked as a whole when it holds a vault value). A vault file
that cannot be opened (no password for its vault id) is kept *sealed*: the inventory and the offline
plan show its values as masked placeholders, and a deploy to a host that reads it stops with an
error naming the file and the vault id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hxinfra import memo
from hxinfra.components import ENGINE, VAULT_PREFIX, Component, check_host_data, coerce, owner_of, pyinfra_keys
from hxinfra.datafiles import load_yaml_mapping, parse_extra_vars
from hxinfra.errors import HxError, InventoryError
from hxinfra.frozen import FrozenDict, FrozenList, freeze, freeze_values
from hxinfra.guard import CONFIRM_KEY, PROTECTED_KEY, check_plain, is_protected
from hxinfra.known_hosts import FILE_KEY, STRICT_KEY
from hxinfra.memo import Generations, IdentityCache
from hxinfra.paths import read_project_file
from hxinfra.secrets import Composite, NoPassword, Sealed, Vaulted

MEMBERS_KEY = "hx_members"
REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
NOW_KEY = "hx_now"  # when the data was loaded: the one "now" of every check (set by the inventory)
SEALED_KEY = "hx_sealed_vaults"  # the vault files a host's data could not open (set by the inventory)
PRIORITY_KEY = "hx_group_priority"
# {{ fill_in_<key> }}: a value only the operator can supply, written by import-ansible; defined nowhere,
# it loads masked (as a missing vault value does) and a deploy of a host that reads it refuses, naming it
FILL_IN_PREFIX = "fill_in_"

EXTRA_VARS_ENV = "HXINFRA_EXTRA_VARS"
HOST_ENTRY_KEYS = {"address", "groups", "data"}
# a host's inventory name is a DNS name (RFC 1123): labels of letters, digits and inner hyphens
HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# keys only the engine sets (the host-key trust and the guard): a data layer may not lower them
TRUST_VALUES = {STRICT_KEY: "yes"}
TRUST_SOURCE = "hxinfra (host key trust)"
TRUST_KEYS = {STRICT_KEY, FILE_KEY, PROTECTED_KEY, CONFIRM_KEY}


def host_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a host's inventory name (None when it can): it names files on the
    controller (fetch, backups, plans, dashboard pages), so it must be a DNS name, RFC 1123."""
    if not isinstance(name, str) or not name:
        return "a host name must be a non-empty string"
    if name == "@local":  # pyinfra's connector for this machine itself
        return None
    if len(name) > 253 or not all(HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return (
            f"host name {name[:64]!r} is not a DNS name (RFC 1123: dot-separated labels of letters, "
            "digits and inner hyphens, 63 characters each at most)"
        )
    return None


def descendants(group: str, children: Mapping[str, Sequence[str]]) -> list[str]:
    """``group`` and the groups below it as ansible-core walks them for ``Group.get_hosts``: level by
    level (its children, then theirs...), each once. (Below the first level ansible-core takes the
    parents of a level in the order of a Python set, which changes from one run to the next; here
    they keep the inventory's order, one of the orders it may give.)"""
    out, level, seen = [group], [group], {group}
    while level:
        level = [c for g in level for c in children.get(g, ()) if c not in seen]
        level = list(dict.fromkeys(level))
        seen.update(level)
        out += level
    return out


def group_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a group's name (None when it can). Ansible takes nearly any name
    (``web-servers``, ``1st``, ``web.eu``), and so does this: only a name that cannot name the file
    ``group_vars/<group>.yml`` (a ``/``, a control character, ``.`` or ``..``) is refused."""
    if not isinstance(name, str) or not name.strip():
        return "a group name must be a non-empty string"
    if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return (
            f"group name {name[:64]!r} cannot name a file group_vars/<group>.yml (no '/', control character, . or ..)"
        )
    return None


@dataclass(frozen=True)
class Layer:
    """One source of data for a host, e.g. ``group web_servers`` from a YAML file."""

    kind: str  # defaults | all | environment | group | host | extra
    label: str
    source: str
    data: Mapping[str, Any]
    sealed: str = ""  # why this vault file could not be opened (its data is then empty)


@dataclass
class HostEntry:
    name: str
    address: str | None
    groups: list[str]
    data: dict[str, Any] = field(default_factory=dict)


def extra_vars_from_env() -> dict[str, Any]:
    """Extra vars the ``hxinfra`` CLI passes down to the inventory (highest layer).

    ``HXINFRA_EXTRA_VARS`` holds the ``-e`` arguments as a JSON list (so ``@vault.yml`` files are
    decrypted here, with this process's vault passwords), or a JSON object of plain values.
    """
    if _override:
        return dict(_override[-1])
    raw = os.environ.get(EXTRA_VARS_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InventoryError(f"{EXTRA_VARS_ENV} is not valid JSON: {e}") from e
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_extra_vars(value)
    if not isinstance(value, dict):
        raise InventoryError(f"{EXTRA_VARS_ENV} must be a JSON list of -e arguments or a JSON object")
    return value


# extra vars given to load_environment(), seen by environment() calls inside the inventory file
_override: list[Mapping[str, Any]] = []
# environments already built and validated in this process, by inventory file (see reusing())
_reused: dict[str, Environment] = {}


@contextlib.contextmanager
def reusing(env: Environment) -> Iterator[None]:
    """While pyinfra runs in this process, its own load of ``env``'s inventory file returns ``env``.

    ``hxinfra deploy`` loads and validates the inventory (and opens its vault values) before anything
    connects; pyinfra then executes the same file to build its inventory. Handing it the same object
    means one load, one validation and one decryption per run, whatever the number of batches.
    """
    key = str(Path(env.file).resolve())
    _reused[key] = env
    try:
        yield
    finally:
        _reused.pop(key, None)


def reused(file: str | Path) -> Environment | None:
    """The environment :func:`reusing` holds for inventory ``file``, if any."""
    return _reused.get(str(Path(file).resolve())) if _reused else None


class Environment:
    """The hosts, groups and layered data of one environment."""

    def __init__(
        self,
        file: str | Path,
        hosts: Mapping[str, Mapping[str, Any]],
        data: Mapping[str, Any] | None = None,
        components: Iterable[Component] = (),
        name: str | None = None,
        extra_vars: Mapping[str, Any] | None = None,
        children: Mapping[str, Iterable[str]] | None = None,
        files: Iterable[str | Path] = (),
        group_vars: Mapping[str, Mapping[str, Any]] | None = None,
        protected: bool | None = None,
        order: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.file = Path(file).resolve()
        self._rel_cache: dict[Path, Path] = {}
        self.files = [Path(f) for f in files]  # more data files of the environment (the lab's vault)
        # group vars of the inventory itself (an imported Ansible inventory's inline vars): below every
        # group_vars file, as Ansible ranks "inventory file group vars" below "group_vars/*"
        self.group_vars = {g: freeze_values(v) for g, v in (group_vars or {}).items()}
        self.name = name or self.file.stem
        self.dir = self.file.parent
        self.env_dir = self.dir / self.name
        self.data = freeze_values(data or {})
        # decided by the environment itself (hxinfra.guard), never by how someone spelled its name
        self.protected = is_protected(self.name, protected, self.data)
        self.components = (ENGINE, *(c for c in components if c is not ENGINE))
        extra = dict(extra_vars_from_env() if extra_vars is None else extra_vars)
        # the seed guide's -e names (a component's ``ansible`` table): -e username=bob is users_username
        aliases = {old: new for c in self.components for old, new in c.ansible.items() if old != new}
        extra = {
            (aliases[k] if k in aliases and owner_of(k, self.components) is None and k not in pyinfra_keys() else k): v
            for k, v in extra.items()
        }
        self.extra_vars = freeze_values(
            {k: coerce(v, o.type_of(k) if (o := owner_of(k, self.components)) else None) for k, v in extra.items()}
        )
        # group -> its child groups (a host of a child is a host of the parent, as in Ansible)
        self.children = {g: list(c) for g, c in (children or {}).items()}
        self.hosts: dict[str, HostEntry] = {}
        for host_name, entry in hosts.items():
            self.hosts[host_name] = self._parse_entry(host_name, entry)
        # group -> its own hosts in the order the inventory lists them (by default, the hosts' order)
        self.order = self._check_order(order or {})
        self._file_cache: dict[Path, dict[str, Any] | NoPassword] = {}
        # an environment does not change once built: what is derived from it is computed once
        self._layer_cache: dict[tuple[Path, bool], list[tuple[Path, dict[str, Any], str]]] = {}
        self._priorities: dict[str, int] = {}
        self._host_groups: dict[str, list[str]] = {}
        self._host_data: Generations[dict[str, Any]] = Generations(128)  # the last hosts' merged data
        self._shared_cache: dict[
            tuple[tuple[str, ...], bool], tuple[list[Layer], dict[str, Any], list[str], list[str]]
        ] = {}
        self._host_vars: set[str] | None = None
        self._trust_cache: dict[tuple[str, ...], list[tuple[str, str, str, bool]]] = {}
        self._referenced: set[str] = set()  # every key a {{ reference }} names, over all hosts
        self._vault_keys: set[str] = set()  # every vault_* key defined, over all hosts
        self.warnings: list[str] = []  # keys kept that no component reads (filled by validate)
        # the run's "now", one value every host shares: checks read it, never the clock
        self.now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._loaded: dict[tuple[str, tuple[int, ...]], tuple[list[Any], Mapping[str, Any]]] = {}
        self._check_children()

    # ------------------------------------------------------------------ structure
    def _err(self, host: str | None, key: str | None, problem: str) -> InventoryError:
        where = [str(self._rel(self.file))]
        if host:
            where.append(f"host {host}")
        if key:
            where.append(f"key {key}")
        return InventoryError(": ".join(where) + f": {problem}")

    def _rel(self, path: Path) -> Path:
        """``path`` relative to the working directory, for messages (computed once per path)."""
        if path not in self._rel_cache:
            try:
                self._rel_cache[path] = path.relative_to(Path.cwd())
            except ValueError:
                self._rel_cache[path] = path
        return self._rel_cache[path]

    def _parse_entry(self, name: str, entry: Mapping[str, Any]) -> HostEntry:
        problem = host_name_problem(name)
        if problem:
            raise self._err(None, None, problem)
        if not isinstance(entry, Mapping):
            raise self._err(name, None, "a host entry must be a dict with address/groups/data")
        unknown = set(entry) - HOST_ENTRY_KEYS
        if unknown:
            raise self._err(name, sorted(unknown)[0], f"unknown host entry field (allowed: {sorted(HOST_ENTRY_KEYS)})")
        address = entry.get("address")
        if address is not None and not isinstance(address, str):
            raise self._err(name, "address", "must be a string")
        groups = entry.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise self._err(name, "groups", "must be a list of group names")
        for group in groups:
            if problem := group_name_problem(group):
                raise self._err(name, "groups", problem)
        data = entry.get("data", {})
        if not isinstance(data, Mapping):
            raise self._err(name, "data", "must be a dict")
        return HostEntry(name, address, list(groups), freeze_values(data))

    def _check_children(self) -> None:
        """A cycle in ``children`` is an error (as in Ansible), found before anything else runs."""

        def walk(group: str, path: list[str]) -> None:
            if group in path:
                raise self._err(None, None, f"group cycle: {' -> '.join([*path, group])}")
            for child in self.children.get(group, []):
                walk(child, [*path, group])

        for parent, kids in self.children.items():
            for group in (parent, *kids):
                if problem := group_name_problem(group):
                    raise self._err(None, "children", problem)
        for parent in self.children:
            walk(parent, [])

    def _check_order(self, order: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """``order`` lists each group's own hosts again, once each: anything else is an error."""
        out: dict[str, list[str]] = {}
        for group, names in order.items():
            listed = list(names)
            own = [h for h, e in self.hosts.items() if group in e.groups]
            if sorted(listed) != sorted(own):
                raise self._err(None, None, f"order of group {group}: lists {listed}, its hosts are {own}")
            out[group] = listed
        return out

    def parents(self, group: str) -> list[str]:
        """Every group that ``group`` is a (direct or indirect) child of."""
        out: list[str] = []
        for parent, kids in self.children.items():
            if group in kids:
                out += [parent, *self.parents(parent)]
        return list(dict.fromkeys(out))

    def depth(self, group: str) -> int:
        """Distance from ``all`` (a top-level group is 1, its child 2...), as Ansible counts."""
        parents = [p for p, kids in self.children.items() if group in kids]
        return 1 + max((self.depth(p) for p in parents), default=0)

    def host_groups(self, host: HostEntry) -> list[str]:
        """A host's groups and their parents, in data precedence order (lowest first)."""
        if host.name not in self._host_groups:
            names = list(dict.fromkeys(g for own in host.groups for g in (own, *self.parents(own))))
            self._host_groups[host.name] = sorted(names, key=lambda g: (self.depth(g), self._priority(g), g))
        return list(self._host_groups[host.name])

    def _priority(self, group: str) -> int:
        if group not in self._priorities:
            self._priorities[group] = self._read_priority(group)
        return self._priorities[group]

    def _read_priority(self, group: str) -> int:
        """``hx_group_priority`` of the group's inventory vars (where ansible-core reads
        ``ansible_group_priority``), then of its group_vars files."""
        inline: Mapping[str, Any] = self.group_vars.get(group) or {}
        value: Any = inline.get(PRIORITY_KEY, 1)
        for base in (self.dir / "group_vars" / group, self.env_dir / "group_vars" / group):
            for _path, data, _sealed in self._file_layer(base):
                value = data.get(PRIORITY_KEY, value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._err(None, PRIORITY_KEY, f"group {group}: must be an integer")
        return value

    @functools.cached_property
    def members(self) -> dict[str, list[dict[str, str]]]:
        """Group -> its hosts as ``{name, address}`` (address: the inventory's, else the name);
        one shared mapping for every host's ``hx_members``."""
        members: dict[str, list[dict[str, str]]] = freeze(
            {
                group: [{"name": n, "address": self.hosts[n].address or n} for n in names]
                for group, names in self.groups.items()
            },
            MEMBERS_KEY,
        )
        return members

    @property
    def groups(self) -> dict[str, list[str]]:
        """Group name -> host names in ansible-core's order (``group[0]``): the group's own hosts,
        then its children's, their children's..., level by level, each host once; groups by name."""
        own: dict[str, list[str]] = {}
        for h in self.hosts.values():
            for g in h.groups:
                own.setdefault(g, []).append(h.name)
        own.update(self.order)
        for g in self.children:
            own.setdefault(g, [])

        def members(group: str) -> list[str]:
            return list(dict.fromkeys(h for g in descendants(group, self.children) for h in own.get(g, [])))

        return {g: members(g) for g in sorted(own)}

    def host(self, name: str) -> HostEntry:
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(f"no host {name!r} in environment {self.name}") from None

    # ------------------------------------------------------------------ layers
    def _file_layer(self, base: Path, exact: bool = False) -> list[tuple[Path, dict[str, Any], str]]:
        """``base.yml``/``base.yaml`` and/or the YAML files of directory ``base/`` (or the file ``base``
        itself with ``exact``): (path, data, why it is sealed)."""
        key = (base, exact)
        if not memo.ENABLED:
            return self._read_layer(base, exact)
        if key not in self._layer_cache:
            self._layer_cache[key] = self._read_layer(base, exact)
        return self._layer_cache[key]

    def _read_layer(self, base: Path, exact: bool) -> list[tuple[Path, dict[str, Any], str]]:
        if exact:
            paths = [base] if base.is_file() else []
        else:
            # host names have dots (web01.example.com): add the extension, never replace a "suffix"
            paths = [p for p in (base.parent / f"{base.name}.yml", base.parent / f"{base.name}.yaml") if p.is_file()]
            if base.is_dir():
                paths += sorted(p for p in base.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
        out: list[tuple[Path, dict[str, Any], str]] = []
        for p in paths:
            if p not in self._file_cache or not memo.ENABLED:
                try:
                    self._file_cache[p] = freeze_values(load_yaml_mapping(p))
                except NoPassword as e:  # kept sealed: only a deploy that needs it fails
                    self._file_cache[p] = e
            loaded = self._file_cache[p]
            if isinstance(loaded, NoPassword):
                out.append((p, {}, str(loaded)))
            else:
                out.append((p, loaded, ""))
        return out

    def layers(self, host_name: str, with_defaults: bool = True) -> list[Layer]:
        """Every data layer of a host, lowest precedence first."""
        shared = self._shared(tuple(self.host_groups(self.host(host_name))), with_defaults)[0]
        return [*shared, *self._own_layers(host_name)]

    def _shared(
        self, groups: tuple[str, ...], with_defaults: bool
    ) -> tuple[list[Layer], dict[str, Any], list[str], list[str]]:
        """The layers below a host's own that every host of these groups shares, their merged data,
        why any of them is sealed, and the keys whose values reference others: built once per set of
        groups, not once per host."""
        key = (groups, with_defaults)
        if key not in self._shared_cache or not memo.ENABLED:
            layers = self._group_layers(groups, with_defaults)
            merged: dict[str, Any] = {}
            for layer in layers:
                merged.update(layer.data)
            refs = [k for k, v in merged.items() if _has_refs(v)]  # the keys a host may have to resolve
            self._shared_cache[key] = (layers, merged, [layer.sealed for layer in layers if layer.sealed], refs)
        return self._shared_cache[key]

    def _group_layers(self, groups: tuple[str, ...], with_defaults: bool) -> list[Layer]:  # noqa: C901 - Ansible's group order, read as one walk
        layers: list[Layer] = []
        if with_defaults:
            for comp in self.components:
                if comp.defaults:
                    layers.append(Layer("defaults", f"defaults of {comp.name}", "deploy DEFAULTS", comp.defaults))
        for group in ("all", *groups):
            if self.group_vars.get(group):
                layers.append(
                    Layer("group", f"group {group} (inventory)", str(self._rel(self.file)), self.group_vars[group])
                )
        # host keys are checked strictly, against the environment's own known_hosts (in the repo)
        layers.append(
            Layer(
                "environment",
                f"environment {self.name}",
                TRUST_SOURCE,
                {
                    **TRUST_VALUES,
                    FILE_KEY: str(self.env_dir / "known_hosts"),
                    **({PROTECTED_KEY: self.name} if self.protected else {}),
                },
            )
        )
        for path, data, sealed in self._file_layer(self.dir / "group_vars" / "all"):
            layers.append(Layer("all", "all", str(self._rel(path)), data, sealed))
        if self.data:
            layers.append(Layer("environment", f"environment {self.name}", str(self._rel(self.file)), self.data))
        for path, data, sealed in self._file_layer(self.env_dir / "group_vars" / "all"):
            layers.append(Layer("environment", f"environment {self.name}", str(self._rel(path)), data, sealed))
        for extra in self.files:
            for path, data, sealed in self._file_layer(extra, exact=True):
                layers.append(Layer("environment", f"environment {self.name}", str(self._rel(path)), data, sealed))
        for group in groups:
            for base in (self.dir / "group_vars" / group, self.env_dir / "group_vars" / group):
                for path, data, sealed in self._file_layer(base):
                    layers.append(Layer("group", f"group {group}", str(self._rel(path)), data, sealed))
        return layers

    def _own_layers(self, host_name: str) -> list[Layer]:
        """The host's own layers (its inventory entry, its host_vars) and ``-e`` above them."""
        entry = self.host(host_name)
        address = {"ssh_hostname": entry.address} if entry.address else {}
        layers = [Layer("host", f"host {host_name}", self._file_label, {"hx_host": host_name, **address, **entry.data})]
        if host_name in self._host_vars_names():
            for path, data, sealed in self._file_layer(self.env_dir / "host_vars" / host_name):
                layers.append(Layer("host", f"host {host_name}", str(self._rel(path)), data, sealed))
        if self.extra_vars:
            layers.append(Layer("extra", "extra vars", "-e", self.extra_vars))
        return layers

    @functools.cached_property
    def _file_label(self) -> str:
        return str(self._rel(self.file))

    def _host_vars_names(self) -> set[str]:
        """The host names ``host_vars/`` has a file or directory for (read once, not once per host)."""
        if self._host_vars is None:
            base = self.env_dir / "host_vars"
            names: set[str] = set()
            if base.is_dir():
                for entry in base.iterdir():
                    names.add(entry.name)
                    for ext in (".yml", ".yaml"):
                        if entry.name.endswith(ext):
                            names.add(entry.name[: -len(ext)])
            self._host_vars = names
        return self._host_vars

    def host_data(self, host_name: str, with_defaults: bool = False) -> dict[str, Any]:
        """The merged data of one host (without component defaults unless asked), references resolved.

        The last hosts' results are kept (not every host's: memory stays flat in the fleet's size)."""
        key = (host_name, with_defaults)
        found = self._host_data.get(key)
        if found is None:
            found = self._merge(host_name, with_defaults)
            self._host_data.put(key, found)
        return dict(found)

    def _merge(self, host_name: str, with_defaults: bool) -> dict[str, Any]:
        _, shared, shared_sealed, refs = self._shared(tuple(self.host_groups(self.host(host_name))), with_defaults)
        merged = dict(shared)
        sealed = list(shared_sealed)
        own: list[str] = []
        for layer in self._own_layers(host_name):
            merged.update(layer.data)
            own += layer.data
            if layer.sealed:
                sealed.append(layer.sealed)
        resolver = _Resolver(merged, sealed, f"host {host_name}", self.name)
        resolved = resolver.all(dict.fromkeys([*refs, *own]))
        resolved[NOW_KEY] = self.now
        for comp in self.components:
            if comp.load is not None:
                resolved.update(self._load_files(comp, resolved, host_name))
        if sealed:
            resolved[SEALED_KEY] = sealed
        # built from the inventory itself, one mapping shared by every host (never copied, never
        # resolved or checked per host: a fleet of N hosts must not cost N x N)
        resolved[MEMBERS_KEY] = self.members
        for name in resolver.missing:
            line = (
                f"{name} is a placeholder: hosts that read it cannot be deployed until it is replaced with "
                f"its value in inventories/{self.name}/group_vars/all.yml"
                if name.startswith(FILL_IN_PREFIX)
                else f"{name} is referenced but not defined: hosts that read it cannot be deployed until the "
                f"vault holds it (hxinfra vault edit inventories/{self.name}/group_vars/all/vault.yml)"
            )
            if line not in self.warnings:
                self.warnings.append(line)
        self._referenced |= resolver.referenced
        self._vault_keys |= {k for k in merged if k.startswith(VAULT_PREFIX)}
        return resolved

    def _load_files(self, comp: Component, data: Mapping[str, Any], host_name: str) -> Mapping[str, Any]:
        """The files ``comp``'s data names, read once per set of its values (hosts share a group's
        values: a fleet reads each file once); an unreadable file is an error naming host and key."""
        keys = [k for k in comp.all_keys() if k in data]
        values = [data[k] for k in keys]
        ident = (comp.name, tuple(map(id, values)))
        found = self._loaded.get(ident)
        if found is None or not memo.ENABLED or any(a is not b for a, b in zip(found[0], values, strict=True)):
            assert comp.load is not None
            try:
                changed = comp.load(dict(zip(keys, values, strict=True)), read_project_file)
            except OSError as e:  # read_project_file names the file
                raise self._err(host_name, None, f"component {comp.name}: {e.strerror}") from None
            except HxError as e:
                raise self._err(host_name, None, f"component {comp.name}: {e}") from None
            found = (values, {k: freeze(v, k) for k, v in changed.items()})
            self._loaded[ident] = found
        return found[1]

    def _typo_warnings(self) -> list[str]:
        """A vault key nothing references, close to a name a reference uses: most likely a typo."""
        out = []
        for name in sorted(self._vault_keys - self._referenced):
            close = difflib.get_close_matches(name, sorted(self._referenced), n=1, cutoff=0.85)
            if close:
                out.append(f"{name} is defined but no key references it; did you mean {close[0]}?")
        return out

    def sealed(self, host_names: Iterable[str]) -> list[str]:
        """Why the vault files these hosts read could not be opened (empty when all are open)."""
        found: list[str] = []
        for name in host_names:
            found += [layer.sealed for layer in self.layers(name, with_defaults=False) if layer.sealed]
        return list(dict.fromkeys(found))

    def explain(self, host_name: str) -> dict[str, dict[str, Any]]:
        """For each key: its value, the layer that set it, and the layers it overrode."""
        out: dict[str, dict[str, Any]] = {}
        for layer in self.layers(host_name, with_defaults=True):
            for key, value in layer.data.items():
                previous = out.get(key)
                overridden = []
                if previous is not None:
                    overridden = [*previous["overrides"], f"{previous['layer']} ({previous['source']})"]
                out[key] = {"value": value, "layer": layer.label, "source": layer.source, "overrides": overridden}
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise one :class:`InventoryError` listing every problem, naming file, host and key.

        Keys no component reads are kept and collected in :attr:`warnings` (one line per key and file).
        """
        messages: list[str] = []
        self.warnings = []
        trust_seen: set[tuple[str, str, str]] = set()
        for name, entry in self.hosts.items():
            for source, key, problem, fatal in self._trust_problems(name):
                if (source, key, problem) in trust_seen:
                    continue
                trust_seen.add((source, key, problem))
                if fatal:
                    messages.append(f"{source}: key {key}: {problem}")
                else:
                    self.warnings.append(f"{source}: key {key}: {problem}")
            try:
                merged = self.host_data(name)
            except InventoryError as e:
                messages.append(str(e))
                continue
            merged.pop(SEALED_KEY, None)
            merged.pop(MEMBERS_KEY, None)
            found: list[tuple[str, str]] = []
            problems = check_host_data(merged, self.host_groups(entry), self.components, found)
            if not problems and not found:
                continue
            origin: dict[str, str] = {}  # which file set each key: only to name it in a message
            for layer in self.layers(name, with_defaults=False):
                origin.update(dict.fromkeys(layer.data, layer.source))
            for key, problem in problems:
                source = origin.get(key.split(".")[0].split("[")[0], self._file_label)
                messages.append(f"{source}: host {name}: key {key}: {problem}")
            for key, problem in found:
                line = f"{origin.get(key, self._file_label)}: key {key}: {problem}"
                if line not in self.warnings:
                    self.warnings.append(line)
        self.warnings += [w for w in self._typo_warnings() if w not in self.warnings]
        if messages:
            raise InventoryError(f"invalid inventory data for environment {self.name}:\n  " + "\n  ".join(messages))

    def _trust_problems(self, host_name: str) -> list[tuple[str, str, str, bool]]:
        """Data layers that would lower the engine's trust keys for a host: ``(source, key, problem,
        fatal)``. Strict host-key checking off, or another known_hosts file, is an error in a protected
        environment and a warning elsewhere; the guard's own keys are the engine's alone everywhere."""
        groups = tuple(self.host_groups(self.host(host_name)))
        shared = self._trust_cache.get(groups)
        if shared is None:  # the layers hosts of these groups share: looked at once
            shared = self._trust_cache[groups] = self._layer_trust(self._shared(groups, False)[0])
        return shared + self._layer_trust(self._own_layers(host_name))

    def _layer_trust(self, layers: Iterable[Layer]) -> list[tuple[str, str, str, bool]]:
        out: list[tuple[str, str, str, bool]] = []
        own_file = str(self.env_dir / "known_hosts")
        for layer in layers:
            if layer.source == TRUST_SOURCE or not (layer.data.keys() & TRUST_KEYS):
                continue
            where = f"{layer.source} ({layer.label})"
            for key in (PROTECTED_KEY, CONFIRM_KEY):
                if key in layer.data:
                    problem = (
                        "set by the engine only" if key == PROTECTED_KEY else "a confirmation on the command line only"
                    )
                    out.append((where, key, f"{problem}; remove it from the data", True))
            if STRICT_KEY in layer.data and str(layer.data[STRICT_KEY]).lower() not in ("yes", "true"):
                out.append(
                    (
                        where,
                        STRICT_KEY,
                        f"{layer.data[STRICT_KEY]!r} lowers strict host-key checking"
                        + (f" of protected environment {self.name}" if self.protected else " (warning: MITM risk)"),
                        self.protected,
                    )
                )
            if FILE_KEY in layer.data and self.protected and str(layer.data[FILE_KEY]) != own_file:
                out.append(
                    (
                        where,
                        FILE_KEY,
                        f"protected environment {self.name} trusts only {self._rel(Path(own_file))}",
                        True,
                    )
                )
        return out

    # ------------------------------------------------------------------ pyinfra
    def pyinfra_groups(self) -> dict[str, Any]:
        """Module-level names for a pyinfra inventory file: ``all`` with merged host data,
        plus one list of host names per group. When hxinfra itself runs the file
        (:func:`load_environment`), nobody reads them: ``all`` is the host names alone (no host's
        data is merged for it; a plan of thousands of hosts merges each host once, not twice)."""
        own = bool(_own_load)
        groups: dict[str, Any] = {
            "all": (list(self.hosts) if own else [(n, self.host_data(n)) for n in self.hosts], {}),
        }  # the hosts' groups below include parent groups (children=)
        for group, names in self.groups.items():
            groups[group] = list(names)
        return groups


_REFS: IdentityCache[bool] = IdentityCache(limit=None)
_own_load: list[bool] = []  # set while load_environment runs an inventory file for hxinfra itself


def _has_refs(value: Any) -> bool:
    """Whether a data value holds a ``{{ name }}`` reference anywhere: worked out once per value
    (a group's data is shared by a thousand hosts)."""
    if isinstance(value, dict):
        return _REFS.get(value, lambda: any(_has_refs(v) for v in value.values()))
    if isinstance(value, list):
        return _REFS.get(value, lambda: any(_has_refs(v) for v in value))
    return isinstance(value, str) and "{{" in value


_NAMES: IdentityCache[tuple[str, ...]] = IdentityCache(limit=None)
_RESOLVED: IdentityCache[list[tuple[tuple[tuple[str, Any], ...], Any]]] = IdentityCache(limit=None)
_SEALED: dict[tuple[str, str, str], Sealed] = {}


def _names(value: Any) -> tuple[str, ...]:
    """Every name ``value`` references, at any depth, in order (once per shared list or mapping)."""
    if isinstance(value, dict):
        return _NAMES.get(value, lambda: tuple(dict.fromkeys(n for v in value.values() for n in _names(v))))
    if isinstance(value, list):
        return _NAMES.get(value, lambda: tuple(dict.fromkeys(n for v in value for n in _names(v))))
    return tuple(REF.findall(value)) if isinstance(value, str) and "{{" in value else ()


def _sealed(name: str, kind: str, reason: str) -> Sealed:
    """One masked value per key and reason, shared by the hosts (so what is derived from it is too)."""
    key = (name, kind, reason)
    if key not in _SEALED or not memo.ENABLED:
        _SEALED[key] = Sealed(name, kind, reason)
    return _SEALED[key]


class _Resolver:
    """Resolves ``{{ key }}`` references in one host's merged data (cycles and unknown keys are errors)."""

    def __init__(self, merged: Mapping[str, Any], sealed: list[str], where: str, env_name: str = "<env>") -> None:
        self.merged, self.sealed, self.where, self.env_name = merged, sealed, where, env_name
        self.done: dict[str, Any] = {}
        self.missing: list[str] = []  # vault keys referenced but defined nowhere
        self.referenced: set[str] = set()  # every key some value references
        self.composites = 0  # vault values joined into a string (made per host)

    def all(self, candidates: Iterable[str] | None = None) -> dict[str, Any]:
        """Every key resolved. Only ``candidates`` (default: every key) may hold a reference: the
        others are kept as they are, without a look (most values reference nothing)."""
        out = dict(self.merged)
        for k in self.merged if candidates is None else candidates:
            v = self.merged[k]
            plain = "{{" not in v if isinstance(v, str) else not isinstance(v, (dict, list)) or not _has_refs(v)
            if not plain:
                out[k] = self.key(k, ())
        return out

    def key(self, name: str, stack: tuple[str, ...]) -> Any:
        if stack:
            self.referenced.add(name)
        if name in stack:
            raise InventoryError(f"{self.where}: key {stack[0]}: reference cycle {' -> '.join([*stack, name])}")
        if name not in self.done:
            if name not in self.merged:
                if self.sealed:  # most likely in the vault file that could not be opened
                    return _sealed(
                        name,
                        "sealed vault",
                        f"{name} is not defined, and a vault file could not be opened: {'; '.join(self.sealed)}",
                    )
                if name.startswith(FILL_IN_PREFIX):  # a value only the operator can supply (import-ansible)
                    self.missing.append(name)
                    return _sealed(
                        name,
                        "placeholder",
                        f"{stack[-1] if stack else name} is still a placeholder ({{{{ {name} }}}}): replace it with "
                        f"its value in inventories/{self.env_name}/group_vars/all.yml",
                    )
                if name.startswith(VAULT_PREFIX):  # a secret the vault does not hold yet: masked until needed
                    self.missing.append(name)
                    return _sealed(
                        name,
                        "missing",
                        f"{name} is not defined: add it to the environment's vault "
                        "(hxinfra vault edit inventories/<env>/group_vars/all/vault.yml)",
                    )
                where = f" (referenced by {stack[-1]})" if stack else ""
                raise InventoryError(f"{self.where}: key {name}{where} is not defined")
            self.done[name] = self.value(self.merged[name], (*stack, name))
        return self.done[name]

    def value(self, value: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(value, (dict, list)):
            if not _has_refs(value):
                return value  # nothing to resolve: the layer's own value, shared by every host (never mutated)
            # what it references, resolved: the same objects as for an earlier host give that host's result
            refs = tuple((name, self.key(name, stack)) for name in _names(value))
            kept = _RESOLVED.get(value, list)
            for earlier, result in kept:
                if all(a is b for (_, a), (_, b) in zip(earlier, refs, strict=True)):
                    return result
            composites = self.composites
            result = self._container(value, stack)
            if self.composites == composites:  # a Composite names its host (in errors): never shared
                kept.insert(0, (refs, result))
                del kept[8:]
            return result
        return self._scalar(value, stack)

    def _container(self, value: dict[str, Any] | list[Any], stack: tuple[str, ...]) -> Any:
        where = stack[-1] if stack else ""
        if isinstance(value, dict):
            return FrozenDict(((k, self.value(v, stack)) for k, v in value.items()), where)
        return FrozenList((self.value(v, stack) for v in value), where)

    def _scalar(self, value: Any, stack: tuple[str, ...]) -> Any:
        if not isinstance(value, str) or "{{" not in value:
            return value
        parts: list[Any] = []
        pos = 0
        for m in REF.finditer(value):
            parts += [value[pos : m.start()], self.key(m[1], stack)]
            pos = m.end()
        parts.append(value[pos:])
        if any("{{" in p or "}}" in p for p in parts[::2]):
            raise InventoryError(
                f"{self.where}: key {stack[-1]}: only {{{{ name }}}} references are supported "
                f"in data, not {value[:60]!r}"
            )
        if len(parts) == 3 and parts[0] == parts[2] == "":
            return parts[1]  # a whole-value reference keeps the value's type (and its vault wrapping)
        if any(isinstance(p, Vaulted) for p in parts):
            self.composites += 1
            return Composite([p if isinstance(p, Vaulted) else str(p) for p in parts if p != ""], self.where)
        return "".join(str(p) for p in parts)


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


def environment(
    file: str | Path,
    hosts: Mapping[str, Mapping[str, Any]],
    data: Mapping[str, Any] | None = None,
    components: Iterable[Component] = (),
    name: str | None = None,
    children: Mapping[str, Iterable[str]] | None = None,
    group_vars: Mapping[str, Mapping[str, Any]] | None = None,
    protected: bool | None = None,
    order: Mapping[str, Iterable[str]] | None = None,
) -> Environment:
    """Build and validate an environment (validation fails before any connection).

    ``protected=True``: its changes need a confirmation (:mod:`hxinfra.guard`); production and
    staging are protected whatever this says. Loaded by the plain pyinfra CLI, a protected
    environment refuses a run that is neither ``--dry`` nor confirmed (``--data hx_confirm=NAME``).
    ``order``: group -> its own hosts, where they are not in the order of ``hosts`` (an imported Ansible
    inventory keeps each group's order, so ``group[0]`` is the host Ansible would pick)."""
    if (env := reused(file)) is not None:
        return env
    env = Environment(
        file,
        hosts=hosts,
        data=data,
        components=components,
        name=name,
        children=children,
        group_vars=group_vars,
        protected=protected,
        order=order,
    )
    if env.protected and not _own_load:
        check_plain(env.name)
    env.validate()
    return env


@contextlib.contextmanager
def extra_vars_layer(extra_vars: Mapping[str, Any] | None) -> Iterator[None]:
    """Make ``extra_vars`` the top layer of environments built while the inventory file runs."""
    if extra_vars is None:
        yield
        return
    _override.append(extra_vars)
    try:
        yield
    finally:
        _override.pop()


def load_environment(path: str | Path, extra_vars: Mapping[str, Any] | None = None) -> Environment:
    """Execute an inventory file the way pyinfra does and return its :class:`Environment`.

    ``extra_vars`` (``-e``) become the top data layer; ``None`` keeps whatever
    ``HXINFRA_EXTRA_VARS`` already says.
    """
    path = Path(path)
    if not path.is_file():
        raise InventoryError(f"no inventory file {path}")
    namespace: dict[str, Any] = {"__file__": str(path)}
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    try:
        with extra_vars_layer(extra_vars):
            _own_load.append(True)
            try:
                exec(code, namespace)  # noqa: S102 - inventories are Python by design, as in pyinfra
            finally:
                _own_load.pop()
    except InventoryError:
        raise
    except Exception as e:  # a broken inventory file is bad input, not a crash
        raise InventoryError(f"{path}: {type(e).__name__}: {e}") from e
    envs = [v for v in namespace.values() if isinstance(v, Environment)]
    if len(envs) != 1:
        raise InventoryError(f"{path}: expected one hxinfra environment(...) in the file, found {len(envs)}")
    return envs[0]
