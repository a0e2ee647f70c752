"""Active Directory domain join with realmd, SSSD and Kerberos.

The old role's join command was broken and it wiped the SSSD cache on every run. Here the join
happens only when the host is not a member (not listed by realm, or the KDC refuses its machine
key); the admin password goes
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

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from deploys.ad_join.config import (
    DEBIAN_NSSWITCH,
    DEFAULTS,
    RESPONDERS,
    backup,
    check_data,
    computer_name,
    desired_config,
    domain,
    health,
    packages,
    plan,
    realm,
    resolver_files,
    sssd_conf_mode,
)
from deploys.ad_join.operations import dns_registration, realm_membership, sssd_online
from deploys.common import FLEET, OS_RELEASE, host_release
from hxinfra import batch
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set
from hxinfra.secrets import reveal

COMPONENT = Component(
    "ad_join",
    DEFAULTS,
    groups=("domain_members",),
    check=check_data,
    plan=plan,
    health=health,
    backup=backup,
    tags=("packages", "config", "security", "dns", "join", "service"),
    ansible={
        "hx_ad_domain": "ad_join_domain",
        "hx_ad_realm": "ad_join_realm",
        "hx_ad_admin_password": "ad_join_admin_password",
        "hx_ad_computer_name": "ad_join_computer_name",
        "hx_domain_join_enabled": "ad_join_present",
    },
)


NSSWITCH, PAM_SESSION = "/etc/nsswitch.conf", "/etc/pam.d/common-session"
RESOLVED = "systemd-resolved.service"


@deploy("AD join", data_defaults=DEFAULTS)
def ad_join() -> None:
    """Install the AD client stack, point DNS at the DCs, join once, then converge SSSD/Kerberos files."""
    data = component_data(COMPONENT, host.data, extra_keys=tuple(FLEET.all_keys()))
    dom = domain(data)
    # the host's files this deploy reads: one round trip for all three
    batch.want("contents", [OS_RELEASE, NSSWITCH, PAM_SESSION])
    distro, version = host_release(batch.lookup("contents", [OS_RELEASE])[OS_RELEASE] or "")
    sockets = [f"sssd-{r}.socket" for r in RESPONDERS]
    batch.want("units", [*sockets, RESOLVED])
    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install the AD client packages of the host's release",
            packages=packages(data, distro, version),
            update=True,
            cache_time=24 * 3600,
        )
    if step(COMPONENT, host.data, "dns"):
        resolved = (batch.lookup("units", [RESOLVED])[RESOLVED] or {}).get("active") == "active"
        resolver = config_set(
            name="Point the resolver at ad_join_dns_servers (unchanged when empty)",
            items=resolver_files(data, resolved),
        )
        system.service(
            name="Restart systemd-resolved after a DNS change",
            service="systemd-resolved",
            restarted=True,
            _if=[resolver.did_change, lambda: resolved],
        )
    joined = None
    if step(COMPONENT, host.data, "join"):
        joined = realm_membership(
            name="Join the domain unless its KDC accepts the machine key, or leave it when ad_join_present is false",
            domain=dom,
            present=bool(data["ad_join_present"]),
            admin_user=data["ad_join_admin_user"],
            admin_password=str(reveal(data["ad_join_admin_password"]) or ""),
            computer_name=computer_name(data, host.name),
            ou=data["ad_join_ou"],
            controllers=[str(s) for s in data["ad_join_dns_servers"]],
        )
    config = None
    if step(COMPONENT, host.data, "config", "security"):
        current = (batch.lookup("contents", [NSSWITCH])[NSSWITCH] or DEBIAN_NSSWITCH).splitlines()
        mode = sssd_conf_mode(distro, version)
        config = config_set(
            name="Write /etc/krb5.conf, /etc/sssd/sssd.conf, /etc/realmd.conf, /etc/nsswitch.conf (and sudoers)",
            items=desired_config(data, host.name, "\n".join(current), mode) if data["ad_join_present"] else [],
            validate="sssctl config-check && { [ ! -e /etc/sudoers.d/hx-ad ] || visudo -cf /etc/sudoers.d/hx-ad; }",
        )
        session = batch.lookup("contents", [PAM_SESSION])[PAM_SESSION] or ""
        needs_mkhomedir = bool(data["ad_join_mkhomedir"]) and "pam_mkhomedir" not in session
        server.shell(
            name="Enable pam_mkhomedir with pam-auth-update (only when asked and not yet enabled)",
            commands=["pam-auth-update --enable mkhomedir >/dev/null 2>&1"],
            _if=lambda: needs_mkhomedir,
        )
    if step(COMPONENT, host.data, "service") and data["ad_join_present"]:
        # sssd.conf's services line starts these responders: their socket units (enabled by the
        # package) then refuse to start and stay failed; they are disabled and their failure cleared
        # asked when the step runs: on a new host the package (and its sockets) arrives in this run
        units = " ".join(sockets)
        server.shell(
            name="Disable the SSSD responder sockets that sssd.conf's services line replaces",
            commands=[
                f"for u in {units}; do if systemctl is-enabled --quiet $u || systemctl is-failed --quiet $u; "
                "then systemctl disable --now $u; systemctl reset-failed $u; fi; done 2>/dev/null; true"
            ],
            _if=lambda: any(
                i and (i.get("file") == "enabled" or i.get("active") == "failed")
                for i in batch.lookup("units", sockets).values()
            ),
        )
        system.service(name="Start and enable sssd.service", service="sssd.service", running=True, enabled=True)
        changed = [op.did_change for op in (config, joined) if op is not None]
        restart = system.service(
            name="Restart sssd.service after a join or a config change (never otherwise; caches kept)",
            service="sssd.service",
            restarted=True,
            _if=lambda: any(c() for c in changed),
        )
        sssd_online(
            name="Bring sssd online: after its restart, or when it says offline and the domain's KDC answers",
            domain=dom,
            restart=restart,
        )
    if step(COMPONENT, host.data, "join", "dns") and data["ad_join_present"]:
        servers = [str(s) for s in data["ad_join_dns_servers"]]
        dns_registration(
            name="Register the host's address in the domain's DNS and wait until DNS answers with it",
            fqdn=f"{host.name}.{dom}",
            principal=f"{computer_name(data, host.name)}$@{realm(data)}",
            server=servers[0] if servers else "",
        )
