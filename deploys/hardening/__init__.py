"""Hardening that keeps services up: an sshd drop-in checked by ``sshd -t`` and made live under a
rollback timer that only a fresh login from the controller cancels (no run can lock the operator
out), a sysctl baseline, fail2ban (sshd; nginx where it runs), audit rules, unattended security
upgrades, time from the domain controllers (chrony), unneeded services disabled.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from deploys.common import FLEET
from deploys.hardening.config import (
    DEFAULTS,
    ROLLBACK_UNIT,
    SSHD_CHECK,
    SSHD_DROPIN,
    SYSCTL,
    audit,
    check_data,
    desired_config,
    health,
    packages,
    plan,
    rollback,
)
from deploys.hardening.operations import units_disabled
from hxinfra.components import Component
from hxinfra.deploytools import component_data, guarded, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "hardening",
    DEFAULTS,
    check=check_data,
    plan=plan,
    health=health,
    rollback=rollback,
    audit=audit,
    root_listeners=("chronyd",),  # the time service it configures (chrony binds as root, then drops)
    tags=("packages", "sshd", "sysctl", "fail2ban", "auditd", "upgrades", "time", "services"),
)


# fail2ban's own check, quiet on success (it prints the whole configuration), its error lines otherwise
F2B_CHECK = "out=$(fail2ban-client --test 2>&1) || { printf '%s\\n' \"$out\" | tail -n 5; false; }"


def _never() -> bool:
    return False


@deploy("Hardening", data_defaults=DEFAULTS)
def hardening() -> None:
    """Harden sshd, the kernel, logins, updates and time without cutting off the controller."""
    data = component_data(
        COMPONENT, host.data, extra_keys=(*FLEET.all_keys(), "ad_join_sudo_rules", "ad_join_present", "hx_members")
    )
    joined = "domain_members" in host.groups and data.get("ad_join_present") is not False
    files = desired_config(data, joined, "web_servers" in host.groups, host.name)
    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install openssh-server and the hardening tools (fail2ban, auditd, unattended-upgrades, chrony)",
            packages=packages(data),
            update=True,
            cache_time=24 * 3600,
        )
    if step(COMPONENT, host.data, "sshd"):
        sshd = config_set(
            name="Write the sshd hardening drop-in, validated by sshd -t",
            items=files["sshd"],
            validate=SSHD_CHECK,
            validate_label="sshd -t",
        )
        guarded(
            "sshd config",
            ROLLBACK_UNIT,
            [SSHD_DROPIN],
            "systemctl reload ssh.service",
            "systemctl reload ssh.service",
            data["hardening_rollback_seconds"],
            sshd.did_change,
        )
    if step(COMPONENT, host.data, "sysctl"):
        config_set(
            name="Write the sysctl baseline and apply it (a value the kernel refuses undoes the file)",
            items=files["sysctl"],
            validate=f"sysctl -q -p {SYSCTL}",
        )
    if step(COMPONENT, host.data, "fail2ban"):
        jail = config_set(
            name="Write the fail2ban jails, validated by fail2ban-client --test",
            items=files["fail2ban"],
            validate=F2B_CHECK,
            validate_label="fail2ban-client --test",
        )
        # started whenever it is not running (a stopped fail2ban protects nothing), restarted
        # only after a jail change
        system.service(
            name="Start and enable fail2ban",
            service="fail2ban.service",
            running=data["hardening_fail2ban"],
            enabled=data["hardening_fail2ban"],
        )
        system.service(
            name="Restart fail2ban after a jail change",
            service="fail2ban.service",
            restarted=data["hardening_fail2ban"],
            _if=jail.did_change,
        )
    if step(COMPONENT, host.data, "auditd"):
        rules = config_set(
            name="Write the audit rules", items=files["auditd"], validate="augenrules --check >/dev/null"
        )
        server.shell(
            name="Load the audit rules after a change",
            commands=["augenrules --load"],
            _if=rules.did_change if data["hardening_auditd"] else _never,
        )
    if step(COMPONENT, host.data, "upgrades"):
        config_set(
            name="Write the unattended security upgrades settings, validated by apt-config",
            items=files["upgrades"],
            validate="apt-config dump >/dev/null",
        )
    if step(COMPONENT, host.data, "time"):
        chrony = config_set(
            name="Write chrony's config (the domain controllers), validated by chronyd -p",
            items=files["time"],
            validate="chronyd -p -f /etc/chrony/chrony.conf >/dev/null",
        )
        synced = chrony.did_change if data["hardening_time_sync"] else _never
        systemd.daemon_reload(
            name="Reload systemd after a change of chrony's files (its unit drop-in among them)", _if=synced
        )
        started = system.service(
            name="Start and enable chrony.service",
            service="chrony.service",
            running=True,
            enabled=True,
            _if=lambda: bool(data["hardening_time_sync"]),
        )
        system.service(
            name="Restart chrony after a change",
            service="chrony.service",
            restarted=True,
            _if=[synced, lambda: not started.did_change()],
        )
    if step(COMPONENT, host.data, "services"):
        units_disabled(
            name="Stop and disable the unneeded services that are installed", units=data["hardening_disabled_services"]
        )
