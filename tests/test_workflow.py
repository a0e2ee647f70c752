"""The GitHub Actions workflow: valid, runs the README's test command, posts the plan diff."""

from __future__ import annotations

import os
import subprocess

import yaml
from conftest import ROOT


def test_workflow_runs_the_tests_and_the_plan_diff():
    wf = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    jobs = wf["jobs"]
    test_steps = " ".join(str(s.get("run", "")) for s in jobs["test"]["steps"])
    readme = (ROOT / "README.md").read_text()
    assert "make test" in test_steps and "make test    # runs every test" in readme
    plan_steps = " ".join(str(s.get("run", "")) for s in jobs["plan"]["steps"])
    assert ".github/plan-diff.sh" in plan_steps and "gh pr comment" in plan_steps
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    script = ROOT / ".github/plan-diff.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for env in ("production", "staging", "development", "testing"):
        assert env in script.read_text()
