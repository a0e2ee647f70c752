"""AD join, host side: membership (realm list, the KDC accepting the machine key), systemd-resolved, and the host's
own A record in the domain's DNS.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override

# ------------------------------------------------------------------------------ host side
# kinit's words when the KDC answered and said no: the account is gone or its key is not the keytab's
# (or the keytab itself holds no usable key). Anything else (no KDC found or answering, a clock
# too far off) is no answer, and a host is never joined again on no answer.
REFUSED = ("not found in Kerberos database", "Preauthentication failed", "Password incorrect", "no suitable keys")


def membership_script(domain: str, realm_always: bool = True) -> str:
    """What the host and its domain's KDC say of its membership, one ``key=value`` a line:
    ``realm`` (the domain when ``realm list`` lists it; asked only when the KDC does not accept
    the key unless ``realm_always``: a member the KDC accepts is one whatever realm says, and
    realm's D-Bus round trip to realmd is 20 ms of CPU on every member in every run), ``key``
    (the machine principal in ``/etc/krb5.keytab``), ``kdc`` (``ok``: the KDC accepts that key; ``refused``: it says no;
    ``unreachable``: no answer), ``why`` (kinit's own line when it is not ``ok``) and ``sssd``
    (sssd's own word on the domain: ``Online``, ``Offline``, or nothing when sssd does not run).

    The KDC is asked with ``kinit -k`` into a memory credential cache (nothing written): it accepts
    the key only while the computer account exists and its password is the keytab's, what
    ``adcli testjoin`` proves too at 20 times the cost (its CLDAP ping took 0.4 s of every run's
    0.45 s on the lab, in the critical path of every run on every member)."""
    q = shlex.quote
    realm = q("@" + domain.upper())
    refused = "|".join(f"*{q(w)}*" for w in REFUSED)
    listed = f"printf 'realm=%s\\n' \"$(realm list --name-only 2>/dev/null | grep -ix {q(domain)} || true)\"; "
    return (
        # sssd's word (40 ms, most of it sssctl's own start) asked beside realm and the KDC
        f"{{ printf 'sssd=%s\\n' \"$({sssd_status(domain)})\"; }} & "
        f"p=$(klist -k /etc/krb5.keytab 2>/dev/null | awk -v r={realm} "
        "'index($2, \"$\" r) && substr($2, length($2) - length(r) + 1) == r {print $2; exit}'); "
        'printf "key=%s\\n" "$p"; kdc=; '
        'if [ -n "$p" ]; then '
        'if err=$(KRB5CCNAME=MEMORY: kinit -k -t /etc/krb5.keytab "$p" 2>&1 >/dev/null); then kdc=ok; echo kdc=ok; '
        f'else case "$err" in ({refused}) echo kdc=refused;; (*) echo kdc=unreachable;; esac; '
        'printf "why=%s\\n" "$(printf "%s\\n" "$err" | head -n 1)"; fi; fi; '
        + (listed if realm_always else f'[ "$kdc" = ok ] || {{ {listed}}}; ')
        + "wait"
    )


def sssd_status(domain: str) -> str:
    """The command that prints sssd's word on ``domain``: ``Online``, ``Offline`` or nothing."""
    return f"sssctl domain-status -o {shlex.quote(domain)} 2>/dev/null | sed -n 's/^Online status: //p'"


def unverified(domain: str, controllers: list[str], why: str) -> str:
    """The one line of a member whose domain controllers did not answer."""
    who = ", ".join(controllers) if controllers else f"of {domain}"
    return f"domain controller(s) {who} unreachable: membership not verified" + (f" ({why})" if why else "")


class DomainMembership(FactBase[dict[str, Any]]):
    """Is this host a working member of the domain, in the words of its KDC (see
    :func:`membership_script`)? ``valid``: the KDC accepts its machine key; ``unverified``: the
    host holds a machine key and no KDC answered, so nobody can say."""

    default = dict

    @override
    def command(self, domain: str, realm_always: bool = True) -> str:
        return membership_script(domain, realm_always)

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        kv = dict(line.split("=", 1) for line in output if "=" in line)
        return {
            # None: not asked (the KDC accepts the key, so realm's word decides nothing)
            "listed": bool(kv["realm"]) if "realm" in kv else None,
            "valid": kv.get("kdc") == "ok",
            "unverified": kv.get("kdc") == "unreachable",
            "why": kv.get("why", "").strip(),
            "sssd": kv.get("sssd", "").strip(),
        }


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
            f"printf 'src=%s\\n' \"$(ip -4 route get {toward} 2>/dev/null | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p')\"; "  # noqa: E501
            f"printf 'a=%s\\n' \"$(dig +short +time=2 +tries=2 {at} {q(fqdn)} A 2>/dev/null | xargs)\""
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        kv = dict(line.split("=", 1) for line in output if "=" in line)
        return {"src": kv.get("src", "").strip(), "records": kv.get("a", "").split()}
