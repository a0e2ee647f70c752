"""What is worked out from a read-only object, kept while that object is kept here.

A fleet shares objects between its hosts: one members mapping, one group's data value, one list of
pg_hba rules. Work derived from such an object (a pickle, the networks of a group, whether a value
holds a reference) is done once per object, not once per host. The cache keeps the object itself
beside the result, so its id cannot be reused by another object while the entry lives; the objects
are read-only by the project's convention (desired state is a pure function of host data).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class IdentityCache(Generic[T]):
    """``get(obj, compute, extra)``: ``compute()``'s result for this very object (and ``extra``),
    computed once. ``limit`` entries at most (then it starts again empty); ``None``: no limit."""

    def __init__(self, limit: int | None = 4096) -> None:
        self.limit = limit
        self._entries: dict[tuple[int, Hashable], tuple[object, T]] = {}

    def get(self, obj: object, compute: Callable[[], T], extra: Hashable = None) -> T:
        key = (id(obj), extra)
        found = self._entries.get(key)
        if found is None or found[0] is not obj:
            if self.limit is not None and len(self._entries) >= self.limit:
                self._entries.clear()
            found = self._entries[key] = (obj, compute())
        return found[1]
