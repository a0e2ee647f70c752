"""``hxinfra logs analyze``: the guide's log analysis, read from each host's journal over the last
hours: error count and the latest errors, SSH authentication failures, disk use; thresholds as
the guide's; a table or ``--json``; exit 1 when a host is over one."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hxinfra.adhoc import Session
from hxinfra.cli.common import ENV_OPTION, _load, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.health import DISKS, disks, integer
from hxinfra.inventory import select_hosts
from hxinfra.secrets import Keyring, redact

AUTH_FAILURE = "Failed (password|publickey)|Invalid user|authentication failure|Connection closed by authenticating"


def analysis_script(hours: int) -> str:
    """key=value lines from the host's journal and disks (one round trip)."""
    since = f"-{int(hours)}h"
    return (
        f"echo errors=$(journalctl -q -p err --since {since} -o cat 2>/dev/null | wc -l); "
        f"journalctl -q -p err --since {since} -o short-iso --no-pager 2>/dev/null | tail -n 5 | sed 's/^/error_line=/'; "  # noqa: E501
        f"echo auth_failures=$(journalctl -q -t sshd -t sshd-session --since {since} -o cat 2>/dev/null "
        f"| grep -cE '{AUTH_FAILURE}'); "
    ) + DISKS


def parse(lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": 0, "auth_failures": 0, "latest_errors": [], "disks": disks(lines)}
    for line in lines:
        key, _, value = line.partition("=")
        if key in ("errors", "auth_failures") and (number := integer(value)) is not None:
            out[key] = number
        elif key in ("errors", "auth_failures"):
            out.setdefault("unparsed", []).append(line[:120])
        elif key == "error_line":
            out["latest_errors"].append(value)
    return out


def over(found: dict[str, Any], max_errors: int, max_auth: int, disk_threshold: int) -> list[str]:
    """What is over the thresholds, in words."""
    problems = []
    if found["errors"] > max_errors:
        problems.append(f"{found['errors']} errors (> {max_errors})")
    if found["auth_failures"] > max_auth:
        problems.append(f"{found['auth_failures']} SSH authentication failures (> {max_auth})")
    problems += [f"disk {m} at {p}% (>= {disk_threshold}%)" for m, p in found["disks"].items() if p >= disk_threshold]
    return problems


@click.group("logs")
def logs() -> None:
    """Log analysis across hosts."""


@logs.command("analyze")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@click.option("--hours", type=click.IntRange(1, 24 * 90), default=24, help="How far back to read.")
@click.option("--max-errors", type=click.IntRange(0), default=50, help="Journal errors above this fail a host.")
@click.option("--max-auth-failures", type=click.IntRange(0), default=20, help="SSH authentication failures above this.")
@click.option("--disk-threshold", type=click.IntRange(1, 100), default=90, help="Disk use (%) at or above this.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON to stdout.")
@vault_options()
def analyze(
    env_name: str,
    pattern: str,
    hours: int,
    max_errors: int,
    max_auth_failures: int,
    disk_threshold: int,
    as_json: bool,
    keyring: Keyring,
) -> None:
    """Errors, authentication failures and disk use of the last --hours on each host; exit 1 naming
    every host over a threshold (the guide's: 50 errors, 20 auth failures, 90 % disk)."""
    env = _load(env_name, keyring=keyring)
    hosts = select_hosts(env, [pattern])
    results = []
    with Session(env, hosts) as session:
        for r in session.run_each({h: analysis_script(hours) for h in hosts}, become=None):
            found = (
                parse(r.stdout) if r.reachable else {"errors": 0, "auth_failures": 0, "latest_errors": [], "disks": {}}
            )
            problems = over(found, max_errors, max_auth_failures, disk_threshold) if r.reachable else ["unreachable"]
            results.append({"host": r.host, "ok": not problems, "problems": problems, **found})
    if as_json:
        echo_json(redact(json.dumps(results, indent=2)))
    else:
        for row in results:
            worst = max(row["disks"].values(), default=0)
            click.echo(
                redact(
                    f"{row['host']:<14} {'ok' if row['ok'] else 'OVER':<5} errors {row['errors']:<5} "
                    f"auth failures {row['auth_failures']:<4} disk max {worst}%"
                )
            )
            for line in row["latest_errors"] if not row["ok"] else []:
                click.echo(redact(f"  {line}"))
    bad = [f"{row['host']}: {', '.join(row['problems'])}" for row in results if not row["ok"]]
    if bad:
        click.echo("hxinfra: over the thresholds: " + "; ".join(bad), err=True)
        sys.exit(1)
