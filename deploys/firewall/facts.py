"""Firewall, host side: whether the hxinfra table is loaded (a flushed rule set is loaded again
even when the file did not change)."""

from __future__ import annotations

from pyinfra.api import FactBase
from typing_extensions import override


class TableLoaded(FactBase[bool]):
    """True when the kernel has the ``inet hxinfra`` table."""

    @override
    def command(self) -> str:
        return "nft list table inet hxinfra >/dev/null 2>&1 && echo yes || echo no"

    @override
    def process(self, output: list[str]) -> bool:
        return output == ["yes"]
