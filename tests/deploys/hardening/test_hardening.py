"""Hardening's pure parts: the sshd drop-in never locks out root (where it logs in) or the AD admins,
sshd itself accepts it, every value is checked."""

from __future__ import annotations

import pytest

from deploys.hardening.config import DEFAULTS, allow_groups, check_data, desired_config, ntp_servers, sshd_dropin

AD = {"ad_join_sudo_rules": [{"group": "domain admins", "commands": "ALL"}]}


def data(**kw):
    return {
        **DEFAULTS,
        "hx_subnet": "10.1.0.0/24",
        **AD,
        "hx_members": {"domain_controllers": [{"name": "hx-dc-01", "address": "10.1.0.10"}]},
        **kw,
    }


def test_allow_groups_keep_root_where_it_logs_in_and_the_ad_admins_on_members():
    assert allow_groups(data(), joined=True) == ["sudo", "hx-ssh", "domain admins"]
    assert allow_groups(data(hardening_ssh_permit_root_login="prohibit-password"), joined=False) == [
        "root",
        "sudo",
        "hx-ssh",
    ]
    assert allow_groups(data(hardening_ssh_allow_groups=[]), joined=True) == []
    text = sshd_dropin(data(), joined=True)
    assert 'AllowGroups sudo hx-ssh "domain admins"\n' in text and "PasswordAuthentication no\n" in text
    assert "PermitRootLogin no\n" in text and "GSSAPIAuthentication yes" in text
    assert "GSSAPIAuthentication" not in sshd_dropin(data(), joined=False)


def test_time_comes_from_the_domain_controllers_and_every_area_has_a_whole_file():
    assert ntp_servers(data()) == ["10.1.0.10"] and ntp_servers(data(hardening_ntp_servers=["ntp.x"])) == ["ntp.x"]
    files = desired_config(data(), joined=True, web=True)
    assert "server 10.1.0.10 iburst" in files["time"][0].content
    jail = files["fail2ban"][0].content
    assert (
        "ignoreip = 127.0.0.1/8 ::1 10.1.0.0/24" in jail and "[nginx-http-auth]" in jail and "backend = systemd" in jail
    )
    assert "[nginx" not in desired_config(data(), joined=True, web=False)["fail2ban"][0].content
    off = desired_config(
        data(
            hardening_fail2ban=False,
            hardening_auditd=False,
            hardening_time_sync=False,
            hardening_unattended_upgrades=False,
        ),
        joined=True,
        web=False,
    )
    assert off["fail2ban"] == off["auditd"] == off["time"] == off["upgrades"] == []
    assert all(
        f.content.startswith("# managed by hxinfra")
        or f.content.startswith("// managed by hxinfra")
        or "managed by hxinfra" in f.content.splitlines()[0]
        for area in files.values()
        for f in area
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"hardening_ssh_permit_root_login": "yes"}, "no, prohibit-password"),
        ({"hardening_ssh_allow_groups": ["ok", "bad\nMatch all"]}, "newline"),
        ({"hardening_ssh_allow_groups": ['x" root']}, "a group name"),
        ({"hardening_sysctl": {"net.ipv4.ip_forward": 1}}, "forwarding"),
        ({"hardening_sysctl": {"kernel.x": "1; reboot"}}, "numeric value"),
        ({"hardening_ssh_max_auth_tries": 0}, "1 to 10"),
        ({"hardening_disabled_services": ["ssh"]}, "x.service"),
        ({"hx_admin_networks": ["anywhere"]}, "hx_admin_networks"),
        ({"ssh_user": "root", "hardening_ssh_permit_root_login": "no"}, "would lock out the controller"),
    ],
)
def test_hostile_or_malformed_values_are_refused(values, message):
    problems = check_data(data(**values))
    assert problems and any(message in p for _, p in problems), problems


def test_the_domain_controllers_serve_time_and_the_members_take_it_from_them():
    dc = desired_config(data(), joined=False, web=False, host_name="hx-dc-01")["time"][0].content
    assert "allow 10.1.0.0/24\n" in dc and "local stratum 10\n" in dc  # serves, even with no upstream
    assert "pool 2.debian.pool.ntp.org iburst" in dc  # no other DC: Debian's pool upstream
    member = desired_config(data(), joined=True, web=False, host_name="hx-app-01")["time"][0].content
    assert "server 10.1.0.10 iburst" in member and "allow" not in member and "local stratum" not in member


def test_a_clock_that_is_not_the_hosts_is_measured_and_served_not_set():
    files = desired_config(data(hardening_time_set_clock=False), joined=True, web=False, host_name="hx-app-01")
    paths = [f.path for f in files["time"]]
    assert paths == ["/etc/chrony/chrony.conf", "/etc/systemd/system/chrony.service.d/hxinfra.conf"]
    dropin = files["time"][1].content
    assert "ConditionCapability=\n" in dropin and "ExecStart=\nExecStart=!/usr/sbin/chronyd $DAEMON_OPTS -x\n" in dropin
    assert [f.path for f in desired_config(data(), joined=True, web=False)["time"]] == ["/etc/chrony/chrony.conf"]


@pytest.mark.parametrize(
    ("sources", "ok", "said"),
    [
        ("^,*,10.1.0.10,10,6,377,12,-0.000012345,-0.000012000,0.000100\n", True, "selected 10.1.0.10"),
        ("^,*,10.1.0.10,10,6,377,12,-301.5,-301.5,0.1\n^,-,10.1.0.11,3,6,377,12,0.1,0.1,0.1\n", False, "-301.5"),
        ("^,?,10.1.0.10,0,6,0,-,0,0,0\n", False, "no time source selected"),
    ],
)
def test_health_wants_a_selected_source_within_kerberos_skew(tmp_path, monkeypatch, sources, ok, said):
    import os
    import subprocess

    from deploys.hardening.config import health

    (tmp_path / "chronyc").write_text(f"#!/bin/sh\nprintf '%s' '{sources}'\n")
    (tmp_path / "chronyc").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    (check,) = [c for c in health(data(), "hx-app-01") if c.service == "chrony"]
    r = subprocess.run(["sh", "-c", check.command], capture_output=True, text=True)
    assert (r.returncode == 0) == ok and said in r.stdout, r.stdout
    assert not [c for c in health(data(), "hx-dc-01") if c.service == "chrony"]  # a DC is the source
