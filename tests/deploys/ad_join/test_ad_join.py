"""ad_join's pure parts: computer names, sudoers, nsswitch, krb5/sssd files, refusals."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from deploys.ad_join.config import (
    DEBIAN_NSSWITCH,
    DEFAULTS,
    check_data,
    computer_name,
    desired_config,
    nsswitch,
    sudoers,
)


def data(**kw):
    return {**DEFAULTS, "hx_domain": "dev-test.hana-x.ai", "hx_realm": "DEV-TEST.HANA-X.AI", **kw}


def test_computer_names_fit_netbios_and_never_collide():
    assert computer_name(data(), "hx-web-01") == "HX-WEB-01"
    long_a, long_b = (
        computer_name(data(), "hx-application-server-01"),
        computer_name(data(), "hx-application-server-02"),
    )
    assert len(long_a) <= 15 and len(long_b) <= 15 and long_a != long_b
    assert computer_name(data(ad_join_computer_name="web1"), "x") == "WEB1"
    assert check_data(data(ad_join_computer_name="much-too-long-name-1"))[0][0] == "ad_join_computer_name"


def test_sudo_rules_follow_the_name_format():
    rules = [{"group": "hx admins", "commands": "ALL"}, {"user": "alice", "commands": "/usr/bin/systemctl"}]
    assert (
        sudoers(data(ad_join_sudo_rules=rules))
        == "%hx\\ admins ALL=(ALL:ALL) ALL\nalice ALL=(ALL:ALL) /usr/bin/systemctl\n"
    )
    fq = sudoers(data(ad_join_sudo_rules=rules, ad_join_use_fqdn=True))
    assert fq.startswith("%hx\\ admins@dev-test.hana-x.ai ALL=") and "alice@dev-test.hana-x.ai ALL=" in fq
    assert check_data(data(ad_join_sudo_rules=[{"group": "a", "user": "b"}]))[0][0] == "ad_join_sudo_rules"


@pytest.mark.parametrize("home", ["/tmp", "/tmp/%u", "/var/tmp/", "home/%u"])
def test_fallback_homedir_never_tmp(home):
    assert check_data(data(ad_join_fallback_homedir=home))[0][0] == "ad_join_fallback_homedir"


def test_nsswitch_adds_sss_and_keeps_the_distros_sources():
    current = DEBIAN_NSSWITCH.replace(
        "hosts:          files dns", "hosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname"
    )
    out = nsswitch(current)
    assert "passwd:         files systemd sss" in out and "group:          files systemd sss" in out
    assert "hosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname" in out
    assert "sudoers:        files sss" in out and nsswitch(out) == out


def test_files_for_required_encryption():
    files = {
        f.path: f
        for f in desired_config(data(ad_join_sudo_rules=[{"group": "hx admins", "commands": "ALL"}]), "hx-web-01")
    }
    krb5, sssd = files["/etc/krb5.conf"].content, files["/etc/sssd/sssd.conf"]
    assert "default_realm = DEV-TEST.HANA-X.AI" in krb5 and "rdns = false" in krb5
    assert "permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96" in krb5 and "rc4" not in krb5
    assert sssd.mode == "0600" and "ldap_id_use_start_tls = True" in sssd.content
    assert "ldap_tls_reqcert = demand" in sssd.content and "use_fully_qualified_names = False" in sssd.content
    assert "ad_hostname = hx-web-01.dev-test.hana-x.ai" in sssd.content
    assert files["/etc/sudoers.d/hx-ad"].mode == "0440"
    relaxed = {f.path: f for f in desired_config(data(ad_join_require_encryption=False), "h")}
    assert (
        "start_tls" not in relaxed["/etc/sssd/sssd.conf"].content and "aes256" not in relaxed["/etc/krb5.conf"].content
    )


def test_resolver_drop_in_under_systemd_resolved_else_resolv_conf():
    from deploys.ad_join.config import resolver_files

    assert resolver_files(data(), resolved=True) == []  # no DNS servers in data: DNS left alone
    dns = data(ad_join_dns_servers=["10.0.0.5", "10.0.0.6"])
    (drop_in,) = resolver_files(dns, resolved=True)
    assert drop_in.path == "/etc/systemd/resolved.conf.d/hx-ad.conf"  # resolv.conf stays resolved's stub
    assert "managed by hxinfra" in drop_in.content.splitlines()[0]
    assert "DNS=10.0.0.5 10.0.0.6\n" in drop_in.content and "Domains=dev-test.hana-x.ai\n" in drop_in.content
    (plain,) = resolver_files(dns, resolved=False)
    assert plain.path == "/etc/resolv.conf"
    assert (
        "nameserver 10.0.0.5\nnameserver 10.0.0.6\n" in plain.content and "search dev-test.hana-x.ai" in plain.content
    )


def test_sssd_conf_mode_is_the_one_the_hosts_sssd_keeps():
    from deploys.ad_join.config import sssd_conf_mode

    assert sssd_conf_mode("Debian", "12") == "0600"  # SSSD 2.8 refuses anything else
    assert sssd_conf_mode("Debian", "13") == "0640"  # SSSD 2.10's unit makes it group-readable at each start
    assert sssd_conf_mode("Ubuntu", "24.04") == "0600" and sssd_conf_mode("Ubuntu", "25.04") == "0640"
    assert sssd_conf_mode("Debian", "") == "0600"  # testing/unstable: no VERSION_ID


OS_RELEASES = {  # /etc/os-release as each release ships it (the fields the deploys read)
    "debian 12": 'PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
    "debian 13": 'PRETTY_NAME="Debian GNU/Linux 13"\nID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n',
    "ubuntu 22.04": 'NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n',
    "ubuntu 24.04": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n',
}


@pytest.mark.parametrize("release", sorted(OS_RELEASES))
def test_packages_and_sssd_conf_follow_each_release_and_its_own_entry_wins(release):
    from deploys.ad_join.config import DEFAULTS, packages, plan
    from deploys.common import RELEASES, host_release

    assert set(OS_RELEASES) == set(RELEASES)  # every release the fleet runs is covered here
    distro, version = host_release(OS_RELEASES[release])
    assert f"{distro} {version}" == release
    assert packages(DEFAULTS, distro, version) == DEFAULTS["ad_join_packages"][distro]
    table = {**DEFAULTS["ad_join_packages"], release: ["sssd", "realmd"]}  # one release's own list
    assert packages({"ad_join_packages": table}, distro, version) == ["sssd", "realmd"]
    others = [r for r in OS_RELEASES if r != release]
    for other in others:
        assert packages({"ad_join_packages": table}, *host_release(OS_RELEASES[other])) != ["sssd", "realmd"]
    mode = {"debian 13": "0640"}.get(release, "0600")
    declared = {f.path: f for f in plan(data(hx_os_release=release), "hx-web-01")}["/etc/sssd/sssd.conf"]
    assert declared.mode == mode  # the plan renders the declared release's own sssd.conf mode


def test_a_host_release_without_packages_is_named_with_what_the_table_has():
    from deploys.ad_join.config import AdJoinError, check_data, packages

    with pytest.raises(AdJoinError, match=r"no entry for fedora 41 \(it has debian, ubuntu 24.04\)"):
        packages({"ad_join_packages": {"debian": ["sssd"], "ubuntu 24.04": ["sssd"]}}, "fedora", "41")
    for bad in ({"ubuntu\n24.04": ["sssd"]}, {"Ubuntu": ["sssd"]}, {"debian": "sssd"}, ["sssd"]):
        problems = check_data(data(ad_join_packages=bad))
        assert [k for k, _ in problems] == ["ad_join_packages"], (bad, problems)


# what kinit says, as MIT Kerberos words it, for each answer of the domain's KDC
KINIT = {
    "ok": "",
    "refused": "kinit: Client 'HX-APP-01$@LAB.HXINFRA.TEST' not found in Kerberos database while getting "
    "initial credentials",
    "wrong key": "kinit: Preauthentication failed while getting initial credentials",
    "unreachable": "kinit: Cannot contact any KDC for realm 'LAB.HXINFRA.TEST' while getting initial credentials",
    "no KDC in DNS": 'kinit: Cannot find KDC for realm "LAB.HXINFRA.TEST" while getting initial credentials',
    "clock": "kinit: Clock skew too great while getting initial credentials",
}


@pytest.fixture
def host_tools(tmp_path, monkeypatch):
    """realm, klist, kinit and sssctl as a joined member's, answering as ``answer`` says (a PATH of fakes);
    ``sssd`` "" is an sssd that does not run (sssctl fails, as it does then)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def answer(kinit: str, keytab: bool = True, sssd: str = "Online") -> None:
        sssctl = f"printf 'Online status: %s\\n\\nActive servers:\\nAD Global Catalog: dc\\n' {sssd}"
        scripts = {
            "sssctl": f'[ "$1 $2 $3" = "domain-status -o lab.hxinfra.test" ] || exit 2; {sssctl}'
            if sssd
            else "echo 'Unable to connect to system bus!' >&2; exit 1",
            "realm": "echo lab.hxinfra.test",
            "klist": "printf 'Keytab name: FILE:/etc/krb5.keytab\\nKVNO Principal\\n---- ----\\n"
            + ("   2 HX-APP-01$@LAB.HXINFRA.TEST\\n   2 host/HX-APP-01@LAB.HXINFRA.TEST\\n" if keytab else "")
            + "'",
            "kinit": f"printf '%s\\n' {shlex.quote(KINIT[kinit])} >&2; exit {0 if kinit == 'ok' else 1}",
        }
        for name, body in scripts.items():
            (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
            (bin_dir / name).chmod(0o755)

    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return answer


@pytest.mark.parametrize(
    ("kinit", "keytab", "valid", "unverified"),
    [
        ("ok", True, True, False),
        ("refused", True, False, False),  # the DC says the account is gone: join again
        ("wrong key", True, False, False),
        ("unreachable", True, False, True),  # nobody answered: never join again
        ("no KDC in DNS", True, False, True),
        ("clock", True, False, True),
        ("unreachable", False, False, False),  # no machine key here: not a member, whatever the DC
    ],
)
@pytest.mark.parametrize("realm_always", [True, False])
def test_membership_is_the_kdcs_word_and_silence_is_no_answer(
    host_tools, kinit, keytab, valid, unverified, realm_always
):
    """realm's word is asked always, or (a run that keeps a member) only when the KDC does not accept the key."""
    from deploys.ad_join.facts import DomainMembership

    host_tools(kinit, keytab)
    fact = DomainMembership()
    command = fact.command("lab.hxinfra.test", realm_always)
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    state = fact.process(out.stdout.splitlines())
    listed = None if valid and not realm_always else True
    assert (state["listed"], state["valid"], state["unverified"]) == (listed, valid, unverified)
    assert state["why"] == ("" if valid or not keytab else KINIT[kinit])


@pytest.mark.parametrize("sssd", ["Online", "Offline", ""])
def test_membership_carries_sssds_own_word_on_the_domain(host_tools, sssd):
    from deploys.ad_join.facts import DomainMembership

    host_tools("ok", sssd=sssd)
    fact = DomainMembership()
    out = subprocess.run(["sh", "-c", fact.command("lab.hxinfra.test")], capture_output=True, text=True, check=True)
    assert fact.process(out.stdout.splitlines())["sssd"] == sssd


@pytest.mark.parametrize(("sssd", "comes_back"), [("Online", False), ("Offline", True), ("Offline", False)])
def test_the_wait_for_sssd_nudges_it_once_and_fails_by_name(host_tools, tmp_path, sssd, comes_back):
    """sssd online: done at once; offline: SIGUSR2 to its main process once, then online when it
    comes back, else a failure that names the domain and what to look at."""
    from deploys.ad_join.operations import online_script

    host_tools("ok", sssd=sssd)
    bin_dir = Path(os.environ["PATH"].split(":")[0])
    calls = tmp_path / "systemctl-calls"
    # systemctl as sssd's: the signal is recorded and, when it comes back, sssctl then says Online
    back = f"sed -i 's/Offline/Online/' {bin_dir / 'sssctl'}; " if comes_back else ""
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n{back}\n')
    (bin_dir / "systemctl").chmod(0o755)
    r = subprocess.run(["sh", "-c", online_script("lab.hxinfra.test", 3)], capture_output=True, text=True, timeout=30)
    nudged = calls.read_text().splitlines() if calls.exists() else []
    assert nudged == ([] if sssd == "Online" else ["kill --kill-whom=main --signal=SIGUSR2 sssd.service"])
    assert (r.returncode == 0) == (sssd == "Online" or comes_back), r.stderr
    if r.returncode:
        assert "sssd still not online for lab.hxinfra.test after 3s" in r.stderr and "CA trust" in r.stderr


@pytest.mark.parametrize("sssd", ["Online", "Offline"])
def test_health_fails_while_sssd_is_offline(host_tools, sssd):
    from deploys.ad_join.config import DEFAULTS, health

    host_tools("ok", sssd=sssd)
    data = {**DEFAULTS, "ad_join_domain": "lab.hxinfra.test"}
    (check,) = [c for c in health(data, "hx-app-01") if c.name.startswith("sssd online")]
    r = subprocess.run(["sh", "-c", check.command], capture_output=True, text=True)
    assert (r.returncode == 0) == (sssd == "Online"), r.stdout + r.stderr
    assert f"sssd says {sssd}" in r.stdout


@pytest.mark.parametrize("kinit", ["ok", "refused", "unreachable"])
def test_health_names_unreachable_controllers_as_not_verified(host_tools, kinit):
    from deploys.ad_join.config import DEFAULTS, health

    host_tools(kinit)
    data = {**DEFAULTS, "ad_join_domain": "lab.hxinfra.test", "ad_join_dns_servers": ["10.0.0.1", "10.0.0.2"]}
    (check,) = [c for c in health(data, "hx-app-01") if c.name.startswith("member of")]
    r = subprocess.run(["sh", "-c", check.command], capture_output=True, text=True)
    assert (r.returncode == 0) == (kinit == "ok")
    said = "domain controller(s) 10.0.0.1, 10.0.0.2 unreachable: membership not verified"
    assert (said in r.stdout) == (kinit == "unreachable"), r.stdout


def _sssd(**kw):
    return {f.path: f for f in desired_config(data(**kw), "hx-web-01")}["/etc/sssd/sssd.conf"].content


def test_logins_are_limited_in_sssd_to_the_allowed_groups_and_the_sudo_rules_names():
    sssd = _sssd(
        ad_join_allowed_groups=["hx operators", "hx admins"],
        ad_join_sudo_rules=[{"group": "hx admins", "commands": "ALL"}, {"user": "eve", "commands": "ALL"}],
    )
    assert "access_provider = simple" in sssd and "access_provider = ad" not in sssd
    assert "simple_allow_groups = hx operators, hx admins\n" in sssd  # each once, in order
    assert "simple_allow_users = eve\n" in sssd
    fqdn = _sssd(ad_join_use_fqdn=True, ad_join_allowed_groups=["ops"])
    assert "simple_allow_groups = ops@dev-test.hana-x.ai\n" in fqdn and "simple_allow_users" not in fqdn
    nobody = _sssd()  # no group and no sudo rule: no AD account logs in
    assert "access_provider = deny" in nobody and "simple_allow" not in nobody


@pytest.mark.parametrize("bad", ["ops, everyone", "ops\nsimple_allow_groups = all", "ops:x"])
def test_an_allowed_group_that_would_widen_the_list_is_refused(bad):
    from deploys.ad_join.config import check_data

    problems = check_data(data(ad_join_allowed_groups=[bad]))
    assert [k for k, _ in problems] == ["ad_join_allowed_groups"], problems
