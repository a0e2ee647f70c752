"""`hxinfra health` on the lab: every check passes on the converged stack, a stopped service is
named and exits 1, and the guide's -e variables select hosts and services."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

WEB = "hx-web-01"
STACK = ("hx-db-01", "hx-api-01", "hx-app-01", "hx-app-02", WEB)


def health(lab, *args: str, check: bool = False):
    return lab.hxinfra("health", "--env", "lab", *args, check=check)


def test_the_converged_stack_is_healthy_with_real_probes(lab, tmp_path):
    lab.hx_deploy("site", *[a for h in STACK for a in ("--limit", h)])
    r = health(lab, "--limit", ":".join(STACK), "--json", "--html", str(tmp_path / "health.html"))
    report = json.loads(r.stdout)
    assert r.returncode == 0 and report["ok"], r.stdout[-3000:]
    checks = {h["host"]: {c["name"]: c for c in h["checks"]} for h in report["hosts"]}
    assert checks[WEB]["the site answers /health through nginx"]["ok"]
    assert checks["hx-db-01"]["TLS handshake verifies against the system's CAs"]["output"] == [
        "Verify return code: 0 (ok)"
    ]
    assert checks["hx-api-01"]["the gateway answers /health/liveliness"]["ok"]
    assert checks["hx-app-01"]["the serving colour answers its health path"]["ok"]
    assert any(name.startswith("certificate /etc/ssl/hx/webui.crt") for name in checks[WEB])
    for host in report["hosts"]:
        assert host["basics"]["mem_total_mb"] > 0 and "/" in host["basics"]["disks"]
    page = (tmp_path / "health.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "0 failing" in page


def test_a_stopped_service_is_named_and_fails_the_run(lab):
    lab.hx_deploy("site", "--limit", WEB)
    lab.ssh(WEB, "systemctl stop nginx")
    try:
        r = health(lab, "-e", f"target_hosts={WEB}", "-e", "services=nginx", "--json")
        assert r.returncode == 1
        assert f"{WEB}: service nginx.service is active" in r.stderr
        assert f"{WEB}: the site answers /health through nginx" in r.stderr
        hosts = json.loads(r.stdout)["hosts"]
        assert [h["host"] for h in hosts] == [WEB]  # target_hosts
        assert {c["service"] for c in hosts[0]["checks"]} == {"nginx"}  # services: only nginx's checks
    finally:
        lab.ssh(WEB, "systemctl start nginx")
    r = health(lab, "--limit", WEB, "--services", "nginx")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_guide_variable_is_a_usage_error(lab):
    r = health(lab, "-e", "target_host=web_servers")
    assert r.returncode == 2 and "health takes target_hosts, services, disk_threshold" in r.stderr


def test_logs_analyze_counts_authentication_failures(lab):
    for _ in range(4):
        lab.ssh(WEB, "logger -t sshd 'Failed password for invalid user mallory from 192.0.2.7 port 4242 ssh2'")
    r = lab.hxinfra(
        "logs", "analyze", "--env", "lab", "--limit", WEB, "--max-auth-failures", "2", "--json", check=False
    )
    found = json.loads(r.stdout)[0]
    assert r.returncode == 1 and found["auth_failures"] >= 4 and not found["ok"]
    assert f"{WEB}: " in r.stderr and "SSH authentication failures (> 2)" in r.stderr
    r = lab.hxinfra(
        "logs",
        "analyze",
        "--env",
        "lab",
        "--limit",
        WEB,
        "--max-auth-failures",
        "1000",
        "--max-errors",
        "100000",
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_collect_twice_then_report(lab, tmp_path):
    store = tmp_path / "lab.jsonl"
    for _ in range(2):
        lab.hxinfra("metrics", "collect", "--env", "lab", "--limit", ":".join(STACK), "--store", str(store), check=True)
    r = lab.hxinfra(
        "metrics",
        "report",
        "--env",
        "lab",
        "--store",
        str(store),
        "--period",
        "1h",
        "--json",
        "--html",
        str(tmp_path / "m.html"),
        check=True,
    )
    hosts = json.loads(r.stdout)["hosts"]
    assert set(hosts) == set(STACK) and all(h["samples"] == 2 for h in hosts.values())
    assert all(0 < h["mem_used_pct"]["max"] <= 100 for h in hosts.values())
    assert (tmp_path / "m.html").read_text().count("<svg") == 3


def test_recover_restarts_failed_units_in_the_sites_order(lab):
    lab.hx_deploy("site", "--limit", WEB)
    lab.ssh(WEB, "kill -9 $(cat /run/nginx.pid); sleep 1; systemctl is-failed --quiet nginx")
    r = lab.hxinfra("recover", "--env", "lab", "--limit", ":".join(STACK), "--json", check=False)
    results = json.loads(r.stdout)
    assert r.returncode == 0 and all(x["ok"] for x in results), r.stdout
    assert [x["host"] for x in results] == ["hx-db-01", "hx-api-01", "hx-app-01", "hx-app-02", WEB]  # dependency order
    assert "restarting: nginx.service" in next(x["detail"] for x in results if x["host"] == WEB)
    assert lab.host(WEB).service("nginx").is_running
    lab.ssh(WEB, "systemd-run --unit=hx-test-fails --quiet false; sleep 1")
    try:
        r = lab.hxinfra("recover", "--env", "lab", "--limit", WEB, check=False)
        assert r.returncode == 1 and "still failed: hx-test-fails.service" in r.stdout
    finally:
        lab.ssh(WEB, "systemctl reset-failed hx-test-fails")
