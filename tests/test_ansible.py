"""Ansible inventories moved over (hxinfra import-ansible), compared with ansible-inventory itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hxinfra import secrets as vault
from hxinfra.ansible import expand_range, read_inventory
from hxinfra.cli import main
from hxinfra.cli.inventory import ansible_list
from hxinfra.errors import InventoryError
from hxinfra.inventory import load_environment

ANSIBLE_INVENTORY = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) or "ansible-inventory"
PASSWORD = "import-pw"


pytestmark = pytest.mark.usefixtures("fresh_keyring")


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode())


def guide_layout(root: Path) -> Path:
    """The seed guide's layout: hosts.yml, group_vars/all/{common,vault}.yml, group_vars and host_vars
    as files and directories, ranges, nested children, and the same variable set at every layer."""
    inline = vault.vault_block(vault.encrypt(b"inline-Secret-9", PASSWORD.encode()), 2)
    write(
        root / "ansible/inventories/prod",
        {
            "hosts.yml": """\
            all:
              vars: {layer: all-inline, hx_environment: imported, hx_domain: example.test}
              children:
                webservers:
                  hosts:
                    web[01:02].example.test:
                      ansible_host: 192.0.2.10
                    web03.example.test: {ansible_port: 2222, layer: host-inline}
                  vars: {layer: web-inline, http_port: 8080}
                  children:
                    canary:
                      hosts:
                        web01.example.test:
                      vars: {layer: canary-inline}
                databases:
                  hosts:
                    db-[a:b].example.test:
                  vars: {ansible_user: dbadmin, ansible_become: true}
        """,
            "group_vars/all/common.yml": "layer: all-file\nntp_servers: [a, b]\nhx_ad_domain: example.test\n",
            "group_vars/all/vault.yml": vault.encrypt(
                b"vault_db_password: whole-file-Secret-7\n", PASSWORD.encode()
            ).encode(),
            "group_vars/webservers.yml": "layer: web-file\nportal_inline: " + inline,
            "group_vars/canary/main.yml": "canary_flag: true\n",
            "host_vars/web02.example.test.yml": "layer: host-file\n",
            "host_vars/db-a.example.test/main.yml": "pg_role: primary\nsssd_home: /tmp/%u\n",
        },
    )
    return root / "ansible/inventories/prod"


def ini_layout(root: Path) -> Path:
    write(
        root / "ansible/ini",
        {
            "hosts": """\
            loose.example.test ansible_host=192.0.2.99
            [web]
            web[1:3].example.test port=80 enabled=True
            [web:vars]
            layer=web-vars
            number=42
            [db]
            db1.example.test ansible_port=2200
            [app:children]
            web
            db
            [app:vars]
            layer=app-vars
            [all:vars]
            hx_environment=imported
            hx_domain=example.test
            [db:vars]
            pg_hba=host all all 0.0.0.0/0 trust
        """,
            "group_vars/app.yml": "from_file: app\n",
        },
    )
    return root / "ansible/ini/hosts"


def ansible(*args: str, cwd: Path) -> dict:
    pw = cwd / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    r = subprocess.run(
        [ANSIBLE_INVENTORY, *args, "--vault-password-file", str(pw)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible"), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def ours(value):
    """Our data as ansible-inventory shows it: inline vault text as __ansible_vault, whole-file values decrypted."""
    if isinstance(value, vault.Vaulted):
        return {"__ansible_vault": value.vaulttext} if value.vaulttext else str(value.reveal())
    if isinstance(value, dict):
        return {k: ours(v) for k, v in value.items()}
    if isinstance(value, list):
        return [ours(v) for v in value]
    return value


BACK = {
    "ssh_hostname": "ansible_host",
    "ssh_port": "ansible_port",
    "ssh_user": "ansible_user",
    "_sudo": "ansible_become",
}


def imported_project(tmp_path: Path, monkeypatch, source: Path) -> tuple[Path, dict]:
    project = tmp_path / "project"
    (project / "inventories").mkdir(parents=True)
    (project / "deploys").mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("HXINFRA_PROJECT", str(project))
    monkeypatch.delenv("HXINFRA_EXTRA_VARS", raising=False)
    pw = project / ".vault_pass"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    r = CliRunner().invoke(main, ["import-ansible", str(source), "--env", "imported", "--json"])
    assert r.exit_code == 0, r.output
    return project, json.loads(r.stdout)


@pytest.mark.parametrize("layout", [guide_layout, ini_layout])
def test_every_host_and_key_matches_ansible_inventory(tmp_path, monkeypatch, layout):
    source = layout(tmp_path)
    project, report = imported_project(tmp_path, monkeypatch, source)
    env = load_environment(project / "inventories/imported.py")
    theirs = ansible("-i", str(source), "--list", cwd=tmp_path)
    assert set(env.hosts) == set(theirs["_meta"]["hostvars"])
    skip = {"hx_host", "hx_members", "hx_now", "ssh_strict_host_key_checking", "ssh_known_hosts_file"}
    # the HX roles' variables were renamed to component keys: compare under the old names
    renamed = {m["to"]: m["from"] for m in report["mapped"] if not m["from"].startswith("ansible_")}
    for host in env.hosts:
        mine = {renamed.get(k, BACK.get(k, k)): ours(v) for k, v in env.host_data(host).items() if k not in skip}
        expected = ansible("-i", str(source), "--host", host, cwd=tmp_path)
        assert mine == expected, host
    listed = ansible_list(env)
    for group, body in theirs.items():
        if group == "_meta":
            continue
        assert set(body.get("hosts", [])) == set(listed.get(group, {}).get("hosts", [])), group
        assert set(body.get("children", [])) == set(listed.get(group, {}).get("children", [])), group
        children = listed.get(group, {}).get("children", [])
        assert len(children) == len(set(children)), (group, children)  # each child once


def test_import_report_maps_keeps_flags_and_copies_vaults_as_they_are(tmp_path, monkeypatch):
    source = guide_layout(tmp_path)
    project, _ = imported_project(tmp_path, monkeypatch, source)
    copied = project / "inventories/imported/group_vars/all/vault.yml"
    assert copied.read_bytes() == (source / "group_vars/all/vault.yml").read_bytes()  # never decrypted
    r = CliRunner().invoke(main, ["import-ansible", str(source), "--env", "imported", "--json"])
    report = json.loads(r.stdout)
    assert report["written"] == [] and report["unchanged"]  # an unchanged source changes nothing
    assert {
        "from": "hx_ad_domain",
        "to": "ad_join_domain",
        "file": str(source / "group_vars/all/common.yml"),
    } in report["mapped"]
    assert any(m["from"] == "ansible_user" and m["to"] == "ssh_user" for m in report["mapped"])
    assert any(k["why"].startswith("a vault file") for k in report["kept"])
    # hx_environment and hx_domain are this project's own keys: taken as they are, never "kept"
    assert not any(k["name"] in ("hx_environment", "hx_domain") for k in report["kept"]), report["kept"]
    assert any(f["name"] == "sssd_home" and "/tmp" in f["defect"] for f in report["flagged"])
    (source / "group_vars/canary/main.yml").write_text("canary_flag: false\n")
    r = CliRunner().invoke(main, ["import-ansible", str(source), "--env", "imported"])
    assert r.exit_code == 1 and "give --force" in r.output
    assert CliRunner().invoke(main, ["import-ansible", str(source), "--env", "imported", "--force"]).exit_code == 0


def test_format_ansible_lists_the_environment_as_ansible_inventory_does(tmp_path, monkeypatch):
    source = ini_layout(tmp_path)
    imported_project(tmp_path, monkeypatch, source)
    r = CliRunner().invoke(main, ["inventory", "list", "--env", "imported", "--format", "ansible"])
    listed = json.loads(r.stdout)
    assert listed["web"]["hosts"] == ["web1.example.test", "web2.example.test", "web3.example.test"]
    assert set(listed["app"]["children"]) == {"web", "db"} and listed["ungrouped"]["hosts"] == ["loose.example.test"]
    assert listed["_meta"]["hostvars"]["db1.example.test"]["ansible_port"] == 2200


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"hosts.yml": "all:\n  hosts: [unclosed\n"}, "invalid YAML"),
        ({"hosts.yml": "plugin: aws_ec2\nregions: [x]\n"}, "inventory plugin"),
        ({"hosts": "[web:children]\ndb\n[db:children]\nweb\n"}, "group cycle"),
        ({"hosts": "[web\nx\n"}, "malformed section header"),
        ({"hosts": "[web]\nhost1 novalue\n"}, "expected key=value"),
        ({"hosts.yml": "all:\n  hostz: {}\n"}, "unknown section"),
    ],
)
def test_bad_inventories_are_one_clear_error(tmp_path, files, message):
    write(tmp_path / "inv", files)
    with pytest.raises(InventoryError, match=message):
        read_inventory(tmp_path / "inv")


def test_an_inventory_script_is_refused(tmp_path):
    script = tmp_path / "inv.py"
    script.write_text("#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(0o755)
    with pytest.raises(InventoryError, match="inventory script"):
        read_inventory(script)


def test_host_ranges():
    assert expand_range("web[01:03].x") == ["web01.x", "web02.x", "web03.x"]
    assert expand_range("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand_range("n[1:9:4]") == ["n1", "n5", "n9"]


def ordinary_layout(root: Path) -> Path:
    """An ordinary Ansible inventory of the HX groups: hosts and connection variables, no fleet keys."""
    write(
        root / "ordinary",
        {
            "hosts.ini": """\
            [api_servers]
            api1 ansible_host=192.0.2.20

            [application_servers]
            app1 ansible_host=192.0.2.40

            [web_servers]
            web1 ansible_host=192.0.2.50 ansible_user=deploy

            [backup_clients:children]
            web_servers
            """,
            "group_vars/web_servers.yml": "nginx_server_name: web.example.test\n",
        },
    )
    return root / "ordinary"


def test_an_ordinary_inventory_imports_with_placeholders_and_a_deploy_names_them(tmp_path, monkeypatch):
    """The import sets hx_environment from --env; every other required key it cannot derive becomes a
    marked placeholder listed at the end (exit 0, the environment loads); a deploy refuses to run, before
    connecting, naming the placeholders of the hosts it would touch."""
    source = ordinary_layout(tmp_path)
    project, report = imported_project(tmp_path, monkeypatch, source)
    filled = {f["key"]: f for f in report["fill_in"]}
    assert set(filled) == {
        "hx_domain",
        "litellm_master_key",
        "webui_db_password",
        "webui_gateway_key",
        "webui_session_secret",
        "webui_jwt_secret",
        "backup_key",
    }
    assert filled["hx_domain"]["placeholder"] == "{{ fill_in_hx_domain }}"
    assert filled["litellm_master_key"]["placeholder"] == "{{ vault_litellm_master_key }}"
    assert filled["litellm_master_key"]["hosts"] == ["api1"] and filled["backup_key"]["hosts"] == ["web1"]
    assert sorted(filled["hx_domain"]["hosts"]) == ["api1", "app1", "web1"]
    written = (project / "inventories/imported/group_vars/all.yml").read_text()
    assert written.startswith("# written by hxinfra import-ansible") or "written by hxinfra import-ansible" in written
    assert "hx_environment: imported" in written and "hx_domain: '{{ fill_in_hx_domain }}'" in written
    env = load_environment(project / "inventories/imported.py")  # it loads
    assert env.host_data("web1")["hx_environment"] == "imported"
    assert any("fill_in_hx_domain is a placeholder" in w for w in env.warnings)

    text = CliRunner().invoke(main, ["import-ansible", str(source), "--env", "imported"])
    assert text.exit_code == 0 and "to fill in before the first deploy" in text.stderr
    assert "hx_domain" in text.stderr and "a secret: put it in the vault" in text.stderr

    root = Path(__file__).resolve().parents[1]
    (project / "deploys").rmdir()
    for part in ("deploys", "templates"):  # the project's own deploys, as a real checkout has them
        (project / part).symlink_to(root / part)
    r = CliRunner().invoke(main, ["deploy", "nginx", "--env", "imported", "--check", "--limit", "web1"])
    assert r.exit_code == 1, r.output
    assert "hx_domain is still a placeholder ({{ fill_in_hx_domain }})" in r.output and "Connecting" not in r.output

    # filled in: nothing more to fill, the same import run again replaces nothing it wrote
    (project / "inventories/imported/group_vars/all.yml").write_text("hx_environment: imported\n")
    monkeypatch.chdir(project)
    again = CliRunner().invoke(main, ["import-ansible", str(source), "--env", "imported", "--json"])
    assert again.exit_code == 1 and "give --force" in again.output  # the operator's file is never overwritten


def test_an_inventory_that_has_the_fleet_keys_gets_no_placeholder(tmp_path, monkeypatch):
    source = guide_layout(tmp_path)
    project, report = imported_project(tmp_path, monkeypatch, source)
    assert report["fill_in"] == [] and not (project / "inventories/imported/group_vars/all.yml").exists()


GUIDE_GROUPS = (
    "domain_controllers",
    "ca_servers",
    "api_servers",
    "database_servers",
    "primary_db",
    "application_servers",
    "web_servers",
    "domain_members",
    "backup_clients",
)


def test_every_group_of_the_guide_imports_beside_the_fleets_data(tmp_path, monkeypatch):
    """The project's own inventories (the fleet's group_vars, whose values reference keys only an
    environment defines) with an ordinary inventory that uses every group of the guide: it imports,
    loads, and lists; a group the fleet gives data to (api_servers, application_servers) included."""
    root = Path(__file__).resolve().parents[1]
    project = tmp_path / "project"
    shutil.copytree(root / "inventories", project / "inventories", ignore=shutil.ignore_patterns("lab*"))
    for part in ("deploys", "templates"):
        (project / part).symlink_to(root / part)
    lines = []
    for i, group in enumerate(GUIDE_GROUPS):
        lines += [f"[{group}]", f"hx-{group.replace('_', '-')}-01 ansible_host=192.0.2.{10 + i}", ""]
    lines += ["[all:vars]", "hx_domain=example.test"]
    write(tmp_path / "guide", {"hosts.ini": "\n".join(lines) + "\n"})
    monkeypatch.chdir(project)
    monkeypatch.setenv("HXINFRA_PROJECT", str(project))
    monkeypatch.delenv("HXINFRA_EXTRA_VARS", raising=False)
    r = CliRunner().invoke(main, ["import-ansible", str(tmp_path / "guide"), "--env", "guide", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["hosts"] == len(GUIDE_GROUPS)
    env = load_environment(project / "inventories/guide.py")
    assert set(GUIDE_GROUPS) <= set(env.groups)
    api = env.host_data("hx-api-servers-01")
    assert api["litellm_models"][0]["api_base"] == "http://llm.example.test:11434"  # the fleet's value, resolved
    listed = CliRunner().invoke(main, ["inventory", "list", "--env", "guide"])
    assert listed.exit_code == 0 and "hx-application-servers-01" in listed.output


@pytest.mark.parametrize(
    "group", ["web-servers", "web.eu", "1st", "_hidden", "_env", "__file__", "class", "WEB", "grüppe", "has space"]
)
def test_any_group_name_ansible_takes_imports(tmp_path, monkeypatch, group):
    write(
        tmp_path / "inv",
        {"hosts.yml": f"all:\n  children:\n    '{group}':\n      hosts: {{h1: }}\n      vars: {{probe: x}}\n"},
    )
    write(tmp_path / "inv", {f"group_vars/{group}.yml": "probe: from-file\n"})
    project, _ = imported_project(tmp_path, monkeypatch, tmp_path / "inv")
    env = load_environment(project / "inventories/imported.py")
    assert env.groups[group] == ["h1"] and env.host_data("h1")["probe"] == "from-file"
    from hxinfra.patterns import select

    assert select(group, list(env.hosts), env.groups) == ["h1"]


@pytest.mark.parametrize(
    ("name", "why"), [("../etc", "cannot name a file"), ("a/b", "cannot name a file"), ("..", "cannot name a file")]
)
def test_a_group_name_that_cannot_name_a_file_is_one_clear_error(tmp_path, name, why):
    write(tmp_path / "inv", {"hosts.yml": f"all:\n  children:\n    '{name}':\n      hosts: {{h1: }}\n"})
    with pytest.raises(InventoryError, match=f"hosts.yml: group name '{re.escape(name)}' {why}"):
        read_inventory(tmp_path / "inv")
