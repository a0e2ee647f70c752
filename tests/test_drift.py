"""Drift findings: noted by the engine's operations only while a run listens, reported per host."""

from __future__ import annotations

from html.parser import HTMLParser

from hxinfra import drift
from hxinfra.cli.drift import exit_code
from hxinfra.driftreport import DriftHost, drift_hosts, report_html, report_table
from hxinfra.runner import DeployReport, HostReport


def test_notes_are_kept_only_while_collecting_and_once_per_thing():
    drift.note("web1", "package", "curl", "not installed")  # nobody listens: dropped
    assert not drift.active()
    with drift.collecting() as found:
        assert drift.active()
        drift.note("web1", "path", "/etc/motd", "content", ["--- a/etc/motd\n", "+++ b/etc/motd\n", "-old\n", "+new\n"])
        drift.note("web1", "path", "/etc/motd", "content", ["--- a/etc/motd", "+++ b/etc/motd", "-old", "+new"])
        drift.note("web1", "service", "nginx.service", "not running")
    assert not drift.active()
    (motd, nginx) = found.of("web1")
    assert motd.diff == ("--- a/etc/motd", "+++ b/etc/motd", "-old", "+new")  # one finding, no newlines
    assert nginx.as_dict() == {"kind": "service", "name": "nginx.service", "detail": "not running"}
    assert found.of("web2") == []


def report(**hosts: HostReport) -> DeployReport:
    return DeployReport(0, True, dict(hosts))


def test_each_host_gets_a_status_its_findings_and_the_other_operations():
    with drift.collecting() as found:
        drift.note("web1", "path", "/etc/nginx/nginx.conf", "content", ["-a", "+b"])
    r = report(
        web1=HostReport("web1", changed=2, status="pending", changes=["Write nginx", "Reload nginx"]),
        web2=HostReport("web2", status="ok"),
        db1=HostReport("db1", status="unreachable", cause="connection lost during the run"),
    )
    hosts = {h.host: h for h in drift_hosts(r, found)}
    assert hosts["web1"].status == "drifted" and hosts["web1"].operations == ["Write nginx", "Reload nginx"]
    assert hosts["web2"].status == "clean" and hosts["db1"].status == "unreachable"
    assert exit_code([hosts["web2"]]) == 0
    assert exit_code([hosts["web1"], hosts["web2"]]) == 2
    assert exit_code(list(hosts.values())) == 1
    lines = report_table(list(hosts.values()))
    assert "    ~ path /etc/nginx/nginx.conf: content" in lines and "        +b" in lines
    assert "    cause: connection lost during the run" in lines
    assert lines[-1] == "3 host(s): 1 clean, 1 drifted, 1 unreachable"
    h = hosts["web1"].as_history()
    assert ("path", "/etc/nginx/nginx.conf", "content") in h.items and (
        "operation",
        "Reload nginx",
        "would run",
    ) in h.items


class Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-host" in a:
            self.hosts[a["data-host"]] = a["data-status"]


def test_the_html_report_names_each_host_with_its_status_and_escapes_what_it_shows():
    hosts = [
        DriftHost("web1", "drifted", [drift.Finding("path", "/etc/x", "content", ("-<old>", "+<script>"))]),
        DriftHost("web2", "clean"),
    ]
    page = report_html(hosts, "hxinfra drift: lab")
    parser = Sections()
    parser.feed(page)
    assert parser.hosts == {"web1": "drifted", "web2": "clean"}
    assert "<script>" not in page and "+&lt;script&gt;" in page
