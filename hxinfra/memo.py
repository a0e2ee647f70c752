"""What is worked out from a read-only object, kept while that object is kept here.

A fleet shares objects between its hosts: one members mapping, one group's data value, one list of
pg_hba rules. Work derived from such an object (a pickle, the networks of a group, whether a value
holds a reference) is done once per object, not once per host. The cache keeps the object itself
beside the result, so its id cannot be reused by another object while the entry lives; the objects
are read-only by the project's convention (desired state is a pure function of host data).

:class:`TraceMemo` (and :func:`by_reads`) go one step further for pure functions of a host's data:
a result is kept with the keys the function read and the objects it found there, so the hosts that
hold those same objects share it, without anyone declaring what the function reads.

``HXINFRA_MEMO=off`` (read when this module is imported) turns every cache of the project into a
pass-through: these classes, the render memo, the inventory's merges and :func:`lru`. A test plans
every environment both ways and holds the files byte-identical, so a cache can never change what a
plan or a deploy writes, only how fast.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Hashable, Iterator, Mapping
from itertools import repeat
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# every cache on (the default) or off: HXINFRA_MEMO=off, for the equality test and for debugging
ENABLED = os.environ.get("HXINFRA_MEMO", "on").strip().lower() not in ("off", "0", "false", "no")


class Generations(Generic[T]):
    """A mapping of at most about ``limit`` entries (``None``: no limit) that keeps what is in use:
    when full, what was not read since it last filled up is dropped (two generations, no
    bookkeeping per read)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._entries: dict[Hashable, T] = {}
        self._older: dict[Hashable, T] = {}

    def get(self, key: Hashable) -> T | None:
        if not ENABLED:
            return None
        found = self._entries.get(key)
        if found is None and (found := self._older.get(key)) is not None:
            self.put(key, found)
        return found

    def put(self, key: Hashable, value: T) -> None:
        if not ENABLED:
            return
        if self.limit is not None and len(self._entries) >= self.limit:
            self._older, self._entries = self._entries, {}
        self._entries[key] = value


class IdentityCache(Generic[T]):
    """``get(obj, compute, extra)``: ``compute()``'s result for this very object (and ``extra``),
    computed once. About ``limit`` entries at most (``None``: no limit), kept as
    :class:`Generations` keep them: what every host uses (a role's shared values) stays while what
    one host used goes."""

    def __init__(self, limit: int | None = 2048) -> None:
        self._kept: Generations[tuple[object, T]] = Generations(limit)

    def get(self, obj: object, compute: Callable[[], T], extra: Hashable = None) -> T:
        key = (id(obj), extra)
        found = self._kept.get(key)
        if found is None or found[0] is not obj:
            found = (obj, compute())
            self._kept.put(key, found)
        return found[1]


_MISSING = object()


class Reads(Mapping[str, Any]):
    """A view of a data mapping that notes which keys a function reads, and what it found there.

    Reading a key (``[]``, ``get``, ``in``) notes that key; anything that sees every key at once
    (iterating, ``dict(...)``, ``{**...}``, ``len``, comparing) notes *everything*, and then the call
    is not kept (:class:`TraceMemo`). A view of a view passes each read on, so a kept function
    called inside another kept function adds what it read to the outer one's reads.
    """

    __slots__ = ("_data", "everything", "read")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self.read: dict[str, Any] = {}
        self.everything = False

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._data[key]
        except KeyError:
            self.read[key] = _MISSING
            raise
        self.read[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        self.everything = True
        return iter(self._data)

    def __len__(self) -> int:
        self.everything = True
        return len(self._data)


class TraceMemo(Generic[T]):
    """Results of a pure function of a data mapping, kept by the values it read.

    The first call runs the function on a :class:`Reads` copy and keeps the result with every
    key it read and the very object it found there. A later call whose data holds the same
    objects under those keys gets the kept result: the function would read the same values, take
    the same branches and return the same thing. Hosts of one role share their data's objects
    (a group's values), so a fleet runs a check once per role, not once per host, and a value a
    host sets itself (its own address) makes it run again, as it must. Nothing is declared, so
    nothing can be declared wrong.
    """

    def __init__(self, limit: int = 16) -> None:
        self.limit = limit
        self._entries: dict[Hashable, list[tuple[tuple[str, ...], tuple[Any, ...], T]]] = {}

    def call(self, fn: Callable[..., T], data: Mapping[str, Any], *args: Hashable) -> T:
        """``fn(data, *args)``, or the result kept for the same ``args`` and the same values read."""
        if not ENABLED:
            return fn(data, *args)
        entries = self._entries.setdefault((fn, args), [])
        get = data.get
        for keys, values, result in entries:
            if all(map(operator.is_, map(get, keys, repeat(_MISSING)), values)):
                return result
        recorded = Reads(data)
        result = fn(recorded, *args)
        if not recorded.everything:
            entries.insert(0, (tuple(recorded.read), tuple(recorded.read.values()), result))
            del entries[self.limit :]
        return result


F = TypeVar("F", bound=Callable[..., Any])


def by_reads(fn: F) -> F:
    """Keep the results of a pure function of host data, ``fn(data, *hashable_args)``, by the values
    it read (:class:`TraceMemo`): hosts that share those values share one result. Only for what is
    a pure function of its arguments, as the project's desired state is; its result is shared, so
    it is never changed by a caller (a string, a tuple, or a list read as it is)."""
    memo: TraceMemo[Any] = TraceMemo()

    @functools.wraps(fn)
    def shared(data: Mapping[str, Any], *args: Hashable) -> Any:
        return memo.call(fn, data, *args)

    return shared  # type: ignore[return-value]


def lru(maxsize: int) -> Callable[[F], F]:
    """``functools.lru_cache(maxsize)`` for a pure function of hashable values (an address parsed
    once per run), switched off with the rest (``HXINFRA_MEMO=off``)."""

    def wrap(fn: F) -> F:
        return functools.lru_cache(maxsize=maxsize)(fn) if ENABLED else fn  # type: ignore[return-value]

    return wrap
