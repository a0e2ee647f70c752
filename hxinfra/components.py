"""Component schemas: what data keys a deploy accepts, of which type, and which are required.

A deploy module declares one :class:`Component` from its ``DEFAULTS`` dict. The engine uses
the schema to reject bad inventory data before any connection is made: an unknown key with a
component's prefix (a typo), a value of the wrong type, or a required key that is missing on
a host the component applies to.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from hxinfra.datafiles import ExtraStr, looks_secret
from hxinfra.frozen import freeze
from hxinfra.memo import IdentityCache, TraceMemo
from hxinfra.secrets import Vaulted
from hxinfra.validate import CONTROL

# Keys no component owns: pyinfra's connector data (ssh_*) and global arguments (_sudo...), both
# checked against pyinfra's own lists, and vault values (vault_*, referenced from other keys).
CONNECTOR_PREFIX, ARGUMENT_PREFIX, VAULT_PREFIX = "ssh_", "_", "vault_"


@functools.cache
def pyinfra_keys() -> frozenset[str]:
    """Every connector data key and global argument pyinfra accepts as host data."""
    from pyinfra.api.arguments import all_global_arguments
    from pyinfra.connectors.ssh import connector_data_meta

    return frozenset(connector_data_meta) | frozenset(f"_{name.lstrip('_')}" for name, _ in all_global_arguments())


TypeSpec = type | tuple[type, ...]


@dataclass(frozen=True)
class Opening:
    """A port a component listens on, and who may connect: the hosts of ``group``, the networks in
    ``sources``, or anyone (``anywhere``). With none of them, nobody (the port stays closed)."""

    port: int | str  # a port, or a range "49152-65535"
    why: str
    proto: str = "tcp"
    group: str = ""
    sources: tuple[str, ...] = ()
    anywhere: bool = False


@dataclass(frozen=True)
class Finding:
    """One thing that stands between a host and its first deploy (``hxinfra doctor``): which check
    found it, what is wrong (never a secret's value), and the command that fixes it."""

    check: str
    problem: str
    fix: str


@dataclass(frozen=True)
class Backup:
    """What a host's backups hold for a component: its configuration paths (those that exist on the
    host are archived), and PostgreSQL databases (dumped one by one) with their cluster's ``port``,
    ``version``, ``cluster`` and ``wal_archive`` (the archived WAL, for point-in-time recovery)."""

    paths: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    cluster: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Certificate:
    """A certificate a component serves: its name, its path on the host, and the controller's file it
    is deployed from (empty: it comes from the vault or inline, and is renewed by hand)."""

    name: str
    path: str
    source: str = ""


@dataclass(frozen=True)
class Component:
    """The data contract of one deploy.

    ``defaults`` is the deploy's ``DEFAULTS`` (also its pyinfra ``data_defaults``); a key's
    type is the type of its default unless ``types`` says otherwise (needed for ``None``
    defaults). ``required`` keys have no default and must be set for every host in one of
    ``groups`` (all hosts when ``groups`` is empty).
    """

    name: str
    defaults: Mapping[str, Any]
    types: Mapping[str, TypeSpec] = field(default_factory=dict)
    required: Mapping[str, TypeSpec] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    # Deeper checks of the merged data (e.g. a CA certificate parses and matches its pin):
    # returns (key, problem) pairs; runs before anything connects, like the type checks.
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None
    # The offline plan: (merged host data, host name) -> the managed paths the deploy would
    # write, computed without facts or I/O on the host (the deploy uses the same function).
    plan: Callable[[Mapping[str, Any], str], list[Any]] | None = None
    # Health checks (hxinfra health): (merged host data, host name) -> hxinfra.health.Check list,
    # a pure function of data like the plan: its services, ports and real probes.
    health: Callable[[Mapping[str, Any], str], list[Any]] | None = None
    # Runs a service other hosts use (a database, a gateway, a web front end): hosts are recovered
    # in the order of the components they serve (hxinfra recover), host-wide ones do not count.
    serves: bool = False
    # How its config, put back to the previous deployed version (hxinfra restore --config), is
    # checked and made live: (merged host data, host name) -> (validate command, apply command).
    rollback: Callable[[Mapping[str, Any], str], tuple[str, str]] | None = None
    # Compliance controls (hxinfra audit): (merged host data, host name) -> hxinfra.audit.Control
    # list, read-only commands mapped to the standards' requirements.
    audit: Callable[[Mapping[str, Any], str], list[Any]] | None = None
    # Finer tags of the deploy's steps (besides the component name), for --tags/--skip-tags.
    tags: tuple[str, ...] = ()
    # Keys whose (nested) values may span lines (PEM certificates); every other string is one line.
    multiline: tuple[str, ...] = ()
    # The old Ansible roles' variables this component takes: old name -> key (hxinfra import-ansible).
    ansible: Mapping[str, str] = field(default_factory=dict)
    # Files the data names (a certificate given as a path), read on the controller once, when the
    # inventory loads (and by component_data for data from elsewhere): (its keys' data, read) ->
    # the keys whose values change, each file's path replaced by what the file holds. Checks and
    # plans are kept by the values they read, so they must read data only, never files.
    load: Callable[[Mapping[str, Any], Callable[[str], str]], Mapping[str, Any]] | None = None
    # What other parts need from it, each a pure function of (host data, host name), collected by
    # those parts (they name no component): the ports it listens on and who may connect (the firewall),
    # what its host's backups must hold (the backup), the certificates it serves (pki expiry/renew).
    openings: Callable[[Mapping[str, Any], str], list[Opening]] | None = None
    backup: Callable[[Mapping[str, Any], str], Backup] | None = None
    certificates: Callable[[Mapping[str, Any], str], list[Certificate]] | None = None
    # What stands between its hosts and a first deploy that data alone shows (hxinfra doctor): an
    # unpinned anchor, a certificate close to its end; each Finding with its fix as a command.
    readiness: Callable[[Mapping[str, Any], str], list[Finding]] | None = None
    # Processes of it that listen on the network as root by design (sshd, nginx's master): the audit's
    # "no other root listener" control allows them.
    root_listeners: tuple[str, ...] = ()
    # Programs it installs on its hosts that a verb of the engine drives: verb -> path (the backup's
    # ``hx-backup``, which ``hxinfra backup`` and ``hxinfra restore`` run).
    programs: Mapping[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{self.name}_"

    def all_keys(self) -> set[str]:
        return set(self.defaults) | set(self.required)

    def type_of(self, key: str) -> TypeSpec | None:
        if key in self.types:
            return self.types[key]
        if key in self.required:
            return self.required[key]
        default = self.defaults.get(key)
        return None if default is None else type(default)

    def applies_to(self, groups: Iterable[str]) -> bool:
        return not self.groups or bool(set(self.groups) & set(groups))

    def __post_init__(self) -> None:
        bad = sorted(k for k in self.all_keys() if not k.startswith(self.prefix))
        if bad:
            raise ValueError(f"component {self.name}: keys must start with {self.prefix!r}: {bad}")
        # the defaults are host data too (pyinfra's data_defaults): frozen where they are written, so
        # the module's DEFAULTS, the schema and every host see the same read-only values
        if isinstance(self.defaults, MutableMapping):
            for key, value in self.defaults.items():
                self.defaults[key] = freeze(value, key)


def _type_name(spec: TypeSpec) -> str:
    if isinstance(spec, tuple):
        return " or ".join(t.__name__ for t in spec)
    return spec.__name__


def type_ok(value: Any, spec: TypeSpec) -> bool:
    """``isinstance`` without Python's quirks: a bool is not an int, an int is a float."""
    specs = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, Vaulted):  # an encrypted string: checked as one, never decrypted here
        return str in specs
    for t in specs:
        if t is int and isinstance(value, bool):
            continue
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return True
        if isinstance(value, t):
            return True
    return False


def one_line_problems(key: str, value: Any) -> list[tuple[str, str]]:
    """The engine-wide rule: no newline or control character in any string, at any depth."""
    if isinstance(value, str) and CONTROL.search(value):
        return [(key, "must be one line (no newline or control character)")]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in one_line_problems(f"{key}.{k}", v)]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in one_line_problems(f"{key}[{i}]", v)]
    return []


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(value: Any, spec: TypeSpec | None) -> Any:
    """A ``-e key=value`` string as the type the schema declares (Ansible modules convert the same way)."""
    if not isinstance(value, ExtraStr) or spec is None:
        return value
    specs = spec if isinstance(spec, tuple) else (spec,)
    text = value.strip()
    if str in specs:
        return str(value)
    if bool in specs and text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    if int in specs and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if float in specs:
        with contextlib.suppress(ValueError):
            return float(text)
    if (list in specs or dict in specs) and text[:1] in "[{":
        from hxinfra.datafiles import load_yaml

        return load_yaml(text, "-e")
    return str(value)  # left as a string: the type check names the key and the expected type


