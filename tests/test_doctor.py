"""hxinfra doctor on synthetic environments: clean, and one defect each, every check with its fix."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import INVENTORY

from hxinfra import doctor as doctor_module
from hxinfra.cli import main
from hxinfra.doctor import doctor
from hxinfra.inventory import load_environment
from hxinfra.pki import LocalCA
from hxinfra.secrets import encrypt

pytestmark = pytest.mark.usefixtures("fresh_keyring")

KNOWN = {"192.0.2.10": "web1", "192.0.2.11": "web2", "192.0.2.20": "db1"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def demo(project):
    """The demo environment, complete: every host's key recorded, nothing missing."""
    project("inventories/demo.py", INVENTORY)
    project("inventories/demo/known_hosts", "".join(f"{ip} {KEY}\n" for ip in KNOWN))
    return project


def run(project, *hosts: str, offline: bool = True):
    env = load_environment(project.root / "inventories/demo.py")
    return doctor(env, list(hosts or env.hosts), offline=offline)


def found(report) -> dict[str, list[tuple[str, str, list[str]]]]:
    out: dict[str, list[tuple[str, str, list[str]]]] = {}
    for f, hosts in report.findings:
        out.setdefault(f.check, []).append((f.problem, f.fix, hosts))
    return out


def test_a_complete_environment_is_ready(demo):
    report = run(demo)
    assert report.ready and report.findings == []
    assert report.checked == ["vault", "required", "known-hosts", "components", "controller"]
    assert report.skipped == ["ssh"] and report.controller["pyinfra"]


def test_a_vault_reference_nothing_defines_names_the_hosts_that_read_it(demo):
    demo("inventories/demo/group_vars/web_servers.yml", "nginx_server_name: '{{ vault_web_name }}'\n")
    ((problem, fix, hosts),) = found(run(demo))["vault"]
    assert problem == "nginx_server_name references vault_web_name, which the vault does not hold"
    assert fix == "hxinfra vault edit inventories/demo/group_vars/all/vault.yml   # add vault_web_name"
    assert hosts == ["web1", "web2"]  # db1 does not read it


def test_a_vault_file_the_given_passwords_cannot_open(demo):
    text = encrypt(b"nginx_gzip: true\n", b"not-given").strip() + "\n"
    demo("inventories/demo/group_vars/web_servers/vault.yml", text)
    ((problem, fix, hosts),) = found(run(demo))["vault"]
    assert "cannot be opened with the given passwords" in problem and "--vault-password-file" in fix
    assert hosts == ["web1", "web2"]


def test_a_placeholder_the_import_wrote_is_named_with_its_file(demo):
    demo("inventories/demo/group_vars/all.yml", "hx_domain: '{{ fill_in_hx_domain }}'\n")
    ((problem, fix, hosts),) = found(run(demo))["required"]
    assert problem == "hx_domain is still a placeholder ({{ fill_in_hx_domain }})"
    assert fix == "edit inventories/demo/group_vars/all.yml   # set hx_domain" and len(hosts) == 3


def test_a_required_key_without_a_value_is_listed_not_a_crash(demo):
    demo("inventories/demo/group_vars/all.yml", "hx_domain: ''\n")
    r = CliRunner().invoke(main, ["doctor", "--env", "demo", "--offline", "--json"])
    assert r.exit_code == 1, r.output
    findings = json.loads(r.stdout)["findings"]
    assert [f["check"] for f in findings] == ["inventory"] * 3
    assert findings[0]["problem"] == (
        "inventories/demo/group_vars/all.yml: host web1: key hx_domain: required by component hx but not set"
    )


def test_a_host_whose_key_is_not_recorded(demo):
    demo("inventories/demo/known_hosts", f"192.0.2.10 {KEY}\n192.0.2.11 {KEY}\n")
    ((problem, fix, hosts),) = found(run(demo))["known-hosts"]
    assert problem == "no recorded SSH host key for 192.0.2.20 in inventories/demo/known_hosts"
    assert fix == "hxinfra known-hosts scan --env demo --limit db1 --record" and hosts == ["db1"]


def test_a_ca_anchor_fetched_without_a_pin(demo):
    demo(
        "inventories/demo/group_vars/all.yml",
        "ca_trust_ca_host: ca1\nca_trust_certificates: [{name: hx-root-ca, from_ca_host: true}]\n",
    )
    ((problem, fix, hosts),) = found(run(demo))["ca-pin"]
    assert problem == "ca_trust_certificates[0] (hx-root-ca): read from ca1 at deploy time without a sha256 pin"
    assert fix.startswith("hxinfra run ca1 --env demo -- openssl x509 -noout -fingerprint -sha256") and len(hosts) == 3
    demo(  # pinned: nothing to say
        "inventories/demo/group_vars/all.yml",
        "ca_trust_ca_host: ca1\nca_trust_certificates: [{name: hx-root-ca, from_ca_host: true, sha256: 'AB:CD'}]\n",
    )
    assert "ca-pin" not in found(run(demo))


