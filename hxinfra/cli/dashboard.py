"""``hxinfra dashboard``: the fleet's state and its runs as a static site, from the run history."""

from __future__ import annotations

from pathlib import Path

import click

from hxinfra import history
from hxinfra.cli.common import env_name_check
from hxinfra.dashboard import build_states, render_site
from hxinfra.errors import HxError


@click.command("dashboard")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The directory to write the site into (index.html and a page per environment and host).",
)
@click.option("--env", "-E", "env_name", default=None, callback=env_name_check, help="Only this environment.")
@click.option("--last", "count", type=click.IntRange(1, 100000), default=2000, help="At most this many runs.")
def dashboard(out: Path, env_name: str | None, count: int) -> None:
    """Write a self-contained HTML site of the fleet: per environment each host's last drift,
    deploy and health, a timeline of runs, drift over time; a page per host with its runs.

    \b
    Examples:
      hxinfra dashboard --out dashboard && xdg-open dashboard/index.html
    """
    try:
        runs = history.runs(env=env_name, limit=count)
        items = history.item_counts()
    except history.HistoryError as e:
        raise HxError(str(e)) from None
    files = render_site(build_states(runs, items), out)
    click.echo(f"dashboard: {len(files)} page(s) in {out} ({out / 'index.html'})", err=True)
