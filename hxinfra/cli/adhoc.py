"""Ad-hoc verbs: ``hxinfra ping|run|facts|service|fetch`` (Ansible's ad-hoc ``-m ping``, ``shell``,
``setup``, ``service`` and ``fetch``), with the same patterns, vault and ``--json`` as ``deploy``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from hxinfra import guard
from hxinfra.adhoc import HostResult, Session
from hxinfra.cli.common import ENV_OPTION, YES_OPTION, _load, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.inventory import select_hosts
from hxinfra.patterns import batches, parse_serial
from hxinfra.secrets import Keyring, default_keyring, mask, redact

SERIAL = click.option("--serial", envvar="HXINFRA_SERIAL", metavar="N|N%|1,5,25%", help="Hosts in batches.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print the results as JSON to stdout.")
BECOME = click.option("--become", "-b", is_flag=True, help="Run as root through sudo (Ansible's --become).")


def _results(
    env_name: str, pattern: str, serial: str | None, work: Any, change: str | None = None, yes: bool = False
) -> list[HostResult]:
    """``work`` on the hosts of ``pattern``, batch by batch. A ``change`` (what it does to the hosts)
    is confirmed on a protected environment before hosts are selected or anything connects."""
    env = _load(env_name, keyring=default_keyring())
    confirmed = guard.settle(env, yes, change) if change else None
    hosts = select_hosts(env, [pattern])
    out: list[HostResult] = []
    for batch in batches(hosts, parse_serial(serial)):
        with Session(env, batch, change=change, confirm=confirmed) as session:
            out += work(session)
    return out


def _report(results: list[HostResult], as_json: bool, show: str = "output") -> None:
    """Per-host lines (or JSON), redacted; exit 1 when a host was unreachable or a command failed."""
    if as_json:
        echo_json(redact(json.dumps([mask(r.as_dict()) for r in results], indent=2, default=str)))
    else:
        for r in results:
            state = "UNREACHABLE" if not r.reachable else ("ok" if r.ok else f"rc={r.rc}")
            colour = "green" if r.ok else "red"
            click.echo(click.style(f"{r.host} | {state}", fg=colour))
            if show == "value" and r.value is not None:
                echo_json(redact(json.dumps(mask(r.value), indent=2, default=str)))
            for line in r.stdout:
                click.echo(redact(f"  {line}"))
            for line in r.stderr:
                click.echo(redact(f"  {line}"), err=True)
    bad = [r.host for r in results if not r.ok]
    if bad:
        click.echo(f"hxinfra: failed or unreachable: {', '.join(bad)}", err=True)
        sys.exit(1)


@click.command()
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@SERIAL
@JSON
@vault_options()
def ping(env_name: str, pattern: str, serial: str | None, as_json: bool, keyring: Keyring) -> None:
    """Connect to each host and run a no-op (``ansible all -m ping``); exit 1 if one is unreachable."""
    _report(_results(env_name, pattern, serial, lambda s: s.run("true")), as_json)


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("pattern")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@ENV_OPTION
@BECOME
@SERIAL
@YES_OPTION
@JSON
@vault_options()
def run_cmd(
    pattern: str,
    command: tuple[str, ...],
    env_name: str,
    become: bool,
    serial: str | None,
    yes: bool,
    as_json: bool,
    keyring: Keyring,
) -> None:
    """Run COMMAND (after ``--``) on the hosts of PATTERN: per-host output and exit code
    (``ansible PATTERN -m shell -a COMMAND``). A command may change anything: on production and
    staging it is confirmed first."""
    line = " ".join(command)
    _report(
        _results(env_name, pattern, serial, lambda s: s.run(line, become=become), change="run a command", yes=yes),
        as_json,
    )


@click.command()
@click.argument("pattern")
@click.argument("fact", nargs=-1, required=True)
@ENV_OPTION
@JSON
@vault_options()
def facts(pattern: str, fact: tuple[str, ...], env_name: str, as_json: bool, keyring: Keyring) -> None:
    """A pyinfra fact of the hosts of PATTERN: ``server.Os``, ``files.File path=/etc/hosts``
    (``ansible PATTERN -m setup``)."""
    _report(_results(env_name, pattern, None, lambda s: s.fact(" ".join(fact))), as_json, show="value")


@click.command()
@click.argument("pattern")
@click.argument("name")
@click.option("--state", type=click.Choice(["started", "stopped", "restarted", "reloaded"]), required=True)
@ENV_OPTION
@SERIAL
@YES_OPTION
@JSON
@vault_options()
def service(
    pattern: str, name: str, state: str, env_name: str, serial: str | None, yes: bool, as_json: bool, keyring: Keyring
) -> None:
    """Start, stop, restart or reload a systemd service on the hosts of PATTERN, as root
    (``ansible PATTERN -m service -a "name=NAME state=STATE" --become``)."""
    verb = {"started": "start", "stopped": "stop", "restarted": "restart", "reloaded": "reload"}[state]
    unit = shlex.quote(name if "." in name else f"{name}.service")
    # the state the unit is in afterwards is the output; a failed systemctl is the host's rc
    command = f"systemctl {verb} {unit} && systemctl show -p ActiveState --value {unit}"
    work = lambda s: s.run(command, become=True)  # noqa: E731 - one line, read where it is used
    _report(_results(env_name, pattern, serial, work, change=f"{verb} {name}", yes=yes), as_json)


@click.command()
@click.argument("pattern")
@click.argument("src")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@ENV_OPTION
@BECOME
@JSON
@vault_options()
def fetch(pattern: str, src: str, dest: Path, env_name: str, become: bool, as_json: bool, keyring: Keyring) -> None:
    """Copy SRC from each host of PATTERN to DEST/<host>/SRC (``ansible PATTERN -m fetch``: log collection)."""
    _report(_results(env_name, pattern, None, lambda s: s.fetch(src, dest, become=become)), as_json, show="value")
