"""``hxinfra import-ansible``: move an existing Ansible inventory over in one command."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hxinfra.ansible_import import import_inventory
from hxinfra.cli.common import _warn, echo_json
from hxinfra.components import registered
from hxinfra.inventory import load_environment
from hxinfra.paths import project_root


@click.command("import-ansible")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--env", "-E", "env_name", required=True, help="Name of the environment to write.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The inventories directory (default: the project's inventories/).",
)
@click.option("--force", is_flag=True, help="Replace an environment that exists and differs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON to stdout.")
def import_ansible(path: Path, env_name: str, out: Path | None, force: bool, as_json: bool) -> None:
    """Import the Ansible inventory PATH (a hosts file or an inventory directory) as environment ENV.

    \b
    Reads YAML and INI inventories (children, vars at every level, host ranges), group_vars and
    host_vars (files or directories) beside it. Vault files and !vault values are copied as they
    are (never decrypted). ansible_host/port/user/... become pyinfra connector keys; the HX roles'
    variables become component keys; what does not map is kept and listed, known defects flagged.
    Writes inventories/ENV.py and inventories/ENV/, then loads and validates them.
    """
    root = project_root()
    inventories = out or root / "inventories"
    # each component says which old variables it takes (through the project's registry: the engine names none)
    components = registered()
    table = {old: new for c in components for old, new in c.ansible.items()}
    report = import_inventory(path, env_name, inventories, table, force=force, components=components)
    env = load_environment(inventories / f"{env_name}.py")
    _warn(env)
    data = {
        "environment": env_name,
        "hosts": len(env.hosts),
        "written": report.written,
        "unchanged": report.unchanged,
        "mapped": [{"from": a, "to": b, "file": f} for a, b, f in report.mapped],
        "kept": [{"name": n, "file": f, "why": w} for n, f, w in report.kept],
        "flagged": [{"name": n, "file": f, "defect": d} for n, f, d in report.flagged],
        "fill_in": [{"key": k, "placeholder": p, "hosts": h} for k, p, h in report.placeholders],
    }
    if as_json:
        echo_json(json.dumps(data, indent=2))
        return
    click.echo(
        f"imported {len(env.hosts)} host(s) as environment {env_name}: {len(report.written)} file(s) written, "
        f"{len(report.unchanged)} unchanged",
        err=True,
    )
    for a, b, f in report.mapped:
        click.echo(f"  mapped   {a} -> {b}  ({f})", err=True)
    for n, f, w in report.kept:
        click.echo(f"  kept     {n}  ({f}): {w}", err=True)
    for n, f, d in report.flagged:
        click.echo(click.style(f"  DEFECT   {n}  ({f}): {d}", fg="red"), err=True)
    if report.placeholders:
        where = f"inventories/{env_name}/group_vars/all.yml"
        click.echo(
            click.style(f"\nto fill in before the first deploy ({where}; a deploy refuses until then):", bold=True),
            err=True,
        )
        for key, value, needing in report.placeholders:
            what = "a secret: put it in the vault" if "vault_" in value else "its value"
            hosts = ", ".join(needing[:3]) + (f" and {len(needing) - 3} more" if len(needing) > 3 else "")
            click.echo(f"  {key:<24} {value:<34} {what} (needed by {hosts})", err=True)
