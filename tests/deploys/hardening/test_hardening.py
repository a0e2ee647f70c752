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
