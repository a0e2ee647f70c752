"""Hardening, desired state: the defaults, and every file computed from host data alone.

The old role broke what it protected: ``AllowGroups`` that locked out the AD admins, sshd edited
in place without ``sshd -t``, only ports 22/80/443 left open. Here each area is one whole managed
file (an sshd drop-in that wins over the distribution's config, a sysctl drop-in, a fail2ban jail
file, audit rules, unattended-upgrades settings, chrony's config), each checked by its service's
own validator; the sshd change goes live under a rollback timer that only a fresh login from the
controller cancels (``hxinfra.ops.arm_rollback``/``confirm_reconnect``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploys.common import admin_networks, templates_root
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.memo import by_reads
from hxinfra.render import render, template_context
from hxinfra.validate import DataError, choice, collect, network, one_line

DEFAULTS: dict[str, Any] = {
    # Root over SSH: "no", or "prohibit-password" (keys only) where the controller logs in as root.
    "hardening_ssh_permit_root_login": "no",
    # Who may log in over SSH (AllowGroups): these groups, plus "root" when root may log in and, on
    # domain members, every group of ad_join_sudo_rules (the AD admins are never locked out).
    # An empty list writes no AllowGroups line.
    "hardening_ssh_allow_groups": ["sudo", "hx-ssh"],
    # Authentication attempts per connection, and seconds to log in.
    "hardening_ssh_max_auth_tries": 3,
    "hardening_ssh_login_grace_time": 30,
    # Idle sessions: a keepalive every N seconds, dropped after 2 unanswered.
    "hardening_ssh_client_alive_interval": 300,
    # Forwarding (X11, TCP, agent) for SSH sessions.
    "hardening_ssh_forwarding": False,
    # Kernel settings (sysctl), key -> value. IP forwarding is never set here: a host that routes
    # sets it itself. Containers may write only the net.* keys of their own namespace.
    "hardening_sysctl": {
        "net.ipv4.conf.all.accept_redirects": 0,
        "net.ipv4.conf.default.accept_redirects": 0,
        "net.ipv4.conf.all.send_redirects": 0,
        "net.ipv4.conf.all.accept_source_route": 0,
        "net.ipv4.conf.all.rp_filter": 1,
        "net.ipv4.conf.all.log_martians": 1,
        "net.ipv4.icmp_echo_ignore_broadcasts": 1,
        "net.ipv4.tcp_syncookies": 1,
        "net.ipv6.conf.all.accept_redirects": 0,
        "net.ipv6.conf.all.accept_source_route": 0,
        "kernel.kptr_restrict": 2,
        "kernel.dmesg_restrict": 1,
        "kernel.randomize_va_space": 2,
        "fs.protected_hardlinks": 1,
        "fs.protected_symlinks": 1,
        "fs.suid_dumpable": 0,
    },
    # fail2ban: the sshd jail everywhere, nginx's where nginx runs; addresses of hx_admin_networks
    # are never banned.
    "hardening_fail2ban": True,
    "hardening_fail2ban_maxretry": 5,
    "hardening_fail2ban_bantime": "1h",
    "hardening_fail2ban_findtime": "10m",
    # Audit rules (auditd): identity, sudoers, sshd and hxinfra's managed config. Containers cannot
    # load audit rules (the kernel's audit is the machine's): false there.
    "hardening_auditd": True,
    # Security updates installed daily by unattended-upgrades; reboot by itself only if allowed.
    "hardening_unattended_upgrades": True,
    "hardening_auto_reboot": False,
    "hardening_auto_reboot_time": "03:30",
    # Time from these servers (chrony); [] = the environment's domain controllers (Kerberos fails
    # beyond 5 minutes of skew). false where the clock is not the host's own (containers).
    "hardening_time_sync": True,
    "hardening_ntp_servers": [],
    # chronyd sets the host's clock. false where the clock is not the host's to set (containers,
    # which share the machine's): chronyd then runs with -x, measuring and serving time, and a
    # domain controller still serves it to the members.
    "hardening_time_set_clock": True,
    # Services stopped and disabled where they are installed.
    "hardening_disabled_services": [
        "avahi-daemon.service",
        "cups.service",
        "cups-browsed.service",
        "rpcbind.service",
        "bluetooth.service",
    ],
    # Seconds after which a change to sshd puts itself back unless the controller logged in anew.
    "hardening_rollback_seconds": 120,
}

SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-hxinfra.conf"  # the first value wins: before every other drop-in
SYSCTL = "/etc/sysctl.d/90-hxinfra.conf"
JAIL = "/etc/fail2ban/jail.d/hxinfra.local"
AUDIT_RULES = "/etc/audit/rules.d/hxinfra.rules"
APT_PERIODIC = "/etc/apt/apt.conf.d/21hxinfra-auto-upgrades"
APT_UNATTENDED = "/etc/apt/apt.conf.d/52hxinfra-unattended-upgrades"
CHRONY = "/etc/chrony/chrony.conf"
CHRONY_DROPIN = "/etc/systemd/system/chrony.service.d/hxinfra.conf"
ROLLBACK_UNIT = "hxinfra-rollback-hardening"
SSHD_CHECK = "install -d -m 0755 /run/sshd && sshd -t"

GROUP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]*")  # AD groups may hold spaces ("domain admins")
SYSCTL_KEY = re.compile(r"[a-z0-9_]+(\.[a-z0-9_-]+)+")
SYSCTL_VALUE = re.compile(r"-?[0-9]+( -?[0-9]+)*")
DURATION = re.compile(r"[0-9]+[smhdw]?")
CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
UNIT = re.compile(r"[A-Za-z0-9@_.:-]+\.(service|socket|timer)")


def allow_groups(data: Mapping[str, Any], joined: bool) -> list[str]:
    """AllowGroups: the data's groups, root where root may log in, the AD admin groups on members."""
    groups = list(data["hardening_ssh_allow_groups"])
    if not groups:
        return []
    if data["hardening_ssh_permit_root_login"] != "no":
        groups.insert(0, "root")
    if joined:
        groups += [
            str(r["group"]) for r in data.get("ad_join_sudo_rules") or [] if isinstance(r, Mapping) and "group" in r
        ]
    return list(dict.fromkeys(groups))


