"""The node exporter's desired arguments file, computed offline from host data alone, its checks,
and what the firewall, the backup and health collect of its declarations."""

from __future__ import annotations

import pytest

from deploys.backup.config import contents
from deploys.firewall.config import DEFAULTS as FIREWALL
from deploys.firewall.config import openings as firewall_openings
from deploys.node_exporter import COMPONENT
from deploys.node_exporter.config import ARGS_FILE, DEFAULTS, check_command, check_data, desired_config

ON = {**DEFAULTS, "node_exporter_enabled": True, "ssh_hostname": "10.1.0.50", "hx_admin_networks": ["10.9.0.0/24"]}


def args_line(data):
    (item,) = desired_config(data)
    assert item.path == ARGS_FILE and item.content.startswith("# managed by hxinfra")
    return next(line for line in item.content.splitlines() if line.startswith("ARGS="))


def test_off_by_default_it_manages_declares_and_checks_nothing():
    off = {**DEFAULTS, "ssh_hostname": "10.1.0.50"}
    assert desired_config(off) == [] and COMPONENT.plan(off, "h") == []
    assert COMPONENT.openings(off, "h") == [] and COMPONENT.backup(off, "h").paths == ()
    assert COMPONENT.health(off, "h") == []


def test_arguments_listen_on_the_hosts_address_with_the_collectors():
    assert args_line(ON) == (
        'ARGS="--web.listen-address=10.1.0.50:9100 --collector.textfile.directory=/var/lib/prometheus/node-exporter"'
    )
    custom = {
        **ON,
        "node_exporter_listen_address": "127.0.0.1",
        "node_exporter_port": 9200,
        "node_exporter_collectors": ["processes"],
        "node_exporter_disabled_collectors": ["wifi", "infiniband"],
    }
    assert args_line(custom) == (
        'ARGS="--web.listen-address=127.0.0.1:9200 --collector.textfile.directory=/var/lib/prometheus/node-exporter'
        ' --collector.processes --no-collector.wifi --no-collector.infiniband"'
    )


def test_the_validator_is_the_exporters_own_parse_of_the_file():
    assert check_command(ON) == (
        "sh -c '. /etc/default/prometheus-node-exporter && exec /usr/bin/prometheus-node-exporter $ARGS --version'"
    )  # no redirection: on a failure config_set shows what it printed, the exporter's own error


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("node_exporter_collectors", ["systemd --web.config.file=/x"], "node_exporter_collectors[0]"),
        ("node_exporter_disabled_collectors", ["Wifi"], "node_exporter_disabled_collectors[0]"),
        ("node_exporter_scrapers", ["10.0.0.0/33"], "node_exporter_scrapers[0]"),
        ("node_exporter_port", 70000, "node_exporter_port"),
        ("node_exporter_listen_address", "0.0.0.0; rm -rf /", "node_exporter_listen_address"),
        ("node_exporter_textfile_dir", "/var/lib/node exporter", "must be an absolute path"),
        ("node_exporter_textfile_dir", 'relative/"dir', "node_exporter_textfile_dir"),
    ],
)
def test_every_value_that_reaches_the_file_or_the_firewall_has_its_shape(key, value, message):
    problems = check_data({**ON, key: value})
    assert [k for k, _ in problems] == [key] and message in "; ".join(f"{k}: {p}" for k, p in problems)


def test_the_firewall_opens_its_port_to_the_scrapers_only_where_it_is_on():
    base = {**FIREWALL, "hx_subnet": "10.1.0.0/24", "hx_members": {}}
    on = {**base, **ON}
    ports = {o.port: o for o in firewall_openings(on, set())}
    assert ports[9100].sources == ("10.9.0.0/24",) and not ports[9100].anywhere  # [] = the admin networks
    scraped = {o.port: o for o in firewall_openings({**on, "node_exporter_scrapers": ["10.7.0.5"]}, set())}
    assert scraped[9100].sources == ("10.7.0.5/32",)
    assert 9100 not in {o.port for o in firewall_openings({**base, **DEFAULTS}, set())}


def test_the_backup_holds_its_arguments_and_textfile_directory_where_it_is_on():
    assert {ARGS_FILE, "/var/lib/prometheus/node-exporter"} <= set(contents(ON).paths)
    assert ARGS_FILE not in contents({**DEFAULTS}).paths


def test_health_checks_its_service_port_and_metrics():
    checks = COMPONENT.health(ON, "h")
    assert [c.name for c in checks] == [
        "service prometheus-node-exporter.service is active",
        "port 10.1.0.50:9100 is listening",
        "the exporter serves the host's metrics",
    ]
    assert "http://10.1.0.50:9100/metrics" in checks[2].command and {c.service for c in checks} == {"node_exporter"}
