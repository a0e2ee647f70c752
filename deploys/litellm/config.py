"""LiteLLM gateway, desired state: the defaults, and its config.yaml, environment file and systemd
unit computed from host data alone; every value rendered is checked first.

The config is LiteLLM's own schema (``model_list``, ``litellm_settings``, ``router_settings``,
``general_settings``). Secrets never enter it: the master key, the provider keys and the database
URL are read by LiteLLM from its environment (``os.environ/NAME`` references), and the
environment file is 0640 root:litellm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import yaml

from deploys.common import templates_root
from hxinfra.components import Backup, Opening
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.memo import by_reads
from hxinfra.render import managed_header, render, systemd_environment, template_context
from hxinfra.validate import DataError, abs_path, choice, collect, fields, ip_address, name, one_line, port

DEFAULTS: dict[str, Any] = {
    # The pinned release; a change reinstalls and restarts. 1.106.2 is the newest whose
    # dependencies resolve from this project's package index (newer ones need a certifi it lacks).
    "litellm_version": "1.106.2",
    # Installed beside it, pinned. LiteLLM's error handler imports prisma (its database client):
    # without the module an unauthenticated request gets a 500 instead of a 401.
    "litellm_extra_requirements": ["prisma==0.15.0"],
    # How the hosts get it: "wheelhouse" (the controller downloads every wheel once for the hosts'
    # Python and uploads it: no route to an index needed) or "pip" (the host's pip, through
    # litellm_pip_proxy when set).
    "litellm_install": "wheelhouse",
    "litellm_pip_proxy": "",
    # CA bundle on the host that the proxy's TLS is checked against ("" = the system's).
    "litellm_pip_cert": "",
    # The venv, the config directory and the service's system user.
    "litellm_venv": "/opt/litellm",
    "litellm_config_dir": "/etc/litellm",
    "litellm_user": "litellm",
    # Address and port the gateway listens on: "" = the host's own address (never 0.0.0.0 unless
    # said here).
    "litellm_listen_address": "",
    "litellm_port": 4000,
    # Worker processes of the proxy.
    "litellm_workers": 1,
    # The models it serves: {name, model, api_base (optional), api_key_env (optional: the name
    # of an entry of litellm_provider_keys)}; "model" is LiteLLM's provider/model string.
    "litellm_models": [],
    # Provider API keys by environment variable name (values from the vault).
    "litellm_provider_keys": {},
    # Blocks of LiteLLM's config.yaml, passed as they are (no secrets: use os.environ/NAME).
    "litellm_settings": {"telemetry": False, "drop_params": True},
    "litellm_router_settings": {},
    "litellm_general_settings": {},
    # PostgreSQL URL of its database ("" = none). LiteLLM's database layer (Prisma) downloads
    # engines at start; hosts without internet run without it (the role and database still exist).
    "litellm_database_url": "",
    # The service certificate it serves HTTPS with: the name of a ca_trust_host_certs entry (its
    # key_group ssl-cert, key_mode "0640": the gateway reads its key as itself). The certificate
    # names the host's FQDN and its address (clients use the one, the deploy's probe the other).
    # "" = plain HTTP, for a gateway that only its own host's loopback reaches.
    "litellm_tls_host_cert": "",
    # Seconds the service has to answer /health/liveliness after a (re)start.
    "litellm_start_timeout": 120,
    # A changed config is first started on 127.0.0.1:<this port>; it replaces the running one
    # only if it answers /health/liveliness there.
    "litellm_check_port": 4099,
}

REQUIRED: dict[str, Any] = {
    # The gateway's master key (sk-...), from the vault: LiteLLM refuses to start without one.
    "litellm_master_key": str,
}

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
MODEL = re.compile(r"[A-Za-z0-9_./:@-]+")
URL = re.compile(r"https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9/_.~-]*)?")
UNIT = "litellm.service"


def listen_address(data: Mapping[str, Any]) -> str:
    """Where it listens: explicit, else the host's own address (its ssh_hostname when an IP)."""
    return str(data["litellm_listen_address"] or data.get("ssh_hostname") or "127.0.0.1")


