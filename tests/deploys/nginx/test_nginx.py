"""The nginx component's desired files, computed offline from host data alone."""

from __future__ import annotations

import pytest

from deploys.ca_trust.config import DEFAULTS as CA_TRUST
from deploys.nginx import COMPONENT
from deploys.nginx.config import (
    DEFAULTS,
    backend_check,
    default_pool,
    desired_config,
    parse_pool,
    plan,
    pool_config,
    server_name,
)
from hxinfra.desired import Absent, ManagedFile, ManagedLink
from hxinfra.render import TemplateError, render

BASE = {
    **DEFAULTS,
    "hx_domain": "dev-test.hana-x.ai",
    "hx_environment": "development",
    "ca_trust_host_cert_dir": CA_TRUST["ca_trust_host_cert_dir"],
}


def files(data):
    return {i.path: i for i in desired_config(data, "hx-web-01")}


def test_site_proxies_to_upstream_and_health_reflects_it():
    site = files(BASE)["/etc/nginx/sites-available/webui.conf"]
    assert isinstance(site, ManagedFile)
    text = site.content
    assert text.startswith("# managed by hxinfra (templates/nginx/")
    assert "proxy_pass http://hx_webui;" in text and "proxy_next_upstream error timeout http_502" in text
    health = text[text.index("location = /health") :]
    assert "proxy_pass http://hx_webui/health;" in health.split("}")[0]
    assert "server_name hx-web-01.dev-test.hana-x.ai;" in text
    for header in ("X-Frame-Options", "X-Content-Type-Options", "Content-Security-Policy"):
        assert f"add_header {header} " in text
    assert "gzip on;" in text and "ssl_certificate" not in text and "Strict-Transport-Security" not in text


def test_tls_server_block_and_redirect():
    text = files({**BASE, "nginx_tls": True})["/etc/nginx/sites-available/webui.conf"].content
    assert "listen 443 ssl http2;" in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "return 301 https://$host$request_uri;" in text
    assert "Strict-Transport-Security" in text
    assert "ssl_certificate /etc/ssl/hx/webui.crt;" in text


def test_site_is_enabled_and_default_removed():
    items = files(BASE)
    assert items["/etc/nginx/sites-enabled/webui.conf"] == ManagedLink(
        "/etc/nginx/sites-enabled/webui.conf", "/etc/nginx/sites-available/webui.conf"
    )
    assert isinstance(items["/etc/nginx/sites-enabled/default"], Absent)
    assert "/etc/nginx/sites-enabled/default" not in files({**BASE, "nginx_remove_default_site": False})


def test_server_name_override_and_upstream_port():
    data = {**BASE, "nginx_server_name": "webui.example", "nginx_upstream_port": 3100, "nginx_gzip": False}
    text = files(data)["/etc/nginx/sites-available/webui.conf"].content
    assert "server_name webui.example;" in text and "gzip off;" in text
    assert "    server 127.0.0.1:3100 max_fails=2 fail_timeout=10s;" in pool_config(data, default_pool(data))
    assert server_name({**BASE, "hx_domain": ""}, "h1") == "h1"


def test_every_default_key_is_prefixed_and_used_by_a_template():
    assert all(k.startswith("nginx_") for k in DEFAULTS)
    content = "".join(i.content for i in plan(BASE, "h") if isinstance(i, ManagedFile))
    unused = {"nginx_package", "nginx_remove_default_site", "nginx_server_name", "nginx_upstream_group"}
    for key in set(DEFAULTS) - unused - {"nginx_tls_cert", "nginx_tls_key", "nginx_https_port", "nginx_tls_host_cert"}:
        assert str(BASE[key]).split()[0][:6] in content or key in (
            "nginx_tls",
            "nginx_gzip",
            "nginx_security_headers",
        ), key
    assert COMPONENT.groups == ("web_servers",)


def test_undefined_template_variable_is_an_error(tmp_path):
    (tmp_path / "t.j2").write_text("listen {{ nginx_port }};\n")
    with pytest.raises(TemplateError, match="template t.j2: undefined variable: 'nginx_port' is undefined"):
        render(tmp_path, "t.j2", {})


MEMBERS = {
    "application_servers": [
        {"name": "hx-app-01", "address": "10.0.0.40"},
        {"name": "hx-app-02", "address": "10.0.0.41"},
    ]
}


def test_pool_is_every_application_server_with_standby_colours_as_backups():
    data = {**BASE, "hx_members": MEMBERS}
    assert default_pool(data) == [("10.0.0.40", 3000, None), ("10.0.0.41", 3000, None)]
    text = pool_config(data, [("10.0.0.40", 3001, 3000), ("10.0.0.41", 3000, 3001)])
    lines = [line.strip() for line in text.splitlines()]
    assert lines[lines.index("upstream hx_webui {") + 1 :][:4] == [
        "server 10.0.0.40:3001 max_fails=2 fail_timeout=10s;",
        "server 10.0.0.41:3000 max_fails=2 fail_timeout=10s;",
        "server 10.0.0.40:3000 backup;",
        "server 10.0.0.41:3001 backup;",
    ]
    assert parse_pool(text.splitlines()) == {"10.0.0.40": (3001, 3000), "10.0.0.41": (3000, 3001)}
    # no group member: the single upstream of the data
    assert default_pool({**BASE, "hx_members": {}}) == [("127.0.0.1", 3000, None)]
    assert default_pool({**BASE, "hx_members": MEMBERS, "nginx_upstream_group": ""}) == [("127.0.0.1", 3000, None)]
    paths = [i.path for i in plan(data, "hx-web-01")]
    assert "/etc/nginx/conf.d/webui-upstream.conf" in paths


def test_backend_check_asks_each_serving_backend_for_its_health(http_health):
    """The check before a pool goes live, run for real against a local server."""
    import subprocess

    port = http_health
    ok = subprocess.run(["sh", "-c", backend_check(BASE, [("127.0.0.1", port, None)])], capture_output=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        ["sh", "-c", backend_check({**BASE, "nginx_upstream_health_path": "/nope"}, [("127.0.0.1", port, None)])],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and f"backend 127.0.0.1:{port}: HTTP/1.0 503" in bad.stderr
    closed = subprocess.run(["sh", "-c", backend_check(BASE, [("127.0.0.1", 9, None)])], capture_output=True, text=True)
    assert closed.returncode == 1 and "backend 127.0.0.1:9: no answer" in closed.stderr
