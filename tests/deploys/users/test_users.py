"""Local users' pure parts: accounts completed and checked, the guide's one-user form, the files."""

from __future__ import annotations

import pytest

from deploys.users.config import DEFAULTS, SUDOERS, accounts, check_data, desired_config, groups
from hxinfra.desired import Absent, ManagedFile

KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHTEn+nedzC/WsRkBXaHotdEPHb36lN+GeU/2j62A6mh k1"


def data(**kw):
    return {**DEFAULTS, **kw}


def test_accounts_give_exact_key_files_and_sudo_rules():
    d = data(
        users_accounts=[
            {"name": "ops", "groups": ["hx-ssh"], "keys": [KEY1], "sudo": True},
            {"name": "old", "present": False},
        ]
    )
    items = {i.path: i for i in desired_config(d)}
    keys = items["/home/ops/.ssh/authorized_keys"]
    assert isinstance(keys, ManagedFile) and keys.content == KEY1 + "\n" and keys.mode == "0600" and keys.user == "ops"
    assert isinstance(items["/home/old/.ssh/authorized_keys"], Absent)
    sudoers = items[SUDOERS]
    assert isinstance(sudoers, ManagedFile) and sudoers.mode == "0440"
    assert "ops ALL=(ALL:ALL) NOPASSWD: ALL" in sudoers.content and "old" not in sudoers.content
    assert isinstance({i.path: i for i in desired_config(data())}[SUDOERS], Absent)
    assert groups(d) == ["hx-ssh"]


def test_the_guides_one_user_form_adds_rotates_and_removes():
    base = [{"name": "bob", "groups": ["hx-ssh"], "keys": [KEY1]}]
    rotated = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc6k1jQ2QlvQ1oHh8d2m6oW3vJ8kPZr5yq3o2pV0mZ4 new"
    (bob,) = accounts(data(users_accounts=base, users_username="bob", users_ssh_key=rotated))
    assert bob["keys"] == [rotated] and bob["groups"] == ["hx-ssh"] and bob["present"]
    (bob,) = accounts(data(users_accounts=base, users_username="bob", users_action="remove"))
    assert not bob["present"]
    (eve,) = accounts(data(users_username="eve", users_user_groups="hx-ssh,devs", users_ssh_key=KEY1))
    assert eve["groups"] == ["hx-ssh", "devs"] and eve["keys"] == [KEY1]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"users_accounts": [{"name": "Bad Name"}]}, "not a local user or group name"),
        ({"users_accounts": [{"name": "root"}]}, "root is a system account"),
        ({"users_accounts": [{"name": "ok", "keys": ["ssh-ed25519 AAAAnotakey"]}]}, "not an OpenSSH public key"),
        ({"users_accounts": [{"name": "ok", "keys": [KEY1 + "\nssh-rsa AAAA"]}]}, "newline"),
        ({"users_accounts": [{"name": "ok", "comment": "a:b"}]}, "no ':'"),
        ({"users_accounts": [{"name": "ok", "shell": "bash; rm -rf /"}]}, "users_accounts[0].shell"),
        ({"users_username": "x", "users_action": "purge"}, "add or remove"),
        ({"users_accounts": [{"name": "ok", "sudo_rules": "ALL"}]}, "sudo_rules"),
    ],
)
def test_hostile_or_malformed_values_are_refused(values, message):
    problems = check_data(data(**values))
    assert problems and any(message in p for _, p in problems), problems


def test_the_guides_names_reach_the_users_keys_and_never_shadow_pyinfras():
    from hxinfra.inventory import load_environment

    env = load_environment(
        "inventories/development.py",
        extra_vars={
            "username": "bob",
            "user_groups": "hx-ssh",
            "action": "remove",
            "ssh_public_key": KEY1,
            "ssh_key": "/tmp/k",
        },
    )
    assert env.extra_vars == {
        "users_username": "bob",
        "users_user_groups": "hx-ssh",
        "users_action": "remove",
        "users_ssh_key": KEY1,
        "ssh_key": "/tmp/k",
    }


def test_a_removed_account_ends_its_sessions_and_user_manager_before_userdel():
    """Killed with its processes, user@UID.service would stay failed (and the host's health with it)."""
    from deploys.users.operations import remove_command

    cmd = remove_command("carol; reboot")
    order = [cmd.index(part) for part in ("loginctl terminate-user", 'systemctl stop "user@$uid', "pkill", "userdel")]
    assert order == sorted(order) and "reset-failed" in cmd[cmd.index("userdel") :]
    assert "'carol; reboot'" in cmd and "carol; reboot " not in cmd.replace("'carol; reboot'", "")
