"""``hxinfra deploy``: run a deploy on an environment and report per host."""

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from hxinfra import drift, guard, history
from hxinfra.cli.common import ENV_OPTION, YES_OPTION, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.errors import HxError
from hxinfra.inventory import select_hosts
from hxinfra.options import RunOptions
from hxinfra.paths import project_root
from hxinfra.runlog import RunLog, Tee
from hxinfra.runner import DeployReport, HostReport, patch_for_gevent, run_deploy
from hxinfra.secrets import Keyring


@click.command()
@click.argument("deploy")
@ENV_OPTION
@click.option("--check", is_flag=True, help="Dry run: connect and compare, change nothing.")
@click.option("--diff", is_flag=True, help="Show a unified diff of every managed file that changes.")
@click.option(
    "--limit",
    "-l",
    multiple=True,
    metavar="PATTERN",
    help="Ansible host pattern: all, group, host, glob, ~regex, a:b union, a:!b, a:&b (repeatable: union).",
)
@click.option("-e", "--extra-vars", "extra", multiple=True, help="key=value or @file.yml (highest precedence).")
@click.option(
    "--serial",
    envvar="HXINFRA_SERIAL",
    show_envvar=True,
    metavar="N|N%|1,5,25%",
    help="Run the whole deploy on batches of hosts, one batch after another.",
)
@click.option(
    "--max-fail-percentage",
    type=click.FloatRange(0, 100),
    default=0.0,
    help="Stop the rollout when a batch fails on more than this share of its hosts.",
)
@click.option(
    "--shard",
    "shard_spec",
    envvar="HXINFRA_SHARD",
    show_envvar=True,
    metavar="K/N",
    help="Only shard K of N of the selected hosts (stable by host name): N CI jobs, one rollout.",
)
@click.option("--tags", "-t", "tags", multiple=True, metavar="TAG[,TAG]", help="Only steps with these tags.")
@click.option("--skip-tags", "skip_tags", multiple=True, metavar="TAG[,TAG]", help="Skip steps with these tags.")
@YES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON to stdout.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when changes were made or are pending.")
@click.option(
    "-v", "--verbose", "verbosity", count=True, help="More pyinfra output (-v, -vv, -vvv); secrets stay masked."
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    envvar="HXINFRA_LOG_FILE",
    show_envvar=True,
    help="Append this run's output, timestamped and with secrets masked, to a private (0600) log file.",
)
@vault_options()
@history.recorded("deploy", target=lambda kw: str(kw["deploy"]))
def deploy(
    deploy: str,
    env_name: str,
    check: bool,
    diff: bool,
    limit: tuple[str, ...],
    extra: tuple[str, ...],
    yes: bool,
    as_json: bool,
    detailed_exitcode: bool,
    verbosity: int,
    serial: str | None,
    max_fail_percentage: float,
    tags: tuple[str, ...],
    skip_tags: tuple[str, ...],
    log_file: str | None,
    keyring: Keyring,
    shard_spec: str | None = None,
) -> None:
    """Run DEPLOY (``site``, a component such as ``nginx``, or a deploy file) on an environment.

    \b
    Exit codes: 0 ok (no changes with --detailed-exitcode), 1 a host failed, was unreachable or
    never started, 2 usage error, or changes made/pending with --detailed-exitcode.
    """
    root = project_root()
    patch_for_gevent()
    options = RunOptions.from_cli(
        extra_args=extra,
        tags=tags,
        skip_tags=skip_tags,
        limit=limit,
        serial=serial,
        shard=shard_spec,
        check=check,
        diff=diff,
        max_fail_percentage=max_fail_percentage,
        verbosity=verbosity,
    )
    runlog = RunLog(Path(log_file)) if log_file else None
    if runlog is not None:
        runlog.start(
            "hxinfra deploy " + deploy,
            env_name,
            [
                ("check", check),
                ("diff", diff),
                ("limit", ",".join(limit)),
                ("serial", serial),
                ("max-fail-percentage", max_fail_percentage),
                ("tags", ",".join(options.tags)),
                ("skip-tags", ",".join(options.skip_tags)),
                ("extra-vars", ",".join(_extra_names(extra))),
            ],
        )
    with runlog if runlog is not None else contextlib.nullcontext():
        with drift.collecting() as findings:  # what changed, by name, for the history
            report = run_deploy(
                root,
                env_name,
                deploy,
                options,
                keyring=keyring,
                log=Tee(sys.stderr, runlog),
                confirm=guard.confirmation(yes, f"apply {deploy}", lambda env: select_hosts(env, options.limit)),
            )
        history.set_hosts(history_hosts(report, findings))
        if as_json:
            echo_json(json.dumps(report.as_dict(), indent=2))
        _print_table(report, runlog)
    if report.failed:
        sys.exit(1)
    if detailed_exitcode and report.changed:
        sys.exit(2)


