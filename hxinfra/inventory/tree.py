"""Host and group names, and the group tree walked as ansible-core walks it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# a host's inventory name is a DNS name (RFC 1123): labels of letters, digits and inner hyphens
HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def host_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a host's inventory name (None when it can): it names files on the
    controller (fetch, backups, plans, dashboard pages), so it must be a DNS name, RFC 1123."""
    if not isinstance(name, str) or not name:
        return "a host name must be a non-empty string"
    if name == "@local":  # pyinfra's connector for this machine itself
        return None
    if len(name) > 253 or not all(HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return (
            f"host name {name[:64]!r} is not a DNS name (RFC 1123: dot-separated labels of letters, "
            "digits and inner hyphens, 63 characters each at most)"
        )
    return None


def descendants(group: str, children: Mapping[str, Sequence[str]]) -> list[str]:
    """``group`` and the groups below it as ansible-core walks them for ``Group.get_hosts``: level by
    level (its children, then theirs...), each once. (Below the first level ansible-core takes the
    parents of a level in the order of a Python set, which changes from one run to the next; here
    they keep the inventory's order, one of the orders it may give.)"""
    out, level, seen = [group], [group], {group}
    while level:
        level = [c for g in level for c in children.get(g, ()) if c not in seen]
        level = list(dict.fromkeys(level))
        seen.update(level)
        out += level
    return out


def group_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a group's name (None when it can). Ansible takes nearly any name
    (``web-servers``, ``1st``, ``web.eu``), and so does this: only a name that cannot name the file
    ``group_vars/<group>.yml`` (a ``/``, a control character, ``.`` or ``..``) is refused."""
    if not isinstance(name, str) or not name.strip():
        return "a group name must be a non-empty string"
    if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return (
            f"group name {name[:64]!r} cannot name a file group_vars/<group>.yml (no '/', control character, . or ..)"
        )
    return None