def ntp_servers(data: Mapping[str, Any], host_name: str = "") -> list[str]:
    """The configured servers, or the environment's domain controllers (a DC: the other DCs; none
    left: Debian's pool)."""
    servers = list(data["hardening_ntp_servers"])
    if servers:
        return servers
    members = (data.get("hx_members") or {}).get("domain_controllers", [])
    return [str(m["address"]) for m in members if m.get("name") != host_name]


def serves_time(data: Mapping[str, Any], host_name: str) -> bool:
    """A domain controller serves time to the environment (the members take theirs from it)."""
    members = (data.get("hx_members") or {}).get("domain_controllers", [])
    return any(m.get("name") == host_name for m in members)


def sshd_dropin(data: Mapping[str, Any], joined: bool) -> str:
    context = template_context(
        data, {"allow_groups": [f'"{g}"' if " " in g else g for g in allow_groups(data, joined)], "gssapi": joined}
    )
    return render(templates_root(), "hardening/etc/ssh/sshd_config.d/00-hxinfra.conf.j2", context)


def desired_config(
    data: Mapping[str, Any], joined: bool, web: bool, host_name: str = ""
) -> dict[str, list[ConfigItem]]:
    """Each area's files (an area with nothing to manage has an empty list)."""
    areas = _areas(data, joined, web, tuple(ntp_servers(data, host_name)), serves_time(data, host_name))
    return {area: list(items) for area, items in areas}


