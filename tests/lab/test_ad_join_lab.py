"""The AD domain join against a real Samba AD DC in the lab."""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest

pytestmark = pytest.mark.lab

DC, MEMBER, FRESH = "hx-dc-01", "hx-app-01", "hx-web-03"
DOMAIN, REALM = "lab.hxinfra.test", "LAB.HXINFRA.TEST"


@pytest.fixture(scope="module")
def ad(lab):
    """The lab DC, provisioned as `hxinfra lab up` does; removed afterwards so later tests see no domain."""
    from hxinfra.lab.inventory import lab_vault, prepare_dc

    prepare_dc(lab.lab, DC, log=print)
    vault = lab_vault(lab.lab)
    yield {k: str(vault[k].reveal()) for k in ("vault_lab_dc_admin_password", "vault_lab_ad_user_password")}
    lab.lab.down([DC])


def sssd_started(lab) -> str:
    return lab.ssh(MEMBER, "systemctl show sssd -p ActiveEnterTimestampMonotonic --value").stdout.strip()


def test_join_then_users_resolve_and_a_second_run_changes_nothing(lab, ad):
    r, report = lab.hx_deploy("site", "--limit", MEMBER)
    assert report["hosts"][0]["status"] == "changed", r.stderr[-4000:]
    for secret in ad.values():
        assert secret not in r.stdout + r.stderr
    assert lab.ssh(MEMBER, "realm list --name-only").stdout.strip() == DOMAIN
    # the member's name resolves through the DC's DNS as soon as the deploy ends (not minutes later)
    answer = lab.ssh(MEMBER, f"dig +short @{lab.ip(DC)} {MEMBER}.{DOMAIN} A").stdout.split()
    assert answer == [lab.ip(MEMBER)], answer
    assert "configured: kerberos-member" in lab.ssh(MEMBER, "realm list").stdout
    assert lab.ssh(MEMBER, "getent passwd administrator").stdout.startswith("administrator:")
    assert "domain users" in lab.ssh(MEMBER, "id alice").stdout
    kinit = lab.ssh(
        MEMBER, f"echo {shlex.quote(ad['vault_lab_ad_user_password'])} | kinit alice@{REALM} >/dev/null && klist"
    )
    assert f"Default principal: alice@{REALM}" in kinit.stdout
    member = lab.host(MEMBER)
    sssd_conf = member.file("/etc/sssd/sssd.conf")
    assert sssd_conf.mode == 0o600 and sssd_conf.user == "root" and sssd_conf.contains("^ldap_tls_reqcert = demand")
    assert member.service("sssd").is_running and member.service("sssd").is_enabled
    assert member.user("administrator").exists  # an AD user through NSS (sss)
    untouched = lab.ssh("hx-web-04", "grep -E '^(passwd|hosts):' /etc/nsswitch.conf").stdout.splitlines()
    nss = lab.ssh(MEMBER, "grep -E '^(passwd|hosts):' /etc/nsswitch.conf").stdout.splitlines()
    assert nss[0] == untouched[0] + " sss" and nss[1] == untouched[1]  # the distro's own sources kept
    assert lab.ssh(MEMBER, "adcli testjoin -D lab.hxinfra.test", check=False).returncode == 0
    # the lab's sudo rule for a domain group, checked by visudo before it landed
    assert "(ALL : ALL) ALL" in lab.ssh(MEMBER, "sudo -l -U administrator").stdout
    assert lab.ssh(MEMBER, "stat -c %a /etc/sudoers.d/hx-ad").stdout.strip() == "440"

    before = sssd_started(lab)
    r, again = lab.hx_deploy("site", "--limit", MEMBER, "--detailed-exitcode")
    assert again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    assert sssd_started(lab) == before  # not restarted, caches kept


def secret_vars(tmp_path, **values):
    """Secrets go in an -e @file (0600), never in argv where ps shows them."""
    f = tmp_path / "secret-vars.yml"
    f.touch(mode=0o600)
    f.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return f"@{f}"


def test_dc_unreachable_is_a_clear_error(lab, ad, tmp_path):
    r, report = lab.hx_deploy(
        "ad_join",
        "--limit",
        FRESH,
        "-e",
        "{ad_join_dns_servers: [10.231.0.254]}",
        "-e",
        secret_vars(tmp_path, ad_join_admin_password="Some-Pass-2026x"),
        check=False,
    )
    assert r.returncode == 1
    assert f"cannot discover AD domain {DOMAIN}: no domain controller answered (DNS servers: 10.231.0.254)" in r.stderr


