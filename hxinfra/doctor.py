"""What stands between an environment and its first deploy, found before anything changes.

``hxinfra doctor`` runs every check that can be made without deploying: the vault (files that the
given passwords cannot open, ``{{ vault_... }}`` references that nothing defines, and which hosts need
them), placeholders and required keys without a value, each host's recorded SSH host key, what the
components declare of themselves (``Component.readiness``: an unpinned CA anchor, a certificate close to
its end), and, unless offline, an SSH login to each host with the inventory's own credentials and
``sudo -n``, and the controller's own tools. Each finding carries the command that fixes it.

The engine names no component: it reads the components' keys and declarations.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from hxinfra.components import Finding, declared
from hxinfra.inventory import FILL_IN_PREFIX, SEALED_KEY, Environment
from hxinfra.known_hosts import FILE_KEY, entry_name, read_known
from hxinfra.secrets import Sealed, iter_vaulted

CHECKS = ("vault", "required", "known-hosts", "components", "ssh", "controller")
MIN_PYTHON = (3, 11)


@dataclass
class Report:
    """The doctor's answer: every finding (identical ones merged, with the hosts they concern) and
    what was checked or skipped."""

    environment: str
    hosts: list[str]
    findings: list[tuple[Finding, list[str]]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    controller: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.findings

    def add(self, finding: Finding, host: str | None = None) -> None:
        for known, hosts in self.findings:
            if known == finding:
                if host and host not in hosts:
                    hosts.append(host)
                return
        self.findings.append((finding, [host] if host else []))

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "ready": self.ready,
            "hosts": self.hosts,
            "checked": self.checked,
            "skipped": self.skipped,
            "controller": self.controller,
            "findings": [
                {"check": f.check, "problem": f.problem, "fix": f.fix, "hosts": hosts} for f, hosts in self.findings
            ],
        }


def _read_keys(env: Environment, groups: Iterable[str]) -> set[str]:
    """The keys a host's deploy reads: those of every component it runs."""
    wanted = set(groups)
    return {k for c in env.components if c.applies_to(wanted) for k in c.all_keys()}


def check_data(env: Environment, report: Report) -> None:
    """Vault files, vault references, placeholders and required values, from the data alone."""
    vault_file = f"inventories/{env.name}/group_vars/all/vault.yml"
    for name in report.hosts:
        data = env.host_data(name)
        groups = env.host_groups(env.host(name))
        for reason in data.get(SEALED_KEY) or []:
            report.add(
                Finding(
                    "vault",
                    f"a vault file cannot be opened with the given passwords: {reason}",
                    f"hxinfra doctor --env {env.name} --vault-password-file FILE (or --ask-vault-pass, --vault-id)",
                ),
                name,
            )
        keys = _read_keys(env, groups)
        for key in sorted(keys):
            value = data.get(key)
            for sealed in (v for v in iter_vaulted(value) if isinstance(v, Sealed)):
                if sealed.source == "missing":
                    ref = sealed.reason.split(" ", 1)[0]
                    report.add(
                        Finding(
                            "vault",
                            f"{key} references {ref}, which the vault does not hold",
                            f"hxinfra vault edit {vault_file}   # add {ref}",
                        ),
                        name,
                    )
                elif sealed.source == "placeholder":
                    report.add(
                        Finding(
                            "required",
                            f"{key} is still a placeholder ({{{{ {FILL_IN_PREFIX}{key} }}}})",
                            f"edit inventories/{env.name}/group_vars/all.yml   # set {key}",
                        ),
                        name,
                    )
    report.checked += ["vault", "required"]


def check_known_hosts(env: Environment, report: Report) -> None:
    """Every host has a recorded key in its environment's known_hosts (they are checked strictly)."""
    for name in report.hosts:
        data = env.host_data(name)
        path = data.get(FILE_KEY)
        address = str(data.get("ssh_hostname") or name)
        port = int(data.get("ssh_port") or 22)
        if not path:
            continue
        from pathlib import Path

        known = read_known(Path(str(path)))
        if not known.get(entry_name(address, port)):
            report.add(
                Finding(
                    "known-hosts",
                    f"no recorded SSH host key for {entry_name(address, port)} in {_shown(env, str(path))}",
                    f"hxinfra known-hosts scan --env {env.name} --limit {name} --record",
                ),
                name,
            )
    report.checked.append("known-hosts")


