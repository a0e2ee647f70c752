"""Active Directory domain join with realmd, SSSD and Kerberos.

The old role's join command was broken and it wiped the SSSD cache on every run. Here the join
happens only when ``adcli testjoin`` says the host is not a member; the admin password goes
through a 0600 file on stdin, never argv or output. A joined host is never disturbed: no cache
wipes, and sssd restarts only when its configuration changed. ``ad_join_present: false`` leaves.

Files: ``/etc/krb5.conf`` (AES-only enctypes when encryption is required, ``rdns = false``),
``/etc/sssd/sssd.conf`` (0600; AD provider, id mapping, cached credentials, StartTLS with
``ldap_tls_reqcert = demand`` when encryption is required, which needs the CA trust deploy),
``/etc/realmd.conf``, ``/etc/nsswitch.conf`` (``sss`` added, the distro's own sources kept),
optional pam_mkhomedir and ``/etc/sudoers.d/`` rules (checked with ``visudo -cf``), and
optionally the resolver pointed at the domain controllers.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import uuid
from collections.abc import Mapping
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, server, systemd
from typing_extensions import override

from deploys import FLEET, templates_root
from hxinfra.components import Component
from hxinfra.deploytools import component_data, is_deploy_file, step
from hxinfra.errors import HxError
from hxinfra.operations import ConfigItem, ManagedFile, config_set, upload_commands
from hxinfra.render import render
from hxinfra.validate import abs_path, collect, dns_name, fields, ip_address, one_line
from hxinfra.validate import name as validate_name
from hxinfra.vault import reveal

ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*")

# the AD client stack on Debian and Ubuntu (the same package names on both)
_AD_CLIENT_PACKAGES = ("realmd", "sssd", "sssd-tools", "adcli", "krb5-user", "libnss-sss", "libpam-sss",
                       "samba-common-bin", "oddjob", "oddjob-mkhomedir", "packagekit", "sudo",
                       "bind9-dnsutils")  # fmt: skip  (nsupdate and dig: the host's own DNS record)

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
    # Point the resolver at these DNS servers (the DCs); [] leaves DNS alone. With
    # systemd-resolved a drop-in is used, else /etc/resolv.conf.
    "ad_join_dns_servers": [],
    # Packages by distribution (the LinuxDistribution fact's name, lower case).
    "ad_join_packages": {"debian": list(_AD_CLIENT_PACKAGES), "ubuntu": list(_AD_CLIENT_PACKAGES)},
}

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
    if not HOMEDIR.fullmatch(home) or "/../" in f"{home}/" or home.rstrip("/") in ("/tmp", "/var/tmp") or \
            home.startswith(("/tmp/", "/var/tmp/")):  # fmt: skip
        raise AdJoinError(f"ad_join_fallback_homedir: {home!r} must be an absolute path outside /tmp")
    return home


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
    out += [f"{db}:{' ' * (16 - len(db) - 1)}files sss" if db != "sudoers" else "sudoers:        files sss"
            for db in NSS_DATABASES if db not in seen]  # fmt: skip
    return "\n".join(line for line in out if not line.startswith("# managed by hxinfra")).strip("\n")


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every value that reaches krb5.conf, sssd.conf, sudoers, resolv.conf or a command has its shape."""
    return collect(data, {
        "ad_join_domain": lambda d: dns_name(domain(d), "ad_join_domain (or hx_domain)"),
        "ad_join_realm": lambda d: dns_name(realm(d), "ad_join_realm (or hx_realm)"),
        "ad_join_admin_user": lambda d: validate_name(d["ad_join_admin_user"], "ad_join_admin_user", ACCOUNT),
        "ad_join_ou": lambda d: one_line(d["ad_join_ou"], "ad_join_ou"),
        "ad_join_fallback_homedir": _homedir,
        "ad_join_default_shell": lambda d: abs_path(d["ad_join_default_shell"], "ad_join_default_shell"),
        "ad_join_dns_servers": lambda d: [ip_address(s, "ad_join_dns_servers[]") for s in d["ad_join_dns_servers"]],
        "ad_join_sudo_rules": sudoers,
        "ad_join_computer_name": lambda d: computer_name(d, "x"),
        "ad_join_packages": lambda d: [validate_name(p, "ad_join_packages", PACKAGE)
                                       for pkgs in d["ad_join_packages"].values() for p in pkgs],
    })  # fmt: skip


