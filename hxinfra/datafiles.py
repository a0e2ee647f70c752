"""Reading data files (group_vars, host_vars, ``-e @file.yml``) with clear errors.

YAML files may hold inline ``!vault |`` values (kept encrypted as :class:`~hxinfra.secrets.Vaulted`
until a deploy uses them) or be whole-file vaults (``ansible-vault encrypt``), whose string
values all become opened :class:`~hxinfra.secrets.Vaulted` values: masked wherever they are shown.
A key given twice in one mapping is an error (YAML would silently keep the last one).

Extra vars follow ``ansible-playbook -e``: ``key=value`` gives strings, several pairs may share
one argument (``-e 'a=1 b=2'``), and ``-e '{"json": ...}'`` or ``-e @file.yml`` give typed values.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hxinfra.errors import HxError, InventoryError
from hxinfra.secrets import (
    Vaulted,
    VaultError,
    default_keyring,
    is_encrypted,
    iter_vaulted,
    mark_secret,
    register_secret,
)

# libyaml's parser where PyYAML has it (its wheels do): the same documents, read about ten times
# faster than the pure-Python parser (a 10,000-host Ansible inventory, group_vars by the hundred)
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[misc]  # a class chosen at import time
    """``yaml.safe_load`` plus Ansible's ``!vault`` tag."""

    source = "<string>"


def _construct_vault(loader: _Loader, node: yaml.Node) -> Vaulted:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!vault must tag a string", node.start_mark)
    return Vaulted(str(loader.construct_scalar(node)), f"{loader.source} line {node.start_mark.line + 1}")


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice (first on line {seen[key] + 1})", key_node.start_mark
            )
        if isinstance(key, str | int | float | bool):
            seen[key] = key_node.start_mark.line
    return dict(loader.construct_pairs(node, deep=True))


_Loader.add_constructor("!vault", _construct_vault)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML (with ``!vault``), naming ``source`` and the line in errors."""
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InventoryError(f"{source}:{where}: invalid YAML: {problem}") from e
    finally:
        loader.dispose()


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping with string keys (or empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(f"{path}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise InventoryError(f"{path}: not UTF-8 text") from e
    encrypted = is_encrypted(text)
    if encrypted:  # NoPassword propagates: the inventory may keep the file sealed
        try:
            text = default_keyring().decrypt(text, str(path)).decode("utf-8")
        except UnicodeDecodeError as e:
            raise VaultError(f"{path}: decrypted vault is not UTF-8 text") from e
    value = load_yaml(text, str(path))
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(f"{path}: top level must be a mapping of keys to values, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise InventoryError(f"{path}: key {bad[0]!r}: keys must be strings")
    for vaulted in iter_vaulted(value):
        vaulted.check()  # a damaged !vault value is an error now, not when a deploy reads it
    return mark_secret(value, str(path)) if encrypted else value


SECRET_WORDS = ("password", "secret", "token", "passphrase", "private_key", "master_key")


def looks_secret(key: str) -> bool:
    """Keys whose values are never echoed, even in error messages."""
    return key.startswith("vault_") or any(w in key.lower() for w in SECRET_WORDS)


def _register_secrets(value: Any, key: str = "") -> None:
    """Values of secret-looking keys (at any depth) are registered, so every output masks them."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _register_secrets(v, str(k) if looks_secret(str(k)) else key)
    elif isinstance(value, list):
        for v in value:
            _register_secrets(v, key)
    elif key and isinstance(value, str) and value:
        register_secret(value)


def _key_of(word: str) -> str:
    """What an error may say of an ``-e`` word: its key when it has one, never its value."""
    key, sep, _ = word.partition("=")
    return repr(key.strip()[:40]) if sep and key.strip().isidentifier() else "(not shown: it may hold a secret)"


class ExtraStr(str):
    """A string from ``-e key=value``: a string, as in Ansible, until a component's schema says
    the key is a number or a boolean (then it is converted, as Ansible modules convert arguments)."""

    __slots__ = ()


def parse_extra_vars(values: Iterable[str]) -> dict[str, Any]:
    """``-e`` arguments, later wins: ``key=value`` pairs (strings), JSON/YAML mappings, ``@file.yml``.

    ``@file.yml`` may be a vault or hold ``!vault`` values, as with ``ansible-playbook``; it is the
    way to pass a secret (a ``key=value`` argument is visible to every user in ``ps``).

    Values of secret-looking keys are registered as secrets (masked in every output), and an error
    names the key at most, never a value.
    """
    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if text.startswith("@"):
            out.update(load_yaml_mapping(Path(text[1:])))
            continue
        if text.startswith(("{", "[")):
            try:
                value = load_yaml(text, "-e")
            except InventoryError:
                raise HxError("extra vars: a JSON/YAML argument that does not parse (not shown)") from None
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise HxError("extra vars: a JSON/YAML argument must be a mapping of names to values")
            _register_secrets(value)
            out.update(value)
            continue
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise HxError(f"extra vars {_key_of(text)}: {e} (the value is not shown)") from None
        if not words:
            raise HxError("empty extra vars argument (give key=value, a JSON mapping or @file.yml)")
        for word in words:
            key, sep, value = word.partition("=")
            if not sep or not key.strip().isidentifier():
                raise HxError(f"extra var {_key_of(word)} is not key=value, a JSON mapping or @file.yml")
            if looks_secret(key.strip()):
                register_secret(value)
            out[key.strip()] = ExtraStr(value)
    return out


def absolute_extra_vars(values: Iterable[str]) -> list[str]:
    """The same ``-e`` arguments with ``@file`` paths made absolute (for a process in another cwd)."""
    return [f"@{Path(v[1:]).resolve()}" if v.startswith("@") else v for v in values]
