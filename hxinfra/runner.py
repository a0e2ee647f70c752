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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from hxinfra.datafiles import load_yaml_mapping
from hxinfra.errors import HxError
from hxinfra.inventory import EXTRA_VARS_ENV, Environment, load_environment


def project_root(start: Path | None = None) -> Path:
    """``HXINFRA_PROJECT``, else the nearest directory (upwards) with inventories/ and deploys/."""
    env = os.environ.get("HXINFRA_PROJECT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "inventories").is_dir() and (candidate / "deploys").is_dir():
            return candidate
    raise HxError("not inside an hxinfra project (no inventories/ and deploys/ here or above); set HXINFRA_PROJECT")


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


def parse_extra_vars(values: Iterable[str]) -> dict[str, Any]:
    """``-e key=value`` (value parsed as a YAML scalar) and ``-e @file.yml``, later wins."""
    out: dict[str, Any] = {}
    for raw in values:
        if raw.startswith("@"):
            out.update(load_yaml_mapping(Path(raw[1:])))
            continue
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise HxError(f"extra var {raw!r} is not key=value or @file.yml")
        try:
            out[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


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
        dst.write(line)
        dst.flush()


def run_deploy(
    root: Path,
    env_name: str,
    deploy: str,
    *,
    check: bool = False,
    diff: bool = False,
    limit: Iterable[str] = (),
    extra_vars: Mapping[str, Any] | None = None,
    log: IO[str] | None = None,
) -> DeployReport:
    """Validate the inventory, run pyinfra on it and return a per-host report."""
    inv = inventory_file(root, env_name)
    dep = deploy_file(root, deploy)
    extra_vars = dict(extra_vars or {})
    child_env = {**os.environ, EXTRA_VARS_ENV: json.dumps(extra_vars)}
    # validate in-process first, with the same extra vars: a clear error before anything connects
    env = load_environment(inv, extra_vars=extra_vars)
    if not env.hosts:
        raise HxError(f"environment {env_name} has no hosts" + (" (is the lab up?)" if env_name == "lab" else ""))
    cmd = [sys.executable, "-m", "pyinfra", str(inv), str(dep), "--json"]
    cmd += ["--dry"] if check else ["-y"]
    if diff:
        cmd.append("--diff")
    for pattern in limit:
        cmd += ["--limit", pattern]
    log = log or sys.stderr
    proc = subprocess.Popen(
        cmd, cwd=root, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    pump = threading.Thread(target=_pump, args=(proc.stderr, log), daemon=True)
    pump.start()
    out = proc.stdout.read()
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
