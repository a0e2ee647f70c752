"""What is shared between hosts (hxinfra.memo) is shared only where the result cannot differ."""

from __future__ import annotations

from collections import ChainMap

import pytest
from conftest import INVENTORY

from hxinfra.errors import InventoryError
from hxinfra.inventory import load_environment
from hxinfra.memo import Reads, TraceMemo


def _counting(fn):
    calls = []

    def wrapped(data):
        calls.append(1)
        return fn(data)

    wrapped.calls = calls
    return wrapped


def test_a_result_is_kept_by_the_very_values_read_and_nothing_else():
    shared, other = ["10.0.0.0/8"], ["192.0.2.0/24"]
    check = _counting(lambda d: [("net", n) for n in d["net"]] + ([("x", "on")] if d.get("x") else []))
    memo: TraceMemo[list] = TraceMemo()
    first = memo.call(check, {"net": shared, "host": "a", "unread": 1})
    # another host: its own name and unread keys differ, the values read are the same objects
    assert memo.call(check, {"net": shared, "host": "b", "unread": 2}) == first and len(check.calls) == 1
    # an equal list that is another object: not assumed equal, run again
    assert memo.call(check, {"net": list(shared), "host": "c"}) == first and len(check.calls) == 2
    assert memo.call(check, {"net": other}) == [("net", "192.0.2.0/24")] and len(check.calls) == 3
    # a key read while absent, then present: the branch it takes differs, so it runs again
    assert memo.call(check, {"net": shared, "x": True})[-1] == ("x", "on") and len(check.calls) == 4


@pytest.mark.parametrize(
    "read_all",
    [
        lambda d: dict(d),
        lambda d: {**d},
        lambda d: list(d),
        lambda d: len(d),
        lambda d: list(d.items()),
        lambda d: d == {},
        lambda d: ChainMap({}, d).keys() and list(ChainMap({}, d)),
    ],
)
def test_a_function_that_sees_every_key_is_never_kept(read_all):
    fn = _counting(read_all)
    memo: TraceMemo[object] = TraceMemo()
    data = {"a": [1]}
    memo.call(fn, data)
    memo.call(fn, data)
    assert len(fn.calls) == 2


def test_reads_notes_each_key_and_what_it_found():
    r = Reads({"a": 1, "b": None})
    assert r["a"] == 1 and r.get("b", "d") is None and r.get("zz", 5) == 5 and "c" not in r
    with pytest.raises(KeyError):
        r["missing"]
    assert set(r.read) == {"a", "b", "zz", "c", "missing"} and not r.everything


GROUP = """
from deploys import components as _components
from hxinfra.inventory import environment as _environment

_env = _environment(
    __file__,
    data={"hx_environment": "demo", "hx_domain": "demo.example"},
    hosts={f"web{i}": {"address": f"192.0.2.{10 + i}", "groups": ["web_servers"]} for i in range(1, 4)},
    components=_components(),
)
globals().update(_env.pyinfra_groups())
"""


def test_a_group_value_that_references_a_host_key_resolves_per_host(project):
    project("inventories/demo.py", GROUP)
    project(
        "inventories/group_vars/web_servers.yml",
        """\
        nginx_server_name: "{{ hx_host }}.{{ hx_domain }}"
        firewall_trusted_sources: ["{{ ssh_hostname }}/32", "198.51.100.0/24"]
    """,
    )
    env = load_environment(project.root / "inventories/demo.py")
    for i in range(1, 4):
        data = env.host_data(f"web{i}")
        assert data["nginx_server_name"] == f"web{i}.demo.example"
        assert data["firewall_trusted_sources"] == [f"192.0.2.{10 + i}/32", "198.51.100.0/24"]
    # the same references to the same values: one result, shared by every host's data
    project(
        "inventories/group_vars/web_servers.yml",
        """\
        admin_net: 198.51.100.0/24
        firewall_trusted_sources: ["{{ admin_net }}"]
    """,
    )
    env = load_environment(project.root / "inventories/demo.py")
    assert env.host_data("web1")["firewall_trusted_sources"] == ["198.51.100.0/24"]
    assert env.host_data("web1")["firewall_trusted_sources"] is env.host_data("web3")["firewall_trusted_sources"]


def test_one_host_with_a_bad_value_is_named_among_hosts_that_share_the_rest(project):
    project("inventories/demo.py", GROUP)
    project("inventories/demo/host_vars/web2.yml", "firewall_rollback_seconds: 5\n")
    with pytest.raises(InventoryError) as exc:
        load_environment(project.root / "inventories/demo.py")
    lines = [line for line in str(exc.value).splitlines() if "firewall_rollback_seconds" in line]
    assert len(lines) == 1 and "host web2: key firewall_rollback_seconds: " in lines[0]


