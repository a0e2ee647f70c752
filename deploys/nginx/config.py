"""nginx, desired state: the defaults, and the site, its conf.d file and links computed from host
data alone; every value rendered into the site is checked first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploys.ca_trust.config import host_cert_paths
from deploys.common import templates_root
from hxinfra.operations import Absent, ConfigItem, ManagedFile, ManagedLink
from hxinfra.render import render
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
from hxinfra.vault import Vaulted

DEFAULTS: dict[str, Any] = {
    # Debian package that provides nginx.
    "nginx_package": "nginx",
    # Site name: /etc/nginx/sites-available/<name>.conf, linked from sites-enabled/.
    "nginx_site_name": "webui",
    # server_name of the site; "" means the host's FQDN (<host>.<hx_domain>).
    "nginx_server_name": "",
    # Port of the plain HTTP server (a redirect to HTTPS when nginx_tls is on).
    "nginx_http_port": 80,
    # The web UI that nginx proxies to.
    "nginx_upstream_host": "127.0.0.1",
    "nginx_upstream_port": 3000,
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


def server_name(data: Mapping[str, Any], host_name: str) -> str:
    """The site's server_name: explicit, else the host's FQDN."""
    if data["nginx_server_name"]:
        return str(data["nginx_server_name"])
    return f"{host_name}.{data['hx_domain']}" if data.get("hx_domain") else host_name


def desired_config(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """Every nginx path this deploy manages, computed from host data alone (no facts)."""
    site = data["nginx_site_name"]
    cert, key = host_cert_paths(data, data["nginx_tls_host_cert"])
    context = {**data, "server_name": server_name(data, host_name),
               "nginx_tls_cert": data["nginx_tls_cert"] or cert, "nginx_tls_key": data["nginx_tls_key"] or key}  # fmt: skip
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
    return collect(data, {
        "nginx_package": lambda d: validate_name(d["nginx_package"], "nginx_package"),
        "nginx_site_name": lambda d: validate_name(d["nginx_site_name"], "nginx_site_name"),
        "nginx_server_name": _server_names,
        "nginx_upstream_host": lambda d: host_or_ip(d["nginx_upstream_host"], "nginx_upstream_host"),
        "nginx_upstream_port": lambda d: port(d["nginx_upstream_port"], "nginx_upstream_port"),
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
            (validate_name(k, "nginx_security_headers (header name)", HEADER_NAME),
             _header_value(v, f"nginx_security_headers[{k}]"))
            for k, v in d["nginx_security_headers"].items()
        ],
    })  # fmt: skip


def _match(data: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    text = one_line(data[key], key)
    if not pattern.fullmatch(text) or ".." in text:
        raise DataError(f"{key}: {text[:40]!r} does not have the expected form")
    return text


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: every path the deploy manages on the host."""
    return desired_config(dict(data), host_name)
