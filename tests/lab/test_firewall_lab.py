"""The firewall on real hosts: what each component serves is reachable from its users only (real
connection attempts between lab hosts), and a rule set that cuts off the controller puts itself back."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.lab

DB, API, APP, WEB = "hx-db-01", "hx-api-01", "hx-app-01", "hx-web-01"
SPARE = "hx-web-04"


def reaches(lab, src: str, dst: str, port: int) -> bool:
    """A TCP connection from ``src`` to ``dst:port`` (3 s): what a client there would get."""
    r = lab.ssh(src, f"timeout 3 bash -c '</dev/tcp/{lab.ip(dst)}/{port}' 2>/dev/null", check=False)
    return r.returncode == 0


def test_each_service_is_reachable_from_its_users_only(lab):
    r, report = lab.hx_deploy("site", "--limit", WEB)
    assert report["hosts"][0]["status"] in ("changed", "ok"), r.stderr[-3000:]
    for name in (DB, API, APP, WEB):
        assert "policy drop" in lab.ssh(name, "nft list chain inet hxinfra input").stdout
    assert reaches(lab, APP, DB, 5432) and not reaches(lab, WEB, DB, 5432)  # pg_hba clients only
    assert reaches(lab, APP, API, 4000) and not reaches(lab, WEB, API, 4000) and not reaches(lab, DB, API, 4000)
    assert reaches(lab, WEB, APP, 3000) and not reaches(lab, DB, APP, 3000)  # the web UI from the web servers
    assert reaches(lab, DB, WEB, 443)  # nginx from anywhere
    assert not reaches(lab, APP, DB, 22)  # SSH from the admin network (the controller) only
    assert "HX web UI" in lab.curl_https(WEB).stdout  # the whole chain still works through it
    r, again = lab.hx_deploy(
        "firewall", *[a for h in (DB, API, APP, WEB) for a in ("--limit", h)], "--detailed-exitcode"
    )
    assert r.returncode == 0 and sum(h["changed"] for h in again["hosts"]) == 0, r.stderr[-3000:]


def test_a_flushed_rule_set_is_loaded_again(lab):
    lab.hx_deploy("firewall", "--limit", SPARE)
    lab.ssh(SPARE, "nft delete table inet hxinfra")
    r, report = lab.hx_deploy("firewall", "--limit", SPARE)
    assert report["hosts"][0]["changed"] >= 1 and "policy drop" in lab.ssh(SPARE, "nft list table inet hxinfra").stdout


def test_rules_that_cut_off_the_controller_put_themselves_back(lab):
    lab.hx_deploy("firewall", "--limit", SPARE)
    before = lab.ssh(SPARE, "sha256sum /etc/nftables.conf").stdout
    cut = json.dumps(
        {"hx_admin_networks": ["192.0.2.0/24"], "firewall_trusted_sources": [], "firewall_rollback_seconds": 30}
    )
    started = time.monotonic()
    r, report = lab.hx_deploy("firewall", "--limit", SPARE, "-e", cut, check=False)
    assert r.returncode == 1 and report["hosts"][0]["status"] == "failed"
    assert "cannot log in to hx-web-04 again" in r.stderr or "rollback timer had fired" in r.stderr, r.stderr[-3000:]
    while time.monotonic() - started < 90 and lab.ssh(SPARE, "true", check=False).returncode != 0:
        time.sleep(3)
    assert lab.ssh(SPARE, "sha256sum /etc/nftables.conf").stdout == before  # the previous rules, live again
    r, report = lab.hx_deploy("firewall", "--limit", SPARE, "--detailed-exitcode")
    assert sum(h["changed"] for h in report["hosts"]) == 0
