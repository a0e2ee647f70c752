"""``hxinfra history``: what the last runs did, who ran them, and what changed."""

from __future__ import annotations

import time

import click

from hxinfra import history
from hxinfra.cli.common import echo_json, env_name_check
from hxinfra.errors import HxError


def this_project(all_projects: bool) -> str | None:
    """The project whose runs a listing shows: this checkout's (see :func:`history.project_of`),
    None (every project's) with ``--all-projects`` or outside any project. Says on stderr how many
    runs older than project names it leaves out."""
    from hxinfra.paths import find_project_root

    root = find_project_root()
    if all_projects or root is None:
        return None
    try:
        project = history.project_of(root)
        older = history.unnamed_runs()
    except history.HistoryError as e:
        raise HxError(str(e)) from None
    if older:
        click.echo(
            f"hxinfra: {older} run(s) recorded before runs named their project are left out "
            "(--all-projects shows them)",
            err=True,
        )
    return project


all_projects_option = click.option(
    "--all-projects",
    is_flag=True,
    help="The runs of every project in the history, not only this one's (see [tool.hxinfra] project).",
)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@click.group("history", invoke_without_command=True)
@click.option(
    "--env",
    "-E",
    "env_name",
    default=None,
    callback=env_name_check,
    envvar="HXINFRA_ENV",
    help="Only this environment's runs.",
)
@click.option("--host", default=None, help="Only the runs that touched this host.")
@click.option("--since", default=None, metavar="AGE", help="Only runs newer than this: 30m, 12h, 7d, 2w.")
@click.option("--last", "count", type=click.IntRange(1, 10000), default=50, help="At most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON to stdout.")
@all_projects_option
@click.pass_context
def history_cmd(
    ctx: click.Context,
    env_name: str | None,
    host: str | None,
    since: str | None,
    count: int,
    as_json: bool,
    all_projects: bool,
) -> None:
    """List recorded runs (deploy, drift, health, audit, backup, restore), newest first: this
    project's (several checkouts, controllers and CI shards share one when pyproject.toml names it
    in ``[tool.hxinfra] project``), or every project's with --all-projects.

    \b
    Examples:
      hxinfra history --env production --since 7d
      hxinfra history --host hx-web-01 --json
      hxinfra history show 42
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        cutoff = history.parse_since(since) if since else None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    project = this_project(all_projects)
    try:
        rows = history.runs(env=env_name, host=host, since=cutoff, limit=count, project=project)
    except history.HistoryError as e:
        raise HxError(str(e)) from None
    if as_json:
        echo_json(history.as_json(rows))
        return
    if not rows:
        click.echo("no runs recorded" + (" for that selection" if env_name or host or since else ""), err=True)
        return
    for r in rows:
        hosts = r["hosts"]
        counts: dict[str, int] = {}
        for h in hosts:
            counts[h["status"]] = counts.get(h["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no hosts"
        what = f"{r['verb']} {r['target']}".strip() + (" --check" if r["check_mode"] else "")
        commit = (r["commit_id"][:10] + ("+dirty" if r["dirty"] else "")) if r["commit_id"] else "-"
        whose = f"{r['project'] or '-':<16} " if project is None else ""
        click.echo(
            f"{r['id']:>5}  {_when(r['started'])}  {r['ended'] - r['started']:6.1f}s  {whose}{r['env'] or '-':<12} "
            f"{what:<22} {r['outcome']:<8} {r['user']:<10} {commit:<16} {summary}"
        )


@history_cmd.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON to stdout.")
def history_show(run_id: int, as_json: bool) -> None:
    """One run: who, when, where, its options, and each host's result with what changed."""
    try:
        run = history.show(run_id)
    except history.HistoryError as e:
        raise HxError(str(e)) from None
    if as_json:
        echo_json(history.as_json(run))
        return
    commit = (run["commit_id"] + (" (dirty)" if run["dirty"] else "")) if run["commit_id"] else "-"
    for key, value in (
        ("run", run["id"]),
        ("what", f"{run['verb']} {run['target']}".strip() + (" --check" if run["check_mode"] else "")),
        ("project", run["project"] or "- (recorded before runs named their project)"),
        ("environment", run["env"] or "-"),
        ("limit", run["selection"] or "all"),
        ("tags", run["tags"] or "-"),
        ("who", f"{run['user']} on {run['controller']}"),
        ("when", f"{_when(run['started'])}, {run['ended'] - run['started']:.1f} s"),
        ("commit", commit),
        ("outcome", f"{run['outcome']} (exit {run['exit_code']})"),
    ):
        click.echo(f"{key:<12} {value}")
    if run["error"]:
        click.echo(f"{'error':<12} {run['error']}")
    for h in run["hosts"]:
        click.echo(f"\n{h['host']}: {h['status']}  changed {h['changed']}  ok {h['ok']}  failed {h['failed']}")
        if h["cause"]:
            click.echo(f"  cause: {h['cause']}")
        for item in h["items"]:
            click.echo(f"  ~ {item['kind']} {item['name']}" + (f": {item['detail']}" if item["detail"] else ""))
