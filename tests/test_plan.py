"""The offline plan: rendered trees per host, diffs against an earlier plan, no secrets, no SSH."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from conftest import INVENTORY, ROOT

from hxinfra.cli import main
from hxinfra.pki import LocalCA
from hxinfra.plan import host_plan_text, read_host_plan


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HXINFRA_PROJECT", str(ROOT))
    monkeypatch.delenv("HXINFRA_EXTRA_VARS", raising=False)


@pytest.mark.parametrize("env", ["production", "staging", "development", "testing"])
def test_every_environment_plans_offline(at_root, tmp_path, env):
    r = run("plan", "--env", env, "--out", str(tmp_path / env))
    assert r.exit_code == 0, r.output
    web = read_host_plan((tmp_path / env / "hx-web-01.plan").read_text())
    header, body = web["/etc/nginx/sites-available/webui.conf"]
    assert body.startswith("# managed by hxinfra") and " file 0644 root:root " in header
    assert body.count("\n") == int(header.rsplit("lines=", 1)[1])
    assert web["/etc/nginx/sites-enabled/webui.conf"][0].endswith("link -> /etc/nginx/sites-available/webui.conf")
    assert web["/etc/nginx/sites-enabled/default"] == ("/etc/nginx/sites-enabled/default  absent", "")
    dc = read_host_plan((tmp_path / env / "hx-dc-01.plan").read_text())
    assert "/usr/local/sbin/hx-ca-trust-expiry" in dc  # ca_trust is everywhere
    assert not any(path.startswith("/etc/nginx") for path in dc)  # nginx only on web_servers
    assert sorted(p.name for p in (tmp_path / env).iterdir() if p.suffix == ".plan")  # one file per host, no tree
    assert not [p for p in (tmp_path / env).iterdir() if p.is_dir()]


def test_against_shows_what_a_change_would_do(at_root, tmp_path):
    base = tmp_path / "base"
    assert run("plan", "--env", "development", "--out", str(base)).exit_code == 0
    same = run("plan", "--env", "development", "--against", str(base), "--detailed-exitcode")
    assert same.exit_code == 0 and same.stdout == ""
    r = run(
        "plan",
        "--env",
        "development",
        "--against",
        str(base),
        "-e",
        "nginx_upstream_port=3100",
        "--limit",
        "web_servers",
        "--detailed-exitcode",
    )
    assert r.exit_code == 2
    assert "--- a/hx-web-01/etc/nginx/conf.d/webui-upstream.conf" in r.stdout
    assert "-    server 192.168.10.40:3000 max_fails=2 fail_timeout=10s;" in r.stdout
    assert "+    server 192.168.10.40:3100 max_fails=2 fail_timeout=10s;" in r.stdout
    assert (
        "--- a/hx-dc-01/usr/local/sbin/hx-ca-trust-expiry" in r.stdout and "+++ /dev/null" in r.stdout
    )  # --limit: hosts left
    bad = run("plan", "--env", "development", "--against", str(tmp_path / "missing"))
    assert bad.exit_code == 1 and "no plan there" in bad.output


def test_plan_never_contains_secrets(project, tmp_path):
    project("inventories/demo.py", INVENTORY)
    ca = LocalCA(tmp_path / "ca")
    ca.init("Plan CA")
    crt, key = ca.issue("web1", ["web1.demo.example"])
    project(
        "inventories/demo/host_vars/web1.yml",
        f"ca_trust_certificates: [{{name: demo-ca, file: {ca.cert_path}}}]\n"
        f"ca_trust_host_certs: [{{name: webui, cert: {crt}, key: {key}}}]\n",
    )
    r = run("plan", "--env", "demo", "--out", str(tmp_path / "plan"))
    assert r.exit_code == 0, r.output
    written = {p: p.read_text() for p in (tmp_path / "plan").rglob("*") if p.is_file()}
    key_body = key.read_text().splitlines()[1]
    assert not any(key_body in text for text in written.values())
    web1 = read_host_plan((tmp_path / "plan/web1.plan").read_text())
    header, body = web1["/etc/ssl/hx/private/webui.key"]
    assert "sensitive file" in body and header.startswith(
        "/etc/ssl/hx/private/webui.key  file 0600 root:root sensitive"
    )
    assert "BEGIN CERTIFICATE" in web1["/usr/local/share/ca-certificates/demo-ca.crt"][1]


def test_a_host_plan_reads_back_exactly_whatever_the_lines_say():
    """Contents that look like section headers, no final newline, an empty file: read back as written."""
    from hxinfra.desired import Absent, ManagedFile, ManagedLink

    items = [
        ManagedFile("/etc/tricky", "### /etc/passwd  file 0644 root:root x  lines=1\nsecond\n"),
        ManagedFile("/etc/noeol", "no newline at the end"),
        ManagedFile("/etc/empty", ""),
        ManagedLink("/etc/l", "/etc/tricky"),
        Absent("/etc/gone"),
    ]
    back = read_host_plan(host_plan_text("h1", items))
    assert {p: b for p, (_h, b) in back.items()} == {
        "/etc/tricky": items[0].content,
        "/etc/noeol": "no newline at the end",
        "/etc/empty": "",
        "/etc/l": "",
        "/etc/gone": "",
    }
    assert back["/etc/l"][0] == "/etc/l  link -> /etc/tricky" and back["/etc/gone"][0] == "/etc/gone  absent"


def test_against_reads_a_plan_of_the_earlier_layout(at_root, tmp_path):
    """A base branch planned by an earlier hxinfra (a tree per host and .manifest files) still diffs."""
    new = tmp_path / "new"
    assert run("plan", "--env", "development", "--out", str(new), "--limit", "hx-web-01").exit_code == 0
    old = tmp_path / "old"
    (old / "hx-web-01/etc/nginx/conf.d").mkdir(parents=True)
    sections = read_host_plan((new / "hx-web-01.plan").read_text())
    lines = []
    for path, (header, body) in sections.items():
        lines.append(header.split("  lines=")[0])
        if " file " in header:
            (old / "hx-web-01" / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (old / "hx-web-01" / path.lstrip("/")).write_text(body.replace("3000", "2999"))
    (old / "hx-web-01.manifest").write_text("\n".join(lines) + "\n")
    r = run("plan", "--env", "development", "--limit", "hx-web-01", "--against", str(old))
    assert r.exit_code == 0 and "--- a/hx-web-01/etc/nginx/conf.d/webui-upstream.conf" in r.stdout
    assert "-    server 192.168.10.40:2999 max_fails=2 fail_timeout=10s;" in r.stdout


def test_plan_processes_write_the_same_files(at_root, tmp_path):
    """In a fresh interpreter (an earlier test's deploy may have let gevent patch this one, and then
    the planner does not fork): --jobs 3 really forks, and writes the files --jobs 1 writes."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from hxinfra.cli import main\n"
        "forks, real = [], os.fork\n"
        "def counted():\n"
        "    pid = real()\n"
        "    if pid: forks.append(pid)\n"
        "    return pid\n"
        "os.fork = counted\n"
        "main(sys.argv[1:])\n"
        "print('forks', len(forks))\n"
    )
    outs = {}
    for jobs in ("1", "3"):
        args = ["plan", "--env", "development", "--out", str(tmp_path / jobs), "--jobs", jobs]
        r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        summary = next(line for line in r.stderr.splitlines() if "managed path(s) on" in line)
        outs[jobs] = r.stdout + summary.split(" in ")[0]
    assert outs["1"].startswith("forks 0\n") and outs["3"].startswith("forks 2\n"), outs  # two children, and itself
    assert outs["1"].split("\n")[1] == outs["3"].split("\n")[1]  # the same count of paths and hosts
    files = sorted(p.name for p in (tmp_path / "1").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "3").iterdir()) and len(files) > 3
    assert all((tmp_path / "1" / f).read_bytes() == (tmp_path / "3" / f).read_bytes() for f in files)


