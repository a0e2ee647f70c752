"""Run a deploy through the real pyinfra CLI and summarise what happened per host.

``hxinfra deploy`` drives ``python -m pyinfra`` rather than the API: the CLI prepares hosts
in parallel and identifies operations by source line, so a deploy behaves exactly as it does
under the plain ``pyinfra`` command (see the API-mode op-merging trap in pyinfra 3).
The inventory is loaded and validated here first, so bad data fails before any connection.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hxinfra.datafiles import absolute_extra_vars, parse_extra_vars
from hxinfra.errors import HxError
from hxinfra.inventory import EXTRA_VARS_ENV, Environment, load_environment
from hxinfra.vault import PASSWORDS_FD_ENV, Keyring, default_keyring, iter_vaulted, redact, set_default_keyring


def inventory_file(root: Path, env: str) -> Path:
    path = root / "inventories" / f"{env}.py"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "inventories").glob("*.py") if not p.stem.startswith("_"))
        raise HxError(f"unknown environment {env!r} (known: {', '.join(known)})")
    return path


def deploy_file(root: Path, deploy: str) -> Path:
    """A deploy name (``site``, ``nginx``) or a path to a deploy file."""
    path = Path(deploy)
    if path.suffix == ".py" and path.is_file():
        return path.resolve()
    path = root / "deploys" / f"{deploy}.py"
    if not path.is_file() or deploy.startswith("_"):
        known = sorted(p.stem for p in (root / "deploys").glob("*.py") if not p.stem.startswith("_"))
        raise HxError(f"unknown deploy {deploy!r} (known: {', '.join(known)})")
    return path


@dataclass
class HostReport:
    name: str
    changed: int = 0
    ok: int = 0
    failed: int = 0
    status: str = "ok"  # ok | changed | failed | pending (check mode with changes)

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.name, "status": self.status, "changed": self.changed, "ok": self.ok, "failed": self.failed}


@dataclass
class DeployReport:
    returncode: int
    check: bool
    hosts: dict[str, HostReport] = field(default_factory=dict)
    operations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts.values())

    @property
    def failed(self) -> bool:
        return self.returncode != 0 or any(h.status == "failed" for h in self.hosts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "failed": self.failed,
            "changed": self.changed,
            "hosts": [h.as_dict() for h in self.hosts.values()],
            "operations": self.operations,
        }


def _summarise(env_hosts: Iterable[str], raw: Mapping[str, Any], check: bool, rc: int) -> DeployReport:
    report = DeployReport(rc, check, {h: HostReport(h) for h in env_hosts})
    if check:
        for op in raw.get("plan") or []:
            changed = set(op.get("hosts_with_change", []))
            report.operations.append({"name": op["name"], "changes": sorted(changed)})
            for name in changed:
                report.hosts.setdefault(name, HostReport(name)).changed += 1
        for h in report.hosts.values():
            h.status = "pending" if h.changed else "ok"
    else:
        for op in (raw.get("results") or {}).get("operations", []):
            report.operations.append(
                {"name": op["name"], "changed": op["success"], "ok": op["no_change"], "failed": op["error"]}
            )
            for key, attr in (("success", "changed"), ("no_change", "ok"), ("error", "failed")):
                for name in op.get(key, []):
                    hr = report.hosts.setdefault(name, HostReport(name))
                    setattr(hr, attr, getattr(hr, attr) + 1)
        for h in report.hosts.values():
            h.status = "failed" if h.failed else ("changed" if h.changed else "ok")
    if rc != 0:  # hosts that never ran (unreachable) appear in no operation
        for h in report.hosts.values():
            if h.changed == h.ok == h.failed == 0 and not check:
                h.status = "failed"
    return report


def _pump(src: IO[str], dst: IO[str]) -> None:
    for line in src:
        dst.write(redact(line))
        dst.flush()


def _prepare_secrets(env: Environment, keyring: Keyring) -> dict[str, str]:
    """Decrypt every vaulted value the run can use, here, before anything connects.

    A wrong password fails now with one line; every plaintext is registered so the child's
    output is redacted on its way through; the child gets the passwords through a pipe (never
    argv, environment or a file). Returns the environment variables to add for the child.
    """
    vaulted = [v for name in env.hosts for v in iter_vaulted(env.host_data(name))]
    for value in vaulted:
        value.reveal(keyring)
    if not vaulted and not keyring.resolved:
        return {}
    return {PASSWORDS_FD_ENV: str(keyring.to_pipe())}


def run_deploy(
    root: Path,
    env_name: str,
    deploy: str,
    *,
    check: bool = False,
    diff: bool = False,
    limit: Iterable[str] = (),
    extra_args: Sequence[str] = (),
    keyring: Keyring | None = None,
    verbosity: int = 0,
    log: IO[str] | None = None,
) -> DeployReport:
    """Validate the inventory, run pyinfra on it and return a per-host report.

    ``extra_args`` are ``-e`` arguments (``key=value``, ``@file.yml``); ``keyring`` holds the
    vault passwords (the process default when ``None``).
    """
    keyring = keyring or default_keyring()
    set_default_keyring(keyring)
    extra_args = absolute_extra_vars(extra_args)
    extra_vars = parse_extra_vars(extra_args)
    inv = inventory_file(root, env_name)
    dep = deploy_file(root, deploy)
    # validate in-process first, with the same extra vars: a clear error before anything connects
    env = load_environment(inv, extra_vars=extra_vars)
    if not env.hosts:
        raise HxError(f"environment {env_name} has no hosts" + (" (is the lab up?)" if env_name == "lab" else ""))
    child_env = {k: v for k, v in os.environ.items() if k != PASSWORDS_FD_ENV}
    child_env[EXTRA_VARS_ENV] = json.dumps(extra_args)
    child_env.update(_prepare_secrets(env, keyring))
    pass_fds = tuple(int(child_env[PASSWORDS_FD_ENV]) for _ in [0] if PASSWORDS_FD_ENV in child_env)
    cmd = [sys.executable, "-m", "pyinfra", str(inv), str(dep), "--json"]
    cmd += ["--dry"] if check else ["-y"]
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * min(verbosity, 3))
    for pattern in limit:
        cmd += ["--limit", pattern]
    log = log or sys.stderr
    try:
        proc = subprocess.Popen(
            cmd, cwd=root, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, pass_fds=pass_fds,
        )  # fmt: skip
    finally:
        for fd in pass_fds:
            os.close(fd)
    assert proc.stdout is not None and proc.stderr is not None
    pump = threading.Thread(target=_pump, args=(proc.stderr, log), daemon=True)
    pump.start()
    out = redact(proc.stdout.read())
    rc = proc.wait()
    pump.join()
    try:
        raw = json.loads(out) if out.strip() else {}
    except ValueError:
        raw = {}
    return _summarise(select_hosts(env, limit), raw, check, rc)


def select_hosts(env: Environment, limit: Iterable[str]) -> list[str]:
    """Hosts that pyinfra's ``--limit`` selects: group names or globs on host names, a union."""
    patterns = list(limit)
    if not patterns:
        return list(env.hosts)
    groups = env.groups
    chosen: set[str] = set()
    for p in patterns:
        chosen.update(groups.get(p, []))
        chosen.update(h for h in env.hosts if fnmatch.fnmatch(h, p))
    return [h for h in env.hosts if h in chosen]
