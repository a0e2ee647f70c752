"""``hxinfra drift``: which hosts differ from what the repository says, and how.

A check run of the whole site (read-only, as ``deploy site --check --diff``) whose findings are
reported per host: the managed paths that differ with their diff (masked as every diff is), the
packages, units, accounts and directories not as wanted, the other operations that would run, and
the hosts that could not be reached. Exit 0 none, 2 drift, 1 an error: made for a systemd timer
or a scheduled CI job.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import click

from hxinfra import drift, history
from hxinfra.cli.common import ENV_OPTION, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.driftreport import DriftHost, drift_hosts, report_html, report_table
from hxinfra.options import RunOptions
from hxinfra.paths import project_root
from hxinfra.runner import patch_for_gevent, run_deploy
from hxinfra.secrets import Keyring, redact


@click.command("drift")
@ENV_OPTION
@click.option(
    "--limit", "-l", multiple=True, metavar="PATTERN", help="Ansible host pattern (repeatable: union) [default: all]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON to stdout.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a self-contained HTML report of the findings.",
)
@vault_options()
@history.recorded("drift", target=lambda kw: "site")
def drift_cmd(env_name: str, limit: tuple[str, ...], as_json: bool, html_file: Path | None, keyring: Keyring) -> None:
    """Check every selected host against the repository, change nothing, report what differs.

    \b
    Exit codes: 0 no drift, 2 drift, 1 an error or a host that could not be checked.

    \b
    Examples:
      hxinfra drift --env production
      hxinfra drift --env staging --limit web_servers --json
      hxinfra drift --env production --html drift.html
    """
    root = project_root()
    patch_for_gevent()
    options = RunOptions.from_cli(limit=limit, check=True, diff=True)
    click.echo(f"drift: checking {env_name} (a check run of the site, nothing is changed)", err=True)
    quiet = io.StringIO()  # pyinfra's own lines: the findings below say it once, per host
    with drift.collecting() as findings:
        report = run_deploy(root, env_name, "site", options, keyring=keyring, log=quiet)
    hosts = drift_hosts(report, findings)
    history.set_hosts([h.as_history() for h in hosts])
    if as_json:
        echo_json(redact(json.dumps({"env": env_name, "hosts": [h.as_dict() for h in hosts]}, indent=2)))
    else:
        for line in report_table(hosts):
            click.echo(redact(line))
    if html_file is not None:
        html_file.write_text(redact(report_html(hosts, f"hxinfra drift: {env_name}")), encoding="utf-8")
        click.echo(f"report: {html_file}", err=True)
    sys.exit(exit_code(hosts))


def exit_code(hosts: list[DriftHost]) -> int:
    if any(h.status in ("unreachable", "failed") for h in hosts):
        return 1
    return 2 if any(h.status == "drifted" for h in hosts) else 0
