"""Hardening, host side: which of the unneeded services are installed and running or enabled,
and the operation that stops and disables exactly those."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from typing_extensions import override


class UnitStates(FactBase[dict[str, tuple[str, str]]]):
    """unit -> (ActiveState, UnitFileState) for the units that are installed (loaded)."""

    default = dict

    @override
    def command(self, units: list[str]) -> str:
        names = " ".join(shlex.quote(u) for u in units)
        return (f"for u in {names}; do systemctl show -p Id -p LoadState -p ActiveState -p UnitFileState "
                "--value \"$u\" | paste -sd ' '; done")  # fmt: skip

    @override
    def process(self, output: list[str]) -> dict[str, tuple[str, str]]:
        out = {}
        for line in output:
            parts = line.split()
            if len(parts) == 4 and parts[1] == "loaded":
                out[parts[0]] = (parts[2], parts[3])
        return out


@operation()
def units_disabled(units: list[str]):  # type: ignore[no-untyped-def]
    """
    Stop and disable each of ``units`` that is installed and running or enabled; a unit that is
    not installed is nothing to do (the same operation on every host).

    + units: unit names (``x.service``)
    """
    if not units:
        host.noop("no services to disable")
        return
    states = host.get_fact(UnitStates, units=list(units))
    busy = [u for u, (active, enabled) in states.items() if active in ("active", "activating") or enabled == "enabled"]
    if not busy:
        host.noop(f"{len(units)} unneeded services absent or disabled")
        return
    yield StringCommand("systemctl", "disable", "--now", *[shlex.quote(u) for u in busy])
