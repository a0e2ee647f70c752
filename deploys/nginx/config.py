"""nginx, desired state: the defaults, and the site, its conf.d file and links computed from host
data alone; every value rendered into the site is checked first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploys.ca_trust.config import host_cert_paths
from deploys.common import templates_root
from hxinfra.components import Backup, Opening
from hxinfra.desired import Absent, ConfigItem, ManagedFile, ManagedLink
from hxinfra.memo import IdentityCache
from hxinfra.render import render, template_context
from hxinfra.secrets import Vaulted
from hxinfra.validate import (
    DataError,
    abs_path,
    collect,
    dns_name,
    host_or_ip,
    one_line,
    port,
)
from hxinfra.validate import name as validate_name

DEFAULTS: dict[str, Any] = {
    # Debian package that provides nginx.
    "nginx_package": "nginx",
    # Site name: /etc/nginx/sites-available/<name>.conf, linked from sites-enabled/.
    "nginx_site_name": "webui",
    # server_name of the site; "" means the host's FQDN (<host>.<hx_domain>).
    "nginx_server_name": "",
    # Port of the plain HTTP server (a redirect to HTTPS when nginx_tls is on).
    "nginx_http_port": 80,
    # The pool nginx proxies to: every host of this inventory group, each at the port of the web
    # UI colour it serves (deploys.webui; the other colour as a backup server). "" or a group
    # with no host: the single upstream below.
    "nginx_upstream_group": "application_servers",
    "nginx_upstream_host": "127.0.0.1",
    "nginx_upstream_port": 3000,
    # Passive health checks: a backend that fails this many times is left alone for that many
    # seconds, and a request it failed is retried on the next one (never a non-idempotent one).
    "nginx_upstream_max_fails": 2,
    "nginx_upstream_fail_timeout": 10,
    # Upstream path that /health is proxied to: /health reflects the app, not a static file.
    "nginx_upstream_health_path": "/health",
    # Seconds nginx waits for the upstream (connect for /health, read for everything else).
    "nginx_proxy_read_timeout": 60,
    # Serve HTTPS with the certificate and key below (issued by the HX CA, see ca_trust).
    "nginx_tls": False,
    "nginx_https_port": 443,
    # The certificate: the CA trust service certificate of this name (ca_trust_host_certs), or
    # explicit paths in nginx_tls_cert/nginx_tls_key ("" = that service certificate's paths).
    "nginx_tls_host_cert": "webui",
    "nginx_tls_cert": "",
    "nginx_tls_key": "",
    # Headers added to every response ("always", errors included). HSTS is added with TLS.
    "nginx_security_headers": {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'self'",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    },
    # Compress text responses.
    "nginx_gzip": True,
    # Largest request body accepted (uploads), in nginx size syntax.
    "nginx_client_max_body_size": "16m",
    # Per-site logs.
    "nginx_access_log": "/var/log/nginx/webui.access.log",
    "nginx_error_log": "/var/log/nginx/webui.error.log",
    # Remove Debian's default site, which would otherwise answer on port 80 too.
    "nginx_remove_default_site": True,
}


SITES_AVAILABLE = "/etc/nginx/sites-available"


SITES_ENABLED = "/etc/nginx/sites-enabled"


HTTP_CONF = "/etc/nginx/conf.d/hx-webui.conf"


def pool_path(data: Mapping[str, Any]) -> str:
    return f"/etc/nginx/conf.d/{data['nginx_site_name']}-upstream.conf"


# A pool member: (address, port it serves on, port of its standby or None)
Member = tuple[str, int, int | None]


def default_pool(data: Mapping[str, Any]) -> list[Member]:
    """The pool from data alone (the offline plan): each group host at nginx_upstream_port, else
    the single upstream."""
    group = data["nginx_upstream_group"]
    hosts = (data.get("hx_members") or {}).get(group, []) if group else []
    if not hosts:
        return [(str(data["nginx_upstream_host"]), int(data["nginx_upstream_port"]), None)]
    port = int(data["nginx_upstream_port"])
    # one list per members list and port (read-only): a fleet's web hosts share it, not build it each
    return _POOLS.get(hosts, lambda: [(str(h["address"]), port, None) for h in hosts], port)


_POOLS: IdentityCache[list[Member]] = IdentityCache(limit=64)


def pool_config(data: Mapping[str, Any], pool: list[Member]) -> str:
    """The upstream block: every member, passive health checks, the standby colours as backups."""
    context = template_context(data, {"pool": pool, "upstream": "hx_" + str(data["nginx_site_name"]).replace("-", "_")})
    return render(templates_root(), "nginx/etc/nginx/conf.d/upstream.conf.j2", context)


def parse_pool(lines: list[str]) -> dict[str, tuple[int, int | None]]:
    """address -> (serving port, standby port) from a pool file this deploy wrote."""
    serving: dict[str, int] = {}
    standby: dict[str, int] = {}
    for line in lines:
        m = re.match(r"\s*server ([0-9a-fA-F.:\[\]]+):([0-9]+)( backup)?", line)
        if m:
            (standby if m[3] else serving)[m[1]] = int(m[2])
    return {a: (p, standby.get(a)) for a, p in serving.items()}


def backend_check(data: Mapping[str, Any], pool: list[Member]) -> str:
    """Before a changed pool goes live: every serving backend answers the health path with 200,
    asked from the web host itself (bash's /dev/tcp: nothing to install)."""
    from shlex import quote as q

    path = q(str(data["nginx_upstream_health_path"]))
    ask = 'exec 3<>"/dev/tcp/$0/$1" && printf "GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n" "$2" "$0" >&3 && head -n1 <&3'
    checks = []
    for address, port_, _ in pool:
        checks.append(
            f"s=$(timeout 5 bash -c {q(ask)} {q(address)} {int(port_)} {path} 2>/dev/null); "
            f'case "$s" in "HTTP/1."?" 200"*) ;; *) echo "backend {address}:{int(port_)}: ${{s:-no answer}}" >&2; exit 1;; esac'  # noqa: E501
        )
    return "; ".join(checks) or "true"


def server_name(data: Mapping[str, Any], host_name: str) -> str:
    """The site's server_name: explicit, else the host's FQDN."""
    if data["nginx_server_name"]:
        return str(data["nginx_server_name"])
    return f"{host_name}.{data['hx_domain']}" if data.get("hx_domain") else host_name


def desired_config(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """Every nginx path this deploy manages but the pool, computed from host data alone (no facts)."""
    site = data["nginx_site_name"]
    cert, key = host_cert_paths(data, data["nginx_tls_host_cert"])
    context = template_context(
        data,
        {
            "server_name": server_name(data, host_name),
            "nginx_tls_cert": data["nginx_tls_cert"] or cert,
            "nginx_tls_key": data["nginx_tls_key"] or key,
        },
    )
    available = f"{SITES_AVAILABLE}/{site}.conf"
    items: list[ConfigItem] = [
        ManagedFile(HTTP_CONF, render(templates_root(), "nginx/etc/nginx/conf.d/hx-webui.conf.j2", context)),
        ManagedFile(available, render(templates_root(), "nginx/etc/nginx/sites-available/site.conf.j2", context)),
        ManagedLink(f"{SITES_ENABLED}/{site}.conf", available),
    ]
    if data["nginx_remove_default_site"]:
        items.append(Absent(f"{SITES_ENABLED}/default"))
    return items


HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


SIZE = re.compile(r"[0-9]+[kKmMgG]?")


URI_PATH = re.compile(r"/[A-Za-z0-9/_.~-]*")


def _header_value(value: Any, what: str) -> str:
    """Rendered between double quotes: a quote or backslash would end the string and add directives."""
    text = one_line(value, what)
    if '"' in text or "\\" in text:
        raise DataError(f"{what}: a header value may not hold '\"' or '\\'")
    return text


def _server_names(data: Mapping[str, Any]) -> list[str]:
    if isinstance(data["nginx_server_name"], Vaulted):
        return []  # checked when the deploy decrypts it
    names = str(data["nginx_server_name"]).split()
    return [n if n == "_" else dns_name(n, "nginx_server_name", wildcard=True) for n in names]


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value rendered into the site has its shape (a value can never add a directive)."""
    return collect(
        data,
        {
            "nginx_package": lambda d: validate_name(d["nginx_package"], "nginx_package"),
            "nginx_site_name": lambda d: validate_name(d["nginx_site_name"], "nginx_site_name"),
            "nginx_server_name": _server_names,
            "nginx_upstream_host": lambda d: host_or_ip(d["nginx_upstream_host"], "nginx_upstream_host"),
            "nginx_upstream_port": lambda d: port(d["nginx_upstream_port"], "nginx_upstream_port"),
            "nginx_upstream_group": lambda d: (
                d["nginx_upstream_group"] and validate_name(d["nginx_upstream_group"], "nginx_upstream_group")
            ),
            "nginx_upstream_max_fails": lambda d: port(d["nginx_upstream_max_fails"], "nginx_upstream_max_fails"),
            "nginx_upstream_fail_timeout": lambda d: port(
                d["nginx_upstream_fail_timeout"], "nginx_upstream_fail_timeout"
            ),
            "nginx_http_port": lambda d: port(d["nginx_http_port"], "nginx_http_port"),
            "nginx_https_port": lambda d: port(d["nginx_https_port"], "nginx_https_port"),
            "nginx_upstream_health_path": lambda d: _match(d, "nginx_upstream_health_path", URI_PATH),
            "nginx_client_max_body_size": lambda d: _match(d, "nginx_client_max_body_size", SIZE),
            "nginx_tls_host_cert": lambda d: validate_name(d["nginx_tls_host_cert"], "nginx_tls_host_cert"),
            "nginx_tls_cert": lambda d: d["nginx_tls_cert"] and abs_path(d["nginx_tls_cert"], "nginx_tls_cert"),
            "nginx_tls_key": lambda d: d["nginx_tls_key"] and abs_path(d["nginx_tls_key"], "nginx_tls_key"),
            "nginx_access_log": lambda d: abs_path(d["nginx_access_log"], "nginx_access_log"),
            "nginx_error_log": lambda d: abs_path(d["nginx_error_log"], "nginx_error_log"),
            "nginx_security_headers": lambda d: [
                (
                    validate_name(k, "nginx_security_headers (header name)", HEADER_NAME),
                    _header_value(v, f"nginx_security_headers[{k}]"),
                )
                for k, v in d["nginx_security_headers"].items()
            ],
        },
    )


def _match(data: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    text = one_line(data[key], key)
    if not pattern.fullmatch(text) or ".." in text:
        raise DataError(f"{key}: {text[:40]!r} does not have the expected form")
    return text


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: every path the deploy manages on the host (the pool at the data's port:
    which colour each backend serves is known only on the hosts)."""
    return [*desired_config(dict(data), host_name), ManagedFile(pool_path(data), pool_config(data, default_pool(data)))]


def site_check(data: Mapping[str, Any], host_name: str, retries: int = 1) -> str:
    """The site's health path through nginx itself, as a client gets it (TLS verified against
    the host's trust store, where ca_trust puts the HX CA). After a reload it is tried for
    ``retries`` seconds: a reload is asynchronous, the old workers answer for a moment."""
    from shlex import quote as q

    name = server_name(data, host_name).split()[0]
    if data["nginx_tls"]:
        port_ = int(data["nginx_https_port"])
        curl = (
            f"curl -fsS -o /dev/null --max-time 10 --resolve {q(f'{name}:{port_}:127.0.0.1')} "
            f"{q(f'https://{name}:{port_}/health')}"
        )
    else:
        url = f"http://127.0.0.1:{int(data['nginx_http_port'])}/health"
        curl = f"curl -fsS -o /dev/null --max-time 10 -H {q('Host: ' + name)} {q(url)}"
    if retries <= 1:
        return f"{curl} && echo 'site /health: 200'"
    return f"for i in $(seq {int(retries) - 1}); do {curl} 2>/dev/null && exit 0; sleep 1; done; {curl}"


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """nginx runs, listens, answers /health through the pool, and its certificate is not expiring."""
    from hxinfra.health import Check, cert_days, port_listening, service_active

    checks = [service_active("nginx.service", "nginx"), port_listening(int(data["nginx_http_port"]), "nginx")]
    if data["nginx_tls"]:
        checks.append(port_listening(int(data["nginx_https_port"]), "nginx"))
        cert = data["nginx_tls_cert"] or host_cert_paths(data, data["nginx_tls_host_cert"])[0]
        checks.append(cert_days(str(cert), "nginx"))
    checks.append(Check("the site answers /health through nginx", site_check(data, host_name), "nginx"))
    return checks


def rollback(data: Mapping[str, Any], host_name: str) -> tuple[str, str]:
    """A restored previous config (hxinfra restore --config nginx): nginx's own check, then a reload."""
    return "nginx -t", "systemctl reload nginx.service"


def openings(data: Mapping[str, Any], host_name: str) -> list[Opening]:
    """HTTP (it redirects to HTTPS) and HTTPS, from anywhere: the public front end."""
    out = [Opening(int(data["nginx_http_port"]), "nginx (HTTP, redirects to HTTPS)", anywhere=True)]
    if data.get("nginx_tls"):
        out.append(Opening(int(data["nginx_https_port"]), "nginx (HTTPS)", anywhere=True))
    return out


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    return Backup(paths=("/etc/nginx",))
