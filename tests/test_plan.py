"""The offline plan: rendered trees per host, diffs against an earlier plan, no secrets, no SSH."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import INVENTORY, ROOT

from hxinfra.cli import main
from hxinfra.pki import LocalCA


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HXINFRA_PROJECT", str(ROOT))
    monkeypatch.delenv("HXINFRA_EXTRA_VARS", raising=False)


@pytest.mark.parametrize("env", ["production", "staging", "development", "testing"])
def test_every_environment_plans_offline(at_root, tmp_path, env):
    r = run("plan", "--env", env, "--out", str(tmp_path / env))
    assert r.exit_code == 0, r.output
    site = tmp_path / env / "hx-web-01/etc/nginx/sites-available/webui.conf"
    assert site.read_text().startswith("# managed by hxinfra")
    manifest = (tmp_path / env / "hx-web-01.manifest").read_text()
    assert "/etc/nginx/sites-enabled/webui.conf  link -> /etc/nginx/sites-available/webui.conf" in manifest
    assert "/etc/nginx/sites-enabled/default  absent" in manifest
    assert (tmp_path / env / "hx-dc-01/usr/local/sbin/hx-ca-trust-expiry").is_file()  # ca_trust is everywhere
    assert not (tmp_path / env / "hx-dc-01/etc/nginx").exists()  # nginx only on web_servers


def test_against_shows_what_a_change_would_do(at_root, tmp_path):
    base = tmp_path / "base"
    assert run("plan", "--env", "development", "--out", str(base)).exit_code == 0
    same = run("plan", "--env", "development", "--against", str(base), "--detailed-exitcode")
    assert same.exit_code == 0 and same.stdout == ""
    r = run("plan", "--env", "development", "--against", str(base), "-e", "nginx_upstream_port=3100",
            "--limit", "web_servers", "--detailed-exitcode")  # fmt: skip
    assert r.exit_code == 2
    assert "--- a/hx-web-01/etc/nginx/conf.d/webui-upstream.conf" in r.stdout
    assert "-    server 192.168.10.40:3000 max_fails=2 fail_timeout=10s;" in r.stdout
    assert "+    server 192.168.10.40:3100 max_fails=2 fail_timeout=10s;" in r.stdout
    assert "hx-dc-01.manifest" in r.stdout  # --limit web_servers: other hosts left the plan
    bad = run("plan", "--env", "development", "--against", str(tmp_path / "missing"))
    assert bad.exit_code == 1 and "no plan there" in bad.output


def test_plan_never_contains_secrets(project, tmp_path):
    project("inventories/demo.py", INVENTORY)
    ca = LocalCA(tmp_path / "ca")
    ca.init("Plan CA")
    crt, key = ca.issue("web1", ["web1.demo.example"])
    project("inventories/demo/host_vars/web1.yml",
            f"ca_trust_certificates: [{{name: demo-ca, file: {ca.cert_path}}}]\n"
            f"ca_trust_host_certs: [{{name: webui, cert: {crt}, key: {key}}}]\n")  # fmt: skip
    r = run("plan", "--env", "demo", "--out", str(tmp_path / "plan"))
    assert r.exit_code == 0, r.output
    written = {p: p.read_text() for p in (tmp_path / "plan").rglob("*") if p.is_file()}
    key_body = key.read_text().splitlines()[1]
    assert not any(key_body in text for text in written.values())
    assert "sensitive file" in (tmp_path / "plan/web1/etc/ssl/hx/private/webui.key").read_text()
    assert "BEGIN CERTIFICATE" in (tmp_path / "plan/web1/usr/local/share/ca-certificates/demo-ca.crt").read_text()
    assert "/etc/ssl/hx/private/webui.key  file 0600 root:root sensitive" in Path(tmp_path / "plan/web1.manifest").read_text()
