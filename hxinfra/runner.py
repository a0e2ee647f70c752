"""Run a deploy through the real pyinfra CLI and summarise what happened per host.

``hxinfra deploy`` drives pyinfra's own command line rather than the API: the CLI prepares
hosts in parallel and identifies operations by source line, so a deploy behaves exactly as it
does under the plain ``pyinfra`` command (see the API-mode op-merging trap in pyinfra 3). It
runs in this process, every ``--serial`` batch too: no child start, no second load of the
inventory. The inventory is loaded and validated here first, so bad data fails before any
connection.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from hxinfra import guard
from hxinfra.batch import remember as remember_batched_keys
from hxinfra.errors import HxError
from hxinfra.inventory import Environment, inventory_file, load_environment, reusing, select_hosts
from hxinfra.options import RunOptions
from hxinfra.patterns import batches, exceeds, shard
from hxinfra.runlog import Sink
from hxinfra.secrets import Keyring, VaultError, default_keyring, iter_vaulted, redact, set_default_keyring
from hxinfra.sshlink import watching_links


def deploy_target(root: Path, deploy: str) -> tuple[str, str]:
    """What pyinfra runs for a deploy name, and the name itself.

    A deploy file (``site`` is ``deploys/site.py``, or any path to a ``.py`` file), or a component
    package's ``@deploy`` function (``nginx`` is ``deploys.nginx.nginx``, as the plain pyinfra CLI
    runs it too).
    """
    path = Path(deploy)
    if path.suffix == ".py" and path.is_file():
        return str(path.resolve()), path.stem
    if (root / "deploys" / f"{deploy}.py").is_file() and not deploy.startswith("_") and deploy != "common":
        return str(root / "deploys" / f"{deploy}.py"), deploy
    if deploy.isidentifier() and (root / "deploys" / deploy / "__init__.py").is_file():
        return f"deploys.{deploy}.{deploy}", deploy
    known = sorted(
        [p.stem for p in (root / "deploys").glob("*.py") if not p.stem.startswith("_") and p.stem != "common"]
        + [p.parent.name for p in (root / "deploys").glob("*/__init__.py")]
    )
    raise HxError(f"unknown deploy {deploy!r} (known: {', '.join(known)})")


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


CONNECTED = re.compile(r"\[(?P<host>[^\]\s]+)\]\s+Connected")
# pyinfra's connect errors, "KIND (detail)" right after the host's prefix (a command's output that
# mentions a connection, apt's "Could not connect to" its proxy say, is not one)
UNREACHABLE = re.compile(
    r"\[(?P<host>[^\]\s]+)\]\s+(?:\x1b\[[0-9;]*m)*(Could not connect|Connection error|Authentication error|"
    r"SSH error|SSH host key error|Could not resolve hostname|EOF error) \("
)
HOST_KEY = re.compile(
    r"\[(?P<host>[^\]\s]+)\].*(No host key for \S+ found in known_hosts|Host key for \S+ does not match)"
)


def _summarise(  # noqa: C901 - one branch per kind of pyinfra report entry
    batch_hosts: Iterable[str], raw: Mapping[str, Any] | None, check: bool, rc: int, unreachable: set[str]
) -> DeployReport:
    """The per-host report of one pyinfra run. ``raw`` is its ``--json`` report, ``None`` when that
    could not be read: then every host of the run is failed, never "ok" (a stray ``print()`` in a
    deploy must not turn "changes made" into "no changes" for ``--detailed-exitcode``)."""
    report = DeployReport(rc, check, {h: HostReport(h) for h in batch_hosts})
    if raw is None:
        report.returncode = rc or 1
        for h in report.hosts.values():
            h.status = "unreachable" if h.name in unreachable else "failed"
        return report
    if check:
        for op in raw.get("plan") or []:
            changed = set(op.get("hosts_with_change", []))
            report.operations.append({"name": op["name"], "changes": sorted(changed)})
            for name in changed:
                hr = report.hosts.setdefault(name, HostReport(name))
                hr.changed += 1
                hr.changes.append(op["name"])
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
                    if attr == "changed":
                        hr.changes.append(op["name"])
        for h in report.hosts.values():
            h.status = "failed" if h.failed else ("changed" if h.changed else "ok")
    failed_hosts = set((raw.get("results") or {}).get("failed_hosts", []))
    for h in report.hosts.values():
        if h.name in unreachable:
            h.status = "unreachable"
        elif h.changed == h.ok == h.failed == 0 and (h.name in failed_hosts or rc != 0):
            # no results: pyinfra stops printing them when every host of the run failed
            h.status = "failed"
    return report


def _prepare_secrets(env: Environment, keyring: Keyring, hosts: Sequence[str], deploy: str) -> bool:
    """Decrypt the vault values the deploy reads on the selected hosts, here, before anything connects.

    Only those: a vault value of another component, or of a host outside ``--limit``, is never
    decrypted, and a missing password for its vault id does not stop the run. A vault file the
    selected hosts read that could not be opened is an error now, naming the file and vault id.
    A wrong password fails with one line; every plaintext is registered so pyinfra's output is
    redacted on its way through. True when some value was opened.
    """
    sealed = env.sealed(hosts)
    if sealed:
        raise VaultError("cannot open the vault data of the selected hosts: " + "; ".join(sealed))
    named = [c for c in env.components if c.name == deploy]
    vaulted = []
    for name in hosts:
        data = env.host_data(name)
        groups = env.host_groups(env.host(name))
        if named or deploy == "site":
            readers = named or [c for c in env.components if c.applies_to(groups)]
            keys = {k for c in readers for k in c.all_keys()} | {k for k in data if k.startswith("hx_")}
        else:  # a deploy file of its own may read any key of the host
            keys = set(data)
        vaulted += [v for k in keys if k in data for v in iter_vaulted(data[k])]
    for value in vaulted:
        value.reveal(keyring)
    return bool(vaulted) or keyring.resolved


def run_deploy(
    root: Path,
    env_name: str,
    deploy: str,
    options: RunOptions | None = None,
    *,
    keyring: Keyring | None = None,
    log: Sink | None = None,
    confirm: guard.Confirm = None,
) -> DeployReport:
    """Validate the inventory, run pyinfra on it batch by batch and return a per-host report.

    ``options`` is the run as asked (:meth:`RunOptions.from_cli`): its extra vars and tag selection are
    the top data layer, handed to the environment as they are; ``keyring`` holds the vault passwords
    (the process default when ``None``). With ``options.serial`` the WHOLE deploy runs on one batch of
    hosts after another (Ansible's meaning); a batch whose failure rate is above
    ``options.max_fail_percentage`` stops the rollout and later batches are never started.

    A run that changes a protected environment needs ``confirm``: the environment's name, or a
    function of the loaded environment that returns it (the CLI's prompt); it is settled before
    host selection and before anything connects (:mod:`hxinfra.guard`).
    """
    options = options or RunOptions()
    started = time.monotonic()
    keyring = keyring or default_keyring()
    set_default_keyring(keyring)
    inv = inventory_file(root, env_name)
    dep, deploy_name = deploy_target(root, deploy)
    # validate in-process first, with the run's own top layer: a clear error before anything connects
    env = load_environment(inv, extra_vars=options.data_layer())
    if not env.hosts:
        raise HxError(f"environment {env_name} has no hosts" + (" (is the lab up?)" if env_name == "lab" else ""))
    if not options.check:  # before host selection, before anything connects
        guard.require(env, confirm, f"deploy {deploy_name}")
    options.check_tags(known_tags(env))
    selected = select_hosts(env, options.limit)
    if options.shard is not None:
        selected = shard(selected, *options.shard)
    plan = batches(selected, options.serial)
    _prepare_secrets(env, keyring, selected, deploy_name)
    log = log or sys.stderr
    report = DeployReport(
        0,
        options.check,
        {h: HostReport(h, status="skipped") for h in selected},
        batches=plan,
        shard=options.shard_label,
    )
    if not selected:  # a shard may hold no host of this selection: nothing to do, nothing failed
        log.write(f"shard {report.shard}: no host of the selection falls in it\n")
        report.seconds = time.monotonic() - started
        return report
    for number, batch in enumerate(plan, 1):
        if len(plan) > 1:
            log.write(f"\n== batch {number}/{len(plan)}: {', '.join(batch)}\n")
            log.flush()
        with guard.engine_run(env.name):  # confirmed above, or a check: the deploys' own guard lets it run
            sub = _run_pyinfra(root, env, dep, batch, options, log)
        report.returncode = report.returncode or sub.returncode
        report.operations += [{**op, "batch": number} for op in sub.operations]
        for name, hr in sub.hosts.items():
            hr.batch = number
            report.hosts[name] = hr
        failed = sum(1 for h in batch if report.hosts[h].status in ("failed", "unreachable"))
        if len(plan) > 1:  # progress between batches: hosts done and every failure so far
            done = [h for b in plan[:number] for h in b]
            bad = [h for h in done if report.hosts[h].status in ("failed", "unreachable")]
            log.write(
                f"== progress: {len(done)}/{len(selected)} hosts done, {len(bad)} failed"
                + (f" ({', '.join(bad)})" if bad else "")
                + "\n"
            )
            log.flush()
        if number < len(plan) and exceeds(failed, len(batch), options.max_fail_percentage):
            left = [h for b in plan[number:] for h in b]
            report.stopped = (
                f"batch {number} failed on {failed} of {len(batch)} host(s), above --max-fail-percentage "
                f"{options.max_fail_percentage:g}; never started: {', '.join(left)}"
            )
            break
    report.seconds = time.monotonic() - started
    return report


def load_pyinfra_cli() -> None:
    """Import pyinfra's CLI now, before this process opens any connection: importing it patches the
    standard library for gevent (as ``python -m pyinfra`` does first thing), which must not happen
    in the middle of a command that has already used pyinfra's API (``pki renew`` reads the hosts'
    certificates, then deploys)."""
    import pyinfra_cli  # noqa: F401


class _Output(io.TextIOBase):
    """pyinfra's console output on its way to ``log``: whole lines, secrets redacted, kept for parsing."""

    def __init__(self, log: Sink, seen: list[str]) -> None:
        self.log, self.seen, self.pending = log, seen, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            line = redact(line + "\n")
            self.seen.append(line)
            self.log.write(line)
        if lines:
            self.log.flush()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.write("\n")


@contextlib.contextmanager
def _pyinfra_process_state(root: Path) -> Iterator[None]:
    """What ``python -m pyinfra`` sets up for itself, set up here for one run and put back after.

    CLI mode (operations ordered by source line, as under the plain ``pyinfra`` command), the
    project root as working directory and import root, and pyinfra's log handlers, which its CLI
    adds on every run (kept, they would print each line once per earlier batch).
    """
    import pyinfra
    from pyinfra import logger as pyinfra_logger
    from pyinfra.api.output import set_echo, set_formatter
    from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state

    cwd, path, handlers, was_cli = os.getcwd(), list(sys.path), list(pyinfra_logger.handlers), pyinfra.is_cli
    pyinfra.is_cli = True
    set_formatter(click.style)
    set_echo(click.echo)
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        pyinfra_logger.handlers[:] = handlers
        pyinfra.is_cli = was_cli
        for ctx in (ctx_state, ctx_host, ctx_inventory, ctx_config):
            ctx.reset()


def _run_pyinfra(
    root: Path,
    env: Environment,
    dep: str,
    hosts: list[str],
    options: RunOptions,
    log: Sink,
) -> DeployReport:
    """One run of the pyinfra CLI on exactly ``hosts``, in this process.

    It is pyinfra's own command line (``pyinfra INVENTORY DEPLOY --json``), so a deploy behaves as
    under the plain ``pyinfra`` command; running it here rather than in a child saves the child's
    start, its imports and a second load of the inventory per batch (the environment already
    validated, with its vault values open, is handed over by :func:`reusing`).
    """
    from pyinfra_cli import util as cli_util
    from pyinfra_cli.cli import cli

    args = [str(env.file), dep, "--json", "--dry" if options.check else "-y"]
    args += ["--diff"] if options.diff else []
    args += ["-" + "v" * min(options.verbosity, 3)] if options.verbosity else []
    for name in hosts:
        args += ["--limit", name]
    for path in (str(env.file), dep):  # pyinfra keeps compiled files for the process: read them afresh
        cli_util.PYTHON_CODES.pop(path, None)
    seen: list[str] = []
    stdout, stderr = io.StringIO(), _Output(log, seen)
    rc = 0
    with (
        _pyinfra_process_state(root),
        reusing(env),  # pyinfra's load of the inventory file gets this environment, top layer and all
        watching_links() as links,  # a host that stops answering is lost in seconds, not minutes
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            cli.main(args=args, prog_name="pyinfra", standalone_mode=False)
        except SystemExit as e:  # pyinfra ends every run with sys.exit()
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except click.ClickException as e:  # its errors: a deploy that raised, no hosts left, ...
            e.show(file=stderr)  # type: ignore[arg-type]  # a text stream, as click needs
            rc = e.exit_code or 1
        except click.exceptions.Exit as e:
            rc = e.exit_code
        finally:
            stderr.flush()
            remember_batched_keys()
    out = redact(stdout.getvalue())
    raw = parse_report(out, rc)
    if raw is None and out.strip():
        log.write(
            "hxinfra: pyinfra's report could not be read (did a deploy print to stdout?); "
            "counting every host of this run as failed\n"
        )
    connected = {m["host"] for line in seen if (m := CONNECTED.search(line))}
    unreachable = {h for h in hosts if h not in connected} if rc != 0 else set()
    unreachable |= {m["host"] for line in seen if (m := UNREACHABLE.search(line)) and m["host"] in hosts}
    own: dict[str, str] = {}  # hxinfra's own word on a host: its cause
    for name in sorted(links.lost() & set(hosts)):
        unreachable.add(name)
        own[name] = (
            f"hxinfra: {name}: connection lost during the run (no answer for {links.seconds} s): unreachable; "
            "the other hosts went on. Run again once it answers"
        )
        log.write(own[name] + "\n")
    for name in sorted({m["host"] for line in seen if (m := HOST_KEY.search(line)) and m["host"] in hosts}):
        own[name] = (
            f"hxinfra: {name}: its SSH host key is unknown or changed: unreachable. Check the key with "
            f"`hxinfra known-hosts scan --env ENV --limit {name}` and record it if it is right"
        )
        log.write(own[name] + "\n")
    report = _summarise(hosts, raw, options.check, rc, unreachable)
    for h in report.hosts.values():
        if h.status in ("failed", "unreachable"):
            h.cause = own.get(h.name) or cause_of(h.name, seen)
    return report


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# pyinfra's own summary lines for a failed host: they say that it failed, not why
GENERIC = re.compile(
    r"^(Error: executed \d+ commands?|Error: .*operation.*failed|No changes|Success|Skipped.*|Ready: .*|Connected)$"
)


def cause_of(name: str, seen: Sequence[str]) -> str:
    """The one line that says why host ``name`` failed: hxinfra's own message for it when there is
    one (a lost connection, a validation that restored the previous config), else the last thing
    the host printed before pyinfra's generic "Error: executed N commands"."""
    prefix = f"[{name}]"
    lines = []
    for raw in seen:
        line = ANSI.sub("", raw).strip()
        if line.startswith(prefix):
            text = line[len(prefix) :].strip()
        elif line.startswith(f"hxinfra: {name}: "):
            text = line
        else:
            continue
        if text and not GENERIC.match(text):
            lines.append(text)
    own = [t for t in lines if t.startswith("hxinfra:")]
    cause = (own or lines or [""])[-1]
    return cause if len(cause) <= 300 else cause[:297] + "..."


def parse_report(out: str, rc: int) -> dict[str, Any] | None:
    """pyinfra's ``--json`` report, or ``None`` when it is not one (then nothing may count as success).

    An empty stdout is a report only when pyinfra failed before running anything (rc != 0).
    """
    if not out.strip():
        return {} if rc != 0 else None
    try:
        raw = json.loads(out)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None


def known_tags(env: Environment) -> set[str]:
    """Every tag a step of this environment's components may carry: component names and their tags."""
    return {t for comp in env.components for t in (comp.name, *comp.tags)}
