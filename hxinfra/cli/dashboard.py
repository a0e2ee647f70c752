"""``hxinfra dashboard``: the fleet's state and its runs as a static site, from the run history."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from hxinfra import history
from hxinfra.cli.common import env_name_check, register_secrets
from hxinfra.cli.history import all_projects_option, this_project
from hxinfra.cli.vault import vault_options
from hxinfra.dashboard import build_states, render_site
from hxinfra.errors import HxError
from hxinfra.inventory import inventory_file, known_environments, load_environment
from hxinfra.paths import find_project_root
from hxinfra.secrets import Keyring


def _register(names: Iterable[str], keyring: Keyring) -> None:
    """The secrets of every environment the pages show, where this project has it and the given
    passwords open them (nothing is asked for): a secret that reached the history is masked too."""
    root = find_project_root()
    known = set(known_environments(root)) if root else set()
    for name in sorted(set(names) & known):
        try:
            register_secrets(load_environment(inventory_file(root, name), extra_vars={}), keyring)  # type: ignore[arg-type]
        except HxError:  # an environment that does not load now (a lab that is down) shows what it had
            continue


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
@all_projects_option
@vault_options()
def dashboard(out: Path, env_name: str | None, count: int, all_projects: bool, keyring: Keyring) -> None:
    """Write a self-contained HTML site of the fleet: per environment each host's last drift,
    deploy and health, a timeline of runs, drift over time; a page per host with its runs. This
    project's runs (see ``hxinfra history``), or every project's with --all-projects.

    \b
    Examples:
      hxinfra dashboard --out dashboard && xdg-open dashboard/index.html
    """
    try:
        runs = history.runs(env=env_name, limit=count, project=this_project(all_projects))
        items = history.item_counts()
    except history.HistoryError as e:
        raise HxError(str(e)) from None
    states = build_states(runs, items)
    _register(states, keyring)
    files = render_site(states, out)
    click.echo(f"dashboard: {len(files)} page(s) in {out} ({out / 'index.html'})", err=True)
