"""A vaulted secret deployed to real hosts: never in any output, private on the host at every moment."""

from __future__ import annotations

import json
import secrets

import pytest

from hxinfra import secrets as vault

pytestmark = pytest.mark.lab

DEPLOY = "tests/lab/deploys/secret_file.py"
TARGET = "/etc/hx-test/token.conf"


@pytest.fixture
def vaultdir(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("lab-vault-pw\n")
    pw.chmod(0o600)

    def whole(token: str):
        f = tmp_path / f"whole-{token[:6]}.yml"
        f.write_text(vault.encrypt(f"vault_lab_token: {token}\n".encode(), b"lab-vault-pw"))
        return f

    def inline(token: str):
        f = tmp_path / f"inline-{token[:6]}.yml"
        f.write_text("vault_lab_token: " + vault.vault_block(vault.encrypt(token.encode(), b"lab-vault-pw", "lab")))
        return f

    return pw, whole, inline


def no_leak(token: str, *outputs: str) -> None:
    for out in outputs:
        assert token not in out
        assert token[4:20] not in out  # not even a fragment


def test_vaulted_secret_never_printed_and_file_private(lab, vaultdir):
    pw, whole, inline = vaultdir
    first, second = "tok-" + secrets.token_hex(16), "tok-" + secrets.token_hex(16)
    runlog = pw.parent / "logs" / "deploy.log"
    r = lab.hxinfra(
        "deploy",
        DEPLOY,
        "--env",
        "lab",
        "--limit",
        "hx-web-01",
        "-e",
        f"@{whole(first)}",
        "--vault-password-file",
        str(pw),
        "--diff",
        "--json",
        "-vv",
        "--log-file",
        str(runlog),
    )
    no_leak(first, r.stdout, r.stderr, runlog.read_text())
    assert oct(runlog.stat().st_mode & 0o777) == "0o600"
    assert "+token = ********" in runlog.read_text() and "1 host(s): 1 changed" in runlog.read_text()
    report = json.loads(r.stdout)
    assert report["hosts"][0]["changed"] == 1
    assert f"+++ b{TARGET}" in r.stderr and "+token = ********" in r.stderr
    assert lab.ssh("hx-web-01", f"stat -c '%U:%G %a' {TARGET}").stdout.strip() == "root:adm 640"
    assert lab.ssh("hx-web-01", f"cat {TARGET}").stdout.endswith(f"token = {first}\n")

    # rotate the secret through an inline !vault value (vault id 1.2): the diff masks old and new
    r = lab.hxinfra(
        "deploy",
        DEPLOY,
        "--env",
        "lab",
        "--limit",
        "hx-web-01",
        "-e",
        f"@{inline(second)}",
        "--vault-id",
        f"lab@{pw}",
        "--diff",
        "--json",
        "-vvv",
    )
    no_leak(first, r.stdout, r.stderr)
    no_leak(second, r.stdout, r.stderr)
    assert "-token = ********" in r.stderr and "+token = ********" in r.stderr
    assert lab.ssh("hx-web-01", f"cat {TARGET}").stdout.endswith(f"token = {second}\n")
    # the host's logs and leftovers: no plaintext anywhere but the file itself (and the 0700 backup)
    leak = lab.ssh(
        "hx-web-01",
        f"journalctl --no-pager -o cat | grep -c {second[4:20]} ; "
        f"grep -rl {second[4:20]} /tmp /var/tmp /var/log 2>/dev/null | wc -l ; "
        "stat -c %a /var/backups/hxinfra",
        check=False,
    ).stdout.split()
    assert leak == ["0", "0", "700"]

    r = lab.hxinfra(
        "deploy",
        DEPLOY,
        "--env",
        "lab",
        "--limit",
        "hx-web-01",
        "-e",
        f"@{inline(second)}",
        "--vault-id",
        f"lab@{pw}",
        "--json",
        "--detailed-exitcode",
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]  # a second run changes nothing


def test_wrong_password_fails_before_connecting(lab, vaultdir, tmp_path):
    pw, whole, _ = vaultdir
    bad = tmp_path / "bad"
    bad.write_text("nope\n")
    bad.chmod(0o600)
    f = whole("tok-" + secrets.token_hex(8))
    r = lab.hxinfra("deploy", DEPLOY, "--env", "lab", "-e", f"@{f}", "--vault-password-file", str(bad), check=False)
    assert r.returncode == 1
    assert f"{f}: wrong vault password" in r.stderr and "Connecting" not in r.stderr


def test_plain_pyinfra_cli_reads_the_vault_too(lab, vaultdir):
    pw, whole, _ = vaultdir
    token = "tok-" + secrets.token_hex(16)
    env = {**lab.env, vault.PASSWORD_FILE_ENV: str(pw), "HXINFRA_EXTRA_VARS": json.dumps([f"@{whole(token)}"])}
    old = lab.env
    lab.env = env
    try:
        r = lab.pyinfra(DEPLOY, "--limit", "hx-web-02", "--diff", "-y")
    finally:
        lab.env = old
    no_leak(token, r.stdout, r.stderr)
    assert "+token = ********" in r.stdout + r.stderr
    assert lab.ssh("hx-web-02", f"cat {TARGET}").stdout.endswith(f"token = {token}\n")


def test_sudo_login_user_uploads_privately(lab, vaultdir):
    """With ``_sudo`` pyinfra uploads through a temp file as the login user: it must be 0600 from the start."""
    pw, whole, _ = vaultdir
    host = "hx-web-03"
    lab.apt_install(host, "sudo")
    lab.ssh(
        host,
        "id deployer >/dev/null 2>&1 || useradd -m -s /bin/sh -G sudo deployer;"  # sudo: an admin's group,
        # let in by sshd's AllowGroups
        " install -d -m 700 -o deployer -g deployer ~deployer/.ssh;"
        " install -m 600 -o deployer -g deployer /root/.ssh/authorized_keys ~deployer/.ssh/;"
        " echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer; chmod 440 /etc/sudoers.d/deployer;"
        # a watcher records the mode of every pyinfra temp file the moment it appears
        " rm -f /root/tmpmodes; setsid sh -c 'end=$(($(date +%s)+90)); while [ $(date +%s) -lt $end ];"
        ' do for f in /tmp/pyinfra-*; do [ -e "$f" ] && stat -c "%a %U" "$f" >> /root/tmpmodes;'
        " done; sleep 0.01; done' </dev/null >/dev/null 2>&1 &",
    )
    token = "tok-" + secrets.token_hex(16)
    r = lab.hxinfra(
        "deploy",
        DEPLOY,
        "--env",
        "lab",
        "--limit",
        host,
        "-e",
        f"@{whole(token)}",
        "-e",
        "ssh_user=deployer",
        "-e",
        "_sudo=true",
        "--vault-password-file",
        str(pw),
        "--json",
    )
    no_leak(token, r.stdout, r.stderr)
    assert lab.ssh(host, f"stat -c '%U:%G %a' {TARGET}").stdout.strip() == "root:adm 640"
    assert lab.ssh(host, f"cat {TARGET}").stdout.endswith(f"token = {token}\n")
    modes = set(
        lab.ssh(host, "cat /root/tmpmodes 2>/dev/null; ls /tmp | grep -c pyinfra-", check=False).stdout.split("\n")
    )
    assert all(m in ("600 deployer", "0", "") for m in modes), modes
    assert "600 deployer" in modes, "the watcher never saw the temp file"
    lab.ssh(host, "pkill -f 'tmpmode[s]'; true", check=False)  # stop the watcher
