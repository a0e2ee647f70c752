"""``{{ references }}`` between keys, resolved as Ansible layouts use them (``db_password: "{{ vault_db_password }}"``):
a whole-value reference takes the referenced value as it is (a vault value stays one), a reference
inside a longer string builds a string (masked as a whole when it holds a vault value)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hxinfra import memo
from hxinfra.components import VAULT_PREFIX
from hxinfra.errors import InventoryError
from hxinfra.frozen import FrozenDict, FrozenList
from hxinfra.memo import IdentityCache
from hxinfra.secrets import Composite, Sealed, Vaulted

REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


# {{ fill_in_<key> }}: a value only the operator can supply, written by import-ansible; defined nowhere,
# it loads masked (as a missing vault value does) and a deploy of a host that reads it refuses, naming it
FILL_IN_PREFIX = "fill_in_"


_REFS: IdentityCache[bool] = IdentityCache(limit=None)


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
