"""A lab host as a real Samba Active Directory domain controller (internal DNS, the lab CA's TLS).

Domain joins are proven against it. The admin password comes from the lab's vault. Provisioning
is idempotent: a provisioned, running DC is left alone. Facts this relies on (Debian 12, Samba
4.17 in systemd-nspawn): the ``samba`` package starts smbd/nmbd/winbind and ships an smb.conf
that provision refuses; provision must see an empty resolv.conf (no forwarder off the lab);
``hostname -f`` must give the FQDN on the bridge address.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from hxinfra.errors import LabError
from hxinfra.lab.core import Lab
from hxinfra.lab.host import LAB_DOMAIN

PACKAGES = "samba-ad-dc samba winbind krb5-user bind9-host smbclient ldb-tools"
TLS_DIR = "/var/lib/samba/private/tls"


def marker(lab: Lab, name: str) -> Path:
    """Written after a successful provision; goes away with the host's directory."""
    return lab.dir / name / "samba-dc.provisioned"


def is_provisioned(lab: Lab, name: str) -> bool:
    r = lab.ssh(name, "test -f /var/lib/samba/private/sam.ldb && systemctl is-active --quiet samba-ad-dc")
    return r.returncode == 0


def provision_dc(
    lab: Lab,
    name: str,
    realm: str,
    admin_password: str,
    tls: tuple[str, str, str] | None = None,
    users: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Install and provision Samba AD on ``name`` (``tls`` = cert, key, CA PEMs for LDAPS/StartTLS)."""
    if is_provisioned(lab, name):
        marker(lab, name).touch()
        return
    host = lab.get(name)
    domain, workgroup = realm.lower(), realm.split(".")[0]
    q = shlex.quote
    log(f"{name}: installing Samba AD DC packages")
    r = lab.ssh(
        name,
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/tmp/apt.log 2>&1 && "
        f"apt-get install -y -qq {PACKAGES} >>/tmp/apt.log 2>&1 || {{ tail -20 /tmp/apt.log; exit 1; }}",
        timeout=900,
    )
    if r.returncode != 0:
        raise LabError(f"{name}: installing Samba failed: {r.stdout[-2000:]}{r.stderr[-500:]}")
    tls_conf = ""
    tls_files = ""
    if tls:
        cert, key, ca = tls
        tls_files = (
            f"install -d -m 0700 {TLS_DIR}\n"
            f"umask 077\ncat > {TLS_DIR}/hx.key <<'EOF'\n{key.strip()}\nEOF\n"
            f"cat > {TLS_DIR}/hx.crt <<'EOF'\n{cert.strip()}\nEOF\n"
            f"cat > {TLS_DIR}/hx-ca.crt <<'EOF'\n{ca.strip()}\nEOF\n"
        )
        # SASL binds without sign/seal inside TLS (what clients with StartTLS do), as Windows AD allows
        tls_conf = (
            f"tls enabled = yes\\n\\ttls keyfile = {TLS_DIR}/hx.key\\n\\ttls certfile = {TLS_DIR}/hx.crt\\n"
            f"\\ttls cafile = {TLS_DIR}/hx-ca.crt\\n\\tldap server require strong auth = allow_sasl_over_tls\\n"
        )
    user_cmds = "".join(
        f"samba-tool user create {q(u)} {q(pw)} --given-name={q(u)} --surname=Lab >/dev/null\n"
        for u, pw in (users or {}).items()
    )
    script = f"""set -e
systemctl disable --now smbd nmbd winbind >/dev/null 2>&1 || true
[ -f /etc/samba/smb.conf ] && mv /etc/samba/smb.conf /etc/samba/smb.conf.orig
printf '127.0.0.1 localhost\\n{host.ip} {name}.{LAB_DOMAIN} {name}\\n::1 localhost ip6-localhost ip6-loopback\\n' > /etc/hosts
: > /etc/resolv.conf
samba-tool domain provision --use-rfc2307 --server-role=dc --dns-backend=SAMBA_INTERNAL \\
  --realm={q(realm)} --domain={q(workgroup)} --host-ip={host.ip} --adminpass={q(admin_password)} >/tmp/provision.log 2>&1 \\
  || {{ tail -30 /tmp/provision.log; exit 1; }}
{tls_files}sed -i 's|^\\[global\\]$|[global]\\n\\t{tls_conf}|' /etc/samba/smb.conf
cp /var/lib/samba/private/krb5.conf /etc/krb5.conf
printf 'search {domain}\\nnameserver 127.0.0.1\\n' > /etc/resolv.conf
systemctl unmask samba-ad-dc >/dev/null 2>&1; systemctl enable --now samba-ad-dc >/dev/null 2>&1
for i in $(seq 100); do host -W1 -t SRV _ldap._tcp.{domain} 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.2; done
host -t SRV _ldap._tcp.{domain} 127.0.0.1 >/dev/null
samba-tool domain passwordsettings set --max-pwd-age=0 >/dev/null
{user_cmds}"""  # noqa: E501
    log(f"{name}: provisioning {realm} (Samba AD DC, internal DNS)")
    r = lab.ssh(name, "sh -s", input=script, timeout=300)
    if r.returncode != 0:
        raise LabError(f"{name}: Samba provision failed: {r.stdout[-2000:]}{r.stderr[-1000:]}")
    if not is_provisioned(lab, name):
        raise LabError(f"{name}: samba-ad-dc is not running after provisioning")
    marker(lab, name).touch()
