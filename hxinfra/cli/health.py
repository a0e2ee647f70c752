"""``hxinfra health``: what runs, checked on the hosts themselves (the guide's health check
playbook): a table, ``--json``, a self-contained HTML report with a chart; exit 1 on any failure."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hxinfra import history
from hxinfra.adhoc import Session
from hxinfra.cli.common import ENV_OPTION, _load, echo_json, extra_vars_option, guide_vars
from hxinfra.cli.vault import vault_options
from hxinfra.health import (
    HostHealth,
    as_json,
    component_checks,
    integer,
    parse,
    report_html,
    report_table,
    script,
    select,
)
from hxinfra.inventory import select_hosts
from hxinfra.patterns import batches, parse_serial
from hxinfra.secrets import Keyring, redact

# the seed guide's variables, as its health playbook took them with -e
GUIDE_KEYS = {"target_hosts": "limit", "services": "services", "disk_threshold": "disk_threshold"}


@click.command("health")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default=None, metavar="PATTERN", help="Ansible host pattern [default: all].")
@click.option(
    "--services",
    envvar="HXINFRA_SERVICES",
    default="",
    metavar="LIST",
    help="Only these services' checks, comma-separated (the names the components' health checks use, and system).",
)
@click.option(
    "--disk-threshold",
    type=click.IntRange(1, 100),
    default=None,
    envvar="HXINFRA_DISK_THRESHOLD",
    help="A filesystem at or above this use (%) fails [default: 90].",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a self-contained HTML report (a chart and every check with its evidence).",
)
@click.option("--serial", envvar="HXINFRA_SERIAL", metavar="N|N%", help="Hosts in batches (one connection each).")
@extra_vars_option("The guide's variables: target_hosts=PATTERN, services=a,b, disk_threshold=N.")
@click.option("--json", "as_json_out", is_flag=True, help="Print the results as JSON to stdout.")
@vault_options()
@history.recorded("health")
def health(
    env_name: str,
    pattern: str | None,
    services: str,
    disk_threshold: int | None,
    html_file: Path | None,
    serial: str | None,
    extra: tuple[str, ...],
    as_json_out: bool,
    keyring: Keyring,
) -> None:
    """Check the hosts: uptime, load, memory, disks, failed units, and each component's services,
    ports and real probes (HTTPS through nginx, PostgreSQL's TLS, the gateway, the web UI, the
    domain). Exit 1 naming every failure.

    \b
    Examples:
      hxinfra health --env production
      hxinfra health --env lab --services nginx,postgresql --html health.html
      hxinfra health --env staging -e target_hosts=web_servers -e services=nginx
    """
    guide = guide_vars(extra, GUIDE_KEYS, "health")
    threshold = disk_threshold or integer(str(guide.get("disk_threshold", 90)))
    if threshold is None or not 1 <= threshold <= 100:
        raise click.UsageError("-e disk_threshold: a whole number from 1 to 100")
    _check(
        env_name,
        pattern or guide.get("limit") or "all",
        services or guide.get("services", ""),
        threshold,
        html_file,
        serial,
        as_json_out,
        keyring,
    )


@click.command("validate")
@ENV_OPTION
@click.option(
    "--pre",
    "phase",
    flag_value="pre",
    help="Before a deployment: every host reachable, disks, no failed units, the services already running.",
)
@click.option("--post", "phase", flag_value="post", help="After it: every check of hxinfra health, probes included.")
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@click.option("--disk-threshold", type=click.IntRange(1, 100), default=90, envvar="HXINFRA_DISK_THRESHOLD")
@click.option("--json", "as_json_out", is_flag=True, help="Print the results as JSON to stdout.")
@vault_options()
def validate(
    env_name: str, phase: str | None, pattern: str, disk_threshold: int, as_json_out: bool, keyring: Keyring
) -> None:
    """The gates of a promotion (make promote): --pre before deploying, --post after. Exit 1 when
    a gate is closed, naming why."""
    if phase is None:
        raise click.UsageError("say --pre or --post")
    # before: the hosts and what already runs (a first deployment has no service yet to probe)
    _check(env_name, pattern, "system" if phase == "pre" else "", disk_threshold, None, None, as_json_out, keyring)


def _check(
    env_name: str,
    pattern: str,
    services: str,
    threshold: int,
    html_file: Path | None,
    serial: str | None,
    as_json_out: bool,
    keyring: Keyring,
) -> None:
    env = _load(env_name, keyring=keyring)
    hosts = select_hosts(env, [pattern])
    results: list[HostHealth] = []
    tty = sys.stderr.isatty()
    for batch in batches(hosts, parse_serial(serial)):
        plans = {}
        for name in batch:
            data = env.host_data(name, with_defaults=True)
            checks = component_checks(env.components, env.host_groups(env.host(name)), data, name)
            plans[name] = select(checks, services.split(","))
        with Session(env, batch) as session:
            for r in session.run_each({n: script(c) for n, c in plans.items()}, become=None):
                host = parse(r.host, plans[r.host], r.stdout, threshold) if r.reachable else HostHealth(r.host, False)
                if services:  # the system's own checks only when asked for
                    host.checks = [c for c in host.checks if c.service != "system" or "system" in services]
                results.append(host)
                failing = sum(1 for x in results if not x.ok)
                line = f"health: {len(results)}/{len(hosts)} hosts checked, {failing} failing"
                click.echo(f"\r{line}" if tty else line, err=True, nl=not tty)
    if tty:
        click.echo("", err=True)
    if as_json_out:
        echo_json(redact(as_json(results)))
    else:
        for line in report_table(results):
            click.echo(redact(line))
    if html_file:
        html_file.write_text(redact(report_html(results, f"hxinfra health: {env_name}")), encoding="utf-8")
        click.echo(f"report: {html_file}", err=True)
    history.set_hosts(
        [
            history.HostResult(
                r.host,
                "ok" if r.ok else ("unreachable" if not r.reachable else "failed"),
                ok=sum(c.ok for c in r.checks),
                failed=len(r.failures),
                cause=", ".join(r.failures),
                items=[("check", f, "failed") for f in r.failures if r.reachable],
            )
            for r in results
        ]
    )
    bad = [f"{r.host}: {f}" for r in results for f in r.failures]
    if bad:
        click.echo("hxinfra: health failures: " + "; ".join(bad), err=True)
        sys.exit(1)
