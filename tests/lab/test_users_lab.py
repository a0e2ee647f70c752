"""Local users on a real host, in the guide's one-user form: a user logs in with its key, after a
rotation the old key fails and the new one works, after removal the user is gone."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.lab

HOST = "hx-web-02"


def keypair(tmp_path, name: str) -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return str(path), path.with_suffix(".pub").read_text().strip()


def login(lab, user: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
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
            "id -nG",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


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