def test_wrong_admin_password_leaves_the_host_as_it_was(lab, ad, tmp_path):
    dc_ip = lab.ip(DC)
    wrong = "Wrong-Pass-2026x"
    r, report = lab.hx_deploy(
        "ad_join",
        "--limit",
        FRESH,
        "-e",
        f"{{ad_join_dns_servers: [{dc_ip}]}}",
        "-e",
        secret_vars(tmp_path, ad_join_admin_password=wrong),
        check=False,
    )
    assert r.returncode == 1 and f"joining {DOMAIN} as administrator failed" in r.stderr
    assert wrong not in r.stdout + r.stderr
    state = lab.ssh(
        FRESH,
        "realm list --name-only; ls /etc/krb5.keytab /etc/sssd/sssd.conf /root/.hxinfra-join-* 2>&1 | "
        "grep -c 'No such file'",
    )
    assert state.stdout.split() == ["3"]  # not listed, no keytab, no sssd.conf, no password file


def test_join_beside_systemd_resolved_keeps_its_stub(lab, ad, tmp_path):
    """A host running systemd-resolved gets a drop-in; /etc/resolv.conf stays resolved's stub."""
    lab.hx_deploy("ca_trust", "--limit", FRESH)  # sssd's LDAP (StartTLS, demand) trusts the DC's certificate
    lab.apt_install(FRESH, "systemd-resolved")
    assert lab.ssh(FRESH, "readlink /etc/resolv.conf").stdout.strip() == "../run/systemd/resolve/stub-resolv.conf"
    dc_ip = lab.ip(DC)
    extra = tmp_path / "join.yml"
    extra.touch(mode=0o600)  # private before the password is in it
    extra.write_text(f"ad_join_dns_servers: [{dc_ip}]\nad_join_admin_password: {ad['vault_lab_dc_admin_password']}\n")
    try:
        r, report = lab.hx_deploy("ad_join", "--limit", FRESH, "-e", f"@{extra}")
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        assert lab.ssh(FRESH, "readlink /etc/resolv.conf").stdout.strip() == "../run/systemd/resolve/stub-resolv.conf"
        assert lab.ssh(FRESH, "systemctl is-active systemd-resolved").stdout.strip() == "active"
        assert f"nameserver {dc_ip}" in lab.ssh(FRESH, "cat /run/systemd/resolve/resolv.conf").stdout
        # names of the domain resolve through resolved's stub (127.0.0.53), and the join found the DC by them
        assert lab.ssh(FRESH, f"getent hosts {DC}.{DOMAIN}").stdout.split()[0] == dc_ip
        assert lab.ssh(FRESH, "realm list --name-only").stdout.strip() == DOMAIN
        started = lab.ssh(FRESH, "systemctl show systemd-resolved -p ActiveEnterTimestampMonotonic --value").stdout
        r, again = lab.hx_deploy("ad_join", "--limit", FRESH, "-e", f"@{extra}")
        assert again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
        assert (
            lab.ssh(FRESH, "systemctl show systemd-resolved -p ActiveEnterTimestampMonotonic --value").stdout == started
        )
        lab.hx_deploy("ad_join", "--limit", FRESH, "-e", f"@{extra}", "-e", "ad_join_present=false")
        assert lab.ssh(FRESH, "realm list --name-only").stdout.strip() == ""
    finally:  # later tests expect the lab's plain resolver on this host
        lab.ssh(
            FRESH,
            "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq systemd-resolved >/dev/null; "
            "rm -f /etc/resolv.conf /etc/systemd/resolved.conf.d/hx-ad.conf; : > /etc/resolv.conf",
        )


# a front end that no other test here joins: a first join, as a new member's is
SPARE = "hx-web-04"
LOCAL = "hx-local-ops"  # a local account with a key, in a group sshd lets in