def test_a_failure_in_a_plan_process_is_the_plan_s_error(project, tmp_path, monkeypatch):
    from hxinfra import plan as plan_module

    project("inventories/demo.py", INVENTORY)
    real = plan_module.host_items

    def broken(env, host, only=None):
        if host in ("web2", "db1"):  # planned by two different processes with --jobs 3
            raise plan_module.HxError(f"cannot plan {host}")
        return real(env, host, only)

    monkeypatch.setattr(plan_module, "host_items", broken)
    r = run("plan", "--env", "demo", "--out", str(tmp_path / "p"), "--jobs", "3")
    assert r.exit_code == 1 and "cannot plan web2" in r.output and "cannot plan db1" not in r.output
    ok = run("plan", "--env", "demo", "--out", str(tmp_path / "q"), "--jobs", "3", "--limit", "web1")
    assert ok.exit_code == 0 and (tmp_path / "q" / "web1.plan").is_file()


def test_plan_processes_are_not_forked_where_gevent_patched_the_process(at_root, tmp_path):
    """After a deploy in the same process (pyinfra patches it with gevent), --jobs plans in one process."""
    import subprocess
    import sys

    code = (
        "from gevent import monkey; monkey.patch_all()\n"
        "from hxinfra.cli import main\n"
        f"main(['plan', '--env', 'development', '--out', {str(tmp_path / 'p')!r}, '--jobs', '3'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "p").glob("*.plan"))) > 3


def test_planning_again_replaces_an_earlier_plan_and_touches_nothing_outside_it(project, tmp_path):
    project("inventories/demo.py", INVENTORY)
    out = tmp_path / "plan"
    assert run("plan", "--env", "demo", "--out", str(out)).exit_code == 0
    outside, linked = tmp_path / "outside.txt", tmp_path / "linked.txt"
    outside.write_text("keep me\n")
    linked.write_text("keep me too\n")
    (out / "web2.plan").unlink()
    (out / "web2.plan").symlink_to(outside)  # a link where a host's file goes: removed, never written through
    (out / "db1.plan").unlink()
    os.link(linked, out / "db1.plan")  # a second name of another file: removed, never written over
    (out / "gone-host.plan").write_text("a host no longer in the inventory\n")
    (out / "web1").mkdir()  # the earlier layout's per-host directory
    (out / "web1" / "etc").write_text("x\n")
    r = run("plan", "--env", "demo", "--out", str(out), "--limit", "web1,web2,db1")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [".hxinfra-plan", "db1.plan", "web1.plan", "web2.plan"]
    assert outside.read_text() == "keep me\n" and linked.read_text() == "keep me too\n"
    assert not (out / "web2.plan").is_symlink() and os.stat(out / "db1.plan").st_nlink == 1
    assert read_host_plan((out / "web2.plan").read_text()) and read_host_plan((out / "db1.plan").read_text())