def owner_of(key: str, components: Iterable[Component]) -> Component | None:
    """The component whose prefix is the longest that ``key`` starts with (the one that declares the
    key when several share that prefix, as the engine's and the fleet's ``hx_`` keys do)."""
    matching = [c for c in components if key.startswith(c.prefix)]
    if not matching:
        return None
    longest = max(len(c.prefix) for c in matching)
    matching = [c for c in matching if len(c.prefix) == longest]
    return next((c for c in matching if key in c.all_keys()), matching[0])


# The engine's own keys, part of every environment whatever its components.
ENGINE = Component(
    "hx",
    defaults={
        # Step selection (hxinfra deploy --tags/--skip-tags, or pyinfra --data hx_tags=config):
        # component names and step tags such as packages, config, service, security.
        "hx_tags": [],
        "hx_skip_tags": [],
        # In a group's vars: its precedence among groups of the same depth (higher wins), like
        # ansible_group_priority.
        "hx_group_priority": 1,
        # Set by the inventory, never by hand: the host's inventory name (Ansible's
        # inventory_hostname), and the vault files its data could not open.
        "hx_host": "",
        "hx_sealed_vaults": [],
        # Set by the inventory: each group's hosts as {name, address} (Ansible's groups and
        # their hostvars' addresses), e.g. the members of a load balancer's pool.
        "hx_members": {},
        # Set by the inventory: when its data was loaded (UTC, ISO 8601), the "now" checks compare
        # certificates' dates with (a check is a function of data: it never reads the clock).
        "hx_now": "",
        # Set by the engine from the environment, never by hand: its name when its changes need a confirmation
        # (hxinfra.guard). hx_confirm is that confirmation, on pyinfra's command line only
        # (--data hx_confirm=production); in a data file it is an error.
        "hx_protected": "",
        "hx_confirm": "",
        # Where `hxinfra watch` sends news of the environment (hxinfra.watch.channels): a list of
        # {webhook: URL, format: alertmanager|chat} and {email: [ADDRESS], smtp_host, smtp_port,
        # smtp_user, smtp_password, from, starttls, cafile}; URLs and passwords may be !vault values.
        "hx_watch_channels": [],
    },
    types={"hx_tags": (list, str), "hx_skip_tags": (list, str), "hx_watch_channels": (list,)},
)