def check_components(env: Environment, report: Report) -> None:
    """What each component a host runs declares of its readiness (``Component.readiness``)."""
    for name in report.hosts:
        groups = env.host_groups(env.host(name))
        for _comp, found in declared("readiness", env.host_data(name), name, groups, env.components):
            for finding in found:
                report.add(finding, name)
    report.checked.append("components")


def ssh_command(data: Any, name: str) -> list[str] | None:
    """The ssh client's command that logs in as the inventory says and runs ``sudo -n true`` (``true``
    as root); ``None`` for a host that logs in with a password (checked by the deploy itself)."""
    if data.get("ssh_password"):
        return None
    user = str(data.get("ssh_user") or "root")
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes"]
    if data.get(FILE_KEY):
        cmd += ["-o", f"UserKnownHostsFile={data[FILE_KEY]}"]
    if data.get("ssh_key"):
        cmd += ["-o", "IdentitiesOnly=yes", "-i", str(data["ssh_key"])]
    cmd += ["-p", str(int(data.get("ssh_port") or 22)), "-l", user, str(data.get("ssh_hostname") or name)]
    return [*cmd, "true" if user == "root" else "sudo -n true"]


def check_ssh(env: Environment, report: Report, timeout: int = 30) -> None:
    """Log in to each host as a deploy would, and sudo without a password (in parallel)."""
    if not shutil.which("ssh"):
        report.skipped.append("ssh")
        return

    def one(name: str) -> tuple[str, Finding | None]:
        data = env.host_data(name)
        cmd = ssh_command(data, name)
        if cmd is None:
            return name, None
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return name, Finding("ssh", f"no answer over SSH in {timeout} s", "check the host is up and reachable")
        if r.returncode == 0:
            return name, None
        err = (r.stderr.strip().splitlines() or ["(no message)"])[-1][:200]
        user = data.get("ssh_user") or "root"
        if r.returncode == 1 and "sudo" in r.stderr:
            return name, Finding("sudo", f"{user} cannot sudo without a password: {err}", "give it NOPASSWD sudo")
        if "Host key verification failed" in r.stderr or "REMOTE HOST IDENTIFICATION" in r.stderr:
            fix = f"hxinfra known-hosts scan --env {env.name} --limit {name}"
            return name, Finding("ssh", f"its SSH host key is not the recorded one: {err}", fix)
        return name, Finding("ssh", f"cannot log in as {user}: {err}", "check sshd, the address and the key")

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(report.hosts)))) as pool:
        for name, finding in pool.map(one, report.hosts):
            if finding is not None:
                report.add(finding, name)
    report.checked.append("ssh")


def check_controller(report: Report) -> None:
    """The controller's own tools: Python, pyinfra, the ssh client and ssh-keyscan."""
    report.controller["python"] = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        report.add(Finding("controller", f"Python {report.controller['python']} is older than 3.11", "make install"))
    for package in ("pyinfra", "hxinfra"):
        try:
            report.controller[package] = version(package)
        except PackageNotFoundError:
            report.add(Finding("controller", f"{package} is not installed", "make install"))
    for tool in ("ssh", "ssh-keyscan"):
        path = shutil.which(tool)
        if path is None:
            report.add(Finding("controller", f"{tool} is not on PATH", "apt-get install openssh-client"))
            continue
        r = subprocess.run([tool, "-V"], capture_output=True, text=True) if tool == "ssh" else None
        report.controller[tool] = (r.stderr.strip() if r is not None else path) or path
    report.checked.append("controller")


def unloadable(env_name: str, error: Exception) -> Report:
    """The report of an environment whose data does not load (a required key without a value, a
    malformed file): each problem the inventory names, as one finding."""
    report = Report(env_name, [])
    for line in str(error).splitlines()[1:] or [str(error)]:
        report.add(Finding("inventory", line.strip(), "fix the file and key it names"))
    report.checked.append("inventory")
    check_controller(report)
    return report


def doctor(env: Environment, hosts: Sequence[str], offline: bool = False) -> Report:
    """Every check, on ``hosts`` of ``env``; with ``offline`` no host is contacted."""
    report = Report(env.name, list(hosts))
    check_data(env, report)
    check_known_hosts(env, report)
    check_components(env, report)
    if offline:
        report.skipped.append("ssh")
    else:
        check_ssh(env, report)
    check_controller(report)
    return report


def _shown(env: Environment, path: str) -> str:
    """A path of the project as the operator knows it (relative to the inventories' parent)."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(env.dir.parent))
    except ValueError:
        return path
