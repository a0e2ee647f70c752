"""Backups, desired state: the defaults, and the backup program, its environment and its timer
computed from host data alone.

Every host backs up what its components declare (their configuration; a database server also its
databases and roles). Each backup is a directory ``<backup_dir>/<UTC time>/`` of files encrypted
with a key from the vault (GnuPG, AES-256, authenticated) and a ``SHA256SUMS``; the timer makes
one on schedule and drops those older than ``backup_retention_days``. ``hxinfra backup run``
copies them off the host, to the controller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploys.common import templates_root
from hxinfra.components import Backup, declared
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.render import render, template_context
from hxinfra.validate import DataError, abs_path, collect, one_line

DEFAULTS: dict[str, Any] = {
    # Where the backups are kept on the host (0700 root), and for how many days.
    "backup_dir": "/var/backups/hx",
    "backup_retention_days": 7,
    # Paths archived on every host (those that exist there) besides what its components declare
    # (each component's own configuration: hxinfra.components.Backup).
    "backup_paths": [],
    # When the timer runs (systemd OnCalendar), spread over this many seconds.
    "backup_schedule": "*-*-* 02:30:00",
    "backup_random_delay": 1800,
}

REQUIRED: dict[str, Any] = {
    # The encryption key of the backups (a long random secret, from the vault). Keep it apart from
    # the backups: without it they cannot be read, by anyone.
    "backup_key": str,
}

KEY_FILE = "/etc/hx-backup/key"
PROGRAM = "/usr/local/sbin/hx-backup"
CALENDAR = re.compile(r"[A-Za-z0-9*,.:/ ~-]+")


def contents(host_data: Any) -> Backup:
    """What the host's backups hold, as the components declare it (every component of the registry:
    what does not exist on the host is skipped when the backup runs), in the site's order."""
    declared_ = [found for _component, found in declared("backup", host_data, "")]
    paths = list(dict.fromkeys(p for b in declared_ for p in b.paths))
    databases = list(dict.fromkeys(d for b in declared_ for d in b.databases))
    clusters = [b.cluster for b in declared_ if b.databases] + [b.cluster for b in declared_ if b.cluster]
    return Backup(tuple(paths), tuple(databases), clusters[0] if clusters else {})


def desired_config(data: Mapping[str, Any], host_data: Any = None) -> list[ConfigItem]:
    """The key (0600), the program and its timer. ``host_data``: what the declarations read
    (pyinfra's ``host.data`` in a deploy, else ``data``)."""
    holds = contents(data if host_data is None else host_data)
    cluster = holds.cluster
    context = template_context(
        data,
        {
            "key_file": KEY_FILE,
            "backup_paths": list(dict.fromkeys([*holds.paths, *data["backup_paths"]])),
            "pg_port": int(cluster.get("port") or 0),
            "databases": list(holds.databases),
            "wal_archive": str(cluster.get("wal_archive") or ""),
            "pg_version": str(cluster.get("version") or ""),
            "pg_cluster": str(cluster.get("cluster") or ""),
        },
    )
    return [
        ManagedFile(KEY_FILE, f"{data['backup_key']}\n", mode="0600", sensitive=True),
        ManagedFile(PROGRAM, render(templates_root(), "backup/usr/local/sbin/hx-backup.j2", context), mode="0755"),
        ManagedFile(
            "/etc/systemd/system/hx-backup.service",
            render(templates_root(), "backup/etc/systemd/system/hx-backup.service.j2", context),
        ),
        ManagedFile(
            "/etc/systemd/system/hx-backup.timer",
            render(templates_root(), "backup/etc/systemd/system/hx-backup.timer.j2", context),
        ),
    ]


def _key(value: Any) -> None:
    from hxinfra.secrets import Vaulted

    if value is None or isinstance(value, Vaulted):
        return
    if len(one_line(value, "backup_key")) < 24:
        raise DataError("backup_key: at least 24 characters (a random secret in the vault)")


def _whole(value: Any, what: str, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise DataError(f"{what}: must be a whole number >= {low}")


def _calendar(value: Any) -> None:
    if not CALENDAR.fullmatch(one_line(value, "backup_schedule")):
        raise DataError("backup_schedule: not a systemd calendar expression")


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    return collect(
        data,
        {
            "backup_dir": lambda d: abs_path(d["backup_dir"], "backup_dir"),
            "backup_paths": lambda d: [abs_path(p, "backup_paths") for p in d["backup_paths"]],
            "backup_retention_days": lambda d: _whole(d["backup_retention_days"], "backup_retention_days", 1),
            "backup_random_delay": lambda d: _whole(d["backup_random_delay"], "backup_random_delay", 0),
            "backup_schedule": lambda d: _calendar(d["backup_schedule"]),
            "backup_key": lambda d: _key(d.get("backup_key")),
        },
    )


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    return desired_config(data)


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The timer is active and the newest backup verifies (checksums, decryption)."""
    from hxinfra.health import Check, service_active

    newest = f"if {PROGRAM} list | grep -q .; then {PROGRAM} verify; else echo 'no backup yet'; fi"
    return [service_active("hx-backup.timer", "backup"), Check("the newest backup verifies", newest, "backup")]
