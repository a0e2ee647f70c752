"""Local users, host side: what exists (accounts, their groups and shells, .ssh directories, local
groups), and one operation that makes it what the data says."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from typing_extensions import override

from deploys.users.config import home


class LocalAccounts(FactBase[dict[str, Any]]):
    """{"groups": [existing names of the asked groups], "accounts": {name: {shell, groups, ssh_dir}}}"""

    @staticmethod
    def default() -> dict[str, Any]:  # no output: none of them exists
        return {"groups": [], "accounts": {}}

    @override
    def command(self, names: list[str], groups: list[str]) -> str:
        q = shlex.quote
        g = " ".join(q(n) for n in groups) or "''"
        u = " ".join(q(n) for n in names) or "''"
        return (
            f'for g in {g}; do [ -n "$g" ] && getent group "$g" >/dev/null && echo "G $g"; done; '
            f'for u in {u}; do [ -n "$u" ] || continue; e=$(getent passwd "$u") || continue; '
            'h=$(echo "$e" | cut -d: -f6); s=$(echo "$e" | cut -d: -f7); '
            "d=$(stat -c '%U:%a' \"$h/.ssh\" 2>/dev/null || echo none); "
            "echo \"U $u $s $d $(id -Gn \"$u\" | tr ' ' ',')\"; done; true"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"groups": [], "accounts": {}}
        for line in output:
            parts = line.split()
            if parts[:1] == ["G"] and len(parts) == 2:
                out["groups"].append(parts[1])
            elif parts[:1] == ["U"] and len(parts) >= 4:
                groups = parts[4].split(",") if len(parts) > 4 else []
                out["accounts"][parts[1]] = {"shell": parts[2], "ssh_dir": parts[3], "groups": groups}
        return out


def remove_command(name: str) -> str:
    """Remove an account as logind would end it: its sessions first and its user manager stopped
    (``user@UID.service``: killed instead, it stays failed and the host's health fails), then what is
    left of its processes, then the account with its home; the user's units left in a failed state by
    an earlier kill are reset, so no failed unit stays behind."""
    q = shlex.quote(name)
    return (
        f"uid=$(id -u {q}) || exit 1; "
        f"loginctl terminate-user {q} 2>/dev/null; "
        f'systemctl stop "user@$uid.service" 2>/dev/null; '
        f"pkill -KILL -u {q}; "
        f"userdel -r -f {q} 2>/dev/null || userdel -f {q} || exit 1; "
        f'systemctl reset-failed "user@$uid.service" "user-runtime-dir@$uid.service" 2>/dev/null; exit 0'
    )


@operation()
def local_accounts(accounts: list[dict[str, Any]], groups: list[str]):  # type: ignore[no-untyped-def]
    """
    Create the groups, then create, update or remove each account: exact supplementary groups,
    shell, a 0700 ``~/.ssh`` it owns; a removed account goes with its home.

    + accounts: checked entries (deploys.users.config.accounts)
    + groups: local groups that must exist
    """
    q = shlex.quote
    have = host.get_fact(LocalAccounts, names=[a["name"] for a in accounts], groups=list(groups))
    cmds = [f"groupadd {q(g)}" for g in groups if g not in have["groups"]]
    for a in accounts:
        name, now = a["name"], have["accounts"].get(a["name"])
        if not a["present"]:
            if now is not None:
                cmds.append(remove_command(name))
            continue
        if now is None:
            extra = f" -G {q(','.join(a['groups']))}" if a["groups"] else ""
            cmds.append(f"useradd -m -U -s {q(a['shell'])} -c {q(a['comment'])}{extra} {q(name)}")
            now = {"shell": a["shell"], "groups": [name, *a["groups"]], "ssh_dir": "none"}
        if now["shell"] != a["shell"]:
            cmds.append(f"usermod -s {q(a['shell'])} {q(name)}")
        if sorted(set(now["groups"]) - {name}) != sorted(set(a["groups"])):
            cmds.append(f"usermod -G {q(','.join(a['groups']))} {q(name)}")
        if now["ssh_dir"] != f"{name}:700":
            cmds.append(f"install -d -m 0700 -o {q(name)} -g {q(name)} {q(home(name) + '/.ssh')}")
    if not cmds:
        host.noop(f"{len(accounts)} accounts and {len(groups)} groups as wanted")
        return
    for cmd in cmds:
        yield StringCommand("sh", "-c", q(cmd))
