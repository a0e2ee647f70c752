"""Component schemas: what data keys a deploy accepts, of which type, and which are required.

A deploy module declares one :class:`Component` from its ``DEFAULTS`` dict. The engine uses
the schema to reject bad inventory data before any connection is made: an unknown key with a
component's prefix (a typo), a value of the wrong type, or a required key that is missing on
a host the component applies to.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hxinfra.vault import Vaulted

# Keys no component owns but that are legitimate host data.
FOREIGN_PREFIXES = ("ssh_", "_", "vault_", "fake_", "pyinfra_")

TypeSpec = type | tuple[type, ...]


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
    # Finer tags of the deploy's steps (besides the component name), for --tags/--skip-tags.
    tags: tuple[str, ...] = ()

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


SECRET_WORDS = ("password", "secret", "token", "passphrase", "private_key", "master_key")


def looks_secret(key: str) -> bool:
    """Keys whose values are never echoed, even in error messages."""
    return key.startswith("vault_") or any(w in key.lower() for w in SECRET_WORDS)


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


def check_host_data(
    data: Mapping[str, Any],
    groups: Iterable[str],
    components: Iterable[Component],
) -> list[tuple[str, str]]:
    """Return ``(key, problem)`` pairs for one host's merged data; empty when valid."""
    components = list(components)
    groups = list(groups)
    problems: list[tuple[str, str]] = []
    by_prefix = sorted(components, key=lambda c: -len(c.prefix))
    for key, value in data.items():
        if key.startswith(FOREIGN_PREFIXES):
            continue
        owner = next((c for c in by_prefix if key.startswith(c.prefix)), None)
        if owner is None:
            known = ", ".join(sorted(c.prefix + "*" for c in components))
            problems.append((key, f"unknown key (no component owns it; known prefixes: {known})"))
            continue
        if key not in owner.all_keys():
            close = difflib.get_close_matches(key, sorted(owner.all_keys()), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append((key, f"unknown key for component {owner.name}{hint}"))
            continue
        spec = owner.type_of(key)
        if spec is not None and value is not None and not type_ok(value, spec):
            shown = "" if looks_secret(key) else f" ({value!r:.60})"
            problems.append((key, f"expected {_type_name(spec)}, got {type(value).__name__}{shown}"))
    for comp in components:
        if not comp.applies_to(groups):
            continue
        for key in comp.required:
            if data.get(key) in (None, ""):
                problems.append((key, f"required by component {comp.name} but not set"))
        if comp.check is not None and not problems:
            problems.extend(comp.check({**comp.defaults, **data}))
    return problems
