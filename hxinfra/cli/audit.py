"""``hxinfra audit``: read-only compliance controls on the hosts, mapped to a standard's
requirements; a table, JSON, and a standalone HTML report with the evidence of every control."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hxinfra import history
from hxinfra.adhoc import Session
from hxinfra.audit import STANDARDS, HostAudit, as_json, host_controls, parse, report_html, script, select, table
from hxinfra.cli.common import ENV_OPTION, _load, echo_json, extra_vars_option, guide_vars
from hxinfra.cli.vault import vault_options
from hxinfra.inventory import select_hosts
from hxinfra.plan import plan_data
from hxinfra.secrets import Keyring, redact

GUIDE = {"security_policy": "standard", "target_hosts": "limit"}


@click.command("audit")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default=None, metavar="PATTERN", help="Ansible host pattern [default: all].")
@click.option(
    "--standard",
    type=click.Choice(sorted(STANDARDS)),
    default=None,
    envvar="HXINFRA_STANDARD",
    help="Only the controls of this standard, each with its requirement [default: every control].",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a standalone HTML report (a chart, every control with its evidence).",
)
@extra_vars_option("The guide's variables: security_policy=cis_basic|pci_dss|soc2, target_hosts=PATTERN.")
@click.option("--json", "as_json_out", is_flag=True, help="Print the results as JSON to stdout.")
@vault_options()
@history.recorded("audit")
def audit(
    env_name: str,
    pattern: str | None,
    standard: str | None,
    html_file: Path | None,
    extra: tuple[str, ...],
    as_json_out: bool,
    keyring: Keyring,
) -> None:
    """Audit the hosts, read-only: files, accounts, sudoers, pending security updates, services
    listening as root, and each component's controls (sshd's effective settings, the firewall
    against the ports its components need, pg_hba without trust...). Exit 1 when a control fails.

    \b
    Examples:
      hxinfra audit --env production --standard pci_dss --html audit.html
      hxinfra audit --env staging -e security_policy=soc2 -e target_hosts=web_servers
    """
    guide = guide_vars(extra, GUIDE, "audit")
    standard = standard or guide.get("standard")
    if standard is not None and standard not in STANDARDS:
        raise click.UsageError(f"security_policy {standard!r}: one of {', '.join(sorted(STANDARDS))}")
    env = _load(env_name, keyring=keyring)
    hosts = select_hosts(env, [pattern or guide.get("limit") or "all"])
    plans = {
        h: select(host_controls(env.components, env.host_groups(env.host(h)), plan_data(env, h), h), standard)
        for h in hosts
    }
    results: list[HostAudit] = []
    with Session(env, hosts) as session:
        for r in session.run_each({h: script(c) for h, c in plans.items()}, become=None):
            results.append(parse(r.host, plans[r.host], r.stdout) if r.reachable else HostAudit(r.host, False))
            click.echo(
                f"audit: {len(results)}/{len(hosts)} hosts, {sum(1 for x in results if x.failed)} failing", err=True
            )
    if as_json_out:
        echo_json(redact(as_json(results, standard)))
    else:
        for line in table(results, standard):
            click.echo(redact(line))
    if html_file:
        html_file.write_text(redact(report_html(results, f"hxinfra audit: {env_name}", standard)), encoding="utf-8")
        click.echo(f"report: {html_file}", err=True)
    history.set_hosts(
        [
            history.HostResult(
                r.host,
                "unreachable" if not r.reachable else ("failed" if r.failed else "ok"),
                ok=sum(x.passed for x in r.results),
                failed=len(r.failed),
                cause=", ".join(r.failed),
                items=[("control", c, "failed") for c in r.failed],
            )
            for r in results
        ]
    )
    bad = [f"{r.host}: {', '.join(r.failed)}" for r in results if r.failed]
    if bad:
        click.echo("hxinfra: audit failures: " + "; ".join(bad), err=True)
        sys.exit(1)
