"""CA trust and the PKI helpers: what is verified on the controller before any host is touched."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import INVENTORY

from deploys.ca_trust.config import DEFAULTS, ca_files, check_data, host_cert_files, load_files, resolve_cas
from hxinfra.desired import Absent, ManagedFile
from hxinfra.errors import InventoryError
from hxinfra.inventory import load_environment
from hxinfra.paths import read_project_file
from hxinfra.pki import LocalCA, PkiError, colon_fingerprint, load_certificate, normalize_fingerprint, verify_ca
from hxinfra.render import render


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    ca = LocalCA(tmp_path_factory.mktemp("pki"))
    ca.init("HX Test Root CA")
    return ca


def data(**kw):
    """Host data as the inventory hands it over: files the entries name already read."""
    merged = {**DEFAULTS, **kw}
    return {**merged, **load_files(merged, read_project_file)}


def test_fingerprint_pins_in_every_spelling(ca):
    cert = load_certificate(ca.cert_path.read_bytes(), "ca")
    colon = colon_fingerprint(cert)
    for pin in (colon, colon.lower(), colon.replace(":", ""), f"SHA256:{colon}", f"sha256:{colon.lower()}"):
        assert verify_ca(ca.cert_path.read_text(), "ca", pin=pin).sha256 == normalize_fingerprint(colon)
    with pytest.raises(PkiError, match="not a SHA-256 fingerprint"):
        normalize_fingerprint("AB:CD")


def test_bad_cas_are_refused(ca, tmp_path):
    pem = ca.cert_path.read_text()
    with pytest.raises(PkiError, match="does not match the pin"):
        verify_ca(pem, "CA x", pin="00" * 32)
    with pytest.raises(PkiError, match="expired on"):
        verify_ca(pem, "CA x", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=4000))
    crt, _key = ca.issue("srv", ["srv.example"])
    with pytest.raises(PkiError, match="not a CA certificate"):
        verify_ca(crt.read_text(), "CA srv")
    with pytest.raises(PkiError, match="no PEM certificate"):
        verify_ca("hello", "CA junk")
    soon = verify_ca(pem, "CA x", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3640))
    assert soon.warning and "expires in" in soon.warning


def test_ca_files_manage_only_their_own_and_remove_dropped(ca):
    d = data(ca_trust_certificates=[{"name": "hx-root-ca", "file": str(ca.cert_path)}])
    cas = resolve_cas(d)
    items = ca_files(
        d, cas, ["/usr/local/share/ca-certificates/hx-old-ca.crt", "/usr/local/share/ca-certificates/hx-root-ca.crt"]
    )
    assert isinstance(items[0], ManagedFile) and items[0].path == "/usr/local/share/ca-certificates/hx-root-ca.crt"
    assert items[0].content.startswith("# managed by hxinfra (ca_trust)") and "BEGIN CERTIFICATE" in items[0].content
    assert items[1:] == [Absent("/usr/local/share/ca-certificates/hx-old-ca.crt")]


def test_host_certs_private_key_is_sensitive_and_must_match(ca, tmp_path):
    crt, key = ca.issue("web", ["web.example"])
    d = data(ca_trust_host_certs=[{"name": "webui", "cert": str(crt), "key": str(key)}])
    from deploys.ca_trust.config import resolve_host_certs

    files = host_cert_files(d, resolve_host_certs(d))
    assert [f.path for f in files] == ["/etc/ssl/hx/webui.crt", "/etc/ssl/hx/private/webui.key"]
    assert files[1].mode == "0600" and files[1].sensitive and "PRIVATE" not in repr(files[1].content)
    other_crt, _ = ca.issue("other", ["other.example"])
    bad = data(ca_trust_host_certs=[{"name": "webui", "cert": str(other_crt), "key": str(key)}])
    assert "does not match the certificate" in check_data(bad)[0][1]
    pg = data(ca_trust_host_certs=[{"name": "pg", "cert": str(crt), "key": str(key), "key_group": "ssl-cert"}])
    assert host_cert_files(pg, resolve_host_certs(pg))[1].mode == "0640"


def test_checks_read_data_never_files_or_the_clock(ca, tmp_path):
    """A file is read once, when the data is loaded; "now" is the data's hx_now, not the clock."""
    path = tmp_path / "root.crt"
    path.write_text(ca.cert_path.read_text())
    d = data(ca_trust_certificates=[{"name": "hx-root-ca", "file": str(path)}])
    path.unlink()  # the check and the plan keep working from the data alone
    assert check_data(d) == [] and "BEGIN CERTIFICATE" in ca_files(d, resolve_cas(d), [])[0].content
    unread = {**DEFAULTS, "ca_trust_certificates": [{"name": "hx-root-ca", "file": str(path)}]}
    assert "read when the inventory loads" in check_data(unread)[0][1]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=4000)).isoformat()
    assert "expired on" in check_data({**d, "hx_now": later})[0][1]
    with pytest.raises(PkiError, match=r"ca_trust_certificates\[0\]\.file: cannot read"):
        load_files(unread, read_project_file)


def test_inventory_reads_ca_files_once_and_names_an_unreadable_one(project, ca):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", "ca_trust_certificates:\n  - {name: hx-root-ca, file: ca/root.crt}\n")
    (project.root / "ca").mkdir()
    (project.root / "ca/root.crt").write_text(ca.cert_path.read_text())
    env = load_environment(project.root / "inventories/demo.py")
    env.validate()
    entry = env.host_data("web1")["ca_trust_certificates"][0]
    assert entry["file"].startswith("-----BEGIN CERTIFICATE")
    assert env.host_data("db1")["ca_trust_certificates"] is env.host_data("web1")["ca_trust_certificates"]
    (project.root / "ca/root.crt").unlink()
    with pytest.raises(
        InventoryError, match=r"host web1: component ca_trust: ca_trust_certificates\[0\]\.file: cannot read .*root.crt"
    ):
        load_environment(project.root / "inventories/demo.py").host_data("web1")


