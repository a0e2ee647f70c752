"""nginx as the HX web UI front end.

A reverse proxy in front of the web UI (an app on ``nginx_upstream_port``, 3000 by
default) with security headers, gzip, access/error logs, an optional TLS server block, and a
``/health`` location that is proxied to the upstream, so it fails when the app is down
(the old role served a static "healthy" file).

Configuration changes are one validated transaction (``nginx -t``): if validation fails, the
previous files are restored and nginx keeps serving the old config; nginx reloads only after
a validated change.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.files import FileContents
from pyinfra.operations.util import any_changed

from deploys.ca_trust.config import CERT_DIR
from deploys.common import FLEET
from deploys.nginx.config import (
    DEFAULTS,
    Member,
    backend_check,
    backup,
    check_data,
    default_pool,
    desired_config,
    health,
    openings,
    parse_pool,
    plan,
    pool_config,
    pool_path,
    rollback,
    site_check,
)
from deploys.webui import serving
from deploys.webui.config import DEFAULTS as WEBUI_DEFAULTS
from deploys.webui.config import other
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.desired import ManagedFile
from hxinfra.ops import system
from hxinfra.ops.configset import config_set
from hxinfra.ops.rollback import verify_or_restore

COMPONENT = Component(
    "nginx",
    DEFAULTS,
    groups=("web_servers",),
    tags=("packages", "config", "security", "service"),
    plan=plan,
    check=check_data,
    health=health,
    serves=True,
    rollback=rollback,
    openings=openings,
    backup=backup,
    root_listeners=("nginx",),
    ansible={
        "hx_webui_server_name": "nginx_server_name",
        "hx_webui_ssl_enabled": "nginx_tls",
        "hx_webui_ssl_port": "nginx_https_port",
        "hx_webui_web_server_port": "nginx_http_port",
    },
)


@deploy("nginx", data_defaults=DEFAULTS)
def nginx() -> None:
    """Install nginx and converge the web UI site; reload only after a validated change."""
    data = component_data(
        COMPONENT, host.data, extra_keys=(*FLEET.all_keys(), *CERT_DIR, "hx_members"), defaults=CERT_DIR
    )
    items = desired_config(data, host.name)
    pool = live_pool(data)
    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install the nginx package and curl (for the check after a pool switch)",
            packages=[data["nginx_package"], "curl"],
            update=True,
            cache_time=24 * 3600,
        )
    switch = None
    if step(COMPONENT, host.data, "config"):  # first: the site names the pool's upstream
        switch = config_set(
            name="Write the web UI pool, validated by nginx -t and a health check of every serving backend",
            items=[ManagedFile(pool_path(data), pool_config(data, pool))],
            validate=f"nginx -t && {{ {backend_check(data, pool)}; }}",
            validate_label="nginx -t and the new backends' health",
        )
    config = None
    if step(COMPONENT, host.data, "config", "security"):
        config = config_set(
            name="Write the nginx site, its conf.d file and links, validated by nginx -t",
            items=items,
            validate="nginx -t",
        )
    if step(COMPONENT, host.data, "service"):
        system.service(name="Start and enable nginx.service", service="nginx.service", running=True, enabled=True)
    changed = [op for op in (config, switch) if op is not None]
    if changed:  # the handler of the config steps: runs with them, and only after a validated change
        system.service(
            name="Reload nginx.service after a validated config change",
            service="nginx.service",
            reloaded=True,
            _if=any_changed(*changed),
        )
    if switch is not None:
        verify_or_restore(
            name="Check the site's health through nginx; on failure restore the previous pool",
            check=site_check(data, host.name, retries=10),
            paths=[pool_path(data)],
            then="nginx -t && systemctl reload nginx",
            _if=switch.did_change,
        )


def live_pool(data: dict[str, Any]) -> list[Member]:
    """The pool as the hosts are about to be: each member of the group at the colour its web UI
    deploy serves (read from that host: its release state and data). A member that cannot be
    asked keeps its place and port in the current pool (else the data's port)."""
    group = data["nginx_upstream_group"]
    members = (data.get("hx_members") or {}).get(group, []) if group else []
    pool: list[Member] = []
    current: dict[str, tuple[int, int | None]] | None = None
    for member in members:
        address = str(member["address"])
        app = host.inventory.get_host(member["name"], None)
        ports = (app.data.get("webui_ports") if app is not None else None) or WEBUI_DEFAULTS["webui_ports"]
        try:
            color = serving(app)[0] if app is not None else ""
        except Exception as e:  # noqa: BLE001 - an unreachable member keeps its place in the pool
            logger.warning(
                f"{host.name}: pool member {member['name']}: its serving colour is unknown ({e}); "
                "it keeps its port in the current pool"
            )
            color = ""
        if color:
            pool.append((address, int(ports[color]), int(ports[other(color)])))
            continue
        if current is None:
            current = parse_pool(host.get_fact(FileContents, path=pool_path(data)) or [])
        pool.append((address, *current.get(address, (int(data["nginx_upstream_port"]), None))))
    return pool or default_pool(data)
