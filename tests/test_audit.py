"""hxinfra audit's pure parts: controls per standard, one script per host, results with evidence,
the reports; and the controls the components add."""

from __future__ import annotations

import json
import subprocess

from hxinfra.audit import BASE, Control, as_json, host_controls, parse, report_html, script, select, table

PASS = Control("passes", "always compliant", "echo evidence-ok", {"pci_dss": "1.1"})
FAIL = Control("fails", "never compliant", "echo 'bad thing'; false", {"cis_basic": "9.9"})


def run(controls):
    out = subprocess.run(["bash", "-c", script(controls)], capture_output=True, text=True).stdout.splitlines()
    return parse("h1", controls, out)


def test_each_control_gives_its_result_and_evidence():
    audit = run([PASS, FAIL])
    assert [(r.id, r.passed, r.evidence) for r in audit.results] == [
        ("passes", True, ["evidence-ok"]),
        ("fails", False, ["bad thing"]),
    ]
    assert audit.failed == ["fails"]
    cut = parse("h1", [PASS, FAIL], ["evidence-ok", "@@hxinfra-check 0 0"])  # the script stopped early
    assert cut.failed == ["fails"] and cut.results[1].evidence == ["no result"]


def test_a_standard_selects_its_controls_and_names_their_requirements():
    assert select([PASS, FAIL], "pci_dss") == [PASS] and select([PASS, FAIL], None) == [PASS, FAIL]
    assert all({"cis_basic", "pci_dss"} <= set(c.requirements) for c in BASE if c.id != "root-listeners-expected")
    lines = table([run([PASS, FAIL])], "cis_basic")
    assert (
        "h1             FAIL  1/2 controls" in lines
        and "  FAIL  fails [cis_basic 9.9]: never compliant -- bad thing" in lines
    )
    data = json.loads(as_json([run([PASS])], "pci_dss"))
    assert data["standard"] == "pci_dss" and data["hosts"][0]["passed"] is True
    page = report_html([run([PASS, FAIL])], "audit <x>", None)
    assert "<svg" in page and "audit &lt;x&gt;" in page and "bad thing" in page and "pci_dss 1.1" in page


def test_components_add_their_controls_where_they_apply():
    from deploys import components

    comps = components()
    data = {c: v for comp in comps for c, v in comp.defaults.items()}
    data.update({"hx_subnet": "10.1.0.0/24", "hx_groups": ["database_servers"], "hx_members": {}})
    ids = [c.id for c in host_controls(comps, ["database_servers"], data, "hx-db-01")]
    assert ids[: len(BASE)] == [c.id for c in BASE]
    assert {"ssh-no-passwords", "firewall-default-deny", "firewall-rules-as-derived", "postgresql-no-trust"} <= set(ids)
    web = [c.id for c in host_controls(comps, ["web_servers"], data, "hx-web-01")]
    assert "postgresql-no-trust" not in web and "ssh-no-passwords" in web
    # root listeners: the ones every host may have, plus those the components declare
    from hxinfra.components import Component

    extra = Component("hx_test", {}, root_listeners=("hx-test-daemon",))
    listeners = next(
        c for c in host_controls([*comps, extra], ["web_servers"], data, "h") if c.id == "root-listeners-expected"
    ).command
    assert "^(sshd|systemd|systemd-resolve|nginx|chronyd|hx-test-daemon|smbd|samba|" in listeners


def test_the_shared_controls_run_read_only_here():
    """Every shared control runs on this machine and gives a result (whatever its verdict here)."""
    audit = run(list(BASE))
    assert [r.id for r in audit.results] == [c.id for c in BASE]
    assert all(r.evidence for r in audit.results)
