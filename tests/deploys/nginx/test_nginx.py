"""The nginx component's desired files, computed offline from host data alone."""

from __future__ import annotations

import pytest

from deploys.ca_trust.config import DEFAULTS as CA_TRUST
from deploys.nginx import COMPONENT
from deploys.nginx.config import DEFAULTS, desired_config, server_name
from hxinfra.operations import Absent, ManagedFile, ManagedLink
from hxinfra.render import TemplateError, render

BASE = {**DEFAULTS, "hx_domain": "dev-test.hana-x.ai", "hx_environment": "development",
        "ca_trust_host_cert_dir": CA_TRUST["ca_trust_host_cert_dir"]}


def files(data):
    return {i.path: i for i in desired_config(data, "hx-web-01")}


def test_site_proxies_to_upstream_and_health_reflects_it():
    site = files(BASE)["/etc/nginx/sites-available/webui.conf"]
    assert isinstance(site, ManagedFile)
    text = site.content
    assert text.startswith("# managed by hxinfra (templates/nginx/")
    assert "server 127.0.0.1:3000;" in text
    health = text[text.index("location = /health"):]
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
        "/etc/nginx/sites-enabled/webui.conf", "/etc/nginx/sites-available/webui.conf")
    assert isinstance(items["/etc/nginx/sites-enabled/default"], Absent)
    assert "/etc/nginx/sites-enabled/default" not in files({**BASE, "nginx_remove_default_site": False})


def test_server_name_override_and_upstream_port():
    data = {**BASE, "nginx_server_name": "webui.example", "nginx_upstream_port": 3100, "nginx_gzip": False}
    text = files(data)["/etc/nginx/sites-available/webui.conf"].content
    assert "server_name webui.example;" in text and "server 127.0.0.1:3100;" in text and "gzip off;" in text
    assert server_name({**BASE, "hx_domain": ""}, "h1") == "h1"


def test_every_default_key_is_prefixed_and_used_by_a_template():
    assert all(k.startswith("nginx_") for k in DEFAULTS)
    content = "".join(i.content for i in desired_config(BASE, "h") if isinstance(i, ManagedFile))
    unused = {"nginx_package", "nginx_remove_default_site", "nginx_server_name"}
    for key in set(DEFAULTS) - unused - {"nginx_tls_cert", "nginx_tls_key", "nginx_https_port", "nginx_tls_host_cert"}:
        assert str(BASE[key]).split()[0][:6] in content or key in ("nginx_tls", "nginx_gzip", "nginx_security_headers"), key
    assert COMPONENT.groups == ("web_servers",)


def test_undefined_template_variable_is_an_error(tmp_path):
    (tmp_path / "t.j2").write_text("listen {{ nginx_port }};\n")
    with pytest.raises(TemplateError, match="template t.j2: undefined variable: 'nginx_port' is undefined"):
        render(tmp_path, "t.j2", {})
