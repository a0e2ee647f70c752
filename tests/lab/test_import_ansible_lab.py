"""An Ansible inventory of lab hosts, imported, deploys with zero differences to the native lab environment."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
LAB_DOMAIN = "lab.hxinfra.test"

WEB = "hx-web-01"
APPS = ("hx-app-01", "hx-app-02")


def test_an_imported_ansible_inventory_deploys_with_zero_changes_after_the_native_one(lab, tmp_path):
    r, native = lab.hx_deploy("site", "--limit", WEB)  # converged by the native lab environment
    assert native["hosts"][0]["status"] in ("ok", "changed"), r.stderr[-3000:]
    pki = lab.lab.dir / "pki"
    # the operator's Ansible inventory of the same host: the seed guide's layout, connection
    # variables Ansible's way, the lab's values as plain group vars
    source = tmp_path / "ansible" / "inventories" / "lab"
    (source / "group_vars").mkdir(parents=True)
    # the web host and the application servers its nginx pool proxies to (a pool is its group's hosts)
    (source / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "web_servers": {"hosts": {WEB: {"ansible_host": lab.ip(WEB)}}},
                        "application_servers": {"hosts": {app: {"ansible_host": lab.ip(app)} for app in APPS}},
                    }
                }
            }
        )
    )
    (source / "group_vars" / "all.yml").write_text(
        yaml.safe_dump(
            {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(lab.lab.key),
                "ansible_become": False,
                "ssh_strict_host_key_checking": "yes",
                "ssh_known_hosts_file": str(lab.lab.known_hosts),
                "hx_environment": "lab",
                "hx_domain": LAB_DOMAIN,
                "hx_realm": LAB_DOMAIN.upper(),
                "ca_trust_certificates": [{"name": "hx-lab-root-ca", "file": str(pki / "ca.crt")}],
                "hardening_ssh_permit_root_login": "prohibit-password",  # root logs in: never "no" (refused)
            }
        )
    )
    (source / "group_vars" / "web_servers.yml").write_text(
        yaml.safe_dump(
            {
                "hx_webui_ssl_enabled": True,  # an old HX role variable: becomes nginx_tls
                "ca_trust_host_certs": [
                    {
                        "name": "webui",
                        "cert": str(pki / "issued" / f"{WEB}.crt"),
                        "key": str(pki / "issued" / f"{WEB}.key"),
                    }
                ],
            }
        )
    )
    # a project of its own (the shared group_vars, the same deploys), so the checkout stays as it is
    project = tmp_path / "project"
    (project / "inventories").mkdir(parents=True)
    shutil.copytree(ROOT / "inventories" / "group_vars", project / "inventories" / "group_vars")
    os.symlink(ROOT / "deploys", project / "deploys")
    r = lab.run(
        "env",
        f"HXINFRA_PROJECT={project}",
        sys.executable,
        "-m",
        "hxinfra",
        "import-ansible",
        str(source),
        "--env",
        "imported",
        "--json",
    )
    report = json.loads(r.stdout)
    assert any(m["from"] == "hx_webui_ssl_enabled" and m["to"] == "nginx_tls" for m in report["mapped"])
    assert (project / "inventories" / "imported.py").is_file()
    r = lab.run(*_deploy(project, "--detailed-exitcode"), check=False)
    assert r.returncode == 0, r.stderr[-4000:]  # 0 with --detailed-exitcode: nothing to change
    report = json.loads(r.stdout)
    assert report["hosts"][0]["host"] == WEB and report["hosts"][0]["changed"] == 0
    assert report["hosts"][0]["ok"] > 5  # it did check ca_trust and nginx, and found them as wanted
    dry = lab.run(*_deploy(project, "--check", "--diff"), check=False)
    assert "Will modify" not in dry.stderr and "Will create" not in dry.stderr


def _deploy(project: Path, *args: str) -> list[str]:
    """The imported inventory describes the seed's roles (CA trust, the web front end): the fleet's
    security components, which follow the domain membership and the lab's own data, are not compared."""
    return [
        "env",
        f"HXINFRA_PROJECT={project}",
        sys.executable,
        "-m",
        "hxinfra",
        "deploy",
        "site",
        "--env",
        "imported",
        "--limit",
        WEB,
        "--skip-tags",
        "users,hardening,firewall",
        "--json",
        *args,
    ]
