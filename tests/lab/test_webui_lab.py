"""The whole chain on lab hosts: curl -> nginx (web) -> web UI (two app servers) -> PostgreSQL over TLS
and the LiteLLM gateway -> the lab's model. Blue-green switches under a request loop that counts
every failed request; a broken release never takes traffic; one app server down changes nothing."""

from __future__ import annotations

import json
import time

import pytest

from .conftest import LAB_DOMAIN, RequestLoop

pytestmark = pytest.mark.lab

WEB, APPS, DB = "hx-web-01", ("hx-app-01", "hx-app-02"), "hx-db-01"
POOL = "/etc/nginx/conf.d/webui-upstream.conf"


@pytest.fixture(scope="module")
def front(lab):
    lab.hx_deploy("site", "--limit", WEB)
    return f"https://{WEB}.{LAB_DOMAIN}/"


def loop(lab, front: str) -> RequestLoop:
    # the lab's DNS is not this machine's: go to the web host's address, verify its certificate by name
    return RequestLoop(front.replace(f"{WEB}.{LAB_DOMAIN}", lab.ip(WEB)), lab.ca_file)


def deploy_stack(lab, *args: str, check: bool = True):
    return lab.hx_deploy("site", "--limit", WEB, *[a for h in (*APPS, DB) for a in ("--limit", h)], *args, check=check)


def test_page_through_nginx_shows_database_over_tls_and_a_completion(lab, front):
    page = lab.curl_https(WEB, "/", "-i")
    assert "HTTP/2 200" in page.stdout, page.stderr
    assert "HX web UI 1.0.0" in page.stdout and "hx-lab-model says: hello from hx-webui 1.0.0" in page.stdout
    assert "&quot;user&quot;: &quot;hx_webui&quot;, &quot;ssl&quot;: true" in page.stdout
    health = json.loads(lab.curl_https(WEB, "/health").stdout)
    assert health["status"] == "ok" and health["database"]["ssl"] and health["gateway"]["ok"]
    for secret in ("vault_lab_pg_webui_password", "vault_lab_litellm_master_key", "vault_lab_webui_session_secret"):
        assert lab.secret(secret) not in page.stdout
    pool = lab.ssh(WEB, f"cat {POOL}").stdout
    for app in APPS:  # every application server, not the web host itself
        assert f"server {lab.ip(app)}:3000 max_fails=2" in pool and f"server {lab.ip(app)}:3001 backup;" in pool


def test_second_run_changes_nothing_and_secrets_stay_private(lab, front):
    r, report = deploy_stack(lab, "--detailed-exitcode")
    assert r.returncode == 0 and all(h["changed"] == 0 for h in report["hosts"]), r.stderr[-3000:]
    for secret in ("vault_lab_pg_webui_password", "vault_lab_webui_jwt_secret", "vault_lab_litellm_master_key"):
        assert lab.secret(secret) not in r.stdout + r.stderr
    host = lab.host(APPS[0])
    env = host.file("/etc/hx-webui/webui.env")
    assert (env.user, env.group, env.mode) == ("root", "hx-webui", 0o640)
    assert host.service("hx-webui@blue").is_running and host.service("hx-webui@blue").is_enabled
    assert host.socket(f"tcp://{lab.ip(APPS[0])}:3000").is_listening
    assert host.file("/opt/hx-webui/blue").linked_to == "/opt/hx-webui/releases/1.0.0"


def test_the_primary_runs_the_fleets_postgresql_17_on_debian_13(lab, front):
    assert lab.ssh(DB, ". /etc/os-release; echo $VERSION_ID").stdout.strip() == "13"
    version = lab.ssh(DB, "runuser -u postgres -- psql -XAtc 'SHOW server_version_num'").stdout.strip()
    assert version.startswith("17"), version
    host = lab.host(DB)
    assert (
        host.service("postgresql@17-main").is_running
        and host.file("/etc/postgresql/17/main/conf.d/hx-auth.conf").exists
    )


def test_web_ui_role_logs_in_from_application_servers_only(lab, front):
    password = lab.secret("vault_lab_pg_webui_password")
    conninfo = (
        f"host={lab.ip(DB)} dbname=hx_webui user=hx_webui sslmode=verify-full connect_timeout=5 "
        "sslrootcert=/etc/ssl/certs/ca-certificates.crt gssencmode=disable"
    )
    cmd = f"PGPASSWORD='{password}' psql -X -At '{conninfo}' -c 'SELECT current_user'"
    for host in (*APPS, WEB):
        lab.apt_install(host, "postgresql-client-15")
    for app in APPS:
        ok = lab.ssh(app, cmd, check=False)
        assert ok.returncode == 0 and ok.stdout.strip() == "hx_webui", ok.stderr
    refused = lab.ssh(WEB, cmd, check=False)  # not a pg_hba client: the database's firewall drops it
    assert refused.returncode != 0 and "timeout expired" in refused.stderr


