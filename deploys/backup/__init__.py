"""Backups on every host: configuration directories, and on database servers every pg_auth
database (``pg_dump -Fc``) and the roles, encrypted with a key from the vault, checksummed, made by
a systemd timer and kept ``backup_retention_days``. What it holds, each component declares
(``Component.backup``): the backup names none of them. ``hxinfra backup run|list|verify`` and
``hxinfra restore`` drive the host's ``hx-backup`` program; copies go off the host to the controller.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import systemd

from deploys.backup.config import DEFAULTS, PROGRAM, REQUIRED, check_data, desired_config, health, plan
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "backup",
    DEFAULTS,
    required=REQUIRED,
    groups=("backup_clients",),
    check=check_data,
    plan=plan,
    health=health,
    tags=("packages", "config", "service"),
    programs={"backup": PROGRAM},
    ansible={"backup_retention_days": "backup_retention_days"},
)


@deploy("Backups", data_defaults=DEFAULTS)
def backup() -> None:
    """Install the backup program, its key and its timer; the timer makes the backups."""
    data = component_data(COMPONENT, host.data)
    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install gnupg for the backups' encryption", packages=["gnupg"], update=True, cache_time=24 * 3600
        )
    config = None
    if step(COMPONENT, host.data, "config"):
        system.directory(
            name="Create the backup directory (0700 root)",
            path=data["backup_dir"],
            mode="0700",
            user="root",
            group="root",
        )
        config = config_set(
            name="Write the backup key, the hx-backup program and its timer, the program checked by bash -n",
            items=desired_config(data, host.data),
            validate="bash -n /usr/local/sbin/hx-backup",
        )
    if step(COMPONENT, host.data, "service"):
        systemd.daemon_reload(
            name="Reload systemd after a unit change", _if=config.did_change if config else lambda: False
        )
        system.service(name="Start and enable hx-backup.timer", service="hx-backup.timer", running=True, enabled=True)