def test_inventory_refuses_a_wrong_pin_before_connecting(project, ca):
    project("inventories/demo.py", INVENTORY)
    project(
        "inventories/group_vars/all.yml",
        f"""
        ca_trust_certificates:
          - name: hx-root-ca
            file: {ca.cert_path}
            sha256: "{"AB:" * 31}AB"
    """,
    )
    with pytest.raises(InventoryError, match=r"key ca_trust_certificates: CA hx-root-ca: SHA-256 fingerprint .* pin"):
        load_environment(project.root / "inventories/demo.py").validate()


def test_monitor_script_keeps_its_shebang_first(tmp_path):
    from deploys.common import templates_root

    text = render(
        templates_root(),
        "ca_trust/usr/local/sbin/hx-ca-trust-expiry.j2",
        {
            "ca_trust_warn_days": 30,
            "ca_trust_log_dir": "/var/log/hx/ca-trust",
            "ca_trust_dir": "/usr/local/share/ca-certificates",
            "header": "# managed",
        },
    )
    assert text.startswith("#!/bin/sh\n# managed by hxinfra")


def test_pki_cli_init_issue_verify(tmp_path):
    import json

    from click.testing import CliRunner

    from hxinfra.cli import main

    d = str(tmp_path / "ca")
    r = CliRunner().invoke(main, ["pki", "init", "--dir", d, "--cn", "Testing Root"])
    assert r.exit_code == 0 and "sha256 " in r.output
    pin = r.output.split("sha256 ")[1].strip()
    assert CliRunner().invoke(main, ["pki", "init", "--dir", d]).exit_code == 1  # no silent replacement
    r = CliRunner().invoke(main, ["pki", "issue", "web", "--dir", d, "--dns", "web.test", "--ip", "192.0.2.1"])
    assert r.exit_code == 0 and oct((tmp_path / "ca/issued/web.key").stat().st_mode)[-3:] == "600"
    r = CliRunner().invoke(main, ["pki", "verify", f"{d}/ca.crt", "--pin", pin.lower().replace(":", ""), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["subject"] == "CN=Testing Root,O=HX"
    r = CliRunner().invoke(main, ["pki", "verify", str(tmp_path / "ca/issued/web.crt")])
    assert r.exit_code == 1 and "not a CA certificate" in r.output


def test_ca_pem_from_a_vaulted_value(project, ca):
    """``pem: !vault |``: decrypted lazily with the project's vault password, then verified like any CA."""
    from hxinfra import secrets as vault

    project("inventories/demo.py", INVENTORY)
    pw = project(".vault_pass", "ca-vault-pw\n")
    pw.chmod(0o600)
    block = vault.vault_block(vault.encrypt(ca.cert_path.read_bytes(), b"ca-vault-pw"))
    project("inventories/group_vars/all.yml", "ca_trust_certificates:\n  - name: hx-root-ca\n    pem: " + block)
    vault.set_default_keyring(None)
    env = load_environment(project.root / "inventories/demo.py")
    env.validate()
    assert not vault.default_keyring().resolved  # validating the inventory decrypts nothing
    assert resolve_cas(env.host_data("web1", with_defaults=True)) == []  # still encrypted: checked at deploy
    ((name, pem, info),) = resolve_cas(vault.reveal(env.host_data("web1", with_defaults=True)))
    assert (
        name == "hx-root-ca"
        and pem == ca.cert_path.read_text().strip() + "\n"
        and info.subject.startswith("CN=HX Test Root CA")
    )
    (anchor,) = [f for f in ca_files(data(), [(name, pem, info)], []) if isinstance(f, ManagedFile)]
    assert anchor.path == "/usr/local/share/ca-certificates/hx-root-ca.crt" and pem in anchor.content


def test_an_anchor_read_from_the_ca_host_is_in_the_plan_by_its_source_and_pin():
    """The offline plan cannot hold the CA host's certificate, but a reviewer still sees the file, where it
    comes from and whether it is pinned."""
    from deploys.ca_trust.config import plan
    from hxinfra.desired import Fetched
    from hxinfra.plan import host_plan_text

    members = {"ca_servers": [{"name": "hx-ca-01", "address": "10.0.0.15"}]}
    unpinned = data(ca_trust_certificates=[{"name": "hx-root-ca", "from_ca_host": True}], hx_members=members)
    (item,) = [i for i in plan(unpinned, "h") if isinstance(i, Fetched)]
    assert item.path == "/usr/local/share/ca-certificates/hx-root-ca.crt" and item.pin == ""
    assert item.source == f"the CA certificate of hx-ca-01 ({DEFAULTS['ca_trust_ca_host_path']})"
    text = host_plan_text("h", [item])
    assert "fetched 0644 root:root at deploy time: the CA certificate of hx-ca-01" in text and "NOT pinned" in text
    pinned = data(ca_trust_certificates=[{"name": "hx-root-ca", "from_ca_host": True, "sha256": "AB:CD"}])
    (item,) = [i for i in plan({**pinned, "ca_trust_ca_host": "ca9"}, "h") if isinstance(i, Fetched)]
    assert "the CA certificate of ca9" in item.source and "pinned sha256 AB:CD" in host_plan_text("h", [item])
