"""Building and loading environments: what an inventory file calls, and how hxinfra runs one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hxinfra import guard
from hxinfra.components import Component
from hxinfra.errors import HxError, InventoryError
from hxinfra.guard import check_plain
from hxinfra.inventory.core import Environment
from hxinfra.inventory.handoff import extra_vars_layer, is_own_load, own_load, reused


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
    if isinstance(held := reused(file), Environment):
        return held
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
    if env.protected and not is_own_load():
        check_plain(env.name)
    env.validate()
    return env


def load_environment(path: str | Path, extra_vars: Mapping[str, Any] | None = None) -> Environment:
    """Execute an inventory file the way pyinfra does and return its :class:`Environment`.

    ``extra_vars`` (``-e``) become the top data layer; ``None`` keeps whatever
    ``HXINFRA_EXTRA_VARS`` already says.
    """
    path = Path(path)
    if not path.is_file():
        raise InventoryError(f"no inventory file {path}")
    namespace: dict[str, Any] = {"__file__": str(path)}
    try:
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
        with extra_vars_layer(extra_vars), own_load():
            exec(code, namespace)  # noqa: S102 - inventories are Python by design, as in pyinfra
    except InventoryError:
        raise
    except Exception as e:  # a broken inventory file is bad input, not a crash
        raise InventoryError(f"{path}: {type(e).__name__}: {e}") from e
    envs = [v for v in namespace.values() if isinstance(v, Environment)]
    if len(envs) != 1:
        raise InventoryError(f"{path}: expected one hxinfra environment(...) in the file, found {len(envs)}")
    return envs[0]


def known_environments(root: Path) -> list[str]:
    """The environment names of a project: its ``inventories/<name>.py`` files."""
    return sorted(p.stem for p in (root / "inventories").glob("*.py") if guard.NAME.fullmatch(p.stem))


def inventory_file(root: Path, env: str) -> Path:
    """The inventory file of environment ``env``: a name only (``./production`` is none)."""
    guard.check_name(env, known_environments(root))
    path = root / "inventories" / f"{env}.py"
    if not path.is_file():
        raise HxError(f"unknown environment {env!r} (known: {', '.join(known_environments(root))})")
    return path
