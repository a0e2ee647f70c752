"""The HX web UI on the application servers: versioned releases, two colours, blue-green.

A release is an artifact (a tarball from a path or an https URL) whose sha256 the data names; it
is verified on the controller and again on the host, then unpacked once to
``/opt/hx-webui/releases/<version>``. Two colours run from it, ``hx-webui@blue`` (port 3000) and
``hx-webui@green`` (3001), each behind a symlink to its release; the secrets (database URL with
TLS verify-full, gateway key, session and JWT secrets) are in a 0640 environment file from the
vault, with no default.

A new ``webui_version`` goes to the colour that does not serve, which must answer its health
path before the host records it as serving (``/opt/hx-webui/active``); the web tier's nginx pool
follows that record (deploys.nginx), checks every new backend before it reloads, and undoes
itself if the site fails afterwards. The old colour keeps running: ``-e webui_version=previous``
goes back without unpacking anything. The newest ``webui_keep_releases`` releases are kept.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy

from deploys.webui.config import (
    COLORS,
    DEFAULTS,
    REQUIRED,
    artifact_location,
    backup,
    check_data,
    desired_config,
    health,
    listen_address,
    openings,
    other,
    plan,
    target,
    to_prune,
)
from deploys.webui.facts import WebuiState
from deploys.webui.operations import prune, release
from hxinfra import batch
from hxinfra.artifacts import fetch
from hxinfra.components import Component
from hxinfra.deploytools import component_data, serve, step
from hxinfra.desired import ManagedFile, ManagedLink
from hxinfra.ops import system
from hxinfra.ops.configset import config_set
from hxinfra.paths import project_root
from hxinfra.validate import DataError

COMPONENT = Component(
    "webui",
    DEFAULTS,
    required=REQUIRED,
    groups=("application_servers",),
    check=check_data,
    plan=plan,
    health=health,
    serves=True,
    openings=openings,
    backup=backup,
    tags=("packages", "install", "config", "service"),
    ansible={
        "hx_webui_version": "webui_version",
        "hx_webui_port": "webui_ports",
        "deployment_color": "webui_deployment_color",
        "active_color": "webui_deployment_color",
        "target_color": "webui_deployment_color",
    },
)


def release_state(app_host: Any) -> dict[str, Any]:
    """An application server's releases and colours (WebuiState), read once per run and host:
    its own deploy and every web host's pool ask for it."""
    state: dict[str, Any] = batch.fact(
        WebuiState, on=app_host, directory=app_host.data.get("webui_dir") or DEFAULTS["webui_dir"]
    )
    return state


def serving(app_host: Any) -> tuple[str, str]:
    """(colour, version) an application server serves once this run is through: its release
    state and its data, the same decision its own deploy makes (the web tier's pool follows it)."""
    data = app_host.data
    return target(
        release_state(app_host), str(data.get("webui_version") or ""), str(data.get("webui_deployment_color") or "")
    )


@deploy("HX web UI", data_defaults=DEFAULTS)
def webui() -> None:
    """Install the runtime, unpack the release, serve it from the idle colour once healthy."""
    data = component_data(COMPONENT, host.data, extra_keys=("ssh_hostname",))
    for key in ("webui_version", "webui_db_host", "webui_gateway_url"):
        if not data[key]:
            raise DataError(f"{key}: must be set for the web UI (see inventories/group_vars/application_servers.yml)")
    d = data["webui_dir"]
    state = release_state(host)
    color, version = serving(host)
    present = version in state["releases"]
    if not present and version not in data["webui_releases"]:
        raise DataError(f"webui_version: {version} is not in webui_releases (its checksum is needed)")
    artifact = (
        "" if present else str(fetch(artifact_location(data, version), data["webui_releases"][version], project_root()))
    )
    unit = f"hx-webui@{color}.service"
    standby = f"hx-webui@{other(color)}.service"
    has_standby = bool(state["slots"].get(other(color)))
    changes = []
    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install the web UI's runtime packages",
            packages=data["webui_packages"],
            update=True,
            cache_time=24 * 3600,
        )
    if step(COMPONENT, host.data, "install"):
        system.system_user(name="Create the hx-webui system user", user=data["webui_user"], home=d)
        changes.append(
            release(
                name="Unpack the web UI release (checksum verified)",
                directory=d,
                version=version,
                artifact=artifact,
                sha256=data["webui_releases"].get(version, ""),
                present=present,
            )
        )
        changes.append(
            config_set(
                name="Point the target colour at its release",
                items=[ManagedLink(f"{d}/{color}", f"releases/{version}")],
            )
        )
    config = None
    if step(COMPONENT, host.data, "config"):
        config = config_set(name="Write the web UI's environment files and colour unit", items=desired_config(data))
        changes.append(config)
    if step(COMPONENT, host.data, "service"):
        serve(
            unit,
            changes,
            f"http://{listen_address(data)}:{int(data['webui_ports'][color])}{data['webui_health_path']}",
            int(data["webui_start_timeout"]),
            "the target colour",
        )
        standby_up = system.service(
            name="Keep the standby colour running (a switch back is instant)",
            service=standby,
            running=True,
            enabled=True,
            _if=lambda: has_standby,
        )
        system.service(
            name="Restart the standby colour after a config change",
            service=standby,
            restarted=True,
            _if=lambda: has_standby and config is not None and config.did_change() and not standby_up.did_change(),
        )
        config_set(
            name="Record the colour this host serves (the web tier's pool follows it)",
            items=[ManagedFile(f"{d}/active", f"{color}\n")],
        )
    keep = {v for c in COLORS if (v := state["slots"].get(c) if c != color else version)}
    prune(
        name="Remove releases beyond webui_keep_releases",
        directory=d,
        versions=to_prune(state, int(data["webui_keep_releases"]), keep),
    )
