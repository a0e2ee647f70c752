"""Local users on a real host, in the guide's one-user form: a user logs in with its key, after a
rotation the old key fails and the new one works, after removal the user is gone."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

pytestmark = pytest.mark.lab

HOST = "hx-web-02"


def keypair(tmp_path, name: str) -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return str(path), path.with_suffix(".pub").read_text().strip()


def ssh_as(lab, user: str, key: str, command: str) -> list[str]:
    """The ssh client's command that logs in to HOST as ``user`` with ``key`` only (strict host keys)."""
    return [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={lab.lab.known_hosts}",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        key,
        f"{user}@{lab.ip(HOST)}",
        command,
    ]


def login(lab, user: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh_as(lab, user, key, "id -nG"), capture_output=True, text=True, timeout=60)


def test_a_user_is_added_rotated_and_removed_with_the_guides_variables(lab, tmp_path):
    old, old_pub = keypair(tmp_path, "carol-1")
    new, new_pub = keypair(tmp_path, "carol-2")
    add = {"username": "carol", "user_groups": "hx-ssh", "ssh_public_key": old_pub}
    lab.hx_deploy("site", "--limit", HOST)  # hardened: keys only, AllowGroups with hx-ssh
    r, report = lab.hx_deploy("users", "--limit", HOST, "-e", json.dumps(add))
    assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
    first = login(lab, "carol", old)
    assert first.returncode == 0 and "hx-ssh" in first.stdout.split(), first.stderr
    r, again = lab.hx_deploy("users", "--limit", HOST, "-e", json.dumps(add), "--detailed-exitcode")
    assert r.returncode == 0 and again["hosts"][0]["changed"] == 0
    lab.hx_deploy("users", "--limit", HOST, "-e", json.dumps({**add, "ssh_public_key": new_pub}))
    assert login(lab, "carol", old).returncode == 255 and login(lab, "carol", new).returncode == 0
    assert lab.host(HOST).file("/home/carol/.ssh/authorized_keys").mode == 0o600
    lab.hx_deploy("users", "--limit", HOST, "-e", json.dumps({"username": "carol", "action": "remove"}))
    assert not lab.host(HOST).user("carol").exists and login(lab, "carol", new).returncode == 255
    assert not lab.host(HOST).file("/home/carol").exists


def test_removing_a_user_with_an_open_session_leaves_no_failed_unit(lab, tmp_path):
    """A user logged in (a session and its user manager running) is removed: its session ends, the
    account goes, and no user@UID.service is left failed; the host's health stays green."""
    key, pub = keypair(tmp_path, "dave")
    lab.hx_deploy(
        "users", "--limit", HOST, "-e", json.dumps({"username": "dave", "user_groups": "hx-ssh", "ssh_public_key": pub})
    )
    session = subprocess.Popen(
        ssh_as(lab, "dave", key, "sleep 600"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        uid = ""
        for _ in range(30):  # until logind has the session and the user manager runs
            r = lab.ssh(HOST, "id -u dave && systemctl is-active user@$(id -u dave).service", check=False)
            if r.returncode == 0:
                uid = r.stdout.split()[0]
                break
            time.sleep(1)
        assert uid, "dave's session never started"
        r, report = lab.hx_deploy("users", "--limit", HOST, "-e", json.dumps({"username": "dave", "action": "remove"}))
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        assert session.wait(timeout=30) != 0  # the session was ended
    finally:
        if session.poll() is None:
            session.kill()
    assert not lab.host(HOST).user("dave").exists
    failed = lab.ssh(HOST, "systemctl list-units --state=failed --no-legend --plain").stdout
    assert f"user@{uid}.service" not in failed and failed.strip() == "", failed
    health = lab.hxinfra("health", "--env", "lab", "--limit", HOST, check=False)
    assert health.returncode == 0, health.stdout[-3000:] + health.stderr[-2000:]
