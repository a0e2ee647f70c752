"""Read-only host data: mappings and lists that raise, naming the key, when changed in place.

A fleet's hosts share their groups' values (one list object for every web server), and what is
worked out from a value is kept by that very object (``hxinfra.memo``, the render memo). A deploy
that appended to such a list would change it for every other host and leave stale results
behind. So the inventory hands out every value frozen, and a change in place fails at once::

    data["nginx_upstreams"].append(x)   # ReadOnlyDataError: host data is read-only ...
    more = [*data["nginx_upstreams"], x]  # derive a new value instead
    merged = {**data["webui_ports"], "green": 8002}

The frozen types are subclasses of ``dict`` and ``list``, so everything that reads data (the
schema's type checks, Jinja2, JSON, YAML, pickle) sees them as what they were; copies of them
(``list(v)``, ``dict(v)``, ``[*v]``, ``{**v}``) are ordinary, mutable values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, SupportsIndex

from hxinfra.errors import HxError


class ReadOnlyDataError(HxError, TypeError):
    """An in-place change of host data (a value every host of a group may share)."""


def _refuse(where: str, what: str, kind: str) -> NoReturn:
    copy = "{**value, key: new}" if kind == "mapping" else "[*value, item]"
    raise ReadOnlyDataError(
        f"host data is read-only: {what} would change {where or 'a host data value'} in place "
        f"(other hosts may share it); derive a new value instead, e.g. {copy}"
    )


class FrozenDict(dict[str, Any]):
    """A mapping of host data that cannot be changed in place (``where``: the key it is under)."""

    __slots__ = ("_where",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), where: str = "") -> None:
        dict.__init__(self, items)
        self._where = where

    def _no(self, what: str) -> NoReturn:
        _refuse(self._where, what, "mapping")

    def __setitem__(self, key: str, value: Any) -> None:
        self._no(f"setting [{key!r}]")

    def __delitem__(self, key: str) -> None:
        self._no(f"deleting [{key!r}]")

    def __ior__(self, other: Any) -> FrozenDict:  # type: ignore[override,misc]
        self._no("|=")

    def clear(self) -> None:
        self._no("clear()")

    def pop(self, key: str, *default: Any) -> Any:
        self._no(f"pop({key!r})")

    def popitem(self) -> tuple[str, Any]:
        self._no("popitem()")

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._no(f"setdefault({key!r})")

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._no("update()")

    def __copy__(self) -> FrozenDict:
        return self  # it never changes: a copy would be the same value

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self), self._where))


class FrozenList(list[Any]):
    """A list of host data that cannot be changed in place (``where``: the key it is under)."""

    __slots__ = ("_where",)

    def __init__(self, items: Iterable[Any] = (), where: str = "") -> None:
        list.__init__(self, items)
        self._where = where

    def _no(self, what: str) -> NoReturn:
        _refuse(self._where, what, "list")

    def __setitem__(self, index: Any, value: Any) -> None:
        self._no(f"setting [{index!r}]")

    def __delitem__(self, index: Any) -> None:
        self._no(f"deleting [{index!r}]")

    def __iadd__(self, other: Iterable[Any]) -> FrozenList:  # type: ignore[misc]  # it only raises
        self._no("+=")

    def __imul__(self, n: SupportsIndex) -> FrozenList:
        self._no("*=")

    def append(self, item: Any) -> None:
        self._no("append()")

    def extend(self, items: Iterable[Any]) -> None:
        self._no("extend()")

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._no("insert()")

    def remove(self, item: Any) -> None:
        self._no("remove()")

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._no("pop()")

    def clear(self) -> None:
        self._no("clear()")

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._no("sort() (sorted(value) makes a sorted copy)")

    def reverse(self) -> None:
        self._no("reverse()")

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self), self._where))


def freeze(value: Any, where: str = "") -> Any:
    """``value`` with every mapping and list in it (at any depth) frozen; a value already frozen
    is itself (so hosts that share a value still share one object)."""
    kind = type(value)
    if kind in _PLAIN or kind is FrozenDict or kind is FrozenList:
        return value
    if isinstance(value, Mapping):
        return FrozenDict(((k, freeze(v, f"{where}.{k}" if where else str(k))) for k, v in value.items()), where)
    if isinstance(value, list):
        return FrozenList((freeze(v, f"{where}[{i}]") for i, v in enumerate(value)), where)
    if kind is tuple and not all(type(v) in _PLAIN for v in value):
        return tuple(freeze(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value  # a scalar, a vault value, a tuple of plain values: immutable already


def freeze_values(data: Mapping[str, Any]) -> FrozenDict:
    """A data layer or a host's merged data: every value frozen under its key."""
    return FrozenDict(((k, freeze(v, k)) for k, v in data.items()), "host data")


_PLAIN = (str, int, float, bool, type(None))


def _register_yaml() -> None:
    """YAML writes the frozen types as the mapping and list they are."""
    import yaml

    for dumper in (yaml.SafeDumper, yaml.Dumper):
        dumper.add_representer(FrozenDict, yaml.SafeDumper.represent_dict)
        dumper.add_representer(FrozenList, yaml.SafeDumper.represent_list)


_register_yaml()
