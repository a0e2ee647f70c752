"""Desired state: the paths a component's pure functions return, and the deploy and the offline
plan share. Plain data (no pyinfra): a component's ``config.py`` and the plan import this module,
not the operations that converge it (``hxinfra.ops.config_set``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ManagedFile:
    """A whole file with exact content, owner and mode."""

    path: str
    content: str
    mode: str = "0644"
    user: str = "root"
    group: str = "root"
    sensitive: bool = False  # diffs show that it changed, never its lines

    @property
    def private(self) -> bool:
        """Not readable by others on the host: its bytes must never be, even mid-upload."""
        return not int(self.mode, 8) & 0o004 or self.sensitive


@dataclass(frozen=True)
class ManagedLink:
    """A symlink ``path -> target``."""

    path: str
    target: str


@dataclass(frozen=True)
class Absent:
    """A path that must not exist (file or symlink)."""

    path: str


@dataclass(frozen=True)
class Fetched:
    """A whole file whose content the deploy reads from elsewhere when it runs (a CA's certificate,
    from the CA host): the offline plan cannot show its lines, so it names where they come from and
    the pin they are checked against, and a reviewer still sees every file a deploy will write."""

    path: str
    source: str  # e.g. "the CA certificate of hx-ca-01 (/etc/ssl/hx/ca.crt)"
    pin: str = ""  # the sha256 it must have; "" = not pinned
    mode: str = "0644"
    user: str = "root"
    group: str = "root"


ConfigItem = ManagedFile | ManagedLink | Absent
PlanItem = ConfigItem | Fetched  # what a component's plan lists: its files, and those fetched at deploy time

__all__ = ["Absent", "ConfigItem", "Fetched", "ManagedFile", "ManagedLink", "PlanItem"]
