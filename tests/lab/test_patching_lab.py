"""Patching and the audit on a real host: the audit fails a host a test broke on purpose (naming the
evidence) and lists its pending security updates; once repaired and patched (security updates
installed, the host's health verified) it passes; a second patching run changes nothing."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

HOST = "hx-web-03"


def audit(lab, *args: str):
    r = lab.hxinfra("audit", "--env", "lab", "--limit", HOST, "--json", *args, check=False)
    return r, {c["id"]: c for c in json.loads(r.stdout)["hosts"][0]["controls"]}


def test_the_audit_fails_a_broken_host_and_passes_it_hardened_and_patched(lab, tmp_path):
    lab.hx_deploy("site", "--limit", HOST)
    lab.ssh(HOST, "touch /etc/hx-broken && chmod 0666 /etc/hx-broken && useradd -M nopass && passwd -dq nopass")
    try:
        r, controls = audit(lab, "--html", str(tmp_path / "audit.html"))
    finally:
        lab.ssh(HOST, "rm -f /etc/hx-broken; userdel nopass")
    assert r.returncode == 1 and "audit failures: hx-web-03:" in r.stderr
    assert (
        not controls["config-not-world-writable"]["passed"]
        and "/etc/hx-broken" in controls["config-not-world-writable"]["evidence"]
    )
    assert not controls["no-empty-passwords"]["passed"] and controls["no-empty-passwords"]["evidence"] == ["nopass"]
    assert controls["ssh-no-passwords"]["passed"] and controls["firewall-rules-as-derived"]["passed"]
    page = (tmp_path / "audit.html").read_text()
    assert "<svg" in page and "/etc/hx-broken" in page
    updates = controls["security-updates-applied"]
    if not updates["passed"]:  # the vulnerability scan: packages with a pending security update, versions
        assert all(" -> " in line for line in updates["evidence"])
    r, report = lab.hx_deploy("patching", "--limit", HOST, "--serial", "1")
    assert report["hosts"][0]["status"] in ("changed", "ok"), r.stderr[-3000:]
    r, controls = audit(lab, "--standard", "pci_dss")
    assert r.returncode == 0, r.stdout[-3000:]
    assert all(c["passed"] and "pci_dss" in c["requirements"] for c in controls.values())
    r, again = lab.hx_deploy("patching", "--limit", HOST, "--detailed-exitcode")
    assert r.returncode == 0 and again["hosts"][0]["changed"] == 0


def test_a_reboot_happens_only_when_required_and_allowed_and_the_host_comes_back_healthy(lab):
    boot_id = "cat /proc/sys/kernel/random/boot_id"
    before = lab.ssh(HOST, boot_id).stdout
    lab.ssh(HOST, "touch /run/reboot-required")
    r, report = lab.hx_deploy("patching", "--limit", HOST)  # required, not allowed: reported, no reboot
    assert report["hosts"][0]["status"] in ("ok", "changed") and lab.ssh(HOST, boot_id).stdout == before
    r, report = lab.hx_deploy("patching", "--limit", HOST, "-e", "patching_reboot=true")
    assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
    assert lab.ssh(HOST, boot_id).stdout != before  # rebooted, reached again, health verified
    assert lab.ssh(HOST, "test -e /run/reboot-required", check=False).returncode == 1
    assert lab.host(HOST).service("ssh").is_running and lab.host(HOST).service("fail2ban").is_running
    r, again = lab.hx_deploy("patching", "--limit", HOST, "-e", "patching_reboot=true", "--detailed-exitcode")
    assert r.returncode == 0 and again["hosts"][0]["changed"] == 0  # nothing required: no reboot