def test_members_take_their_time_from_the_dc_and_health_measures_it(lab, ad):
    """chrony on the DC serves time (its clock, not set: the lab's hosts share the machine's), a
    member selects the DC as its source within a minute, and health reports its offset."""
    lab.hx_deploy("hardening", "--limit", DC)
    lab.hx_deploy("site", "--limit", MEMBER)
    assert lab.host(DC).service("chrony").is_running and lab.host(MEMBER).service("chrony").is_running
    assert lab.host(DC).socket("udp://0.0.0.0:123").is_listening
    # the member's chrony may have asked before the DC served (the join's run) and be waiting out
    # its back-off: started again, it asks at once (iburst)
    lab.ssh(MEMBER, "systemctl restart chrony")
    selected = f"^* {lab.ip(DC)}"
    started = time.monotonic()
    while time.monotonic() - started < 60 and selected not in lab.ssh(MEMBER, "chronyc -n sources").stdout:
        time.sleep(2)
    sources = lab.ssh(MEMBER, "chronyc -n sources").stdout
    assert selected in sources, (
        sources + lab.ssh(DC, "chronyc serverstats; grep -E '^(allow|local)' /etc/chrony/chrony.conf").stdout
    )
    r = lab.hxinfra("health", "--env", "lab", "--limit", MEMBER, "--services", "chrony", "--json", check=False)
    (entry,) = json.loads(r.stdout)["hosts"]
    (check,) = [c for c in entry["checks"] if c["service"] == "chrony"]
    assert r.returncode == 0 and check["ok"], check
    assert check["output"][-1].startswith(f"selected {lab.ip(DC)}, offset "), check
    r, report = lab.hx_deploy("hardening", "--limit", f"{DC}:{MEMBER}", "--detailed-exitcode")
    assert r.returncode == 0, r.stderr[-3000:]  # a second run changes nothing


def ad_login(lab, user: str) -> subprocess.CompletedProcess[str]:
    """A key login of AD account ``user`` to the member through sshd (its key put in its home first)."""
    lab.ssh(
        MEMBER,
        f"install -d -m 700 -o {user} /home/{user} /home/{user}/.ssh && "
        f"install -m 600 -o {user} /root/.ssh/authorized_keys /home/{user}/.ssh/authorized_keys",
    )
    cmd = lab.lab.ssh_command(MEMBER, "id -un")
    cmd[-2] = cmd[-2].replace("root@", f"{user}@")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_only_the_allowed_ad_groups_log_in_and_sssd_itself_says_so(lab, ad):
    """The lab allows the AD group of its sudo rule (domain admins): administrator logs in over SSH
    and through su; alice, a plain domain user, is refused by both, su being PAM's account check
    in sssd itself (as root, nothing else asks); root still logs in."""
    lab.hx_deploy("site", "--limit", MEMBER)
    sssd_conf = lab.ssh(MEMBER, "grep -E '^(access_provider|simple_allow)' /etc/sssd/sssd.conf").stdout.split("\n")
    assert sssd_conf[:2] == ["access_provider = simple", "simple_allow_groups = domain admins"], sssd_conf
    allowed = ad_login(lab, "administrator")
    assert allowed.returncode == 0 and allowed.stdout.strip() == "administrator", allowed.stderr
    refused = ad_login(lab, "alice")
    assert refused.returncode != 0 and refused.stdout == "", refused.stdout
    su_ok = lab.ssh(MEMBER, "su -s /bin/sh administrator -c 'id -un'", check=False)
    assert su_ok.returncode == 0 and su_ok.stdout.strip() == "administrator", su_ok.stderr
    su_no = lab.ssh(MEMBER, "su -s /bin/sh alice -c 'id -un'", check=False)
    assert su_no.returncode != 0 and "alice" not in su_no.stdout, su_no.stdout + su_no.stderr
    assert "Permission denied" in su_no.stderr, su_no.stderr  # PAM's account phase: pam_sss said no
    assert lab.ssh(MEMBER, "id -un").stdout.strip() == "root"  # a local admin still logs in


def membership_files(lab) -> str:
    """What a join leaves on the member, with checksums (the keytab, sssd.conf), and realm's word."""
    return lab.ssh(
        MEMBER,
        "sha256sum /etc/krb5.keytab /etc/sssd/sssd.conf; realm list --name-only; ls /root/.hxinfra-join-* 2>&1; true",
    ).stdout


