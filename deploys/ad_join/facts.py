"""AD join, host side: membership (realm list, adcli testjoin), systemd-resolved, and the host's
own A record in the domain's DNS.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override


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
