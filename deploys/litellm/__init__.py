"""The LiteLLM gateway on the API servers: an OpenAI-compatible proxy in front of the models.

A ``litellm`` system user, a venv under ``/opt/litellm`` with the pinned ``litellm[proxy]``
(from a wheelhouse the controller builds once for the hosts' Python, or the host's pip through a
proxy), ``/etc/litellm/config.yaml`` in LiteLLM's schema without secrets, the secrets in a 0640
environment file, and a hardened unit listening on the host's address.

A changed configuration is validated by LiteLLM itself: a trial instance starts on a spare
loopback port with the new files and must answer ``/health/liveliness``; otherwise the previous
files are restored and the running gateway never sees them. After a change the service restarts
and must answer again, or the deploy fails with the unit's last log lines. A re-run installs
nothing and restarts nothing.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.litellm.config import (
    DEFAULTS,
    REQUIRED,
    UNIT,
    backup,
    check_command,
    check_data,
    desired_config,
    health,
    openings,
    plan,
    requirements,
    rollback,
    url,
)
from hxinfra.components import Component
from hxinfra.deploytools import component_data, serve, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set
from hxinfra.ops.python import venv_install

COMPONENT = Component(
    "litellm",
    DEFAULTS,
    required=REQUIRED,
    groups=("api_servers",),
    check=check_data,
    plan=plan,
    health=health,
    serves=True,
    rollback=rollback,
    openings=openings,
    backup=backup,
    tags=("packages", "install", "config", "service"),
    ansible={"litellm_proxy_port": "litellm_port", "litellm_master_key": "litellm_master_key"},
)


@deploy("LiteLLM gateway", data_defaults=DEFAULTS)
def litellm() -> None:
    """Install the pinned gateway, converge its config (validated by a trial start) and keep it
    answering; restart only after an install or a validated change."""
    data = component_data(COMPONENT, host.data, extra_keys=("ssh_hostname", "ca_trust_host_cert_dir"))
    changes = []
    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install python3-venv for the gateway's venv",
            packages=["python3-venv"],
            update=True,
            cache_time=24 * 3600,
        )
    if step(COMPONENT, host.data, "install"):
        system.system_user(name="Create the litellm system user", user=data["litellm_user"], home="/var/lib/litellm")
        pip_env = {
            "HTTPS_PROXY": data["litellm_pip_proxy"],
            "HTTP_PROXY": data["litellm_pip_proxy"],
            "PIP_CERT": data["litellm_pip_cert"],
        }
        changes.append(
            venv_install(
                name="Install the pinned litellm[proxy] into the gateway's venv",
                venv=data["litellm_venv"],
                requirements=requirements(data),
                wheelhouse=data["litellm_install"] == "wheelhouse",
                pip_env=pip_env,
            )
        )
    if step(COMPONENT, host.data, "config"):
        changes.append(
            config_set(
                name="Write the gateway's config.yaml, environment file and unit, validated by a trial start",
                items=desired_config(data),
                validate=check_command(data),
                validate_label="a trial start of LiteLLM",
            )
        )
    if step(COMPONENT, host.data, "service"):
        serve(
            UNIT,
            changes,
            url(data, "/health/liveliness"),
            int(data["litellm_start_timeout"]),
            "the gateway",
        )
