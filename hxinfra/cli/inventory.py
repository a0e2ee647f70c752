"""``hxinfra inventory``: hosts, groups and merged host data (secrets masked)."""

import json
from typing import Any

import click

from hxinfra.ansible import host_vars
from hxinfra.cli.common import ENV_OPTION, _load, _mask, echo_json
from hxinfra.cli.vault import vault_options
from hxinfra.components import ENGINE
from hxinfra.inventory import MEMBERS_KEY, Environment
from hxinfra.known_hosts import FILE_KEY, STRICT_KEY
from hxinfra.secrets import Keyring


@click.group()
def inventory() -> None:
    """Show environments: hosts, groups and merged host data."""


@inventory.command("list")
@ENV_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "ansible"]),
    default="table",
    help="ansible: the JSON of ansible-inventory --list (hosts, groups, children, merged vars).",
)
@vault_options()
def inventory_list(env_name: str, as_json: bool, fmt: str, keyring: Keyring) -> None:
    """List the hosts of an environment with their address and groups."""
    env = _load(env_name)
    if fmt == "ansible":
        echo_json(json.dumps(ansible_list(env), indent=4, sort_keys=True))
        return
    hosts = list(env.hosts.values())
    if as_json:
        rows = [{"host": h.name, "address": h.address, "groups": h.groups} for h in hosts]
        echo_json(json.dumps({"environment": env.name, "hosts": rows}, indent=2))
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
            echo_json(json.dumps(data, indent=2, default=str))
            return
        for key, v in data.items():
            click.echo(f"{key} = {json.dumps(v['value'], default=str)}")
            click.echo(f"    from {v['layer']} ({v['source']})")
            for o in v["overrides"]:
                click.echo(f"    overrides {o}")
        return
    # hx_members is the whole inventory's groups (see `inventory list`), not this host's data
    merged = {k: _mask(k, v) for k, v in sorted(env.host_data(host, with_defaults=True).items()) if k != MEMBERS_KEY}
    if as_json:
        echo_json(json.dumps(merged, indent=2, default=str))
    else:
        for key, value in merged.items():
            click.echo(f"{key}: {json.dumps(value, default=str)}")


# ---------------------------------------------------------------------------- deploy


def ansible_list(env: Environment) -> dict[str, Any]:
    """The environment as ``ansible-inventory --list`` prints it: groups, children, merged host vars
    (vault values stay encrypted), hosts in no group under ``ungrouped``."""
    out: dict[str, Any] = {"_meta": {"hostvars": {}}}
    skip = {*ENGINE.defaults, STRICT_KEY, FILE_KEY}
    for name in env.hosts:
        out["_meta"]["hostvars"][name] = host_vars(env.host_data(name), skip)
    groups = env.groups
    nested = {c for kids in env.children.values() for c in kids}
    for group, members in groups.items():
        own = [h for h in members if group in env.hosts[h].groups]
        body: dict[str, Any] = {}
        if own:
            body["hosts"] = own
        if env.children.get(group):
            body["children"] = list(env.children[group])
        out[group] = body
    ungrouped = [h.name for h in env.hosts.values() if not h.groups]
    if ungrouped:
        out["ungrouped"] = {"hosts": ungrouped}
    top = dict.fromkeys(["ungrouped", *[g for g in groups if g not in nested]])  # once each (an import has ungrouped)
    out["all"] = {"children": list(top)}
    return out
