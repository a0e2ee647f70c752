"""Faults during real runs on lab hosts: a full disk, a cut network, a dead apt proxy.

Each test injects the fault into a run (or just before the step it hits), then checks what an
operator relies on: the run names the host and one line of cause, the other hosts are done, the
services keep answering with their last good config (a real client during and after), no
half-written file or held lock is left, and once the fault is gone one run converges and the
next finds nothing to do. The domain controller down during a join is in test_ad_join_lab.py,
PostgreSQL stopped during a pg_auth run and the load test of a full site run in test_webui_lab.py.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time

import pytest

from hxinfra.lab.host import gateway, lab_root
from hxinfra.lab.network import PROXY_PORT, proxy_up

from .conftest import SMALL_DISKS, run_until

pytestmark = pytest.mark.lab

WEB, DB, CLIENT = "hx-web-02", "hx-db-02", "hx-app-01"
assert WEB in SMALL_DISKS and DB in SMALL_DISKS  # the hosts whose disk the lab lets a test fill
SITE = "/etc/nginx/sites-available/webui.conf"
HBA = "/etc/postgresql/15/main/pg_hba.conf"
LEFTOVERS = (
    "find / -xdev \\( -name '*.hxinfra-new' -o -name '*.hxinfra-part' \\) -print 2>/dev/null; "
    "find /tmp -name 'hxinfra-*' -print 2>/dev/null; dpkg --audit; "
    "lslocks --noheadings -o PATH | grep -E '/var/lib/(dpkg|apt)/' || true"
)


def leftovers(lab, name: str) -> str:
    """Half-written files, staged copies, half-configured packages and held package locks."""
    return lab.ssh(name, LEFTOVERS).stdout.strip()


def fingerprint(lab, name: str, *paths: str) -> str:
    """The managed files and every kept version (what ``restore --config`` would put back)."""
    files = " ".join(shlex.quote(p) for p in paths)
    return lab.ssh(name, f"sha256sum {files}; find /var/backups/hxinfra -type f -exec sha256sum {{}} + | sort").stdout


def http_status(lab, name: str) -> str:
    r = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", f"http://{lab.ip(name)}/"],
        capture_output=True,
        text=True,
    )
    return r.stdout


def pg_login(lab, password: str) -> subprocess.CompletedProcess[str]:
    conninfo = (
        f"host={DB}.lab.hxinfra.test hostaddr={lab.ip(DB)} dbname=hx_webui user=hx_webui sslmode=verify-full "
        "sslrootcert=/etc/ssl/certs/ca-certificates.crt connect_timeout=5 gssencmode=disable"
    )
    cmd = f"PGPASSWORD={shlex.quote(password)} psql -X -At {shlex.quote(conninfo)} -c 'SELECT current_user'"
    return lab.ssh(CLIENT, cmd, check=False)


@pytest.fixture
def full_disks(lab):
    """Fill the filesystem under / (the host's own disk: /etc and /var) of WEB and DB until writes fail."""

    def fill() -> None:
        for name in (WEB, DB):
            lab.ssh(
                name,
                "a=$(df -B1 --output=avail / | tail -1); fallocate -l $(( a > 1048576 ? a - 1048576 : 4096 )) "
                "/var/hx-fill || true; dd if=/dev/zero of=/var/hx-fill-rest bs=4k 2>/dev/null || true; sync; "
                "test $(df -B1 --output=avail / | tail -1) -lt 65536",
            )

    try:
        yield fill
    finally:
        for name in (WEB, DB):
            lab.ssh(name, "rm -f /var/hx-fill /var/hx-fill-rest", check=False)


def test_a_full_disk_fails_the_run_and_the_services_keep_their_config(lab, full_disks):
    lab.apt_install(CLIENT, "postgresql-client-15")
    password = lab.secret("vault_lab_pg_webui_password")
    lab.hx_deploy("nginx", "--limit", WEB)
    lab.hx_deploy("site", "--limit", DB)
    rules = (
        "{pg_auth_hba: [{database: hx_webui, user: hx_webui, group: application_servers}, "
        f"{{database: hx_webui, user: hx_webui, address: {lab.ip(WEB)}/32}}]}}"
    )
    nginx_change, pg_change = (
        ("nginx", "--limit", WEB, "-e", "nginx_client_max_body_size=77m"),
        (
            "pg_auth",
            "--limit",
            DB,
            "-e",
            rules,
        ),
    )
    before = {WEB: fingerprint(lab, WEB, SITE), DB: fingerprint(lab, DB, HBA)}
    assert http_status(lab, WEB) == "200" and pg_login(lab, password).returncode == 0

    # a cluster in steady state has recycled WAL segments ready for its next switch; a new one has
    # none and would need a fresh 16 MB file on the full disk, where PostgreSQL stops (PANIC), as
    # its manual says: two switches and checkpoints give it the steady state first
    lab.ssh(DB, "runuser -u postgres -- psql -X -qAt" + " -c 'SELECT pg_switch_wal()' -c CHECKPOINT" * 2)
    full_disks()
    for change, name in ((nginx_change, WEB), (pg_change, DB)):
        r, report = lab.hx_deploy(*change, check=False)
        assert r.returncode == 1, r.stderr[-3000:]
        (entry,) = report["hosts"]
        assert entry["host"] == name and entry["status"] == "failed"
        assert "No space left on device" in entry["cause"] and "\n" not in entry["cause"], entry
        assert f"cause: {entry['cause']}" in r.stderr  # the summary says it too, under the host
        # served with the old config during the fault, and nothing half-written beside it
        assert http_status(lab, WEB) == "200"
        login = pg_login(lab, password)
        assert login.returncode == 0, (
            login.stderr + lab.ssh(DB, "tail -n 20 /var/log/postgresql/*.log", check=False).stdout
        )
        assert fingerprint(lab, name, SITE if name == WEB else HBA) == before[name]
        assert leftovers(lab, name) == ""
    lab.ssh(WEB, "nginx -t")  # the config on disk is still one nginx accepts

    for name in (WEB, DB):
        lab.ssh(name, "rm -f /var/hx-fill /var/hx-fill-rest")
    for change in (nginx_change, pg_change):
        r, report = lab.hx_deploy(*change)
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        r, again = lab.hx_deploy(*change, "--detailed-exitcode")
        assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    assert "client_max_body_size 77m;" in lab.ssh(WEB, f"cat {SITE}").stdout
    assert f"{lab.ip(WEB)}/32" in lab.ssh(DB, f"cat {HBA}").stdout
    assert http_status(lab, WEB) == "200" and pg_login(lab, password).returncode == 0
    # back to the inventory's settings for the tests that follow
    lab.hx_deploy("nginx", "--limit", WEB)
    lab.hx_deploy("pg_auth", "--limit", DB)


NS_CUT = (
    "add table inet hxfault { chain i { type filter hook input priority -400; policy drop; }; "
    "chain o { type filter hook output priority -400; policy drop; }; }"
)
CUT_HOST, OTHERS = "hx-web-03", ("hx-web-04",)
ANCHOR = "/usr/local/share/ca-certificates/hx-lab-root-ca.crt"


def test_a_host_cut_off_mid_run_is_unreachable_and_the_others_finish(lab):
    """Every packet of one host dropped in its own namespace for 30 s, from the moment the run
    starts writing the CA anchor it lacks: the run marks it unreachable (within the link's 20 s),
    finishes the other host, and the next run converges it."""
    hosts = (CUT_HOST, *OTHERS)
    limit = [a for h in hosts for a in ("--limit", h)]
    lab.hx_deploy("site", *limit)
    lab.ssh(CUT_HOST, f"rm -f {ANCHOR}")  # drift: the run has something to do on the host it loses
    ns = lab.lab.get(CUT_HOST).netns
    restored = threading.Event()

    def restore() -> None:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "hxfault"], capture_output=True)
        restored.set()

    def cut() -> None:
        subprocess.run(["ip", "netns", "exec", ns, "nft", NS_CUT], check=True)
        threading.Timer(30, restore).start()

    t0 = time.monotonic()
    try:
        r, report, seen = run_until(
            lab,
            ["deploy", "site", "--env", "lab", *limit],
            "Install the CA certificates of ca_trust_certificates",
            cut,
        )
        took = time.monotonic() - t0
    finally:
        restored.wait(40)
        restore()
    assert seen, r.stderr[-3000:]
    assert r.returncode == 1
    status = {h["host"]: h for h in report["hosts"]}
    assert status[CUT_HOST]["status"] == "unreachable", status
    assert "connection lost during the run" in status[CUT_HOST]["cause"], status[CUT_HOST]
    for other in OTHERS:
        assert status[other]["status"] == "ok" and status[other]["failed"] == 0, status[other]
    assert took < 90, took  # found out in seconds, not after TCP's quarter hour
    assert "1 ok, 1 unreachable" in r.stderr

    lab.ssh(CUT_HOST, "true")  # it answers again
    assert leftovers(lab, CUT_HOST) == ""
    r, report = lab.hx_deploy("site", *limit)
    assert {h["host"]: h["status"] for h in report["hosts"]} == {CUT_HOST: "changed", **dict.fromkeys(OTHERS, "ok")}
    assert lab.host(CUT_HOST).file(ANCHOR).exists
    r, again = lab.hx_deploy("site", *limit, "--detailed-exitcode")
    assert r.returncode == 0 and all(h["changed"] == 0 for h in again["hosts"]), r.stderr[-3000:]


