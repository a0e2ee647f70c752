"""The ``hxinfra`` command line: one click group.

Exit codes: 0 ok, 1 failure, 2 usage error (and 2 for "changes pending" when
``--detailed-exitcode`` asks for it). Options read ``HXINFRA_*`` environment variables.
Human progress goes to stderr; ``--json`` output goes to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from hxinfra import __version__
from hxinfra.components import looks_secret
from hxinfra.datafiles import parse_extra_vars
from hxinfra.errors import HxError
from hxinfra.inventory import Environment, load_environment
from hxinfra.known_hosts_cli import known_hosts
from hxinfra.paths import project_root
from hxinfra.pki_cli import pki
from hxinfra.runlog import RunLog, Tee
from hxinfra.runner import inventory_file, run_deploy
from hxinfra.vault import MASK, Keyring, mask, redact
from hxinfra.vault_cli import vault, vault_options

PROTECTED_ENVS = ("production", "staging")


def _mask(key: str, value: Any) -> Any:
    """A value for display: every vault value inside it, at any depth, masked (and secret-named keys)."""
    if looks_secret(key) and value not in (None, "", [], {}):
        return MASK
    return mask(value)


def _err(message: str) -> None:
    click.echo(click.style("hxinfra: error: ", fg="red", bold=True) + redact(message), err=True)


def _warn(env: Environment) -> None:
    lines = env.warnings + [f"{why}: its values stay masked/unknown here" for why in env.sealed(env.hosts)]
    for line in lines:
        click.echo(click.style("hxinfra: warning: ", fg="yellow") + redact(line), err=True)


class HxGroup(click.Group):
    """Turns expected errors into one line and exit 1 (never a traceback).

    With ``--detailed-exitcode`` a usage error exits 1, not 2 (as Terraform does): 2 then means
    "changes", and a typo must never look like a diff to a script.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HxError as e:
            _err(str(e))
            sys.exit(1)

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        extra.pop("standalone_mode", None)
        try:
            return super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as e:
            e.show()
            detailed = "--detailed-exitcode" in argv
            sys.exit(1 if detailed and e.exit_code == 2 else e.exit_code)


@click.group(cls=HxGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="hxinfra")
def main() -> None:
    """Deploy and check the HX fleet (pyinfra underneath).

    \b
    Examples:
      hxinfra lab up                              boot the local lab fleet
      hxinfra deploy site --env lab               converge the lab
      hxinfra deploy site --env staging --check --diff
      hxinfra inventory host hx-web-01 --env development --explain
    """


ENV_OPTION = click.option(
    "--env", "-E", "env_name", envvar="HXINFRA_ENV", show_envvar=True, required=True,
    help="Environment: production, staging, development, testing or lab.",
)  # fmt: skip


def _load(env_name: str, extra: tuple[str, ...] = ()) -> Environment:
    env = load_environment(inventory_file(project_root(), env_name), extra_vars=parse_extra_vars(extra))
    _warn(env)
    return env


# ---------------------------------------------------------------------------- inventory
@main.group()
def inventory() -> None:
    """Show environments: hosts, groups and merged host data."""


@inventory.command("list")
@ENV_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@vault_options()
def inventory_list(env_name: str, as_json: bool, keyring: Keyring) -> None:
    """List the hosts of an environment with their address and groups."""
    env = _load(env_name)
    hosts = list(env.hosts.values())
    if as_json:
        rows = [{"host": h.name, "address": h.address, "groups": h.groups} for h in hosts]
        click.echo(json.dumps({"environment": env.name, "hosts": rows}, indent=2))
        return
    width = max([len(h.name) for h in hosts] + [4])
    for h in hosts:
        click.echo(f"{h.name:<{width}}  {h.address or '-':<15}  {', '.join(h.groups)}")


@inventory.command("graph")
@ENV_OPTION
@vault_options()
def inventory_graph(env_name: str, keyring: Keyring) -> None:
    """Print the group tree (like ``ansible-inventory --graph``)."""
    env = _load(env_name)
    click.echo("@all:")
    for group, hosts in env.groups.items():
        click.echo(f"  |--@{group}:")
        for h in hosts:
            click.echo(f"  |  |--{h}")
    ungrouped = [h.name for h in env.hosts.values() if not h.groups]
    if ungrouped:
        click.echo("  |--@ungrouped:")
        for h in ungrouped:
            click.echo(f"  |  |--{h}")


