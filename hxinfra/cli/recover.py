"""``hxinfra recover``: the guide's service recovery. Failed systemd units are restarted host by
host in the order the site deploys (databases before the gateway, the gateway before the web UI,
the web UI before nginx), each host's units in systemd's own dependency order; then checked."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hxinfra import guard
from hxinfra.adhoc import Session
from hxinfra.cli.common import ENV_OPTION, YES_OPTION, _load, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.inventory import select_hosts
from hxinfra.secrets import Keyring, redact

# restart every failed unit (systemd orders their start by their dependencies), then list what failed still
RECOVER = (
    "units=$(systemctl list-units --state=failed --no-legend --plain | awk '{print $1}'); "
    'if [ -z "$units" ]; then echo "nothing failed"; exit 0; fi; '
    'echo "restarting: $units"; systemctl restart $units; sleep 2; '
    "left=$(systemctl list-units --state=failed --no-legend --plain | awk '{print $1}'); "
    'if [ -n "$left" ]; then echo "still failed: $left"; exit 1; fi; echo recovered'
)


def site_order(env: Any, hosts: list[str]) -> list[str]:
    """Hosts by the first service component of the site's order they run (stable within one; hosts
    that serve nothing last)."""
    components = [c for c in env.components if c.serves]

    def rank(name: str) -> int:
        groups = env.host_groups(env.host(name))
        return next((i for i, c in enumerate(components) if c.applies_to(groups)), len(components))

    return sorted(hosts, key=rank)


@click.command("recover")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@YES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON to stdout.")
@vault_options()
def recover(env_name: str, pattern: str, yes: bool, as_json: bool, keyring: Keyring) -> None:
    """Restart failed units, hosts in the site's order; exit 1 naming what stays failed."""
    env = _load(env_name, keyring=keyring)
    action = "restart failed units"
    confirmed = guard.settle(env, yes, action)
    hosts = site_order(env, select_hosts(env, [pattern]))
    results: list[dict[str, Any]] = []
    with Session(env, hosts, change=action, confirm=confirmed) as session:
        for host in hosts:  # one by one: a database is back before what needs it restarts
            r = session.run_on(host, RECOVER)
            results.append({"host": host, "ok": r.ok, "detail": " / ".join(r.stdout[-2:]) or "unreachable"})
            if not as_json:
                click.echo(redact(f"{host:<14} {'ok' if r.ok else 'FAILED'}  {results[-1]['detail']}"))
    if as_json:
        echo_json(redact(json.dumps(results, indent=2)))
    bad = [r["host"] for r in results if not r["ok"]]
    if bad:
        click.echo(f"hxinfra: still failed on {', '.join(bad)}", err=True)
        sys.exit(1)
