"""Facts batched per run, on real hosts: a no-op site run and a check run read each host in at most
two commands per component, and a drift is still found and mended."""

from __future__ import annotations

import re

import pytest

from tests.lab.conftest import ROOT, STACK

pytestmark = pytest.mark.lab

SITE = {"ca_trust", "ad_join", "users", "pg_auth", "litellm", "webui", "nginx", "hardening", "firewall", "backup"}


def components_of(lab, name: str) -> list[str]:
    """The site components that apply to a host, as the inventory says (its groups)."""
    import os

    from hxinfra.inventory import load_environment

    old = os.environ.get("HXINFRA_LAB")
    os.environ["HXINFRA_LAB"] = lab.lab.name
    try:
        env = load_environment(ROOT / "inventories" / "lab.py")
    finally:
        if old is None:
            os.environ.pop("HXINFRA_LAB")
        else:
            os.environ["HXINFRA_LAB"] = old
    groups = env.host_groups(env.host(name))
    return [c.name for c in env.components if c.name in SITE and c.applies_to(groups)]


def commands(output: str, name: str) -> int:
    """Commands pyinfra sent to a host, as its -vv output echoes each one ("[host] >>> ...")."""
    return len(re.findall(rf"^\[{re.escape(name)}\]\s+>>> ", output, flags=re.M))


def test_no_op_site_reads_each_host_in_at_most_two_commands_per_component(lab):
    limit = [a for h in STACK for a in ("--limit", h)]
    lab.hx_deploy("site", *limit)  # converged (the session's set-up did it; a test before may have drifted it)
    r, report = lab.hx_deploy("site", *limit, "-vv")
    assert all(h["status"] == "ok" and h["changed"] == 0 for h in report["hosts"]), r.stderr[-3000:]
    for name in STACK:
        n, comps = commands(r.stderr, name), components_of(lab, name)
        assert len(comps) >= 6, comps  # the host really runs the site
        assert 0 < n <= 2 * len(comps), f"{name}: {n} commands for {len(comps)} components"

    # a check run evaluates every operation, those a no-op run skips (_if) too: the same budget holds
    check, report = lab.hx_deploy("site", *limit, "--check", "--diff", "-vv")
    assert all(h["status"] == "ok" for h in report["hosts"]), check.stderr[-3000:]
    for name in STACK:
        n = commands(check.stderr, name)
        assert 0 < n <= 2 * len(components_of(lab, name)), f"{name}: check: {n} commands"


def test_a_drift_after_batched_reads_is_found_and_mended(lab):
    """Two managed files of two components and a stopped unit: the one batched read of the run sees
    all three, and each is put back (the read after a change is a new one, not the stale answer)."""
    name = "hx-app-01"
    lab.ssh(
        name,
        "chmod 0600 /etc/sysctl.d/90-hxinfra.conf; "
        "chmod 0640 /usr/local/sbin/hx-ca-trust-expiry && systemctl stop hx-ca-trust-expiry.timer",
    )
    r, report = lab.hx_deploy("site", "--limit", name)
    host = report["hosts"][0]
    assert host["status"] == "changed", r.stderr[-3000:]
    changed = " | ".join(host["changes"])
    assert "sysctl" in changed and "CA expiry monitor" in changed and "hx-ca-trust-expiry.timer" in changed, changed
    assert lab.host(name).file("/etc/sysctl.d/90-hxinfra.conf").mode == 0o644
    assert lab.host(name).file("/usr/local/sbin/hx-ca-trust-expiry").mode == 0o755
    assert lab.host(name).service("hx-ca-trust-expiry.timer").is_running
    again, report = lab.hx_deploy("site", "--limit", name)
    assert report["hosts"][0]["changed"] == 0, again.stderr[-3000:]
