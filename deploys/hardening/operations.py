"""Hardening, host side: the operation that stops and disables exactly those unneeded services
that are installed and running or enabled (their states read with the run's other units)."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation

from hxinfra import batch


@operation()
def _units_disabled(units: list[str]):  # type: ignore[no-untyped-def]
    """
    Stop and disable each of ``units`` that is installed and running or enabled; a unit that is
    not installed is nothing to do (the same operation on every host).

    + units: unit names (``x.service``)
    """
    if not units:
        host.noop("no services to disable")
        return
    states = batch.lookup("units", list(units))
    busy = [
        u
        for u, i in states.items()
        if i
        and i.get("load") == "loaded"
        and (i.get("active") in ("active", "activating") or i.get("file") == "enabled")
    ]
    if not busy:
        host.noop(f"{len(units)} unneeded services absent or disabled")
        return
    yield StringCommand("systemctl", "disable", "--now", *[shlex.quote(u) for u in busy])


def units_disabled(units: list[str], **kwargs: Any) -> Any:
    """Stop and disable the installed ones of ``units`` (see the operation above); the units are
    named to :mod:`hxinfra.batch` now, to be read with the run's other units."""
    batch.want("units", units)
    return _units_disabled(units=list(units), **kwargs)
