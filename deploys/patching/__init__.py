"""Patching: security updates (all updates when asked), rolled out with ``--serial`` (a batch at a
time, stopped by ``--max-fail-percentage``), a reboot only when an update requires it and
``patching_reboot`` allows it, then the host's health checks must pass. Not part of ``site``:
``hxinfra deploy patching --env production --serial 1``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server
from pyinfra.operations.util import any_changed

from deploys.patching.config import DEFAULTS, check_data, verify_script
from deploys.patching.operations import RebootRequired, upgrades_installed
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.ops import system

COMPONENT = Component("patching", DEFAULTS, check=check_data, tags=("upgrade", "reboot", "verify"))


def _reboot_needed(allowed: bool):  # type: ignore[no-untyped-def]
    def check() -> bool:  # read when the operation runs: after the upgrade
        return allowed and bool(host.get_fact(RebootRequired))

    return check


@deploy("Patching", data_defaults=DEFAULTS)
def patching() -> None:
    """Upgrade, reboot if required and allowed, then verify the host's components' health."""
    from deploys import components
    from hxinfra.health import component_checks

    data = component_data(COMPONENT, host.data)
    changes = []
    if step(COMPONENT, host.data, "upgrade"):
        system.package_lists(name="Refresh the package lists", cache_time=300)
        changes.append(
            upgrades_installed(
                name="Install the pending security upgrades", security_only=data["patching_security_only"]
            )
        )
    if step(COMPONENT, host.data, "reboot"):
        changes.append(
            server.reboot(
                name="Reboot where an update requires it (when allowed)",
                delay=5,
                reboot_timeout=data["patching_reboot_timeout"],
                _if=_reboot_needed(data["patching_reboot"]),
            )
        )
    if step(COMPONENT, host.data, "verify"):
        comps = components()
        merged = {**{k: v for c in comps for k, v in c.defaults.items()}, **host.data.dict()}  # type: ignore[no-untyped-call]  # pyinfra's
        checks = component_checks(comps, host.groups, merged, host.name)
        server.shell(
            name="Check every health check of the host's components passes",
            commands=[verify_script(checks, data["patching_verify_seconds"])],
            _if=[lambda: bool(data["patching_verify_seconds"]), any_changed(*changes)],
        )
