"""The run history: written at the end of every run, readable, migrated, and never in a run's way."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import click
import pytest
from click.testing import CliRunner

from hxinfra import history
from hxinfra.history import HostResult, Run


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv(history.STATE_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def a_run(**kw):
    hosts = [
        HostResult("web1", "changed", changed=2, ok=5, items=[("path", "/etc/nginx/nginx.conf", "content")]),
        HostResult("db1", "failed", failed=1, cause="No space left on device"),
    ]
    return Run("deploy", env="staging", target="site", selection="web1,db1", tags="nginx", hosts=hosts, **kw)


def test_a_run_is_written_and_read_back_with_its_hosts_and_items(state, tmp_path):
    run_id = history.write(a_run(), 1, tmp_path)
    assert (state / history.FILE).stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    (row,) = history.runs()
    assert row["id"] == run_id and row["verb"] == "deploy" and row["outcome"] == "failed" and row["exit_code"] == 1
    assert row["env"] == "staging" and row["selection"] == "web1,db1" and row["tags"] == "nginx"
    assert row["user"] and row["controller"] and row["ended"] >= row["started"]
    assert [h["host"] for h in row["hosts"]] == ["db1", "web1"]
    shown = history.show(run_id)
    web = next(h for h in shown["hosts"] if h["host"] == "web1")
    assert web["items"] == [{"kind": "path", "name": "/etc/nginx/nginx.conf", "detail": "content"}]
    assert next(h for h in shown["hosts"] if h["host"] == "db1")["cause"] == "No space left on device"


def test_the_commit_and_a_dirty_tree_are_recorded(state, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f").write_text("1\n")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    clean = history.write(a_run(), 0, repo)
    (repo / "f").write_text("2\n")
    dirty = history.write(a_run(), 0, repo)
    assert history.show(clean)["commit_id"] == head and history.show(clean)["dirty"] == 0
    assert history.show(dirty)["dirty"] == 1
    outside = history.write(a_run(), 0, tmp_path / "nowhere")
    assert history.show(outside)["commit_id"] == ""


def test_selection_by_environment_host_and_age(state, tmp_path):
    old = history.write(Run("health", env="production", started=1.0, hosts=[HostResult("p1", "ok")]), 0, tmp_path)
    new = history.write(a_run(), 1, tmp_path)
    assert [r["id"] for r in history.runs()] == [new, old]
    assert [r["id"] for r in history.runs(env="production")] == [old]
    assert [r["id"] for r in history.runs(host="web1")] == [new]
    assert [r["id"] for r in history.runs(since=history.parse_since("7d"))] == [new]
    with pytest.raises(ValueError, match="--since 'soon'"):
        history.parse_since("soon")


def test_outcomes_follow_the_exit_and_the_hosts():
    assert history.outcome_of(Run("deploy", hosts=[HostResult("a", "ok")]), 0) == "ok"
    assert history.outcome_of(Run("deploy", hosts=[HostResult("a", "changed")]), 0) == "changed"
    assert history.outcome_of(Run("deploy", hosts=[HostResult("a", "changed")]), 2) == "changed"
    assert history.outcome_of(Run("drift", hosts=[HostResult("a", "drifted")]), 2) == "drift"
    assert history.outcome_of(Run("deploy", hosts=[HostResult("a", "unreachable")]), 1) == "failed"
    assert history.outcome_of(Run("deploy", error="wrong vault password"), 1) == "error"


def test_an_older_schema_is_migrated_and_a_newer_one_refused(state, tmp_path):
    state.mkdir(mode=0o700)
    conn = sqlite3.connect(state / history.FILE)
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    history.write(a_run(), 0, tmp_path)  # version 0 (an empty file) is migrated to the current one
    conn = sqlite3.connect(state / history.FILE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == history.VERSION
    conn.execute(f"PRAGMA user_version = {history.VERSION + 1}")
    conn.close()
    with pytest.raises(history.HistoryError, match="newer than this hxinfra's"):
        history.runs()


def test_a_broken_or_locked_history_warns_and_the_run_goes_on(state, tmp_path, capsys, monkeypatch):
    state.mkdir(mode=0o700)
    (state / history.FILE).write_bytes(b"this is not a database" * 100)
    assert history.record(a_run(), 0, tmp_path) is None
    assert "hxinfra: warning: this run is not in the history:" in capsys.readouterr().err
    (state / history.FILE).unlink()
    history.write(a_run(), 0, tmp_path)
    monkeypatch.setattr(history, "LOCK_WAIT", 0.2)
    holder = sqlite3.connect(state / history.FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process is writing and does not let go
    try:
        assert history.record(a_run(), 0, tmp_path) is None
        assert "database is locked" in capsys.readouterr().err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(history.runs()) == 1


def test_a_recorded_command_records_its_hosts_its_exit_and_its_error(state, monkeypatch):
    @click.command()
    @click.option("--env", "env_name")
    @click.option("--limit", multiple=True)
    @click.option("--fail", is_flag=True)
    @click.option("--boom", is_flag=True)
    @history.recorded("health")
    def cmd(env_name: str, limit: tuple[str, ...], fail: bool, boom: bool) -> None:
        if boom:
            raise RuntimeError("the vault could not be opened")
        history.set_hosts([HostResult("h1", "failed" if fail else "ok")])
        if fail:
            raise SystemExit(1)

    runner = CliRunner()
    assert runner.invoke(cmd, ["--env", "lab", "--limit", "h1"]).exit_code == 0
    assert runner.invoke(cmd, ["--env", "lab", "--fail"]).exit_code == 1
    assert runner.invoke(cmd, ["--env", "lab", "--boom"]).exit_code == 1
    assert runner.invoke(cmd, ["--nope"]).exit_code == 2  # a usage error is not a run
    boom, failed, ok = history.runs()
    assert (ok["outcome"], ok["exit_code"], ok["selection"], ok["env"]) == ("ok", 0, "h1", "lab")
    assert (failed["outcome"], failed["exit_code"]) == ("failed", 1)
    assert (boom["outcome"], boom["error"]) == ("error", "the vault could not be opened")
    monkeypatch.setenv("HXINFRA_HISTORY", "off")
    assert runner.invoke(cmd, ["--env", "lab"]).exit_code == 0
    assert len(history.runs()) == 3


def test_history_lists_and_shows_runs(state, tmp_path, monkeypatch):
    from hxinfra.cli import main

    monkeypatch.setenv("HXINFRA_PROJECT", str(tmp_path))  # the CLI's project: the one the run was recorded in
    run_id = history.write(a_run(), 1, tmp_path)
    runner = CliRunner()
    listed = runner.invoke(main, ["history", "--env", "staging"])
    assert listed.exit_code == 0 and f"{run_id:>5}" in listed.output and "deploy site" in listed.output
    assert "1 changed, 1 failed" in listed.output
    shown = runner.invoke(main, ["history", "show", str(run_id)])
    assert shown.exit_code == 0 and "cause: No space left on device" in shown.output
    assert "~ path /etc/nginx/nginx.conf: content" in shown.output
    missing = runner.invoke(main, ["history", "show", "999"])
    assert missing.exit_code == 1 and "no run 999" in missing.output
    assert runner.invoke(main, ["history", "--since", "x"]).exit_code == 2


def _project(tmp_path, name: str, config: str | None = None):
    root = tmp_path / name
    (root / "inventories").mkdir(parents=True)
    (root / "deploys").mkdir()
    if config is not None:
        (root / "pyproject.toml").write_text(config)
    return root


def test_a_run_names_its_project_and_checkouts_of_one_named_project_share_it(state, tmp_path, monkeypatch):
    """Two checkouts whose pyproject.toml names the same project are one project; a checkout that
    names none is its own (by its directory); HXINFRA_PROJECT_NAME names it from outside."""
    named = '[project]\nname = "x"\n\n[tool.hxinfra]\nproject = "hx-fleet"\n'
    first, second = _project(tmp_path, "a", named), _project(tmp_path, "b", named)
    loose = _project(tmp_path, "c", '[project]\nname = "x"\n')
    assert history.project_of(first) == history.project_of(second) == "hx-fleet"
    assert history.project_of(loose) == f"path:{loose.resolve()}" != history.project_of(_project(tmp_path, "d"))
    assert history.project_of(None) == ""
    monkeypatch.setenv(history.PROJECT_ENV, "ci-shards")
    assert history.project_of(first) == history.project_of(loose) == "ci-shards"
    for bad in ("two\nlines", "a b", "-x", "x" * 101):
        monkeypatch.setenv(history.PROJECT_ENV, bad)
        with pytest.raises(history.HistoryError, match="not a project name"):
            history.project_of(first)
    monkeypatch.delenv(history.PROJECT_ENV)
    wrong = _project(tmp_path, "e", "[tool.hxinfra]\nproject = 7\n")
    with pytest.raises(history.HistoryError, match="a name, got int"):
        history.project_of(wrong)


def test_history_shows_this_projects_runs_unless_all_are_asked_for(state, tmp_path, monkeypatch):
    """Runs of another checkout on the same controller stay out of this project's history and
    dashboard; --all-projects shows every run with its project; runs recorded before projects
    were recorded (schema 1) are kept, named as such, and counted when they are left out."""
    from hxinfra.cli import main

    named = '[tool.hxinfra]\nproject = "hx-fleet"\n'
    ours, theirs = _project(tmp_path, "ours", named), _project(tmp_path, "theirs")
    # a history of schema 1 with one run in it, as an older hxinfra left it
    state.mkdir(mode=0o700)
    old = sqlite3.connect(state / history.FILE)
    old.executescript(history.MIGRATIONS[0])
    old.execute(
        "INSERT INTO runs (verb, env, started, ended, user, controller, outcome, exit_code) "
        "VALUES ('deploy', 'oldenv', 1, 2, 'u', 'c', 'ok', 0)"
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    mine = history.write(a_run(), 0, ours)
    other = history.write(Run("drift", env="theirenv"), 0, theirs)
    assert [r["id"] for r in history.runs(project="hx-fleet")] == [mine]
    assert {r["id"]: r["project"] for r in history.runs()} == {mine: "hx-fleet", other: f"path:{theirs}", 1: ""}
    runner = CliRunner()
    monkeypatch.setenv("HXINFRA_PROJECT", str(ours))
    listed = runner.invoke(main, ["history", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.stdout)] == [mine]
    assert "1 run(s) recorded before runs named their project are left out" in listed.stderr
    every = runner.invoke(main, ["history", "--all-projects"])
    assert every.exit_code == 0 and "theirenv" in every.output and "oldenv" in every.output
    assert "hx-fleet" in every.output and f"path:{theirs}"[:16] in every.output
    shown = runner.invoke(main, ["history", "show", "1"])
    assert "recorded before runs named their project" in shown.output


@pytest.mark.parametrize("verb", [["history"], ["dashboard", "--out", "site"], ["watch", "status"]])
def test_a_project_name_that_cannot_be_one_is_a_one_line_error(state, tmp_path, monkeypatch, verb):
    from hxinfra.cli import main

    monkeypatch.setenv(history.PROJECT_ENV, "two words")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HXINFRA_PROJECT", str(_project(tmp_path, "p")))
    r = CliRunner().invoke(main, verb)
    assert r.exit_code == 1 and "'two words' is not a project name" in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)  # no traceback