@inventory.command("host")
@click.argument("host")
@ENV_OPTION
@click.option("--explain", is_flag=True, help="Show which layer set each key, and what it overrode.")
@click.option("-e", "--extra-vars", "extra", multiple=True, help="key=value or @file.yml (highest precedence).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@vault_options()
def inventory_host(
    host: str, env_name: str, explain: bool, extra: tuple[str, ...], as_json: bool, keyring: Keyring
) -> None:
    """Print the merged data of HOST (component defaults included); secrets are masked."""
    env = _load(env_name, extra)
    env.host(host)
    if explain:
        info = env.explain(host)
        data = {k: {**v, "value": _mask(k, v["value"])} for k, v in info.items()}
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
            return
        for key, v in data.items():
            click.echo(f"{key} = {json.dumps(v['value'], default=str)}")
            click.echo(f"    from {v['layer']} ({v['source']})")
            for o in v["overrides"]:
                click.echo(f"    overrides {o}")
        return
    merged = {k: _mask(k, v) for k, v in sorted(env.host_data(host, with_defaults=True).items())}
    if as_json:
        click.echo(json.dumps(merged, indent=2, default=str))
    else:
        for key, value in merged.items():
            click.echo(f"{key}: {json.dumps(value, default=str)}")


# ---------------------------------------------------------------------------- deploy
@main.command()
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
@click.option("--tags", "-t", "tags", multiple=True, metavar="TAG[,TAG]", help="Only steps with these tags.")
@click.option("--skip-tags", "skip_tags", multiple=True, metavar="TAG[,TAG]", help="Skip steps with these tags.")
@click.option("--yes", "-y", is_flag=True, envvar="HXINFRA_YES", show_envvar=True,
              help="Do not ask before changing production or staging.")  # fmt: skip
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
) -> None:
    """Run DEPLOY (``site``, a component such as ``nginx``, or a deploy file) on an environment.

    \b
    Exit codes: 0 ok (no changes with --detailed-exitcode), 1 a host failed, was unreachable or
    never started, 2 usage error, or changes made/pending with --detailed-exitcode.
    """
    root = project_root()
    if env_name in PROTECTED_ENVS and not check and not yes:
        if not sys.stdin.isatty():
            raise HxError(f"refusing to change {env_name} without a terminal to confirm; run --check first, then --yes")
        click.confirm(f"Apply {deploy} to {env_name}?", abort=True, err=True)
    runlog = RunLog(Path(log_file)) if log_file else None
    if runlog is not None:
        runlog.start("hxinfra deploy " + deploy, env_name, [
            ("check", check), ("diff", diff), ("limit", ",".join(limit)), ("serial", serial),
            ("max-fail-percentage", max_fail_percentage), ("tags", ",".join(tags)), ("skip-tags", ",".join(skip_tags)),
            ("extra-vars", ",".join(_extra_names(extra))),
        ])  # fmt: skip
    with runlog if runlog is not None else contextlib.nullcontext():
        report = run_deploy(
            root, env_name, deploy, check=check, diff=diff, limit=limit, extra_args=extra, keyring=keyring,
            verbosity=verbosity, serial=serial, max_fail_percentage=max_fail_percentage,
            tags=_split(tags), skip_tags=_split(skip_tags), log=Tee(sys.stderr, runlog),
        )  # fmt: skip
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
        _print_table(report, runlog)
    if report.failed:
        sys.exit(1)
    if detailed_exitcode and report.changed:
        sys.exit(2)


def _extra_names(extra: tuple[str, ...]) -> list[str]:
    """What the log says of ``-e``: file names and keys, never values (they may be secrets)."""
    return [e if e.startswith("@") else e.split("=", 1)[0] + "=…" for e in extra]