FIRST = "hx-web-04"


@contextlib.contextmanager
def proxy_down():
    """The lab's apt proxy (the tinyproxy this lab started, by its PID) stopped; started again after."""
    pidfile = lab_root() / "net" / "proxy.pid"
    os.kill(int(pidfile.read_text()), signal.SIGTERM)
    time.sleep(1)
    try:
        yield
    finally:
        proxy_up(lab_root())


def node_exporter(lab, *args: str, check: bool = True):
    on = f"{{node_exporter_enabled: true, node_exporter_scrapers: [{lab.ip('hx-api-01')}/32]}}"
    return lab.hx_deploy("node_exporter", "--limit", FIRST, "-e", on, *args, check=check)


def test_the_apt_proxy_down_during_a_first_install_names_it_and_configures_nothing(lab):
    host = lab.host(FIRST)
    assert not host.package("prometheus-node-exporter").is_installed  # a first install
    # no package lists yet, as on a new host: apt must reach its proxy to install anything
    lab.ssh(FIRST, "rm -rf /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp")
    try:
        with proxy_down():
            for _ in range(2):  # a second try fails the same way, not with "Unable to locate package"
                r, report = node_exporter(lab, check=False)
                assert r.returncode == 1
                (entry,) = report["hosts"]
                assert entry["status"] == "failed", entry  # the host answers; its package source does not
                assert "the package lists could not be refreshed" in entry["cause"], entry
                assert f"{gateway()}:{PROXY_PORT}" in entry["cause"], entry  # apt's own line names the proxy
                assert not host.package("prometheus-node-exporter").is_installed
                assert not host.file("/etc/default/prometheus-node-exporter").exists  # nothing half-configured
                assert not host.file("/var/lib/apt/periodic/update-success-stamp").exists  # no false "fresh"
                assert leftovers(lab, FIRST) == ""
        r, report = node_exporter(lab)
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        assert host.service("prometheus-node-exporter").is_running
        r, again = node_exporter(lab, "--detailed-exitcode")
        assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    finally:  # the exporter is not part of this host's role: removed for the tests that follow
        lab.ssh(FIRST, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq prometheus-node-exporter >/dev/null")


PRIMARY, APP, FRONT = "hx-db-01", "hx-app-01", "hx-web-01"
PG_SERVICE = "postgresql@17-main"
PRIMARY_HBA = "/etc/postgresql/17/main/pg_hba.conf"
VERIFIERS = (
    "runuser -u postgres -- psql -XAtc \"SELECT rolname || ' ' || encode(sha256(convert_to(rolpassword, 'UTF8')), "
    "'hex') FROM pg_authid WHERE rolpassword IS NOT NULL ORDER BY 1\""
)
REPORT_PASSWORD = "Report-Pass-2026x"


def role_change(tmp_path, present: bool = True) -> str:
    """The lab's roles and rules plus a reporting role that logs in from the application servers
    (an -e @file, 0600: it holds a password)."""
    f = tmp_path / "pg-change.yml"
    f.touch(mode=0o600)
    f.write_text(
        "pg_auth_roles:\n"
        '  - {name: hx_webui, password: "{{ vault_lab_pg_webui_password }}"}\n'
        '  - {name: litellm, password: "{{ vault_lab_pg_litellm_password }}"}\n'
        "  - {name: alice, login: true}\n"
        f"  - {{name: hx_report, password: {REPORT_PASSWORD}, present: {str(present).lower()}}}\n"
        "pg_auth_hba:\n"
        "  - {database: hx_webui, user: hx_webui, group: application_servers}\n"
        "  - {database: litellm, user: litellm, group: api_servers}\n"
        "  - {type: hostgssenc, database: postgres, user: alice, group: application_servers, method: gss,\n"
        '     options: "include_realm=0 krb_realm={{ hx_realm }}"}\n'
        + ("  - {database: postgres, user: hx_report, group: application_servers}\n" if present else "")
    )
    return f"@{f}"


def primary_login(lab, user: str, password: str, db: str = "hx_webui") -> subprocess.CompletedProcess[str]:
    conninfo = (
        f"host={lab.ip(PRIMARY)} dbname={db} user={user} sslmode=verify-full connect_timeout=5 "
        "sslrootcert=/etc/ssl/certs/ca-certificates.crt gssencmode=disable"
    )
    cmd = f"PGPASSWORD={shlex.quote(password)} psql -X -At {shlex.quote(conninfo)} -c 'SELECT current_user'"
    return lab.ssh(APP, cmd, check=False)


def webui_database(lab) -> bool:
    """The web UI's own health (through nginx) says its database answers."""
    import json

    r = lab.curl_https(FRONT, "/health")
    try:
        return json.loads(r.stdout)["database"]["ok"] is True
    except (ValueError, KeyError, TypeError):
        return False


def wait_for(check, seconds: int = 60) -> bool:
    for _ in range(seconds):
        if check():
            return True
        time.sleep(1)
    return check()


@pytest.mark.parametrize(
    ("stopped_at", "rules_after_fault"),
    [("Write the PostgreSQL drop-in and pg_hba.conf", "old"), ("Create/alter roles, then databases", "new")],
    ids=["at-the-config-check", "at-the-roles"],
)
def test_postgresql_stopped_during_a_pg_auth_run_loses_no_role_and_no_rule(
    lab, tmp_path, stopped_at, rules_after_fault
):
    """PostgreSQL stopped in the middle of a pg_auth run that adds a role and a rule: the run fails
    on the database host alone with one line of cause, no role's password changes, pg_hba.conf on
    disk is the old or the new one (never none, never half), and one run brings the cluster back
    with the new rules and roles; the web UI reconnects by itself."""
    lab.apt_install(APP, "postgresql-client-15")
    lab.hx_deploy("site", "--limit", FRONT)
    webui = lab.secret("vault_lab_pg_webui_password")
    assert webui_database(lab) and primary_login(lab, "hx_webui", webui).returncode == 0
    verifiers = lab.ssh(PRIMARY, VERIFIERS).stdout
    old_rules = lab.ssh(PRIMARY, f"cat {PRIMARY_HBA}").stdout
    change = ["deploy", "pg_auth", "--env", "lab", "--limit", PRIMARY, "-e", role_change(tmp_path)]

    r, report, seen = run_until(
        lab, change, stopped_at, lambda: lab.ssh(PRIMARY, f"systemctl stop {PG_SERVICE}"), pause=True
    )
    assert seen, r.stderr[-3000:]
    assert r.returncode == 1, r.stderr[-3000:]
    (entry,) = report["hosts"]
    assert entry["host"] == PRIMARY and entry["status"] == "failed", entry
    assert entry["cause"] and "\n" not in entry["cause"], entry
    if rules_after_fault == "old":  # PostgreSQL's check needs the server: it says it is not there
        assert entry["cause"].startswith("hxinfra: validation failed (PostgreSQL's own check"), entry
        assert "previous config restored: " in entry["cause"] and "5432" in entry["cause"], entry
    print(f"pg stopped at {stopped_at!r}: cause: {entry['cause']}")
    assert REPORT_PASSWORD not in r.stdout + r.stderr and webui not in r.stdout + r.stderr
    rules = lab.ssh(PRIMARY, f"cat {PRIMARY_HBA}").stdout
    assert ("hx_report" in rules) == (rules_after_fault == "new"), rules
    if rules_after_fault == "old":
        assert rules == old_rules
    assert leftovers(lab, PRIMARY) == ""
    assert lab.ssh(PRIMARY, "find /var/backups/hxinfra/postgresql -name 'roles-*' -size 0 -print").stdout == ""
    assert not webui_database(lab)  # the fault is real: the web UI's database is gone

    try:
        r, report = lab.hx_deploy(*change[1:])  # the cluster comes back, then the change lands
        assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
        assert lab.host(PRIMARY).service(PG_SERVICE).is_running
        assert "hx_report" in lab.ssh(PRIMARY, f"cat {PRIMARY_HBA}").stdout
        after = lab.ssh(PRIMARY, VERIFIERS).stdout
        kept = [line for line in after.splitlines() if not line.startswith("hx_report ")]
        assert kept == verifiers.splitlines()  # every earlier role keeps its password
        assert primary_login(lab, "hx_report", REPORT_PASSWORD, "postgres").returncode == 0
        assert primary_login(lab, "hx_webui", webui).returncode == 0
        assert wait_for(lambda: webui_database(lab)), lab.curl_https(FRONT, "/health").stdout  # reconnected
        r, again = lab.hx_deploy(*change[1:], "--detailed-exitcode")
        assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]
    finally:  # the inventory's roles and rules again, the reporting role dropped
        lab.ssh(PRIMARY, f"systemctl start {PG_SERVICE}", check=False)
        lab.hx_deploy("pg_auth", "--limit", PRIMARY, "-e", role_change(tmp_path, present=False))
        lab.hx_deploy("pg_auth", "--limit", PRIMARY)
    assert lab.ssh(PRIMARY, f"cat {PRIMARY_HBA}").stdout == old_rules
    assert lab.ssh(PRIMARY, VERIFIERS).stdout == verifiers