def test_a_bad_group_value_is_named_for_every_host_that_reads_it(project):
    project("inventories/demo.py", GROUP)
    project("inventories/group_vars/web_servers.yml", "firewall_trusted_sources: [not-a-network]\n")
    with pytest.raises(InventoryError) as exc:
        load_environment(project.root / "inventories/demo.py")
    hosts = [h for h in ("web1", "web2", "web3") if f"host {h}: key firewall_trusted_sources" in str(exc.value)]
    assert hosts == ["web1", "web2", "web3"]


def test_shared_validation_gives_the_same_answers_as_checking_each_host_alone(project):
    """The demo inventory, then each host in an inventory of its own: the same problems per host."""
    project("inventories/demo.py", INVENTORY)
    project("inventories/demo/host_vars/web2.yml", "nginx_gzip: 1\n")
    with pytest.raises(InventoryError) as together:
        load_environment(project.root / "inventories/demo.py")
    assert "host web2: key nginx_gzip: expected bool, got int" in str(together.value)
    assert "host web1:" not in str(together.value) and "host db1:" not in str(together.value)


def test_a_kept_function_inside_a_kept_function_passes_on_what_it_read():
    from hxinfra.memo import by_reads

    inner_calls, outer_calls = [], []

    @by_reads
    def inner(d):
        inner_calls.append(1)
        return d["rules"][0]

    def outer(d):
        outer_calls.append(1)
        return (inner(d), d["name"])

    memo: TraceMemo[tuple] = TraceMemo()
    rules, other = ["a"], ["b"]
    assert memo.call(outer, {"rules": rules, "name": "x"}) == ("a", "x")
    assert memo.call(outer, {"rules": rules, "name": "x"}) == ("a", "x") and len(outer_calls) == 1
    # the inner result is kept, yet the outer call still depends on what the inner one read
    assert memo.call(outer, {"rules": other, "name": "x"}) == ("b", "x") and len(outer_calls) == 2
    assert inner({"rules": rules, "zzz": 1}) == "a" and len(inner_calls) == 2


def test_full_caches_keep_what_is_in_use_and_drop_what_is_not():
    from hxinfra.memo import Generations, IdentityCache

    cache: IdentityCache[int] = IdentityCache(limit=2)
    shared, calls = ["role"], []
    for i in range(10):  # one shared value, read by every host, among values of one host each
        cache.get(shared, lambda: calls.append("shared") or 1)
        cache.get([i], lambda: calls.append("own") or 2)
    assert calls.count("shared") == 1 and calls.count("own") == 10
    kept: Generations[str] = Generations(limit=2)
    kept.put("a", "A")
    for key in "bcdef":
        assert kept.get("a") == "A"  # read each time: never dropped
        kept.put(key, key.upper())
    assert kept.get("b") is None and kept.get("f") == "F"


def _plans(out, memo: str, project=None) -> dict[str, bytes]:
    """Every file of the plans of ``envs`` made in a fresh process with HXINFRA_MEMO=``memo``."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "HXINFRA_MEMO": memo}
    names = ("production", "staging", "development", "testing")
    if project is not None:
        env["HXINFRA_PROJECT"], names = str(project), ("bench",)
    files: dict[str, bytes] = {}
    for name in names:
        target = out / f"{memo}-{name}"
        cmd = [sys.executable, "-m", "hxinfra", "plan", "--env", name, "--out", str(target), "--jobs", "1"]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stderr
        files |= {f"{name}/{p.name}": p.read_bytes() for p in sorted(target.iterdir())}
    return files


def test_every_cache_off_plans_the_same_bytes(tmp_path):
    """HXINFRA_MEMO=off turns every cache into a pass-through; the plans of every environment and of
    a synthetic fleet (hosts of every role, sharing their groups' values) stay byte for byte."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    fleet = bench.synthetic_project(tmp_path, 60)
    for project in (None, fleet):
        on, off = _plans(tmp_path, "on", project), _plans(tmp_path, "off", project)
        assert len(on) > 5 and on.keys() == off.keys()
        assert [name for name in on if on[name] != off[name]] == []


def test_off_means_every_call_computes(monkeypatch):
    import subprocess
    import sys

    from hxinfra import memo

    off = subprocess.run(
        [sys.executable, "-c", "from hxinfra import memo; print(memo.ENABLED)"],
        env={**__import__("os").environ, "HXINFRA_MEMO": "off"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert off.stdout.strip() == "False"
    monkeypatch.setattr(memo, "ENABLED", False)
    traced, counted = TraceMemo(), []
    data = {"a": [1]}
    for _ in range(3):
        traced.call(lambda d: counted.append(d["a"]) or len(counted), data)
    assert len(counted) == 3  # no result kept: the function ran each time
    ident, computed = memo.IdentityCache(), []
    assert [ident.get(data, lambda: computed.append(1) or len(computed)) for _ in range(2)] == [1, 2]
    lru_calls = []
    parse = memo.lru(8)(lambda x: lru_calls.append(x) or x)
    parse("a"), parse("a")
    assert lru_calls == ["a", "a"]