def test_a_certificate_of_the_data_that_ends_within_30_days(demo, tmp_path):
    ca = LocalCA(tmp_path / "ca")
    ca.init("HX Short CA", days=10)
    demo("inventories/demo/group_vars/all.yml", f"ca_trust_certificates: [{{name: short, file: {ca.cert_path}}}]\n")
    ((problem, fix, _hosts),) = found(run(demo))["certificates"]
    assert problem.startswith("CA short ends in 9 days") or problem.startswith("CA short ends in 10 days")
    assert "replace its certificate" in fix


def test_ssh_a_host_that_does_not_answer_is_named(demo):
    demo("inventories/demo/host_vars/db1.yml", "ssh_hostname: 127.0.0.1\nssh_port: 9\n")
    demo("inventories/demo/known_hosts", f"{' '.join([])}192.0.2.10 {KEY}\n192.0.2.11 {KEY}\n[127.0.0.1]:9 {KEY}\n")
    report = run(demo, "db1", offline=False)
    ((problem, _fix, hosts),) = found(report)["ssh"]
    assert problem.startswith("cannot log in as root") and hosts == ["db1"] and "ssh" in report.checked


def test_ssh_command_logs_in_as_the_inventory_says():
    data = {"ssh_user": "deploy", "ssh_key": "/k", "ssh_port": 2222, "ssh_hostname": "h", "ssh_known_hosts_file": "/kh"}
    cmd = doctor_module.ssh_command(data, "web1")
    assert cmd[-1] == "sudo -n true" and cmd[cmd.index("-l") + 1] == "deploy" and "UserKnownHostsFile=/kh" in cmd
    assert doctor_module.ssh_command({"ssh_password": "x"}, "web1") is None  # a password login: the deploy checks it
    assert doctor_module.ssh_command({}, "web1")[-2:] == ["web1", "true"]  # root needs no sudo


def test_the_controllers_tools(demo, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(doctor_module.shutil, "which", lambda t: None if t == "ssh-keyscan" else real(t))
    ((problem, fix, _),) = found(run(demo))["controller"]
    assert problem == "ssh-keyscan is not on PATH" and fix == "apt-get install openssh-client"


def test_cli_exit_codes_and_json_shape(demo):
    ok = CliRunner().invoke(main, ["doctor", "--env", "demo", "--offline", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert set(report) == {"environment", "ready", "hosts", "checked", "skipped", "controller", "findings"}
    assert report["ready"] is True and report["hosts"] == ["web1", "web2", "db1"]
    demo("inventories/demo/known_hosts", "")
    bad = CliRunner().invoke(main, ["doctor", "--env", "demo", "--offline", "--json"])
    assert bad.exit_code == 1
    findings = json.loads(bad.stdout)["findings"]
    assert [set(f) for f in findings] == [{"check", "problem", "fix", "hosts"}] * 3
    text = CliRunner().invoke(main, ["doctor", "--env", "demo", "--offline", "--limit", "db1"])
    assert text.exit_code == 1 and "demo is not ready: 1 finding(s)" in text.stderr
    assert "fix: hxinfra known-hosts scan --env demo --limit db1 --record" in text.stderr


@pytest.mark.parametrize("env_name", ["production", "staging", "development", "testing"])
def test_each_environment_lacks_only_what_an_operator_supplies(env_name, monkeypatch):
    """The repository's environments are complete up to the vault's secrets, the hosts' SSH keys and the
    CA pin: doctor --offline lists those (every host's key, the one anchor) and nothing else."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("HXINFRA_PROJECT", str(root))
    monkeypatch.delenv("HXINFRA_EXTRA_VARS", raising=False)
    env = load_environment(root / "inventories" / f"{env_name}.py")
    report = doctor(env, list(env.hosts), offline=True)
    by_check = found(report)
    by_check.pop("controller", None)  # this machine's tools, not the environment's data
    assert set(by_check) == {"vault", "known-hosts", "ca-pin"}
    assert all(" references vault_" in problem for problem, _fix, _hosts in by_check["vault"])
    assert sorted(h for _p, _f, hosts in by_check["known-hosts"] for h in hosts) == sorted(env.hosts)
    ((_problem, _fix, pinned_by),) = by_check["ca-pin"]
    assert sorted(pinned_by) == sorted(env.hosts)
