"""``--json`` means JSON on stdout in every case: an empty answer is ``[]`` (exit 0), and a run that
fails (a usage error, an unknown environment, a missing run) prints ``{"error", "exit_code"}``
besides its one line on stderr, so a script's ``jq`` never meets a human sentence."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from hxinfra.cli import VERBS, main


def _json_commands() -> Iterator[tuple[list[str], click.Command]]:
    """Every command of the CLI that takes ``--json``, with the words that name it."""

    def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(click.Context(cmd)):
                sub = cmd.get_command(click.Context(cmd), name)
                if sub is not None:
                    yield from walk(sub, [*path, name])
        if any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option)):
            yield path, cmd

    for verb in sorted(VERBS):
        command = main.get_command(click.Context(main), verb)
        assert command is not None
        yield from walk(command, [verb])


COMMANDS = {" ".join(path): cmd for path, cmd in _json_commands()}


def test_the_cli_has_json_commands_to_check() -> None:
    assert {"history", "inventory list", "doctor", "drift", "health", "import-ansible"} <= set(COMMANDS)


@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_a_failed_run_still_prints_json(words: str, tmp_path, monkeypatch) -> None:
    """Each --json command, given an environment that does not exist (or, without --env, a missing
    argument or file): exit 1 or 2, the error on stderr, and stdout one JSON document saying it."""
    monkeypatch.setenv("HXINFRA_STATE", str(tmp_path / "state"))
    cmd = COMMANDS[words]
    args = [*words.split(), "--json"]
    if any("--env" in p.opts for p in cmd.params if isinstance(p, click.Option)):
        args += ["--env", "no-such-env"]
    args += [str(tmp_path / "missing") for p in cmd.params if isinstance(p, click.Argument) and p.required]
    r = CliRunner().invoke(main, args)
    if r.exit_code == 0:  # a command that needs nothing (history with no runs, lab status): a document
        json.loads(r.stdout)
        return
    assert r.exit_code in (1, 2), (r.exit_code, r.output)
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == r.exit_code and doc["error"], doc
    assert r.stderr.strip(), "the error is said on stderr too"


def test_no_history_yet_is_an_empty_list(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HXINFRA_STATE", str(tmp_path / "fresh"))
    r = CliRunner().invoke(main, ["history", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").iterdir())  # reading creates nothing
    r = CliRunner().invoke(main, ["history", "--json", "--env", "staging", "--since", "7d"])
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    r = CliRunner().invoke(main, ["history", "show", "3", "--json"])
    assert r.exit_code == 1 and "no run history yet" in json.loads(r.stdout)["error"]


def test_a_printed_document_is_never_followed_by_another(tmp_path, monkeypatch) -> None:
    """A run that printed its document and then fails keeps stdout one document (no error appended)."""
    from hxinfra.cli.common import HxGroup, echo_json
    from hxinfra.errors import HxError

    group = HxGroup()

    @group.command("probe")
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--late", is_flag=True)
    def probe(as_json: bool, late: bool) -> None:
        if late:
            echo_json(json.dumps({"partial": True}))
        raise HxError("failed")

    r = CliRunner().invoke(group, ["probe", "--json", "--late"])
    assert r.exit_code == 1 and json.loads(r.stdout) == {"partial": True}
    r = CliRunner().invoke(group, ["probe", "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout) == {"error": "failed", "exit_code": 1}


def test_no_samples_yet_is_an_empty_report(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["metrics", "report", "--env", "testing", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"period": "7d", "hosts": {}} and "no samples yet" in r.stderr
    r = CliRunner().invoke(main, ["metrics", "report", "--env", "testing", "--json", "--store", "typo.jsonl"])
    assert r.exit_code == 1 and "no such samples file" in json.loads(r.stdout)["error"]
