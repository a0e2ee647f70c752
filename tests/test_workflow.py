"""The GitHub Actions workflow: valid against the workflow schema, lints and tests on every push,
runs the README's test command, posts the plan diff."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT


def test_workflow_runs_lint_and_the_tests_on_every_push_and_the_plan_diff():
    wf = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"] is None or "branches" not in (triggers["push"] or {})  # every branch
    assert "pull_request" in triggers
    jobs = wf["jobs"]
    test_steps = " ".join(str(s.get("run", "")) for s in jobs["test"]["steps"])
    assert ".ci/run" in test_steps
    ci = (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make lint" in ci and "make test" in ci and "make test    # runs every test" in readme
    plan_steps = " ".join(str(s.get("run", "")) for s in jobs["plan"]["steps"])
    assert ".github/plan-diff.sh" in plan_steps and "gh pr comment" in plan_steps
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    script = ROOT / ".github/plan-diff.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for env in ("production", "staging", "development", "testing"):
        assert env in script.read_text()


def test_workflow_is_valid_against_the_github_workflow_schema(tmp_path):
    """check-jsonschema ships the schema GitHub workflows follow (no network needed)."""
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is a dev dependency (pip install -e '.[dev]')"
    r = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(ROOT / ".github/workflows/ci.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    broken = ROOT / ".github/workflows/ci.yml"
    bad = yaml.safe_load(broken.read_text())
    bad["jobs"]["test"]["runs-on"] = {"not": "a runner"}
    bad["jobs"]["test"]["steps"][0] = {"uses": 3}
    tmp = tmp_path / "bad-workflow.yml"
    tmp.write_text(yaml.safe_dump(bad))
    r = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(tmp)], capture_output=True, text=True, check=False
    )
    assert r.returncode != 0  # the check can fail
