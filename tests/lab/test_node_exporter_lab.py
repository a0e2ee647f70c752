"""The node exporter on a real host: turned on for one host by data, converged, a second run changes
nothing; its metrics reach the scraper the data names and no other host (real TCP connections and a
real HTTP client); its health checks pass there; a bad collector is refused by the exporter's own
parse and the running exporter keeps serving; backups hold its arguments file."""

from __future__ import annotations

import json
import shlex

import pytest

from deploys.node_exporter import COMPONENT
from deploys.node_exporter.config import ARGS_FILE, DEFAULTS, METRICS_PROBE

pytestmark = pytest.mark.lab

HOST, SCRAPER, OTHER = "hx-db-02", "hx-api-01", "hx-app-01"


def reaches(lab, src: str, dst: str, port: int) -> bool:
    r = lab.ssh(src, f"timeout 3 bash -c '</dev/tcp/{lab.ip(dst)}/{port}' 2>/dev/null", check=False)
    return r.returncode == 0


def on(lab, **more) -> str:
    return json.dumps(
        {
            "node_exporter_enabled": True,
            "node_exporter_scrapers": [f"{lab.ip(SCRAPER)}/32"],
            "node_exporter_collectors": ["processes"],
            **more,
        }
    )


def test_node_exporter_converges_serves_its_scraper_only_and_refuses_a_bad_collector(lab):
    lab.ssh(SCRAPER, "command -v python3 >/dev/null")  # the scraper's HTTP client
    r, report = lab.hx_deploy("node_exporter", "--limit", HOST, "-e", on(lab))
    assert report["hosts"][0]["status"] == "changed", r.stderr[-3000:]
    r, again = lab.hx_deploy("node_exporter", "--limit", HOST, "-e", on(lab), "--detailed-exitcode")
    assert r.returncode == 0 and again["hosts"][0]["changed"] == 0, r.stderr[-3000:]

    host = lab.host(HOST)
    assert host.service("prometheus-node-exporter").is_running
    assert host.service("prometheus-node-exporter").is_enabled
    assert host.socket(f"tcp://{lab.ip(HOST)}:9100").is_listening
    assert not host.socket("tcp://0.0.0.0:9100").is_listening  # its own address, never every address
    args = host.file(ARGS_FILE)
    assert args.content_string.startswith("# managed by hxinfra") and f"{lab.ip(HOST)}:9100" in args.content_string
    assert not host.package("prometheus-node-exporter-collectors").is_installed  # no recommends

    # the firewall opens the port from the component's declaration: to the scraper, to nobody else
    r, report = lab.hx_deploy("firewall", "--limit", HOST, "-e", on(lab))
    assert report["hosts"][0]["status"] in ("changed", "ok"), r.stderr[-3000:]
    url = f"http://{lab.ip(HOST)}:9100/metrics"
    scraped = lab.ssh(SCRAPER, f"python3 -c {shlex.quote(METRICS_PROBE)} {shlex.quote(url)}")
    assert scraped.stdout.startswith("node_uname_info") and "hx-db-02" in scraped.stdout
    assert reaches(lab, SCRAPER, HOST, 9100) and not reaches(lab, OTHER, HOST, 9100)
    metrics = lab.run("curl", "-fsS", "--max-time", "10", url).stdout  # the controller: a trusted source
    assert "node_processes_threads " in metrics  # the collector the data turned on

    # its declared health checks, run on the host as hxinfra health runs them
    data = {**DEFAULTS, **json.loads(on(lab)), "ssh_hostname": lab.ip(HOST)}
    for check in COMPONENT.health(data, HOST):
        result = lab.ssh(HOST, check.command, check=False)
        assert result.returncode == 0, f"{check.name}: {result.stdout}{result.stderr}"

    # backups hold its arguments file once it is on
    lab.hx_deploy("backup", "--limit", HOST, "-e", on(lab))
    assert ARGS_FILE in host.file("/usr/local/sbin/hx-backup").content_string

    # a collector the exporter does not know: refused by its own parse, the previous file back, still serving
    before = host.file(ARGS_FILE).sha256sum
    r, bad = lab.hx_deploy(
        "node_exporter", "--limit", HOST, "-e", on(lab, node_exporter_collectors=["bogus"]), check=False
    )
    assert r.returncode == 1 and bad["hosts"][0]["status"] == "failed"
    assert "unknown long flag '--collector.bogus'" in r.stderr, r.stderr[-3000:]
    assert host.file(ARGS_FILE).sha256sum == before
    assert "node_uname_info" in lab.run("curl", "-fsS", "--max-time", "10", url).stdout


def test_node_exporter_off_again_leaves_the_host_as_the_site_has_it(lab):
    """The other tests' hosts as the lab's data has them: the port closed, the backup's list without it."""
    lab.ssh(HOST, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq prometheus-node-exporter >/dev/null")
    for name in ("firewall", "backup"):
        r, report = lab.hx_deploy(name, "--limit", HOST)
        assert report["hosts"][0]["status"] in ("changed", "ok"), r.stderr[-3000:]
    assert not reaches(lab, SCRAPER, HOST, 9100)
    assert ARGS_FILE not in lab.host(HOST).file("/usr/local/sbin/hx-backup").content_string
