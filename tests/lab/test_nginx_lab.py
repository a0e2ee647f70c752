"""The nginx deploy on real lab hosts, through all three entry points, checked with curl."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.lab

SITE = "/etc/nginx/sites-available/webui.conf"
APPS = ("hx-app-01", "hx-app-02")


def curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args, url], capture_output=True, text=True)


def changed(report: dict) -> int:
    return sum(h["changed"] for h in report["hosts"])


def test_hxinfra_deploy_converges_then_changes_nothing(lab):
    r, first = lab.hx_deploy("site", "--limit", "hx-web-01")  # the CA test may have converged it already
    assert first["hosts"][0]["host"] == "hx-web-01" and first["hosts"][0]["status"] in ("ok", "changed")
    r, second = lab.hx_deploy("site", "--limit", "hx-web-01", "--detailed-exitcode")
    assert changed(second) == 0 and second["hosts"][0]["status"] == "ok", r.stderr[-3000:]
    host = lab.host("hx-web-01")
    site = host.file(SITE)
    assert site.is_file and site.user == "root" and site.mode == 0o644 and site.contains("^# managed by hxinfra")
    assert host.file("/etc/nginx/sites-enabled/webui.conf").linked_to == SITE
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert host.socket("tcp://0.0.0.0:443").is_listening and host.socket("tcp://0.0.0.0:80").is_listening
    assert host.run("nginx -t").rc == 0


def test_curl_reaches_upstream_and_health_follows_it(lab):
    """hx-web-01 is a lab web front end: HTTPS with the lab CA's certificate, HTTP redirects, and
    the application servers' web UI behind it."""
    page = lab.curl_https("hx-web-01", "/", "-i")
    assert "HTTP/2 200" in page.stdout and "HX web UI 1.0.0" in page.stdout, page.stderr
    headers = page.stdout.lower()
    for header in (
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "content-security-policy:",
        "strict-transport-security: max-age=",
    ):
        assert f"\n{header}" in headers
    assert "\nserver: nginx\n" in headers  # server_tokens off: no version
    redirect = curl(f"http://{lab.ip('hx-web-01')}/x", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert redirect.stdout == f"301 https://{lab.ip('hx-web-01')}/x"
    health = ("/health", "-o", "/dev/null", "-w", "%{http_code}")
    assert lab.curl_https("hx-web-01", *health).stdout == "200"
    for app in APPS:  # every backend down, standby colours too: /health says so
        lab.ssh(app, "systemctl stop 'hx-webui@*'")
    assert lab.curl_https("hx-web-01", *health).stdout == "502"
    r, report = lab.hx_deploy("site", *[a for app in APPS for a in ("--limit", app)])  # starts them again
    assert lab.curl_https("hx-web-01", *health).stdout == "200"


def test_broken_value_fails_validation_and_old_config_keeps_serving(lab):
    before = lab.ssh("hx-web-01", f"sha256sum {SITE}").stdout
    # a malformed value never reaches the host: refused before connecting
    r, report = lab.hx_deploy("nginx", "--limit", "hx-web-01", "-e", "nginx_client_max_body_size=lots", check=False)
    assert r.returncode == 1 and "nginx_client_max_body_size" in r.stderr and "Connecting" not in r.stderr
    # a well-formed value that nginx itself rejects (no certificate there): nginx -t, then rollback
    r, report = lab.hx_deploy(
        "nginx", "--limit", "hx-web-01", "-e", "nginx_tls_cert=/etc/ssl/hx/missing.crt", check=False
    )
    assert r.returncode == 1
    assert "validation failed (nginx -t" in r.stderr and "previous config restored" in r.stderr
    assert report["hosts"][0]["status"] == "failed"
    assert lab.ssh("hx-web-01", f"sha256sum {SITE}").stdout == before
    assert lab.ssh("hx-web-01", "nginx -t", check=False).returncode == 0
    assert "HX web UI" in lab.curl_https("hx-web-01").stdout
    r, after = lab.hx_deploy("site", "--limit", "hx-web-01")
    assert changed(after) == 0


def test_config_restore_puts_back_the_previous_deployed_version_and_forward_again(lab):
    """hxinfra restore --config nginx: the site as the deploy before the last one wrote it, checked
    by nginx -t and live (curl); a second restore goes forward; the next deploy converges."""
    lab.hx_deploy("site", "--limit", "hx-web-01")
    before = lab.ssh("hx-web-01", f"sha256sum {SITE}").stdout
    lab.hx_deploy("nginx", "--limit", "hx-web-01", "-e", "nginx_client_max_body_size=32m")
    assert "client_max_body_size 32m;" in lab.ssh("hx-web-01", f"cat {SITE}").stdout
    r = lab.hxinfra("restore", "--env", "lab", "--limit", "hx-web-01", "--config", "nginx", "--json")
    result = json.loads(r.stdout)[0]
    assert result["ok"] and SITE in result["restored"], r.stdout
    assert lab.ssh("hx-web-01", f"sha256sum {SITE}").stdout == before
    assert "HX web UI" in lab.curl_https("hx-web-01").stdout
    r = lab.hxinfra("restore", "--env", "lab", "--limit", "hx-web-01", "--config", "nginx")
    assert "client_max_body_size 32m;" in lab.ssh("hx-web-01", f"cat {SITE}").stdout
    r, report = lab.hx_deploy("site", "--limit", "hx-web-01")
    assert changed(report) >= 1 and lab.ssh("hx-web-01", f"sha256sum {SITE}").stdout == before
    r, report = lab.hx_deploy("site", "--limit", "hx-web-01")
    assert changed(report) == 0


def test_check_diff_shows_changes_and_changes_nothing(lab):
    before = lab.ssh("hx-web-01", f"sha256sum {SITE}; stat -c %Y {SITE}").stdout
    r, report = lab.hx_deploy(
        "site", "--limit", "hx-web-01", "--check", "--diff", "-e", "nginx_client_max_body_size=32m"
    )
    assert report["hosts"][0]["status"] == "pending"
    assert f"--- a{SITE}" in r.stderr and f"+++ b{SITE}" in r.stderr
    assert "-    client_max_body_size 16m;" in r.stderr and "+    client_max_body_size 32m;" in r.stderr
    assert lab.ssh("hx-web-01", f"sha256sum {SITE}; stat -c %Y {SITE}").stdout == before


def test_plain_pyinfra_cli_converges_and_is_idempotent(lab):
    lab.ssh("hx-web-02", f"rm -f {SITE}")  # whatever ran here before (the fault tests do), this is to put back
    first = lab.pyinfra("deploys.nginx.nginx", "--limit", "hx-web-02", "-y", "--json")
    ops = json.loads(first.stdout)["results"]["operations"]
    assert any("hx-web-02" in op["success"] for op in ops)
    second = lab.pyinfra("deploys.nginx.nginx", "--limit", "hx-web-02", "-y", "--json")
    ops = json.loads(second.stdout)["results"]["operations"]
    assert all(op["success"] == [] and op["no_change"] == ["hx-web-02"] for op in ops), second.stdout
    dry = lab.pyinfra("deploys.nginx.nginx", "--limit", "hx-web-02", "--dry", "--diff")
    assert "Will modify" not in dry.stderr and "Will create" not in dry.stderr
    assert "Welcome to nginx" not in curl(f"http://{lab.ip('hx-web-02')}/").stdout  # default site removed


API_SCRIPT = textwrap.dedent("""
    import json, sys
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.operations import run_ops
    from hxinfra.inventory import load_environment
    from deploys.nginx import nginx          # the library entry point under test

    env = load_environment("inventories/lab.py")
    name = sys.argv[1]
    inventory = Inventory(([(name, env.host_data(name))], {}))
    state = State(inventory, Config())
    connect_all(state)
    add_deploy(state, nginx)
    run_ops(state)
    host = inventory.get_host(name)
    metas = [state.ops[host][h].operation_meta for h in state.get_op_order()]
    print(json.dumps({"changed": sum(1 for m in metas if m.did_change()),
                      "ok": all(m.did_succeed() for m in metas), "ops": len(metas)}))
    disconnect_all(state)
""")


def test_python_import_of_the_deploy(lab):
    first = json.loads(lab.run(sys.executable, "-c", API_SCRIPT, "hx-web-03").stdout.strip().splitlines()[-1])
    assert first["ok"] and first["changed"] >= 3 and first["ops"] == 6
    second = json.loads(lab.run(sys.executable, "-c", API_SCRIPT, "hx-web-03").stdout.strip().splitlines()[-1])
    assert second == {"changed": 0, "ok": True, "ops": 6}
    assert "HX web UI 1.0.0" in curl(f"http://{lab.ip('hx-web-03')}/").stdout  # the pool of application servers