def tls_files(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """The certificate and key the gateway serves HTTPS with (None: plain HTTP)."""
    from deploys.ca_trust.config import DEFAULTS as CA_DEFAULTS
    from deploys.ca_trust.config import host_cert_paths

    name = data["litellm_tls_host_cert"]
    if not name:
        return None
    directory = data.get("ca_trust_host_cert_dir") or CA_DEFAULTS["ca_trust_host_cert_dir"]
    return host_cert_paths({"ca_trust_host_cert_dir": directory}, str(name))


def url(data: Mapping[str, Any], path: str = "") -> str:
    """The gateway as its own host reaches it (https when it serves TLS)."""
    scheme = "https" if tls_files(data) else "http"
    return f"{scheme}://{listen_address(data)}:{int(data['litellm_port'])}{path}"


def requirements(data: Mapping[str, Any]) -> list[str]:
    """What the venv holds: the pinned proxy and its pinned companions."""
    return [f"litellm[proxy]=={data['litellm_version']}", *data["litellm_extra_requirements"]]


@by_reads  # the same models and settings on every gateway: dumped once
def config_yaml(data: Mapping[str, Any]) -> str:
    """LiteLLM's config.yaml; secrets only as ``os.environ/NAME`` references."""
    models = []
    for m in data["litellm_models"]:
        params: dict[str, Any] = {"model": m["model"]}
        if m.get("api_base"):
            params["api_base"] = m["api_base"]
        if m.get("api_key_env"):
            params["api_key"] = f"os.environ/{m['api_key_env']}"
        models.append({"model_name": m["name"], "litellm_params": params})
    general = {**data["litellm_general_settings"], "master_key": "os.environ/LITELLM_MASTER_KEY"}
    if data["litellm_database_url"]:
        general["database_url"] = "os.environ/DATABASE_URL"
    doc = {
        "model_list": models,
        "litellm_settings": dict(data["litellm_settings"]),
        "router_settings": dict(data["litellm_router_settings"]),
        "general_settings": general,
    }
    return managed_header("deploys/litellm") + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def environment(data: Mapping[str, Any]) -> dict[str, str]:
    """The service's environment: every secret it needs, and no fetch of the cost map at start."""
    env = {"LITELLM_MASTER_KEY": str(data["litellm_master_key"]), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.update({k: str(v) for k, v in data["litellm_provider_keys"].items()})
    if data["litellm_database_url"]:
        env["DATABASE_URL"] = str(data["litellm_database_url"])
    return env


def paths(data: Mapping[str, Any]) -> dict[str, str]:
    d = data["litellm_config_dir"]
    return {"config": f"{d}/config.yaml", "env": f"{d}/litellm.env", "unit": f"/etc/systemd/system/{UNIT}"}


def desired_config(data: Mapping[str, Any]) -> list[ConfigItem]:
    """config.yaml (0640: it names the models and upstreams), the 0640 environment file with the
    secrets, and the hardened unit."""
    p, user = paths(data), data["litellm_user"]
    tls = tls_files(data) or ("", "")
    context = template_context(
        data,
        {
            "listen": listen_address(data),
            "env_file": p["env"],
            "config_file": p["config"],
            "tls_cert": tls[0],
            "tls_key": tls[1],
        },
    )
    return [
        ManagedFile(p["config"], config_yaml(data), mode="0640", group=user),
        ManagedFile(
            p["env"],
            managed_header("deploys/litellm") + systemd_environment(environment(data)),
            mode="0640",
            group=user,
            sensitive=True,
        ),
        ManagedFile(p["unit"], render(templates_root(), "litellm/etc/systemd/system/litellm.service.j2", context)),
    ]


def _model(entry: Any, i: int, keys: Mapping[str, Any]) -> Mapping[str, Any]:
    what = f"litellm_models[{i}]"
    fields(entry, what, ("name", "model"), ("api_base", "api_key_env"))
    name(entry["name"], f"{what}.name")
    if not MODEL.fullmatch(one_line(entry["model"], f"{what}.model")):
        raise DataError(f"{what}.model: {entry['model'][:40]!r} is not a provider/model name")
    if entry.get("api_base") and not URL.fullmatch(one_line(entry["api_base"], f"{what}.api_base")):
        raise DataError(f"{what}.api_base: not an http(s) URL without query or credentials")
    env = entry.get("api_key_env")
    if env and env not in keys:
        raise DataError(f"{what}.api_key_env: {env!r} is not a key of litellm_provider_keys")
    return cast(Mapping[str, Any], entry)  # checked above: a mapping of known keys


def _settings(value: Any, what: str) -> None:
    """A block passed to LiteLLM as it is: plain YAML values, one-line strings, no inline secret."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            one_line(str(k), what)
            if (
                re.search(r"(?i)(key|secret|password|token)", str(k))
                and isinstance(v, str)
                and not v.startswith("os.environ/")
            ):
                raise DataError(f"{what}.{k}: looks like a secret; give it as os.environ/NAME (litellm_provider_keys)")
            _settings(v, f"{what}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _settings(v, f"{what}[{i}]")
    elif isinstance(value, str):
        one_line(value, what)
    elif not isinstance(value, (int, float, bool)) and value is not None:
        raise DataError(f"{what}: {type(value).__name__} is not a YAML scalar, list or mapping")


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value rendered into the config, the environment file or the unit has its shape."""
    keys = data["litellm_provider_keys"]
    return collect(
        data,
        {
            "litellm_version": lambda d: name(d["litellm_version"], "litellm_version"),
            "litellm_extra_requirements": lambda d: [_pinned(r) for r in d["litellm_extra_requirements"]],
            "litellm_install": lambda d: choice(d["litellm_install"], "litellm_install", ("wheelhouse", "pip")),
            "litellm_pip_proxy": lambda d: d["litellm_pip_proxy"] and _url(d["litellm_pip_proxy"], "litellm_pip_proxy"),
            "litellm_pip_cert": lambda d: d["litellm_pip_cert"] and abs_path(d["litellm_pip_cert"], "litellm_pip_cert"),
            "litellm_venv": lambda d: abs_path(d["litellm_venv"], "litellm_venv"),
            "litellm_config_dir": lambda d: abs_path(d["litellm_config_dir"], "litellm_config_dir"),
            "litellm_user": lambda d: name(d["litellm_user"], "litellm_user"),
            "litellm_listen_address": lambda d: ip_address(listen_address(d), "litellm_listen_address"),
            "litellm_port": lambda d: port(d["litellm_port"], "litellm_port"),
            "litellm_check_port": lambda d: port(d["litellm_check_port"], "litellm_check_port"),
            "litellm_workers": lambda d: _positive(d["litellm_workers"], "litellm_workers"),
            "litellm_start_timeout": lambda d: _positive(d["litellm_start_timeout"], "litellm_start_timeout"),
            "litellm_models": lambda d: [_model(m, i, keys) or m for i, m in enumerate(d["litellm_models"])],
            "litellm_provider_keys": lambda d: [
                (name(k, "litellm_provider_keys (variable name)", ENV_NAME), one_line(v, f"litellm_provider_keys[{k}]"))
                for k, v in keys.items()
            ],
            "litellm_settings": lambda d: _settings(d["litellm_settings"], "litellm_settings"),
            "litellm_router_settings": lambda d: _settings(d["litellm_router_settings"], "litellm_router_settings"),
            "litellm_general_settings": lambda d: _settings(d["litellm_general_settings"], "litellm_general_settings"),
            # required where the gateway runs (checked there); a host outside api_servers has none
            "litellm_master_key": lambda d: _master_key(d.get("litellm_master_key")),
            "litellm_database_url": lambda d: one_line(d["litellm_database_url"], "litellm_database_url"),
            "litellm_tls_host_cert": lambda d: (
                d["litellm_tls_host_cert"] and name(d["litellm_tls_host_cert"], "litellm_tls_host_cert")
            ),
        },
    )


def _pinned(value: Any) -> str:
    """``name==version`` (extras allowed): a venv holds exactly what was tested."""
    from packaging.requirements import InvalidRequirement, Requirement

    text = one_line(value, "litellm_extra_requirements")
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise DataError(f"litellm_extra_requirements: {text[:40]!r} is not a requirement") from None
    if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "==" or req.marker or req.url:
        raise DataError(f"litellm_extra_requirements: {text[:40]!r} must be pinned as name==version")
    return text


def _url(value: Any, what: str) -> str:
    if not URL.fullmatch(one_line(value, what)):
        raise DataError(f"{what}: not an http(s) URL")
    return str(value)


def _positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DataError(f"{what}: must be a positive whole number")
    return value


def _master_key(value: Any) -> None:
    from hxinfra.secrets import Vaulted

    if value is None or isinstance(value, Vaulted):
        return  # required where it applies (a type check); a vault value is checked once decrypted
    text = one_line(value, "litellm_master_key")
    if not text.startswith("sk-") or len(text) < 16:
        raise DataError("litellm_master_key: must start with 'sk-' and be at least 16 characters (from the vault)")


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The gateway runs, listens on its address and answers /health/liveliness."""
    from hxinfra.health import Check, port_listening, service_active
    from hxinfra.ops.probe import probe_command

    live = url(data, "/health/liveliness")  # over TLS, checked against the system's trust store
    return [
        service_active(UNIT, "litellm"),
        port_listening(int(data["litellm_port"]), "litellm", listen_address(data)),
        Check("the gateway answers /health/liveliness", f"{probe_command(live, 5)} && echo '200 {live}'", "litellm"),
    ]


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: every path the deploy manages on the host."""
    return desired_config(dict(data))


def check_command(data: Mapping[str, Any]) -> str:
    """The validator of a changed config: LiteLLM itself starts with the new files on
    127.0.0.1:<litellm_check_port>, as the service would (its user, its environment file), and
    must answer /health/liveliness; the running gateway is not touched until then."""
    from shlex import quote as q

    from hxinfra.ops.probe import probe_command

    p, unit = paths(data), "litellm-config-check"
    tls = tls_files(data)
    # with TLS, the trial serves the same certificate and key as itself (the key readable, the pair valid)
    ssl_args = f" --ssl_certfile_path {q(tls[0])} --ssl_keyfile_path {q(tls[1])}" if tls else ""
    groups = " -p SupplementaryGroups=ssl-cert" if tls else ""
    run = (
        f"systemd-run --quiet --unit={unit} -p User={q(data['litellm_user'])}{groups} -p EnvironmentFile={q(p['env'])} "
        f"-p StateDirectory=litellm -p WorkingDirectory=/var/lib/litellm -E HOME=/var/lib/litellm "
        f"{q(data['litellm_venv'])}/bin/litellm --config {q(p['config'])} --host 127.0.0.1 --port {int(data['litellm_check_port'])}"  # noqa: E501
        f"{ssl_args}"
    )
    probe = probe_command(
        f"{'https' if tls else 'http'}://127.0.0.1:{int(data['litellm_check_port'])}/health/liveliness",
        int(data["litellm_start_timeout"]),
        unit=unit,
    )
    stop = f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null"
    return f"{{ {stop}; {run} && {{ {probe}; }}; rc=$?; {stop}; exit $rc; }}"


def rollback(data: Mapping[str, Any], host_name: str) -> tuple[str, str]:
    """A restored previous config (hxinfra restore --config litellm): a trial start of LiteLLM with
    it, then the unit reloaded and the gateway restarted."""
    return check_command(data), f"systemctl daemon-reload && systemctl restart {UNIT}"


# who calls the gateway: the web UI's hosts
CLIENTS_GROUP = "application_servers"


def openings(data: Mapping[str, Any], host_name: str) -> list[Opening]:
    return [Opening(int(data["litellm_port"]), "LiteLLM from the application servers", group=CLIENTS_GROUP)]


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    return Backup(paths=("/etc/litellm",))
