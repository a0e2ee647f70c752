"""Inventory loading, data layers, --explain and validation errors (no hosts needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import INVENTORY, ROOT

from hxinfra.errors import InventoryError
from hxinfra.inventory import load_environment

REAL_ENVS = ["production", "staging", "development", "testing"]
HX_GROUPS = {
    "web_servers",
    "database_servers",
    "primary_db",
    "application_servers",
    "api_servers",
    "domain_members",
    "ca_servers",
    "domain_controllers",
}


def test_layers_apply_in_documented_order(project, monkeypatch):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", "nginx_site_name: from-all\nnginx_gzip: false\nnginx_upstream_port: 1\n")
    project("inventories/group_vars/web_servers.yml", "nginx_site_name: from-group\nnginx_tls_cert: /g.crt\n")
    project("inventories/demo/group_vars/web_servers.yml", "nginx_tls_cert: /env-group.crt\n")
    project("inventories/group_vars/canary.yml", "nginx_client_max_body_size: 1m\n")
    project("inventories/demo/host_vars/web2.yml", "nginx_client_max_body_size: 2m\nnginx_site_name: from-host\n")
    monkeypatch.setenv("HXINFRA_EXTRA_VARS", '{"nginx_gzip": true}')
    env = load_environment(project.root / "inventories/demo.py")

    web1 = env.host_data("web1", with_defaults=True)
    assert web1["nginx_site_name"] == "from-group"  # group > all
    assert web1["nginx_upstream_port"] == 3100  # environment > all
    assert web1["nginx_tls_cert"] == "/env-group.crt"  # env group_vars > shared group_vars
    assert web1["nginx_http_port"] == 8080  # inline host data
    assert web1["nginx_gzip"] is True  # extra vars > everything
    assert web1["nginx_package"] == "nginx"  # deploy default
    assert web1["ssh_hostname"] == "192.0.2.10"
    web2 = env.host_data("web2", with_defaults=True)
    assert web2["nginx_site_name"] == "from-host"  # host_vars > group
    assert web2["nginx_client_max_body_size"] == "2m"
    assert web2["nginx_http_port"] == 80  # web1's host data does not leak
    assert env.host_data("db1")["nginx_site_name"] == "from-all"


def test_explain_names_the_layer_and_what_it_overrode(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", "nginx_site_name: from-all\n")
    project("inventories/group_vars/web_servers.yml", "nginx_site_name: from-group\n")
    env = load_environment(project.root / "inventories/demo.py")
    info = env.explain("web1")
    assert info["nginx_site_name"]["value"] == "from-group"
    assert info["nginx_site_name"]["layer"] == "group web_servers"
    assert info["nginx_site_name"]["source"].endswith("inventories/group_vars/web_servers.yml")
    assert info["nginx_site_name"]["overrides"] == [
        "defaults of nginx (deploy DEFAULTS)",
        "all (inventories/group_vars/all.yml)",
    ]
    assert info["nginx_package"]["layer"] == "defaults of nginx"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "nginx_upstrem_port: 3000\n",
            "key nginx_upstrem_port: unknown key for component nginx; did you mean nginx_upstream_port?",
        ),
        ("nginx_upstream_port: three\n", "key nginx_upstream_port: expected int, got str"),
        ("nginx_gzip: 1\n", "key nginx_gzip: expected bool, got int"),
        ("ssh_prot: 2222\n", "key ssh_prot: unknown pyinfra connector key or global argument; did you mean ssh_port?"),
        ("_sudoo: true\n", "key _sudoo: unknown pyinfra connector key or global argument; did you mean _sudo?"),
        ('nginx_site_name: "a\\nb"\n', "key nginx_site_name: must be one line (no newline or control character)"),
    ],
)
def test_invalid_data_names_file_host_and_key(project, yaml_text, expected):
    project("inventories/demo.py", INVENTORY)
    project("inventories/demo/host_vars/web2.yml", yaml_text)
    with pytest.raises(InventoryError) as exc:
        load_environment(project.root / "inventories/demo.py")
    msg = str(exc.value)
    assert "inventories/demo/host_vars/web2.yml: host web2: " + expected in msg


def test_missing_required_key(project):
    project("inventories/demo.py", INVENTORY.replace('"hx_domain": "demo.example", ', ""))
    with pytest.raises(InventoryError, match=r"host web1: key hx_domain: required by component hx but not set"):
        load_environment(project.root / "inventories/demo.py")


def test_secret_values_are_not_echoed_in_type_errors(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", "nginx_tls_key_password: [s3cr3t-value]\n")
    with pytest.raises(InventoryError) as exc:
        load_environment(project.root / "inventories/demo.py")
    assert "s3cr3t-value" not in str(exc.value)


def test_malformed_yaml_and_entries(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/web_servers.yml", "nginx_site_name: [unclosed\n")
    with pytest.raises(InventoryError, match=r"web_servers.yml: line \d+: invalid YAML"):
        load_environment(project.root / "inventories/demo.py")
    project("inventories/group_vars/web_servers.yml", "- a list\n")
    with pytest.raises(InventoryError, match="top level must be a mapping"):
        load_environment(project.root / "inventories/demo.py")
    project("inventories/group_vars/web_servers.yml", "")
    project("inventories/demo.py", INVENTORY.replace('"groups": ["database_servers"]', '"groups": "database_servers"'))
    with pytest.raises(InventoryError, match="host db1: key groups: must be a list"):
        load_environment(project.root / "inventories/demo.py")
    project("inventories/demo.py", INVENTORY.replace('"address"', '"adress"', 1))
    with pytest.raises(InventoryError, match="host web1: key adress: unknown host entry field"):
        load_environment(project.root / "inventories/demo.py")


@pytest.mark.parametrize("env_name", REAL_ENVS)
def test_real_environments_load_and_have_the_hx_groups(env_name):
    env = load_environment(ROOT / "inventories" / f"{env_name}.py")
    assert set(env.groups) >= HX_GROUPS, HX_GROUPS - set(env.groups)
    assert len(env.groups["primary_db"]) == 1
    addresses = [h.address for h in env.hosts.values()]
    assert len(addresses) == len(set(addresses))
    subnet = env.data["hx_subnet"].rsplit(".", 1)[0]
    assert all(a.startswith(subnet + ".") for a in addresses)
    assert env.data["hx_environment"] == env_name


def test_environments_do_not_share_domains_or_subnets():
    envs = [load_environment(ROOT / "inventories" / f"{e}.py") for e in REAL_ENVS]
    assert len({e.data["hx_domain"] for e in envs}) == len(envs)
    assert len({e.data["hx_subnet"] for e in envs}) == len(envs)


def test_plain_pyinfra_cli_loads_inventory_with_layered_data():
    out = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/production.py", "debug-inventory", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert '"hx-web-02"' in text and '"nginx_tls": true' in text and '"ssh_user": "agent0"' in text


def test_plain_pyinfra_cli_rejects_bad_data_before_connecting(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/demo/host_vars/web1.yml", "nginx_upstream_port: three\n")
    project("deploys/noop.py", "pass\n")
    out = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/demo.py", "deploys/noop.py", "--dry"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode != 0
    combined = out.stdout + out.stderr
    assert "host web1: key nginx_upstream_port: expected int" in combined
    assert "Connecting" not in combined
    assert "Traceback" not in combined and "pyinfra error" in combined  # one clear error, not a traceback
