"""AD join, desired state: the defaults, the names derived from data (domain, realm, computer
name), and krb5.conf, sssd.conf, realmd.conf, nsswitch.conf, sudoers and the resolver files
computed from host data (nsswitch.conf also from the host's current file, given by the deploy).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from deploys.common import RELEASE_KEY, declared_release, for_release, templates_root
from hxinfra.components import Backup
from hxinfra.desired import ConfigItem, ManagedFile
from hxinfra.errors import HxError
from hxinfra.memo import by_reads, lru
from hxinfra.render import render, template_context
from hxinfra.validate import (
    abs_path,
    collect,
    dns_name,
    fields,
    ip_address,
    one_line,
)
from hxinfra.validate import name as validate_name

ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")


PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*")


# the AD client stack on Debian and Ubuntu (the same package names on both)
_AD_CLIENT_PACKAGES = (
    "realmd",
    "sssd",
    "sssd-tools",
    "adcli",
    "krb5-user",
    "libnss-sss",
    "libpam-sss",
    "samba-common-bin",
    "oddjob",
    "oddjob-mkhomedir",
    "packagekit",
    "sudo",
    "bind9-dnsutils",
)  # nsupdate and dig: the host's own DNS record


DEFAULTS: dict[str, Any] = {
    # Be a member of the domain (false: leave it).
    "ad_join_present": True,
    # DNS domain and Kerberos realm; "" = the environment's hx_domain / hx_realm.
    "ad_join_domain": "",
    "ad_join_realm": "",
    # The account that joins computers, and its password (a !vault value; sent on stdin; only
    # needed by a host that is not yet a member).
    "ad_join_admin_user": "administrator",
    "ad_join_admin_password": "",
    # NetBIOS computer name (<= 15 characters); "" derives it safely from the host name.
    "ad_join_computer_name": "",
    # Organisational unit for the computer account ("" = the default Computers container).
    "ad_join_ou": "",
    # Encryption required: AES-only Kerberos enctypes, LDAP StartTLS with certificate checking.
    "ad_join_require_encryption": True,
    # Names: user@domain (true) or plain user names (false); home directories and sudo rules follow.
    "ad_join_use_fqdn": False,
    "ad_join_fallback_homedir": "/home/%u",
    "ad_join_default_shell": "/bin/bash",
    # Offline logins with cached credentials.
    "ad_join_cache_credentials": True,
    # Create home directories at first login (pam_mkhomedir).
    "ad_join_mkhomedir": True,
    # sudo rules for domain groups/users: [{group: "hx admins", commands: "ALL"}] or {user: ...}.
    "ad_join_sudo_rules": [],
    # AD groups whose members may log in at all (sssd's simple access provider: every PAM service,
    # sshd, su and the console alike, whatever sshd allows). The groups and users of
    # ad_join_sudo_rules are always allowed; none at all: no AD account logs in. Local accounts are
    # not sssd's and keep logging in.
    "ad_join_allowed_groups": [],
    # Point the resolver at these DNS servers (the DCs); [] leaves DNS alone. With
    # systemd-resolved a drop-in is used, else /etc/resolv.conf.
    "ad_join_dns_servers": [],
    # Packages by distribution (/etc/os-release's ID, lower case: "ubuntu") or by one release of it
    # ("<ID> <VERSION_ID>": "ubuntu 24.04"); a host's release entry wins over its distribution's.
    "ad_join_packages": {"debian": list(_AD_CLIENT_PACKAGES), "ubuntu": list(_AD_CLIENT_PACKAGES)},
    # A domain account that `hxinfra health` looks up on every member (getent): "" = none.
    "ad_join_health_user": "",
}


# The responders sssd.conf's services line starts (and the PAC one the AD provider adds): their
# socket-activated units conflict with it.
RESPONDERS = ("nss", "pam", "pam-priv", "pac")


NSS_DATABASES = {"passwd": "sss", "group": "sss", "shadow": "sss", "netgroup": "sss", "sudoers": "sss"}


DEBIAN_NSSWITCH = """passwd:         files systemd
group:          files systemd
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
"""


class AdJoinError(HxError):
    """Data the deploy refuses before any host is touched."""


# ------------------------------------------------------------------------------ pure parts
def domain(data: Mapping[str, Any]) -> str:
    return str(data["ad_join_domain"] or data["hx_domain"]).lower()


def realm(data: Mapping[str, Any]) -> str:
    return str(data["ad_join_realm"] or data["hx_realm"] or domain(data)).upper()


def computer_name(data: Mapping[str, Any], host_name: str) -> str:
    """NetBIOS-safe, <= 15 characters; a long name keeps a hash suffix so two hosts never collide."""
    if data["ad_join_computer_name"]:
        name = str(data["ad_join_computer_name"]).upper()
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,14}", name):
            raise AdJoinError(f"ad_join_computer_name {name!r}: 1-15 letters, digits or '-'")
        return name
    short = re.sub(r"[^A-Z0-9-]", "", host_name.split(".")[0].upper()).strip("-") or "HOST"
    if len(short) <= 15:
        return short
    return short[:10].rstrip("-") + "-" + hashlib.sha256(host_name.encode()).hexdigest()[:4].upper()


SUDO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9 ._@-]*")


def _sudo_name(entry: Mapping[str, Any], data: Mapping[str, Any], what: str) -> str:
    """A user or ``%group`` for sudoers: letters, digits, ``._@-`` and spaces (escaped), nothing
    that sudoers reads as syntax (``,`` ``:`` ``=`` ``(`` ``!`` would widen the rule)."""
    kind = "group" if "group" in entry else "user"
    name = validate_name(entry[kind], f"{what}: {kind}", SUDO_NAME)
    if data["ad_join_use_fqdn"]:
        name = f"{name}@{domain(data)}"
    escaped = name.replace(" ", "\\ ")
    return f"%{escaped}" if kind == "group" else escaped


@by_reads  # one group's rules for all its hosts: checked and written once
def sudoers(data: Mapping[str, Any]) -> str | None:
    """The sudoers drop-in: one line per rule; ``commands`` is required (a typo never grants ALL)."""
    rules = data["ad_join_sudo_rules"]
    if not rules:
        return None
    lines = []
    for i, entry in enumerate(rules):
        what = f"ad_join_sudo_rules[{i}]"
        fields(entry, what, ("commands",), ("group", "user"))
        if len({"group", "user"} & set(entry)) != 1:
            raise AdJoinError(f"{what}: give exactly one of group or user (and commands)")
        commands = one_line(entry["commands"], f"{what}: commands").strip()
        if not commands:
            raise AdJoinError(f"{what}: commands is empty")
        lines.append(f"{_sudo_name(entry, data, what)} ALL=(ALL:ALL) {commands}")
    return "".join(f"{line}\n" for line in lines)


HOMEDIR = re.compile(r"/[A-Za-z0-9_.%/-]*")


def _homedir(data: Mapping[str, Any]) -> str:
    home = one_line(data["ad_join_fallback_homedir"], "ad_join_fallback_homedir")
    if (
        not HOMEDIR.fullmatch(home)
        or "/../" in f"{home}/"
        or home.rstrip("/") in ("/tmp", "/var/tmp")
        or home.startswith(("/tmp/", "/var/tmp/"))
    ):
        raise AdJoinError(f"ad_join_fallback_homedir: {home!r} must be an absolute path outside /tmp")
    return home


@lru(16)  # Debian's default, on every host of a plan
def nsswitch(current: str) -> str:
    """``current`` with ``sss`` after the distro's own sources (which all stay)."""
    out, seen = [], set()
    for line in current.splitlines():
        m = re.match(r"^(\w+):(\s*)(.*)$", line)
        if m and m.group(1) in NSS_DATABASES:
            db, sources = m.group(1), m.group(3).split()
            seen.add(db)
            sources = [s for s in sources if s != "nis" or db != "netgroup"]
            if "sss" not in sources:
                sources.append("sss")
            line = f"{db}:{' ' * max(1, 16 - len(db) - 1)}{' '.join(sources)}"
        out.append(line)
    out += [
        f"{db}:{' ' * (16 - len(db) - 1)}files sss" if db != "sudoers" else "sudoers:        files sss"
        for db in NSS_DATABASES
        if db not in seen
    ]
    return "\n".join(line for line in out if not line.startswith("# managed by hxinfra")).strip("\n")


def allowed(data: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The AD groups and users that may log in: ``ad_join_allowed_groups`` and the groups and
    users of ``ad_join_sudo_rules`` (those whom sudo trusts must be able to log in), in order,
    each once; names as sssd compares them (``name@domain`` under fully qualified names)."""
    groups = [validate_name(g, "ad_join_allowed_groups[]", SUDO_NAME) for g in data["ad_join_allowed_groups"]]
    users: list[str] = []
    for entry in data["ad_join_sudo_rules"] or []:
        if isinstance(entry, Mapping):
            if "group" in entry:
                groups.append(validate_name(entry["group"], "ad_join_sudo_rules[]: group", SUDO_NAME))
            elif "user" in entry:
                users.append(validate_name(entry["user"], "ad_join_sudo_rules[]: user", SUDO_NAME))
    if data["ad_join_use_fqdn"]:
        groups, users = ([f"{n}@{domain(data)}" for n in names] for names in (groups, users))
    return list(dict.fromkeys(groups)), list(dict.fromkeys(users))


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value that reaches krb5.conf, sssd.conf, sudoers, resolv.conf or a command has its shape."""
    return collect(
        data,
        {
            "ad_join_domain": lambda d: dns_name(domain(d), "ad_join_domain (or hx_domain)"),
            "ad_join_realm": lambda d: dns_name(realm(d), "ad_join_realm (or hx_realm)"),
            "ad_join_admin_user": lambda d: validate_name(d["ad_join_admin_user"], "ad_join_admin_user", ACCOUNT),
            "ad_join_ou": lambda d: one_line(d["ad_join_ou"], "ad_join_ou"),
            "ad_join_fallback_homedir": _homedir,
            "ad_join_default_shell": lambda d: abs_path(d["ad_join_default_shell"], "ad_join_default_shell"),
            "ad_join_dns_servers": lambda d: [ip_address(s, "ad_join_dns_servers[]") for s in d["ad_join_dns_servers"]],
            "ad_join_sudo_rules": sudoers,
            "ad_join_allowed_groups": allowed,
            "ad_join_computer_name": lambda d: computer_name(d, "x"),
            "ad_join_packages": _package_table,
        },
    )


def _package_table(data: Mapping[str, Any]) -> list[str]:
    table = data["ad_join_packages"]
    if not isinstance(table, Mapping):
        raise HxError("ad_join_packages: a mapping of distribution or release to package names")
    for key, names in table.items():
        if not isinstance(key, str) or not RELEASE_KEY.fullmatch(key):
            raise HxError(f"ad_join_packages: {key!r} is not a distribution (debian) or a release (ubuntu 24.04)")
        if not isinstance(names, list):
            raise HxError(f"ad_join_packages[{key}]: a list of package names")
    return [validate_name(p, "ad_join_packages", PACKAGE) for names in table.values() for p in names]


def packages(data: Mapping[str, Any], distro: str, version: str) -> list[str]:
    """The AD client packages for a host of this release (``ad_join_packages``: the release's own
    entry over its distribution's), or an error naming what the table holds."""
    found = for_release(data["ad_join_packages"], distro, version)
    if found is None:
        keys = ", ".join(sorted(data["ad_join_packages"])) or "nothing"
        raise AdJoinError(f"ad_join_packages has no entry for {distro} {version or '(no version)'} (it has {keys})")
    return [str(p) for p in found]


def sssd_conf_mode(distribution: str, version: str) -> str:
    """The mode the host's own SSSD wants for sssd.conf: 0600 up to SSSD 2.9 (it refuses anything
    else); SSSD 2.10 (Debian 13, Ubuntu 25.04) makes it group-readable at every start (its unit
    runs ``chmod -R g+r /etc/sssd``), so 0640 (group root) is its steady state there."""
    newer = {"debian": 13, "ubuntu": 25}.get(distribution.lower())
    major = version.split(".")[0]
    return "0640" if newer is not None and major.isdigit() and int(major) >= newer else "0600"


def desired_config(
    data: Mapping[str, Any], host_name: str, nsswitch_now: str = DEBIAN_NSSWITCH, sssd_mode: str = "0600"
) -> list[ConfigItem]:
    """krb5.conf, sssd.conf (private: root only), realmd.conf, nsswitch.conf and the sudoers drop-in."""
    context = template_context(
        data,
        {
            "domain": domain(data),
            "realm": realm(data),
            "computer_name": computer_name(data, host_name),
            "fqdn": f"{host_name}.{domain(data)}",
            **dict(zip(("allowed_groups", "allowed_users"), allowed(data), strict=True)),
        },
    )
    tpl = "ad_join/etc"
    items: list[ConfigItem] = [
        ManagedFile("/etc/krb5.conf", render(templates_root(), f"{tpl}/krb5.conf.j2", context)),
        ManagedFile(
            "/etc/sssd/sssd.conf", render(templates_root(), f"{tpl}/sssd/sssd.conf.j2", context), mode=sssd_mode
        ),
        ManagedFile("/etc/realmd.conf", render(templates_root(), f"{tpl}/realmd.conf.j2", context)),
        ManagedFile(
            "/etc/nsswitch.conf", render(templates_root(), f"{tpl}/nsswitch.conf.j2", {"body": nsswitch(nsswitch_now)})
        ),
    ]
    rules = sudoers(data)
    if rules is not None:
        items.append(
            ManagedFile(
                "/etc/sudoers.d/hx-ad",
                render(templates_root(), f"{tpl}/sudoers.d/hx-ad.j2", {"rules": rules}),
                mode="0440",
            )
        )
    return items


def resolver_files(data: Mapping[str, Any], resolved: bool) -> list[ConfigItem]:
    servers = [str(s) for s in data["ad_join_dns_servers"]]
    if not servers:
        return []
    context = {"servers": servers, "domain": domain(data)}
    if resolved:
        return [
            ManagedFile(
                "/etc/systemd/resolved.conf.d/hx-ad.conf",
                render(templates_root(), "ad_join/etc/systemd/resolved.conf.d/hx-ad.conf.j2", context),
            )
        ]
    return [ManagedFile("/etc/resolv.conf", render(templates_root(), "ad_join/etc/resolv.conf.j2", context))]


# ------------------------------------------------------------------------------ deploy
def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """The host is a working member (realm list, its KDC accepting the machine key), SSSD runs,
    and a domain user resolves through it. Domain controllers that do not answer are named as
    such: the membership is then not verified, not lost."""
    from shlex import quote as q

    from hxinfra.health import Check, service_active

    if not data["ad_join_present"]:
        return []
    from deploys.ad_join.facts import membership_script, sssd_status, unverified

    dom = domain(data)
    silent = unverified(dom, [str(s) for s in data["ad_join_dns_servers"]], "")
    checks = [
        service_active("sssd.service", "sssd"),
        Check(
            f"member of {dom} (realm list, its KDC accepts the machine key)",
            f"out=$( {{ {membership_script(dom)}; }} ); printf '%s\\n' \"$out\"; "
            f"case \"$out\" in *kdc=unreachable*) printf '%s\\n' {q(silent)}; exit 1;; esac; "
            f"printf '%s\\n' \"$out\" | grep -qix {q('realm=' + dom)} && printf '%s\\n' \"$out\" | grep -qx kdc=ok",
            "sssd",
        ),
        # offline, sssd answers from its cache and logs in no one it has not seen: a DC back up
        # is retried within offline_timeout_max (plus its random offset), a run brings it back at once
        Check(
            f"sssd online for {dom}",
            f"said=$({sssd_status(dom)}); printf 'sssd says %s for %s\\n' \"${{said:-nothing}}\" {q(dom)}; "
            '[ "$said" = Online ]',
            "sssd",
        ),
    ]
    user = str(data["ad_join_health_user"] or "")
    if user:
        name = f"{user}@{dom}" if data["ad_join_use_fqdn"] else user
        checks.append(Check(f"domain user {name} resolves", f"getent passwd {q(name)}", "sssd"))
    return checks


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan (nsswitch.conf from Debian's default; the resolver as /etc/resolv.conf;
    sssd.conf's mode from the declared release, else SSSD's strict 0600)."""
    data = dict(data)
    release = declared_release(data)
    mode = sssd_conf_mode(*release) if release else "0600"
    return resolver_files(data, resolved=False) + desired_config(data, host_name, sssd_mode=mode)


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    """SSSD's and Kerberos's configuration (the host's keytab is made again by a join)."""
    return Backup(paths=("/etc/sssd", "/etc/krb5.conf"))