def history_hosts(report: DeployReport, findings: drift.Findings) -> list[history.HostResult]:
    """Each host's result for the history: its counts, its cause, and the names of what changed
    (or would change, in check mode): the engine's findings and the other operations' names."""
    out = []
    for h in report.hosts.values():
        items = [(f.kind, f.name, f.detail) for f in findings.of(h.name)] if h.changed else []
        items += [("operation", name, "changed" if not report.check else "would change") for name in h.changes]
        out.append(history.HostResult(h.name, h.status, h.changed, h.ok, h.failed, h.cause, items))
    return out


def _extra_names(extra: tuple[str, ...]) -> list[str]:
    """What the log says of ``-e``: file names and keys, never values (they may be secrets)."""
    return [e if e.startswith("@") else e.split("=", 1)[0] + "=…" for e in extra]


COLOURS = {
    "ok": "green",
    "changed": "yellow",
    "pending": "yellow",
    "failed": "red",
    "unreachable": "red",
    "skipped": "magenta",
}


def _print_table(report: Any, runlog: RunLog | None = None) -> None:
    """The final per-host table (stderr and the run log), what would change in check mode, and a timing line."""

    def echo(text: str) -> None:
        click.echo(text, err=True)
        if runlog is not None:
            runlog.write(text + "\n")

    echo("")
    verb = "would change" if report.check else "changed"
    width = max([len(h) for h in report.hosts] + [4])
    for h in report.hosts.values():
        status = click.style(f"{h.status:<11}", fg=COLOURS.get(h.status))
        batch = f"  batch {h.batch}" if len(report.batches) > 1 and h.batch else ""
        echo(f"{status} {h.name:<{width}}  {verb} {h.changed}  ok {h.ok}  failed {h.failed}{batch}")
        if h.cause:
            echo(f"{'':<12} {'':<{width}}  cause: {h.cause}")
        if report.check:
            for name in h.changes:
                echo(f"{'':<12} {'':<{width}}  ~ {name}")
    if report.stopped:
        echo(click.style(f"rollout stopped: {report.stopped}", fg="red"))
    counts = {s: sum(1 for h in report.hosts.values() if h.status == s) for s in COLOURS}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    echo(f"{len(report.hosts)} host(s): {summary} in {report.seconds:.1f} s")


# ---------------------------------------------------------------------------- plan


@click.group()
def report() -> None:
    """Deploy reports (``hxinfra deploy --json``): merge the reports of a sharded rollout."""


@report.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the merged report as JSON to stdout.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when any shard changed something.")
def report_merge(files: tuple[Path, ...], as_json: bool, detailed_exitcode: bool) -> None:
    """Merge the JSON reports of N shards into one table and one exit code (1 if any host failed)."""
    merged = DeployReport(0, False)
    for path in files:
        try:
            data = json.loads(path.read_text())
            hosts = data["hosts"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HxError(f"{path}: not an hxinfra deploy --json report ({e})") from None
        merged.check = merged.check or bool(data.get("check"))
        merged.seconds = max(merged.seconds, float(data.get("seconds", 0)))
        merged.operations += data.get("operations", [])
        if data.get("failed") and not hosts:
            merged.returncode = 1
        if data.get("stopped"):
            merged.stopped = "; ".join(filter(None, [merged.stopped, f"{path.name}: {data['stopped']}"]))
        for h in hosts:
            if h["host"] in merged.hosts:
                raise HxError(f"{path}: host {h['host']} is in two reports (shards overlap?)")
            merged.hosts[h["host"]] = HostReport(
                h["host"],
                h.get("changed", 0),
                h.get("ok", 0),
                h.get("failed", 0),
                h.get("status", "failed"),
                h.get("batch", 0),
                h.get("changes", []),
            )
    if as_json:
        echo_json(json.dumps({**merged.as_dict(), "reports": [str(f) for f in files]}, indent=2))
    _print_table(merged)
    if merged.failed:
        sys.exit(1)
    if detailed_exitcode and merged.changed:
        sys.exit(2)
