"""Reading data files (group_vars, host_vars, ``-e @file.yml``) with clear errors.

YAML files may hold inline ``!vault |`` values (kept encrypted as :class:`~hxinfra.vault.Vaulted`
until a deploy uses them) or be whole-file vaults (``ansible-vault encrypt``), whose string
values all become :class:`~hxinfra.vault.Secret`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hxinfra.errors import HxError, InventoryError
from hxinfra.vault import Vaulted, VaultError, default_keyring, is_encrypted, mark_secret


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` plus Ansible's ``!vault`` tag."""

    source = "<string>"


def _construct_vault(loader: _Loader, node: yaml.Node) -> Vaulted:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!vault must tag a string", node.start_mark)
    return Vaulted(str(loader.construct_scalar(node)), f"{loader.source} line {node.start_mark.line + 1}")


_Loader.add_constructor("!vault", _construct_vault)


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
    if encrypted:
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
    return mark_secret(value) if encrypted else value


def parse_extra_vars(values: Iterable[str]) -> dict[str, Any]:
    """``-e key=value`` (value parsed as a YAML scalar) and ``-e @file.yml``, later wins.

    ``@file.yml`` may be a vault or hold ``!vault`` values, as with ``ansible-playbook``.
    """
    out: dict[str, Any] = {}
    for raw in values:
        if raw.startswith("@"):
            out.update(load_yaml_mapping(Path(raw[1:])))
            continue
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise HxError(f"extra var {raw!r} is not key=value or @file.yml")
        try:
            out[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def absolute_extra_vars(values: Iterable[str]) -> list[str]:
    """The same ``-e`` arguments with ``@file`` paths made absolute (for a process in another cwd)."""
    return [f"@{Path(v[1:]).resolve()}" if v.startswith("@") else v for v in values]
