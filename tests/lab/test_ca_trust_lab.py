"""CA trust on real hosts: TLS proven with curl and openssl, rotation, and refusals before any host is touched."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hxinfra.pki import LocalCA

pytestmark = pytest.mark.lab

WEB, CLIENT = "hx-web-01", "hx-web-02"
FQDN = f"{WEB}.lab.hxinfra.test"
ANCHORS = "/usr/local/share/ca-certificates"


def client_curl(lab, *args: str):
    url = f"https://{FQDN}/"
    return lab.ssh(
        CLIENT,
        shlex.join(["curl", "-sS", "--max-time", "10", "--resolve", f"{FQDN}:443:{lab.ip(WEB)}", *args, url]),
        check=False,
    )


def test_curl_trusts_the_web_host_only_after_ca_trust(lab):
    lab.apt_install(CLIENT, "curl")
    r, report = lab.hx_deploy("site", "--limit", WEB)  # ca_trust + nginx with its CA-issued certificate
    before = client_curl(lab)
    assert before.returncode == 60 and "certificate" in before.stderr  # untrusted issuer, no -k
    assert lab.ssh(CLIENT, f"test -e {ANCHORS}/hx-lab-root-ca.crt", check=False).returncode == 1

    r, first = lab.hx_deploy("site", "--limit", CLIENT)
    assert first["hosts"][0]["status"] == "changed", r.stderr[-3000:]
    after = client_curl(lab)
    assert after.returncode == 0 and "HX web UI" in after.stdout, after.stderr
    handshake = lab.ssh(
        CLIENT,
        f"openssl s_client -connect {lab.ip(WEB)}:443 -servername {FQDN} "
        f"-verify_hostname {FQDN} -verify_return_error </dev/null 2>&1",
        check=False,
    )
    assert handshake.returncode == 0 and "Verify return code: 0 (ok)" in handshake.stdout
    # the web host's own certificate verifies against the system store, and TLS < 1.2 is refused
    assert lab.ssh(WEB, "openssl verify /etc/ssl/hx/webui.crt").stdout.strip() == "/etc/ssl/hx/webui.crt: OK"
    assert lab.curl_https(WEB, "/", "--tls-max", "1.1", "--tlsv1.0").returncode != 0
    assert "TLSv1.3" in lab.curl_https(WEB, "/", "-v").stderr
    key = lab.host(WEB).file("/etc/ssl/hx/private/webui.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    # the anchor, its hash link, the audit line, and the expiry monitor scheduled and passing
    client = lab.host(CLIENT)
    anchor = client.file(f"{ANCHORS}/hx-lab-root-ca.crt")
    assert anchor.mode == 0o644 and anchor.contains("^# managed by hxinfra (ca_trust)")
    assert client.file("/var/log/hx/ca-trust/changes.log").contains("hx-lab-root-ca=")
    assert client.service("hx-ca-trust-expiry.timer").is_enabled
    lab.ssh(CLIENT, "systemctl start hx-ca-trust-expiry.service")
    assert "ok until" in lab.ssh(CLIENT, "tail -1 /var/log/hx/ca-trust/expiry.log").stdout

    for name in (WEB, CLIENT):
        r, again = lab.hx_deploy("site", "--limit", name, "--detailed-exitcode")
        assert again["hosts"][0]["changed"] == 0, r.stderr[-3000:]


def test_bad_cas_fail_before_any_host_is_touched(lab, tmp_path):
    good = lab.ca_file
    expired = LocalCA(tmp_path / "expired")
    expired.init("Expired CA", days=0)
    leaf, _ = LocalCA(lab.ca_file.rsplit("/", 1)[0]).issue("not-a-ca", ["not-a-ca.example"])
    cases = {
        f"[{{name: hx-lab-root-ca, file: {good}, sha256: '{'00' * 32}'}}]": "does not match the pin",
        f"[{{name: old, file: {expired.cert_path}}}]": "expired on",
        f"[{{name: leaf, file: {leaf}}}]": "not a CA certificate",
    }
    stamp = lab.ssh(CLIENT, f"stat -c %Y {ANCHORS}", check=False).stdout
    for value, message in cases.items():
        r = lab.hxinfra("deploy", "site", "--env", "lab", "-e", f"{{ca_trust_certificates: {value}}}", check=False)
        assert r.returncode == 1 and message in r.stderr and "Connecting" not in r.stderr, r.stderr[-2000:]
    assert lab.ssh(CLIENT, f"stat -c %Y {ANCHORS}", check=False).stdout == stamp


def test_rotating_the_ca_replaces_the_old_one(lab, tmp_path):
    new = LocalCA(tmp_path / "new")
    new.init("HX Rotated Root CA")
    rotated = f"{{ca_trust_certificates: [{{name: hx-rotated-ca, file: {new.cert_path}}}]}}"
    r, report = lab.hx_deploy("site", "--limit", CLIENT, "-e", rotated)
    assert report["hosts"][0]["status"] == "changed"
    listing = lab.ssh(CLIENT, f"ls {ANCHORS}").stdout.split()
    assert "hx-rotated-ca.crt" in listing and "hx-lab-root-ca.crt" not in listing
    link = lab.ssh(
        CLIENT, f"readlink -f /etc/ssl/certs/$(openssl x509 -noout -subject_hash -in {ANCHORS}/hx-rotated-ca.crt).0"
    )
    assert link.stdout.strip() == f"{ANCHORS}/hx-rotated-ca.crt"
    assert client_curl(lab).returncode == 60  # the web host's issuer is no longer trusted
    r, back = lab.hx_deploy("site", "--limit", CLIENT)  # and back to the lab CA
    assert client_curl(lab).returncode == 0
    assert "hx-rotated-ca.crt" not in lab.ssh(CLIENT, f"ls {ANCHORS}").stdout


def test_ca_fetched_from_the_ca_host_by_the_controller(lab):
    """`from_ca_host`: the controller reads the CA over SSH from the CA host and verifies it first."""
    ca_host, target = "hx-web-04", "hx-web-03"
    pem = Path(lab.ca_file).read_text()
    lab.ssh(ca_host, f"mkdir -p /root/pki && cat > /root/pki/ca.crt <<'EOF'\n{pem}EOF")
    entry = "{ca_trust_certificates: [{name: hx-fetched-ca, from_ca_host: true}]}"
    r, report = lab.hx_deploy(
        "ca_trust",
        "--limit",
        target,
        "-e",
        entry,
        "-e",
        f"ca_trust_ca_host={ca_host}",
        "-e",
        "ca_trust_ca_host_path=/root/pki/ca.crt",
    )
    assert report["hosts"][0]["status"] == "changed"
    assert lab.ssh(target, f"tail -n +3 {ANCHORS}/hx-fetched-ca.crt").stdout.strip() == pem.strip()
    # a pin that does not match what the CA host serves: refused, nothing installed
    r, report = lab.hx_deploy(
        "ca_trust",
        "--limit",
        target,
        "-e",
        f"{{ca_trust_certificates: [{{name: hx-other-ca, from_ca_host: true, sha256: '{'ab' * 32}'}}]}}",
        "-e",
        f"ca_trust_ca_host={ca_host}",
        "-e",
        "ca_trust_ca_host_path=/root/pki/ca.crt",
        check=False,
    )
    assert r.returncode == 1 and "does not match the pin" in r.stderr
    assert "hx-other-ca.crt" not in lab.ssh(target, f"ls {ANCHORS}").stdout
    lab.hx_deploy("ca_trust", "--limit", target)  # back to the lab CA


def served_days(lab, name: str) -> int:
    """Days left on the certificate nginx serves, as a TLS client sees it."""
    import datetime as dt
    import subprocess

    fqdn = lab.lab.get(name).fqdn
    pem = subprocess.run(
        ["openssl", "s_client", "-connect", f"{lab.ip(name)}:443", "-servername", fqdn],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=pem, capture_output=True, text=True).stdout
    when = dt.datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
    return (when - dt.datetime.now(dt.UTC)).days


def test_a_certificate_near_its_end_is_renewed_deployed_and_served(lab):
    """hxinfra pki renew: a web certificate with 10 days left is issued again by the lab CA, deployed
    by ca_trust, nginx reloads, and clients get the new one."""
    from hxinfra.lab.inventory import lab_ca

    web = WEB
    host = lab.lab.get(web)
    lab.hx_deploy("site", "--limit", web)
    lab_ca(lab.lab).issue(web, [host.fqdn, web], [host.ip], days=10)
    lab.hx_deploy("ca_trust", "--limit", web)
    assert served_days(lab, web) <= 10
    r = lab.hxinfra("pki", "expiry", "--env", "lab", "--limit", web, check=False)
    assert r.returncode == 1 and "<-- renew" in r.stdout
    r = lab.hxinfra("pki", "renew", "--env", "lab", "--limit", web)
    assert f"renewed {web} ({web}: webui)" in r.stderr
    assert served_days(lab, web) > 300  # deployed, nginx reloaded
    assert lab.hxinfra("pki", "expiry", "--env", "lab", "--limit", web, "--json").returncode == 0
    assert "HX web UI" in lab.curl_https(web).stdout
    r, again = lab.hx_deploy("site", "--limit", web, "--detailed-exitcode")
    assert r.returncode == 0