def _split(values: tuple[str, ...]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


COLOURS = {"ok": "green", "changed": "yellow", "pending": "yellow", "failed": "red", "unreachable": "red",
           "skipped": "magenta"}  # fmt: skip


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
        if report.check:
            for name in h.changes:
                echo(f"{'':<12} {'':<{width}}  ~ {name}")
    if report.stopped:
        echo(click.style(f"rollout stopped: {report.stopped}", fg="red"))
    counts = {s: sum(1 for h in report.hosts.values() if h.status == s) for s in COLOURS}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    echo(f"{len(report.hosts)} host(s): {summary} in {report.seconds:.1f} s")


# ---------------------------------------------------------------------------- plan
@main.command("plan")
@ENV_OPTION
@click.option("--out", type=click.Path(file_okay=False),
              help="Write the plan tree here (an earlier plan there is replaced; any other directory is refused).")
@click.option("--against", type=click.Path(file_okay=False), help="Print a unified diff against this earlier plan.")
@click.option("--limit", "-l", multiple=True, metavar="PATTERN", help="Only these hosts (Ansible pattern).")
@click.option("-e", "--extra-vars", "extra", multiple=True, help="key=value or @file.yml (highest precedence).")
@click.option("--detailed-exitcode", is_flag=True, help="With --against: exit 2 when the plans differ.")
@vault_options()
def plan_cmd(
    env_name: str, out: str | None, against: str | None, limit: tuple[str, ...], extra: tuple[str, ...],
    detailed_exitcode: bool, keyring: Keyring,
) -> None:  # fmt: skip
    """Render every file the deploys would write, for every host, offline (no SSH).

    \b
    The tree is OUT/<host>/<absolute path> plus OUT/<host>.manifest (modes, owners, links,
    removals). Secrets never reach it. In CI: plan the base branch with --out, then the
    pull request with --against to post what it changes in each environment.
    """
    import tempfile
    from pathlib import Path

    from hxinfra.plan import diff_trees, summary, write_plan
    from hxinfra.runner import select_hosts

    env = _load(env_name, extra)
    hosts = select_hosts(env, limit)
    if not out and not against:
        raise click.UsageError("give --out DIR, --against DIR, or both")
    with tempfile.TemporaryDirectory(prefix="hxinfra-plan-") as tmp:
        target = Path(out) if out else Path(tmp) / "plan"
        counts = write_plan(env, hosts, target)
        click.echo(f"plan of {env_name}: {summary(counts)}" + (f" in {out}" if out else ""), err=True)
        if against:
            lines = list(diff_trees(Path(against), target))
            click.echo("".join(line if line.endswith("\n") else line + "\n" for line in lines), nl=False)
            click.echo(f"{'no differences' if not lines else 'plans differ'} from {against}", err=True)
            if lines and detailed_exitcode:
                sys.exit(2)


main.add_command(vault)
main.add_command(pki)
main.add_command(known_hosts)


# ---------------------------------------------------------------------------- lab
@main.group()
@click.option("--lab", "lab_name", envvar="HXINFRA_LAB", show_envvar=True, default="default",
              help="Name of the lab (several labs can coexist).")  # fmt: skip
@click.pass_context
def lab(ctx: click.Context, lab_name: str) -> None:
    """The local lab fleet: real Debian hosts (systemd-nspawn) on this machine. Needs root."""
    from hxinfra.lab import Lab

    os.environ["HXINFRA_LAB"] = lab_name  # the lab inventory reads the same lab
    ctx.obj = Lab(lab_name)


def _log(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


def _echo_hosts(hosts: list[Any]) -> None:
    for h in hosts:
        click.echo(f"{h.name:<16} {h.ip:<15} {h.state}")


@lab.command("up")
@click.argument("names", nargs=-1)
@click.option("--hosts", "count", type=click.IntRange(1, 100), help="Boot the first N hosts of the lab topology.")
@click.pass_obj
def lab_up(lab_obj: Any, names: tuple[str, ...], count: int | None) -> None:
    """Boot lab hosts: NAMEs, the first --hosts N of the topology, or the whole topology."""
    from hxinfra.lab.inventory import LabEnvironment

    if names and count:
        raise click.UsageError("give host names or --hosts, not both")
    from hxinfra.lab.inventory import prepare

    prepare(lab_obj)  # the lab's CA and vault first: its inventory reads them
    wanted = list(names)
    if not wanted:
        env = load_environment(inventory_file(project_root(), "lab"))
        names_in_order = list(env.topology) if isinstance(env, LabEnvironment) else []
        wanted = names_in_order[:count] if count else names_in_order
    hosts = lab_obj.up(wanted, log=_log)
    env = load_environment(inventory_file(project_root(), "lab"))
    topology = env.topology if isinstance(env, LabEnvironment) else {}
    for name in wanted:  # the lab's domain controllers become real Samba AD DCs
        if "domain_controllers" in topology.get(name, []):
            from hxinfra.lab.inventory import prepare_dc

            prepare_dc(lab_obj, name, log=_log)
    _echo_hosts(hosts)


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@click.pass_obj
def lab_status(lab_obj: Any, as_json: bool) -> None:
    """List the lab's hosts, addresses and whether they run."""
    hosts = lab_obj.hosts()
    if as_json:
        click.echo(json.dumps([{"name": h.name, "ip": h.ip, "state": h.state} for h in hosts], indent=2))
        return
    if not hosts:
        click.echo(f"lab {lab_obj.name}: no hosts", err=True)
    _echo_hosts(hosts)


@lab.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def lab_ssh(lab_obj: Any, host: str, command: tuple[str, ...]) -> None:
    """Log in to a lab host as root (or run COMMAND there)."""
    argv = lab_obj.ssh_command(host, " ".join(command) if command else None)
    os.execvp(argv[0], argv)  # noqa: S606 - replaces this process with ssh


@lab.command("ca")
@click.pass_obj
def lab_ca_cmd(lab_obj: Any) -> None:
    """Print the path of the lab CA's certificate (for curl --cacert, or a browser)."""
    from hxinfra.lab.inventory import lab_ca

    click.echo(lab_ca(lab_obj).cert_path)


@lab.command("down")
@click.argument("names", nargs=-1)
@click.pass_obj
def lab_down(lab_obj: Any, names: tuple[str, ...]) -> None:
    """Destroy lab hosts (all of them by default); nothing is left behind."""
    removed = lab_obj.down(list(names) or None, log=_log)
    _log(f"removed {len(removed)} host(s)" + (f": {', '.join(removed)}" if removed else ""))


if __name__ == "__main__":  # pragma: no cover
    main()
