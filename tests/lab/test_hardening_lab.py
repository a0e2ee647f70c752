"""Hardening on real hosts: SSH with the key still works, passwords and (where set) root are refused,
a broken sshd config never goes live, fail2ban and the sysctl baseline are in effect, a second run
changes nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.lab

HOST = "hx-web-02"
DROPIN = "/etc/ssh/sshd_config.d/00-hxinfra.conf"


def ssh_as(lab, user: str, *options: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """A real OpenSSH client login from this machine, strict host key checking."""
    args = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={lab.lab.known_hosts}",
        "-o",
        "ConnectTimeout=10",
        "-i",
        key or str(lab.lab.key),
        *options,
        f"{user}@{lab.ip(HOST)}",
        "true",
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_hardened_host_keeps_key_logins_and_refuses_passwords(lab):
    r, report = lab.hx_deploy("site", "--limit", HOST)
    assert report["hosts"][0]["status"] in ("changed", "ok"), r.stderr[-3000:]
    r, again = lab.hx_deploy("site", "--limit", HOST, "--detailed-exitcode")
    assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    assert ssh_as(lab, "root").returncode == 0
    password = ssh_as(
        lab, "root", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"
    )
    assert password.returncode == 255 and "Permission denied (publickey" in password.stderr
    assert "password" not in password.stderr.split("Permission denied")[1]  # not even offered
    effective = lab.ssh(HOST, "sshd -T").stdout
    for line in (
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin without-password",
        "maxauthtries 3",
        "x11forwarding no",
    ):
        assert f"\n{line}\n" in effective
    assert 'allowgroups root sudo hx-ssh "domain admins"' in effective or "allowgroups root" in effective
    host = lab.host(HOST)
    assert host.file(DROPIN).contains("^# managed by hxinfra") and host.service("fail2ban").is_running
    assert "sshd" in lab.ssh(HOST, "fail2ban-client status").stdout
    assert lab.ssh(HOST, "sysctl -n net.ipv4.conf.all.accept_redirects net.ipv4.tcp_syncookies").stdout.split() == [
        "0",
        "1",
    ]
    assert 'Unattended-Upgrade "1"' in lab.ssh(HOST, "apt-config dump APT::Periodic::Unattended-Upgrade").stdout


def test_a_config_sshd_rejects_never_goes_live_and_ssh_still_works(lab):
    before = lab.ssh(HOST, f"sha256sum {DROPIN}").stdout
    # refused before connecting: a value that would inject sshd lines
    r, _ = lab.hx_deploy(
        "hardening", "--limit", HOST, "-e", json.dumps({"hardening_ssh_allow_groups": ['x" root']}), check=False
    )
    assert r.returncode == 1 and "hardening_ssh_allow_groups" in r.stderr and "Connecting" not in r.stderr
    # a host whose sshd config is broken elsewhere: sshd -t fails with the new drop-in, which is undone
    lab.ssh(HOST, "echo 'NoSuchOption yes' > /etc/ssh/sshd_config.d/50-broken.conf")
    try:
        r, report = lab.hx_deploy("hardening", "--limit", HOST, "-e", "hardening_ssh_max_auth_tries=4", check=False)
    finally:
        lab.ssh(HOST, "rm -f /etc/ssh/sshd_config.d/50-broken.conf")
    assert r.returncode == 1 and "validation failed (sshd -t" in r.stderr and "previous config restored" in r.stderr
    assert lab.ssh(HOST, f"sha256sum {DROPIN}").stdout == before and ssh_as(lab, "root").returncode == 0


def test_root_refused_when_set_while_an_admin_account_with_its_key_and_sudo_works(lab, tmp_path):
    key = tmp_path / "ops"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(key)], check=True)
    ops = {
        "users_accounts": [
            {"name": "hxops", "groups": ["hx-ssh"], "keys": [key.with_suffix(".pub").read_text().strip()], "sudo": True}
        ]
    }
    lab.hx_deploy("users", "--limit", HOST, "-e", json.dumps(ops))
    as_ops = json.dumps(
        {**ops, "ssh_user": "hxops", "ssh_key": str(key), "_sudo": True, "hardening_ssh_permit_root_login": "no"}
    )
    try:
        r, report = lab.hx_deploy("hardening", "--limit", HOST, "-e", as_ops)
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        refused = ssh_as(lab, "root")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr
        sudo = subprocess.run(
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                f"UserKnownHostsFile={lab.lab.known_hosts}",
                "-i",
                str(key),
                f"hxops@{lab.ip(HOST)}",
                "sudo -n id -u",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sudo.returncode == 0 and sudo.stdout.strip() == "0", sudo.stderr
    finally:  # back to the lab's own settings, as the admin account (root may not log in now)
        lab.hx_deploy(
            "hardening",
            "--limit",
            HOST,
            "-e",
            json.dumps({**ops, "ssh_user": "hxops", "ssh_key": str(key), "_sudo": True}),
        )
    assert ssh_as(lab, "root").returncode == 0
