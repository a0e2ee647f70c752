"""Vault: format, known answers, password sources, CLI verbs, and cross-compatibility with ansible-vault."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import INVENTORY

from hxinfra import secrets as vault
from hxinfra.cli import main
from hxinfra.datafiles import load_yaml_mapping
from hxinfra.inventory import load_environment
from hxinfra.secrets import Keyring, Secret, Vaulted, VaultError

# Written by ansible-vault 2.19 (ANSIBLE_VAULT_ENCRYPT_SALT fixed) from b"hx known answer\n", password "kat-password".
KAT_SALT = b"hxinfra-known-answer-salt-000001"
KAT_BODY = """\
36383738363936653636373236313264366236653666373736653264363136653733373736353732
3264373336313663373432643330333033303330333033310a306363396137646166393735303531
63653935393265353230643864623435646663656238346433323834316231303861646462626564
3762376564366666350a303838383138323635653237643265663134616236333237393438653363
30613561663666636564393461636334643938353765643466636334336164356338
"""
KAT_11 = "$ANSIBLE_VAULT;1.1;AES256\n" + KAT_BODY
KAT_12 = "$ANSIBLE_VAULT;1.2;AES256;ops\n" + KAT_BODY
ANSIBLE_VAULT = shutil.which("ansible-vault", path=str(Path(sys.executable).parent)) or shutil.which("ansible-vault")


pytestmark = pytest.mark.usefixtures("fresh_keyring")


def ring(*pairs: tuple[str, str]) -> Keyring:
    return Keyring([(label, pw.encode()) for label, pw in pairs])


def pwfile(path: Path, password: str, mode: int = 0o600) -> Path:
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


# ------------------------------------------------------------------ format
def test_known_answer_byte_identical_to_ansible_vault():
    assert vault.encrypt(b"hx known answer\n", b"kat-password", salt=KAT_SALT) == KAT_11
    assert vault.encrypt(b"hx known answer\n", b"kat-password", "ops", salt=KAT_SALT) == KAT_12
    assert ring(("default", "kat-password")).decrypt(KAT_11) == b"hx known answer\n"
    assert ring(("ops", "kat-password")).open(KAT_12)[1] == "ops"


@pytest.mark.parametrize("plaintext", [b"", b"x", b"0123456789abcdef", "ünïcødé\n".encode() * 40])
def test_round_trip_and_80_columns(plaintext):
    text = vault.encrypt(plaintext, b"pw", "team")
    lines = text.splitlines()
    assert lines[0] == "$ANSIBLE_VAULT;1.2;AES256;team"
    assert all(len(line) <= 80 for line in lines[1:]) and text.endswith("\n")
    assert ring(("team", "pw")).decrypt(text) == plaintext
    assert vault.encrypt(plaintext, b"pw") != vault.encrypt(plaintext, b"pw")  # fresh salt each time


def test_bad_input_is_one_clear_error():
    good = vault.encrypt(b"secret", b"right")
    with pytest.raises(
        VaultError, match=r"vault.yml: wrong vault password for vault id 'default' \(tried vault id\(s\): default; HMAC"
    ):
        ring(("default", "wrong")).decrypt(good, "vault.yml")
    lines = good.splitlines()
    with pytest.raises(VaultError, match="damaged or truncated"):
        ring(("default", "right")).decrypt("\n".join(lines[:2]), "f")
    with pytest.raises(VaultError, match="no encrypted body"):
        ring(("default", "right")).decrypt(lines[0], "f")
    flipped = lines[1][:-1] + ("0" if lines[1][-1] != "0" else "1")
    with pytest.raises(VaultError, match="wrong vault password|damaged"):
        ring(("default", "right")).decrypt("\n".join([lines[0], flipped, *lines[2:]]), "f")
    with pytest.raises(VaultError, match="unsupported vault format version '1.3'"):
        ring(("default", "right")).decrypt(good.replace(";1.1;", ";1.3;"), "f")
    with pytest.raises(VaultError, match="not an Ansible Vault"):
        ring(("default", "right")).decrypt("hello", "f")


def test_keyring_tries_matching_id_first_then_others():
    text = vault.encrypt(b"v", b"second", "b")
    assert ring(("a", "first"), ("b", "second")).decrypt(text) == b"v"
    assert ring(("x", "second")).decrypt(text) == b"v"  # label mismatch still tried, as Ansible does
    with pytest.raises(VaultError, match="choose one with --encrypt-vault-id"):
        ring(("a", "1"), ("b", "2")).encrypt(b"v")


# ------------------------------------------------------------------ password sources
def test_password_file_script_and_permissions(tmp_path):
    assert vault.read_password_file(pwfile(tmp_path / "p", "  s3cret ")) == b"s3cret"
    with pytest.raises(VaultError, match=r"accessible by group or others \(mode 0644\); chmod 600"):
        vault.read_password_file(pwfile(tmp_path / "open", "x", 0o644))
    script = tmp_path / "pass-client.sh"
    script.write_text('#!/bin/sh\necho "pw-for-$2"\n')
    script.chmod(0o700)
    assert vault.read_password_file(script, "ops") == b"pw-for-ops"  # *-client gets --vault-id
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o700)
    with pytest.raises(VaultError, match=r"fail.sh failed \(exit 3\)"):
        vault.read_password_file(failing)
    with pytest.raises(VaultError, match="does not exist"):
        vault.read_password_file(tmp_path / "missing")


def test_source_order_env_then_project_file_then_prompt(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO())  # no terminal
    project = tmp_path
    k = vault.keyring_from_sources(project=project)
    assert k.description == "default@prompt" and not k.resolved
    with pytest.raises(VaultError, match="no terminal to ask"):
        k.secrets()
    pwfile(project / ".vault_pass", "from-project")
    assert vault.keyring_from_sources(project=project).secrets() == [("default", b"from-project")]
    monkeypatch.setenv(vault.PASSWORD_FILE_ENV, str(pwfile(tmp_path / "envpw", "from-env")))
    assert vault.keyring_from_sources(project=project).secrets() == [("default", b"from-env")]
    explicit = pwfile(tmp_path / "cli", "from-cli")
    k = vault.keyring_from_sources(vault_ids=[f"ops@{explicit}"], password_files=[str(explicit)], project=project)
    assert k.secrets() == [("ops", b"from-cli"), ("default", b"from-cli")]


def test_passwords_cross_to_a_child_through_a_pipe(monkeypatch):
    fd = ring(("a", "pw-a"), ("b", "pw-ü")).to_pipe()
    monkeypatch.setenv(vault.PASSWORDS_FD_ENV, str(fd))
    k = vault.keyring_from_environment()
    assert k.secrets() == [("a", b"pw-a"), ("b", "pw-ü".encode().decode("latin-1").encode("latin-1"))]
    assert vault.PASSWORDS_FD_ENV not in os.environ


# ------------------------------------------------------------------ values in data
def test_vaulted_values_in_yaml_are_lazy_and_masked(tmp_path):
    vault.set_default_keyring(ring(("default", "pw")))
    block = vault.vault_block(vault.encrypt(b"db-pass-123", b"pw"), indent=2)
    f = tmp_path / "vars.yml"
    f.write_text(f"plain: 1\nvault_db_password: {block}")
    data = load_yaml_mapping(f)
    value = data["vault_db_password"]
    assert isinstance(value, Vaulted) and str(value) == "********" and "vars.yml line 2" in repr(value)
    secret = value.reveal()
    assert secret == "db-pass-123" and isinstance(secret, Secret) and "db-pass" not in repr(secret)
    assert "*MASKED*" in str(__import__("pyinfra.api", fromlist=["StringCommand"]).StringCommand("x", secret.hidden()))
    assert vault.redact("login db-pass-123 ok") == "login ******** ok"


def test_a_vaulted_pem_masks_its_body_but_not_the_armor_every_pem_shares():
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDx7Zk"
    vault.register_secret(f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    assert vault.redact(f"key: {body}") == "key: ********"
    other_cert = "-----BEGIN CERTIFICATE-----\nMIIBpublic\n-----END PRIVATE KEY-----"
    assert vault.redact(other_cert) == other_cert


def test_whole_file_vault_and_inventory_masking(project):
    project("inventories/demo.py", INVENTORY)
    pw = pwfile(project.root / ".vault_pass", "grp-pw")
    plain = "vault_web_token: tok-ABCDEF-123\nnginx_site_name: shop\n"
    project("inventories/group_vars/web_servers/vault.yml", vault.encrypt(plain.encode(), b"grp-pw"))
    project(
        "inventories/group_vars/all.yml",
        "vault_api_key: " + vault.vault_block(vault.encrypt(b"api-XYZ-987", b"grp-pw")),
    )
    r = CliRunner().invoke(main, ["inventory", "host", "web1", "--env", "demo", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["vault_web_token"] == data["vault_api_key"] == data["nginx_site_name"] == "********"
    assert "tok-ABCDEF" not in r.output and "api-XYZ" not in r.output
    env = load_environment(project.root / "inventories/demo.py")
    assert env.host_data("web1")["vault_api_key"].reveal() == "api-XYZ-987"
    pw.write_text("wrong\n")
    vault.set_default_keyring(None)
    r = CliRunner().invoke(main, ["inventory", "host", "web1", "--env", "demo"])
    assert r.exit_code == 1
    assert "web_servers/vault.yml: wrong vault password" in r.output and len(r.output.splitlines()) == 1


# ------------------------------------------------------------------ CLI verbs
def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, ["vault", *args], input=input)


def test_cli_encrypt_view_rekey_decrypt(tmp_path):
    old, new = pwfile(tmp_path / "old", "old-pw"), pwfile(tmp_path / "new", "new-pw")
    f = tmp_path / "secrets.yml"
    f.write_text("vault_x: 1\n")
    f.chmod(0o640)
    assert cli("encrypt", str(f), "--vault-password-file", str(old)).exit_code == 0
    assert vault.is_encrypted(f.read_text()) and stat.S_IMODE(f.stat().st_mode) == 0o640
    r = cli("encrypt", str(f), "--vault-password-file", str(old))
    assert r.exit_code == 1 and "already encrypted" in r.output
    assert cli("view", str(f), "--vault-password-file", str(old)).output == "vault_x: 1\n"
    before = f.read_text()
    r = cli("view", str(f), "--vault-password-file", str(new))
    assert r.exit_code == 1 and "wrong vault password" in r.output and f.read_text() == before
    r = cli("rekey", str(f), "--vault-password-file", str(old), "--new-vault-id", f"ops@{new}")
    assert r.exit_code == 0 and f.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;ops\n")
    assert cli("decrypt", str(f), "--vault-id", f"ops@{new}").exit_code == 0
    assert f.read_text() == "vault_x: 1\n"


def test_cli_decrypt_is_all_or_nothing(tmp_path):
    pw, other = pwfile(tmp_path / "pw", "a"), pwfile(tmp_path / "o", "b")
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text(vault.encrypt(b"1", b"a"))
    two.write_text(vault.encrypt(b"2", b"b"))
    before = (one.read_text(), two.read_text())
    r = cli("decrypt", str(one), str(two), "--vault-password-file", str(pw))
    assert r.exit_code == 1 and str(two) in r.output
    assert (one.read_text(), two.read_text()) == before
    assert cli("decrypt", str(one), str(two), "--vault-id", f"a@{pw}", "--vault-id", f"b@{other}").exit_code == 0


def test_cli_encrypt_string_and_edit(tmp_path, monkeypatch):
    pw = pwfile(tmp_path / "pw", "es")
    r = cli("encrypt-string", "hunter22", "--name", "vault_admin_password", "--vault-password-file", str(pw))
    assert r.exit_code == 0 and r.stdout.startswith("vault_admin_password: !vault |\n          $ANSIBLE_VAULT;1.1")
    vault.set_default_keyring(ring(("default", "es")))
    f = tmp_path / "v.yml"
    f.write_text(r.stdout)
    assert load_yaml_mapping(f)["vault_admin_password"].reveal() == "hunter22"

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    f.write_text(vault.encrypt(b"a: 1\n", b"es", "team"))
    editor = tmp_path / "ed.sh"
    editor.write_text(
        '#!/bin/sh\nstat -c %a "$(dirname "$1")" > ' + str(tmp_path / "dirmode") + '\necho "b: 2" >> "$1"\n'
    )
    editor.chmod(0o700)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    assert cli("edit", str(f), "--vault-password-file", str(pw)).exit_code == 0
    assert (tmp_path / "dirmode").read_text().strip() == "700"
    assert f.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;team")
    assert ring(("team", "es")).decrypt(f.read_text()) == b"a: 1\nb: 2\n"
    before = f.read_text()
    editor.write_text('#!/bin/sh\necho "c: 3" >> "$1"\nexit 4\n')
    r = cli("edit", str(f), "--vault-password-file", str(pw))
    assert r.exit_code == 1 and "exited with 4; nothing was written" in r.output
    assert f.read_text() == before and not list(tmp_path.glob("hxinfra-vault-*"))


# ------------------------------------------------------------------ the real ansible-vault
needs_ansible = pytest.mark.skipif(
    ANSIBLE_VAULT is None, reason="ansible-core is a test dependency: pip install -e .[dev]"
)


def av(*args: str, cwd: Path) -> str:
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(cwd), "ANSIBLE_HOME": str(cwd)}
    r = subprocess.run([ANSIBLE_VAULT, *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


@needs_ansible
@pytest.mark.parametrize("label", ["default", "ops"])
def test_ansible_vault_files_both_ways(tmp_path, label):
    pw = pwfile(tmp_path / "pw", "x-compat")
    vid = f"{label}@{pw}"
    f = tmp_path / "a.yml"
    f.write_text("vault_k: from ansible\n")
    av("encrypt", "--vault-id", vid, str(f), cwd=tmp_path)
    assert f.read_text().startswith("$ANSIBLE_VAULT;1.1" if label == "default" else "$ANSIBLE_VAULT;1.2;AES256;ops")
    assert ring((label, "x-compat")).decrypt(f.read_text()) == b"vault_k: from ansible\n"

    g = tmp_path / "b.yml"
    g.write_text(vault.encrypt(b"vault_k: from hxinfra\n", b"x-compat", label))
    assert av("view", "--vault-id", vid, str(g), cwd=tmp_path) == "vault_k: from hxinfra\n"


@needs_ansible
@pytest.mark.parametrize("label", ["default", "ops"])
def test_ansible_vault_strings_both_ways(tmp_path, label):
    pw = pwfile(tmp_path / "pw", "str-compat")
    vid = f"{label}@{pw}"
    out = av("encrypt_string", "--vault-id", vid, "--name", "vault_s", "s3cr3t-from-ansible", cwd=tmp_path)
    (tmp_path / "s.yml").write_text(out)
    vault.set_default_keyring(ring((label, "str-compat")))
    assert load_yaml_mapping(tmp_path / "s.yml")["vault_s"].reveal() == "s3cr3t-from-ansible"

    r = cli("encrypt-string", "s3cr3t-from-hxinfra", "--name", "vault_s", "--vault-id", vid)
    assert r.exit_code == 0
    (tmp_path / "h.yml").write_text(r.stdout)
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars_files: [h.yml]\n"
        "  tasks:\n    - debug: {msg: 'got {{ vault_s }}'}\n"
    )
    playbook = str(Path(ANSIBLE_VAULT).with_name("ansible-playbook"))
    r2 = subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", "--vault-id", vid, "play.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path)},
    )
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert '"msg": "got s3cr3t-from-hxinfra"' in r2.stdout
