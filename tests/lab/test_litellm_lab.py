"""The LiteLLM gateway on a real lab host (deployed with the session's stack), checked with curl and
psql: keys, completions through the lab's model stand-in, a rejected config, no secret shown."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.lab

API, APP, DB = "hx-api-01", "hx-app-01", "hx-db-01"


def gateway(lab, path: str, key: str | None = None, body: dict | None = None) -> tuple[int, str]:
    args = ["curl", "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"]
    if key is not None:
        args += ["-H", f"Authorization: Bearer {key}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    # HTTPS only, its certificate checked against the lab CA alone (curl's own store is not used)
    args += ["--cacert", lab.ca_file, "--capath", "/nonexistent"]
    r = subprocess.run([*args, f"https://{lab.ip(API)}:4000{path}"], capture_output=True, text=True)
    text, _, code = r.stdout.rpartition("\n")
    return int(code or 0), text


def test_gateway_converged_listens_on_its_address_and_second_run_changes_nothing(lab):
    r, report = lab.hx_deploy("litellm", "--limit", API, "--detailed-exitcode")
    assert report["hosts"][0]["changed"] == 0 and r.returncode == 0, r.stderr[-3000:]
    host = lab.host(API)
    assert host.service("litellm").is_running and host.service("litellm").is_enabled
    assert host.socket(f"tcp://{lab.ip(API)}:4000").is_listening
    assert not host.socket("tcp://0.0.0.0:4000").is_listening
    assert gateway(lab, "/health/liveliness")[0] == 200  # over TLS, verified against the lab CA
    plain = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", f"http://{lab.ip(API)}:4000/"],
        capture_output=True,
        text=True,
    )
    assert plain.stdout.strip() in ("000", "400"), plain  # no plain-HTTP gateway
    key = host.file("/etc/ssl/hx/private/gateway.key")
    assert (key.user, key.group, key.mode) == ("root", "ssl-cert", 0o640)
    assert host.user("litellm").shell == "/usr/sbin/nologin"
    assert host.file("/opt/litellm/.hxinfra-requirements").content_string.split() == [
        "litellm[proxy]==1.106.2",
        "prisma==0.15.0",
    ]
    for path in ("/etc/litellm/config.yaml", "/etc/litellm/litellm.env"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "litellm", 0o640), path
    unit = host.run("systemctl show litellm -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p User").stdout
    assert sorted(unit.split()) == ["NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "User=litellm"]


def test_master_key_is_needed_and_a_completion_goes_through(lab):
    key = lab.secret("vault_lab_litellm_master_key")
    code, text = gateway(lab, "/v1/models", key)
    assert code == 200 and "hx-chat" in text
    assert gateway(lab, "/v1/models")[0] == 401
    assert gateway(lab, "/v1/models", "sk-not-the-master-key")[0] in (400, 401)  # no key database: refused
    code, text = gateway(
        lab, "/v1/chat/completions", key, {"model": "hx-chat", "messages": [{"role": "user", "content": "ping"}]}
    )
    assert code == 200 and json.loads(text)["choices"][0]["message"]["content"] == "hx-lab-model says: ping"


def test_no_secret_in_the_config_or_the_deploy_output(lab):
    key = lab.secret("vault_lab_litellm_master_key")
    provider = lab.secret("vault_lab_model_api_key")
    config = lab.ssh(API, "cat /etc/litellm/config.yaml").stdout
    assert key not in config and provider not in config and "os.environ/LITELLM_MASTER_KEY" in config
    env = lab.ssh(API, "cat /etc/litellm/litellm.env").stdout
    assert key in env and provider in env  # where they belong: the 0640 environment file
    r, _ = lab.hx_deploy(
        "litellm",
        "--limit",
        API,
        "--check",
        "--diff",
        "-e",
        '{"litellm_provider_keys": {"LAB_MODEL_API_KEY": "sk-another-provider-key"}}',
    )
    assert "litellm.env" in r.stderr
    for secret in (key, provider, "sk-another-provider-key"):
        assert secret not in r.stdout + r.stderr


def test_config_litellm_rejects_is_refused_and_the_gateway_keeps_serving(lab):
    before = lab.ssh(API, "sha256sum /etc/litellm/config.yaml; systemctl show litellm -p MainPID").stdout
    r, report = lab.hx_deploy(
        "litellm",
        "--limit",
        API,
        "-e",
        '{"litellm_router_settings": {"routing_strategy": "no-such-strategy"}}',
        check=False,
    )
    assert r.returncode == 1 and report["hosts"][0]["status"] == "failed"
    assert "Invalid routing_strategy" in r.stderr  # LiteLLM's own words, from the trial start's log
    assert "validation failed (a trial start of LiteLLM" in r.stderr and "previous config restored" in r.stderr
    assert lab.ssh(API, "sha256sum /etc/litellm/config.yaml; systemctl show litellm -p MainPID").stdout == before
    assert gateway(lab, "/health/liveliness")[0] == 200
    assert lab.ssh(API, "systemctl is-active litellm-config-check", check=False).stdout.strip() != "active"


def test_gateway_database_role_logs_in_from_the_api_host_only(lab):
    """LiteLLM's own database layer (Prisma) downloads its engines at start, which lab hosts cannot:
    its role and database are proven with psql, TLS verify-full, from the allowed host only."""
    password = lab.secret("vault_lab_pg_litellm_password")
    for host in (API, APP):
        lab.apt_install(host, "postgresql-client-15")
    conninfo = (
        f"host={lab.ip(DB)} port=5432 dbname=litellm user=litellm sslmode=verify-full "
        "sslrootcert=/etc/ssl/certs/ca-certificates.crt connect_timeout=5 gssencmode=disable"
    )
    cmd = (
        f"PGPASSWORD='{password}' psql -X -At '{conninfo}' -c 'SELECT current_user, ssl FROM pg_stat_ssl "
        "WHERE pid = pg_backend_pid()'"
    )
    ok = lab.ssh(API, cmd, check=False)
    assert ok.returncode == 0 and ok.stdout.strip() == "litellm|t", ok.stderr
    refused = lab.ssh(APP, cmd, check=False)
    assert refused.returncode != 0 and "no pg_hba.conf entry" in refused.stderr
