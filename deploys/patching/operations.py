"""Patching, host side: the pending upgrades (apt's own simulation), whether a reboot is asked for,
and the operation that installs exactly the wanted upgrades."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from typing_extensions import override

from deploys.patching.config import PENDING, REBOOT_FLAG, wanted


class PendingUpgrades(FactBase[list[tuple[str, str, str, str]]]):
    """(package, installed, candidate, suite) for every upgrade apt would make."""

    default = list

    @override
    def command(self) -> str:
        return PENDING

    @override
    def process(self, output: list[str]) -> list[tuple[str, str, str, str]]:
        out = []
        for line in output:
            parts = line.split()
            if len(parts) >= 4:
                out.append((parts[0], parts[1], parts[2], parts[3]))
        return out


class RebootRequired(FactBase[bool]):
    """An installed update asked for a reboot (Debian's /run/reboot-required)."""

    @override
    def command(self) -> str:
        return f"[ -e {REBOOT_FLAG} ] && echo yes || echo no"

    @override
    def process(self, output: list[str]) -> bool:
        return output == ["yes"]


@operation()
def upgrades_installed(security_only: bool = True):  # type: ignore[no-untyped-def]
    """
    Install the pending upgrades (security ones only by default), keeping the config files hxinfra
    or an operator changed (``--force-confold``).

    + security_only: only packages whose candidate comes from the security suite
    """
    packages = wanted(host.get_fact(PendingUpgrades), security_only)
    if not packages:
        host.noop("no pending " + ("security " if security_only else "") + "upgrade")
        return
    yield StringCommand(
        "sh",
        "-c",
        shlex.quote(
            "DEBIAN_FRONTEND=noninteractive apt-get install --only-upgrade -y -q -o Dpkg::Options::=--force-confold "
            "-o Dpkg::Options::=--force-confdef " + " ".join(shlex.quote(p) for p in packages)
        ),
    )