def test_a_member_whose_dc_is_down_is_never_joined_again_and_says_so(lab, ad):
    """Samba stopped on the DC under a joined member: the AD join fails on the member with one
    line naming the unreachable DC, it is not joined again (nothing of its join changes), and
    health says the same; with Samba back, a run changes nothing and AD users resolve within 60 s."""
    lab.hx_deploy("site", "--limit", MEMBER)  # a working member
    before = membership_files(lab)
    said = f"domain controller(s) {lab.ip(DC)} unreachable: membership not verified"
    lab.ssh(DC, "systemctl stop samba-ad-dc")
    try:
        r, report = lab.hx_deploy("ad_join", "--limit", MEMBER, check=False)
        assert r.returncode == 1
        (entry,) = report["hosts"]
        assert entry["status"] == "failed" and said in entry["cause"], entry
        assert "Already joined" not in r.stderr and "needs ad_join_admin_password" not in r.stderr
        assert membership_files(lab) == before  # keytab, sssd.conf and realm's word as they were
        lab.ssh(MEMBER, "getent passwd nobody-in-ad-$$ || true")  # sssd asks the DC, finds it gone: offline
        r, report = lab.hx_deploy("ad_join", "--limit", MEMBER, "--check", check=False)  # a check says the same
        assert r.returncode == 1 and said in report["hosts"][0]["cause"], report
        health = lab.hxinfra("health", "--env", "lab", "--limit", MEMBER, "--services", "sssd", check=False)
        assert health.returncode == 1 and said in health.stdout + health.stderr, health.stdout[-2000:]
    finally:
        lab.ssh(DC, "systemctl start samba-ad-dc")
    for _ in range(60):
        if dc_answers(lab):
            break
        time.sleep(1)
    assert dc_answers(lab), "the DC did not come back"
    # sssd back online by itself within 60 s (its cached users resolve offline too: online is the proof)
    online = f"sssctl domain-status -o {DOMAIN}"
    started = time.monotonic()
    while (
        time.monotonic() - started < 60 and "Online status: Online" not in lab.ssh(MEMBER, online, check=False).stdout
    ):
        time.sleep(2)
    assert "Online status: Online" in lab.ssh(MEMBER, online).stdout, f"offline {time.monotonic() - started:.0f} s"
    assert lab.ssh(MEMBER, "getent passwd administrator").stdout.startswith("administrator:")
    r, report = lab.hx_deploy("ad_join", "--limit", MEMBER, "--detailed-exitcode")
    assert r.returncode == 0 and report["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    assert membership_files(lab) == before


def sssd_says(lab) -> str:
    return lab.ssh(MEMBER, f"sssctl domain-status -o {DOMAIN}", check=False).stdout


def test_a_run_brings_an_offline_sssd_back_online_and_health_says_offline_until_then(lab, ad):
    """sssd put offline (SIGUSR1: offline for offline_timeout) with its DC up: health says sssd is
    offline, a run brings it back online at once and says so, and the next run changes nothing."""
    lab.hx_deploy("site", "--limit", MEMBER)  # a working member
    lab.ssh(MEMBER, "systemctl kill --kill-whom=main --signal=SIGUSR1 sssd.service")
    for _ in range(20):
        if "Online status: Offline" in sssd_says(lab):
            break
        time.sleep(0.2)
    assert "Online status: Offline" in sssd_says(lab)
    health = lab.hxinfra("health", "--env", "lab", "--limit", MEMBER, "--services", "sssd", check=False)
    assert health.returncode == 1 and f"sssd says Offline for {DOMAIN}" in health.stdout, health.stdout[-2000:]
    started = time.monotonic()
    r, report = lab.hx_deploy("ad_join", "--limit", MEMBER)
    (entry,) = report["hosts"]
    assert entry["changed"] == 1 and "Online status: Online" in sssd_says(lab), (entry, r.stderr[-3000:])
    assert time.monotonic() - started < 10  # not sssd's own retry timer
    assert lab.ssh(MEMBER, "getent passwd administrator").stdout.startswith("administrator:")
    r, again = lab.hx_deploy("ad_join", "--limit", MEMBER, "--detailed-exitcode")
    assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]


