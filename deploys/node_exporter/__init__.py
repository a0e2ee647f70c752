"""Prometheus node exporter on every host that turns it on: the host's metrics for the scrapers.

Debian's ``prometheus-node-exporter`` (without its recommended collector scripts) and ``python3`` (the
probes that it answers need ``http.client``, which python3-minimal lacks); its one arguments file
``/etc/default/prometheus-node-exporter`` (listen on the host's own address, the textfile directory,
the collectors); the service running. A changed arguments file is parsed by the exporter itself
before the running one is restarted (an unknown collector fails there, and the previous file comes
back); after a change it must serve ``/metrics`` again, or the deploy fails with the unit's last log
lines. The firewall opens its port to the scrapers only (``node_exporter_scrapers``, else the admin
networks), from this component's declaration; backups hold its arguments file and textfile
directory; ``hxinfra health`` checks it.

On a host where it is off (the default) it does nothing, as a component does on a host outside its
groups: no operation, so a check run reads nothing for it either.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.node_exporter.config import (
    DEFAULTS,
    PACKAGE,
    UNIT,
    backup,
    check_command,
    check_data,
    desired_config,
    enabled,
    health,
    openings,
    plan,
    rollback,
    url,
)
from hxinfra.components import Component
from hxinfra.deploytools import component_data, serve, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "node_exporter",
    DEFAULTS,
    check=check_data,
    plan=plan,
    health=health,
    rollback=rollback,
    openings=openings,
    backup=backup,
    tags=("packages", "config", "service"),
)


@deploy("Prometheus node exporter", data_defaults=DEFAULTS)
def node_exporter() -> None:
    """Install the exporter, converge its arguments (parsed by the exporter first) and keep it
    serving; restart only after an install or a validated change."""
    data = component_data(COMPONENT, host.data, extra_keys=("ssh_hostname", "hx_admin_networks"))
    if not enabled(data):  # off: as on a host outside its groups, no operation at all (a check run too)
        return
    changes = []
    if step(COMPONENT, host.data, "packages"):
        changes.append(
            system.packages(
                name="Install the Prometheus node exporter, and python3 for the check that it answers",
                packages=[PACKAGE, "python3"],
                update=True,
                cache_time=24 * 3600,
                no_recommends=True,
            )
        )
    if step(COMPONENT, host.data, "config"):
        changes.append(
            config_set(
                name="Write the node exporter's arguments, parsed by the exporter first",
                items=desired_config(data),
                validate=check_command(data),
                validate_label="the exporter's own parse of its arguments",
            )
        )
    if step(COMPONENT, host.data, "service"):
        serve(UNIT, changes, url(data), 30, "the node exporter")
