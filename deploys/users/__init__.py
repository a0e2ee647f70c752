"""Local users and groups, their SSH keys (added, rotated, removed with the data) and sudo rules
checked by ``visudo -cf``; the guide's ``-e username=... user_groups=... action=remove`` form works."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.users.config import DEFAULTS, accounts, check_data, desired_config, groups, health, plan
from deploys.users.operations import local_accounts
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "users",
    DEFAULTS,
    check=check_data,
    plan=plan,
    health=health,
    tags=("accounts", "keys", "sudo"),
    types={"users_user_groups": (list, str)},
    ansible={
        "username": "users_username",
        "user_groups": "users_user_groups",
        "ssh_public_key": "users_ssh_key",
        "action": "users_action",
    },
)


@deploy("Users", data_defaults=DEFAULTS)
def users() -> None:
    """Accounts and groups first, then their keys and the sudo rules (one validated set)."""
    data = component_data(COMPONENT, host.data)
    if step(COMPONENT, host.data, "accounts"):
        local_accounts(
            name="Create, update or remove the local groups and accounts", accounts=accounts(data), groups=groups(data)
        )
    if step(COMPONENT, host.data, "keys", "sudo"):
        config_set(
            name="Write each account's authorized keys and the sudo rules, validated by visudo -cf",
            items=desired_config(data),
            validate="[ ! -e /etc/sudoers.d/hx-users ] || visudo -cf /etc/sudoers.d/hx-users >/dev/null",
        )
