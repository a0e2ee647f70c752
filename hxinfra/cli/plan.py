"""``hxinfra plan``: every file the deploys would write, offline, and diffs between plans."""

import sys
from pathlib import Path

import click

from hxinfra.cli.common import ENV_OPTION, _load
from hxinfra.cli.vault import vault_options
from hxinfra.secrets import Keyring


@click.command("plan")
@ENV_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Write the plan here (an earlier plan there is replaced; any other directory is refused).",
)
@click.option("--against", type=click.Path(file_okay=False), help="Print a unified diff against this earlier plan.")
@click.option("--limit", "-l", multiple=True, metavar="PATTERN", help="Only these hosts (Ansible pattern).")
@click.option("-e", "--extra-vars", "extra", multiple=True, help="key=value or @file.yml (highest precedence).")
@click.option("--detailed-exitcode", is_flag=True, help="With --against: exit 2 when the plans differ.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    envvar="HXINFRA_PLAN_JOBS",
    show_envvar=True,
    help="Processes that plan hosts side by side (default: one per core for large fleets; the plan is the same).",
)
@vault_options()
def plan_cmd(
    env_name: str,
    out: str | None,
    against: str | None,
    limit: tuple[str, ...],
    extra: tuple[str, ...],
    detailed_exitcode: bool,
    jobs: int | None,
    keyring: Keyring,
) -> None:
    """Render every file the deploys would write, for every host, offline (no SSH).

    \b
    One file per host, OUT/<host>.plan: a section per managed path (mode, owner, link,
    removal, then the file's lines). Secrets never reach it. In CI: plan the base branch
    with --out, then the pull request with --against to post what it changes in each
    environment (per host and path: --- a/<host>/<path>).
    """
    import tempfile

    from hxinfra.inventory import select_hosts
    from hxinfra.plan import diff_trees, summary, write_plan

    env = _load(env_name, extra)
    hosts = select_hosts(env, limit)
    if not out and not against:
        raise click.UsageError("give --out DIR, --against DIR, or both")
    with tempfile.TemporaryDirectory(prefix="hxinfra-plan-") as tmp:
        target = Path(out) if out else Path(tmp) / "plan"
        counts = write_plan(env, hosts, target, jobs)
        click.echo(f"plan of {env_name}: {summary(counts)}" + (f" in {out}" if out else ""), err=True)
        if against:
            lines = list(diff_trees(Path(against), target))
            click.echo("".join(line if line.endswith("\n") else line + "\n" for line in lines), nl=False)
            click.echo(f"{'no differences' if not lines else 'plans differ'} from {against}", err=True)
            if lines and detailed_exitcode:
                sys.exit(2)


# ---------------------------------------------------------------------------- lab
