"""An environment: its hosts, groups and layered data, merged and validated."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hxinfra import memo
from hxinfra.components import ENGINE, VAULT_PREFIX, Component, check_host_data, coerce, owner_of, pyinfra_keys
from hxinfra.datafiles import load_yaml_mapping
from hxinfra.errors import HxError, InventoryError
from hxinfra.frozen import freeze, freeze_values
from hxinfra.guard import CONFIRM_KEY, PROTECTED_KEY, is_protected
from hxinfra.inventory.handoff import extra_vars_from_env, is_own_load
from hxinfra.inventory.refs import FILL_IN_PREFIX, _has_refs, _Resolver
from hxinfra.inventory.tree import descendants, group_name_problem, host_name_problem
from hxinfra.known_hosts import FILE_KEY, STRICT_KEY
from hxinfra.memo import Generations
from hxinfra.paths import read_project_file
from hxinfra.secrets import NoPassword

MEMBERS_KEY = "hx_members"


NOW_KEY = "hx_now"  # when the data was loaded: the one "now" of every check (set by the inventory)


SEALED_KEY = "hx_sealed_vaults"  # the vault files a host's data could not open (set by the inventory)


PRIORITY_KEY = "hx_group_priority"


HOST_ENTRY_KEYS = {"address", "groups", "data"}


# keys only the engine sets (the host-key trust and the guard): a data layer may not lower them
TRUST_VALUES = {STRICT_KEY: "yes"}


TRUST_SOURCE = "hxinfra (host key trust)"


TRUST_KEYS = {STRICT_KEY, FILE_KEY, PROTECTED_KEY, CONFIRM_KEY}


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
        data is merged for it; a plan of thousands of hosts merges each host once, not twice).
        A group whose name starts with ``_`` is not one of them: pyinfra reads no such name as a
        group, and it would overwrite the file's own (``_env``); hxinfra selects it all the same."""
        own = is_own_load()
        groups: dict[str, Any] = {
            "all": (list(self.hosts) if own else [(n, self.host_data(n)) for n in self.hosts], {}),
        }  # the hosts' groups below include parent groups (children=)
        for group, names in self.groups.items():
            if not group.startswith("_"):
                groups[group] = list(names)
        return groups