def desired_config(data: Mapping[str, Any], host_name: str, nsswitch_now: str = DEBIAN_NSSWITCH) -> list[ConfigItem]:
    """krb5.conf, sssd.conf, realmd.conf, nsswitch.conf and the sudoers drop-in."""
    context = {**data, "domain": domain(data), "realm": realm(data),
               "computer_name": computer_name(data, host_name), "fqdn": f"{host_name}.{domain(data)}"}  # fmt: skip
    tpl = "domain_join/etc"
    items: list[ConfigItem] = [
        ManagedFile("/etc/krb5.conf", render(templates_root(), f"{tpl}/krb5.conf.j2", context)),
        ManagedFile("/etc/sssd/sssd.conf", render(templates_root(), f"{tpl}/sssd/sssd.conf.j2", context), mode="0600"),
        ManagedFile("/etc/realmd.conf", render(templates_root(), f"{tpl}/realmd.conf.j2", context)),
        ManagedFile(
            "/etc/nsswitch.conf", render(templates_root(), f"{tpl}/nsswitch.conf.j2", {"body": nsswitch(nsswitch_now)})
        ),  # fmt: skip
    ]
    rules = sudoers(data)
    if rules is not None:
        items.append(ManagedFile("/etc/sudoers.d/hx-ad", render(templates_root(), f"{tpl}/sudoers.d/hx-ad.j2",
                                                                {"rules": rules}), mode="0440"))  # fmt: skip
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
                render(templates_root(), "domain_join/etc/systemd/resolved.conf.d/hx-ad.conf.j2", context),
            )
        ]
    return [ManagedFile("/etc/resolv.conf", render(templates_root(), "domain_join/etc/resolv.conf.j2", context))]


