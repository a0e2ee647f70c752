"""The HX web UI, desired state: the defaults, the environment files and the colour unit computed
from host data alone, and the blue-green decision (which colour a release goes to) as a pure
function of the host's release state.

Two colours run on every application server, each a release directory behind a symlink
(``/opt/hx-webui/blue`` -> ``releases/1.2.0``) served by ``hx-webui@blue`` on its own port. A new
release goes to the colour that does not serve, is health-checked there, and only then does the
web tier's pool move to that colour; the old colour keeps running, so going back is a switch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from deploys.common import templates_root
from hxinfra.components import Backup, Opening
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.render import managed_header, render, systemd_environment, template_context
from hxinfra.secrets import Vaulted
from hxinfra.validate import Check, DataError, abs_path, choice, collect, host_or_ip, ip_address, name, one_line, port

DEFAULTS: dict[str, Any] = {
    # The release to serve: a key of webui_releases, or "previous" (the release of the colour
    # that does not serve now: going back is `-e webui_version=previous`).
    "webui_version": "",
    # Known releases: version -> sha256 of its artifact. An artifact whose checksum differs is
    # never unpacked.
    "webui_releases": {},
    # Where the controller finds a release's artifact ({version} is replaced): a path (relative
    # to the project, or absolute) or an https URL.
    "webui_artifact": "artifacts/hx-webui-{version}.tar.gz",
    # Debian packages of the runtime (here: Python with the PostgreSQL driver; nodejs for a Node
    # build), and the command that runs a release from its directory.
    "webui_packages": ["python3", "python3-psycopg2"],
    "webui_exec": "/usr/bin/python3 app.py",
    # The colour the release goes to and that then serves: "" = the one that does not serve now
    # (blue-green by itself); "blue" or "green" as the seed guide's deployment_color/active_color.
    "webui_deployment_color": "",
    # Releases, state and the service's system user.
    "webui_dir": "/opt/hx-webui",
    "webui_user": "hx-webui",
    # Releases kept on a host (the two colours' releases are always kept).
    "webui_keep_releases": 3,
    # The colours and their ports; the address they listen on ("" = the host's own address).
    "webui_ports": {"blue": 3000, "green": 3001},
    "webui_listen_address": "",
    # The path that must answer 200 before traffic moves to a colour, and how long it may take.
    "webui_health_path": "/health",
    "webui_start_timeout": 60,
    # Its database (TLS verify-full against the system's trust store, where ca_trust puts the HX CA).
    "webui_db_host": "",
    "webui_db_port": 5432,
    "webui_db_name": "hx_webui",
    "webui_db_user": "hx_webui",
    "webui_db_ca_file": "/etc/ssl/certs/ca-certificates.crt",
    # The LiteLLM gateway it asks (https://: TLS, its certificate checked against the bundle below,
    # where ca_trust puts the HX CA; plain http only to a gateway on the host's own loopback), and
    # the model it asks for.
    "webui_gateway_url": "",
    "webui_gateway_ca_file": "/etc/ssl/certs/ca-certificates.crt",
    "webui_gateway_model": "hx-chat",
}

# Secrets: no default ("change-me" is how the old role leaked); a host without them is an error.
REQUIRED: dict[str, Any] = {
    "webui_db_password": str,
    "webui_gateway_key": str,
    "webui_session_secret": str,
    "webui_jwt_secret": str,
}

COLORS = ("blue", "green")
UNIT = "hx-webui@.service"
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
URL = re.compile(r"https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9/_.~-]*)?")


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def listen_address(data: Mapping[str, Any]) -> str:
    return str(data["webui_listen_address"] or data.get("ssh_hostname") or "127.0.0.1")


def env_dir() -> str:
    return "/etc/hx-webui"


def database_url(data: Mapping[str, Any]) -> str:
    """libpq URL with TLS verify-full; the password percent-encoded (it may hold any character)."""
    user, password = quote(str(data["webui_db_user"]), safe=""), quote(str(data["webui_db_password"]), safe="")
    ca = quote(str(data["webui_db_ca_file"]), safe="/")
    return (
        f"postgresql://{user}:{password}@{data['webui_db_host']}:{int(data['webui_db_port'])}/"
        f"{data['webui_db_name']}?sslmode=verify-full&sslrootcert={ca}"
    )


def environment(data: Mapping[str, Any]) -> dict[str, str]:
    """What every colour shares: the secrets and the addresses of what it talks to."""
    return {
        "HX_DATABASE_URL": database_url(data),
        "HX_GATEWAY_URL": str(data["webui_gateway_url"]),
        "HX_GATEWAY_CA": str(data["webui_gateway_ca_file"]),
        "HX_GATEWAY_KEY": str(data["webui_gateway_key"]),
        "HX_GATEWAY_MODEL": str(data["webui_gateway_model"]),
        "HX_SESSION_SECRET": str(data["webui_session_secret"]),
        "HX_JWT_SECRET": str(data["webui_jwt_secret"]),
        "HX_LISTEN": listen_address(data),
    }


def desired_config(data: Mapping[str, Any]) -> list[ConfigItem]:
    """The shared 0640 environment file, one small file per colour (its port) and the template unit."""
    d, user = env_dir(), data["webui_user"]
    header = managed_header("deploys/webui")
    items: list[ConfigItem] = [
        ManagedFile(
            f"{d}/webui.env", header + systemd_environment(environment(data)), mode="0640", group=user, sensitive=True
        ),
    ]
    for color in COLORS:
        port_env = {"PORT": str(data["webui_ports"][color]), "HX_COLOR": color}
        items.append(ManagedFile(f"{d}/{color}.env", header + systemd_environment(port_env)))
    context = template_context(data, {"env_dir": d})
    items.append(
        ManagedFile(
            f"/etc/systemd/system/{UNIT}",
            render(templates_root(), "webui/etc/systemd/system/hx-webui@.service.j2", context),
        )
    )
    return items


def target(state: Mapping[str, Any], version: str, forced: str = "") -> tuple[str, str]:
    """(colour, version) the host must serve: the colour already holding ``version`` (nothing to
    install), else the colour that does not serve now (blue on a new host). ``previous`` is the
    release of the colour that does not serve. ``forced`` names the colour (the guide's
    deployment_color): ``previous`` then means that colour's release."""
    active = state.get("active") or ""
    slots = state.get("slots") or {}
    if forced:
        if version == "previous":
            if not slots.get(forced):
                raise DataError(f"webui_version: previous, but the {forced} colour holds no release on this host")
            return forced, slots[forced]
        return forced, version
    if version == "previous":
        if not active or not slots.get(other(active)):
            raise DataError("webui_version: no previous release on this host to go back to")
        return other(active), slots[other(active)]
    if active and slots.get(active) == version:
        return active, version
    if active and slots.get(other(active)) == version:
        return other(active), version
    return (other(active) if active else "blue"), version