@by_reads  # the host's name matters only through its time servers: one role's hosts share the rest
def _areas(
    data: Mapping[str, Any], joined: bool, web: bool, ntp: tuple[str, ...], server: bool = False
) -> tuple[tuple[str, tuple[ConfigItem, ...]], ...]:
    t = templates_root()
    context = template_context(
        data, {"admin_networks": admin_networks(data), "web": web, "ntp_servers": list(ntp), "serve_time": server}
    )
    out: dict[str, list[ConfigItem]] = {
        "sshd": [ManagedFile(SSHD_DROPIN, sshd_dropin(data, joined))],
        "sysctl": [ManagedFile(SYSCTL, render(t, "hardening/etc/sysctl.d/90-hxinfra.conf.j2", context))],
        "fail2ban": [],
        "auditd": [],
        "upgrades": [],
        "time": [],
    }
    if data["hardening_fail2ban"]:
        out["fail2ban"] = [ManagedFile(JAIL, render(t, "hardening/etc/fail2ban/jail.d/hxinfra.local.j2", context))]
    if data["hardening_auditd"]:
        out["auditd"] = [
            ManagedFile(AUDIT_RULES, render(t, "hardening/etc/audit/rules.d/hxinfra.rules.j2", context), mode="0640")
        ]
    if data["hardening_unattended_upgrades"]:
        out["upgrades"] = [
            ManagedFile(APT_PERIODIC, render(t, "hardening/etc/apt/apt.conf.d/21hxinfra-auto-upgrades.j2", context)),
            ManagedFile(
                APT_UNATTENDED, render(t, "hardening/etc/apt/apt.conf.d/52hxinfra-unattended-upgrades.j2", context)
            ),
        ]
    if data["hardening_time_sync"]:
        out["time"] = [ManagedFile(CHRONY, render(t, "hardening/etc/chrony/chrony.conf.j2", context))]
        if not data["hardening_time_set_clock"]:
            dropin = render(t, "hardening/etc/systemd/system/chrony.service.d/hxinfra.conf.j2", {})
            out["time"].append(ManagedFile(CHRONY_DROPIN, dropin))
    return tuple((area, tuple(items)) for area, items in out.items())


def packages(data: Mapping[str, Any]) -> list[str]:
    wanted = {
        "openssh-server": True,
        "fail2ban": data["hardening_fail2ban"],
        "python3-systemd": data["hardening_fail2ban"],
        "auditd": data["hardening_auditd"],
        "unattended-upgrades": data["hardening_unattended_upgrades"],
        "chrony": data["hardening_time_sync"],
    }
    return [p for p, on in wanted.items() if on]


