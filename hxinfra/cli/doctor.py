"""``hxinfra doctor``: is an environment ready for its first (or next) deploy? Every check that can be
made before one, each finding with its fix; exit 0 ready, 1 with the list otherwise."""

from __future__ import annotations

import json
import sys

import click

from hxinfra.cli.common import ENV_OPTION, _load, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.doctor import doctor, unloadable
from hxinfra.errors import InventoryError
from hxinfra.inventory import select_hosts
from hxinfra.secrets import Keyring, redact


@click.command("doctor")
@ENV_OPTION
@click.option("--limit", "-l", multiple=True, metavar="PATTERN", help="Only these hosts (Ansible pattern).")
@click.option(
    "--offline",
    is_flag=True,
    envvar="HXINFRA_OFFLINE",
    show_envvar=True,
    help="Contact no host: skip the SSH login and sudo checks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON to stdout.")
@vault_options()
def doctor_cmd(env_name: str, limit: tuple[str, ...], offline: bool, as_json: bool, keyring: Keyring) -> None:
    """Check ENV before a deploy: vault files and references (with the given passwords), placeholders
    and required values, recorded SSH host keys, what the components declare (unpinned CA anchors,
    certificates ending within 30 days), SSH logins and sudo (not with --offline), the controller's tools.

    \b
    Exit codes: 0 ready, 1 not ready (each finding with the command that fixes it), 2 usage error.
    """
    try:
        env = _load(env_name)
    except InventoryError as e:  # required keys without values, malformed data: the list, not a crash
        report = unloadable(env_name, e)
    else:
        hosts = select_hosts(env, limit)
        if not offline:
            click.echo(f"doctor: logging in to {len(hosts)} host(s) of {env_name}...", err=True)
        report = doctor(env, hosts, offline=offline)
    if as_json:
        echo_json(redact(json.dumps(report.as_dict(), indent=2)))
    else:
        _print(report)
    sys.exit(0 if report.ready else 1)


def _print(report) -> None:  # type: ignore[no-untyped-def]
    def echo(text: str = "", **style: object) -> None:
        click.echo(click.style(redact(text), **style) if style else redact(text), err=True)  # type: ignore[arg-type]

    skipped = f" (skipped: {', '.join(report.skipped)})" if report.skipped else ""
    echo(f"doctor {report.environment}: {len(report.hosts)} host(s); checked {', '.join(report.checked)}{skipped}")
    for finding, hosts in report.findings:
        where = f"  [{_hosts(hosts)}]" if hosts else ""
        echo(f"  ✗ {finding.check:<12} {finding.problem}{where}", fg="red")
        echo(f"    {'':<12} fix: {finding.fix}")
    tools = ", ".join(f"{k} {v}" for k, v in report.controller.items())
    echo(f"controller: {tools}")
    if report.ready:
        echo(f"{report.environment} is ready", fg="green")
    else:
        echo(f"{report.environment} is not ready: {len(report.findings)} finding(s)", fg="red", bold=True)


def _hosts(hosts: list[str]) -> str:
    return ", ".join(hosts[:4]) + (f" and {len(hosts) - 4} more" if len(hosts) > 4 else "")
