"""Reading data files (group_vars, host_vars, ``-e @file.yml``) with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hxinfra.errors import InventoryError


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping with string keys (or empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(f"{path}: cannot read: {e.strerror}") from e
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InventoryError(f"{path}:{where}: invalid YAML: {problem}") from e
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(f"{path}: top level must be a mapping of keys to values, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise InventoryError(f"{path}: key {bad[0]!r}: keys must be strings")
    return value
