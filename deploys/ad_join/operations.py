"""AD join operations: join or leave only when the host's state differs (the password on stdin),
and the host's DNS registration, checked by asking DNS.
"""

from __future__ import annotations

import shlex
import uuid

from pyinfra import host, logger, state
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.operation import OperationMeta

from deploys.ad_join.facts import DnsRecord, DomainMembership, sssd_status, unverified
from hxinfra import batch
from hxinfra.desired import ManagedFile
from hxinfra.ops.configset import upload_commands
from hxinfra.ops.refusal import refuse


@operation()
def realm_membership(  # type: ignore[no-untyped-def]
    domain: str,
    present: bool = True,
    admin_user: str = "administrator",
    admin_password: str = "",
    computer_name: str = "",
    ou: str = "",
    controllers: list[str] | None = None,
):
    """
    Join (or leave) the domain only when the host's state differs; the password goes on stdin.

    A host is joined again only when the domain's KDC itself refuses its machine key (or it holds
    none): a member whose domain controllers do not answer is never joined again, and its run
    fails with one line that says so, changing nothing there.

    + domain: the AD DNS domain
    + present: member (true) or not (false)
    + admin_user/admin_password: the joining account (the password never reaches argv or output)
    + computer_name: NetBIOS name of the computer account
    + ou: organisational unit for the account
    + controllers: the domain controllers to name when none answers (the resolvers, ad_join_dns_servers)
    """
    # read once: sssd_online asks it too (realm's word is needed to leave, not by a member the KDC accepts)
    member = batch.fact(DomainMembership, domain=domain, realm_always=not present)
    q = shlex.quote
    if present and member.get("valid"):
        host.noop(f"already a member of {domain} (its KDC accepts the machine key)")
        return
    if present and member.get("unverified"):
        yield from refuse(unverified(domain, list(controllers or []), str(member.get("why") or "")))
        return
    if not present and not member.get("listed"):
        host.noop(f"not a member of {domain}")
        return
    if not present:
        yield StringCommand("realm", "leave", QuoteString(domain))
        return
    if not admin_password:  # only a host that must join needs it
        yield from refuse(
            f"joining {domain} needs ad_join_admin_password (a !vault value, e.g. in "
            "inventories/<env>/group_vars/domain_members/vault.yml)"
        )
        return
    if state.config.DIFF:
        logger.info(f"{host.print_prefix}Will join {domain} as {computer_name} (user {admin_user})")
    discover = (
        f"out=$(realm discover {q(domain)} 2>&1) || {{ printf 'hxinfra: cannot discover AD domain %s: no "
        "domain controller answered (DNS servers: %s): %s\\n' "
        f'{q(domain)} "$(awk \'/^nameserver/{{print $2}}\' /etc/resolv.conf | xargs)" "$out" >&2; exit 1; }}'
    )
    yield StringCommand("sh", "-c", q(discover))
    secret = f"/root/.hxinfra-join-{uuid.uuid4().hex}"
    temp = host.get_temp_filename(f"hxinfra-{uuid.uuid4()}")
    yield from upload_commands(ManagedFile(secret, f"{admin_password}\n", mode="0600", sensitive=True), temp)
    ou_arg = f" --computer-ou={q(ou)}" if ou else ""
    # the join's output goes to a private temp file (mktemp: 0600, unpredictable name), removed in every case
    # realm still lists a domain whose KDC refused the key: leave it here first (only this host's
    # configuration; the account is the DC's) or realm join stops at "Already joined to this domain"
    stale = f"realm leave {q(domain)} >/dev/null 2>&1; " if member.get("listed") else ""
    join = (
        f"{stale}log=$(mktemp) || exit 1; "
        f"realm join --verbose --membership-software=adcli --client-software=sssd --user={q(admin_user)} "
        f'--computer-name={q(computer_name)}{ou_arg} {q(domain)} < {q(secret)} > "$log" 2>&1; '
        f"rc=$?; rm -f {q(secret)}; if [ $rc -ne 0 ]; then "
        f"printf 'hxinfra: joining %s as %s failed (rc=%s):\\n' {q(domain)} {q(admin_user)} \"$rc\" >&2; "
        'grep -v -i password "$log" | tail -5 >&2; '
        f"realm leave {q(domain)} >/dev/null 2>&1; rm -f /etc/krb5.keytab; "
        # joined (again): what sssd cached of an earlier join may name another domain's accounts
        'else sss_cache -E >/dev/null 2>&1 || true; fi; rm -f "$log"; exit $rc'
    )
    yield StringCommand("sh", "-c", q(join))


def online_script(domain: str, timeout: int) -> str:
    """Wait until sssd says Online for ``domain`` (SIGUSR2 to its main process, once, when it says
    Offline); after ``timeout`` seconds fail with one line that says what to look at."""
    q = shlex.quote
    why = (
        f"hxinfra: sssd still not online for {domain} after {int(timeout)}s: its KDC answers, its LDAP does not "
        "(is the certificate of the domain controllers trusted here? ldap_tls_reqcert demand needs the CA trust "
        f"deploy; sssctl domain-status -o {domain}, /var/log/sssd/sssd_{domain}.log)"
    )
    return (
        f"i=0; nudged=; while [ $i -lt {int(timeout)} ]; do s=$({sssd_status(domain)}); "
        '[ "$s" = Online ] && exit 0; '
        'if [ "$s" = Offline ] && [ -z "$nudged" ]; then '
        "systemctl kill --kill-whom=main --signal=SIGUSR2 sssd.service || exit 1; nudged=1; fi; "
        "sleep 1; i=$((i+1)); done; "
        f"printf '%s\\n' {q(why)} >&2; exit 1"
    )


@operation()
def sssd_online(domain: str, restart: OperationMeta | None = None, timeout: int = 30):  # type: ignore[no-untyped-def]
    """
    Bring sssd back online for the domain when sssd says it is offline and the domain's KDC answers;
    after this run restarted sssd, wait until it says Online.

    sssd retries an offline domain on its own timer (``offline_timeout``, at most
    ``offline_timeout_max`` plus a random offset): a run that has just seen the KDC accept the
    machine key need not wait for it. SIGUSR2 to sssd's main process is sssd's own "go online now"
    (sssd(8)); the operation then waits until sssd says Online and fails, naming the domain, when it
    does not (the DC answers Kerberos but not what sssd needs: LDAP, its certificate). A run that
    restarted sssd ends only when it is online, so the next run finds nothing to do.
    No-op when sssd is online, does not run, or no KDC answers (nothing to come back to).

    + domain: the AD DNS domain
    + restart: the operation that restarts sssd in this run, when there is one (asked when this
      one runs; a check runs nothing, so it has restarted nothing)
    + timeout: seconds to wait for sssd to say Online
    """
    member = batch.fact(DomainMembership, domain=domain, realm_always=False)  # realm_membership's own read
    said = str(member.get("sssd") or "")
    just_restarted = restart is not None and restart.is_complete() and restart.did_change()
    if not just_restarted:
        if said != "Offline":
            host.noop(f"sssd is {said.lower() or 'not running'} for {domain}")
            return
        if not member.get("valid"):
            host.noop(f"sssd is offline for {domain} and its KDC does not accept the machine key: left as it is")
            return
    yield StringCommand("sh", "-c", shlex.quote(online_script(domain, timeout)))


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
        f'printf "hxinfra: %s does not resolve to %s after %ss; nsupdate said:\\n" {q(fqdn)} "$src" {int(timeout)} >&2; '  # noqa: E501
        'cat "$out" >&2; rm -f "$out"; exit 1'
    )
    yield StringCommand("sh", "-c", q(script))