def _whole(value: Any, what: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DataError(f"{what}: a whole number from {low} to {high}")


def _sysctl(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise DataError("hardening_sysctl: a mapping of sysctl keys to values")
    for k, v in value.items():
        if not SYSCTL_KEY.fullmatch(str(k)) or not SYSCTL_VALUE.fullmatch(one_line(str(v), f"hardening_sysctl.{k}")):
            raise DataError(f"hardening_sysctl: {k!r}: a sysctl key (a.b.c) with a numeric value")
        if str(k).endswith(".forwarding") or str(k) == "net.ipv4.ip_forward":
            raise DataError(f"hardening_sysctl: {k}: forwarding is the routing host's own setting, not hardening's")


def _match(value: Any, what: str, pattern: re.Pattern[str], shape: str) -> str:
    text = one_line(value, what)
    if not pattern.fullmatch(text):
        raise DataError(f"{what}: {shape}")
    return text


def _hosts(value: Any) -> None:
    from hxinfra.validate import host_or_ip

    for v in value:
        host_or_ip(v, "hardening_ntp_servers")


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    return collect(
        data,
        {
            "hardening_ssh_permit_root_login": _root_login,
            "hardening_ssh_allow_groups": lambda d: [
                _match(g, "hardening_ssh_allow_groups", GROUP, "a group name") for g in d["hardening_ssh_allow_groups"]
            ],
            "hardening_ssh_max_auth_tries": lambda d: _whole(
                d["hardening_ssh_max_auth_tries"], "hardening_ssh_max_auth_tries", 1, 10
            ),
            "hardening_ssh_login_grace_time": lambda d: _whole(
                d["hardening_ssh_login_grace_time"], "hardening_ssh_login_grace_time", 5, 600
            ),
            "hardening_ssh_client_alive_interval": lambda d: _whole(
                d["hardening_ssh_client_alive_interval"], "hardening_ssh_client_alive_interval", 0, 3600
            ),
            "hardening_sysctl": lambda d: _sysctl(d["hardening_sysctl"]),
            "hardening_fail2ban_maxretry": lambda d: _whole(
                d["hardening_fail2ban_maxretry"], "hardening_fail2ban_maxretry", 1, 100
            ),
            "hardening_fail2ban_bantime": lambda d: _match(
                d["hardening_fail2ban_bantime"], "hardening_fail2ban_bantime", DURATION, "a duration such as 1h"
            ),
            "hardening_fail2ban_findtime": lambda d: _match(
                d["hardening_fail2ban_findtime"], "hardening_fail2ban_findtime", DURATION, "a duration such as 10m"
            ),
            "hardening_auto_reboot_time": lambda d: _match(
                d["hardening_auto_reboot_time"], "hardening_auto_reboot_time", CLOCK, "HH:MM"
            ),
            "hardening_ntp_servers": lambda d: _hosts(d["hardening_ntp_servers"]),
            "hardening_disabled_services": lambda d: [
                _match(u, "hardening_disabled_services", UNIT, "a unit name (x.service)")
                for u in d["hardening_disabled_services"]
            ],
            "hardening_rollback_seconds": lambda d: _whole(
                d["hardening_rollback_seconds"], "hardening_rollback_seconds", 30, 3600
            ),
            "hx_admin_networks": lambda d: [network(n, "hx_admin_networks") for n in d.get("hx_admin_networks") or []],
        },
    )


def _root_login(data: Mapping[str, Any]) -> None:
    """One of the two values; and never "no" where the controller itself logs in as root (a run
    must not lock out the operator)."""
    value = choice(
        data["hardening_ssh_permit_root_login"], "hardening_ssh_permit_root_login", ("no", "prohibit-password")
    )
    if data.get("ssh_user") == "root" and value == "no":
        raise DataError(
            "'no' would lock out the controller, which logs in as root (ssh_user): use "
            "prohibit-password (keys only), or log in as an admin account with sudo"
        )


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    groups = set(data.get("hx_groups") or ())
    joined = "domain_members" in groups and data.get("ad_join_present") is not False
    return [i for items in desired_config(data, joined, "web_servers" in groups, host_name).values() for i in items]


def rollback(data: Mapping[str, Any], host_name: str) -> tuple[str, str]:
    """A restored previous config (hxinfra restore --config hardening): sshd -t, then the services."""
    return SSHD_CHECK, "systemctl reload ssh.service && sysctl -q --system >/dev/null; true"


KERBEROS_SKEW = 300  # seconds of clock difference beyond which Kerberos (and so every AD login) fails
# chronyc's sources as CSV: mode, state ("*": the selected one), address, stratum, poll, reach,
# last sample's age, its offset as corrected, as measured, and the error; seconds
TIME_CHECK = (
    "chronyc -n -c sources | awk -F, -v max="
    + str(KERBEROS_SKEW)
    + ' \'$2 == "*" { found = 1; o = $8 + 0; if (o < 0) o = -o; '
    'printf "selected %s, offset %s s\\n", $3, $8; if (o > max) bad = 1 } '
    'END { if (!found) print "no time source selected"; exit (!found || bad) }\''
)


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """sshd runs with the hardened settings in effect (sshd -T), fail2ban's sshd jail is up, and
    (a host that takes its time from others) a time source is selected and the clock is within
    Kerberos's limit of it."""
    from hxinfra.health import Check, service_active

    root = data["hardening_ssh_permit_root_login"]
    effective = (
        "sshd -T 2>/dev/null | grep -qx 'passwordauthentication no' && "
        f"sshd -T 2>/dev/null | grep -qx 'permitrootlogin {'without-password' if root != 'no' else 'no'}' "
        "&& echo 'sshd: keys only, root as configured'"
    )
    checks = [service_active("ssh.service", "sshd"), Check("sshd runs the hardened settings", effective, "sshd")]
    if data["hardening_time_sync"] and not serves_time(data, host_name):
        checks.append(Check(f"the clock is within {KERBEROS_SKEW} s of a time source (chrony)", TIME_CHECK, "chrony"))
    if data["hardening_fail2ban"]:
        checks += [
            service_active("fail2ban.service", "fail2ban"),
            Check("fail2ban's sshd jail is up", "fail2ban-client status sshd | head -n 3", "fail2ban"),
        ]
    return checks


def audit(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """sshd's effective settings (sshd -T), fail2ban, the sysctl baseline, automatic security updates."""
    from hxinfra.audit import Control

    def sshd(setting: str, allowed: str) -> str:
        return (
            f'v=$(sshd -T 2>/dev/null | awk \'$1 == "{setting}" {{print $2}}\'); echo "{setting} $v"; '
            f"echo \"$v\" | grep -qxE '{allowed}'"
        )

    sysctl = " && ".join(
        f'[ "$(sysctl -n {k} 2>/dev/null)" = {int(str(v).split()[0])} ]'
        for k, v in sorted(dict(data["hardening_sysctl"]).items())
    )
    controls = [
        Control(
            "ssh-no-passwords",
            "SSH: no password or keyboard-interactive logins",
            sshd("passwordauthentication", "no") + " && " + sshd("kbdinteractiveauthentication", "no"),
            {"cis_basic": "5.1.19", "pci_dss": "8.3.1", "soc2": "CC6.1"},
        ),
        Control(
            "ssh-root-login",
            "SSH: root cannot log in with a password",
            sshd("permitrootlogin", "no|without-password|prohibit-password"),
            {"cis_basic": "5.1.20", "pci_dss": "8.6.1", "soc2": "CC6.1"},
        ),
        Control(
            "ssh-max-auth-tries",
            "SSH: at most 4 authentication attempts",
            sshd("maxauthtries", "[1-4]"),
            {"cis_basic": "5.1.16", "pci_dss": "8.3.4"},
        ),
        Control(
            "ssh-no-empty-passwords",
            "SSH: empty passwords refused",
            sshd("permitemptypasswords", "no"),
            {"cis_basic": "5.1.18", "pci_dss": "8.3.1"},
        ),
        Control("ssh-no-x11", "SSH: no X11 forwarding", sshd("x11forwarding", "no"), {"cis_basic": "5.1.22"}),
        Control(
            "kernel-network-baseline",
            "Kernel network settings as the baseline says",
            f"{sysctl or 'true'} && echo 'as the baseline'",
            {"cis_basic": "3.3", "pci_dss": "1.4.2"},
        ),
    ]
    if data["hardening_fail2ban"]:
        controls.append(
            Control(
                "ssh-brute-force-bans",
                "fail2ban bans repeated SSH failures",
                "fail2ban-client status sshd 2>&1 | head -n 4",
                {"pci_dss": "8.3.4", "soc2": "CC6.6"},
            )
        )
    if data["hardening_unattended_upgrades"]:
        controls.append(
            Control(
                "automatic-security-updates",
                "Security updates install automatically",
                "apt-config dump APT::Periodic::Unattended-Upgrade | grep -q '\"1\"' && "
                "systemctl is-enabled apt-daily-upgrade.timer",
                {"cis_basic": "1.2.2", "pci_dss": "6.3.3", "soc2": "CC7.1"},
            )
        )
    return controls
