"""Prometheus node exporter, desired state: the defaults, the exporter's arguments file computed
from host data alone, and what the other parts need of it (its opening, backup, health checks).

Debian's ``prometheus-node-exporter`` reads its command line from ``/etc/default/prometheus-node-exporter``
(``ARGS=...``); that one whole file is all hxinfra manages. The exporter listens on the host's own
address, never on every address, and the firewall lets only the scrapers reach it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploys.common import admin_networks, templates_root
from hxinfra.components import Backup, Opening
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.render import render, template_context
from hxinfra.validate import abs_path, collect, ip_address, name, network, port

DEFAULTS: dict[str, Any] = {
    # Off unless an environment or a group turns it on: which hosts are scraped, and by whom, is an
    # operator's decision (node_exporter_enabled: true in group_vars).
    "node_exporter_enabled": False,
    # Address and port it listens on: "" = the host's own address (its ssh_hostname when an IP).
    "node_exporter_listen_address": "",
    "node_exporter_port": 9100,
    # Who may scrape it (CIDR list): [] = the admin networks (hx_admin_networks).
    "node_exporter_scrapers": [],
    # Collectors turned on besides the exporter's defaults (e.g. processes), and default collectors
    # turned off. Names as the exporter spells them (--collector.<name>).
    "node_exporter_collectors": [],
    "node_exporter_disabled_collectors": [],
    # Where other jobs drop *.prom files for the textfile collector (Debian's directory).
    "node_exporter_textfile_dir": "/var/lib/prometheus/node-exporter",
}

PACKAGE = "prometheus-node-exporter"
UNIT = "prometheus-node-exporter.service"
ARGS_FILE = "/etc/default/prometheus-node-exporter"
BINARY = "/usr/bin/prometheus-node-exporter"
TEXTFILE_DIR = "node_exporter_textfile_dir"
COLLECTOR = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_-]*)*")


def enabled(data: Mapping[str, Any]) -> bool:
    return bool(data["node_exporter_enabled"])


def listen_address(data: Mapping[str, Any]) -> str:
    """Where it listens: explicit, else the host's own address (its ssh_hostname when an IP)."""
    return str(data["node_exporter_listen_address"] or data.get("ssh_hostname") or "127.0.0.1")


def url(data: Mapping[str, Any]) -> str:
    return f"http://{listen_address(data)}:{int(data['node_exporter_port'])}/metrics"


def scrapers(data: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(s) for s in data["node_exporter_scrapers"]) or admin_networks(data)


def args_file(data: Mapping[str, Any]) -> str:
    """The whole arguments file; the template names itself in its managed header."""
    context = template_context(data, {"listen": listen_address(data)})
    return render(templates_root(), "node_exporter/etc/default/prometheus-node-exporter.j2", context)


def desired_config(data: Mapping[str, Any]) -> list[ConfigItem]:
    """The arguments file (world-readable, as Debian ships it: it holds no secret); nothing when off."""
    return [ManagedFile(ARGS_FILE, args_file(data))] if enabled(data) else []


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: every path the deploy manages on the host."""
    return desired_config(data)


def check_command(data: Mapping[str, Any]) -> str:
    """The validator of a changed arguments file: the exporter itself parses the arguments as the
    unit would pass them (an unknown flag or collector fails, naming it) and stops at --version;
    the running exporter is not touched until then. What it prints is shown only when it fails: the
    exporter's own error, naming the flag."""
    return f"sh -c '. {ARGS_FILE} && exec {BINARY} $ARGS --version'"


def rollback(data: Mapping[str, Any], host_name: str) -> tuple[str, str]:
    """A restored previous arguments file (hxinfra restore --config node_exporter): parsed by the
    exporter, then the exporter restarted."""
    return check_command(data), f"systemctl restart {UNIT}"


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value that goes into the arguments file or the firewall has its shape."""

    def collectors(key: str) -> Any:
        return lambda d: [name(c, f"{key}[{i}]", COLLECTOR) for i, c in enumerate(d[key])]

    return collect(
        data,
        {
            "node_exporter_listen_address": lambda d: ip_address(listen_address(d), "node_exporter_listen_address"),
            "node_exporter_port": lambda d: port(d["node_exporter_port"], "node_exporter_port"),
            "node_exporter_scrapers": lambda d: [
                network(s, f"node_exporter_scrapers[{i}]") for i, s in enumerate(d["node_exporter_scrapers"])
            ],
            "node_exporter_collectors": collectors("node_exporter_collectors"),
            "node_exporter_disabled_collectors": collectors("node_exporter_disabled_collectors"),
            "node_exporter_textfile_dir": lambda d: abs_path(
                d["node_exporter_textfile_dir"], "node_exporter_textfile_dir"
            ),
        },
    )


def openings(data: Mapping[str, Any], host_name: str) -> list[Opening]:
    """Its port, for the scrapers only (closed when it is off)."""
    if not enabled(data):
        return []
    return [Opening(int(data["node_exporter_port"]), "node exporter metrics for the scrapers", sources=scrapers(data))]


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    """Its arguments file and the textfile collector's drop directory."""
    return Backup(paths=(ARGS_FILE, str(data["node_exporter_textfile_dir"]))) if enabled(data) else Backup()


METRICS_PROBE = (
    "import sys, urllib.request\n"
    "body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()\n"
    "found = [line for line in body.splitlines() if line.startswith('node_uname_info')]\n"
    "print(found[0] if found else 'no node_uname_info in ' + sys.argv[1])\n"
    "sys.exit(0 if found else 1)\n"
)


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The exporter runs, listens on its address and serves the host's metrics (none when off)."""
    import shlex

    from hxinfra.health import Check, port_listening, service_active

    if not enabled(data):
        return []
    where = url(data)
    return [
        service_active(UNIT, "node_exporter"),
        port_listening(int(data["node_exporter_port"]), "node_exporter", listen_address(data)),
        Check(
            "the exporter serves the host's metrics",
            f"python3 -c {shlex.quote(METRICS_PROBE)} {shlex.quote(where)}",
            "node_exporter",
        ),
    ]