def to_prune(state: Mapping[str, Any], keep: int, protect: set[str]) -> list[str]:
    """Releases beyond the newest ``keep`` (by install time), never one a colour points to."""
    releases = sorted(state.get("releases") or {}, key=lambda v: state["releases"][v], reverse=True)
    kept = [v for v in releases if v in protect] + [v for v in releases if v not in protect]
    return [v for v in releases if v not in protect and v not in kept[: max(keep, len(protect))]]


def artifact_location(data: Mapping[str, Any], version: str) -> str:
    return str(data["webui_artifact"]).replace("{version}", version)


def _secret(value: Any, key: str) -> None:
    if value is None or isinstance(value, Vaulted):
        return  # required where it applies; a vault value is checked once decrypted
    text = one_line(value, key)
    if len(text) < 12 or "change-me" in text.lower():
        raise DataError(f"{key}: too short or a placeholder; generate one into the vault")


def _releases(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise DataError("webui_releases: must map version -> sha256")
    for version, digest in value.items():
        if not VERSION.fullmatch(str(version)) or ".." in str(version):
            raise DataError(f"webui_releases: {str(version)[:40]!r} is not a version")
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            raise DataError(f"webui_releases[{version}]: not a sha256 (64 lowercase hex digits)")


def _version(data: Mapping[str, Any]) -> None:
    version = data["webui_version"]
    if version == "previous":
        return
    if not isinstance(version, str) or not VERSION.fullmatch(version) or ".." in version:
        raise DataError(f"webui_version: {str(version)[:40]!r} is not a version (or 'previous')")
    if data["webui_releases"] and version not in data["webui_releases"]:  # none: not a web UI host
        raise DataError(f"webui_version: {version} is not in webui_releases (its checksum is needed)")


def _artifact(value: Any) -> None:
    text = one_line(value, "webui_artifact")
    if "://" in text:
        if not text.startswith("https://") or not URL.fullmatch(text.replace("{version}", "v")):
            raise DataError("webui_artifact: a URL must be https:// without query or credentials")
    elif not re.fullmatch(r"[A-Za-z0-9_./{}-]+", text) or ".." in text.split("/"):
        raise DataError("webui_artifact: not a plain path")


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value rendered into an environment file, the unit or a command has its shape."""
    return collect(
        data,
        {
            "webui_version": lambda d: _version(d) if d["webui_version"] else None,
            "webui_deployment_color": lambda d: choice(
                d["webui_deployment_color"], "webui_deployment_color", ("", *COLORS)
            ),
            "webui_releases": lambda d: _releases(d["webui_releases"]),
            "webui_artifact": lambda d: _artifact(d["webui_artifact"]),
            "webui_packages": lambda d: [name(p, "webui_packages") for p in d["webui_packages"]],
            "webui_exec": lambda d: _exec(d["webui_exec"]),
            "webui_dir": lambda d: abs_path(d["webui_dir"], "webui_dir"),
            "webui_user": lambda d: name(d["webui_user"], "webui_user"),
            "webui_keep_releases": lambda d: _at_least(d["webui_keep_releases"], 2, "webui_keep_releases"),
            "webui_ports": lambda d: _ports(d["webui_ports"]),
            "webui_listen_address": lambda d: ip_address(listen_address(d), "webui_listen_address"),
            "webui_health_path": lambda d: _path(d["webui_health_path"]),
            "webui_start_timeout": lambda d: _at_least(d["webui_start_timeout"], 1, "webui_start_timeout"),
            "webui_db_host": lambda d: d["webui_db_host"] and host_or_ip(d["webui_db_host"], "webui_db_host"),
            "webui_db_port": lambda d: port(d["webui_db_port"], "webui_db_port"),
            "webui_db_name": lambda d: name(d["webui_db_name"], "webui_db_name"),
            "webui_db_user": lambda d: name(d["webui_db_user"], "webui_db_user"),
            "webui_db_ca_file": lambda d: abs_path(d["webui_db_ca_file"], "webui_db_ca_file"),
            "webui_gateway_url": lambda d: _url(d["webui_gateway_url"]) if d["webui_gateway_url"] else None,
            "webui_gateway_ca_file": lambda d: abs_path(d["webui_gateway_ca_file"], "webui_gateway_ca_file"),
            "webui_gateway_model": lambda d: name(d["webui_gateway_model"], "webui_gateway_model"),
            **{key: _secret_check(key) for key in REQUIRED},
        },
    )


def _secret_check(key: str) -> Check:
    return lambda d: _secret(d.get(key), key)


def _ports(ports: Any) -> None:
    if not isinstance(ports, Mapping):
        raise DataError("webui_ports: must map blue and green to ports")
    for color, number in ports.items():
        choice(color, "webui_ports (colour)", COLORS)
        port(number, f"webui_ports[{color}]")
    if set(ports) != set(COLORS) or ports["blue"] == ports["green"]:
        raise DataError("webui_ports: needs blue and green, on two different ports")


def _exec(value: Any) -> None:
    words = one_line(value, "webui_exec").split()
    if not words or not words[0].startswith("/") or any(not re.fullmatch(r"[A-Za-z0-9_./=:-]+", w) for w in words):
        raise DataError("webui_exec: an absolute program and plain arguments (no shell syntax)")


def _path(value: Any) -> None:
    if not re.fullmatch(r"/[A-Za-z0-9/_.~-]*", one_line(value, "webui_health_path")):
        raise DataError("webui_health_path: not a URL path")


def _url(value: Any) -> None:
    if not URL.fullmatch(one_line(value, "webui_gateway_url")):
        raise DataError("webui_gateway_url: not an http(s) URL without query or credentials")
    if not str(value).startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
        raise DataError("webui_gateway_url: the gateway is reached over TLS (https://), plain http only on loopback")


def _at_least(value: Any, low: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise DataError(f"{what}: must be a whole number >= {low}")
    return value


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The colour this host serves (its record) runs and answers its health path."""
    from shlex import quote as q

    from hxinfra.health import Check

    d, ports = q(str(data["webui_dir"])), data["webui_ports"]
    serving = (
        f"c=$(cat {d}/active) && case $c in blue) port={int(ports['blue'])};; "
        f"green) port={int(ports['green'])};; *) echo 'no serving colour recorded'; exit 1;; esac"
    )
    base = f"http://{listen_address(data)}:"
    path = str(data["webui_health_path"])
    probe = (
        f"python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "
        f'{q(base)}"$port"{q(path)}'
    )
    return [
        Check(
            "the serving colour's unit is active", f'{serving} && systemctl is-active "hx-webui@$c.service"', "hx-webui"
        ),
        Check("the serving colour answers its health path", f'{serving} && {probe} && echo "$c: 200"', "hx-webui"),
    ]


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: every config path the deploy manages (releases are state, not config)."""
    return desired_config(dict(data))


# who calls the web UI: the front ends
CLIENTS_GROUP = "web_servers"


def openings(data: Mapping[str, Any], host_name: str) -> list[Opening]:
    """Both colours' ports (the idle one too: a switch must not wait for the firewall)."""
    return [
        Opening(int(p), f"web UI ({colour}) from the web servers", group=CLIENTS_GROUP)
        for colour, p in sorted(dict(data["webui_ports"]).items())
    ]


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    return Backup(paths=("/etc/hx-webui",))
