"""Ansible host patterns and serial batches: table tests."""

from __future__ import annotations

import pytest

from hxinfra.patterns import PatternError, batches, exceeds, parse_serial, select

HOSTS = ["hx-dc-01", "hx-web-01", "hx-web-02", "hx-web-03", "hx-db-01", "hx-db-02"]
GROUPS = {
    "web_servers": ["hx-web-01", "hx-web-02", "hx-web-03"],
    "database_servers": ["hx-db-01", "hx-db-02"],
    "primary_db": ["hx-db-01"],
    "domain_members": ["hx-web-01", "hx-web-02", "hx-web-03", "hx-db-01", "hx-db-02"],
    "canary": ["hx-web-02"],
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", HOSTS),
        ("*", HOSTS),
        ("web_servers", ["hx-web-01", "hx-web-02", "hx-web-03"]),
        ("hx-db-02", ["hx-db-02"]),
        ("hx-web-0[!3]", ["hx-web-01", "hx-web-02"]),  # a glob class ("[12]" would be a subscript, as in Ansible)
        ("*_servers", ["hx-web-01", "hx-web-02", "hx-web-03", "hx-db-01", "hx-db-02"]),  # glob on group names
        ("~hx-(web|dc)-0[13]", ["hx-dc-01", "hx-web-01", "hx-web-03"]),
        ("~web", ["hx-web-01", "hx-web-02", "hx-web-03"]),  # from the start of host AND group names (web_servers)
        ("~eb", []),  # regexes match from the start of the name, as in Ansible
        ("web_servers:database_servers", ["hx-web-01", "hx-web-02", "hx-web-03", "hx-db-01", "hx-db-02"]),
        ("web_servers,hx-dc-01", ["hx-dc-01", "hx-web-01", "hx-web-02", "hx-web-03"]),
        ("web_servers:!canary", ["hx-web-01", "hx-web-03"]),
        ("!canary:web_servers", ["hx-web-01", "hx-web-03"]),  # order written does not matter
        ("domain_members:&database_servers", ["hx-db-01", "hx-db-02"]),
        ("domain_members:&database_servers:!primary_db", ["hx-db-02"]),
        ("all:!domain_members", ["hx-dc-01"]),
        ("web_servers[0]", ["hx-web-01"]),
        ("web_servers[-1]", ["hx-web-03"]),
        ("web_servers[1:2]", ["hx-web-02", "hx-web-03"]),
        ("web_servers[1:]", ["hx-web-02", "hx-web-03"]),
        ("!canary", ["hx-dc-01", "hx-web-01", "hx-web-03", "hx-db-01", "hx-db-02"]),
    ],
)
def test_pattern_table(pattern, expected):
    if expected:
        assert select(pattern, HOSTS, GROUPS) == expected
    else:
        with pytest.raises(PatternError, match="matches no host or group"):
            select(pattern, HOSTS, GROUPS)


def test_a_limit_that_selects_no_host_is_an_error():
    """Every term matches something, yet the intersection is empty: Ansible stops there, so do we."""
    with pytest.raises(PatternError, match="selects no host"):
        select("web_servers:&database_servers", HOSTS, GROUPS)


@pytest.mark.parametrize("pattern", ["web_server", "hx-wbe-*", "web_servers:!nope", "web_servers[7]", "~(", ""])
def test_unknown_or_bad_terms_are_errors(pattern):
    with pytest.raises(PatternError):
        select(pattern, HOSTS, GROUPS)


def test_several_limits_are_a_union():
    assert select(["primary_db", "canary"], HOSTS, GROUPS) == ["hx-web-02", "hx-db-01"]


N10 = [f"h{i}" for i in range(10)]


@pytest.mark.parametrize(
    ("serial", "sizes"),
    [
        ("", [10]),
        ("0", [10]),
        ("1", [1] * 10),
        ("3", [3, 3, 3, 1]),
        ("100%", [10]),
        ("25%", [2, 2, 2, 2, 2]),  # 2.5 rounds down
        ("5%", [1] * 10),  # at least one host
        ("1,5,25%", [1, 5, 2, 2]),  # a ramp; the last size repeats
        ("1,50%", [1, 5, 4]),
        ("20", [10]),
    ],
)
def test_serial_batches(serial, sizes):
    got = batches(N10, parse_serial(serial))
    assert [len(b) for b in got] == sizes
    assert [h for b in got for h in b] == N10  # every host once, in order


@pytest.mark.parametrize("bad", ["x", "0%", "101%", "-1", "1,,2"])
def test_bad_serial_values(bad):
    with pytest.raises(PatternError):
        parse_serial(bad)


def test_max_fail_percentage():
    assert exceeds(1, 4, 0) and not exceeds(0, 4, 0)
    assert not exceeds(1, 4, 25) and exceeds(2, 4, 25)
    assert not exceeds(4, 4, 100)


def test_shards_split_hosts_stably_without_overlap():
    from hxinfra.patterns import parse_shard, shard

    hosts = [f"hx-web-{i:03d}" for i in range(200)]
    parts = [shard(hosts, k, 4) for k in range(1, 5)]
    assert sorted(h for p in parts for h in p) == sorted(hosts)  # every host in exactly one shard
    assert all(30 <= len(p) <= 70 for p in parts)  # and roughly even
    # a host stays in its shard whatever else is selected (stable across runs and limits)
    assert shard(hosts[:50], 2, 4) == [h for h in parts[1] if h in hosts[:50]]
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for bad in ("0/4", "5/4", "a/b", "3"):
        with pytest.raises(PatternError):
            parse_shard(bad)