def test_a_member_the_dc_no_longer_knows_is_joined_again(lab, ad):
    """The member's computer account password reset on the DC (as a domain admin does to a
    machine it no longer trusts): the KDC refuses the machine key the member holds, so the next run
    joins it again (realm's stale configuration left first, the account reused); the one after
    changes nothing."""
    import secrets

    lab.hx_deploy("site", "--limit", MEMBER)
    account = lab.ssh(MEMBER, "klist -k /etc/krb5.keytab | awk '$2 ~ /\\$@/ {print $2; exit}'").stdout.strip()
    assert account.endswith(f"$@{REALM}"), account
    name = account.split("@")[0]
    lab.ssh(
        DC, f"samba-tool user setpassword {shlex.quote(name)} --newpassword={shlex.quote(secrets.token_hex(16))}Aa1"
    )
    refused = lab.ssh(MEMBER, f"KRB5CCNAME=MEMORY: kinit -k {shlex.quote(account)}", check=False)
    assert refused.returncode != 0 and "Preauthentication failed" in refused.stderr, refused.stderr
    r, report = lab.hx_deploy("ad_join", "--limit", MEMBER)
    assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
    assert lab.ssh(MEMBER, f"KRB5CCNAME=MEMORY: kinit -k {shlex.quote(account)}", check=False).returncode == 0
    assert lab.ssh(MEMBER, "realm list --name-only").stdout.strip() == DOMAIN
    r, report = lab.hx_deploy("ad_join", "--limit", MEMBER, "--detailed-exitcode")
    assert r.returncode == 0 and report["hosts"][0]["changed"] == 0, r.stderr[-3000:]


def local_login(lab) -> subprocess.CompletedProcess[str]:
    """A key login of the local account through sshd (PAM's account and session stacks, NSS)."""
    cmd = lab.lab.ssh_command(SPARE, "id -un")
    cmd[-2] = cmd[-2].replace("root@", f"{LOCAL}@")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def join_files(lab) -> str:
    """What a join writes, with checksums: the keytab, sssd.conf, the join's password file."""
    return lab.ssh(
        SPARE, "sha256sum /etc/krb5.keytab /etc/sssd/sssd.conf /root/.hxinfra-join-* 2>/dev/null; true"
    ).stdout


def local_accounts(lab) -> str:
    return lab.ssh(SPARE, f"getent passwd root {LOCAL}; getent shadow root {LOCAL}; getent group hx-ssh").stdout


def dc_answers(lab) -> bool:
    """The DC's own DNS has its LDAP service record and its LDAP and Kerberos ports listen."""
    r = lab.ssh(
        DC,
        f"host -t SRV _ldap._tcp.{DOMAIN} 127.0.0.1 >/dev/null && "
        "ss -Hltn | grep -q ':389 ' && ss -Hltn | grep -q ':88 '",
        check=False,
    )
    return r.returncode == 0


def test_the_dc_down_during_a_join_fails_clearly_and_the_member_keeps_its_local_logins(lab, ad, tmp_path):
    """Samba stopped on the DC while a new member joins: the run fails on that host with one line
    of cause, its local accounts, NSS and PAM are as they were (a local login still works), and no
    half-join is left; with Samba back, one run joins it and the next changes nothing."""
    dc_ip = lab.ip(DC)
    password = ad["vault_lab_dc_admin_password"]
    extra = secret_vars(tmp_path, ad_join_dns_servers=f"[{dc_ip}]", ad_join_admin_password=password)
    join = ("ad_join", "--limit", SPARE, "-e", extra)
    # the CA trust first, as the site orders it: sssd demands the DC's LDAP certificate (StartTLS)
    lab.hx_deploy("ca_trust", "--limit", SPARE)
    resolv = lab.ssh(SPARE, "cat /etc/resolv.conf").stdout
    lab.ssh(
        SPARE,
        f"groupadd -f hx-ssh && useradd -m -G hx-ssh -s /bin/bash {LOCAL} && install -d -m 700 -o {LOCAL} "
        f"/home/{LOCAL}/.ssh && install -m 600 -o {LOCAL} /root/.ssh/authorized_keys /home/{LOCAL}/.ssh/",
    )
    before = local_accounts(lab)
    assert local_login(lab).stdout.strip() == LOCAL
    files = join_files(lab)
    assert "/root/.hxinfra-join-" not in files
    lab.ssh(DC, "systemctl stop samba-ad-dc")
    try:
        r, report = lab.hx_deploy(*join, check=False)
        assert r.returncode == 1
        (entry,) = report["hosts"]
        assert entry["host"] == SPARE and entry["status"] == "failed", entry
        assert f"cannot discover AD domain {DOMAIN}" in entry["cause"] and "\n" not in entry["cause"], entry
        assert password not in r.stdout + r.stderr
        assert local_accounts(lab) == before  # the local accounts as they were
        login = local_login(lab)  # and a local login still works (sshd, PAM, NSS)
        assert login.returncode == 0 and login.stdout.strip() == LOCAL, login.stderr
        assert lab.ssh(SPARE, "realm list --name-only").stdout.strip() == ""  # not a member
        assert join_files(lab) == files  # no new keytab or sssd.conf (an earlier test's may stay), no password file
    finally:
        lab.ssh(DC, "systemctl start samba-ad-dc")
    try:
        for _ in range(60):
            if dc_answers(lab):
                break
            time.sleep(1)
        assert dc_answers(lab), "the DC did not come back"
        r, report = lab.hx_deploy(*join)
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        assert lab.ssh(SPARE, "realm list --name-only").stdout.strip() == DOMAIN
        # sssd, restarted by the join, goes online against a DC that has just started: a few seconds
        for _ in range(60):
            if lab.ssh(SPARE, "getent passwd administrator", check=False).stdout.startswith("administrator:"):
                break
            time.sleep(1)
        assert lab.ssh(SPARE, "getent passwd administrator").stdout.startswith("administrator:")
        assert local_login(lab).stdout.strip() == LOCAL  # local logins beside the domain's
        r, again = lab.hx_deploy(*join, "--detailed-exitcode")
        assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
        lab.hx_deploy(*join, "-e", "ad_join_present=false")
        assert lab.ssh(SPARE, "realm list --name-only").stdout.strip() == ""
    finally:  # later tests expect this host's own resolver back, and no extra account
        lab.ssh(SPARE, f"printf %s {shlex.quote(resolv)} > /etc/resolv.conf; userdel -r {LOCAL}", check=False)