def check_host_data(
    data: Mapping[str, Any],
    groups: Iterable[str],
    components: Iterable[Component],
    warnings: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Return ``(key, problem)`` pairs for one host's merged data; empty when valid.

    Keys of a component (by prefix) must be known and typed; ``ssh_*`` and ``_*`` keys must be
    pyinfra's own. Other keys (brought over from an Ansible ``group_vars``) are kept, and listed in
    ``warnings`` when given. A fleet's hosts share most of their values (a group's): each value is
    checked once per key, and each component's check once per set of values it reads.
    """
    components = [ENGINE, *(c for c in components if c is not ENGINE)]
    groups = list(groups)
    schema = tuple(components)
    problems: list[tuple[str, str]] = []
    ids = _ids(schema)
    for key, value in data.items():
        found, kept = _KEY_CHECKS.get(value, functools.partial(_key_problems, key, value, schema), (key, ids))
        problems += found
        if warnings is not None:
            warnings += kept
    full = {**_SCHEMAS[ids][1], **data}  # every component's defaults under the host's data
    for comp in components:
        applies = comp.applies_to(groups)
        if applies:
            for key in comp.required:
                if data.get(key) in (None, ""):
                    problems.append((key, f"required by component {comp.name} but not set"))
        # a malformed value is an error wherever it is set, even on a host the component skips today
        if comp.check is not None and not problems and (applies or not data.keys().isdisjoint(comp.defaults)):
            problems.extend(_CHECKS.call(comp.check, full))
    return problems


_KEY_CHECKS: IdentityCache[tuple[list[tuple[str, str]], list[tuple[str, str]]]] = IdentityCache(limit=8192)
_CHECKS: TraceMemo[list[tuple[str, str]]] = TraceMemo()


_SCHEMAS: dict[tuple[int, ...], tuple[tuple[Component, ...], dict[str, Any]]] = {}


def _ids(schema: tuple[Component, ...]) -> tuple[int, ...]:
    """The schema's components by identity, each kept alive here (so no id is ever reused), with
    their defaults in one mapping (made once per schema)."""
    key = tuple(map(id, schema))
    if key not in _SCHEMAS:
        _SCHEMAS[key] = (schema, {k: v for c in schema for k, v in c.defaults.items()})
    return key


def _key_problems(
    key: str, value: Any, schema: tuple[Component, ...]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The problems of one key and value against the schema, and the warning it gives (if any)."""
    problems: list[tuple[str, str]] = []
    if not any(key in c.multiline for c in schema):
        problems += one_line_problems(key, value)
    if key.startswith(VAULT_PREFIX):
        return problems, []
    if key.startswith((CONNECTOR_PREFIX, ARGUMENT_PREFIX)):
        if key not in pyinfra_keys():
            close = difflib.get_close_matches(key, sorted(pyinfra_keys()), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append((key, f"unknown pyinfra connector key or global argument{hint}"))
        return problems, []
    owner = owner_of(key, schema)
    if owner is None:
        return problems, [(key, "kept, but no component reads it (no known prefix)")]
    if key not in owner.all_keys():
        close = difflib.get_close_matches(key, sorted(owner.all_keys()), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append((key, f"unknown key for component {owner.name}{hint}"))
        return problems, []
    spec = owner.type_of(key)
    if spec is not None and value is not None and not type_ok(value, spec):
        shown = "" if looks_secret(key) or isinstance(value, Vaulted) else f" ({value!r:.60})"
        problems.append((key, f"expected {_type_name(spec)}, got {type(value).__name__}{shown}"))
    return problems, []


REGISTRY_GROUP = "hxinfra"  # the entry point (pyproject.toml) that names the project's component registry


@functools.cache
@functools.cache
def registry() -> Any:
    """The project's component registry: the module named by the ``hxinfra``/``registry`` entry point
    of the installed project (its ``COMPONENTS`` order, ``component(name)`` and ``components()``).
    The engine reaches components only through it and through what they declare. Looked up once
    per process (reading the installed packages' entry points costs more than a host's plan)."""
    from importlib.metadata import entry_points

    found = entry_points(group=REGISTRY_GROUP, name="registry")
    if not found:
        from hxinfra.errors import HxError

        raise HxError("no component registry: the project's pyproject.toml names none ([project.entry-points.hxinfra])")
    return next(iter(found)).load()


def program(verb: str) -> str:
    """The host program that drives ``verb``, as the component that installs it declares."""
    from hxinfra.errors import HxError

    for comp in registered():
        if verb in comp.programs:
            return comp.programs[verb]
    raise HxError(f"no component of this project installs a program for {verb!r}")


def registered() -> tuple[Component, ...]:
    """Every component of the registry (the fleet's keys first), in the site's order."""
    found: tuple[Component, ...] = registry().components()
    return found


class _View(Mapping[str, Any]):
    """Host data (a mapping, or pyinfra's ``host.data``) over one component's defaults: what a
    declaration reads, the same in the offline plan and in a deploy (where ``host.data`` holds only
    the running deploy's defaults)."""

    __slots__ = ("_data", "_defaults")

    def __init__(self, data: Any, defaults: Mapping[str, Any]) -> None:
        self._data, self._defaults = data, defaults

    def __getitem__(self, key: str) -> Any:
        value = self._data.get(key)
        if value is None:
            if key in self._defaults:
                return self._defaults[key]
            if isinstance(self._data, Mapping) and key in self._data:
                return value
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        data = self._data if isinstance(self._data, Mapping) else self._data.dict()
        return iter({**dict.fromkeys(self._defaults), **dict.fromkeys(data)})

    def __len__(self) -> int:
        return sum(1 for _ in self)


def declared(
    hook: str,
    data: Any,
    host_name: str,
    groups: Iterable[str] | None = None,
    components: Iterable[Component] | None = None,
) -> list[tuple[Component, Any]]:
    """What each component declares through ``hook`` (``openings``, ``backup``, ``certificates``) for
    this host, in the site's order: of the components the host runs (``groups`` given), else of
    every component. Each declaration reads the host's data over its own component's defaults."""
    chosen = registered() if components is None else tuple(components)
    wanted = None if groups is None else set(groups)
    out: list[tuple[Component, Any]] = []
    for comp in chosen:
        fn = getattr(comp, hook)
        if fn is not None and (wanted is None or comp.applies_to(wanted)):
            out.append((comp, fn(_View(data, comp.defaults), host_name)))
    return out
