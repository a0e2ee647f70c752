"""Every component's data check takes a vault value wherever a string may stand.

A value may be a vault value (``!vault``), a string built from one (``"http://{{ vault_x }}"``) or a
value of a vault file nobody opened (sealed), in any key an operator chooses: an imported Ansible
inventory does exactly that. A check then passes it over (the deploy checks it decrypted) and never
fails with a ``TypeError`` of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hxinfra.components import registered
from hxinfra.inventory import load_environment
from hxinfra.paths import project_root
from hxinfra.secrets import Composite, Sealed


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The paths of every string inside ``value`` (mapping keys and list indexes)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    items = list(value)
    items[head] = _replaced(items[head], rest, new)
    return items


def _hosts() -> list[dict[str, Any]]:
    """One merged data set per host of the development environment (every group is in it)."""
    env = load_environment(project_root() / "inventories" / "development.py")
    return [env.host_data(name, with_defaults=True) for name in env.hosts]


VALUES = {
    "sealed": Sealed("probe", "group_vars/all/vault.yml", "no password for vault id default"),
    "composite": Composite(["http://", Sealed("probe", "vault.yml", "sealed"), ":1"], "group_vars/all.yml"),
}


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_every_check_takes_a_vault_value_at_every_string(kind: str) -> None:
    crashed: list[str] = []
    checked = 0
    for comp in registered():
        if comp.check is None:
            continue
        for data in _hosts():
            for key in sorted(comp.defaults):
                for path in _leaves(data.get(key), (key,)):
                    probe = dict(data)
                    probe[key] = _replaced(data[key], path[1:], VALUES[kind])
                    checked += 1
                    try:
                        problems = comp.check(probe)
                    except Exception as e:  # the defect this test is for
                        crashed.append(f"{comp.name}: {path}: {type(e).__name__}: {e}")
                        continue
                    assert isinstance(problems, list)
    assert checked > 100, checked  # the probe reached the data (not a vacuous pass)
    assert not crashed, "\n".join(sorted(set(crashed)))


def test_a_value_a_check_cannot_read_is_a_problem_of_its_key() -> None:
    from hxinfra.validate import collect

    def check(data: Any) -> None:
        data["web_port"].strip()  # a check written for strings

    assert collect({"web_port": [80, 443]}, {"web_port": check}) == [
        ("web_port", "'[80, 443]' of the wrong shape (AttributeError: 'list' object has no attribute 'strip')")
    ]
    # a secret-looking key never shows its value; a vault value waits for the deploy's decrypted check
    assert collect({"db_password": 7}, {"db_password": lambda d: d["db_password"].strip()}) == [
        ("db_password", "a value of the wrong shape (AttributeError: 'int' object has no attribute 'strip')")
    ]
    assert collect({"web_port": VALUES["sealed"]}, {"web_port": check}) == []
