"""``hxinfra known-hosts``: show, check and record the SSH host keys of an environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hxinfra.cli.common import ENV_OPTION
from hxinfra.cli.vault import vault_options
from hxinfra.errors import HxError
from hxinfra.known_hosts import FILE_KEY, STRICT_KEY, entry_name, read_known, record, scan, status
from hxinfra.secrets import Keyring


@click.group("known-hosts")
def known_hosts() -> None:
    """SSH host keys: each environment trusts only the keys in its known_hosts file.

    \b
    hxinfra known-hosts scan --env staging                 fingerprints, compared with the file
    hxinfra known-hosts scan --env staging --record        after checking them on the console
    """


def _targets(env_name: str, limit: tuple[str, ...]) -> tuple[Path, list[dict[str, Any]]]:
    from hxinfra.cli.common import _load
    from hxinfra.inventory import select_hosts

    env = _load(env_name)
    rows, files = [], set()
    for name in select_hosts(env, limit):
        data = env.host_data(name)
        if str(data.get(STRICT_KEY, "")).lower() not in ("yes", "true"):
            raise HxError(
                f"host {name}: {STRICT_KEY} is {data.get(STRICT_KEY)!r}; environments check host keys strictly"
            )
        files.add(str(data[FILE_KEY]))
        address = str(data.get("ssh_hostname") or name)
        rows.append({"host": name, "address": address, "port": int(data.get("ssh_port") or 22)})
    if len(files) != 1:
        raise HxError(f"the selected hosts use {len(files)} known_hosts files; select hosts of one file")
    return Path(files.pop()), rows


@known_hosts.command("scan")
@ENV_OPTION
@click.option("--limit", "-l", multiple=True, metavar="PATTERN", help="Only these hosts (Ansible pattern).")
@click.option("--record", "do_record", is_flag=True, help="Record the keys of hosts that have none (asks per host).")
@click.option("--yes", "-y", is_flag=True, help="With --record: do not ask (you checked the fingerprints).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@vault_options()
def scan_cmd(
    env_name: str, limit: tuple[str, ...], do_record: bool, yes: bool, as_json: bool, keyring: Keyring
) -> None:
    """Fetch each host's SSH host keys and compare them with the environment's known_hosts.

    A CHANGED key is never replaced here: check the host, then remove its old line by hand
    (ssh-keygen -R ADDRESS -f FILE) and scan again. Exit 1 when a key changed or a host did not answer.
    """
    path, rows = _targets(env_name, limit)
    known = read_known(path)
    for row in rows:
        keys = scan(row["address"], row["port"])
        entry = entry_name(row["address"], row["port"])
        row["keys"] = keys
        row["status"] = status(known.get(entry, set()) | known.get(row["host"], set()), keys)
        row["fingerprints"] = [f"{k.kind} {k.fingerprint}" for k in keys]
    if as_json:
        click.echo(
            json.dumps(
                {"known_hosts": str(path), "hosts": [{k: v for k, v in r.items() if k != "keys"} for r in rows]},
                indent=2,
            )
        )
    else:
        click.echo(f"known_hosts: {path}", err=True)
        for row in rows:
            click.echo(f"{row['status']:<11} {row['host']:<16} {row['address']}")
            for fp in row["fingerprints"]:
                click.echo(f"{'':<11} {'':<16} {fp}")
    if do_record:
        for row in rows:
            if row["status"] != "new":
                continue
            if not yes:
                if not sys.stdin.isatty():
                    raise HxError("refusing to record host keys without a terminal to confirm; check them, then --yes")
                if not click.confirm(f"Record these keys of {row['host']}?", err=True):
                    continue
            record(path, [entry_name(row["address"], row["port"]), row["host"]], row["keys"])
            click.echo(f"recorded {row['host']} in {path}", err=True)
    bad = [r["host"] for r in rows if r["status"] in ("CHANGED", "unreachable")]
    if bad:
        raise HxError(f"host key CHANGED or host not answering: {', '.join(bad)}")
