"""Local users, desired state: accounts, groups, authorized keys and sudo rules from data.

Each account's ``authorized_keys`` is one whole managed file, so adding, rotating and removing a key
is the file's exact new content (a rotated key's old line is gone, not left beside the new one).
Sudo rules are one file, ``/etc/sudoers.d/hx-users``, checked by ``visudo -cf`` before it counts.
The guide's one-user form (``-e username=bob user_groups=devs ssh_public_key='ssh-ed25519 ...'
action=add|remove``) adds, updates or removes one account on top of the data's list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploys.common import templates_root
from hxinfra.desired import Absent, ConfigItem, ManagedFile
from hxinfra.render import render
from hxinfra.validate import DataError, abs_path, collect, fields, one_line

DEFAULTS: dict[str, Any] = {
    # Local accounts: {name, groups: [...], keys: ["ssh-ed25519 AAAA... comment", ...], shell, comment,
    # sudo: true (passwordless sudo: these accounts have no password), present: false to remove}.
    # Accounts log in with their keys only (hardening turns passwords off).
    "users_accounts": [],
    # Local groups to create (an account's groups are created too).
    "users_groups": ["hx-ssh"],
    # The guide's one-user form, on top of users_accounts: -e username=... user_groups=a,b
    # ssh_public_key='...' action=add|remove (a name given with action=add replaces its entry).
    "users_username": "",
    "users_user_groups": [],
    "users_ssh_key": "",
    "users_action": "add",
}

ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
SUDOERS = "/etc/sudoers.d/hx-users"
RESERVED = {
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "postgres",
    "sshd",
    "litellm",
}


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    out = []
    for v in value:
        text = one_line(v, what).strip()
        if not ACCOUNT.fullmatch(text):
            raise DataError(f"{what}: {text!r} is not a local user or group name")
        out.append(text)
    return out


def public_key(value: Any, what: str) -> str:
    """One OpenSSH public key line, parsed by cryptography (its type and its key must be valid)."""
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    text = one_line(value, what).strip()
    parts = text.split()
    try:
        load_ssh_public_key(" ".join(parts[:2]).encode())
    except Exception as e:  # noqa: BLE001 - whatever cryptography raises for a bad key: one message
        raise DataError(f"{what}: not an OpenSSH public key ({type(e).__name__})") from None
    return text


def accounts(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The accounts, checked and completed; the guide's one-user form applied last."""
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data["users_accounts"]):
        what = f"users_accounts[{i}]"
        e = fields(entry, what, ("name",), ("groups", "keys", "shell", "comment", "sudo", "present"))
        name = _names([e["name"]], f"{what}.name")[0]
        if name in RESERVED:
            raise DataError(f"{what}.name: {name} is a system account")
        comment = one_line(e.get("comment", ""), f"{what}.comment")
        if re.search(r"[:,]", comment):
            raise DataError(f"{what}.comment: no ':' or ','")
        out[name] = {
            "name": name,
            "groups": _names(e.get("groups", []), f"{what}.groups"),
            "keys": [public_key(k, f"{what}.keys") for k in e.get("keys", [])],
            "shell": abs_path(e.get("shell", "/bin/bash"), f"{what}.shell"),
            "comment": comment,
            "sudo": bool(e.get("sudo", False)),
            "present": bool(e.get("present", True)),
        }
    if data["users_username"]:
        name = _names([data["users_username"]], "users_username (-e username)")[0]
        if name in RESERVED:
            raise DataError(f"users_username: {name} is a system account")
        action = data["users_action"]
        if action not in ("add", "remove"):
            raise DataError("users_action (-e action): add or remove")
        entry = out.get(
            name,
            {
                "name": name,
                "groups": [],
                "keys": [],
                "shell": "/bin/bash",
                "comment": "",
                "sudo": False,
                "present": True,
            },
        )
        if action == "remove":
            entry = {**entry, "present": False}
        else:
            groups = _names(data["users_user_groups"], "users_user_groups (-e user_groups)")
            key = data["users_ssh_key"]
            entry = {
                **entry,
                "present": True,
                "groups": groups or entry["groups"],
                "keys": [public_key(key, "users_ssh_key (-e ssh_public_key)")] if key else entry["keys"],
            }
        out[name] = entry
    return list(out.values())


def groups(data: Mapping[str, Any]) -> list[str]:
    """Every group to exist: the data's, and those of present accounts."""
    names = _names(data["users_groups"], "users_groups")
    names += [g for a in accounts(data) if a["present"] for g in a["groups"]]
    return list(dict.fromkeys(names))


def home(name: str) -> str:
    return f"/home/{name}"


def desired_config(data: Mapping[str, Any]) -> list[ConfigItem]:
    """Each account's authorized_keys (absent with the account), and the sudo rules."""
    items: list[ConfigItem] = []
    for a in accounts(data):
        path = f"{home(a['name'])}/.ssh/authorized_keys"
        if a["present"]:
            items.append(
                ManagedFile(path, "".join(f"{k}\n" for k in a["keys"]), mode="0600", user=a["name"], group=a["name"])
            )
        else:
            items.append(Absent(path))
    sudo = [a["name"] for a in accounts(data) if a["present"] and a["sudo"]]
    if sudo:
        items.append(
            ManagedFile(
                SUDOERS, render(templates_root(), "users/etc/sudoers.d/hx-users.j2", {"sudo": sudo}), mode="0440"
            )
        )
    else:
        items.append(Absent(SUDOERS))
    return items


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    return collect(
        data,
        {
            "users_accounts": lambda d: accounts(d),
            "users_groups": lambda d: groups(d),
        },
    )


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    return desired_config(data)


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """Every present account exists, every removed one is gone."""
    from shlex import quote as q

    from hxinfra.health import Check

    present = [a["name"] for a in accounts(data) if a["present"]]
    gone = [a["name"] for a in accounts(data) if not a["present"]]
    if not present and not gone:
        return []
    script = " && ".join(
        [
            *(f"getent passwd {q(n)} >/dev/null" for n in present),
            *(f"! getent passwd {q(n)} >/dev/null" for n in gone),
            "echo accounts as wanted",
        ]
    )
    return [Check("local accounts as the data says", script, "users")]
