"""The deploy run log: private, timestamped, redacted, and it records failures too."""

from __future__ import annotations

import re
import stat
import sys

import click
from click.testing import CliRunner
from conftest import INVENTORY

from hxinfra.cli import main
from hxinfra.runlog import RunLog, Tee
from hxinfra.secrets import register_secret

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def test_log_is_private_timestamped_and_masks_secrets(tmp_path, capsys):
    register_secret("s3cret-Log-Value-99")
    log = RunLog(tmp_path / "logs" / "deploy.log")
    tee = Tee(sys.stderr, log)
    tee.write("token s3cret-Log-Value-99 in a line\npart")
    tee.write("ial line\n" + click.style("changed", fg="yellow") + " web1\n")
    log.close()
    lines = (tmp_path / "logs" / "deploy.log").read_text().splitlines()
    assert stat.S_IMODE((tmp_path / "logs" / "deploy.log").stat().st_mode) == 0o600
    assert all(STAMPED.match(line) for line in lines)
    assert [STAMPED.sub("", line) for line in lines] == ["token ******** in a line", "partial line", "changed web1"]


def test_a_failed_deploy_is_logged_without_extra_var_values(project, tmp_path):
    project("inventories/demo.py", INVENTORY)
    project("deploys/site.py", "pass\n")
    path = tmp_path / "run.log"
    r = CliRunner().invoke(
        main,
        [
            "deploy",
            "site",
            "--env",
            "demo",
            "--limit",
            "ghost",
            "-e",
            "nginx_site_name=private-value",
            "--log-file",
            str(path),
        ],
    )
    assert r.exit_code == 1
    text = path.read_text()
    assert (
        "=== hxinfra deploy site --env demo" in text
        and "limit=ghost" in text
        and "extra-vars=nginx_site_name=…" in text
    )
    assert "error: " in text and "'ghost' matches no host or group" in text.split("error: ")[1]
    assert "private-value" not in text
