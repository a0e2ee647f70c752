"""What differs on each host from what the repository says, as data: the findings of one run.

The engine's own operations (``config_set``, ``packages``, ``service``, ``directory``,
``system_user``) work out, for each host, what they would change before they change it. While a
:func:`collecting` block is open (``hxinfra drift``, and every deploy, for the history), each of
them notes that as a :class:`Finding`: a managed path with its diff (masked as every diff is), a
package not installed, a unit not running or not enabled, an account or directory not as wanted.
Operations of other kinds (a component's own) are known by name from the run's report.

A run outside such a block (the plain pyinfra CLI, the deploys as a library) notes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = ("path", "package", "service", "directory", "account", "operation")


@dataclass(frozen=True)
class Finding:
    """One thing on one host that is not as the repository says."""

    kind: str  # one of KINDS
    name: str  # the path, package, unit, account, or the operation's name
    detail: str  # what differs: "content", "owner/mode", "absent", "not installed", "not running"...
    diff: tuple[str, ...] = ()  # a path's unified diff, masked (never a secret)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "detail": self.detail,
            **({"diff": list(self.diff)} if self.diff else {}),
        }


@dataclass
class Findings:
    """Every host's findings of one run, each (kind, name) once (an operation runs twice on a real run)."""

    by_host: dict[str, dict[tuple[str, str], Finding]] = field(default_factory=dict)

    def add(self, host: str, finding: Finding) -> None:
        self.by_host.setdefault(host, {})[(finding.kind, finding.name)] = finding

    def of(self, host: str) -> list[Finding]:
        return list(self.by_host.get(host, {}).values())


_active: Findings | None = None


@contextlib.contextmanager
def collecting() -> Iterator[Findings]:
    """Within: the engine's operations note what they find different."""
    global _active
    previous, _active = _active, Findings()
    try:
        yield _active
    finally:
        _active = previous


def active() -> bool:
    """Whether anyone listens (an operation skips the work of a note, a diff, when nobody does)."""
    return _active is not None


def note(host: str, kind: str, name: str, detail: str, diff: Sequence[str] = ()) -> None:
    """Note one finding of ``host`` (nothing when no :func:`collecting` block is open)."""
    if _active is not None:
        _active.add(host, Finding(kind, name, detail, tuple(line.rstrip("\n") for line in diff)))


def note_op(kind: str, name: str, detail: str, diff: Sequence[str] = ()) -> None:
    """A finding of the operation pyinfra is running, on its host. An operation under ``_if`` (a
    handler: restart after a change) is judged when it runs: in a check its condition is not known,
    and what would trigger it is a finding of its own."""
    from pyinfra import host, state

    arguments: Any = host.current_op_global_arguments or {}
    if not arguments.get("_if") or state.is_executing:
        note(host.name, kind, name, detail, diff)
