"""``hxinfra lab``: the local lab fleet of real Debian hosts."""

import json
import os
from typing import Any

import click

from hxinfra.cli.common import echo_json
from hxinfra.inventory import inventory_file
from hxinfra.paths import project_root


@click.group()
@click.option(
    "--lab",
    "lab_name",
    envvar="HXINFRA_LAB",
    show_envvar=True,
    default="default",
    help="Name of the lab (several labs can coexist).",
)
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
    """Boot lab hosts: NAMEs, the first --hosts N of the topology, or the whole topology.

    Also makes what the lab's inventory reads: its CA, its vault, a certificate per host; and
    provisions the topology's domain controllers as Samba AD DCs, and starts the lab's model
    stand-in (an OpenAI-compatible server on loopback) on its API hosts.
    """
    from hxinfra.inventory import topology_hosts, topology_suites
    from hxinfra.lab.inventory import issue_host_certificates, prepare, prepare_dc
    from hxinfra.lab.model import start_model_stub

    if names and count:
        raise click.UsageError("give host names or --hosts, not both")
    root = project_root()
    prepare(lab_obj, root)  # the lab's CA and vault first: its inventory reads them
    topology = topology_hosts(inventory_file(root, "lab"))
    wanted = list(names) or (list(topology)[:count] if count else list(topology))
    hosts = lab_obj.up(wanted, log=_log, suites=topology_suites(inventory_file(root, "lab")))
    issue_host_certificates(lab_obj)
    for name in wanted:  # the lab's domain controllers become real Samba AD DCs
        if "domain_controllers" in topology.get(name, {}).get("groups", []):
            prepare_dc(lab_obj, name, log=_log)
    for name in wanted:  # the API hosts' model upstream: a lab-only OpenAI-compatible stand-in
        if "api_servers" in topology.get(name, {}).get("groups", []):
            start_model_stub(lab_obj, name)
    _echo_hosts(hosts)


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@click.pass_obj
def lab_status(lab_obj: Any, as_json: bool) -> None:
    """List the lab's hosts, addresses and whether they run."""
    hosts = lab_obj.hosts()
    if as_json:
        echo_json(json.dumps([{"name": h.name, "ip": h.ip, "state": h.state} for h in hosts], indent=2))
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


@lab.command("dir")
@click.pass_obj
def lab_dir_cmd(lab_obj: Any) -> None:
    """Print the lab's directory: its CA (pki/), vault and release artifacts (artifacts/)."""
    click.echo(lab_obj.dir)


@lab.command("down")
@click.argument("names", nargs=-1)
@click.pass_obj
def lab_down(lab_obj: Any, names: tuple[str, ...]) -> None:
    """Destroy lab hosts (all of them by default); nothing is left behind."""
    removed = lab_obj.down(list(names) or None, log=_log)
    _log(f"removed {len(removed)} host(s)" + (f": {', '.join(removed)}" if removed else ""))
