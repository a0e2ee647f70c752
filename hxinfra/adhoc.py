"""Ad-hoc work on hosts (the counterpart of ``ansible -m ping|shell|fetch|service|setup``): one
connection per host through pyinfra's API, per-host results with exit codes, nothing written to
the hosts but what the command does.

The connection data comes from the environment as for a deploy (vault values decrypted for the
connection keys only); host keys are checked as the environment says (strict).
"""

from __future__ import annotations

import functools
import importlib
import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra.api import Config, Inventory, State, StringCommand
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError

from hxinfra import guard
from hxinfra.errors import HxError
from hxinfra.inventory import Environment
from hxinfra.secrets import reveal

RC_MARK = "hxinfra-rc="


@dataclass
class HostResult:
    host: str
    reachable: bool = True
    rc: int = 0
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    value: Any = None  # a fact's value, or the fetched file's path

    @property
    def ok(self) -> bool:
        return self.reachable and self.rc == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "reachable": self.reachable,
            "rc": self.rc,
            "ok": self.ok,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "value": self.value,
        }


def inside(base: Path, *parts: str) -> Path:
    """``base/parts...`` on the controller, refused unless it stays inside ``base`` (resolved: no
    ``..``, no absolute part, no link out). Every controller path built from what a host or the data
    says goes through here."""
    for part in parts:
        if not part or part.startswith("/") or any(p in ("..", ".") for p in Path(part).parts) or "\0" in part:
            raise HxError(f"refusing a controller path from {part!r}: not a relative name inside {base}")
    target = base.joinpath(*parts)
    root = base.resolve()
    resolved = target.resolve()
    if resolved != root and root not in resolved.parents:
        raise HxError(f"refusing to write {target}: it resolves outside {base}")
    return target


@functools.cache
def _quiet_paramiko() -> None:
    """paramiko logs a failed handshake with its traceback to stderr when nobody configured logging;
    the result says which host was unreachable, once, as a line (HostResult.reachable). Set once
    per process, however many sessions it opens."""
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    logging.getLogger("paramiko").propagate = False


class Session:
    """Connected hosts of an environment (``with Session(env, hosts) as s: s.run(...)``)."""

    def __init__(
        self, env: Environment, hosts: Iterable[str], *, change: str | None = None, confirm: guard.Confirm = None
    ) -> None:
        """``change``: what the session does to the hosts (``run a command``), None for one that only
        reads; a changing session of a protected environment needs ``confirm`` (:mod:`hxinfra.guard`)."""
        if change is not None:
            guard.require(env, confirm, change)
        self.names = list(hosts)
        entries = []
        for name in self.names:
            data = env.host_data(name)
            # the connector needs real strings: decrypt the connection keys (and only those)
            data.update({k: reveal(v) for k, v in data.items() if k.startswith(("ssh_", "_"))})
            entries.append((name, data))
        self.state = State(Inventory((entries, {})), Config())  # type: ignore[no-untyped-call]  # pyinfra's  # type: ignore[no-untyped-call]  # pyinfra's

    def __enter__(self) -> Session:
        _quiet_paramiko()
        try:
            connect_all(self.state)
        except PyinfraError as e:
            if "No hosts remaining" not in str(e):
                raise HxError(f"cannot connect: {e}") from None
            # no host answered: each is reported unreachable, as one host alone would be
        return self

    def __exit__(self, *exc: object) -> None:
        disconnect_all(self.state)

    def _each(self) -> list[tuple[str, Any]]:
        active = {h.name: h for h in self.state.inventory.get_active_hosts()}
        return [(name, active.get(name)) for name in self.names]

    def run(self, command: str, become: bool = False) -> list[HostResult]:
        """``command`` in ``sh -c`` on every host; its exit code is reported, not turned into a failure."""
        return self.run_each({name: command for name in self.names}, become)

    def run_each(self, commands: dict[str, str], become: bool | None = False) -> list[HostResult]:
        """Each named host's own command, in session order (``become=None``: as its data's ``_sudo`` says)."""
        results = []
        for name, host in self._each():
            if name not in commands:
                continue
            if host is None:
                results.append(HostResult(name, reachable=False, rc=-1))
                continue
            # in a subshell: an ``exit`` in the command ends it, and its code is still reported
            script = f"(\n{commands[name]}\n)\nprintf '\\n{RC_MARK}%s\\n' \"$?\""
            sudo = bool(host.data.get("_sudo")) if become is None else become
            _ok, output = host.run_shell_command(StringCommand("sh", "-c", shlex.quote(script)), _sudo=sudo)
            lines = list(output.stdout_lines)
            rc = -1
            if lines and lines[-1].startswith(RC_MARK):
                rc = int(lines.pop()[len(RC_MARK) :])
                if lines and lines[-1] == "":
                    lines.pop()
            results.append(HostResult(name, rc=rc, stdout=lines, stderr=list(output.stderr_lines)))
        return results

    def run_on(self, name: str, command: str) -> HostResult:
        """``command`` on one host of the session (as its data's ``_sudo`` says)."""
        return self.run_each({name: command}, become=None)[0]

    def fetch_one(self, name: str, src: str, target: Path) -> Path | None:
        """One file from one host to ``target`` (None when it could not be copied)."""
        host = dict(self._each()).get(name)
        if host is None:
            return None
        if target.is_symlink():  # a link left there must not be written through
            raise HxError(f"{target}: a symbolic link; refusing to write through it")
        target.parent.mkdir(parents=True, exist_ok=True)
        ok = host.get_file(src, str(target), _sudo=bool(host.data.get("_sudo")))
        return target if ok else None

    def put_one(self, name: str, src: Path, dest: str) -> bool:
        """One local file to one host (written with the connection's user, or root with ``_sudo``)."""
        host = dict(self._each()).get(name)
        if host is None:
            return False
        return bool(host.put_file(str(src), dest, _sudo=bool(host.data.get("_sudo"))))

    def fact(self, spec: str) -> list[HostResult]:
        """A pyinfra fact by name (``server.Os``, ``files.File path=/etc/hosts``)."""
        name, *args = spec.split()
        module, _, cls_name = name.rpartition(".")
        try:
            fact_cls = getattr(importlib.import_module(f"pyinfra.facts.{module}"), cls_name)
        except (ImportError, AttributeError, ValueError):
            raise HxError(f"unknown fact {name!r} (e.g. server.Os, server.Hostname, files.File)") from None
        kwargs = dict(a.split("=", 1) for a in args if "=" in a)
        results = []
        for host_name, host in self._each():
            if host is None:
                results.append(HostResult(host_name, reachable=False, rc=-1))
                continue
            results.append(HostResult(host_name, value=host.get_fact(fact_cls, **kwargs)))
        return results

    def fetch(self, src: str, dest: Path, become: bool = False) -> list[HostResult]:
        """``src`` from every host to ``dest/<host>/<src>`` (Ansible's fetch layout)."""
        if not src.startswith("/") or "/../" in f"{src}/":
            raise HxError(f"fetch: {src!r} must be an absolute path without '..'")
        results = []
        for name, host in self._each():
            if host is None:
                results.append(HostResult(name, reachable=False, rc=-1))
                continue
            target = inside(dest, name, src.lstrip("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            ok = host.get_file(src, str(target), _sudo=become)
            results.append(HostResult(name, rc=0 if ok else 1, value=str(target) if ok else None))
        return results
