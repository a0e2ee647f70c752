"""Ad-hoc verbs on real lab hosts: ping, run (per-host output and exit codes), facts, service, fetch."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

TWO = "hx-web-01:hx-web-02"


def test_ping_and_run_report_each_host_and_its_exit_code(lab):
    r = lab.hxinfra("ping", "--env", "lab", "--limit", TWO, "--json")
    assert [(h["host"], h["reachable"], h["ok"]) for h in json.loads(r.stdout)] == [
        ("hx-web-01", True, True),
        ("hx-web-02", True, True),
    ]
    r = lab.hxinfra("run", TWO, "--env", "lab", "--json", "--", "hostname")
    assert {h["host"]: h["stdout"] for h in json.loads(r.stdout)} == {
        "hx-web-01": ["hx-web-01"],
        "hx-web-02": ["hx-web-02"],
    }
    r = lab.hxinfra("run", "hx-web-01", "--env", "lab", "--json", "--", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 1
    (result,) = json.loads(r.stdout)
    assert result["rc"] == 3 and result["stdout"] == ["out"] and "err" in result["stderr"]
    r = lab.hxinfra("run", "hx-web-01", "--env", "lab", "--serial", "1", "--", "id -u")
    assert "hx-web-01 | ok" in r.stdout and "  0" in r.stdout


def test_facts_service_and_fetch(lab, tmp_path):
    r = lab.hxinfra("facts", "hx-web-01", "server.Hostname", "--env", "lab", "--json")
    assert json.loads(r.stdout)[0]["value"] == "hx-web-01"
    started = lab.host("hx-web-02").run("systemctl show -p ActiveEnterTimestampMonotonic --value ssh").stdout
    r = lab.hxinfra("service", "hx-web-02", "ssh", "--state", "restarted", "--env", "lab", "--json")
    assert json.loads(r.stdout)[0]["stdout"] == ["active"]
    assert lab.host("hx-web-02").run("systemctl show -p ActiveEnterTimestampMonotonic --value ssh").stdout != started
    r = lab.hxinfra("service", "hx-web-02", "no-such-unit", "--state", "started", "--env", "lab", check=False)
    assert r.returncode == 1 and "rc=" in r.stdout
    r = lab.hxinfra("fetch", TWO, "/etc/hostname", str(tmp_path / "logs"), "--env", "lab")
    for name in ("hx-web-01", "hx-web-02"):
        assert (tmp_path / "logs" / name / "etc" / "hostname").read_text().strip() == name
