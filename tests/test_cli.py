"""The click front end: inventory commands, exit codes, masking (no hosts needed)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import INVENTORY

from hxinfra.cli import main


def run(*args, **kw):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)


def test_inventory_list_graph_and_host(project):
    project("inventories/demo.py", INVENTORY)
    r = run("inventory", "list", "--env", "demo", "--json")
    assert r.exit_code == 0
    hosts = json.loads(r.output)["hosts"]
    assert [h["host"] for h in hosts] == ["web1", "web2", "db1"]
    r = run("inventory", "graph", "--env", "demo")
    assert "  |--@web_servers:\n  |  |--web1\n  |  |--web2\n" in r.output
    r = run("inventory", "host", "web1", "--env", "demo", "--json", "-e", "nginx_site_name=cli")
    data = json.loads(r.output)
    assert data["nginx_site_name"] == "cli" and data["nginx_http_port"] == 8080


def test_explain_output_names_layers(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/web_servers.yml", "nginx_site_name: grp\n")
    r = run(
        "inventory",
        "host",
        "web2",
        "--env",
        "demo",
        "--explain",
        "-e",
        "@" + str(project("extra.yml", "nginx_gzip: false\n")),
    )
    assert r.exit_code == 0
    assert 'nginx_site_name = "grp"\n    from group web_servers (inventories/group_vars/web_servers.yml)' in r.output
    assert "nginx_gzip = false\n    from extra vars (-e)\n    overrides defaults of nginx" in r.output


def test_secrets_are_masked_in_host_output(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", "vault_demo_password: hunter2-secret\n")
    r = run("inventory", "host", "web1", "--env", "demo")
    assert "hunter2-secret" not in r.output and 'vault_demo_password: "********"' in r.output


def test_errors_exit_1_with_one_line_and_usage_exits_2(project):
    project("inventories/demo.py", INVENTORY)
    r = run("inventory", "list", "--env", "nope")
    assert r.exit_code == 1 and "unknown environment 'nope' (known: demo)" in r.output
    r = run("inventory", "host", "ghost", "--env", "demo")
    assert r.exit_code == 1 and "no host 'ghost'" in r.output
    r = run("inventory", "list")
    assert r.exit_code == 2
    r = run("deploy", "site", "--env", "demo", "-e", "novalue")
    assert r.exit_code == 1 and "is not key=value" in r.output


def test_report_merge_of_shards(tmp_path):
    import json

    def report(name, hosts):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps(
                {
                    "check": False,
                    "failed": any(h["status"] == "failed" for h in hosts),
                    "changed": any(h["changed"] for h in hosts),
                    "seconds": 3.0,
                    "hosts": hosts,
                    "operations": [],
                }
            )
        )
        return str(path)

    ok = report("a", [{"host": "web1", "status": "ok", "changed": 0, "ok": 5, "failed": 0}])
    changed = report("b", [{"host": "web2", "status": "changed", "changed": 2, "ok": 3, "failed": 0}])
    r = CliRunner().invoke(main, ["report", "merge", ok, changed, "--json", "--detailed-exitcode"])
    assert r.exit_code == 2 and {h["host"] for h in json.loads(r.stdout)["hosts"]} == {"web1", "web2"}
    assert CliRunner().invoke(main, ["report", "merge", ok]).exit_code == 0
    failed = report("c", [{"host": "web3", "status": "failed", "changed": 0, "ok": 1, "failed": 1}])
    r = CliRunner().invoke(main, ["report", "merge", ok, changed, failed])
    assert r.exit_code == 1 and "3 host(s)" in r.stderr
    overlap = report("d", [{"host": "web1", "status": "ok", "changed": 0, "ok": 5, "failed": 0}])
    r = CliRunner().invoke(main, ["report", "merge", ok, overlap])
    assert r.exit_code == 1 and "in two reports" in r.stderr


def test_deploy_shard_runs_only_its_hosts(project, monkeypatch):
    """--shard K/N hands pyinfra only that shard's hosts (pyinfra itself is replaced here: nothing connects)."""
    from hxinfra import runner
    from hxinfra.options import RunOptions
    from hxinfra.patterns import shard

    project("inventories/demo.py", INVENTORY)
    project("deploys/site.py", "pass\n")
    seen: list[list[str]] = []

    def fake(root, inv, dep, hosts, *args):
        seen.append(list(hosts))
        return runner.DeployReport(0, True, {h: runner.HostReport(h) for h in hosts})

    monkeypatch.setattr(runner, "run_batch", fake)
    everyone = ["web1", "web2", "db1"]
    for k in (1, 2, 3):
        options = RunOptions.from_cli(check=True, shard=f"{k}/3")
        report = runner.run_deploy(project.root, "demo", "site", options)
        assert list(report.hosts) == shard(everyone, k, 3) and report.shard == f"{k}/3"
    assert sorted(h for hosts in seen for h in hosts) == sorted(everyone)