# ------------------------------------------------------------------------------ host side
class DomainMembership(FactBase[dict[str, Any]]):
    """``realm list`` and ``adcli testjoin``: is this host a working member of the domain?"""

    default = dict

    @override
    def command(self, domain: str) -> str:
        d = shlex.quote(domain)
        return (
            f"printf 'realm=%s\\n' \"$(realm list --name-only 2>/dev/null | grep -ix {d} || true)\"; "
            f"if [ -f /etc/krb5.keytab ] && adcli testjoin -D {d} >/dev/null 2>&1; then echo testjoin=ok; "
            "else echo testjoin=no; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        kv = dict(line.split("=", 1) for line in output if "=" in line)
        return {"listed": bool(kv.get("realm")), "valid": kv.get("testjoin") == "ok"}


class SystemdResolved(FactBase[bool]):
    @override
    def command(self) -> str:
        return "systemctl is-active --quiet systemd-resolved && echo yes || echo no"

    @override
    def process(self, output: list[str]) -> bool:
        return bool(output) and output[0].strip() == "yes"


@operation()
def realm_membership(  # type: ignore[no-untyped-def]
    domain: str,
    present: bool = True,
    admin_user: str = "administrator",
    admin_password: str = "",
    computer_name: str = "",
    ou: str = "",
):
    """
    Join (or leave) the domain only when the host's state differs; the password goes on stdin.

    + domain: the AD DNS domain
    + present: member (true) or not (false)
    + admin_user/admin_password: the joining account (the password never reaches argv or output)
    + computer_name: NetBIOS name of the computer account
    + ou: organisational unit for the account
    """
    member = host.get_fact(DomainMembership, domain=domain)
    q = shlex.quote
    if present and member.get("valid"):
        host.noop(f"already a member of {domain} (adcli testjoin ok)")
        return
    if not present and not member.get("listed"):
        host.noop(f"not a member of {domain}")
        return
    if not present:
        yield StringCommand("realm", "leave", QuoteString(domain))
        return
    if not admin_password:  # only a host that must join needs it
        raise OperationError(
            f"joining {domain} needs ad_join_admin_password (a !vault value, e.g. in "
            "inventories/<env>/group_vars/domain_members/vault.yml)"
        )
    if state.config.DIFF:
        logger.info(f"{host.print_prefix}Will join {domain} as {computer_name} (user {admin_user})")
    discover = (
        f"out=$(realm discover {q(domain)} 2>&1) || {{ printf 'hxinfra: cannot discover AD domain %s: no "
        "domain controller answered (DNS servers: %s): %s\\n' "
        f"{q(domain)} \"$(awk '/^nameserver/{{print $2}}' /etc/resolv.conf | xargs)\" \"$out\" >&2; exit 1; }}"
    )
    yield StringCommand("sh", "-c", q(discover))
    secret = f"/root/.hxinfra-join-{uuid.uuid4().hex}"
    temp = host.get_temp_filename(f"hxinfra-{uuid.uuid4()}")
    yield from upload_commands(ManagedFile(secret, f"{admin_password}\n", mode="0600", sensitive=True), temp)
    ou_arg = f" --computer-ou={q(ou)}" if ou else ""
    # the join's output goes to a private temp file (mktemp: 0600, unpredictable name), removed in every case
    join = (
        "log=$(mktemp) || exit 1; "
        f"realm join --verbose --membership-software=adcli --client-software=sssd --user={q(admin_user)} "
        f'--computer-name={q(computer_name)}{ou_arg} {q(domain)} < {q(secret)} > "$log" 2>&1; '
        f"rc=$?; rm -f {q(secret)}; if [ $rc -ne 0 ]; then "
        f"printf 'hxinfra: joining %s as %s failed (rc=%s):\\n' {q(domain)} {q(admin_user)} \"$rc\" >&2; "
        'grep -v -i password "$log" | tail -5 >&2; '
        f'realm leave {q(domain)} >/dev/null 2>&1; rm -f /etc/krb5.keytab; fi; rm -f "$log"; exit $rc'
    )
    yield StringCommand("sh", "-c", q(join))


class DnsRecord(FactBase[dict[str, Any]]):
    """The host's own IPv4 address toward the domain's DNS, and the A records DNS has for its FQDN."""

    default = dict

    @override
    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "dig"

    @override
    def command(self, fqdn: str, server: str) -> str:
        q = shlex.quote
        at = f"@{q(server)}" if server else ""
        toward = q(server) if server else "$(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)"
        return (
            f"printf 'src=%s\\n' \"$(ip -4 route get {toward} 2>/dev/null | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p')\"; "
            f"printf 'a=%s\\n' \"$(dig +short +time=2 +tries=2 {at} {q(fqdn)} A 2>/dev/null | xargs)\""
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        kv = dict(line.split("=", 1) for line in output if "=" in line)
        return {"src": kv.get("src", "").strip(), "records": kv.get("a", "").split()}


@operation()
def dns_registration(fqdn: str, principal: str, server: str = "", timeout: int = 60):  # type: ignore[no-untyped-def]
    """
    Register the host's A record in the domain's DNS (GSS-TSIG, as the computer account) and wait
    until the DNS server answers with it, so that clients using the FQDN work when the deploy ends.

    SSSD's own dynamic update is asynchronous (a minute or two after joining): a client using
    ``verify-full`` TLS right after the deploy would fail. No-op when DNS already has the address.

    + fqdn: the host's name in the domain
    + principal: the computer account (``NAME$@REALM``), whose key is in /etc/krb5.keytab
    + server: the DNS server to update and ask ("" = the host's resolver)
    + timeout: seconds to wait for DNS to answer with the new record
    """
    have = host.get_fact(DnsRecord, fqdn=fqdn, server=server)
    if have.get("src") and have["src"] in have.get("records", []):
        host.noop(f"{fqdn} already resolves to {have['src']}")
        return
    q = shlex.quote
    at = f"@{q(server)}" if server else ""
    toward = q(server) if server else "$(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)"
    # nsupdate finds the primary server from the zone's SOA, as SSSD does (the GSS-TSIG principal is
    # DNS/<that name>). Samba's DNS applies the update but signs its answer in a way nsupdate cannot
    # verify ("tsig verify failure", rc 2): so DNS itself is the judge of success, not nsupdate's rc.
    script = (
        f"src=$(ip -4 route get {toward} | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'); "
        '[ -n "$src" ] || { echo "hxinfra: no route to the domain DNS server" >&2; exit 1; }; '
        'ccache=$(mktemp) && out=$(mktemp) && export KRB5CCNAME="FILE:$ccache" && '
        f"kinit -k {q(principal)} && "
        f"printf 'update delete %s A\\nupdate add %s 3600 A %s\\nsend\\n' {q(fqdn)} {q(fqdn)} \"$src\" "
        '| nsupdate -g >"$out" 2>&1; kdestroy >/dev/null 2>&1; rm -f "$ccache"; '
        f"i=0; while [ $i -lt {int(timeout)} ]; do "
        f'if dig +short +time=2 +tries=1 {at} {q(fqdn)} A | grep -qxF "$src"; then rm -f "$out"; exit 0; fi; '
        "sleep 1; i=$((i+1)); done; "
        f'printf "hxinfra: %s does not resolve to %s after %ss; nsupdate said:\\n" {q(fqdn)} "$src" {int(timeout)} >&2; '
        'cat "$out" >&2; rm -f "$out"; exit 1'
    )
    yield StringCommand("sh", "-c", q(script))


# ------------------------------------------------------------------------------ deploy
def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan (nsswitch.conf from Debian's default; the resolver as /etc/resolv.conf)."""
    data = dict(data)
    return resolver_files(data, resolved=False) + desired_config(data, host_name)


COMPONENT = Component(
    "ad_join", DEFAULTS, groups=("domain_members",), check=check_data, plan=plan,
    tags=("packages", "config", "security", "dns", "join", "service"),
)  # fmt: skip


@deploy("AD domain join", data_defaults=DEFAULTS)
def domain_join() -> None:
    """Install the AD client stack, point DNS at the DCs, join once, then converge SSSD/Kerberos files."""
    data = component_data(COMPONENT, host.data, extra_keys=tuple(FLEET.all_keys()))
    dom = domain(data)
    if step(COMPONENT, host.data, "packages"):
        distro = str((host.get_fact(LinuxDistribution) or {}).get("name") or "debian").lower()
        packages = data["ad_join_packages"].get(distro)
        if packages is None:
            raise AdJoinError(f"ad_join_packages has no entry for distribution {distro!r}")
        apt.packages(name=f"Install the AD client packages for {distro}", packages=packages, update=True,
                     cache_time=24 * 3600)  # fmt: skip
    if step(COMPONENT, host.data, "dns"):
        resolved = bool(host.get_fact(SystemdResolved))
        resolver = config_set(
            name="Point the resolver at ad_join_dns_servers (unchanged when empty)",
            items=resolver_files(data, resolved),
        )
        systemd.service(
            name="Restart systemd-resolved after a DNS change",
            service="systemd-resolved",
            restarted=True,
            _if=[resolver.did_change, lambda: resolved],
        )
    joined = None
    if step(COMPONENT, host.data, "join"):
        joined = realm_membership(
            name="Join the domain if not a member (adcli testjoin), or leave it when ad_join_present is false",
            domain=dom,
            present=bool(data["ad_join_present"]),
            admin_user=data["ad_join_admin_user"],
            admin_password=str(reveal(data["ad_join_admin_password"]) or ""),
            computer_name=computer_name(data, host.name),
            ou=data["ad_join_ou"],
        )
    config = None
    if step(COMPONENT, host.data, "config", "security"):
        current = host.get_fact(FileContents, path="/etc/nsswitch.conf") or DEBIAN_NSSWITCH.splitlines()
        config = config_set(
            name="Write /etc/krb5.conf, /etc/sssd/sssd.conf, /etc/realmd.conf, /etc/nsswitch.conf (and sudoers)",
            items=desired_config(data, host.name, "\n".join(current)) if data["ad_join_present"] else [],
            validate="sssctl config-check && { [ ! -e /etc/sudoers.d/hx-ad ] || visudo -cf /etc/sudoers.d/hx-ad; }",
        )
        session = host.get_fact(FileContents, path="/etc/pam.d/common-session") or []
        needs_mkhomedir = bool(data["ad_join_mkhomedir"]) and not any("pam_mkhomedir" in line for line in session)
        server.shell(
            name="Enable pam_mkhomedir with pam-auth-update (only when asked and not yet enabled)",
            commands=["pam-auth-update --enable mkhomedir >/dev/null 2>&1"],
            _if=lambda: needs_mkhomedir,
        )
    if step(COMPONENT, host.data, "service") and data["ad_join_present"]:
        systemd.service(name="Start and enable sssd.service", service="sssd.service", running=True, enabled=True)
        changed = [op.did_change for op in (config, joined) if op is not None]
        systemd.service(
            name="Restart sssd.service after a join or a config change (never otherwise; caches kept)",
            service="sssd.service",
            restarted=True,
            _if=lambda: any(c() for c in changed),
        )
    if step(COMPONENT, host.data, "join", "dns") and data["ad_join_present"]:
        servers = [str(s) for s in data["ad_join_dns_servers"]]
        dns_registration(
            name="Register the host's address in the domain's DNS and wait until DNS answers with it",
            fqdn=f"{host.name}.{dom}",
            principal=f"{computer_name(data, host.name)}$@{realm(data)}",
            server=servers[0] if servers else "",
        )


if is_deploy_file(globals()):
    domain_join()
