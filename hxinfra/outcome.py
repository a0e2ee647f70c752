"""What a deploy run did, per host and per operation: the objects the runner returns and the CLI,
the history and drift read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostReport:
    name: str
    changed: int = 0
    ok: int = 0
    failed: int = 0
    # ok | changed | pending (check mode, changes to make) | failed | unreachable | skipped (never started)
    status: str = "ok"
    batch: int = 0
    changes: list[str] = field(default_factory=list)  # names of the operations that changed / would change
    cause: str = ""  # failed or unreachable: the one line that says why (see cause_of)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "status": self.status,
            "changed": self.changed,
            "ok": self.ok,
            "failed": self.failed,
            "batch": self.batch,
            "changes": self.changes,
            **({"cause": self.cause} if self.cause else {}),
        }


@dataclass
class DeployReport:
    returncode: int
    check: bool
    hosts: dict[str, HostReport] = field(default_factory=dict)
    operations: list[dict[str, Any]] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    stopped: str | None = None  # why the rollout stopped before its last batch
    seconds: float = 0.0
    shard: str | None = None  # "K/N" when this run is one shard of a rollout

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts.values())

    @property
    def failed(self) -> bool:
        bad = ("failed", "unreachable", "skipped")
        return self.returncode != 0 or any(h.status in bad for h in self.hosts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "failed": self.failed,
            "changed": self.changed,
            "stopped": self.stopped,
            "shard": self.shard,
            "seconds": round(self.seconds, 1),
            "batches": self.batches,
            "hosts": [h.as_dict() for h in self.hosts.values()],
            "operations": self.operations,
        }