def test_leave(lab, ad):
    r, report = lab.hx_deploy("site", "--limit", MEMBER, "-e", "ad_join_present=false")
    assert report["hosts"][0]["status"] == "changed"
    assert lab.ssh(MEMBER, "realm list --name-only").stdout.strip() == ""


# Kerberos logins to PostgreSQL (pg_auth_kerberos): Debian 12's cluster on hx-db-02, a client on hx-app-02
DB, APP = "hx-db-02", "hx-app-02"
DB_FQDN = f"{DB}.{DOMAIN}"


def test_kerberos_login_to_postgresql_with_a_ticket_and_refused_without(lab, ad):
    """After the domain join, the postgres service principal and its own keytab: the lab's AD user
    alice logs in with a ticket (GSSAPI, encrypted), without one she is refused."""
    lab.apt_install(APP, "postgresql-client-15")
    r, report = lab.hx_deploy("site", "--limit", f"{DB}:{APP}")  # the join, then the principal in one run
    keytab = lab.host(DB).file("/etc/postgresql/krb5.keytab")
    assert (keytab.user, keytab.group, keytab.mode) == ("postgres", "postgres", 0o600)
    principals = set(lab.ssh(DB, "klist -k /etc/postgresql/krb5.keytab | awk 'NR > 3 {print $2}'").stdout.split())
    assert principals == {f"postgres/{DB_FQDN}@LAB.HXINFRA.TEST"}  # its own keys only, not the host's
    r, again = lab.hx_deploy("site", "--limit", f"{DB}:{APP}", "--detailed-exitcode")
    assert all(h["changed"] == 0 for h in again["hosts"]), r.stderr[-3000:]
    password = ad["vault_lab_ad_user_password"]
    conninfo = f"host={DB_FQDN} dbname=postgres user=alice gssencmode=require connect_timeout=5"
    sql = "SELECT current_user, gss_authenticated, encrypted FROM pg_stat_gssapi WHERE pid = pg_backend_pid()"
    ok = lab.ssh(
        APP,
        f"printf '%s\\n' {shlex.quote(password)} | kinit alice@LAB.HXINFRA.TEST >/dev/null && "
        f"psql -X -At {shlex.quote(conninfo)} -c {shlex.quote(sql)}",
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "alice|t|t", ok.stderr
    refused = lab.ssh(
        APP,
        f"kdestroy -A; psql -X -At {shlex.quote(conninfo.replace('gssencmode=require', 'sslmode=disable'))}"
        " -c 'SELECT 1'",
        check=False,
    )
    assert refused.returncode != 0 and "rejects connection" in refused.stderr
    no_ticket = lab.ssh(APP, f"psql -X -At {shlex.quote(conninfo)} -c 'SELECT 1'", check=False)
    assert no_ticket.returncode != 0 and "GSSAPI encryption required" in no_ticket.stderr
