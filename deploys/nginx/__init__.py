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

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from deploys.ca_trust.config import CERT_DIR
from deploys.common import FLEET
from deploys.nginx.config import DEFAULTS, check_data, desired_config, plan
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.operations import config_set

COMPONENT = Component(
    "nginx", DEFAULTS, groups=("web_servers",), tags=("packages", "config", "security", "service"), plan=plan,
    check=check_data,
    ansible={"hx_webui_server_name": "nginx_server_name", "hx_webui_ssl_enabled": "nginx_tls",
             "hx_webui_ssl_port": "nginx_https_port", "hx_webui_web_server_port": "nginx_http_port"},
)  # fmt: skip


@deploy("nginx", data_defaults=DEFAULTS)
def nginx() -> None:
    """Install nginx and converge the web UI site; reload only after a validated change."""
    data = component_data(COMPONENT, host.data, extra_keys=(*FLEET.all_keys(), *CERT_DIR), defaults=CERT_DIR)
    items = desired_config(data, host.name)
    if step(COMPONENT, host.data, "packages"):
        apt.packages(
            name="Install the nginx package",
            packages=[data["nginx_package"]],
            update=True,
            cache_time=24 * 3600,
        )
    config = None
    if step(COMPONENT, host.data, "config", "security"):
        config = config_set(
            name="Write the nginx site, its conf.d file and links, validated by nginx -t",
            items=items,
            validate="nginx -t",
        )
    if step(COMPONENT, host.data, "service"):
        systemd.service(name="Start and enable nginx.service", service="nginx.service", running=True, enabled=True)
    if config is not None:  # the handler of the config step: runs with it, and only after a validated change
        systemd.service(
            name="Reload nginx.service after a validated config change",
            service="nginx.service",
            reloaded=True,
            _if=config.did_change,
        )