def test_one_application_server_down_every_request_still_answered(lab, front):
    with loop(lab, front) as requests:
        lab.ssh(APPS[0], "sleep 2; systemctl stop 'hx-webui@*'")
        lab.ssh(APPS[0], "sleep 8")
    assert requests.total > 20 and requests.failures == [], requests.failures[:3]
    r, report = deploy_stack(lab)  # the next run starts it again
    assert {h["host"]: h["changed"] for h in report["hosts"]}[APPS[0]] > 0
    assert lab.host(APPS[0]).service("hx-webui@blue").is_running


def test_blue_green_switch_without_a_failed_request_and_back_in_one_command(lab, front):
    lab.build_release("1.1.0")
    with loop(lab, front) as requests:
        r, report = deploy_stack(lab, "-e", "webui_version=1.1.0")
        lab.ssh(WEB, "sleep 2")
    assert requests.failures == [], requests.failures[:3]
    assert requests.releases["1.0.0 blue"] > 0 and requests.releases["1.1.0 green"] > 0, requests.releases
    pool = lab.ssh(WEB, f"cat {POOL}").stdout
    assert f"server {lab.ip(APPS[0])}:3001 max_fails" in pool and f"server {lab.ip(APPS[0])}:3000 backup" in pool
    for app in APPS:
        assert lab.ssh(app, "cat /opt/hx-webui/active").stdout.strip() == "green"
        assert lab.host(app).service("hx-webui@blue").is_running  # the old colour stands by
    # going back is one command, nothing unpacked
    with loop(lab, front) as back:
        r, report = deploy_stack(lab, "-e", "webui_version=previous")
        lab.ssh(WEB, "sleep 2")
    assert back.failures == [] and back.releases["1.0.0 blue"] > 0, back.failures[:3]
    assert "HX web UI 1.0.0 (blue)" in lab.curl_https(WEB).stdout


def test_a_broken_release_never_takes_traffic(lab, front):
    lab.build_release("9.9.9-broken", broken=True)
    pool = lab.ssh(WEB, f"cat {POOL}").stdout
    with loop(lab, front) as requests:
        r, report = deploy_stack(lab, "-e", "webui_version=9.9.9-broken", "-e", "webui_start_timeout=10", check=False)
    assert r.returncode == 1
    status = {h["host"]: h["status"] for h in report["hosts"]}
    assert status[APPS[0]] == status[APPS[1]] == status[WEB] == "failed"
    assert "not ready after 10s: HTTP Error 503" in r.stderr  # the app server's own check, with the unit's log
    assert (
        "validation failed (nginx -t and the new backends' health" in r.stderr
        and "previous config restored" in r.stderr
    )
    assert lab.ssh(WEB, f"cat {POOL}").stdout == pool  # the switch undid itself: the old colour serves
    assert requests.failures == [] and requests.total > 0, requests.failures[:3]
    assert "HX web UI 1.0.0 (blue)" in lab.curl_https(WEB).stdout
    r, report = deploy_stack(lab)  # the data's release again: back to a converged stack
    assert all(h["status"] in ("ok", "changed") for h in report["hosts"])


def test_a_full_site_run_changing_nginx_pg_auth_and_the_web_ui_fails_no_request(lab, front):
    """20 requests a second against the front end for the whole of one site run that changes
    nginx (a directive), PostgreSQL (a setting: a reload) and the web UI (a new release, switched
    blue-green) at once: not one request fails. The counts are printed for the README."""
    lab.build_release("1.1.0")
    changes = ("-e", "nginx_client_max_body_size=21m", "-e", "{pg_auth_settings: {log_min_duration_statement: 2500}}")
    with RequestLoop(front.replace(f"{WEB}.{LAB_DOMAIN}", lab.ip(WEB)), lab.ca_file, limit=600, rate=20) as requests:
        started = time.monotonic()
        r, report = deploy_stack(lab, *changes, "-e", "webui_version=1.1.0")
        took = time.monotonic() - started
    changed = {h["host"]: h["changed"] for h in report["hosts"]}
    assert all(h["status"] == "changed" for h in report["hosts"]), r.stderr[-3000:]
    print(
        f"load during a site run of {took:.0f} s: {requests.total} requests at 20/s, "
        f"{len(requests.failures)} failed, answers by release {dict(requests.releases)}, changes {changed}"
    )
    assert requests.failures == [], requests.failures[:3]
    # the load held for the whole run: answers all along it (a busy controller keeps a slower pace)
    gap = requests.longest_gap(started, started + took)
    assert gap < 3.0 and requests.total >= 10 * took, (requests.total, took, gap)
    assert requests.releases["1.0.0 blue"] > 0 and requests.releases["1.1.0 green"] > 0, requests.releases
    assert "client_max_body_size 21m;" in lab.ssh(WEB, "cat /etc/nginx/sites-available/webui.conf").stdout
    setting = lab.ssh(DB, "runuser -u postgres -- psql -XAtc 'SHOW log_min_duration_statement'").stdout.strip()
    assert setting == "2500ms", setting
    r, again = deploy_stack(lab, *changes, "-e", "webui_version=1.1.0", "--detailed-exitcode")
    assert r.returncode == 0 and all(h["changed"] == 0 for h in again["hosts"]), r.stderr[-3000:]
    r, report = deploy_stack(lab)  # the inventory's settings and release again
    assert "HX web UI 1.0.0" in lab.curl_https(WEB).stdout
